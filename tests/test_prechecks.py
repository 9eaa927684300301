"""Admissibility pre-checks at the front desk, and fan-out to an inspection, over the API."""

from sqlalchemy import func, select

from hub.models import Case
from tests.support.cases import CASE
from tests.support.openapi import validate


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
    error = next(e for e in body["errors"] if e["field"] == "answers.contacted_trader")
    assert (
        error["field"] == "answers.contacted_trader"
        and error["pointer"] == "#/answers/contacted_trader"
    )
    assert "plainte écrite" in error["fix"]  # the question, in the consumer's language (fr)
    assert stored(db) == 0


def test_a_failed_pre_check_refuses_with_the_reason_and_what_to_do_first(client, db):
    answers = {**CASE["answers"], "contacted_trader": False}
    resp = client.post("/api/v1/cases", json={**CASE, "answers": answers})
    assert resp.status_code == 422
    body = resp.get_json()
    validate("Problem", body)
    assert body["type"] == "/problems/not-admissible"
    [refusal] = body["refusals"]
    assert refusal["agency"] == "ombudsman-telecom" and refusal["check"] == "contacted_trader"
    assert refusal["reason"].startswith("Vous avez répondu non")
    assert "lettre type" in refusal["advice"]
    assert stored(db) == 0


def test_the_telecom_ombudsmans_year_counts_from_the_complaint_to_the_operator(client, db):
    old_incident = {**CASE, "incident_date": "2025-06-01", "complaint_date": "2026-02-01"}
    assert client.post("/api/v1/cases", json=old_incident).status_code == 201
    resp = client.post("/api/v1/cases", json={**CASE, "complaint_date": "2025-06-01"})
    body = resp.get_json()
    assert resp.status_code == 422 and body["refusals"][0]["check"] == "within_one_year"
    assert "plainte" in body["refusals"][0]["reason"]
    assert "juge de paix" in body["refusals"][0]["advice"]
    unanswered = {k: v for k, v in CASE.items() if k != "complaint_date"}
    body = client.post("/api/v1/cases", json=unanswered).get_json()
    assert [e["field"] for e in body["errors"]] == ["complaint_date"]


def test_a_court_case_pending_is_a_ground_for_refusal(client, db):
    answers = {**CASE["answers"], "court_case_pending": True}
    body = client.post("/api/v1/cases", json={**CASE, "answers": answers}).get_json()
    [refusal] = body["refusals"]
    assert refusal["check"] == "court_case_pending"
    assert refusal["reason"].startswith("Ce service ne peut plus traiter")
    assert stored(db) == 0


def test_the_questions_can_be_asked_before_filing(client):
    body = client.get("/api/v1/prechecks?kind=complaint&domain=telecom.billing&lang=nl").get_json()
    checks = {q["check"]: q for q in body["questions"]}
    assert set(checks) == {"contacted_trader", "within_one_year", "court_case_pending"}
    assert checks["contacted_trader"]["question"].startswith("Heeft u eerst")
    assert checks["within_one_year"]["field"] == "complaint_date"
    assert checks["within_one_year"]["question"].startswith("Wanneer heeft u schriftelijk")
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
        json={
            **CASE,
            "domain": "ecommerce.fake_webshop",
            "answers": {**CASE["answers"], "contacted_trader": False},
        },
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


def test_the_facts_that_decide_competence_are_asked_before_the_bodies_checks(client):
    body = client.get(
        "/api/v1/prechecks?kind=complaint&domain=transport.flight_cancelled&lang=en"
    ).get_json()
    first = body["questions"][0]
    assert first["field"] == "answers.departs_from_belgium" and first["agency"] == ""
    assert first["question"] == "Did the flight depart from an airport in Belgium?"


def test_every_routing_decision_carries_its_reason_and_basis(client):
    body = client.post("/api/v1/cases", json=CASE).get_json()
    [line] = body["agencies"]
    assert line["agency"] == "ombudsman-telecom" and line["why"]
    assert "43bis" in line["basis"]
    validate("Filed", body)
    status = client.get(
        body["status_url"], headers={"Authorization": f"Bearer {body['tracking_token']}"}
    ).get_json()
    validate("CaseStatus", status)
    assert status["agencies"][0]["basis"] == line["basis"]


def test_a_referral_body_gets_a_referred_line_and_no_outbox_row(client, db):
    from hub.models import Assignment, Delivery

    phishing = {
        **CASE,
        "kind": "report",
        "domain": "scam.phishing",
        "answers": {"gave_codes_or_paid": False},
    }
    resp = client.post("/api/v1/cases", json=phishing)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    validate("Filed", body)
    [line] = body["agencies"]
    assert line["agency"] == "safeonweb" and line["referral"]["url"] == "https://safeonweb.be"
    assert "suspect@safeonweb.be" in line["referral"]["what"]
    assert body["status"] == "referred"
    with db.session(read_only=True) as s:
        [assignment] = s.scalars(select(Assignment)).all()
        assert assignment.status == "referred" and assignment.answer_due_at is None
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    status = client.get(
        body["status_url"], headers={"Authorization": f"Bearer {body['tracking_token']}"}
    ).get_json()
    validate("CaseStatus", status)
    assert status["agencies"][0]["referral"]["url"] == "https://safeonweb.be"
    assert any(
        "outside Loket" in (e.get("message") or "")
        or "en dehors de Loket" in (e.get("message") or "")
        for e in status["timeline"]
    )


def test_the_postcode_question_is_listed_until_the_postcode_is_given(client):
    url = "/api/v1/prechecks?kind=complaint&domain=water.supply&lang=fr"
    fields = [q["field"] for q in client.get(url).get_json()["questions"]]
    assert fields == ["consumer.address.postcode"]
    assert client.get(url + "&postcode=1000").get_json()["questions"] == []


def test_a_regional_case_asks_the_postcode_and_goes_to_the_regions_body(client):
    meter = {**CASE, "domain": "energy.budget_meter"}
    body = client.post("/api/v1/cases", json=meter).get_json()
    assert [e["field"] for e in body["errors"]] == ["consumer.address.postcode"]
    consumer = {**CASE["consumer"], "address": {"postcode": "5000", "city": "Namur"}}
    body = client.post("/api/v1/cases", json={**meter, "consumer": consumer}).get_json()
    assert [a["agency"] for a in body["agencies"]] == ["cwape"]
    assert (
        "décret wallon" in body["agencies"][0]["basis"].lower()
        or "Walloon" in (body["agencies"][0]["basis"])
    )
