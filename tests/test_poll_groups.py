"""A poll's updates are applied in groups, each its own transaction (hub.inbound.apply_poll):
a poll of thousands of updates must not hold the lines it touches, and with them the receipts
being recorded for that agency, for as long as the whole poll takes. Applying stays idempotent,
so a poll that stops halfway loses nothing and doubles nothing when it is read again."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from adapters.base import PollResult, StatusUpdate
from hub import inbound
from hub.models import Assignment
from scheduler.worker import Worker
from tests.support.cases import assignment, file

TELECOM = "ombudsman-telecom"


def _delivered(hub, n: int) -> list[tuple[str, str]]:
    """n cases delivered to the telecom ombudsman: (case reference, agency reference) each."""
    filed = [file(hub).reference for _ in range(n)]
    Worker(hub, "w1").dispatch_once()
    return [(ref, assignment(hub, ref).agency_reference) for ref in filed]


def _mediating(cases, clock) -> tuple[StatusUpdate, ...]:
    """One MEDIATING update per case, each a second later than the one before."""
    return tuple(
        StatusUpdate(
            "MEDIATING",
            clock.now() + timedelta(seconds=i),
            agency_reference=agency_ref,
            update_id=f"m-{i}",
        )
        for i, (_ref, agency_ref) in enumerate(cases)
    )


def test_a_long_poll_commits_each_group_and_frees_its_lines_before_the_next(
    hub, sims, clock, monkeypatch
):
    monkeypatch.setattr(inbound, "POLL_APPLY_GROUP", 2)
    cases = _delivered(hub, 5)
    first_line = assignment(hub, cases[0][0]).id
    seen_between: list[tuple[str, str]] = []

    def between_groups():
        """Another transaction, as a receipt being recorded would: it gets the first line at
        once (no wait for the rest of the poll) and sees what the groups so far applied."""
        with hub.db.session() as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail the test
            s.execute(select(Assignment.id).where(Assignment.id == first_line).with_for_update())
        seen_between.append(tuple(assignment(hub, ref).status for ref, _ in cases[:3]))

    result = PollResult(_mediating(cases, clock), "cursor-1")
    stats = inbound.apply_poll(
        hub.db, hub.directory[TELECOM], result, clock.now(), renew=between_groups
    )
    assert stats.counts == {"applied": 5}
    # three groups (2, 2, 1): two pauses between them, each after a commit
    assert seen_between == [
        ("in_progress", "in_progress", "sent"),
        ("in_progress", "in_progress", "in_progress"),
    ]
    assert all(assignment(hub, ref).status == "in_progress" for ref, _ in cases)
    assert inbound.get_cursor(hub.db, TELECOM) == "cursor-1"


def test_a_poll_stopped_between_groups_keeps_its_cursor_and_read_again_loses_nothing(
    hub, sims, clock, monkeypatch
):
    monkeypatch.setattr(inbound, "POLL_APPLY_GROUP", 2)
    cases = _delivered(hub, 5)
    mapping = hub.directory[TELECOM]
    result = PollResult(_mediating(cases, clock), "cursor-1")

    def worker_dies():
        raise SystemExit("the worker stops between two groups")

    with pytest.raises(SystemExit):
        inbound.apply_poll(hub.db, mapping, result, clock.now(), renew=worker_dies)
    statuses = [assignment(hub, ref).status for ref, _ in cases]
    assert statuses == ["in_progress"] * 2 + ["sent"] * 3  # the first group was committed
    assert inbound.get_cursor(hub.db, TELECOM) is None  # the feed is read again from before
    again = inbound.apply_poll(hub.db, mapping, result, clock.now())
    assert again.counts == {"duplicate": 2, "applied": 3}
    assert all(assignment(hub, ref).status == "in_progress" for ref, _ in cases)
    assert inbound.get_cursor(hub.db, TELECOM) == "cursor-1"
