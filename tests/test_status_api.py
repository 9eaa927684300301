"""GET /api/v1/cases/{reference}: one status, the timeline and each agency's line, for the token holder."""

from tests.support.cases import CASE
from tests.support.openapi import validate


def file(client, **changes):
    resp = client.post("/api/v1/cases", json={**CASE, **changes})
    assert resp.status_code == 201
    return resp.get_json()


def test_the_token_holder_sees_status_timeline_and_each_agency(client):
    filed = file(client)
    resp = client.get(
        f"/api/v1/cases/{filed['reference']}",
        headers={"Authorization": f"Bearer {filed['tracking_token']}"},
    )
    assert resp.status_code == 200
    body = resp.get_json()
    validate("CaseStatus", body)
    assert body["status"] == "queued"
    [line] = body["agencies"]
    assert line["agency"] == "ombudsman-telecom" and line["status"] == "queued"
    assert line["agency_reference"] is None
    assert line["answer_by"] is not None and body["expected_answer_by"] == line["answer_by"]
    assert [e["to"] for e in body["timeline"]] == ["queued"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_typed_reference_in_lower_case_without_dashes_works(client):
    filed = file(client)
    typed = filed["reference"].lower().replace("-", "")
    resp = client.get(
        f"/api/v1/cases/{typed}", headers={"Authorization": f"Bearer {filed['tracking_token']}"}
    )
    assert resp.status_code == 200


def test_wrong_or_missing_token_answers_exactly_like_an_unknown_reference(client):
    filed = file(client)
    other = file(client)
    url = f"/api/v1/cases/{filed['reference']}"
    answers = [
        client.get(url),
        client.get(url, headers={"Authorization": "Bearer wrong"}),
        client.get(url, headers={"Authorization": f"Bearer {other['tracking_token']}"}),
        client.get(url, headers={"Authorization": filed["tracking_token"]}),  # no scheme
        client.get(
            "/api/v1/cases/LK-0000-0000",
            headers={"Authorization": f"Bearer {filed['tracking_token']}"},
        ),
        client.get(
            "/api/v1/cases/not-a-reference",
            headers={"Authorization": f"Bearer {filed['tracking_token']}"},
        ),
    ]
    bodies = []
    for resp in answers:
        assert resp.status_code == 404
        assert resp.mimetype == "application/problem+json"
        body = resp.get_json()
        body.pop("instance")
        bodies.append(body)
    assert all(b == bodies[0] for b in bodies)
    assert filed["reference"] not in str(bodies[0])
