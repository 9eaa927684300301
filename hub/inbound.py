"""Inbound status: agency updates become timeline events and move assignments.

Rules that keep statuses from being lost or doubled:
- the poll cursor is saved in the same transaction as the updates read with it;
- an update already applied (same agency event id or content) changes nothing;
- an update older than the assignment's latest status is kept as history, never moves it back;
- an update naming an assignment we do not know yet, or one whose receipt is not recorded yet,
  is kept as unmatched and applied as soon as the matching receipt is recorded;
- an agency status code the mapping does not know is kept on the timeline, not applied;
- an agency's event time later than the hub's receive time (plus CLOCK_SKEW) is clamped to the
  receive time and the timeline says so: a mail dated 2100 cannot freeze later updates;
- a value longer than its column (a status code, a reference) is an operator problem, not a
  failed poll: one hostile item never stalls the agency's other updates;
- an unreadable item is kept once per content: the same bad mail read twice is a duplicate, two
  different bad mails with one Message-ID are two problems;
- a refusal (a rejected file, a bounce) turns the delivery it names into a dead letter with the
  agency's reason, and the line becomes `undeliverable` (the consumer reads "being forwarded");
- an agency reference held by more than one line of the agency (its feed started over and
  numbered a new case like an old one) is never resolved silently: an update naming our case
  reference goes to that case, one that names only the shared reference is an operator problem,
  and either way operators are told (`feed alerts`, below) and the evidence log records it.

Feed alerts: a feed that went backwards, a reference two lines hold, a feed silent while lines
wait past their acknowledgement date. Each is an inbound problem on the console's attention page
(once per occurrence: the same alert again is a duplicate) and an entry in the evidence log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy import update as sa_update
from sqlalchemy.orm import Session, selectinload

from adapters.base import InboundProblem as InboundProblemValue
from adapters.base import OpenItem, PollResult, Refusal, StatusUpdate
from hub import audit, bulk, lifecycle
from hub.db import Database, insert_if_missing
from hub.models import (
    Assignment,
    Case,
    Delivery,
    DeliveryState,
    InboundProblem,
    PollCursor,
    StatusEvent,
    UnmatchedUpdate,
)
from mappings.engine import AgencyMapping

PROBLEM = "problem"
# How far ahead of the hub's clock an agency's event time may be before it is clamped.
CLOCK_SKEW = timedelta(minutes=5)
# Column widths an agency's values must fit (hub/models.py); longer is refused, never truncated.
LIMITS = {"agency_status": 64, "agency_reference": 128, "case_reference": 16}
APPLIED, DUPLICATE, UNMATCHED, STALE, UNKNOWN, NOTE, NOT_ALLOWED = (
    "applied",
    "duplicate",
    "unmatched",
    "stale",
    "unknown",
    "note",  # kept on the timeline, no status taken (an automatic reply)
    "not_allowed",  # kept on the timeline: the status machine allows no such move from here
)


@dataclass
class ApplyStats:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n

    def merge(self, other: ApplyStats) -> None:
        for outcome, n in other.counts.items():
            self.add(outcome, n)


def open_items(db: Database, agency_id: str) -> list[OpenItem]:
    """The agency's open lines, for per-case polling. A reference two lines hold (the agency
    numbered anew) is asked about once, for the newest line: it is what the number means at
    the agency now, and the answer, which names the case asked about, must not land on the
    older line too (operators are told about the shared reference)."""
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
    newest = {ref: OpenItem(ref, case_ref, key, status) for ref, case_ref, key, status in rows}
    return list(newest.values())  # ordered by line: the newest holder of a reference wins


@dataclass(frozen=True)
class FeedAlert:
    """Something about an agency's feed as a whole that operators must know (see the module
    docstring). `action` names it in the evidence log; `source` identifies this occurrence, so
    the same alert raised again is recorded once."""

    action: str
    source: str
    reason: str
    excerpt: str = ""


FEED_WENT_BACK = "feed.went_back"
REFERENCE_SHARED = "feed.reference_shared"
FEED_SILENT = "feed.silent"


def feed_went_back(stored: str, returned: str | None) -> FeedAlert:
    return FeedAlert(
        FEED_WENT_BACK,
        f"feed went back from {stored[:200]} to {(returned or '')[:200]}",
        f"the agency's feed went backwards (the hub had read up to {stored!r}, the agency "
        f"answered {returned!r}): its system was restored or reset. The hub re-read the feed "
        "from the start; check the agency still has the open cases sent before.",
    )


def feed_silent(cursor: str | None, late: list[tuple[str, str | None]]) -> FeedAlert:
    names = ", ".join(f"{case} ({ref or 'no reference'})" for case, ref in late[:20])
    return FeedAlert(
        FEED_SILENT,
        f"feed silent at {(cursor or '')[:200]} with {len(late)} late line(s) up to {late[-1][0]}",
        f"the agency's feed returns nothing while {len(late)} line(s) wait past their "
        "acknowledgement date; the hub re-read the feed from the start. If they stay sent, "
        "ask the agency whether it has them.",
        names,
    )


def record_alert(
    s: Session,
    agency_id: str,
    alert: FeedAlert,
    now: datetime,
    case_ids: tuple[int, ...] = (),
) -> str:
    """Keep a feed alert for operators and in the evidence log (of each case it names, else the
    hub's own chain). Returns PROBLEM when it is new, DUPLICATE when it was already recorded."""
    outcome = record_problem(
        s, agency_id, InboundProblemValue(alert.source, alert.reason, alert.excerpt), now
    )
    if outcome == PROBLEM:
        data = {"reason": alert.reason, "source": alert.source, "detail": alert.excerpt}
        for case_id in case_ids or (None,):
            audit.record(
                s,
                at=now,
                actor="hub",
                action=alert.action,
                case_id=case_id,
                agency_id=agency_id,
                data=data,
            )
    return outcome


def alert_is_new(db: Database, agency_id: str, alert: FeedAlert) -> bool:
    """Whether this alert has not been recorded yet (so its re-synchronisation is still due)."""
    source = alert.source[:460]
    with db.session(read_only=True) as s:
        return (
            s.scalar(
                select(InboundProblem.id)
                .where(InboundProblem.agency_id == agency_id, InboundProblem.source == source)
                .limit(1)
            )
            is None
        )


def late_unacknowledged(
    db: Database, agency_id: str, now: datetime
) -> list[tuple[str, str | None]]:
    """(case reference, agency reference) of the agency's lines still `sent` after their
    acknowledgement date, oldest first."""
    with db.session(read_only=True) as s:
        return [
            (case_ref, ref)
            for case_ref, ref in s.execute(
                select(Case.reference, Assignment.agency_reference)
                .join(Case, Case.id == Assignment.case_id)
                .where(
                    Assignment.agency_id == agency_id,
                    Assignment.status == lifecycle.SENT,
                    Assignment.acknowledge_due_at.is_not(None),
                    Assignment.acknowledge_due_at < now,
                )
                .order_by(Assignment.id)
                .limit(200)
            )
        ]


def flag_shared_references(s: Session, agency_id: str, references: set[str], now: datetime) -> int:
    """After receipts are recorded: an agency reference now held by two lines of the agency
    (its numbering started over) is flagged for operators and in each case's evidence.
    Returns how many references are shared. One indexed query over the references given (not
    over all the agency's lines); the holders are read only when one is shared."""
    shared = 0
    dialect = s.get_bind().dialect.name
    for chunk in _chunks(references):
        twice = list(
            s.scalars(
                select(Assignment.agency_reference)
                .where(
                    Assignment.agency_id == agency_id,
                    bulk.any_of(Assignment.agency_reference, chunk, dialect),
                )
                .group_by(Assignment.agency_reference)
                .having(func.count(func.distinct(Assignment.case_id)) > 1)
            )
        )
        if not twice:
            continue
        rows = s.execute(
            select(Assignment.agency_reference, Assignment.case_id, Case.reference)
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.agency_id == agency_id, Assignment.agency_reference.in_(twice))
            .order_by(Assignment.id)
        ).all()
        holders: dict[str, list[tuple[int, str]]] = {}
        for ref, case_id, case_ref in rows:
            holders.setdefault(ref, []).append((case_id, case_ref))
        for ref, cases in holders.items():
            shared += 1
            record_alert(
                s,
                agency_id,
                _shared(ref, sorted({c for _, c in cases})),
                now,
                tuple(i for i, _ in cases),
            )
    return shared


def _shared(reference: str, case_refs: list[str]) -> FeedAlert:
    cases = ", ".join(case_refs)
    return FeedAlert(
        REFERENCE_SHARED,
        f"reference {reference[:128]} held by {cases}"[:460],
        f"the agency's reference {reference!r} is held by more than one case ({cases}): its "
        "numbering started over. Updates naming only that reference are not applied to any of "
        "them; check with the agency which case it means.",
    )


def get_cursor(db: Database, agency_id: str) -> str | None:
    with db.session(read_only=True) as s:
        return s.scalar(select(PollCursor.cursor).where(PollCursor.agency_id == agency_id))


def _cursor_row(s: Session, agency_id: str) -> PollCursor:
    insert_if_missing(s, PollCursor, "agency_id", agency_id=agency_id)
    return s.scalars(select(PollCursor).where(PollCursor.agency_id == agency_id)).one()


# A poll's updates are applied in transactions of at most this many, oldest first. Applying
# locks the lines it touches until it commits, and a receipt being recorded for one of them
# waits for that: a poll of thousands of updates in one transaction held an agency's
# deliveries up for as long as it took (21 s on a loaded machine in the chaos test).
POLL_APPLY_GROUP = 200


def apply_poll(
    db: Database,
    mapping: AgencyMapping,
    result: PollResult,
    now: datetime,
    worker_id: str | None = None,
    alerts: tuple[FeedAlert, ...] = (),
    renew: Callable[[], object] | None = None,
) -> ApplyStats:
    """Apply a poll's updates, oldest first, in groups of POLL_APPLY_GROUP, each its own
    transaction, and save the cursor with the last group. Applying is idempotent, so a worker
    that stops halfway leaves the cursor where it was and the next poll applies the rest (what
    was applied comes back as duplicates). `renew`, called between groups, keeps the poll lease.

    With `worker_id`, the cursor is saved only if that worker still holds the poll lease; a worker
    that lost it still applies the updates (that is idempotent) but does not move the cursor.
    The assignments, the events they already have and the parked updates are loaded per group
    in a few queries, so a poll of thousands of updates costs no per-update round trips.
    """
    # the order _apply gives them: a date in the future counts as now (_bounded)
    updates = sorted(result.updates, key=lambda u: _event_time(u.occurred_at, now))
    groups = [
        tuple(updates[i : i + POLL_APPLY_GROUP]) for i in range(0, len(updates), POLL_APPLY_GROUP)
    ] or [()]
    stats = ApplyStats()
    for n, group in enumerate(groups):
        if n and renew is not None:
            renew()
        with db.session() as s:
            if n == 0:
                for alert in alerts:  # recorded with the first group: what they explain follows
                    record_alert(s, mapping.id, alert, now)
                for refusal in result.refusals:  # about the delivery itself: before any status
                    stats.add(_apply_refusal(s, mapping, refusal, now))
            stats.merge(_apply(s, mapping, group, result.problems if n == 0 else (), now))
            if n == len(groups) - 1:
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
        return apply_in(s, mapping, updates, now)


def apply_in(
    s: Session, mapping: AgencyMapping, updates: tuple[StatusUpdate, ...], now: datetime
) -> ApplyStats:
    """`apply_updates` in the caller's transaction (hub.operations records who did it in the
    same one)."""
    return _apply(s, mapping, updates, (), now)


def _apply(s: Session, mapping: AgencyMapping, updates_in, problems, now: datetime) -> ApplyStats:
    stats = ApplyStats()
    parked = _parked(s, mapping.id)
    updates = []
    for update in map(_cleaned, updates_in):
        refused = _refusal(update)
        if refused:
            stats.add(record_problem(s, mapping.id, refused, now))
        else:
            updates.append(_bounded(update, now))
    updates.sort(key=lambda u: u.occurred_at)
    matcher = Matcher(s, mapping.id)
    matcher.load(
        refs={u.agency_reference for u in [*updates, *parked] if u.agency_reference},
        case_refs={u.case_reference for u in [*updates, *parked] if u.case_reference},
        keys={u.key() for u in updates} | {row.update_key for row in parked},
    )
    # Updates parked while a receipt was being recorded concurrently go first, in order.
    for row in parked:
        a, _ = matcher.resolve(row.agency_reference, row.case_reference)
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


_CONTROL = str.maketrans({c: None for c in range(32) if chr(c) not in "\t\n\r"} | {127: None})


def clean(text: str | None) -> str | None:
    """Far-side text as the hub stores it: no NUL or other control characters (PostgreSQL
    refuses NUL in text; the others only hide what an operator should see)."""
    return text.translate(_CONTROL) if text else text


def _cleaned(update: StatusUpdate) -> StatusUpdate:
    fields = ("agency_status", "agency_reference", "case_reference", "message", "update_id")
    values = {name: clean(getattr(update, name)) for name in fields}
    if all(values[name] == getattr(update, name) for name in fields):
        return update
    return replace(update, **values)


def _refusal(update: StatusUpdate) -> InboundProblemValue | None:
    """An update the hub cannot store as it is, as an operator problem saying which value."""
    for name, limit in LIMITS.items():
        value = getattr(update, name)
        if value is not None and len(value) > limit:
            return InboundProblemValue(
                f"{update.update_id or update.key()}"[:400],
                f"the agency's {name.replace('_', ' ')} is {len(value)} characters long; "
                f"at most {limit} fit (the update was not applied)",
                f"{name}: {value[:300]}\nstatus: {update.agency_status[:100]}",
            )
    return None


def _event_time(occurred_at: datetime, now: datetime) -> datetime:
    """When an update counts as having happened: its own date, or the hub's clock when the
    agency dated it further in the future than CLOCK_SKEW."""
    return occurred_at if occurred_at <= now + CLOCK_SKEW else now


def _bounded(update: StatusUpdate, now: datetime) -> StatusUpdate:
    """The update with its event time bounded by the hub's clock (flagged in its message)."""
    if _event_time(update.occurred_at, now) == update.occurred_at:
        return update
    note = (
        f"(the agency dated this {update.occurred_at.isoformat(timespec='seconds')}, "
        "in the future; the hub's receive time is used)"
    )
    return replace(
        update,
        occurred_at=now,
        message=f"{update.message} {note}" if update.message else note,
        update_id=update.update_id or update.key()[2:],
    )


def _apply_refusal(s: Session, mapping: AgencyMapping, refusal: Refusal, now: datetime) -> str:
    """The agency's side refused a delivery it seemed to have: dead letter, with its reason."""
    condition = (
        Delivery.idempotency_key == refusal.idempotency_key
        if refusal.idempotency_key
        else (Assignment.agency_reference == refusal.agency_reference) & (Delivery.kind == "case")
    )
    found = s.execute(
        select(Delivery, Assignment)
        .join(Assignment, Assignment.id == Delivery.assignment_id)
        .where(Delivery.agency_id == mapping.id, condition)
        .order_by(Delivery.id.desc())
        .limit(1)
        .with_for_update(of=Delivery)
    ).first()
    if found is None:
        return record_problem(
            s,
            mapping.id,
            InboundProblemValue(
                refusal.source[:400],
                f"the agency refused a delivery the hub does not know: {refusal.reason}",
                f"reference: {refusal.agency_reference or ''} key: {refusal.idempotency_key or ''}",
            ),
            now,
        )
    d, a = found
    error = f"refused by the agency: {refusal.reason}"[:2000]
    if d.state == DeliveryState.DEAD and d.last_error == error:
        return DUPLICATE
    a = s.scalars(
        select(Assignment)
        .where(Assignment.id == a.id)
        .options(selectinload(Assignment.case).selectinload(Case.assignments))
    ).one()
    evidence: dict[str, Any] = dict(
        at=now,
        actor="agency",
        action="delivery.refused",
        case_id=a.case_id,
        agency_id=a.agency_id,
        data={"reason": refusal.reason, "source": refusal.source, "delivery": d.id},
    )
    if (
        d.state != DeliveryState.DONE
    ):  # resent meanwhile: the refusal is history, the new attempt counts
        lifecycle.add_event(
            s,
            a.case,
            actor="agency",
            at=now,
            now=now,
            assignment=a,
            from_status=a.status,
            to_status=a.status,
            message=f"An earlier delivery was refused ({refusal.reason}); it has been resent.",
            kind="agency_note",
        )
        audit.defer(s, **evidence)
        return STALE
    d.state, d.dead_at, d.updated_at = DeliveryState.DEAD, now, now
    d.last_error, d.last_error_kind = error, "refused"
    if a.status in (lifecycle.SENT, lifecycle.QUEUED):
        lifecycle.move(
            s,
            a,
            lifecycle.UNDELIVERABLE,
            actor="agency",
            at=now,
            now=now,
            message=f"The agency's system refused the case: {refusal.reason}. Operators will "
            "correct it and send it again.",
            kind="delivery_refused",
        )
    audit.record(s, **evidence)
    lifecycle.refresh_case(a.case, now)
    return APPLIED


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
        self.holders: dict[str, list[Assignment]] = {}
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
                self.holders.setdefault(a.agency_reference or "", []).append(a)
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
        return self.resolve(agency_reference, case_reference)[0]

    def resolve(
        self, agency_reference: str | None, case_reference: str | None
    ) -> tuple[Assignment | None, FeedAlert | None]:
        """The assignment an update names, and an alert when its agency reference is held by
        another line too. Our own case reference, when the update carries it, decides; a
        reference two open lines hold, with nothing else to tell them apart, names none."""
        holders = self.holders.get(agency_reference or "", []) if agency_reference else []
        by_case = self.by_case.get(case_reference) if case_reference else None
        if by_case is not None:
            # the line of that case holding the reference (a case referred back to an agency
            # has two lines there), else the case's newest line
            same = [a for a in holders if a.case_id == by_case.case_id]
            others = [a for a in holders if a.case_id != by_case.case_id]
            alert = None
            if others and agency_reference:
                alert = _shared(agency_reference, _case_refs([*others, by_case]))
            return (same[-1] if same else by_case), alert
        if not holders:
            return None, None
        if case_reference and all(a.case.reference != case_reference for a in holders):
            # Another case of ours under a reference an older line holds (the agency numbered
            # anew): wait for that case's receipt rather than touch the older line.
            return None, _shared(agency_reference or "", [*_case_refs(holders), case_reference])
        cases = {a.case_id for a in holders}
        if len(cases) > 1:
            open_ = [a for a in holders if not lifecycle.is_terminal(a.status)]
            if len({a.case_id for a in open_}) == 1:
                return open_[-1], None
            return None, _shared(agency_reference or "", _case_refs(holders))
        return holders[-1], None


def _case_refs(assignments: list[Assignment]) -> list[str]:
    return sorted({a.case.reference for a in assignments})


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
    """Keep an unreadable inbound item for operators, once per content: the same item read
    again is a DUPLICATE; another item under the same name (a second mail with a Message-ID
    already seen) is kept as a problem of its own, its name suffixed with its digest."""
    problem = InboundProblemValue(
        clean(problem.source) or "", clean(problem.reason) or "", clean(problem.excerpt) or ""
    )
    digest = hashlib.sha256(f"{problem.reason}\0{problem.excerpt}".encode()).hexdigest()[:16]
    source = problem.source[:460]
    rows = s.execute(
        select(InboundProblem.source, InboundProblem.reason, InboundProblem.excerpt).where(
            InboundProblem.agency_id == agency_id,
            or_(InboundProblem.source == source, InboundProblem.source == f"{source} #{digest}"),
        )
    ).all()
    if any(
        (reason, excerpt or "") == (problem.reason, problem.excerpt[:4000])
        for _, reason, excerpt in rows
    ):
        return DUPLICATE
    s.add(
        InboundProblem(
            agency_id=agency_id,
            source=f"{source} #{digest}" if rows else source,
            reason=problem.reason,
            excerpt=problem.excerpt[:4000] or None,
            received_at=now,
        )
    )
    audit.defer(
        s,
        at=now,
        actor="agency",
        action="inbound.problem",
        case_id=None,
        agency_id=agency_id,
        data={"source": source, "reason": problem.reason, "content_digest": digest},
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
    assignment, alert = matcher.resolve(update.agency_reference, update.case_reference)
    key = update.key()
    if alert is not None:
        holders = matcher.holders.get(update.agency_reference or "", [])
        record_alert(s, mapping.id, alert, now, tuple(sorted({a.case_id for a in holders})))
        if assignment is None and not update.case_reference:
            return record_problem(
                s,
                mapping.id,
                InboundProblemValue(
                    f"{update.update_id or key}"[:400],
                    f"the update names the agency reference {update.agency_reference!r}, which "
                    "more than one case holds; it was applied to none of them",
                    f"status: {update.agency_status[:100]}\n{(update.message or '')[:1000]}",
                ),
                now,
            )
    # Until the receipt is recorded the assignment is not `sent`; park the update so the timeline
    # keeps its order (sent, then the agency's statuses). The receipt applies it.
    if assignment is None and update.automatic:
        return record_problem(
            s,
            mapping.id,
            InboundProblemValue(
                (update.update_id or key)[:400],
                f"automatic reply ({update.automatic}) about no known case",
                update.message or "",
            ),
            now,
        )
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
    """`_apply_one`, and its outcome on the evidence log (applied, or refused as stale, unknown,
    not allowed or an automatic note); a duplicate was recorded the first time."""
    outcome = _apply_one(s, mapping, a, update, now, key, seen)
    if outcome != DUPLICATE:
        audit.defer(
            s,
            at=now,
            actor="agency",
            action=f"status.{outcome}",
            case_id=a.case_id,
            agency_id=a.agency_id,
            data={
                "agency_reference": update.agency_reference,
                "agency_status": update.agency_status,
                "occurred_at": update.occurred_at.isoformat(),
                "update": key or update.key(),
                "message_sha256": hashlib.sha256((update.message or "").encode()).hexdigest(),
            },
        )
    return outcome


def _apply_one(
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
    common = dict(
        actor="agency",
        at=update.occurred_at,
        now=now,
        agency_status=update.agency_status or None,
        dedupe_key=key,
    )

    def keep(message: str, outcome: str) -> str:
        """On the timeline as the agency's note; the line does not move."""
        lifecycle.add_event(
            s,
            a.case,
            assignment=a,
            from_status=a.status,
            to_status=a.status,
            message=message,
            **common,
            kind="agency_note",
        )
        return outcome

    said = f": {update.message}" if update.message else ""
    if update.automatic:
        return keep(
            f"Automatic reply from the agency ({update.automatic}); no status was taken "
            f"from it{said}",
            NOTE,
        )
    rule = mapping.map_status(update.agency_status)
    if rule is None:
        return keep(
            f"Unknown status code {update.agency_status!r} from the agency{said} (not applied)",
            UNKNOWN,
        )
    if a.status_at is not None and update.occurred_at < a.status_at:
        return keep(
            f"{update.message or update.agency_status} (arrived late; status kept at {a.status})",
            STALE,
        )
    common["reason"] = update.reason
    if a.status != rule.status and not lifecycle.can_move(a.status, rule.status):
        # Not a move the status machine allows from here (a line the agency's server refused
        # cannot be "received"): kept on the timeline as a note, the line unchanged.
        lifecycle.move(s, a, rule.status, message=update.message, **common, kind="agency_status")
        return NOT_ALLOWED
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


def parked_for(
    s: Session, agency_id: str, agency_references: set[str], case_references: set[str]
) -> tuple[set[str], set[str]]:
    """Which of these agency references and case references have updates waiting for their
    receipt (`apply_unmatched` matches on either): one indexed query for a whole group, so
    only the lines that have one take the slow way."""
    if not agency_references and not case_references:
        return set(), set()
    dialect = s.get_bind().dialect.name
    rows = s.execute(
        select(UnmatchedUpdate.agency_reference, UnmatchedUpdate.case_reference).where(
            UnmatchedUpdate.agency_id == agency_id,
            UnmatchedUpdate.resolved_at.is_(None),
            or_(
                bulk.any_of(UnmatchedUpdate.agency_reference, sorted(agency_references), dialect),
                bulk.any_of(UnmatchedUpdate.case_reference, sorted(case_references), dialect),
            ),
        )
    ).all()
    return (
        {r for r, _ in rows if r in agency_references},
        {c for _, c in rows if c in case_references},
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
