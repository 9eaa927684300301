"""The back office: operators fix what is stuck without a shell; agency staff see only their own
cases and move them in their own status codes."""

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import accounts, control, outbox
from hub.frontdesk import limiter
from hub.models import AuditEntry
from loket.cli import main as cli
from scheduler.worker import Worker
from tests.support.backoffice import PASSWORD, post, sign_in, token_of
from tests.support.cases import (
    MEDIATION,
    MEDIATION_CASE,
    TELECOM,
    assignment,
    fault,
    file,
    timeline,
)


@pytest.fixture
def operator(hub, client):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    return client


@pytest.fixture
def telecom_staff(hub, client):
    accounts.add(hub.db, "tom", "agency", TELECOM, hub.clock.now(), PASSWORD)
    sign_in(client, "tom")
    return client


def test_every_page_needs_a_signed_in_account(client, hub):
    for path in ("/admin/", "/admin/flows", "/admin/dead-letters", "/admin/agency"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
    token = token_of(client, "/admin/login")
    wrong = client.post(
        "/admin/login", data={"csrf_token": token, "name": "nobody", "password": "x"}
    )
    assert wrong.status_code == 401 and "Unknown name or wrong password" in wrong.get_data(
        as_text=True
    )


def test_failed_sign_ins_from_one_address_are_limited(client, hub):
    client.application.config["LOKET_SIGNIN_LIMIT"] = "3 per hour"
    token = token_of(client, "/admin/login")
    codes = [
        client.post(
            "/admin/login", data={"csrf_token": token, "name": "olga", "password": "guess"}
        ).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    refused = client.post(
        "/admin/login", data={"csrf_token": token, "name": "olga", "password": "guess"}
    )
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 3601  # the oldest failure ages out
    limiter.reset()  # the counters live in this process; leave none for the next test


def test_a_disabled_account_is_signed_out_at_its_next_request(hub, operator):
    assert operator.get("/admin/flows").status_code == 200
    accounts.disable(hub.db, "olga")
    assert operator.get("/admin/flows").status_code == 302


def test_a_post_without_the_csrf_token_is_refused(hub, operator):
    answer = operator.post(f"/admin/agencies/{TELECOM}/pause", data={"reason": "x"})
    assert answer.status_code in (400, 403)
    assert control.states(hub.db).get(TELECOM) is None or not control.states(hub.db)[TELECOM].paused


def test_flows_show_each_agency_and_a_pause_from_the_console_holds_its_cases(hub, operator):
    page = operator.get("/admin/flows").get_data(as_text=True)
    for agency_id in hub.directory.ids():
        assert agency_id in page
    # what each configured adapter does, as the worker and `loket agencies list` read it
    caps = ", ".join(sorted(hub.directory.capabilities(TELECOM) or ()))
    assert "poll" in caps and caps in page
    answer = post(operator, f"/admin/agencies/{TELECOM}/pause", {"reason": "maintenance"})
    assert answer.status_code == 302
    reference = file(hub).reference
    assert Worker(hub, "w").dispatch_once().delivered == 0
    assert assignment(hub, reference).status == "queued"
    post(operator, f"/admin/agencies/{TELECOM}/resume", {})
    assert Worker(hub, "w").dispatch_once().delivered == 1
    with hub.db.session(read_only=True) as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert "agency.paused" in actions and "agency.resumed" in actions


def test_an_operator_resends_a_dead_letter_from_the_console_and_it_is_delivered_once(
    hub, sims, operator
):
    reference = file(hub).reference
    fault(sims, TELECOM, mode="error", status=422, count=1)
    Worker(hub, "w").dispatch_once()
    [letter] = outbox.dead_letters(hub.db)
    page = operator.get("/admin/dead-letters").get_data(as_text=True)
    assert reference in page and "HTTP 422" in page
    answer = post(
        operator,
        "/admin/dead-letters/resend",
        {"delivery_id": str(letter.delivery_id)},
        page="/admin/dead-letters",
    )
    assert answer.status_code == 302
    assert "1 resent" in operator.get("/admin/dead-letters").get_data(as_text=True)
    assert Worker(hub, "w").dispatch_once().delivered == 1
    assert outbox.dead_letters(hub.db) == [] and len(sims.system(TELECOM).cases) == 1


def test_needs_attention_lists_an_undeliverable_case_and_the_case_page_refers_it(
    hub, sims, operator
):
    reference = file(hub).reference
    fault(sims, TELECOM, mode="error", status=422, count=1)
    Worker(hub, "w").dispatch_once()
    attention = operator.get("/admin/attention").get_data(as_text=True)
    assert reference in attention
    page = operator.get(f"/admin/cases/{reference}").get_data(as_text=True)
    assert TELECOM in page and "intact" in page  # the evidence chain verifies
    answer = post(
        operator,
        f"/admin/cases/{reference}/refer",
        {"from_line": str(assignment(hub, reference).id), "to": MEDIATION, "reason": "test"},
        page=f"/admin/cases/{reference}",
    )
    assert answer.status_code == 302
    assert f"Referred to {MEDIATION}" in operator.get(f"/admin/cases/{reference}").get_data(
        as_text=True
    )


def test_the_console_names_bodies_and_statuses_in_the_page_language_with_their_codes(
    hub, sims, operator
):
    """Staff read names in their language, with the id or code beside them; a line the
    consumer is shown as "being forwarded" because it could not be delivered reads as such."""
    reference = file(hub).reference
    fault(sims, TELECOM, mode="error", status=422, count=1)
    Worker(hub, "w").dispatch_once()
    operator.get("/admin/language/fr")
    page = operator.get(f"/admin/cases/{reference}").get_data(as_text=True)
    lines = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]  # the case's lines
    assert hub.directory[TELECOM].name("fr") in lines and TELECOM in lines
    assert "N&#39;a pas pu être remis" in lines and "undeliverable" in lines
    assert "En cours de transmission" not in lines  # what the consumer is shown instead
    attention = operator.get("/admin/attention").get_data(as_text=True)
    assert hub.directory[TELECOM].name("fr") in attention


def test_operators_find_cases_by_reference(hub, operator):
    reference = file(hub).reference
    page = operator.get("/admin/cases", query_string={"q": reference}).get_data(as_text=True)
    assert reference in page


def test_agency_staff_see_their_own_cases_only(hub, telecom_staff):
    own = file(hub).reference
    other = file(hub, **MEDIATION_CASE).reference
    Worker(hub, "w").dispatch_once()
    page = telecom_staff.get("/admin/agency").get_data(as_text=True)
    assert own in page and other not in page
    assert telecom_staff.get(f"/admin/agency/cases/{other}").status_code == 404
    assert telecom_staff.get("/admin/flows").status_code == 403  # operator pages are closed
    assert telecom_staff.get(f"/admin/cases/{own}").status_code == 403


def test_agency_staff_move_a_case_in_their_own_status_codes_and_the_consumer_sees_it(
    hub, telecom_staff
):
    reference = file(hub).reference
    Worker(hub, "w").dispatch_once()
    mapping = hub.directory[TELECOM]
    code = next(c for c, rule in mapping.statuses.items() if rule.status == "in_progress")
    page = f"/admin/agency/cases/{reference}"
    assert "What your agency received" in telecom_staff.get(page).get_data(as_text=True)
    answer = post(
        telecom_staff, page, {"status": code, "message": "We are looking into it."}, page=page
    )
    assert answer.status_code == 302
    assert assignment(hub, reference).status == "in_progress"
    assert "We are looking into it." in [e.message for e in timeline(hub, reference)]
    unknown = post(telecom_staff, page, {"status": "NOT-A-CODE"}, page=page)
    assert unknown.status_code == 302
    assert "Choose one of your agency" in telecom_staff.get(page).get_data(as_text=True)
    assert assignment(hub, reference).status == "in_progress"


def test_an_agency_cannot_update_a_case_before_it_reached_its_system(hub, telecom_staff):
    reference = file(hub).reference  # not dispatched
    page = f"/admin/agency/cases/{reference}"
    code = next(iter(hub.directory[TELECOM].statuses))
    post(telecom_staff, page, {"status": code}, page=page)
    assert "has not reached your system" in telecom_staff.get(page).get_data(as_text=True)
    assert assignment(hub, reference).status == "queued"


def test_users_cli_adds_lists_and_disables_accounts_with_clear_errors(hub, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "ann", "--role", "operator"])
    assert added.exit_code == 0, added.output
    password = re.search(r"password \(shown once\): (\S+)", added.output).group(1)
    assert accounts.authenticate(hub.db, "ann", password) is not None
    no_agency = runner.invoke(cli, ["users", "add", "bob", "--role", "agency"])
    assert no_agency.exit_code == 2 and "--agency AGENCY_ID" in no_agency.output
    unknown = runner.invoke(cli, ["users", "add", "bob", "--role", "agency", "--agency", "nope"])
    assert unknown.exit_code == 2 and "known:" in unknown.output
    twice = runner.invoke(cli, ["users", "add", "ann", "--role", "operator"])
    assert twice.exit_code == 2 and "exists already" in twice.output
    listed = runner.invoke(cli, ["users", "list"])
    assert "ann" in listed.output and "operator" in listed.output
    assert runner.invoke(cli, ["users", "disable", "ann"]).exit_code == 0
    assert accounts.authenticate(hub.db, "ann", password) is None
    missing = runner.invoke(cli, ["users", "disable", "zed"])
    assert missing.exit_code == 1 and "loket users list" in missing.output
