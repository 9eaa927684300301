"""`loket mappings validate`: each broken mapping gets a message naming file, key and fix."""

import json
import shutil

import pytest
from click.testing import CliRunner

from hub.mapping_check import validate_all
from loket.cli import main as cli
from mappings import AGENCIES_DIR
from scheduler.worker import Worker
from tests.test_worker import file

TELECOM = AGENCIES_DIR / "ombudsman-telecom.yaml"


@pytest.fixture
def agencies(tmp_path):
    folder = tmp_path / "agencies"
    folder.mkdir()
    shutil.copy(TELECOM, folder / TELECOM.name)
    return folder


def errors_for(folder, change):
    path = folder / TELECOM.name
    path.write_text(change(path.read_text()))
    errors, _ = validate_all(folder)
    return [str(e) for e in errors]


def test_the_shipped_mappings_are_valid():
    errors, loaded = validate_all(AGENCIES_DIR)
    assert errors == []
    assert len(loaded) == len(list(AGENCIES_DIR.glob("*.yaml")))


def test_a_required_agency_field_left_unmapped_is_named(agencies):
    errors = errors_for(agencies, lambda t: t.replace("  complainant.email: consumer.email\n", ""))
    assert any("contract: fields.complainant: 'email' is a required property" in e for e in errors)
    assert all(str(agencies / TELECOM.name) in e and "Fix:" in e for e in errors)


def test_a_value_that_does_not_fit_the_contract_is_named(agencies):
    errors = errors_for(
        agencies, lambda t: t.replace("language: case.language | upper", "language: case.language")
    )
    assert any("fields.language" in e and "is not one of" in e for e in errors)


def test_an_agency_code_left_unmapped_and_a_code_the_agency_does_not_have(agencies):
    errors = errors_for(
        agencies,
        lambda t: t.replace(
            "  INADMISSIBLE: {status: resolved, outcome: inadmissible}\n",
            "  ESCALATED: in_progress\n",
        ),
    )
    assert any(
        "statuses.INADMISSIBLE: the agency sends INADMISSIBLE but the mapping does not read it" in e
        for e in errors
    )
    assert any("statuses.ESCALATED: the agency's contract has no such code" in e for e in errors)


def test_an_unknown_canonical_status_or_transform_is_named(agencies):
    errors = errors_for(agencies, lambda t: t.replace("NEW: received", "NEW: recieved"))
    assert any("statuses.NEW: unknown canonical status 'recieved'" in e for e in errors)
    shutil.copy(TELECOM, agencies / TELECOM.name)
    errors = errors_for(agencies, lambda t: t.replace("| upper", "| shout"))
    assert any(
        "fields.language: unknown transform 'shout'" in e and "truncate" in e for e in errors
    )


def test_bad_yaml_is_named_with_its_line(agencies):
    errors = errors_for(
        agencies, lambda t: t.replace("languages: [nl, fr, de]", "languages: [nl, fr, de")
    )
    [error] = errors
    assert "(yaml): not valid YAML" in error and f"{TELECOM.name}:" in error


def test_the_cli_prints_every_error_and_fails(agencies, monkeypatch):
    (agencies / TELECOM.name).write_text(TELECOM.read_text().replace("| upper", "| shout"))
    monkeypatch.setenv("LOKET_AGENCIES_DIR", str(agencies))
    result = CliRunner().invoke(cli, ["mappings", "validate"])
    assert result.exit_code == 1
    assert "unknown transform 'shout'" in result.output


def test_a_field_not_in_the_mapping_never_reaches_the_agency(hub, sims, clock):
    """Data minimisation: the telecom ombudsman maps no address and no website."""
    filed = file(
        hub,
        consumer={
            "name": "An Peeters",
            "email": "an@example.be",
            "phone": "+32 470 12 34 56",
            "address": {
                "street": "Kerkstraat 1",
                "postcode": "9000",
                "city": "Gent",
                "country": "BE",
            },
        },
        trader={
            "name": "Telco NV",
            "enterprise_number": "0403.170.701",
            "website": "https://telco.example.be",
            "address": {"street": "Marktplein 2", "city": "Antwerpen", "country": "BE"},
        },
    )
    Worker(hub, "w").dispatch_once()
    [received] = sims.system("ombudsman-telecom").cases.values()
    sent = json.dumps(received.payload, ensure_ascii=False)
    for secret in ("Kerkstraat", "9000", "Gent", "telco.example.be", "Marktplein", "Antwerpen"):
        assert secret not in sent
    mapped = {rule.target.split(".")[0] for rule in hub.directory["ombudsman-telecom"].fields}
    assert set(received.payload) <= mapped
    assert received.payload["externalReference"] == filed.reference
    assert received.payload["complainant"]["phone"] == "+32 470 12 34 56"  # what is mapped does go


def test_preview_prints_the_payload_an_agency_would_receive(hub, sims, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    filed = file(hub)
    result = CliRunner().invoke(cli, ["mappings", "preview", "ombudsman-telecom", filed.reference])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["externalReference"] == filed.reference and payload["requestType"] == "KLACHT"
    from hub.reference import check_symbol

    nobody = f"LK-0000-000{check_symbol('0000000')}"
    unknown = CliRunner().invoke(cli, ["mappings", "preview", "ombudsman-telecom", nobody])
    assert unknown.exit_code == 2 and f"no case {nobody}" in unknown.output
    typo = CliRunner().invoke(cli, ["mappings", "preview", "ombudsman-telecom", "LK-0000-0000"])
    assert typo.exit_code == 2 and "is not a case reference" in typo.output
