"""The agency API: an agency pulls its cases and pushes its answers itself, with OAuth 2.0
client credentials, and sees only its own assignments; what it does goes through the inbound
path polled updates take (idempotent, ordered, on the evidence log)."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import agencyclients
from hub.models import AgencyClient, AgencyToken, Assignment, AuditEntry, Case
from loket.cli import main as cli
from scheduler.worker import Worker
from tests.support.agencyside import (
    OTHER,
    WORKSPACE,
    bearer,
    file_water_case,
    get_token,
)
from tests.support.cases import assignment, file, timeline
from tests.support.frontdesk import PDF, text
from tests.support.openapi import validate

API = "/api/v1/agency"
UNKNOWN = "LK-2222-2222"


@pytest.fixture
def agency_a(hub):
    return agencyclients.create(hub, WORKSPACE, by="operator:test")


@pytest.fixture
def agency_b(hub):
    return agencyclients.create(hub, OTHER, by="operator:test")


@pytest.fixture
def app_client(client):
    """The consumer: a second visitor of the same app (own cookies)."""
    return client.application.test_client()


def _problem(answer, status: int) -> dict:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == "application/problem+json"
    body = answer.get_json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    return body


def _call(client, method: str, path: str, headers: dict, body):
    if method == "GET":
        return client.get(path, headers=headers)
    if isinstance(body, dict) and "file" in body:
        data = {k: (BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in body.items()}
        return client.post(path, headers=headers, data=data, content_type="multipart/form-data")
    return client.post(path, headers=headers, json=body)


def _endpoints(reference: str, document_id: int):
    """Every agency-API endpoint but the token endpoint, with a body the owner may send."""
    case = f"{API}/assignments/{reference}"
    return [
        ("GET", f"{API}/assignments", None),
        ("GET", f"{API}/bodies", None),
        ("GET", case, None),
        ("POST", f"{case}/acknowledge", {"agency_reference": "MW-2026-0001"}),
        ("POST", f"{case}/status", {"code": "INSTRUCTION"}),
        ("POST", f"{case}/messages", {"text": "Nous examinons votre dossier."}),
        (
            "POST",
            f"{case}/information-requests",
            {"reason": "disputed_bill", "text": "Merci de joindre la facture."},
        ),
        ("GET", f"{case}/documents", None),
        ("GET", f"{case}/documents/{document_id}", None),
        ("POST", f"{case}/documents", {"file": (PDF, "decision.pdf"), "text": "Notre décision"}),
        ("POST", f"{case}/not-competent", {"message": "Pas de notre ressort."}),
    ]


def _delivered_case(hub, client, token: str) -> tuple[str, int]:
    """A water case delivered to the workspace body, acknowledged, with one document."""
    reference = file_water_case(hub).reference
    Worker(hub, "w").dispatch_once()
    acked = client.post(
        f"{API}/assignments/{reference}/acknowledge",
        json={"agency_reference": "MW-2026-0001"},
        headers=bearer(token),
    )
    assert acked.status_code == 200, acked.get_data(as_text=True)
    sent = client.post(
        f"{API}/assignments/{reference}/documents",
        data={"file": (BytesIO(PDF), "accuse.pdf")},
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)
    listed = client.get(f"{API}/assignments/{reference}/documents", headers=bearer(token))
    return reference, listed.get_json()["items"][0]["id"]


def _state(hub, reference):
    a = assignment(hub, reference)
    return a.status, a.agency_status, a.agency_reference, len(timeline(hub, reference))


def test_authorisation_matrix_over_every_endpoint(hub, client, clock, agency_a, agency_b):
    token_a = get_token(client, agency_a)
    token_b = get_token(client, agency_b)
    reference, document_id = _delivered_case(hub, client, token_a)
    b_own = file(hub).reference  # a telecom case: agency B's own
    Worker(hub, "w").dispatch_once()
    endpoints = _endpoints(reference, document_id)

    # anonymous and forged: 401, with the header RFC 6750 asks for, and nothing changes
    before = _state(hub, reference)
    for method, path, body in endpoints:
        for headers in ({}, bearer("forged-" + token_a[7:]), {"Authorization": "Basic eDp5"}):
            answer = _call(client, method, path, headers, body)
            problem = _problem(answer, 401)
            assert problem["errors"][0]["field"] == "Authorization", (method, path)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert _state(hub, reference) == before

    # agency B: A's case does not exist for it, answered exactly like an unknown reference
    listed = client.get(f"{API}/assignments", headers=bearer(token_b)).get_json()
    assert [i["reference"] for i in listed["items"]] == [b_own]
    for method, path, body in endpoints[2:]:
        theirs = _call(client, method, path, bearer(token_b), body)
        unknown = _call(client, method, path.replace(reference, UNKNOWN), bearer(token_b), body)
        a, u = _problem(theirs, 404), _problem(unknown, 404)
        assert (a["type"], a["title"], a["detail"].replace(reference, UNKNOWN)) == (
            u["type"],
            u["title"],
            u["detail"],
        ), path
    assert _state(hub, reference) == before

    # agency A, the owner: every call is served (an action the line's state refuses is a 422
    # naming the field, never a 401 or 404)
    for method, path, body in endpoints:
        answer = _call(client, method, path, bearer(token_a), body)
        assert answer.status_code in (200, 422), (path, answer.get_data(as_text=True))
        if answer.status_code == 422:
            assert _problem(answer, 422)["errors"][0]["field"]

    # expired: the token is short-lived, checked against the hub's clock
    clock.advance(seconds=agencyclients.TOKEN_SECONDS + 1)
    for method, path, body in endpoints:
        problem = _problem(_call(client, method, path, bearer(token_b), body), 401)
        assert problem["error"] == "invalid_token"

    # revoked: a fresh token stops working the moment its client is revoked
    fresh = get_token(client, agency_b)
    assert client.get(f"{API}/assignments", headers=bearer(fresh)).status_code == 200
    agencyclients.revoke(hub, OTHER, by="operator:test")
    for method, path, body in endpoints:
        _problem(_call(client, method, path, bearer(fresh), body), 401)
    revoked_secret = client.post(
        f"{API}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": agency_b.client_id,
            "client_secret": agency_b.client_secret,
        },
    )
    assert _problem(revoked_secret, 401)["error"] == "invalid_client"


def test_secrets_and_tokens_are_stored_hashed_and_rotation_overlaps(hub, client, clock):
    first = agencyclients.create(hub, WORKSPACE, by="operator:test")
    token = get_token(client, first)
    with hub.db.session(read_only=True) as s:
        stored = s.scalars(select(AgencyClient)).one()
        tokens = s.scalars(select(AgencyToken)).all()
    assert first.client_secret not in (stored.secret_hash, stored.client_id)
    assert stored.secret_hash == agencyclients.digest(first.client_secret)
    assert [t.token_hash for t in tokens] == [agencyclients.digest(token)]

    second = agencyclients.rotate(hub, WORKSPACE, by="operator:test")
    assert second.client_id == first.client_id and second.client_secret != first.client_secret
    assert get_token(client, first) and get_token(client, second)  # the overlap: both work
    clock.advance(hours=25)
    old = client.post(
        f"{API}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": first.client_id,
            "client_secret": first.client_secret,
        },
    )
    problem = _problem(old, 401)
    assert problem["error"] == "invalid_client" and problem["errors"][0]["field"] == "client_id"
    assert get_token(client, second)
    wrong_grant = client.post(
        f"{API}/oauth/token",
        data={
            "grant_type": "password",
            "client_id": second.client_id,
            "client_secret": second.client_secret,
        },
    )
    assert _problem(wrong_grant, 400)["errors"][0]["field"] == "grant_type"
    with hub.db.session(read_only=True) as s:
        actions = [
            a
            for (a,) in s.execute(
                select(AuditEntry.action).where(AuditEntry.agency_id == WORKSPACE)
            )
        ]
    assert actions[:2] == ["agency_client.created", "agency_client.rotated"]


def test_the_cli_prints_a_secret_once_and_rotates_and_revokes(hub, client, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    runner = CliRunner()
    made = runner.invoke(cli, ["agency-client", "create", WORKSPACE, "--operator", "olga"])
    assert made.exit_code == 0, made.output
    client_id = re.search(r"client_id\s+(\S+)", made.output).group(1)
    secret = re.search(r"client_secret\s+(\S+)", made.output).group(1)
    creds = agencyclients.Credentials(WORKSPACE, client_id, secret)
    assert get_token(client, creds)
    again = runner.invoke(cli, ["agency-client", "create", WORKSPACE])
    assert again.exit_code == 1 and "agency-client rotate" in again.output
    rotated = runner.invoke(cli, ["agency-client", "rotate", WORKSPACE, "--overlap-hours", "0"])
    assert rotated.exit_code == 0 and secret not in rotated.output
    revoked = runner.invoke(cli, ["agency-client", "revoke", WORKSPACE])
    assert revoked.exit_code == 0 and client_id in revoked.output
    unknown = runner.invoke(cli, ["agency-client", "create", "no-such-body"])
    assert unknown.exit_code == 1 and "no agency 'no-such-body'" in unknown.output


def test_bad_input_is_a_problem_naming_the_field_and_nothing_changes(hub, client, agency_a):
    token = get_token(client, agency_a)
    reference = file_water_case(hub).reference
    Worker(hub, "w").dispatch_once()
    case = f"{API}/assignments/{reference}"
    before = _state(hub, reference)
    cases = [
        (f"{case}/acknowledge", {"agency_reference": "X", "colour": "red"}, "colour"),
        (f"{case}/acknowledge", {}, "agency_reference"),
        (f"{case}/acknowledge", {"agency_reference": 42}, "agency_reference"),
        (f"{case}/status", {"code": "NOPE"}, "code"),
        (f"{case}/messages", {"text": "Bonjour"}, "agency_reference"),  # not acknowledged yet
        (f"{case}/information-requests", {"reason": "horoscope"}, "reason"),
        (f"{case}/not-competent", {"refer_to": "nobody"}, "refer_to"),
        (f"{case}/status", {"code": "INSTRUCTION", "occurred_at": "yesterday"}, "occurred_at"),
    ]
    for path, body, field in cases:
        problem = _problem(client.post(path, json=body, headers=bearer(token)), 422)
        assert field in [e["field"] for e in problem["errors"]], (path, body, problem)
        assert all(e["fix"] for e in problem["errors"])
    not_json = client.post(f"{case}/status", data="code=X", headers=bearer(token))
    _problem(not_json, 415)
    paged = client.get(f"{API}/assignments?limit=0", headers=bearer(token))
    assert _problem(paged, 422)["errors"][0]["field"] == "limit"
    cursor = client.get(f"{API}/assignments?cursor=forged", headers=bearer(token))
    assert _problem(cursor, 422)["errors"][0]["field"] == "cursor"
    assert _state(hub, reference) == before


def test_listing_pages_with_a_cursor_and_filters(hub, client, clock, agency_a):
    token = get_token(client, agency_a)
    references = []
    for _ in range(5):
        references.append(file_water_case(hub).reference)
        clock.advance(seconds=10)
    Worker(hub, "w").dispatch_once()
    seen, cursor = [], None
    while True:
        url = f"{API}/assignments?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=bearer(token)).get_json()
        seen += [i["reference"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(references) and len(seen) == 5
    changed_at = clock.advance(seconds=60)
    client.post(
        f"{API}/assignments/{references[2]}/acknowledge",
        json={"agency_reference": "MW-7"},
        headers=bearer(token),
    )
    since = changed_at.isoformat().replace("+00:00", "Z")
    changed = client.get(
        f"{API}/assignments", query_string={"changed_since": since}, headers=bearer(token)
    ).get_json()
    assert [i["reference"] for i in changed["items"]] == [references[2]]
    received = client.get(f"{API}/assignments?status=received", headers=bearer(token)).get_json()
    assert [(i["reference"], i["agency_reference"]) for i in received["items"]] == [
        (references[2], "MW-7")
    ]
    assert client.get(f"{API}/assignments?kind=report", headers=bearer(token)).get_json() == {
        "items": [],
        "next_cursor": None,
    }


def test_the_whole_story_through_the_agency_api_only(hub, client, app_client, agency_a):
    """Delivered to the workspace body; it acknowledges, asks for the disputed bill; the
    consumer reads that in French and answers with a PDF; the agency downloads it and closes
    the case; the consumer's tracking page shows each step. Repeating a call changes nothing."""
    token = get_token(client, agency_a)
    filed = file_water_case(hub)
    reference = filed.reference
    Worker(hub, "w").dispatch_once()
    case = f"{API}/assignments/{reference}"
    new = client.get(case, headers=bearer(token)).get_json()
    validate("AgencyAssignment", new)
    validate("AgencyAssignmentList", client.get(f"{API}/assignments", headers=bearer(token)).json)
    assert (new["status"], new["agency_reference"], new["language"]) == ("sent", None, "fr")
    assert new["case"]["consumer"]["name"] == "Julie Lambert" and new["case"]["amount"] == 1240

    ack = {"agency_reference": "MW-2026-0042", "update_id": "ack-1"}
    first = client.post(f"{case}/acknowledge", json=ack, headers=bearer(token)).get_json()
    repeat = client.post(f"{case}/acknowledge", json=ack, headers=bearer(token)).get_json()
    validate("AgencyActionResult", first)
    assert (first["outcome"], first["status"], first["agency_reference"]) == (
        "applied",
        "received",
        "MW-2026-0042",
    )
    assert repeat["outcome"] == "duplicate"
    ask = {
        "reason": "disputed_bill",
        "text": "Joignez aussi le relevé du compteur.",
        "update_id": "q-1",
    }
    asked = client.post(f"{case}/information-requests", json=ask, headers=bearer(token))
    assert asked.get_json()["status"] == "waiting_for_consumer"

    # the consumer, on the tracking page in French
    app_client.get(f"/fr/track/{reference}?k={filed.token}")
    page = text(app_client.get(f"/fr/track/{reference}"))
    assert "MW-2026-0042" in page
    assert "une copie de la facture contestée" in page
    assert "Joignez aussi le relevé du compteur." in page
    action = re.search(r'action="(/fr/track/[^"]+/reply/\d+)(?:#[\w-]+)?"', page).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    replied = app_client.post(
        action,
        data={
            "csrf_token": csrf,
            "text": "Voici la facture.",
            "files": [(BytesIO(PDF), "facture.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert replied.status_code == 303
    Worker(hub, "w").dispatch_once()  # the reply lands in the workspace body's inbox

    documents = client.get(f"{case}/documents", headers=bearer(token)).get_json()["items"]
    for document in documents:
        validate("AgencyDocument", document)
    [bill] = [d for d in documents if d["from"] == "consumer"]
    assert bill["filename"] == "facture.pdf"
    download = client.get(bill["url"], headers=bearer(token))
    assert download.status_code == 200 and download.data == PDF
    assert "attachment" in download.headers["Content-Disposition"]
    seen = client.get(case, headers=bearer(token)).get_json()
    assert [m["text"] for m in seen["messages"] if m["direction"] == "to_agency"] == [
        "Voici la facture."
    ]

    closed = client.post(
        f"{case}/status",
        json={"code": "CLOTUREE_FONDEE", "message": "La SWDE annule la facture."},
        headers=bearer(token),
    ).get_json()
    assert (closed["status"], closed["outcome"]) == ("resolved", "applied")
    final = text(app_client.get(f"/fr/track/{reference}"))
    for step in ("MW-2026-0042", "une copie de la facture contestée", "La SWDE annule la facture."):
        assert step in final, step
    assert 'data-status="resolved"' in final
    with hub.db.session(read_only=True) as s:
        actions = [
            a
            for (a,) in s.execute(
                select(AuditEntry.action)
                .where(AuditEntry.agency_id == WORKSPACE)
                .order_by(AuditEntry.id)
            )
        ]
    for expected in (
        "agency.acknowledged",
        "agency.information_requested",
        "agency.status",
        "status.applied",
    ):
        assert expected in actions
    assert actions.count("agency.acknowledged") == 2  # the repeat is on the log as a duplicate
    assert assignment(hub, reference).agency_reference == "MW-2026-0042"


def test_not_competent_refers_the_case_to_the_body_the_agency_names(hub, client, agency_a):
    token = get_token(client, agency_a)
    reference = file_water_case(hub).reference
    Worker(hub, "w").dispatch_once()
    case = f"{API}/assignments/{reference}"
    client.post(f"{case}/acknowledge", json={"agency_reference": "MW-9"}, headers=bearer(token))
    answer = client.post(
        f"{case}/not-competent",
        json={"refer_to": "consumer-mediation", "message": "Litige commercial."},
        headers=bearer(token),
    )
    assert answer.get_json()["status"] == "not_competent"
    with hub.db.session(read_only=True) as s:
        agencies = s.scalars(
            select(Assignment.agency_id)
            .join(Case)
            .where(Case.reference == reference)
            .order_by(Assignment.id)
        ).all()
    assert agencies == [WORKSPACE, "consumer-mediation"]
    # the first body still sees its line, now referred on
    assert client.get(case, headers=bearer(token)).get_json()["status"] == "referred"


def test_a_client_past_its_call_limit_is_told_when_to_come_back_and_changes_nothing(
    hub, client, agency_a, agency_b
):
    """A runaway integration: past LOKET_AGENCY_API_LIMIT its calls answer 429 with
    Retry-After and change nothing; another agency's client still gets through, and a forged
    token is refused as before without using up anyone's calls."""
    from hub import ratelimits

    client.application.config[ratelimits.AGENCY_API_LIMIT] = "3 per minute"
    token, other = get_token(client, agency_a), get_token(client, agency_b)
    reference = file_water_case(hub).reference
    Worker(hub, "w").dispatch_once()
    for _ in range(3):
        assert client.get(f"{API}/bodies", headers=bearer("forged")).status_code == 401
    for _ in range(3):
        assert client.get(f"{API}/assignments", headers=bearer(token)).status_code == 200
    before = _state(hub, reference)
    refused = client.post(
        f"{API}/assignments/{reference}/acknowledge",
        json={"agency_reference": "MW-2026-0001"},
        headers=bearer(token),
    )
    problem = _problem(refused, 429)
    assert problem["type"] == "/problems/too-many-requests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Nothing was changed" in problem["detail"] and "cursor" in problem["detail"]
    validate("Problem", problem)
    assert _state(hub, reference) == before
    assert client.get(f"{API}/bodies", headers=bearer(other)).status_code == 200


def test_token_requests_past_the_limit_are_refused_per_address(client, agency_a):
    """A client that asks for a token on every call (or guesses secrets) is stopped at
    LOKET_AGENCY_TOKEN_LIMIT per address, with the advice to keep its token."""
    from hub import ratelimits
    from tests.support.agencyside import basic

    client.application.config[ratelimits.AGENCY_TOKEN_LIMIT] = "2 per hour"
    get_token(client, agency_a)
    wrong = client.post(
        f"{API}/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(agency_a.client_id, "not-the-secret"),
    )
    assert _problem(wrong, 401)["error"] == "invalid_client"
    refused = client.post(
        f"{API}/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(agency_a.client_id, agency_a.client_secret),
    )
    problem = _problem(refused, 429)
    assert "keep it" in problem["detail"] and int(refused.headers["Retry-After"]) >= 1
    assert "access_token" not in problem
