"""The published contracts and the code agree: a test fails when they drift apart."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from marshmallow import Schema, ValidationError, fields, validate

from hub import lifecycle, schemas, taxonomy
from hub.config import CONTRACTS_DIR
from hub.schemas import CaseInSchema

CASE_SCHEMA = json.loads((CONTRACTS_DIR / "case.schema.json").read_text())
STATUSES = yaml.safe_load((CONTRACTS_DIR / "statuses.yaml").read_text())
OPENAPI = yaml.safe_load((CONTRACTS_DIR / "openapi.yaml").read_text())


def resolve(node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        return CASE_SCHEMA["$defs"][ref.split("/")[-1]]
    return node


def _validator_of(field: fields.Field, kind: type) -> list:
    found = (
        field.validate
        if isinstance(field.validate, list | tuple)
        else ([field.validate] if field.validate else [])
    )
    return [
        v
        for v in (field.validators if hasattr(field, "validators") else found)
        if isinstance(v, kind)
    ]


def compare(schema: Schema, node: dict, path: str) -> list[str]:
    """Differences between a marshmallow schema and a JSON Schema object, as readable lines."""
    node = resolve(node)
    problems = []
    props = node.get("properties", {})
    if set(schema.fields) != set(props):
        problems.append(
            f"{path}: fields differ: code has {sorted(set(schema.fields) - set(props))} "
            f"only, contract has {sorted(set(props) - set(schema.fields))} only"
        )
    required_code = {n for n, f in schema.fields.items() if f.required}
    if required_code != set(node.get("required", [])):
        problems.append(
            f"{path}: required differs: code {sorted(required_code)}, "
            f"contract {sorted(node.get('required', []))}"
        )
    if node.get("additionalProperties") is not False:
        problems.append(f"{path}: contract should forbid additional properties like the code does")
    for name in set(schema.fields) & set(props):
        f, p = schema.fields[name], resolve(props[name])
        where = f"{path}.{name}"
        if isinstance(f, fields.Nested):
            problems += compare(f.schema, props[name], where)
            continue
        expected_type = {
            fields.Boolean: "boolean",
            fields.Decimal: "number",
            fields.Dict: "object",
        }.get(type(f), "string")
        if p.get("type") != expected_type:
            problems.append(f"{where}: type {p.get('type')} in contract, {expected_type} in code")
        for v in _validator_of(f, validate.OneOf):
            if sorted(v.choices) != sorted(p.get("enum", [])):
                problems.append(f"{where}: enum differs: {sorted(v.choices)} vs {p.get('enum')}")
        for v in _validator_of(f, validate.Length):
            if v.max != p.get("maxLength") or (v.min or None) != p.get("minLength"):
                problems.append(
                    f"{where}: length {v.min}..{v.max} vs {p.get('minLength')}..{p.get('maxLength')}"
                )
        for v in _validator_of(f, validate.Regexp):
            if v.regex.pattern != p.get("pattern"):
                problems.append(f"{where}: pattern {v.regex.pattern!r} vs {p.get('pattern')!r}")
        for v in _validator_of(f, validate.Range):
            if Decimal(str(v.min)) != Decimal(str(p.get("minimum"))) or Decimal(
                str(v.max)
            ) != Decimal(str(p.get("maximum"))):
                problems.append(
                    f"{where}: range {v.min}..{v.max} vs {p.get('minimum')}..{p.get('maximum')}"
                )
        for v in _validator_of(f, validate.Equal):
            if p.get("const") != v.comparable:
                problems.append(f"{where}: const {v.comparable!r} vs {p.get('const')!r}")
        if isinstance(f, fields.Dict):
            key_pattern = [v.regex.pattern for v in _validator_of(f.key_field, validate.Regexp)]
            if key_pattern != [p.get("propertyNames", {}).get("pattern")]:
                problems.append(f"{where}: key pattern {key_pattern} vs {p.get('propertyNames')}")
            if p.get("additionalProperties", {}).get("type") != "boolean" or not isinstance(
                f.value_field, fields.Boolean
            ):
                problems.append(f"{where}: values must be booleans in both")
        fmt = {fields.Email: "email", fields.Url: "uri", fields.Date: "date"}.get(type(f))
        if fmt and p.get("format") != fmt:
            problems.append(f"{where}: format {fmt} in code, {p.get('format')} in contract")
    return problems


def test_marshmallow_case_schema_agrees_with_the_published_json_schema():
    assert compare(CaseInSchema(), CASE_SCHEMA, "case") == []


def test_the_drift_check_itself_catches_a_difference():
    class Drifted(CaseInSchema):
        kind = fields.String(required=True, validate=validate.OneOf(["question", "complaint"]))
        extra = fields.String()

    problems = compare(Drifted(), CASE_SCHEMA, "case")
    assert any("case.kind: enum differs" in p for p in problems)
    assert any("fields differ" in p and "extra" in p for p in problems)


def test_the_contracts_domains_and_kinds_are_the_taxonomys():
    """`domain` is an enum of contracts/domains.yaml's codes and each domain's kinds are stated
    (an if/then per set of kinds), so a generated "valid" case is one the hub takes."""
    rules = taxonomy.contract_rules()
    assert CASE_SCHEMA["properties"]["domain"]["enum"] == rules["domain_enum"], (
        "contracts/case.schema.json's domains differ from contracts/domains.yaml: run "
        "`loket contracts sync`"
    )
    assert CASE_SCHEMA["allOf"] == rules["allOf"], "run `loket contracts sync`"
    validator = Draft202012Validator(CASE_SCHEMA, format_checker=FormatChecker())
    base = dict(EXAMPLES_VALID[1])
    for sub in taxonomy.subareas():
        for kind in ("question", "complaint", "report", "mediation"):
            ok = validator.is_valid({**base, "domain": sub.code, "kind": kind})
            assert ok == (not sub.options or kind in sub.options), (sub.code, kind)


def test_the_contract_and_the_code_refuse_the_same_dates():
    """Dates from 1900 on: the code's NotBefore and the contract's pattern agree."""
    validator = Draft202012Validator(CASE_SCHEMA, format_checker=FormatChecker())
    earliest = schemas.EARLIEST_DATE
    day_before = earliest - timedelta(days=1)
    for name in ("incident_date", "complaint_date"):
        field = CaseInSchema().fields[name]
        assert any(isinstance(v, schemas.NotBefore) for v in field.validators)
        for day, ok in ((earliest, True), (day_before, False), (date(999, 12, 31), False)):
            case = {**EXAMPLES_VALID[1], name: day.isoformat()}
            assert validator.is_valid(case) == ok, (name, day)
            errors = CaseInSchema().validate(case)
            assert (name not in errors) == ok, (name, day, errors)


@pytest.mark.parametrize(
    "path, value",
    [
        (("consumer", "name"), "Jo\x00"),
        (("consumer", "name"), "Jo\nSmith"),
        (("description",), "It broke on day one\x1b[31m"),
        (("description",), "It broke \u0085 on day one"),
        (("trader", "name"), "Shop\x7f"),
    ],
)
def test_control_characters_are_refused_by_the_contract_and_the_code(path, value):
    case = json.loads(json.dumps(EXAMPLES_VALID[1]))
    case["trader"] = {"name": "Shop"}
    node = case
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    validator = Draft202012Validator(CASE_SCHEMA, format_checker=FormatChecker())
    assert not validator.is_valid(case)
    errors = CaseInSchema().validate(case)
    node = errors
    for part in path:
        node = node[part]
    assert "control character" in str(node)


def test_line_breaks_and_tabs_are_fine_in_the_description():
    case = {**EXAMPLES_VALID[1], "description": "Line one,\r\n\tline two."}
    assert Draft202012Validator(CASE_SCHEMA).is_valid(case)
    assert CaseInSchema().validate(case) == {}


EXAMPLES_VALID = [
    json.loads((CONTRACTS_DIR / "examples" / "case.json").read_text()),
    {
        "kind": "question",
        "domain": "general.other",
        "language": "en",
        "description": "How do I cancel my gym subscription?",
        "consumer": {"name": "Jo", "email": "jo@example.be"},
        "consent": {"share_with_agencies": True},
    },
]
EXAMPLES_INVALID = [
    {**EXAMPLES_VALID[1], "kind": "praise"},
    {**EXAMPLES_VALID[1], "language": "es"},
    {**EXAMPLES_VALID[1], "description": "short"},
    {**EXAMPLES_VALID[1], "consent": {"share_with_agencies": False}},
    {**EXAMPLES_VALID[1], "unexpected": 1},
    {k: v for k, v in EXAMPLES_VALID[1].items() if k != "consumer"},
    {**EXAMPLES_VALID[1], "consumer": {"name": "Jo"}},
    {**EXAMPLES_VALID[1], "amount": -1},
    {**EXAMPLES_VALID[1], "currency": "euro"},
]


@pytest.mark.parametrize("example", EXAMPLES_VALID)
def test_valid_examples_pass_both_the_contract_and_the_code(example):
    Draft202012Validator(CASE_SCHEMA, format_checker=FormatChecker()).validate(example)
    CaseInSchema().load(example)


@pytest.mark.parametrize("example", EXAMPLES_INVALID)
def test_invalid_examples_fail_both_the_contract_and_the_code(example):
    assert list(
        Draft202012Validator(CASE_SCHEMA, format_checker=FormatChecker()).iter_errors(example)
    )
    with pytest.raises(ValidationError):
        CaseInSchema().load(example)


def test_status_vocabulary_is_closed_and_consistent():
    known = set(STATUSES["statuses"])
    for src, targets in STATUSES["transitions"].items():
        assert src in known
        assert set(targets) <= known, (src, set(targets) - known)
    assert set(STATUSES["transitions"]) == known
    visible = {lifecycle.consumer_sees(s) for s in known}
    assert visible == set(STATUSES["aggregate"]["precedence"])
    assert known - visible == {"undeliverable"}


def test_openapi_publishes_exactly_the_consumer_visible_statuses_and_outcomes():
    schemas = OPENAPI["components"]["schemas"]
    assert set(schemas["ConsumerStatus"]["enum"]) == set(STATUSES["aggregate"]["precedence"])
    assert set(schemas["Outcome"]["enum"]) - {None} == set(STATUSES["outcomes"])


def test_openapi_paths_are_the_routes_the_app_serves(client):
    served = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/api/")
    }
    assert served == set(OPENAPI["paths"])
