"""The operator console shows what is stuck: deliveries still not done N minutes after they were
queued, with their last error and next attempt, and "Retry now" (POST, CSRF) on the attention
page and on the case's page."""

import pytest
from sqlalchemy import select

from hub import accounts
from hub.models import AuditEntry, Delivery
from scheduler.worker import Worker
from tests.support.backoffice import PASSWORD, post, sign_in
from tests.support.cases import TELECOM, assignment, fault, file


@pytest.fixture
def operator(hub, client):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    return client


def _waiting_retry(hub, sims):
    reference = file(hub).reference
    fault(sims, TELECOM, mode="error", status=503, count=1)
    Worker(hub, "w").dispatch_once()
    with hub.db.session(read_only=True) as s:
        [row] = s.scalars(select(Delivery).where(Delivery.state == "retry")).all()
        return reference, row.id, row.next_attempt_at


def test_a_delivery_not_done_after_the_threshold_is_listed_with_its_error_and_next_attempt(
    hub, sims, clock, operator
):
    reference, delivery_id, _ = _waiting_retry(hub, sims)
    page = operator.get("/admin/attention").get_data(as_text=True)
    assert reference not in page.split('id="undone"')[1].split("<h2>")[0]  # not yet N minutes
    clock.advance(minutes=hub.settings.stuck_after_minutes + 1)
    page = operator.get("/admin/attention").get_data(as_text=True)
    section = page.split('id="undone"')[1].split("<h2>")[0]
    assert reference in section and "HTTP 503" in section and "Retry now" in section
    assert f"/admin/deliveries/{delivery_id}/retry-now" in section


def test_retry_now_from_the_attention_page_sends_at_the_next_dispatch_with_evidence(
    hub, sims, clock, operator
):
    reference, delivery_id, next_at = _waiting_retry(hub, sims)
    clock.advance(minutes=hub.settings.stuck_after_minutes + 1)
    if next_at > clock.now():  # still before its own retry time: only Retry now sends it
        assert Worker(hub, "w").dispatch_once().delivered == 0
    no_token = operator.post(f"/admin/deliveries/{delivery_id}/retry-now", data={})
    assert no_token.status_code in (400, 403)
    answer = post(
        operator,
        f"/admin/deliveries/{delivery_id}/retry-now",
        {"back": "attention"},
        "/admin/attention",
    )
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/attention")
    assert "will be tried again" in operator.get("/admin/attention").get_data(as_text=True)
    assert Worker(hub, "w").dispatch_once().delivered == 1
    assert assignment(hub, reference).status in ("sent", "received")
    with hub.db.session(read_only=True) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "delivery.retry_now")).one()
        assert entry.actor == "operator:olga" and entry.data == {"delivery": delivery_id}
    # done now: a second press is refused with a message, nothing else happens
    post(operator, f"/admin/deliveries/{delivery_id}/retry-now", {}, "/admin/attention")
    assert "no longer waiting for a retry" in operator.get("/admin/attention").get_data(
        as_text=True
    )


def test_the_case_page_shows_its_undone_delivery_at_once_with_retry_now(hub, sims, operator):
    reference, delivery_id, _ = _waiting_retry(hub, sims)
    page = operator.get(f"/admin/cases/{reference}").get_data(as_text=True)
    section = page.split('id="undone"')[1].split("<h2>")[0]
    assert "HTTP 503" in section and "waiting for a retry" in section
    answer = post(
        operator,
        f"/admin/deliveries/{delivery_id}/retry-now",
        {"back": "case", "reference": reference},
        f"/admin/cases/{reference}",
    )
    assert answer.headers["Location"].endswith(f"/admin/cases/{reference}")
    assert Worker(hub, "w").dispatch_once().delivered == 1
    assert 'id="undone"' not in operator.get(f"/admin/cases/{reference}").get_data(as_text=True)


def test_agency_staff_cannot_retry_deliveries(hub, sims, client):
    _, delivery_id, _ = _waiting_retry(hub, sims)
    accounts.add(hub.db, "tom", "agency", TELECOM, hub.clock.now(), PASSWORD)
    sign_in(client, "tom")
    answer = post(client, f"/admin/deliveries/{delivery_id}/retry-now", {}, "/admin/security")
    assert answer.status_code == 403
