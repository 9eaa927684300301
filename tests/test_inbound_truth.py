"""What an agency's side sends may not put a false status in front of a consumer: future
dates, over-long values and repeated bad items each end in one counted outcome."""

from datetime import datetime, timedelta

from sqlalchemy import select

from adapters.base import InboundProblem, PollResult, StatusUpdate
from hub import inbound
from hub.models import InboundProblem as ProblemRow
from scheduler.worker import Worker
from tests.support.cases import assignment, file, timeline

TELECOM = "ombudsman-telecom"


def _delivered(hub):
    filed = file(hub)
    Worker(hub, "w1").dispatch_once()
    return filed, assignment(hub, filed.reference).agency_reference


def test_a_future_date_is_clamped_and_cannot_freeze_later_updates(hub, sims, clock):
    filed, ref = _delivered(hub)
    mapping = hub.directory[TELECOM]
    future = StatusUpdate(
        "MEDIATING",
        datetime(2100, 1, 1, tzinfo=clock.now().tzinfo),
        agency_reference=ref,
        update_id="m-2100",
    )
    stats = inbound.apply_poll(hub.db, mapping, PollResult((future,), "1"), clock.now())
    assert stats.counts == {"applied": 1}
    a = assignment(hub, filed.reference)
    assert a.status_at == clock.now()
    [event] = [e for e in timeline(hub, filed.reference) if e.agency_status == "MEDIATING"]
    assert "in the future" in event.message and "2100" in event.message
    clock.advance(seconds=600)
    closing = StatusUpdate("CLOSED_AGREEMENT", clock.now(), agency_reference=ref, update_id="c")
    stats = inbound.apply_poll(hub.db, mapping, PollResult((closing,), "2"), clock.now())
    assert stats.counts == {"applied": 1}
    assert assignment(hub, filed.reference).status == "resolved"
    # The same future-dated update read again is a duplicate, not a second event.
    again = inbound.apply_poll(hub.db, mapping, PollResult((future,), "3"), clock.now())
    assert again.counts == {"duplicate": 1}


def test_over_long_values_become_problems_and_the_rest_of_the_poll_applies(hub, sims, clock):
    filed, ref = _delivered(hub)
    mapping = hub.directory[TELECOM]
    long_code = StatusUpdate("X" * 65, clock.now(), agency_reference=ref, update_id="x")
    long_ref = StatusUpdate("ASSIGNED", clock.now(), agency_reference="R" * 129, update_id="y")
    long_id = StatusUpdate(
        "MEDIATING",
        clock.now() + timedelta(seconds=1),
        agency_reference=ref,
        update_id="<" + "m" * 300 + "@agency.example>",
    )
    result = PollResult((long_code, long_ref, long_id), "1")
    stats = inbound.apply_poll(hub.db, mapping, result, clock.now())
    assert stats.counts == {"problem": 2, "applied": 1}
    assert assignment(hub, filed.reference).status == "in_progress"
    with hub.db.session(read_only=True) as s:
        reasons = sorted(s.scalars(select(ProblemRow.reason)))
    assert "agency reference is 129 characters long; at most 128 fit" in reasons[0]
    assert "agency status is 65 characters long; at most 64 fit" in reasons[1]
    again = inbound.apply_poll(hub.db, mapping, result, clock.now())
    assert again.counts == {"duplicate": 3}


def test_distinct_bad_items_under_one_name_are_two_problems(hub, clock):
    mapping = hub.directory[TELECOM]
    one = InboundProblem("<same@agency.example>", "no readable status line", "first text")
    two = InboundProblem("<same@agency.example>", "no readable status line", "second text")
    stats = inbound.apply_poll(hub.db, mapping, PollResult((), "1", (one, two, one)), clock.now())
    assert stats.counts == {"problem": 2, "duplicate": 1}
    with hub.db.session(read_only=True) as s:
        assert sorted(s.scalars(select(ProblemRow.excerpt))) == ["first text", "second text"]


def test_control_characters_from_the_far_side_are_stored_without_them(hub, sims, clock):
    """PostgreSQL refuses NUL in text: one such status message must not fail the poll."""
    filed, ref = _delivered(hub)
    mapping = hub.directory[TELECOM]
    update = StatusUpdate(
        "ASSIGNED", clock.now(), agency_reference=ref, message="Dossier\x00 toegewezen\x1b[31m"
    )
    problem = InboundProblem("bad\x00file.xml", "unreadable", "\xff\xfe<\x00s\x00")
    stats = inbound.apply_poll(hub.db, mapping, PollResult((update,), "1", (problem,)), clock.now())
    assert stats.counts == {"applied": 1, "problem": 1}
    [event] = [e for e in timeline(hub, filed.reference) if e.agency_status == "ASSIGNED"]
    assert event.message == "Dossier toegewezen[31m"
    with hub.db.session(read_only=True) as s:
        [row] = s.scalars(select(ProblemRow)).all()
    assert row.source == "badfile.xml" and "\x00" not in row.excerpt
