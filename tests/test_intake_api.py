"""POST /api/v1/cases: a valid case is stored with its outbox rows; bad input is refused clearly."""

import copy
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hub.models import Assignment, Case, Delivery, DeliveryState, Party, StatusEvent
from hub.reference import is_valid
from tests.support.cases import CASE
from tests.support.openapi import validate


def counts(db) -> dict[str, int]:
    with db.session(read_only=True) as s:
        return {
            m.__name__: s.scalar(select(func.count()).select_from(m))
            for m in (Case, Party, Assignment, Delivery, StatusEvent)
        }


def test_filing_a_case_stores_it_routes_it_and_writes_the_outbox(client, db):
    resp = client.post("/api/v1/cases", json=CASE)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    validate("Filed", body)
    assert is_valid(body["reference"])
    assert resp.headers["Location"].endswith(f"/api/v1/cases/{body['reference']}")
    assert [a["agency"] for a in body["agencies"]] == ["ombudsman-telecom"]
    assert body["agencies"][0]["name"] == "Service de médiation pour les télécommunications"

    with db.session(read_only=True) as s:
        case = s.scalars(select(Case)).one()
        assert case.reference == body["reference"]
        assert case.token_hash != body["tracking_token"] and len(case.token_hash) == 64
        assert body["tracking_token"] not in repr(case.__dict__)
        assert case.amount_cents == 4999
        delivery = s.scalars(select(Delivery)).one()
        assert delivery.state == DeliveryState.PENDING
        assert delivery.idempotency_key == f"{case.reference}.ombudsman-telecom.1"
        assignment = s.scalars(select(Assignment)).one()
        assert assignment.status == "queued" and assignment.answer_due_at is not None
        trader = s.scalars(select(Party).where(Party.role == "trader")).one()
        assert trader.enterprise_number == "0403170701"


def test_a_case_no_sector_ombudsman_covers_goes_to_the_consumer_mediation_service(client):
    case = {**CASE, "domain": "ecommerce.non_delivery", "kind": "mediation"}
    resp = client.post("/api/v1/cases", json=case)
    assert resp.status_code == 201
    assert [a["agency"] for a in resp.get_json()["agencies"]] == ["consumer-mediation"]


def problem_of(resp, status):
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    validate("Problem", body)
    assert body["status"] == status
    return body


def test_malformed_json_gets_400_with_the_position(client, db):
    resp = client.post(
        "/api/v1/cases", data='{"kind": "complaint",', content_type="application/json"
    )
    body = problem_of(resp, 400)
    assert body["type"] == "/problems/malformed-json"
    assert "line 1" in body["detail"] and "Fix the JSON" in body["detail"]
    assert counts(db)["Case"] == 0


def test_missing_required_fields_are_each_named_with_a_fix(client, db):
    case = copy.deepcopy(CASE)
    del case["description"]
    del case["consumer"]["email"]
    body = problem_of(client.post("/api/v1/cases", json=case), 422)
    by_field = {e["field"]: e for e in body["errors"]}
    assert set(by_field) == {"description", "consumer.email"}
    assert by_field["consumer.email"]["pointer"] == "#/consumer/email"
    assert by_field["consumer.email"]["detail"] == "Missing data for required field."
    assert "name@example.be" in by_field["consumer.email"]["fix"]
    assert "Nothing was stored" in body["detail"]
    assert counts(db) == {"Case": 0, "Party": 0, "Assignment": 0, "Delivery": 0, "StatusEvent": 0}


def test_unknown_domain_says_where_the_valid_codes_are(client, db):
    body = problem_of(client.post("/api/v1/cases", json={**CASE, "domain": "telecom.pigeons"}), 422)
    [error] = body["errors"]
    assert error["field"] == "domain"
    assert "telecom.pigeons" in error["detail"]
    assert "/api/v1/domains" in error["fix"]
    assert counts(db)["Case"] == 0


def test_a_five_megabyte_description_gets_413_naming_the_field(client, db):
    huge = {**CASE, "description": "x" * (5 * 1024 * 1024)}
    body = problem_of(
        client.post("/api/v1/cases", data=json.dumps(huge), content_type="application/json"), 413
    )
    assert body["errors"][0]["field"] == "description"
    assert "10,000 characters" in body["errors"][0]["fix"]
    assert counts(db)["Case"] == 0


def test_a_description_just_over_the_limit_gets_422_naming_the_field(client, db):
    body = problem_of(client.post("/api/v1/cases", json={**CASE, "description": "x" * 10001}), 422)
    assert [e["field"] for e in body["errors"]] == ["description"]
    assert counts(db)["Case"] == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_wrong_content_type_gets_415(client, db, content_type):
    kwargs = {"data": json.dumps(CASE)}
    if content_type:
        kwargs["content_type"] = content_type
    body = problem_of(client.post("/api/v1/cases", **kwargs), 415)
    assert "Content-Type: application/json" in body["detail"]
    assert counts(db)["Case"] == 0


def test_unknown_fields_and_bad_values_each_get_an_entry(client, db):
    case = {
        **CASE,
        "colour": "blue",
        "consumer": {**CASE["consumer"], "age": 40},
        "trader": {"name": "X", "enterprise_number": "0403.170.702"},
        "consent": {"share_with_agencies": False},
    }
    body = problem_of(client.post("/api/v1/cases", json=case), 422)
    by_field = {e["field"]: e for e in body["errors"]}
    assert set(by_field) == {
        "colour",
        "consumer.age",
        "trader.enterprise_number",
        "consent.share_with_agencies",
    }
    assert (
        "allowed here are" in by_field["consumer.age"]["fix"]
        and "email" in by_field["consumer.age"]["fix"]
    )
    assert "mod-97" in by_field["trader.enterprise_number"]["detail"]
    assert counts(db)["Case"] == 0


def test_a_json_array_is_not_a_case(client, db):
    body = problem_of(client.post("/api/v1/cases", json=[CASE]), 422)
    assert body["errors"][0]["field"] == "(body)"
    assert counts(db)["Case"] == 0


def test_unknown_paths_and_methods_are_problems_too(client):
    problem_of(client.get("/api/v1/nothing-here"), 404)
    problem_of(client.delete("/api/v1/cases"), 405)


def test_problem_types_are_documented_by_the_hub(client):
    body = problem_of(client.post("/api/v1/cases", json={}), 422)
    doc = client.get(body["type"])
    assert doc.status_code == 200 and doc.get_json()["title"] == body["title"]


def test_domains_are_listed_in_the_asked_language(client):
    domains = client.get("/api/v1/domains?lang=nl").get_json()["domains"]
    telecom = next(d for d in domains if d["code"] == "telecom.billing")
    assert telecom["label"] == "Factuur"


def test_the_future_is_judged_by_the_hubs_clock(client, clock, db):
    """The hub's clock says 2 November 2026: an incident on the 3rd has not happened yet, and
    once the clock has moved on, it has."""
    tomorrow = (clock.now().date() + timedelta(days=1)).isoformat()
    resp = client.post("/api/v1/cases", json={**CASE, "incident_date": tomorrow})
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "incident_date"
    clock.advance(days=2)
    assert client.post("/api/v1/cases", json={**CASE, "incident_date": tomorrow}).status_code == 201


def test_a_filing_that_fails_half_way_stores_nothing(client, db, monkeypatch):
    """The outbox row is written last (on PostgreSQL in the same statement as the case, which
    runs without BEGIN/COMMIT): when it fails, the case and its other rows are not kept either."""
    from hub import intake

    real = intake.delivery_row
    monkeypatch.setattr(intake, "delivery_row", lambda **kw: {**real(**kw), "state": None})
    resp = client.post("/api/v1/cases", json=CASE)
    assert resp.status_code == 500
    assert counts(db) == dict.fromkeys(counts(db), 0)
    monkeypatch.setattr(intake, "delivery_row", real)
    assert client.post("/api/v1/cases", json=CASE).status_code == 201
    assert counts(db)["Delivery"] == 1


def test_connections_the_server_dropped_cost_one_failed_filing_at_most(client, db):
    """The pool does not ping before each filing: after PostgreSQL dropped the hub's
    connections (a restart), one filing fails, nothing of it is stored, and the next is filed on
    a new connection."""
    if db.dialect != "postgresql":
        pytest.skip("needs a server that can drop the hub's connections")
    from sqlalchemy import create_engine, text

    held = [db.engine.connect() for _ in range(3)]  # the pool then keeps three connections
    for conn in held:
        conn.exec_driver_sql("SELECT 1")
    for conn in held:
        conn.close()
    for _ in range(3):
        assert client.post("/api/v1/cases", json=CASE).status_code == 201
    killer = create_engine(db.url, isolation_level="AUTOCOMMIT")
    with killer.connect() as conn:
        dropped = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    killer.dispose()
    assert dropped >= 1
    answers = [client.post("/api/v1/cases", json=CASE).status_code for _ in range(4)]
    assert answers in ([500, 201, 201, 201], [201, 201, 201, 201])
    assert counts(db)["Case"] == 3 + answers.count(201)


def test_intakes_statement_is_converted_and_prepared_once_not_per_filing(client, db):
    """On PostgreSQL a filing is one statement that psycopg converts once (its query cache) and
    the server parses once per connection (a prepared statement): neither per filing."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite files a case in one statement per table")
    from psycopg import _queries

    # psycopg prepares a statement at its fifth execution; from the sixth filing on, the
    # confirmation mail is withheld (5 an hour per address), which is another statement
    for _ in range(11):
        assert client.post("/api/v1/cases", json=CASE).status_code == 201
    before = _queries._query2pg.cache_info()
    for _ in range(3):
        assert client.post("/api/v1/cases", json=CASE).status_code == 201
    after = _queries._query2pg.cache_info()
    assert after.misses == before.misses and after.hits >= before.hits + 3
    with db.engine.connect() as conn:
        prepared = conn.connection.driver_connection._prepared._names
    assert any(b"INSERT INTO cases" in query for query, _types in prepared)
