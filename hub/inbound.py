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
from hub.models import Assignment, Case, Delivery, InboundProblem, PollCursor, UnmatchedUpdate
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
            .join(Delivery, Delivery.assignment_id == Assignment.id)
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
    """
    stats = ApplyStats()
    with db.session() as s:
        # Updates parked while a receipt was being recorded concurrently go first, in order.
        for _ in range(resolve_unmatched(s, mapping, now)):
            stats.add(APPLIED)
        for update in sorted(result.updates, key=lambda u: u.occurred_at):
            stats.add(apply_update(s, mapping, update, now))
        for problem in result.problems:
            stats.add(record_problem(s, mapping.id, problem, now))
        row = _cursor_row(s, mapping.id)
        if worker_id is None or row.leased_by in (None, worker_id):
            row.cursor = result.cursor
        row.updated_at = row.last_success_at = now
        row.last_error = None
    return stats


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


def _find_assignment(s: Session, agency_id: str, update: StatusUpdate) -> Assignment | None:
    conditions = []
    if update.agency_reference:
        conditions.append(Assignment.agency_reference == update.agency_reference)
    if update.case_reference:
        conditions.append(Case.reference == update.case_reference)
    if not conditions:
        return None
    return s.scalars(
        select(Assignment)
        .join(Case, Case.id == Assignment.case_id)
        .where(Assignment.agency_id == agency_id, or_(*conditions))
        .order_by(Assignment.id.desc())
        .options(selectinload(Assignment.case).selectinload(Case.assignments))
        .limit(1)
        .with_for_update(of=Assignment)  # serialises with a receipt being recorded (PostgreSQL)
    ).first()


def apply_update(s: Session, mapping: AgencyMapping, update: StatusUpdate, now: datetime) -> str:
    assignment = _find_assignment(s, mapping.id, update)
    key = update.key()
    # Until the receipt is recorded the assignment is not `sent`; park the update so the timeline
    # keeps its order (sent, then the agency's statuses). The receipt applies it.
    if assignment is None or assignment.agency_reference is None:
        exists = s.scalar(
            select(UnmatchedUpdate.id).where(
                UnmatchedUpdate.agency_id == mapping.id, UnmatchedUpdate.update_key == key
            )
        )
        if exists is None:
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
            s.flush()
        return UNMATCHED
    return _apply_to(s, mapping, assignment, update, now)


def _apply_to(
    s: Session,
    mapping: AgencyMapping,
    a: Assignment,
    update: StatusUpdate,
    now: datetime,
    key: str | None = None,
) -> str:
    key = key or update.key()
    _adopt_agency_reference(a, update)
    if lifecycle.event_exists(s, a.id, key):
        return DUPLICATE
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
        )
        s.flush()
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
        )
        s.flush()
        return STALE
    lifecycle.move(s, a, rule.status, message=update.message, **common)
    a.agency_status = update.agency_status
    a.status_at = update.occurred_at
    if rule.outcome:
        a.outcome = rule.outcome
    a.updated_at = now
    lifecycle.refresh_case(a.case, now)
    s.flush()
    return APPLIED


def _adopt_agency_reference(a: Assignment, update: StatusUpdate) -> None:
    """An agency that numbers a case only when its batch runs (SFTP, email) names that number in
    a later status; the receipt held a provisional reference (e.g. the file name). When the
    update names our case reference too, the agency's own number becomes the reference shown."""
    new = update.agency_reference
    if new and new != a.agency_reference and update.case_reference == a.case.reference:
        a.agency_reference = new[:128]


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


def _apply_parked(
    s: Session, mapping: AgencyMapping, a: Assignment, row: UnmatchedUpdate, now: datetime
) -> None:
    update = StatusUpdate(
        agency_status=row.agency_status or "",
        occurred_at=row.occurred_at or row.received_at,
        agency_reference=row.agency_reference,
        case_reference=row.case_reference,
        message=row.message,
    )
    _apply_to(s, mapping, a, update, now, key=row.update_key)
    row.resolved_at = now


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
        _apply_parked(s, mapping, a, row, now)
    return len(rows)


def resolve_unmatched(s: Session, mapping: AgencyMapping, now: datetime) -> int:
    """Apply every parked update of this agency whose assignment now has its receipt."""
    applied = 0
    for row in _parked(s, mapping.id):
        a = _find_assignment(
            s,
            mapping.id,
            StatusUpdate(
                row.agency_status or "", row.received_at, row.agency_reference, row.case_reference
            ),
        )
        if a is not None and a.agency_reference is not None:
            _apply_parked(s, mapping, a, row, now)
            applied += 1
    return applied
