"""The mapping engine: what leaves the hub for an agency, and how its status codes read."""

from pathlib import Path

import pytest

from mappings import AGENCIES_DIR
from mappings.engine import MappingError, RenderError, load_agency, load_all

DOC = {
    "case": {
        "reference": "LK-AAAA-BBBB",
        "kind": "complaint",
        "domain": "telecom.billing",
        "area": "telecom",
        "subarea": "billing",
        "language": "fr",
        "description": "x" * 5000,
        "incident_date": "2026-10-15",
        "amount": "49.99",
        "currency": "EUR",
        "anonymous_to_trader": False,
    },
    "consumer": {
        "name": "Anne",
        "email": "anne@example.be",
        "phone": None,
        "address": {"postcode": "1000", "city": "Brussel"},
    },
    "trader": {"name": "Telco NV", "enterprise_number": "0403170701", "website": None},
}


def test_both_shipped_mappings_load():
    agencies = load_all(AGENCIES_DIR, env={})
    assert {"ombudsman-telecom", "consumer-mediation"} <= set(agencies)


def test_render_maps_fields_applies_transforms_and_nests():
    telecom = load_agency(AGENCIES_DIR / "ombudsman-telecom.yaml", env={})
    payload = telecom.render(DOC)
    assert payload["externalReference"] == "LK-AAAA-BBBB"
    assert payload["requestType"] == "KLACHT"
    assert payload["language"] == "FR"
    assert payload["subject"] == "FACTURATIE"
    assert payload["incidentDate"] == "15/10/2026"
    assert payload["disputedAmount"] == 49.99
    assert len(payload["description"]) == 4000 and payload["description"].endswith("…")
    assert payload["complainant"] == {"name": "Anne", "email": "anne@example.be"}  # no empty phone
    assert payload["operator"] == {"name": "Telco NV", "companyNumber": "0403170701"}


def test_only_mapped_fields_leave_the_hub():
    mediation = load_agency(AGENCIES_DIR / "consumer-mediation.yaml", env={})
    payload = mediation.render(DOC)
    flat = repr(payload)
    assert "anne@example.be" in flat
    # the telecom mapping does not map the consumer's address; the mediation mapping maps only postcode/city
    telecom = load_agency(AGENCIES_DIR / "ombudsman-telecom.yaml", env={})
    assert "Brussel" not in repr(telecom.render(DOC))
    assert payload["bedrag_cent"] == 4999


def test_status_map_reads_codes_and_outcomes():
    telecom = load_agency(AGENCIES_DIR / "ombudsman-telecom.yaml", env={})
    assert telecom.map_status("NEW").status == "received"
    closed = telecom.map_status("CLOSED_AGREEMENT")
    assert (closed.status, closed.outcome) == ("resolved", "solved")
    assert telecom.map_status("SOMETHING_ELSE") is None


def test_environment_interpolation_with_default_and_override():
    path = AGENCIES_DIR / "ombudsman-telecom.yaml"
    assert load_agency(path, env={}).adapter_config["base_url"] == "http://127.0.0.1:8101/api"
    over = load_agency(path, env={"LOKET_OMBUDSMAN_TELECOM_URL": "http://10.0.0.1/x"})
    assert over.adapter_config["base_url"] == "http://10.0.0.1/x"


def test_a_default_may_name_another_variable():
    path = AGENCIES_DIR / "economic-inspection.yaml"
    key = "private_key"
    assert (
        load_agency(path, env={}).adapter_config[key]
        == "@file:var/sim/economic-inspection/client_ed25519_key"
    )
    moved = load_agency(path, env={"LOKET_VAR_DIR": "/srv/loket"}).adapter_config[key]
    assert moved == "@file:/srv/loket/sim/economic-inspection/client_ed25519_key"
    own = {"LOKET_ECONOMIC_INSPECTION_PRIVATE_KEY": "@file:/etc/loket/ei", "LOKET_VAR_DIR": "/x"}
    assert load_agency(path, env=own).adapter_config[key] == "@file:/etc/loket/ei"


GOOD = (AGENCIES_DIR / "ombudsman-telecom.yaml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ombudsman-telecom.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda t: t.replace("| upper", "| shout"), "fields.language", "unknown transform 'shout'"),
        (
            lambda t: t.replace("NEW: received", "NEW: recieved"),
            "statuses.NEW",
            "unknown canonical status",
        ),
        (
            lambda t: t.replace(
                "externalReference: case.reference", "externalReference: kase.reference"
            ),
            "fields.externalReference",
            "unknown source",
        ),
        (
            lambda t: t.replace("sla: {acknowledge: 3 business days", "sla: {acknowledge: soon"),
            "sla.acknowledge",
            "cannot read the duration",
        ),
        (lambda t: t.replace("body: ombudsman\n", ""), "body", "missing"),
        (
            lambda t: t.replace("  de: Ombudsdienst für Telekommunikation\n", ""),
            "names.de",
            "missing",
        ),
        (
            lambda t: t.replace("languages: [nl, fr, de]", "languages: [nl, fr, de\n"),
            "(yaml)",
            "not valid YAML",
        ),
    ],
)
def test_broken_mappings_get_an_error_naming_file_key_and_fix(tmp_path, change, key, words):
    path = write(tmp_path, change(GOOD))
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    err = info.value
    assert err.key == key
    assert words in str(err)
    assert str(path) in str(err) and "Fix:" in str(err)


def test_errors_carry_the_line_number(tmp_path):
    path = write(tmp_path, GOOD.replace("NEW: received", "NEW: recieved"))
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    line = next(
        i for i, text in enumerate(path.read_text().splitlines(), 1) if "NEW: recieved" in text
    )
    assert info.value.line == line


def test_missing_environment_variable_without_default_is_named(tmp_path):
    path = write(
        tmp_path,
        GOOD.replace("${LOKET_OMBUDSMAN_TELECOM_KEY:-demo-telecom-key}", "${TELECOM_SECRET}"),
    )
    with pytest.raises(MappingError, match="TELECOM_SECRET is not set"):
        load_agency(path, env={})


def test_required_transform_refuses_to_render_a_missing_value(tmp_path):
    path = write(
        tmp_path,
        GOOD.replace(
            "complainant.phone: consumer.phone", "complainant.phone: consumer.phone | required"
        ),
    )
    mapping = load_agency(path, env={})
    with pytest.raises(RenderError, match=r"complainant\.phone"):
        mapping.render(DOC)


def test_one_mapping_error_lists_every_problem_of_the_file(tmp_path):
    text = GOOD
    for old, new in [
        ("poll: {every", "pol: {every"),
        ("languages: [nl, fr, de]", "languages: nl"),
        ("NEW: received", "NEW: recieved"),
        ("| upper", "| upper(2)"),
        ("domains: [telecom.*]", "domains: [telcom.*]"),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = write(tmp_path, text + "delivery: {breaker: {fails: 2}}\n")
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    lines = path.read_text().splitlines()
    found = {p.key: p for p in info.value.problems}
    assert set(found) == {
        "pol",
        "languages",
        "statuses.NEW",
        "fields.language",
        "handles.domains[0]",
        "delivery.breaker.fails",
    }
    for needle, key, fix in [
        ("pol:", "pol", "did you mean `poll`?"),
        ("languages: nl", "languages", "write e.g. `languages: [nl, fr, de]`"),
        ("NEW: recieved", "statuses.NEW", "did you mean `received`?"),
        ("upper(2)", "fields.language", "write upper without arguments"),
        ("telcom", "handles.domains[0]", "did you mean `telecom.*`?"),
        ("fails", "delivery.breaker.fails", "did you mean `failures`?"),
    ]:
        problem = found[key]
        assert needle in lines[problem.line - 1], (needle, problem)
        assert problem.file == str(path) and fix in problem.fix
        assert "(see mappings/agencies/README.md#" in problem.fix
        assert str(problem) in str(info.value)
    assert str(info.value).startswith(f"6 problems in {path}:\n")


def test_a_key_given_twice_is_named_with_both_lines(tmp_path):
    path = write(tmp_path, GOOD + "sla: {acknowledge: 5 days}\n")
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    [problem] = info.value.problems
    first = next(i for i, t in enumerate(GOOD.splitlines(), 1) if t.startswith("sla:"))
    assert (problem.key, problem.line) == ("sla", len(GOOD.splitlines()) + 1)
    assert f"first on line {first}" in problem.problem


def test_prechecks_and_fields_are_checked_beyond_their_shape(tmp_path):
    text = GOOD.replace(
        "    applies_to: [complaint, mediation]\n    max_age: 1 year",
        "    applies_to: [report]\n    max_age: 1 year\n    ask: {nl: a, fr: b, de: c, en: d}",
    ).replace(
        "  operator.name: trader.name\n", "  operator: trader.name\n  operator.name: trader.name\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    problems = {p.key: p.problem for p in info.value.problems}
    assert problems == {
        "prechecks[1].applies_to": "report: not a kind this agency handles",
        "prechecks[1]": "a check needs exactly one of `ask` or `max_age`",
        "fields.operator.name": "`operator` is mapped to a value and also holds `operator.name`",
        "fields.operator.companyNumber": "`operator` is mapped to a value and also holds "
        "`operator.companyNumber`",
    }


def test_a_missing_environment_variable_is_on_its_line(tmp_path):
    path = write(
        tmp_path,
        GOOD.replace("${LOKET_OMBUDSMAN_TELECOM_KEY:-demo-telecom-key}", "${TELECOM_SECRET}"),
    )
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    [problem] = info.value.problems
    assert problem.key == "adapter.api_key"
    assert "TELECOM_SECRET" in path.read_text().splitlines()[problem.line - 1]
    assert "#environment-variables" in problem.fix


def test_load_all_raises_one_error_for_every_file(tmp_path):
    (tmp_path / "ombudsman-telecom.yaml").write_text(GOOD.replace("poll: {every", "pol: {every"))
    mediation = (AGENCIES_DIR / "consumer-mediation.yaml").read_text()
    (tmp_path / "consumer-mediation.yaml").write_text(mediation.replace("body: ", "bodie: "))
    with pytest.raises(MappingError) as info:
        load_all(tmp_path, env={})
    assert {(p.file.rsplit("/", 1)[1], p.key) for p in info.value.problems} == {
        ("consumer-mediation.yaml", "bodie"),
        ("consumer-mediation.yaml", "body"),
        ("ombudsman-telecom.yaml", "pol"),
    }
    assert str(info.value).startswith("3 problems in 2 mapping files:\n")


def test_a_bad_field_name_does_not_hide_a_bad_transform_in_another_field(tmp_path):
    text = GOOD.replace(
        "  externalReference: case.reference\n", "  external Reference: case.reference\n"
    )
    path = write(tmp_path, text.replace("| upper", "| shout"))
    with pytest.raises(MappingError) as info:
        load_agency(path, env={})
    assert {p.key: p.problem for p in info.value.problems} == {
        "fields.external Reference": "'external Reference' is not a valid agency field name",
        "fields.language": "unknown transform 'shout'",
    }
