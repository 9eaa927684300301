"""Admissibility pre-checks at the front desk, and fan-out to an inspection, over the API."""

from sqlalchemy import func, select

from hub.models import Case
from tests.openapi import validate
from tests.test_intake_api import CASE


def stored(db) -> int:
    with db.session(read_only=True) as s:
        return s.scalar(select(func.count()).select_from(Case))


def test_an_unanswered_pre_check_is_asked_back_naming_the_answer_field(client, db):
    case = {k: v for k, v in CASE.items() if k != "answers"}
    resp = client.post("/api/v1/cases", json=case)
    assert resp.status_code == 422
    body = resp.get_json()
    validate("Problem", body)
    assert body["type"] == "/problems/needs-answers"
    [error] = body["errors"]
    assert (
        error["field"] == "answers.contacted_trader"
        and error["pointer"] == "#/answers/contacted_trader"
    )
    assert "plainte écrite" in error["fix"]  # the question, in the consumer's language (fr)
    assert stored(db) == 0


def test_a_failed_pre_check_refuses_with_the_reason_and_what_to_do_first(client, db):
    resp = client.post("/api/v1/cases", json={**CASE, "answers": {"contacted_trader": False}})
    assert resp.status_code == 422
    body = resp.get_json()
    validate("Problem", body)
    assert body["type"] == "/problems/not-admissible"
    [refusal] = body["refusals"]
    assert refusal["agency"] == "ombudsman-telecom" and refusal["check"] == "contacted_trader"
    assert refusal["reason"].startswith("Vous avez répondu non")
    assert "lettre type" in refusal["advice"]
    assert stored(db) == 0


def test_a_dispute_older_than_a_year_is_refused_by_the_telecom_ombudsman(client, db):
    resp = client.post("/api/v1/cases", json={**CASE, "incident_date": "2025-06-01"})
    body = resp.get_json()
    assert resp.status_code == 422 and body["refusals"][0]["check"] == "within_one_year"
    assert "juge de paix" in body["refusals"][0]["advice"]


def test_the_questions_can_be_asked_before_filing(client):
    body = client.get("/api/v1/prechecks?kind=complaint&domain=telecom.billing&lang=nl").get_json()
    checks = {q["check"]: q for q in body["questions"]}
    assert set(checks) == {"contacted_trader", "within_one_year"}
    assert checks["contacted_trader"]["question"].startswith("Heeft u eerst")
    assert checks["within_one_year"]["field"] == "incident_date"
    bad = client.get("/api/v1/prechecks?kind=praise&domain=telecom.billing")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "kind"


def test_a_complaint_about_a_fake_webshop_fans_out_to_a_mediator_and_the_inspection(client):
    body = client.post(
        "/api/v1/cases", json={**CASE, "domain": "ecommerce.fake_webshop"}
    ).get_json()
    assert [a["agency"] for a in body["agencies"]] == ["consumer-mediation", "economic-inspection"]
    assert body["not_sent"] == []


def test_when_the_mediator_refuses_the_inspection_still_gets_the_complaint(client):
    resp = client.post(
        "/api/v1/cases",
        json={**CASE, "domain": "ecommerce.fake_webshop", "answers": {"contacted_trader": False}},
    )
    assert resp.status_code == 201
    body = resp.get_json()
    validate("Filed", body)
    assert [a["agency"] for a in body["agencies"]] == ["economic-inspection"]
    [refusal] = body["not_sent"]
    assert refusal["agency"] == "consumer-mediation" and refusal["advice"]


def test_a_kind_the_front_desk_does_not_offer_for_a_problem_is_refused(client):
    body = client.post(
        "/api/v1/cases", json={**CASE, "domain": "food.poisoning", "kind": "mediation"}
    ).get_json()
    [error] = body["errors"]
    assert error["field"] == "kind" and "question, report" in error["detail"]
