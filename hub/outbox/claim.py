"""Claiming: lease due deliveries of one agency, as its breaker, pause and in-flight cap allow,
with everything needed to render and send them; hand back what was never tried.

A claimed row carries a lease. A worker that dies simply lets it expire and any worker claims the
row again; the idempotency key is the same on every attempt, so the agency recognises a repeat.
On PostgreSQL, claims use FOR UPDATE SKIP LOCKED so many workers share the work, and picking,
leasing, logging the attempts and reading the lines and cases is one statement (`_one_trip`); on
SQLite one worker is the supported setup (writes are serialised by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import selectinload

from adapters.base import Attachment as AttachmentValue
from hub import control
from hub.bulk import any_of
from hub.canonical import case_document, document_from_rows
from hub.db import Database, insert_if_missing
from hub.models import (
    Assignment,
    Attachment,
    Case,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Message,
    Party,
    WorkerBeat,
)
from hub.outbox.rows import CASE
from mappings.engine import DeliveryPolicy

PENDING, LEASED, RETRY = DeliveryState.PENDING, DeliveryState.LEASED, DeliveryState.RETRY


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to one worker, with everything needed to render and send it."""

    delivery_id: int
    attempt_id: int
    attempt: int
    agency_id: str
    idempotency_key: str
    case_reference: str
    language: str
    document: dict[str, Any]
    payload: dict[str, Any] | None
    lease_expires_at: datetime
    worker_id: str = ""
    kind: str = "case"  # case | message
    agency_reference: str | None = None
    message_text: str | None = None
    attachments: tuple[AttachmentValue, ...] = ()
    assignment_id: int | None = None


def due_condition(now: datetime):
    return or_(
        and_(Delivery.state.in_((PENDING, RETRY)), Delivery.next_attempt_at <= now),
        and_(Delivery.state == LEASED, Delivery.lease_expires_at <= now),
    )


def counts_by_agency(s) -> dict[str, dict[str, int]]:
    """How many deliveries each agency has in each state (pending, retry, leased, dead, ...)."""
    counts: dict[str, dict[str, int]] = {}
    for agency, state, n in s.execute(
        select(Delivery.agency_id, Delivery.state, func.count()).group_by(
            Delivery.agency_id, Delivery.state
        )
    ):
        counts.setdefault(agency, {})[state] = n
    return counts


def agencies_with_due(db: Database, now: datetime) -> list[str]:
    """The agencies that have a delivery to make now (one indexed query, for the dispatcher)."""
    with db.session(read_only=True) as s:
        return list(s.scalars(select(Delivery.agency_id).where(due_condition(now)).distinct()))


def claim(
    db: Database,
    *,
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    agency_id: str,
    policy: DeliveryPolicy | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries of one agency, as its breaker, pause and in-flight cap
    allow. The agency's control row is locked for the claim, so the cap holds across workers."""
    policy = policy or DeliveryPolicy()
    lease_until = now + timedelta(seconds=lease_seconds)
    with db.session() as s:
        state = control.lock(s, agency_id)
        admitted = control.admit(state, now, lease_seconds)
        if admitted == 0:
            return []
        # The agency's leases in flight, this worker's among them, and the other workers alive
        # lately (who share the allowance): one query.
        live = (
            select(func.count())
            .select_from(WorkerBeat)
            .where(
                WorkerBeat.seen_at > now - timedelta(seconds=lease_seconds),
                WorkerBeat.worker_id != worker_id,
            )
            .scalar_subquery()
        )
        in_flight, mine, live = s.execute(
            select(
                func.count(),
                func.count().filter(Delivery.leased_by == worker_id),
                live,
            )
            .select_from(Delivery)
            .where(
                Delivery.agency_id == agency_id,
                Delivery.state == LEASED,
                Delivery.lease_expires_at > now,
            )
        ).one()
        room = max(0, policy.max_in_flight - in_flight)
        # This worker's fair share of the allowance: the workers alive lately divide it, so
        # several deliver to one agency at once and a killed one holds only its share.
        share = -(-policy.max_in_flight // (1 + (live or 0))) - (mine or 0)
        n = min(limit, room, share, admitted if admitted is not None else limit)
        if n <= 0:
            return []
        lease = _lease_in_one_statement if db.dialect == "postgresql" else _lease_in_steps
        rows, views = lease(s, agency_id, worker_id, now, lease_until, n)
        if not rows:
            if admitted == 1:  # nothing to probe with: stay open, try again after the pause
                state.breaker = control.OPEN
            return []
        messages = (
            {
                m.id: m
                for m in s.scalars(
                    select(Message)
                    .where(Message.id.in_([r.message_id for r in rows if r.message_id]))
                    .options(selectinload(Message.attachments))
                )
            }
            if any(r.message_id for r in rows)
            else {}
        )
        out = []
        for r in rows:
            view = views[r.assignment_id]
            message = messages.get(r.message_id) if r.message_id else None
            files = message.attachments if message else (view.attachments if r.kind == CASE else ())
            out.append(
                Claimed(
                    delivery_id=r.id,
                    attempt_id=r.attempt_id,
                    attempt=r.attempts,
                    agency_id=agency_id,
                    idempotency_key=r.idempotency_key,
                    case_reference=view.case_reference,
                    language=view.language,
                    document=view.document if r.kind == CASE and r.payload is None else {},
                    payload=r.payload,
                    lease_expires_at=lease_until,
                    worker_id=worker_id,
                    kind=r.kind,
                    agency_reference=view.agency_reference,
                    message_text=message.text if message else None,
                    attachments=tuple(
                        AttachmentValue(x.filename, x.content_type, x.data) for x in files
                    ),
                    assignment_id=r.assignment_id,
                )
            )
        return out


@dataclass(frozen=True)
class LineView:
    case_reference: str
    language: str
    agency_reference: str | None
    document: dict[str, Any]
    attachments: tuple[Any, ...]


def _due(t, now: datetime):
    return or_(
        and_(t.c.state.in_((PENDING, RETRY)), t.c.next_attempt_at <= now),
        and_(t.c.state == LEASED, t.c.lease_expires_at <= now),
    )


# What a claim returns of each leased delivery, and the columns of its line and case that
# rendering and sending need (hub/canonical.py reads them by name).
_LEASED = (
    "id",
    "assignment_id",
    "attempts",
    "idempotency_key",
    "payload",
    "kind",
    "message_id",
    "next_attempt_at",
)
_LINE = (
    "id",
    "case_id",
    "agency_id",
    "reason",
    "acknowledge_due_at",
    "answer_due_at",
    "agency_reference",
)
_CASE = (
    "id",
    "reference",
    "kind",
    "domain",
    "language",
    "description",
    "incident_date",
    "incident_date_precision",
    "amount_cents",
    "currency",
    "created_at",
    "anonymous_to_trader",
)


def _lease_in_steps(
    s, agency_id, worker_id, now, lease_until, n
) -> tuple[list[Any], dict[int, LineView]]:
    """SQLite (one writer): lease the rows (UPDATE ... RETURNING), log their attempts, then read
    what their deliveries need (`documents_for`)."""
    conn = s.connection()
    t = Delivery.__table__
    pick = (
        select(t.c.id)
        .where(t.c.agency_id == agency_id, _due(t, now))
        .order_by(t.c.next_attempt_at, t.c.id)
        .limit(n)
    )
    rows = sorted(
        conn.execute(
            update(t)
            .where(t.c.id.in_(pick))
            .values(
                state=LEASED,
                leased_by=worker_id,
                lease_expires_at=lease_until,
                attempts=t.c.attempts + 1,
                updated_at=now,
            )
            .returning(*(t.c[name] for name in _LEASED))
        ).all(),
        key=lambda r: (r.next_attempt_at, r.id),
    )
    if not rows:
        return [], {}
    # The attempts as one executemany, then their ids in one query: with RETURNING and the
    # parameters' order kept, SQLAlchemy sends SQLite one INSERT per row. This writer holds the
    # database (BEGIN IMMEDIATE), so each row's newest attempt is the one just logged.
    att = DeliveryAttempt.__table__
    conn.execute(
        insert(att),
        [
            {"delivery_id": r.id, "number": r.attempts, "worker": worker_id, "started_at": now}
            for r in rows
        ],
    )
    newest = dict(
        conn.execute(
            select(att.c.delivery_id, func.max(att.c.id))
            .where(att.c.delivery_id.in_([r.id for r in rows]))
            .group_by(att.c.delivery_id)
        ).all()
    )
    leased = [SimpleNamespace(**r._asdict(), attempt_id=newest[r.id]) for r in rows]
    need = {r.assignment_id for r in leased if r.kind == CASE and r.payload is None}
    return leased, documents_for(s, [r.assignment_id for r in leased], need=need)


@functools.cache
def _one_trip() -> Any:
    """PostgreSQL's claim as ONE statement, built once (SQLAlchemy finds its compiled form, the
    driver its prepared one): pick the due rows (`FOR UPDATE SKIP LOCKED`), lease them, log their
    attempts, and return each with its line, its case, how many lines the case has and whether
    it has files. The agency's row is locked and the count decided before, by `claim`."""
    t, att = Delivery.__table__, DeliveryAttempt.__table__
    a, c, files = Assignment.__table__, Case.__table__, Attachment.__table__
    now = bindparam("claim_now", type_=t.c.updated_at.type)
    worker = bindparam("claim_worker", type_=t.c.leased_by.type)
    picked = (
        select(t.c.id)
        .where(t.c.agency_id == bindparam("claim_agency", type_=t.c.agency_id.type), _due(t, now))
        .order_by(t.c.next_attempt_at, t.c.id)
        .limit(bindparam("claim_n", type_=Integer()))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    leased = (
        update(t)
        .where(t.c.id == picked.c.id)
        .values(
            state=LEASED,
            leased_by=worker,
            lease_expires_at=bindparam("claim_until", type_=t.c.lease_expires_at.type),
            attempts=t.c.attempts + 1,
            updated_at=now,
        )
        .returning(*(t.c[name] for name in _LEASED))
        .cte("leased")
    )
    attempts = (
        insert(att)
        .from_select(
            ["delivery_id", "number", "worker", "started_at"],
            select(
                leased.c.id,
                leased.c.attempts,
                worker,
                now,
            ),
        )
        .returning(att.c.id, att.c.delivery_id)
        .cte("attempts")
    )
    others = a.alias("others")
    return (
        select(
            leased,
            attempts.c.id.label("attempt_id"),
            *(a.c[name].label(f"line_{name}") for name in _LINE),
            *(c.c[name].label(f"case_{name}") for name in _CASE),
            select(func.count())
            .where(others.c.case_id == a.c.case_id)
            .scalar_subquery()
            .label("case_lines"),
            exists()
            .where(files.c.case_id == a.c.case_id, files.c.message_id.is_(None))
            .label("case_has_files"),
        )
        .join_from(leased, attempts, attempts.c.delivery_id == leased.c.id)
        .join(a, a.c.id == leased.c.assignment_id)
        .join(c, c.c.id == a.c.case_id)
        .order_by(leased.c.next_attempt_at, leased.c.id)
    )


def _lease_in_one_statement(
    s, agency_id, worker_id, now, lease_until, n
) -> tuple[list[Any], dict[int, LineView]]:
    """PostgreSQL: `_one_trip`, then the parties of the cases whose document is built here and
    the files of the cases that have any."""
    conn = s.connection()
    rows = conn.execute(
        _one_trip(),
        {
            "claim_agency": agency_id,
            "claim_worker": worker_id,
            "claim_now": now,
            "claim_until": lease_until,
            "claim_n": n,
        },
    ).all()
    if not rows:
        return [], {}
    lines, cases, counts = {}, {}, {}
    for r in rows:
        m = r._mapping
        line = SimpleNamespace(**{name: m[f"line_{name}"] for name in _LINE})
        lines[line.id] = line
        if line.case_id not in cases:
            cases[line.case_id] = SimpleNamespace(**{name: m[f"case_{name}"] for name in _CASE})
            counts[line.case_id] = r.case_lines
    need = {r.assignment_id for r in rows if r.kind == CASE and r.payload is None}
    views = _views(
        s,
        lines,
        cases,
        counts,
        need,
        with_parties={lines[aid].case_id for aid in need},
        with_files={r.line_case_id for r in rows if r.case_has_files},
    )
    return rows, views


def documents_for(s, assignment_ids: list[int], need: set[int]) -> dict[int, LineView]:
    """What the lines' deliveries need, read with Core in a few queries: the case reference and
    language, the agency reference, the canonical document (only for `need`: first attempts;
    retries send the stored payload) and the case's files. A case with several lines (a
    referral) needs its history, which the ORM path builds."""
    at, ct = Assignment.__table__, Case.__table__
    conn = s.connection()
    dialect = conn.dialect.name
    lines = {
        r.id: r for r in conn.execute(select(at).where(any_of(at.c.id, assignment_ids, dialect)))
    }
    case_ids = sorted({line.case_id for line in lines.values()})
    cases = {r.id: r for r in conn.execute(select(ct).where(any_of(ct.c.id, case_ids, dialect)))}
    counts = dict(
        conn.execute(
            select(at.c.case_id, func.count())
            .where(any_of(at.c.case_id, case_ids, dialect))
            .group_by(at.c.case_id)
        ).all()
    )
    return _views(
        s, lines, cases, counts, need, with_parties=set(case_ids), with_files=set(case_ids)
    )


def _views(
    s,
    lines: dict[int, Any],
    cases: dict[int, Any],
    counts: dict[int, int],
    need: set[int],
    *,
    with_parties: set[int],
    with_files: set[int],
) -> dict[int, LineView]:
    """Each line's view from its line and case rows, reading the parties and the files of the
    cases named (one query each, none when no case is named)."""
    pt, att = Party.__table__, Attachment.__table__
    conn = s.connection()
    dialect = conn.dialect.name
    parties: dict[int, dict[str, Any]] = {}
    if with_parties:
        for p in conn.execute(
            select(pt).where(any_of(pt.c.case_id, sorted(with_parties), dialect))
        ):
            parties.setdefault(p.case_id, {})[p.role] = p
    files: dict[int, list[Any]] = {}
    if with_files:
        for f in conn.execute(
            select(att).where(
                any_of(att.c.case_id, sorted(with_files), dialect), att.c.message_id.is_(None)
            )
        ):
            files.setdefault(f.case_id, []).append(f)
    out = {}
    for aid, line in lines.items():
        case = cases[line.case_id]
        document: dict[str, Any] = {}
        if aid in need:
            if counts[line.case_id] > 1:
                a = s.get(Assignment, aid)
                document = case_document(a.case, a)
            else:
                document = document_from_rows(case, parties.get(case.id, {}), line)
        out[aid] = LineView(
            case.reference,
            case.language,
            line.agency_reference,
            document,
            tuple(files.get(case.id, ())),
        )
    return out


def release(db: Database, items: list[Claimed], now: datetime) -> int:
    """Hand back claimed deliveries that were never tried (their agency's breaker just opened):
    the attempt is not counted and the row waits for the breaker like the others."""
    released = 0
    with db.session() as s:
        for item in items:
            result = s.execute(
                update(Delivery)
                .where(
                    Delivery.id == item.delivery_id,
                    Delivery.state == LEASED,
                    Delivery.leased_by == item.worker_id,
                )
                .values(
                    state=RETRY,
                    attempts=Delivery.attempts - 1,
                    leased_by=None,
                    lease_expires_at=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
            if result.rowcount:
                s.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id == item.attempt_id))
                released += 1
    return released


def heartbeat(
    db: Database, worker_id: str, now: datetime, lease_seconds: float, held: Iterable[int] = ()
) -> int:
    """A live worker's beat: it is seen now, and the leases of the deliveries it is working on
    (`held`: claimed by a lane that is still running) run `lease_seconds` from now. Leases are
    short, so a killed worker's rows come back within seconds, and renewed while the work is
    alive, however long a send takes; a lane that died stops holding its rows, which then
    expire like a killed worker's. Returns the leases renewed."""
    renewed = 0
    with db.session() as s:
        seen = s.execute(
            update(WorkerBeat).where(WorkerBeat.worker_id == worker_id).values(seen_at=now)
        )
        if not seen.rowcount:
            insert_if_missing(s, WorkerBeat, "worker_id", worker_id=worker_id, seen_at=now)
        ids = sorted(held)
        for i in range(0, len(ids), 1000):
            # In id order, skipping rows another transaction holds (the lane's recorder marking
            # them done): a beat never waits for, or deadlocks with, the work it keeps alive.
            pick = (
                select(Delivery.id)
                .where(
                    any_of(Delivery.id, ids[i : i + 1000], db.dialect),
                    Delivery.state == LEASED,
                    Delivery.leased_by == worker_id,
                )
                .order_by(Delivery.id)
            )
            if db.dialect == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            renewed += (
                s.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(pick))
                    .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                ).rowcount
                or 0
            )
    return renewed


def retire(db: Database, worker_id: str) -> None:
    """A worker stopping cleanly leaves the share count at once."""
    with db.session() as s:
        s.execute(delete(WorkerBeat).where(WorkerBeat.worker_id == worker_id))
