"""Agency profiles are data (contracts/agencies/<id>/simulator.yaml): every agency's file loads,
a mistake names the file, the key and the fix, and the hub says how to install the simulators
when they are missing instead of failing with a traceback."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner
from loket_simulators import email_agency, rest_agency, sftp_agency, soap_agency
from loket_simulators.profiles import ProfileError, load

from hub.config import ROOT, Settings
from loket import devrun
from loket.cli import main
from mappings.engine import load_all


def test_every_agency_with_a_simulator_has_a_profile_of_its_kind():
    known = {
        "rest": rest_agency.profiles(),
        "soap": soap_agency.soap_profiles(),
        "email": email_agency.profiles(),
        "sftp": sftp_agency.profiles(),
    }
    for agency_id, mapping in load_all(ROOT / "mappings" / "agencies").items():
        kind = (mapping.extra.get("simulator") or {}).get("kind")
        if kind:
            assert agency_id in known[kind], f"{agency_id}: no {kind} simulator.yaml"
    assert rest_agency.profile("ombudsman-telecom").id_format == "OMB-{year}-{n:06d}"
    assert sftp_agency.profile("fod-financien").flow_for("V")[-1][0] == "ANTW"
    assert email_agency.profile("ombudsman-energy").flow[0][1]["fr"].startswith("Nous avons")


def write(tmp_path, text: str):
    folder = tmp_path / "contracts" / "agencies" / "some-agency"
    folder.mkdir(parents=True)
    (folder / "simulator.yaml").write_text(text)
    return tmp_path / "contracts"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("kind: rest\nname: X\ncase_number: 'X-{number}'\nstatuses: [{code: A}]\n", "case_number"),
        ("kind: rest\nname: X\ncase_number: 'X-{n}'\nstatuses: []\n", "statuses"),
        ("kind: rest\nname: X\ncase_number: 'X-{n}'\nstatuses: [{code: A}]\nflow: []\n", "flow"),
        ("kind: sftp\nname: X\ncase_number: 'X-{n}'\nstatuses: [{code: A}]\nflows: {V: []}\n", "V"),
    ],
)
def test_a_mistake_names_the_file_and_the_key(tmp_path, text, key):
    contracts = write(tmp_path, text)
    build = sftp_agency.read_profile if "sftp" in text else rest_agency.read_profile
    with pytest.raises(ProfileError) as caught:
        load(text.split("\n")[0].split(": ")[1], build, contracts)
    message = str(caught.value)
    assert "some-agency/simulator.yaml" in message and f"{key}:" in message


def test_an_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="kind: give one of rest, soap, email, sftp"):
        load("rest", rest_agency.read_profile, write(tmp_path, "kind: fax\n"))


def test_without_the_simulators_loket_run_and_simulate_say_how_to_install_them(monkeypatch):
    monkeypatch.setitem(sys.modules, "loket_simulators", None)  # import fails as if absent
    assert devrun.run_all(Settings.from_env(), web_port=0) == 2
    result = CliRunner().invoke(main, ["simulate", "rest", "--port", "0"])
    assert result.exit_code == 1
    assert "pip install -e ./simulators" in result.output
    assert "Traceback" not in result.output
