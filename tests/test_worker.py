"""The worker in-process against the real REST simulators on loopback, with a frozen clock."""

from datetime import timedelta

import requests
from sqlalchemy import func, select

from adapters.base import PollResult, StatusUpdate
from hub import audit, inbound, outbox
from hub.models import (
    AuditEntry,
    Case,
    DeliveryAttempt,
    DeliveryState,
    PollCursor,
    StatusEvent,
    UnmatchedUpdate,
)
from scheduler.worker import Worker
from tests.support.cases import CASE, assignment, delivery, distinct_statuses, file, timeline

TELECOM = "ombudsman-telecom"


def test_dispatch_delivers_and_records_the_agency_reference(hub, sims):
    filed = file(hub)
    stats = Worker(hub, "w1").dispatch_once()
    assert stats.delivered == 1
    a = assignment(hub, filed.reference)
    assert a.status == "sent"
    sim = sims.system("ombudsman-telecom")
    [sim_case] = sim.cases.values()
    assert a.agency_reference == sim_case.id
    assert sim_case.idempotency_key == f"{filed.reference}.ombudsman-telecom.1"
    assert sim_case.payload["externalReference"] == filed.reference
    d = delivery(hub, filed.reference)
    assert d.state == DeliveryState.DONE and d.attempts == 1 and d.payload == sim_case.payload
    with hub.db.session(read_only=True) as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.case_id == a.case_id)))
        assert [e.action for e in entries] == ["case.filed", "delivery.receipt"]
        assert entries[1].data["agency_reference"] == sim_case.id
        assert audit.verify(s, a.case_id)


def test_polling_moves_the_case_through_the_agency_statuses_to_resolved(hub, sims, clock):
    filed = file(hub)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    worker.poll_agency("ombudsman-telecom")
    assert assignment(hub, filed.reference).status == "received"
    for _ in range(3):
        clock.advance(seconds=60)
        worker.poll_agency("ombudsman-telecom")
    a = assignment(hub, filed.reference)
    assert (a.status, a.outcome, a.agency_status) == ("resolved", "solved", "CLOSED_AGREEMENT")
    events = timeline(hub, filed.reference)
    assert distinct_statuses(events) == ["queued", "sent", "received", "in_progress", "resolved"]
    assert [e.agency_status for e in events if e.actor == "agency"] == [
        "NEW",
        "ASSIGNED",
        "MEDIATING",
        "CLOSED_AGREEMENT",
    ]
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Case)).one().status == "resolved"
        assert s.get(PollCursor, "ombudsman-telecom").cursor == "4"


def test_the_same_poll_applied_twice_changes_nothing(hub, sims, clock):
    filed = file(hub)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    adapter = hub.directory.adapter("ombudsman-telecom")
    result = adapter.poll(None, [])
    mapping = hub.directory["ombudsman-telecom"]
    first = inbound.apply_poll(hub.db, mapping, result, clock.now())
    second = inbound.apply_poll(hub.db, mapping, result, clock.now())
    assert first.counts == {"applied": 1}
    assert second.counts == {"duplicate": 1}
    assert len([e for e in timeline(hub, filed.reference) if e.actor == "agency"]) == 1


def test_an_update_older_than_the_current_status_does_not_move_it_back(hub, sims, clock):
    filed = file(hub)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    ref = assignment(hub, filed.reference).agency_reference
    mapping = hub.directory["ombudsman-telecom"]
    t0 = clock.now()
    newer = StatusUpdate(
        "MEDIATING", t0 + timedelta(minutes=5), agency_reference=ref, update_id="b"
    )
    older = StatusUpdate("NEW", t0 + timedelta(minutes=1), agency_reference=ref, update_id="a")
    stats = inbound.apply_poll(hub.db, mapping, PollResult((newer,), "2"), clock.now())
    assert stats.counts == {"applied": 1}
    stats = inbound.apply_poll(hub.db, mapping, PollResult((older,), "3"), clock.now())
    assert stats.counts == {"stale": 1}
    a = assignment(hub, filed.reference)
    assert (a.status, a.agency_status) == ("in_progress", "MEDIATING")
    assert "arrived late" in timeline(hub, filed.reference)[-1].message


def test_an_unknown_agency_status_code_is_kept_on_the_timeline_not_applied(hub, sims, clock):
    filed = file(hub)
    Worker(hub, "w1").dispatch_once()
    ref = assignment(hub, filed.reference).agency_reference
    update = StatusUpdate("ESCALATED_TO_MARS", clock.now(), agency_reference=ref, message="odd")
    stats = inbound.apply_poll(
        hub.db, hub.directory["ombudsman-telecom"], PollResult((update,), None), clock.now()
    )
    assert stats.counts == {"unknown": 1}
    assert assignment(hub, filed.reference).status == "sent"
    assert "ESCALATED_TO_MARS" in timeline(hub, filed.reference)[-1].message


def test_a_status_naming_nobody_we_know_is_kept_as_unmatched(hub, sims, clock):
    update = StatusUpdate(
        "NEW", clock.now(), agency_reference="OMB-1999-000001", case_reference="LK-0000-0000"
    )
    mapping = hub.directory["ombudsman-telecom"]
    stats = inbound.apply_poll(hub.db, mapping, PollResult((update, update), "9"), clock.now())
    assert stats.counts == {"unmatched": 2}
    with hub.db.session(read_only=True) as s:
        [row] = s.scalars(select(UnmatchedUpdate)).all()
        assert (row.agency_reference, row.agency_status, row.resolved_at) == (
            "OMB-1999-000001",
            "NEW",
            None,
        )


def test_a_status_that_arrives_before_the_receipt_is_applied_when_the_receipt_lands(
    hub, sims, clock
):
    filed = file(hub)
    worker = Worker(hub, "w1")
    # the worker delivered, then crashed before recording the receipt:
    [claimed] = outbox.claim(
        hub.db, worker_id="w1", now=clock.now(), lease_seconds=60, limit=10, agency_id=TELECOM
    )
    mapping = hub.directory["ombudsman-telecom"]
    adapter = hub.directory.adapter("ombudsman-telecom")
    from adapters.base import Outbound

    adapter.deliver(
        Outbound(
            claimed.idempotency_key,
            claimed.case_reference,
            claimed.agency_id,
            mapping.render(claimed.document),
        )
    )
    # the agency's status arrives first; it names only its own reference
    sim_case = next(iter(sims.system("ombudsman-telecom").cases.values()))
    early = StatusUpdate("NEW", clock.now(), agency_reference=sim_case.id, update_id="1")
    assert inbound.apply_poll(hub.db, mapping, PollResult((early,), "1"), clock.now()).counts == {
        "unmatched": 1
    }
    # the lease expires and a worker delivers again: the agency replays, the receipt lands
    clock.advance(seconds=61)
    assert worker.dispatch_once().delivered == 1
    a = assignment(hub, filed.reference)
    assert (a.agency_reference, a.status) == (sim_case.id, "received")
    assert len(sims.system("ombudsman-telecom").cases) == 1
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(UnmatchedUpdate)).one().resolved_at is not None


def test_a_transient_failure_retries_later_with_the_same_idempotency_key(hub, sims, clock):
    filed = file(hub)
    sim = sims.servers["ombudsman-telecom"]
    requests.post(
        sim.url.replace("/api", "/_sim/faults"), json={"mode": "error", "status": 503, "count": 1}
    )
    worker = Worker(hub, "w1")
    stats = worker.dispatch_once()
    assert (stats.delivered, stats.retried) == (0, 1)
    d = delivery(hub, filed.reference)
    assert d.state == DeliveryState.RETRY and d.attempts == 1 and "503" in d.last_error
    assert d.last_error_kind == "transient" and d.next_attempt_at >= clock.now()
    clock.advance(seconds=10)  # past the first backoff ceiling (2 s)
    assert worker.dispatch_once().delivered == 1
    d = delivery(hub, filed.reference)
    assert d.state == DeliveryState.DONE and d.attempts == 2
    assert len(sim.system.cases) == 1
    assert next(iter(sim.system.cases.values())).idempotency_key == d.idempotency_key
    with hub.db.session(read_only=True) as s:
        outcomes = s.scalars(select(DeliveryAttempt.outcome).order_by(DeliveryAttempt.id)).all()
    assert outcomes == ["transient", "ok"]


def test_a_permanent_failure_dead_letters_at_once_and_the_consumer_sees_queued(
    hub, sims, clock, client
):
    sims.system("ombudsman-telecom").api_key = "rotated-by-the-agency"
    resp = client.post("/api/v1/cases", json=CASE)
    filed = resp.get_json()
    stats = Worker(hub, "w1").dispatch_once()
    assert stats.dead == 1
    d = delivery(hub, filed["reference"])
    assert (
        d.state == DeliveryState.DEAD
        and d.attempts == 1
        and "401" in d.last_error
        and "API key" in d.last_error
    )
    assert d.payload is not None  # kept for a safe resend
    assert assignment(hub, filed["reference"]).status == "undeliverable"
    status = client.get(
        f"/api/v1/cases/{filed['reference']}",
        headers={"Authorization": f"Bearer {filed['tracking_token']}"},
    ).get_json()
    assert status["status"] == "queued" and status["agencies"][0]["status"] == "queued"


def test_a_worker_that_lost_its_lease_does_not_record_twice(hub, sims, clock):
    file(hub)
    [claimed] = outbox.claim(
        hub.db, worker_id="slow", now=clock.now(), lease_seconds=5, limit=10, agency_id=TELECOM
    )
    clock.advance(seconds=6)
    assert Worker(hub, "fast").dispatch_once().delivered == 1
    # the slow worker finally finishes with the same (replayed) receipt
    adapter = hub.directory.adapter("ombudsman-telecom")
    from adapters.base import Outbound

    mapping = hub.directory["ombudsman-telecom"]
    receipt = adapter.deliver(
        Outbound(
            claimed.idempotency_key,
            claimed.case_reference,
            claimed.agency_id,
            mapping.render(claimed.document),
        )
    )
    assert receipt.duplicate
    assert outbox.complete(hub.db, claimed, receipt, {}, clock.now(), mapping) is False
    with hub.db.session(read_only=True) as s:
        assert (
            s.scalar(
                select(func.count()).select_from(StatusEvent).where(StatusEvent.to_status == "sent")
            )
            == 1
        )
    assert len(sims.system("ombudsman-telecom").cases) == 1


def test_nothing_is_claimed_twice_while_leased(hub, sims, clock):
    file(hub)
    file(hub)
    first = outbox.claim(
        hub.db, worker_id="a", now=clock.now(), lease_seconds=60, limit=10, agency_id=TELECOM
    )
    second = outbox.claim(
        hub.db, worker_id="b", now=clock.now(), lease_seconds=60, limit=10, agency_id=TELECOM
    )
    assert len(first) == 2 and second == []


def test_a_parked_update_the_receipt_missed_is_applied_by_the_next_poll_first(hub, sims, clock):
    """On PostgreSQL a poll may park an update while a receipt commits beside it; nothing is lost."""
    filed = file(hub)
    Worker(hub, "w1").dispatch_once()
    a = assignment(hub, filed.reference)
    mapping = hub.directory["ombudsman-telecom"]
    with hub.db.session() as s:  # what the concurrent poll parked, unseen by the receipt
        s.add(
            UnmatchedUpdate(
                agency_id="ombudsman-telecom",
                update_key="id:1",
                agency_reference=a.agency_reference,
                agency_status="NEW",
                occurred_at=clock.now(),
                received_at=clock.now(),
            )
        )
    later = StatusUpdate(
        "ASSIGNED",
        clock.now() + timedelta(seconds=1),
        agency_reference=a.agency_reference,
        update_id="2",
    )
    stats = inbound.apply_poll(hub.db, mapping, PollResult((later,), "2"), clock.now())
    assert stats.counts == {"applied": 2}
    assert distinct_statuses(timeline(hub, filed.reference)) == [
        "queued",
        "sent",
        "received",
        "in_progress",
    ]


def test_an_unreadable_item_from_the_agency_is_kept_for_operators_once(hub, sims, clock):
    from adapters.base import InboundProblem as Problem
    from hub.models import InboundProblem

    mapping = hub.directory["ombudsman-telecom"]
    bad = Problem("status-0042.xml", "not well-formed XML at line 3", "<status><")
    for expected in ("problem", "duplicate"):  # read again: counted as a duplicate, kept once
        stats = inbound.apply_poll(hub.db, mapping, PollResult((), "7", (bad,)), clock.now())
        assert stats.counts == {expected: 1}
    with hub.db.session(read_only=True) as s:
        [row] = s.scalars(select(InboundProblem)).all()
        assert (row.source, row.reason, row.excerpt) == (
            "status-0042.xml",
            "not well-formed XML at line 3",
            "<status><",
        )
        assert s.get(PollCursor, "ombudsman-telecom").cursor == "7"
