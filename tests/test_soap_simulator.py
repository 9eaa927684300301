"""FAVV's SOAP simulator, its contract (the WSDL in contracts/) and its mapping file agree."""

from __future__ import annotations

import sys

import pytest
import requests
from loket_simulators import launch
from loket_simulators.soap_agency import FAVV, normalise_wsdl
from lxml import etree

from adapters.soap import SoapAdapter
from hub.config import ROOT
from mappings.engine import load_agency
from tests.support.env import free_port, wait_until

pytest_plugins = ["tests.support.peers_soap"]

CONTRACT = ROOT / "contracts" / "agencies" / "favv" / "complaints.wsdl"
MAPPING = ROOT / "mappings" / "agencies" / "favv.yaml"
XS = "{http://www.w3.org/2001/XMLSchema}"
WSDL = "{http://schemas.xmlsoap.org/wsdl/}"
REGENERATE = (
    "the simulator's WSDL and contracts/agencies/favv/complaints.wsdl differ. If the change is "
    "intended, regenerate the contract: loket-simulator soap --write-wsdl "
    "contracts/agencies/favv/complaints.wsdl"
)


def outline(document: bytes) -> dict[str, list[str]]:
    """Operation names and, per schema type, its element names in order: what drift looks like."""
    root = etree.fromstring(document)
    out = {"operations": [op.get("name") for op in root.iter(f"{WSDL}operation")]}
    for ctype in root.iter(f"{XS}complexType"):
        out[ctype.get("name")] = [e.get("name") for e in ctype.iter(f"{XS}element")]
    return out


def test_the_simulator_serves_exactly_the_wsdl_kept_as_favvs_contract(soap_server):
    live = requests.get(soap_server.url + "?wsdl", timeout=5)
    assert live.status_code == 200
    served = normalise_wsdl(live.content)
    saved = CONTRACT.read_bytes()
    assert outline(served) == outline(saved), REGENERATE
    assert served == saved, REGENERATE


def test_the_contract_offers_the_operations_the_mapping_names():
    config = load_agency(MAPPING, env={}).adapter_config
    operations = set(outline(CONTRACT.read_bytes())["operations"])
    for key in ("submit_operation", "status_operation", "ping_operation", "message_operation"):
        assert config[key] in operations, key


def test_every_element_the_mapping_names_for_a_reply_is_in_the_message_operation():
    config = load_agency(MAPPING, env={}).adapter_config
    types = outline(CONTRACT.read_bytes())
    spec = config["message"]
    request = types[config["message_operation"]]
    for key in ("agency_reference", "case_reference", "text"):
        assert spec[key] in request, key
    assert config["idempotency_key_parameter"] in request
    wrapper, repeated = spec["attachments"].split(".")
    assert wrapper in request and repeated in types[f"{repeated}Array"]
    for key in ("attachment_name", "attachment_type", "attachment_content"):
        assert spec[key] in types[repeated], key


def test_a_reply_naming_another_case_reference_is_refused(soap_peer, soap_adapter):
    from adapters.base import OutboundMessage, PermanentError
    from adapters.testing import outbound

    case = outbound(soap_peer)
    receipt = soap_adapter.deliver(case)
    message = OutboundMessage(
        idempotency_key=f"{case.case_reference}.favv.msg1",
        case_reference="LK-OTHR-CASE",
        agency_id="favv",
        agency_reference=receipt.agency_reference,
        text="Antwoord",
    )
    with pytest.raises(PermanentError) as info:
        soap_adapter.send_message(message)
    assert "Client.Validation" in info.value.detail and "LK-OTHR-CASE" in info.value.detail
    assert soap_peer.messages(receipt.agency_reference) == []


def test_every_mapped_field_is_an_element_of_the_submit_operation():
    mapping = load_agency(MAPPING, env={})
    types = outline(CONTRACT.read_bytes())
    submit = types[mapping.adapter_config["submit_operation"]]
    assert mapping.adapter_config["idempotency_key_parameter"] in submit
    for rule in mapping.fields:
        head, _, child = rule.target.partition(".")
        assert head in submit, rule.target
        if child:
            assert child in types[head], rule.target


def test_every_status_the_simulator_emits_is_mapped():
    mapping = load_agency(MAPPING, env={})
    for code, _note in FAVV.profile.flow:
        assert mapping.map_status(code) is not None, code


def test_the_case_ids_are_favvs_own(soap_peer, soap_adapter):
    from adapters.testing import outbound

    receipt = soap_adapter.deliver(outbound(soap_peer))
    assert receipt.agency_reference == "FAVV-2026-00001"
    assert soap_peer.system.cases[receipt.agency_reference].payload["Soort"] == "MELDING"


def test_loket_run_can_launch_it_from_the_mapping_and_it_answers(processes):
    port = free_port()
    env = {
        "LOKET_FAVV_URL": f"http://127.0.0.1:{port}/meldpunt",
        "LOKET_FAVV_USERNAME": "run-user",
        "LOKET_FAVV_PASSWORD": "run-pass",
    }
    mapping = load_agency(MAPPING, env=env)
    how = launch("soap", "favv", mapping.adapter_config, mapping.extra["simulator"], ROOT)
    assert (how.host, how.port, how.env_hint) == ("127.0.0.1", port, "LOKET_FAVV_URL")
    assert how.command[0] == sys.executable
    processes.start("favv-sim", how.command[1:], {})
    adapter = SoapAdapter(mapping.adapter_config)
    try:
        health = wait_until(lambda: adapter.check().ok and adapter.check(), 30, "the simulator")
        assert health.message == "Ping answered"
        wrong = SoapAdapter({**mapping.adapter_config, "password": "guess"})
        assert not wrong.check().ok
        wrong.close()
    finally:
        adapter.close()


def test_the_command_line_explains_itself():
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "loket_simulators", "soap", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert "--write-wsdl" in out.stdout and "--username" in out.stdout
    assert "Warning" not in out.stderr
