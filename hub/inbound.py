"""Inbound status: agency updates become timeline events and move assignments.

Rules that keep statuses from being lost or doubled:
- the poll cursor is saved in the same transaction as the updates read with it;
- an update already applied (same agency event id or content) changes nothing;
- an update older than the assignment's latest status is kept as history, never moves it back;
- an update naming an assignment we do not know yet, or one whose receipt is not recorded yet,
  is kept as unmatched and applied as soon as the matching receipt is recorded;
- an agency status code the mapping does not know is kept on the timeline, not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy import update as sa_update
from sqlalchemy.orm import Session, selectinload

from adapters.base import InboundProblem as InboundProblemValue
from adapters.base import OpenItem, PollResult, StatusUpdate
from hub import lifecycle
from hub.db import Database, insert_if_missing
from hub.models import (
    Assignment,
    Case,
    Delivery,
    InboundProblem,
    PollCursor,
    StatusEvent,
    UnmatchedUpdate,
)
from mappings.engine import AgencyMapping

PROBLEM = "problem"
APPLIED, DUPLICATE, UNMATCHED, STALE, UNKNOWN = (
    "applied",
    "duplicate",
    "unmatched",
    "stale",
    "unknown",
)


@dataclass
class ApplyStats:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def open_items(db: Database, agency_id: str) -> list[OpenItem]:
    terminal = [s for s in lifecycle.statuses() if lifecycle.is_terminal(s)]
    with db.session(read_only=True) as s:
        rows = s.execute(
            select(
                Assignment.agency_reference,
                Case.reference,
                Delivery.idempotency_key,
                Assignment.agency_status,
            )
            .join(Case, Case.id == Assignment.case_id)
            .join(Delivery, (Delivery.assignment_id == Assignment.id) & (Delivery.kind == "case"))
            .where(
                Assignment.agency_id == agency_id,
                Assignment.agency_reference.is_not(None),
                Assignment.status.not_in(terminal),
            )
            .order_by(Assignment.id)
        ).all()
    return [OpenItem(ref, case_ref, key, status) for ref, case_ref, key, status in rows]


def get_cursor(db: Database, agency_id: str) -> str | None:
    with db.session(read_only=True) as s:
        return s.scalar(select(PollCursor.cursor).where(PollCursor.agency_id == agency_id))


def _cursor_row(s: Session, agency_id: str) -> PollCursor:
    insert_if_missing(s, PollCursor, "agency_id", agency_id=agency_id)
    return s.scalars(select(PollCursor).where(PollCursor.agency_id == agency_id)).one()


def apply_poll(
    db: Database,
    mapping: AgencyMapping,
    result: PollResult,
    now: datetime,
    worker_id: str | None = None,
) -> ApplyStats:
    """Apply a poll's updates and save its cursor, atomically.

    With `worker_id`, the cursor is saved only if that worker still holds the poll lease; a worker
    that lost it still applies the updates (that is idempotent) but does not move the cursor.
    The assignments, the events they already have and the parked updates are loaded for the whole
    batch in a few queries, so a poll of thousands of updates costs no per-update round trips.
    """
    with db.session() as s:
        stats = _apply(s, mapping, result.updates, result.problems, now)
        row = _cursor_row(s, mapping.id)
        if worker_id is None or row.leased_by in (None, worker_id):
            row.cursor = result.cursor
        row.updated_at = row.last_success_at = now
        row.last_error = None
    return stats


def apply_updates(
    db: Database, mapping: AgencyMapping, updates: tuple[StatusUpdate, ...], now: datetime
) -> ApplyStats:
    """Apply updates that did not come from a poll (an agency's staff in the back office, an
    agency pushing to the hub): the same rules, the poll cursor untouched."""
    with db.session() as s:
        return _apply(s, mapping, updates, (), now)


def _apply(s: Session, mapping: AgencyMapping, updates_in, problems, now: datetime) -> ApplyStats:
    stats = ApplyStats()
    parked = _parked(s, mapping.id)
    updates = sorted(updates_in, key=lambda u: u.occurred_at)
    matcher = Matcher(s, mapping.id)
    matcher.load(
        refs={u.agency_reference for u in [*updates, *parked] if u.agency_reference},
        case_refs={u.case_reference for u in [*updates, *parked] if u.case_reference},
        keys={u.key() for u in updates} | {row.update_key for row in parked},
    )
    # Updates parked while a receipt was being recorded concurrently go first, in order.
    for row in parked:
        a = matcher.find(row.agency_reference, row.case_reference)
        if a is not None and a.agency_reference is not None:
            stats.add(
                _apply_to(s, mapping, a, _from_parked(row), now, row.update_key, matcher.seen)
            )
            row.resolved_at = now
    for update in updates:
        stats.add(_apply_update(s, matcher, mapping, update, now))
    for problem in problems:
        stats.add(record_problem(s, mapping.id, problem, now))
    return stats


def _chunks(values, size: int = 500):
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i : i + size]


class Matcher:
    """Finds the assignments a batch of updates names, and what they have already seen."""

    def __init__(self, s: Session, agency_id: str):
        self.s, self.agency_id = s, agency_id
        self.by_ref: dict[str, Assignment] = {}
        self.by_case: dict[str, Assignment] = {}
        self.seen: set[tuple[int, str]] = set()
        self.parked_keys: set[str] = set()

    def _assignments(self, condition) -> list[Assignment]:
        return list(
            self.s.scalars(
                select(Assignment)
                .join(Case, Case.id == Assignment.case_id)
                .where(Assignment.agency_id == self.agency_id, condition)
                .order_by(Assignment.id)  # one lock order for every poll
                .options(selectinload(Assignment.case).selectinload(Case.assignments))
                .with_for_update(of=Assignment)  # serialises with a receipt being recorded
            )
        )

    def load(self, refs: set[str], case_refs: set[str], keys: set[str]) -> None:
        for chunk in _chunks(refs):
            for a in self._assignments(Assignment.agency_reference.in_(chunk)):
                self.by_ref[a.agency_reference or ""] = a  # ordered by id: the newest wins
        for chunk in _chunks(case_refs):
            for a in self._assignments(Case.reference.in_(chunk)):
                self.by_case[a.case.reference] = a
        ids = {a.id for a in [*self.by_ref.values(), *self.by_case.values()]}
        for id_chunk in _chunks(ids):
            for key_chunk in _chunks(keys):
                self.seen.update(
                    (aid, key)
                    for aid, key in self.s.execute(
                        select(StatusEvent.assignment_id, StatusEvent.dedupe_key).where(
                            StatusEvent.assignment_id.in_(id_chunk),
                            StatusEvent.dedupe_key.in_(key_chunk),
                        )
                    )
                    if key is not None
                )
        for chunk in _chunks(keys):
            self.parked_keys.update(
                self.s.scalars(
                    select(UnmatchedUpdate.update_key).where(
                        UnmatchedUpdate.agency_id == self.agency_id,
                        UnmatchedUpdate.update_key.in_(chunk),
                    )
                )
            )

    def find(self, agency_reference: str | None, case_reference: str | None) -> Assignment | None:
        if agency_reference and agency_reference in self.by_ref:
            return self.by_ref[agency_reference]
        if case_reference and case_reference in self.by_case:
            return self.by_case[case_reference]
        return None


def lease_poll(db: Database, agency_id: str, worker_id: str, now: datetime, seconds: float) -> bool:
    """Take the agency's poll lease; False when another worker holds a live one."""
    with db.session() as s:
        insert_if_missing(s, PollCursor, "agency_id", agency_id=agency_id)
        taken = s.execute(
            sa_update(PollCursor)
            .where(
                PollCursor.agency_id == agency_id,
                or_(
                    PollCursor.lease_expires_at.is_(None),
                    PollCursor.lease_expires_at <= now,
                    PollCursor.leased_by == worker_id,
                ),
            )
            .values(leased_by=worker_id, lease_expires_at=now + timedelta(seconds=seconds))
        )
        return taken.rowcount == 1


def release_poll(db: Database, agency_id: str, worker_id: str) -> None:
    """Give the poll lease back (the cursor row keeps who polled last)."""
    with db.session() as s:
        s.execute(
            sa_update(PollCursor)
            .where(PollCursor.agency_id == agency_id, PollCursor.leased_by == worker_id)
            .values(lease_expires_at=None)
        )


def record_problem(s: Session, agency_id: str, problem: InboundProblemValue, now: datetime) -> str:
    """Keep an unreadable inbound item for operators (once per source)."""
    exists = s.scalar(
        select(InboundProblem.id).where(
            InboundProblem.agency_id == agency_id, InboundProblem.source == problem.source[:500]
        )
    )
    if exists is None:
        s.add(
            InboundProblem(
                agency_id=agency_id,
                source=problem.source[:500],
                reason=problem.reason,
                excerpt=problem.excerpt[:4000] or None,
                received_at=now,
            )
        )
        s.flush()
    return PROBLEM


def record_poll_error(db: Database, agency_id: str, message: str, now: datetime) -> None:
    """A failed poll keeps its cursor; the error is shown to operators."""
    with db.session() as s:
        row = _cursor_row(s, agency_id)
        row.last_error, row.updated_at = message, now


def _apply_update(
    s: Session, matcher: Matcher, mapping: AgencyMapping, update: StatusUpdate, now: datetime
) -> str:
    assignment = matcher.find(update.agency_reference, update.case_reference)
    key = update.key()
    # Until the receipt is recorded the assignment is not `sent`; park the update so the timeline
    # keeps its order (sent, then the agency's statuses). The receipt applies it.
    if assignment is None or assignment.agency_reference is None:
        if key not in matcher.parked_keys:
            s.add(
                UnmatchedUpdate(
                    agency_id=mapping.id,
                    update_key=key,
                    agency_reference=update.agency_reference,
                    case_reference=update.case_reference,
                    agency_status=update.agency_status,
                    occurred_at=update.occurred_at,
                    message=update.message,
                    received_at=now,
                )
            )
            matcher.parked_keys.add(key)
        return UNMATCHED
    return _apply_to(s, mapping, assignment, update, now, key, matcher.seen)


def _apply_to(
    s: Session,
    mapping: AgencyMapping,
    a: Assignment,
    update: StatusUpdate,
    now: datetime,
    key: str | None = None,
    seen: set[tuple[int, str]] | None = None,
) -> str:
    """Apply one update to its assignment. `seen` holds (assignment id, key) pairs already on
    the timeline when the caller loaded them in bulk; without it the database is asked."""
    key = key or update.key()
    _adopt_agency_reference(s, a, update, now)
    if (a.id, key) in seen if seen is not None else lifecycle.event_exists(s, a.id, key):
        return DUPLICATE
    if seen is not None:
        seen.add((a.id, key))
    rule = mapping.map_status(update.agency_status)
    common = dict(
        actor="agency",
        at=update.occurred_at,
        now=now,
        agency_status=update.agency_status,
        dedupe_key=key,
    )
    if rule is None:
        lifecycle.add_event(
            s,
            a.case,
            assignment=a,
            from_status=a.status,
            to_status=a.status,
            message=f"Unknown status code {update.agency_status!r} from the agency"
            f"{': ' + update.message if update.message else ''} (not applied)",
            **common,
            kind="agency_note",
        )
        return UNKNOWN
    if a.status_at is not None and update.occurred_at < a.status_at:
        lifecycle.add_event(
            s,
            a.case,
            assignment=a,
            from_status=a.status,
            to_status=a.status,
            message=f"{update.message or update.agency_status} (arrived late; "
            f"status kept at {a.status})",
            **common,
            kind="agency_note",
        )
        return STALE
    lifecycle.move(s, a, rule.status, message=update.message, **common, kind="agency_status")
    a.agency_status = update.agency_status
    a.status_at = update.occurred_at
    if rule.outcome:
        a.outcome = rule.outcome
    a.updated_at = now
    lifecycle.refresh_case(a.case, now)
    return APPLIED


def _adopt_agency_reference(s: Session, a: Assignment, update: StatusUpdate, now: datetime) -> None:
    """An agency that numbers a case only when its batch runs (SFTP, email) names that number in
    a later status; the receipt held a provisional reference (e.g. the file name). When the
    update names our case reference too, the agency's own number becomes the reference shown
    (no longer provisional), and the timeline says so."""
    new = update.agency_reference
    if new and new != a.agency_reference and update.case_reference == a.case.reference:
        a.agency_reference = new[:128]
        a.agency_reference_provisional = False
        lifecycle.add_event(
            s,
            a.case,
            actor="hub",
            at=update.occurred_at,
            now=now,
            assignment=a,
            message=f"The agency's reference is {a.agency_reference}.",
            kind="agency_reference",
        )


def _parked(s: Session, agency_id: str, *conditions) -> list[UnmatchedUpdate]:
    return list(
        s.scalars(
            select(UnmatchedUpdate)
            .where(
                UnmatchedUpdate.agency_id == agency_id,
                UnmatchedUpdate.resolved_at.is_(None),
                *conditions,
            )
            .order_by(UnmatchedUpdate.occurred_at, UnmatchedUpdate.id)
        )
    )


def _from_parked(row: UnmatchedUpdate) -> StatusUpdate:
    return StatusUpdate(
        agency_status=row.agency_status or "",
        occurred_at=row.occurred_at or row.received_at,
        agency_reference=row.agency_reference,
        case_reference=row.case_reference,
        message=row.message,
    )


def has_parked(s: Session, agency_id: str) -> bool:
    """Whether any update of this agency waits for its receipt (usually not: one cheap query)."""
    return (
        s.scalar(
            select(UnmatchedUpdate.id)
            .where(UnmatchedUpdate.agency_id == agency_id, UnmatchedUpdate.resolved_at.is_(None))
            .limit(1)
        )
        is not None
    )


def apply_unmatched(s: Session, mapping: AgencyMapping, a: Assignment, now: datetime) -> int:
    """Apply updates that arrived before we knew the agency's reference for this assignment."""
    rows = _parked(
        s,
        a.agency_id,
        or_(
            UnmatchedUpdate.agency_reference == a.agency_reference,
            UnmatchedUpdate.case_reference == a.case.reference,
        ),
    )
    for row in rows:
        _apply_to(s, mapping, a, _from_parked(row), now, key=row.update_key)
        row.resolved_at = now
        s.flush()
    return len(rows)
