"""An agency whose feed starts over (restored from a backup, reset, a demo restarted without its
state): the hub notices, tells operators, re-reads the feed, and never lets two cases share an
agency reference unnoticed. The worker runs in-process against the real REST simulator on
loopback, with a frozen clock; the agency is restarted on its own port with empty state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles
from sqlalchemy import select

from hub import accounts, inbound, queries
from hub.models import AuditEntry, PollCursor
from scheduler.worker import Worker
from tests.support.backoffice import PASSWORD, sign_in
from tests.support.cases import TELECOM, assignment, file, timeline
from tests.support.env import API_KEYS, agency_schema


def restart_empty(sims, clock, step_seconds: float = 60) -> AgencySystem:
    """Stop the telecom ombudsman's simulator and start it again on the same port, empty."""
    old = sims.servers[TELECOM]
    port = int(old.url.split(":")[2].split("/")[0])
    old.stop()
    system = AgencySystem(
        profiles()[TELECOM],
        step_seconds=step_seconds,
        api_key=API_KEYS[TELECOM],
        schema=agency_schema(TELECOM),
        clock=clock.now,
    )
    sims.servers[TELECOM] = SimulatorServer(system, "127.0.0.1", port).start()
    return system


@pytest.fixture
def console(hub, client):
    """The back office, signed in as an operator."""
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    return client


def problems(hub):
    return [p for p in queries.attention(hub).problems if p.agency_id == TELECOM]


def audit_actions(hub) -> list[str]:
    with hub.db.session(read_only=True) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def agency_events(hub, reference):
    return [(e.agency_status, e.to_status) for e in timeline(hub, reference) if e.actor == "agency"]


def test_a_feed_that_starts_over_is_noticed_and_open_cases_keep_moving(hub, sims, clock, console):
    worker = Worker(hub, "w1")
    first = file(hub)
    worker.dispatch_once()
    worker.poll_agency(TELECOM)
    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    before = assignment(hub, first.reference)
    assert before.status == "in_progress"
    first_events = agency_events(hub, first.reference)
    with hub.db.session(read_only=True) as s:
        assert s.get(PollCursor, TELECOM).cursor == "2"
    assert problems(hub) == []

    restart_empty(sims, clock)
    second = file(hub)
    worker.dispatch_once()
    again = assignment(hub, second.reference)
    # the agency numbered anew: the new case got the number the first one holds ...
    assert again.agency_reference == before.agency_reference
    # ... and operators are told at once, with the evidence on both cases
    [shared] = problems(hub)
    assert before.agency_reference in shared.source
    assert first.reference in shared.reason and second.reference in shared.reason
    assert audit_actions(hub).count(inbound.REFERENCE_SHARED) == 2
    # per-case polling asks about the shared number once, for the case it now means
    [item] = [
        i
        for i in inbound.open_items(hub.db, TELECOM)
        if i.agency_reference == again.agency_reference
    ]
    assert item.case_reference == second.reference

    worker.poll_agency(TELECOM)  # the feed is at 1, behind the hub's 2
    reasons = [p.reason for p in problems(hub)]
    assert any("went backwards" in r for r in reasons), reasons
    assert inbound.FEED_WENT_BACK in audit_actions(hub)
    assert assignment(hub, second.reference).status == "received"
    with hub.db.session(read_only=True) as s:
        assert s.get(PollCursor, TELECOM).cursor == "1"  # the feed's own position now

    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    assert assignment(hub, second.reference).status == "in_progress"
    # the first case was never touched by the second's updates under the shared number
    assert agency_events(hub, first.reference) == first_events
    assert assignment(hub, first.reference).status == "in_progress"
    # polling on adds no further alerts: each was recorded once
    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    assert len(problems(hub)) == 2
    # the operator's console says it, naming both cases
    page = console.get("/admin/attention").get_data(as_text=True)
    assert "went backwards" in page and first.reference in page and second.reference in page


def test_an_update_naming_only_a_shared_reference_is_applied_to_no_case(hub, sims, clock):
    from adapters.base import PollResult, StatusUpdate

    worker = Worker(hub, "w1")
    first = file(hub)
    worker.dispatch_once()
    restart_empty(sims, clock)
    second = file(hub)
    worker.dispatch_once()
    ref = assignment(hub, second.reference).agency_reference
    assert ref == assignment(hub, first.reference).agency_reference
    mapping = hub.directory[TELECOM]
    anonymous = StatusUpdate("ASSIGNED", clock.now(), agency_reference=ref, update_id="x1")
    stats = inbound.apply_poll(hub.db, mapping, PollResult((anonymous,), None), clock.now())
    assert stats.counts == {"problem": 1}
    assert assignment(hub, first.reference).status == "sent"
    assert assignment(hub, second.reference).status == "sent"
    assert any("applied to none" in p.reason for p in problems(hub))


def test_a_silent_feed_while_lines_wait_past_their_acknowledgement_is_re_read(hub, sims, clock):
    worker = Worker(hub, "w1")
    restart_empty(sims, clock, step_seconds=10**7)  # the case stays at its first status
    filed = file(hub)
    worker.dispatch_once()
    with hub.db.session() as s:  # the hub believes it has read the agency's first change
        s.add(PollCursor(agency_id=TELECOM, cursor="1"))
    worker.poll_agency(TELECOM)
    assert assignment(hub, filed.reference).status == "sent"
    assert problems(hub) == []  # not late yet: nothing to say
    due = assignment(hub, filed.reference).acknowledge_due_at
    assert due is not None
    clock.current = due + timedelta(hours=1)
    worker.poll_agency(TELECOM)
    [silent] = problems(hub)
    assert "acknowledgement date" in silent.reason and filed.reference in (silent.excerpt or "")
    assert inbound.FEED_SILENT in audit_actions(hub)
    assert assignment(hub, filed.reference).status == "received"  # the re-read found it
    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    assert len(problems(hub)) == 1


def test_a_restarted_simulator_keeps_its_cases_and_feed(tmp_path, clock):
    state = tmp_path / "sim" / "telecom.json"
    system = AgencySystem(profiles()[TELECOM], step_seconds=60, clock=clock.now)
    system.keep_state_in(state)
    case, _ = system.submit({"a": 1}, "key-1", "LK-1")
    clock.advance(seconds=60)
    system.changes_since(0, 10)  # the case moved on a step
    restarted = AgencySystem(profiles()[TELECOM], step_seconds=60, clock=clock.now)
    restarted.keep_state_in(state)
    assert list(restarted.cases) == [case.id]
    assert restarted.changes == system.changes and len(restarted.changes) == 2
    again, replay = restarted.submit({"a": 1}, "key-1", "LK-1")
    assert replay and again.id == case.id
    other, _ = restarted.submit({"b": 2}, "key-2", "LK-2")
    assert other.id != case.id  # numbering continues
    assert restarted.changes[-1]["seq"] == 3
    assert not list(state.parent.glob(".state-*"))  # no temporary file left behind


def test_an_empty_page_answers_with_the_feeds_own_position(clock):
    system = AgencySystem(profiles()[TELECOM], step_seconds=60, clock=clock.now)
    system.submit({"a": 1}, "key-1", "LK-1")
    assert system.feed_position(5) == 1
    assert system.feed_position(0) == 0


def test_the_adapter_says_whether_a_cursor_went_back(hub):
    adapter = hub.directory.adapter(TELECOM)
    assert adapter.cursor_behind("5", "2")
    assert not adapter.cursor_behind("5", "5") and not adapter.cursor_behind("5", "7")
    assert adapter.cursor_behind("2026-11-02T10:00:00+00:00", "2026-11-01T10:00:00Z")
    assert not adapter.cursor_behind("opaque-a", "opaque-b")


def test_a_restarted_email_agency_keeps_its_cases(tmp_path, clock):
    from email.message import EmailMessage

    from loket_simulators.email_agency import EmailAgency
    from loket_simulators.email_agency import profile as email_profile

    def agency() -> EmailAgency:
        made = EmailAgency(
            email_profile("ombudsman-energy"),
            address="klachten@ombudsman-energy.example",
            send=lambda _m: None,
            step_seconds=60,
            clock=clock.now,
        )
        made.keep_state_in(tmp_path / "energy.json")
        return made

    def mail(message_id: str, reference: str) -> bytes:
        msg = EmailMessage()
        msg["From"], msg["To"] = "loket@hub.example", "klachten@ombudsman-energy.example"
        msg["Subject"], msg["Message-ID"] = f"Klacht {reference}", message_id
        msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="a.pdf")
        return bytes(msg)

    first = agency()
    assert first.receive(mail("<a@hub>", "LK-AAAA-AAAA")).startswith("250")
    clock.advance(seconds=60)
    first.advance()
    again = agency()
    [case] = again.cases.values()
    assert case.step == 1 and case.created == first.cases[case.id].created
    assert "Already received" in again.receive(mail("<a@hub>", "LK-AAAA-AAAA"))
    again.receive(mail("<b@hub>", "LK-BBBB-BBBB"))
    assert len({c.id for c in again.cases.values()}) == 2  # numbering continues
