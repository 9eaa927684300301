"""`loket mappings validate`: each broken mapping gets a message naming file, key and fix."""

import json
import shutil

import pytest
from click.testing import CliRunner

from hub.mapping_check import validate_all
from loket.cli import main as cli
from mappings import AGENCIES_DIR
from scheduler.worker import Worker
from tests.support.cases import file

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


def line_of(path, text):
    """The 1-based line of `path` that contains `text`."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def every_agency(agencies):
    """Every shipped mapping file in a folder of its own, so the routing rules find them all."""
    for path in AGENCIES_DIR.glob("*.yaml"):
        shutil.copy(path, agencies / path.name)
    return agencies


def validate_cli(agencies, monkeypatch):
    monkeypatch.setenv("LOKET_AGENCIES_DIR", str(agencies))
    result = CliRunner().invoke(cli, ["mappings", "validate"])
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR ")]
    return result, errors


def test_a_misspelt_block_fails_validate_with_its_line_and_did_you_mean(every_agency, monkeypatch):
    """`pol:` used to load: the agency was never polled and validate said 0 errors."""
    agencies = every_agency
    path = agencies / TELECOM.name
    path.write_text(TELECOM.read_text().replace("poll: {every", "pol: {every"))
    result, errors = validate_cli(agencies, monkeypatch)
    assert result.exit_code == 1
    assert errors == [
        f"ERROR {path}:{line_of(path, 'pol:')}: pol: unknown key `pol` in this file. Fix: did you "
        "mean `poll`? the keys here are adapter, body, contract, delivery, fields, grammar, handles, id, "
        "information_requests, "
        "languages, names, poll, prechecks, referral, simulator, sla or statuses "
        "(see mappings/agencies/README.md#poll)"
    ]


def test_an_unknown_key_inside_a_block_is_named_with_the_keys_it_takes(every_agency, monkeypatch):
    agencies = every_agency
    path = agencies / TELECOM.name
    path.write_text(
        TELECOM.read_text().replace(
            "poll: {every: 5 minutes}", "poll: {every: 5 minutes, jitter: 2}"
        )
    )
    result, [error] = validate_cli(agencies, monkeypatch)
    assert result.exit_code == 1
    assert error.startswith(f"ERROR {path}:{line_of(path, 'jitter')}: poll.jitter: unknown key")
    assert "Fix: the keys here are every (see mappings/agencies/README.md#poll)" in error


def test_a_wrong_type_is_named_with_what_was_expected_and_an_example(every_agency, monkeypatch):
    agencies = every_agency
    path = agencies / TELECOM.name
    path.write_text(TELECOM.read_text().replace("languages: [nl, fr, de]", "languages: nl"))
    result, [error] = validate_cli(agencies, monkeypatch)
    assert result.exit_code == 1
    assert error == (
        f"ERROR {path}:{line_of(path, 'languages:')}: languages: expected a list, found the text "
        "'nl'. Fix: write e.g. `languages: [nl, fr, de]` "
        "(see mappings/agencies/README.md#languages)"
    )


def test_every_problem_of_a_file_is_reported_at_once_with_file_line_and_fix(
    every_agency, monkeypatch
):
    agencies = every_agency
    path = agencies / TELECOM.name
    text = TELECOM.read_text()
    for old, new in [
        ("poll: {every", "pol: {every"),  # misspelt block
        ("body: ombudsman", "body: ombudsmen"),  # not one of the allowed values
        ("sla: {acknowledge: 3 business days", "sla: {acknowledge: 3"),  # a number, not text
        ("  NEW: received", "  NEW: recieved"),  # not a canonical status
        ("| upper", "| uper"),  # no such transform
        ("  submit_path: /cases", "  submit_pth: /cases"),  # not a REST setting
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text + "colour: blue\n")
    result, errors = validate_cli(agencies, monkeypatch)
    assert result.exit_code == 1
    expected = {
        "pol:": ("pol: unknown key `pol`", "did you mean `poll`?", "#poll"),
        "body:": ("body: unknown kind of body 'ombudsmen'", "did you mean `ombudsman`?", "#body"),
        "sla:": ("sla.acknowledge: expected text, found the number 3", "3 business days", "#sla"),
        "NEW:": ("statuses.NEW: unknown canonical status", "did you mean `received`?", "#statuses"),
        "| uper": (
            "fields.language: unknown transform 'uper'",
            "did you mean `upper`?",
            "#transforms",
        ),
        "submit_pth": (
            "adapter.submit_pth: rest adapter setting: Unknown field",
            "submit_path",
            "#adapter",
        ),
        "colour:": ("colour: unknown key `colour`", "the keys here are adapter", "#the-whole-file"),
    }
    for anchor_text, (problem, fix, section) in expected.items():
        where = f"ERROR {path}:{line_of(path, anchor_text)}: "
        [error] = [e for e in errors if e.startswith(where + problem)]
        assert f"Fix: {fix}" in error or fix in error.split("Fix: ", 1)[1], error
        assert error.endswith(f"(see mappings/agencies/README.md{section})"), error
    assert len(errors) == len(expected), errors
    assert f"Error: {len(expected)} problem(s) in the mappings" in result.output


def test_the_contract_is_still_checked_when_a_block_outside_it_is_wrong(every_agency, monkeypatch):
    agencies = every_agency
    path = agencies / TELECOM.name
    path.write_text(
        TELECOM.read_text()
        .replace("poll: {every", "pol: {every")
        .replace("  complainant.email: consumer.email\n", "")
    )
    result, errors = validate_cli(agencies, monkeypatch)
    assert result.exit_code == 1
    assert any("pol: unknown key" in e for e in errors)
    [contract] = [e for e in errors if ": contract: fields.complainant" in e]
    assert f"{path}:{line_of(path, 'complainant.name')}: contract:" in contract
    assert "'email' is a required property" in contract and "Fix:" in contract


def test_the_shipped_mappings_pass_the_cli(monkeypatch):
    monkeypatch.delenv("LOKET_AGENCIES_DIR", raising=False)
    result = CliRunner().invoke(cli, ["mappings", "validate"])
    assert result.exit_code == 0, result.output
    count = len(list(AGENCIES_DIR.glob("*.yaml")))
    assert f"{count} agency mapping(s) and the routing rules are valid" in result.output


def test_a_referral_body_is_valid_without_contract_and_nothing_tries_to_reach_it(tmp_path):
    from hub.agencies import Directory
    from hub.mapping_check import check_contract
    from mappings.engine import load_agency

    mapping = load_agency(AGENCIES_DIR / "data-protection-authority.yaml", env={})
    assert not mapping.connected and mapping.referral["url"].startswith("https://")
    assert check_contract(mapping) == []
    directory = Directory({mapping.id: mapping})
    assert directory.capabilities(mapping.id) == frozenset()  # never polled, never delivered
    # connecting it later is one adapter block (with its contract, fields, statuses and sla)
    text = (AGENCIES_DIR / "ombudsman-telecom.yaml").read_text()
    assert "adapter:" in text and "referral:" not in text


def test_a_routing_rule_without_basis_or_with_an_unknown_body_fails_validate(tmp_path):
    routing = (AGENCIES_DIR.parent / "routing.yaml").read_text()
    no_basis = tmp_path / "no-basis.yaml"
    no_basis.write_text(routing.replace("    basis:", "    basis_:", 1))
    result = CliRunner().invoke(
        cli, ["mappings", "validate"], env={"LOKET_ROUTING_FILE": str(no_basis)}
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(routing.replace("to: [vreg]", "to: [vreg-typo]", 1))
    result2 = CliRunner().invoke(
        cli, ["mappings", "validate"], env={"LOKET_ROUTING_FILE": str(unknown)}
    )
    assert result.exit_code != 0 and "no `basis`" in result.output
    assert result2.exit_code != 0 and "unknown agency ['vreg-typo']" in result2.output
