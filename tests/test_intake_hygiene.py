"""What agencies' systems would refuse is refused at the front door, field by field: control
characters, half characters (lone surrogates) and dates before 1900. Before, such cases were
accepted and died later as dead letters or rejected files."""

import copy
import json

import pytest
from sqlalchemy import func, select

from hub.models import Case
from hub.schemas import clean_text
from tests.support.cases import CASE
from tests.support.openapi import validate


def problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    validate("Problem", body)
    return body


def stored(db) -> int:
    with db.session(read_only=True) as s:
        return s.scalar(select(func.count()).select_from(Case))


@pytest.mark.parametrize(
    "path, value, code",
    [
        ("consumer.name", "Marie\u0000Dupont", "U+0000"),
        ("consumer.name", "Marie\nDupont", "U+000A"),
        ("trader.name", "Telco\u001b[2J", "U+001B"),
        ("description", "Ma facture est double\u0007 depuis octobre.", "U+0007"),
        ("description", "Ma facture est double\u0085 depuis octobre.", "U+0085"),
        ("consumer.address.city", "Gent\u007f", "U+007F"),
    ],
)
def test_a_control_character_is_refused_naming_the_field_and_the_character(
    client, db, path, value, code
):
    case = copy.deepcopy(CASE)
    node = case
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    body = problem(client.post("/api/v1/cases", json=case), 422)
    [error] = body["errors"]
    assert error["field"] == path
    assert code in error["detail"]
    assert "control characters" in error["fix"]
    assert stored(db) == 0


def test_line_breaks_in_the_description_are_kept(client, db):
    case = {**CASE, "description": "Line one.\r\n\tLine two, indented."}
    assert client.post("/api/v1/cases", json=case).status_code == 201
    with db.session(read_only=True) as s:
        assert s.scalars(select(Case.description)).one() == "Line one.\r\n\tLine two, indented."


@pytest.mark.parametrize("field", ["incident_date", "complaint_date"])
@pytest.mark.parametrize("day", ["0999-12-31", "1899-12-31"])
def test_a_date_before_1900_is_refused(client, db, field, day):
    body = problem(client.post("/api/v1/cases", json={**CASE, field: day}), 422)
    [error] = body["errors"]
    assert error["field"] == field and "1900" in error["detail"] and "1900" in error["fix"]
    assert stored(db) == 0


def test_a_lone_surrogate_is_malformed_json_and_a_pair_is_a_character(client, db):
    raw = json.dumps({**CASE, "consumer": {**CASE["consumer"], "name": "Jo"}})
    lone = raw.replace('"Jo"', '"Jo\\ud800"')
    resp = client.post("/api/v1/cases", data=lone, content_type="application/json")
    body = problem(resp, 400)
    assert "surrogate" in body["detail"] and "\\ud800" in body["detail"]
    pair = raw.replace('"Jo"', '"Jo \\ud83d\\ude00"')
    resp = client.post("/api/v1/cases", data=pair, content_type="application/json")
    assert resp.status_code == 201, resp.get_json()
    assert stored(db) == 1


def test_an_undeclared_method_is_refused_with_allow(client):
    resp = client.open("/api/v1/cases", method="TRACE")
    problem(resp, 405)
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "OPTIONS"}


def test_an_unknown_language_for_the_domain_list_is_refused(client):
    body = problem(client.get("/api/v1/domains?lang=xx"), 422)
    assert body["errors"][0]["field"] == "lang"
    assert client.get("/api/v1/domains?lang=fr").status_code == 200


def test_the_front_desk_drops_invisible_characters_instead_of_refusing():
    """A person cannot see a pasted U+0007 to remove it; the browser form drops it."""
    assert clean_text("Marie\u0007 Dupont\r\n") == "Marie Dupont "
    assert clean_text("a\u0000b\tc\nd\u0085e", multiline=True) == "ab\tc\nde"
