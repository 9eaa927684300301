"""Who may do what in the back office: every route of the `admin` blueprint, enumerated from the
app's URL map, is tried as an anonymous visitor, agency A's staff, agency B's staff and an
operator, and must answer what EXPECTED declares for that role. A route nobody classified fails
the test by name: a new back-office page must say who may use it before it ships.

Agency A (the telecom ombudsman) and agency B (consumer mediation) each have a case; B's staff
never see or change A's line, and A's case is to them what an unknown reference is (the same 404
page). Signing out ends the session: a copy of the cookie taken before gets the sign-in page."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from hub import accounts
from hub.models import StatusEvent
from hub.reference import new_reference
from scheduler.worker import Worker
from tests.support.backoffice import PASSWORD, sign_in, token_of
from tests.support.cases import MEDIATION, MEDIATION_CASE, TELECOM, assignment, file
from tests.support.frontdesk import PDF

ROLES = ("anonymous", "agency_a", "agency_b", "operator", "inspector")

# What a role gets: the sign-in page (redirect), a refusal (403), "no such thing" (404), or
# through (served, or redirected elsewhere than the sign-in page, or a form error).
SIGNIN, DENIED, HIDDEN, ALLOWED = "signin", "403", "404", "allowed"
OPERATORS = {
    "anonymous": SIGNIN,
    "agency_a": DENIED,
    "agency_b": DENIED,
    "operator": ALLOWED,
    "inspector": DENIED,
}
INSPECTORS = {**OPERATORS, "operator": DENIED, "inspector": ALLOWED}
STAFF = {
    "anonymous": SIGNIN,
    "agency_a": ALLOWED,
    "agency_b": ALLOWED,
    "operator": DENIED,
    "inspector": DENIED,
}
# A's case, as each role meets it
A_CASE = {
    "anonymous": SIGNIN,
    "agency_a": ALLOWED,
    "agency_b": HIDDEN,
    "operator": DENIED,
    "inspector": DENIED,
}
SIGNED_IN = dict.fromkeys(ROLES, ALLOWED) | {"anonymous": SIGNIN}
PUBLIC = dict.fromkeys(ROLES, ALLOWED)

# (rule, method) -> role -> outcome. Every admin route must be here.
EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    ("/admin/", "GET"): SIGNED_IN,
    ("/admin/login", "GET"): PUBLIC,
    ("/admin/login", "POST"): PUBLIC,  # a wrong password: the form again (401)
    ("/admin/static/<path:filename>", "GET"): PUBLIC,
    ("/admin/flows", "GET"): OPERATORS,
    ("/admin/attention", "GET"): OPERATORS,
    ("/admin/dead-letters", "GET"): OPERATORS,
    ("/admin/dead-letters/resend", "POST"): OPERATORS,
    ("/admin/cases", "GET"): OPERATORS,
    ("/admin/cases/<reference>", "GET"): OPERATORS,
    ("/admin/cases/<reference>/refer", "POST"): OPERATORS,
    ("/admin/agencies/<agency_id>/pause", "POST"): OPERATORS,
    ("/admin/agencies/<agency_id>/resume", "POST"): OPERATORS,
    ("/admin/agencies/<agency_id>/check", "POST"): OPERATORS,
    # tried with an id that does not exist: an operator passes the access check, then 404
    ("/admin/problems/<int:problem_id>/resolve", "POST"): {**OPERATORS, "operator": HIDDEN},
    ("/admin/unmatched/<int:update_id>/resolve", "POST"): {**OPERATORS, "operator": HIDDEN},
    ("/admin/agency", "GET"): STAFF,
    ("/admin/agency/cases/<reference>", "GET"): A_CASE,
    ("/admin/agency/cases/<reference>", "POST"): A_CASE,
    ("/admin/agency/cases/<reference>/acknowledge", "POST"): A_CASE,
    ("/admin/agency/cases/<reference>/close", "POST"): A_CASE,
    ("/admin/agency/cases/<reference>/documents", "POST"): A_CASE,
    # a document id that does not exist: A passes the access check, then 404
    ("/admin/agency/cases/<reference>/documents/<int:document_id>", "GET"): {
        **A_CASE,
        "agency_a": HIDDEN,
    },
    ("/admin/agency/cases/<reference>/information", "POST"): A_CASE,
    ("/admin/agency/cases/<reference>/message", "POST"): A_CASE,
    ("/admin/agency/cases/<reference>/not-competent", "POST"): A_CASE,
    ("/admin/agency/export.csv", "GET"): STAFF,
    ("/admin/agency/ratings", "GET"): STAFF,
    # market signals: inspectors only (an unknown trader key: through the check, then 404)
    ("/admin/signals", "GET"): INSPECTORS,
    ("/admin/signals/traders.csv", "GET"): INSPECTORS,
    ("/admin/signals/cases/<reference>", "GET"): INSPECTORS,
    ("/admin/signals/traders/<path:key>", "GET"): {**INSPECTORS, "inspector": HIDDEN},
    ("/admin/deliveries/<int:delivery_id>/retry-now", "POST"): {**OPERATORS, "operator": HIDDEN},
    ("/admin/privacy", "GET"): OPERATORS,
    ("/admin/privacy/<reference>/erase", "POST"): OPERATORS,
    ("/admin/users", "GET"): OPERATORS,
    ("/admin/users/<name>/reset", "POST"): OPERATORS,
    ("/admin/security", "GET"): SIGNED_IN,
    ("/admin/security", "POST"): SIGNED_IN,
    ("/admin/language/<lang>", "GET"): PUBLIC,
    # before signing in: asking for a reset link, and using one (a wrong one: the form again)
    ("/admin/forgot", "GET"): PUBLIC,
    ("/admin/forgot", "POST"): PUBLIC,
    ("/admin/reset/<token>", "GET"): PUBLIC,
    ("/admin/reset/<token>", "POST"): PUBLIC,
    # tried last, by each role; every role lands on the sign-in page (the session ended:
    # test_a_cookie_copied_before_signing_out_gets_the_sign_in_page)
    ("/admin/logout", "POST"): dict.fromkeys(ROLES, SIGNIN),
}


def _routes(app) -> list[tuple[str, str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".", 1)[0] != "admin":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method, rule.endpoint))
    return sorted(out)


def test_every_back_office_route_has_a_declared_expectation_for_every_role(client):
    routes = {(rule, method) for rule, method, _ in _routes(client.application)}
    unclassified = sorted(routes - set(EXPECTED))
    assert not unclassified, (
        "back-office routes with no declared expectation in tests/test_backoffice_matrix.py "
        f"EXPECTED (say what anonymous, agency A, agency B and operators get): {unclassified}"
    )
    gone = sorted(set(EXPECTED) - routes)
    assert not gone, f"EXPECTED names routes the app no longer has: {gone}"
    assert all(set(v) == set(ROLES) for v in EXPECTED.values())


@pytest.fixture
def world(hub, client):
    """A's case (telecom) and B's case (mediation), both delivered; one account per role."""
    a_case = file(hub).reference
    b_case = file(hub, **MEDIATION_CASE).reference
    Worker(hub, "w").dispatch_once()
    now = hub.clock.now()
    accounts.add(hub.db, "alice", "agency", TELECOM, now, PASSWORD)
    accounts.add(hub.db, "bob", "agency", MEDIATION, now, PASSWORD)
    accounts.add(hub.db, "olga", "operator", None, now, PASSWORD)
    accounts.add(hub.db, "ines", "inspector", None, now, PASSWORD)
    return {"a_case": a_case, "b_case": b_case}


ACCOUNT = {"agency_a": "alice", "agency_b": "bob", "operator": "olga", "inspector": "ines"}


def _url(rule: str, world: dict) -> str:
    values = {
        "reference": world["a_case"],
        "agency_id": TELECOM,
        "problem_id": "999999",
        "update_id": "999999",
        "filename": "admin.css",
        "delivery_id": "999999",
        "document_id": "999999",
        "key": "nobody-known",
        "name": "alice",
        "lang": "fr",
        "token": "not-a-reset-token",
    }

    def fill(m: re.Match) -> str:
        name = m.group(1).split(":")[-1]
        assert name in values, f"no test value for the URL part <{m.group(1)}> of {rule}"
        return values[name]

    return re.sub(r"<([^>]+)>", fill, rule)


def _form(hub, rule: str) -> dict:
    if rule == "/admin/agency/cases/<reference>":
        code = next(c for c, r in hub.directory[TELECOM].statuses.items() if r.status != "received")
        return {"status": code, "message": "moved by the matrix"}
    if rule == "/admin/agency/cases/<reference>/acknowledge":
        return {"agency_reference": "MATRIX-1"}
    if rule == "/admin/agency/cases/<reference>/message":
        return {"text": "written by the matrix"}
    if rule == "/admin/agency/cases/<reference>/documents":
        return {"file": (io.BytesIO(PDF), "matrix.pdf"), "text": "sent by the matrix"}
    if rule == "/admin/login":
        return {"name": "nobody", "password": "wrong"}
    return {"reason": "matrix"}


def _outcome(answer) -> str:
    assert answer.status_code < 500, answer.get_data(as_text=True)[:500]
    if answer.status_code == 302 and "/admin/login" in answer.headers["Location"]:
        return SIGNIN
    if answer.status_code == 403:
        return DENIED
    if answer.status_code == 404:
        return HIDDEN
    return ALLOWED


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_what_the_matrix_declares_on_every_back_office_route(
    hub, client, world, role
):
    app = client.application
    visitor = app.test_client()
    if role != "anonymous":
        sign_in(visitor, ACCOUNT[role])
    token = token_of(visitor, "/admin/login")
    routes = _routes(app)
    logout = [r for r in routes if r[0] == "/admin/logout"]
    got, wanted = {}, {}
    for rule, method, _endpoint in [r for r in routes if r[0] != "/admin/logout"] + logout:
        url = _url(rule, world)
        if method == "POST":
            answer = visitor.post(url, data={"csrf_token": token, **_form(hub, rule)})
        else:
            answer = visitor.get(url)
        got[(rule, method)] = _outcome(answer)
        wanted[(rule, method)] = EXPECTED[(rule, method)][role]
        if rule == "/admin/agency/cases/<reference>" and role == "agency_a" and method == "GET":
            assert world["a_case"] in answer.get_data(as_text=True)
    mismatches = {k: (got[k], wanted[k]) for k in got if got[k] != wanted[k]}
    assert not mismatches, f"{role}: (got, declared) per route: {mismatches}"


def test_agency_b_never_sees_nor_changes_a_line_of_agency_a_not_even_its_existence(
    hub, client, world
):
    bob = client.application.test_client()
    sign_in(bob, "bob")
    own = bob.get("/admin/agency").get_data(as_text=True)
    assert world["b_case"] in own and world["a_case"] not in own
    a_page = f"/admin/agency/cases/{world['a_case']}"
    foreign = bob.get(a_page)
    nobody = next(r for r in iter(new_reference, None) if r not in world.values())
    unknown = bob.get(f"/admin/agency/cases/{nobody}")  # well-formed, but no case has it
    assert foreign.status_code == unknown.status_code == 404
    # the same answer but for the reference it repeats: nothing tells them apart
    assert foreign.get_data(as_text=True).replace(world["a_case"], nobody) == (
        unknown.get_data(as_text=True)
    )
    before = assignment(hub, world["a_case"]).status
    with hub.db.session(read_only=True) as s:
        events = len(s.scalars(select(StatusEvent.id)).all())
    for code in hub.directory[TELECOM].statuses:  # A's codes and...
        answer = bob.post(
            a_page, data={"csrf_token": token_of(bob, "/admin/agency"), "status": code}
        )
        assert answer.status_code == 404
    for code in hub.directory[MEDIATION].statuses:  # ...B's own codes, on A's case
        answer = bob.post(
            a_page, data={"csrf_token": token_of(bob, "/admin/agency"), "status": code}
        )
        assert answer.status_code == 404
    assert assignment(hub, world["a_case"]).status == before
    with hub.db.session(read_only=True) as s:
        assert len(s.scalars(select(StatusEvent.id)).all()) == events
    assert world["a_case"] not in bob.get("/admin/agency?closed=1").get_data(as_text=True)


@pytest.mark.parametrize("role", ("agency_a", "agency_b", "operator"))
def test_a_cookie_copied_before_signing_out_gets_the_sign_in_page(hub, client, world, role):
    app = client.application
    browser = app.test_client()
    sign_in(browser, ACCOUNT[role])
    home = {"agency_a": "/admin/agency", "agency_b": "/admin/agency", "operator": "/admin/flows"}
    assert browser.get(home[role]).status_code == 200
    name = app.config["SESSION_COOKIE_NAME"]
    copied = browser.get_cookie(name).value
    out = browser.post("/admin/logout", data={"csrf_token": token_of(browser, home[role])})
    assert out.status_code == 302 and "/admin/login" in out.headers["Location"]
    replay = app.test_client()
    replay.set_cookie(name, copied)
    for path in (home[role], "/admin/"):
        answer = replay.get(path)
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
