"""The outbox: claim due deliveries under a lease, record receipts, schedule retries, dead-letter.

A claimed row carries a lease. A worker that dies simply lets it expire and any worker claims the
row again; the idempotency key is the same on every attempt, so the agency recognises a repeat.
On PostgreSQL, claims use FOR UPDATE SKIP LOCKED so many workers share the work; on SQLite one
worker is the supported setup (writes are serialised by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import selectinload

from adapters.base import AdapterError, Receipt
from adapters.base import Attachment as AttachmentValue
from hub import audit, control, inbound, lifecycle
from hub.canonical import case_document, document_from_rows
from hub.db import Database
from hub.models import (
    Assignment,
    Attachment,
    AuditEntry,
    Case,
    Delivery,
    DeliveryAttempt,
    Message,
    Party,
    StatusEvent,
)
from mappings.engine import AgencyMapping, DeliveryPolicy, RetryPolicy

PENDING, LEASED, DONE, RETRY, DEAD = "pending", "leased", "done", "retry", "dead"
CASE, MESSAGE = "case", "message"


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
        in_flight = (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.agency_id == agency_id,
                    Delivery.state == LEASED,
                    Delivery.lease_expires_at > now,
                )
            )
            or 0
        )
        room = max(0, policy.max_in_flight - in_flight)
        n = min(limit, room, admitted if admitted is not None else limit)
        if n <= 0:
            return []
        t = Delivery.__table__
        pick = (
            select(t.c.id)
            .where(t.c.agency_id == agency_id, _due(t, now))
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(n)
        )
        if db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        conn = s.connection()
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
                .returning(
                    t.c.id,
                    t.c.assignment_id,
                    t.c.attempts,
                    t.c.idempotency_key,
                    t.c.payload,
                    t.c.kind,
                    t.c.message_id,
                    t.c.next_attempt_at,
                )
            ).all(),
            key=lambda r: (r.next_attempt_at, r.id),
        )
        if not rows:
            if admitted == 1:  # nothing to probe with: stay open, try again after the pause
                state.breaker = control.OPEN
            return []
        attempt_ids = (
            conn.execute(
                insert(DeliveryAttempt.__table__).returning(
                    DeliveryAttempt.__table__.c.id, sort_by_parameter_order=True
                ),
                [
                    {
                        "delivery_id": r.id,
                        "number": r.attempts,
                        "worker": worker_id,
                        "started_at": now,
                    }
                    for r in rows
                ],
            )
            .scalars()
            .all()
        )
        views = documents_for(
            s,
            [r.assignment_id for r in rows],
            need={r.assignment_id for r in rows if r.kind == CASE and r.payload is None},
        )
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
        for r, attempt_id in zip(rows, attempt_ids, strict=True):
            view = views[r.assignment_id]
            message = messages.get(r.message_id) if r.message_id else None
            files = message.attachments if message else (view.attachments if r.kind == CASE else ())
            out.append(
                Claimed(
                    delivery_id=r.id,
                    attempt_id=attempt_id,
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


def documents_for(s, assignment_ids: list[int], need: set[int]) -> dict[int, LineView]:
    """What the lines' deliveries need, read with Core in a few queries: the case reference and
    language, the agency reference, the canonical document (only for `need`: first attempts;
    retries send the stored payload) and the case's files. A case with several lines (a
    referral) needs its history, which the ORM path builds."""
    at, ct, pt, att = Assignment.__table__, Case.__table__, Party.__table__, Attachment.__table__
    lines = {r.id: r for r in s.connection().execute(select(at).where(at.c.id.in_(assignment_ids)))}
    case_ids = {line.case_id for line in lines.values()}
    cases = {r.id: r for r in s.connection().execute(select(ct).where(ct.c.id.in_(case_ids)))}
    parties: dict[int, dict[str, Any]] = {}
    for p in s.connection().execute(select(pt).where(pt.c.case_id.in_(case_ids))):
        parties.setdefault(p.case_id, {})[p.role] = p
    files: dict[int, list[Any]] = {}
    for f in s.connection().execute(
        select(att).where(att.c.case_id.in_(case_ids), att.c.message_id.is_(None))
    ):
        files.setdefault(f.case_id, []).append(f)
    counts = dict(
        s.connection()
        .execute(
            select(at.c.case_id, func.count())
            .where(at.c.case_id.in_(case_ids))
            .group_by(at.c.case_id)
        )
        .all()
    )
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


def _finish_attempt(s, claimed: Claimed, now: datetime, outcome: str, error: str | None) -> None:
    s.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.id == claimed.attempt_id)
        .values(finished_at=now, outcome=outcome, error=error)
    )


def _locked_delivery(s, db: Database, delivery_id: int) -> Delivery:
    query = select(Delivery).where(Delivery.id == delivery_id)
    if db.dialect == "postgresql":
        query = query.with_for_update()
    return s.scalars(query).one()


def complete(
    db: Database,
    claimed: Claimed,
    receipt: Receipt,
    payload: dict[str, Any],
    now: datetime,
    mapping: AgencyMapping,
) -> bool:
    """Record the agency's receipt. Returns False when another worker already did (a no-op)."""
    return complete_many(db, [(claimed, receipt, payload)], now, mapping) == 1


def complete_many(
    db: Database,
    done: list[tuple[Claimed, Receipt, dict[str, Any]]],
    now: datetime,
    mapping: AgencyMapping,
) -> int:
    """Record a batch of receipts from one agency in one transaction; returns how many were new.

    A lane delivers a batch and records it here in a handful of Core statements instead of a
    dozen ORM round trips per case. Nothing is lost if the worker dies before: the leases
    expire, the cases are sent again with the same idempotency keys, and the agency answers with
    the cases it already has. Receipts another worker recorded meanwhile are skipped.
    """
    if not done:
        return 0
    deliveries_t, attempts_t = Delivery.__table__, DeliveryAttempt.__table__
    with db.session() as s:
        conn = s.connection()
        query = (
            select(
                deliveries_t.c.id,
                deliveries_t.c.state,
                deliveries_t.c.kind,
                deliveries_t.c.assignment_id,
                deliveries_t.c.idempotency_key,
            )
            .where(deliveries_t.c.id.in_([c.delivery_id for c, _, _ in done]))
            .order_by(deliveries_t.c.id)
        )
        if db.dialect == "postgresql":
            query = query.with_for_update()
        rows = {r.id: r for r in conn.execute(query)}
        conn.execute(
            update(attempts_t)
            .where(attempts_t.c.id == bindparam("attempt_id"))
            .values(finished_at=now, outcome="ok", error=None),
            [{"attempt_id": c.attempt_id} for c, _, _ in done],
        )
        fresh = [(c, r, p) for c, r, p in done if rows[c.delivery_id].state != DONE]
        if not fresh:
            return 0
        control.reachable(s, mapping.id, now)
        conn.execute(
            update(deliveries_t)
            .where(deliveries_t.c.id == bindparam("delivery_id"))
            .values(
                state=DONE,
                delivered_at=now,
                updated_at=now,
                lease_expires_at=None,
                leased_by=None,
                last_error=None,
                last_error_kind=None,
                payload=func.coalesce(deliveries_t.c.payload, bindparam("new_payload", type_=JSON)),
            ),
            [{"delivery_id": c.delivery_id, "new_payload": p} for c, _, p in fresh],
        )
        messages = [(c, r) for c, r, _ in fresh if rows[c.delivery_id].kind == MESSAGE]
        for c, r in messages:
            _message_delivered(s, s.get(Delivery, c.delivery_id), r, now, mapping)
        cases_ = [(c, r) for c, r, _ in fresh if rows[c.delivery_id].kind == CASE]
        if cases_:
            _record_receipts(s, rows, cases_, now, mapping)
        return len(fresh)


def _record_receipts(
    s, rows: dict, items: list[tuple[Claimed, Receipt]], now: datetime, mapping: AgencyMapping
) -> None:
    """The lines go to `sent` with the agency's reference, each with a timeline entry and a
    piece of evidence; each case's one status is recomputed. Core statements, one per table."""
    conn = s.connection()
    at, ev, au, ca = (
        Assignment.__table__,
        StatusEvent.__table__,
        AuditEntry.__table__,
        Case.__table__,
    )
    assignment_ids = sorted(rows[c.delivery_id].assignment_id for c, _ in items)
    lines = {
        r.id: r
        for r in conn.execute(
            select(at.c.id, at.c.case_id, at.c.status, at.c.agency_id)
            .where(at.c.id.in_(assignment_ids))
            .order_by(at.c.id)  # one lock order for every worker
            .with_for_update()  # a concurrent poll parks or applies, never both
        )
    }
    case_ids = sorted({line.case_id for line in lines.values()})
    heads = dict(
        conn.execute(
            select(au.c.case_id, au.c.hash).where(
                au.c.id.in_(
                    select(func.max(au.c.id))
                    .where(au.c.case_id.in_(case_ids))
                    .group_by(au.c.case_id)
                )
            )
        ).all()
    )
    name = mapping.name("en")
    moves, events, evidence = [], [], []
    for c, receipt in items:
        d = rows[c.delivery_id]
        line = lines[d.assignment_id]
        message = f"Delivered to {name}; their reference is {receipt.agency_reference}."
        to_sent = line.status in (lifecycle.QUEUED, lifecycle.UNDELIVERABLE)
        moves.append(
            {
                "aid": line.id,
                "ref": receipt.agency_reference,
                "st": lifecycle.SENT if to_sent else line.status,
            }
        )
        events.append(
            {
                "case_id": line.case_id,
                "assignment_id": line.id,
                "actor": "hub",
                "occurred_at": now,
                "recorded_at": now,
                "from_status": line.status if to_sent else None,
                "to_status": lifecycle.SENT if to_sent else None,
                "agency_status": None,
                "message": message,
                "dedupe_key": None,
                "kind": "delivered",
            }
        )
        data = audit.normalise(
            {
                "idempotency_key": d.idempotency_key,
                "attempt": c.attempt,
                "agency_reference": receipt.agency_reference,
                "duplicate": receipt.duplicate,
                **({"provisional": True} if receipt.provisional else {}),
                "exchange": dict(receipt.raw),
            }
        )
        prev = heads.get(line.case_id)
        heads[line.case_id] = audit.digest(
            prev, now, "hub", "delivery.receipt", line.agency_id, data
        )
        evidence.append(
            {
                "at": now,
                "actor": "hub",
                "action": "delivery.receipt",
                "case_id": line.case_id,
                "agency_id": line.agency_id,
                "data": data,
                "prev_hash": prev,
                "hash": heads[line.case_id],
            }
        )
    conn.execute(
        update(at)
        .where(at.c.id == bindparam("aid"))
        .values(agency_reference=bindparam("ref"), status=bindparam("st"), updated_at=now),
        moves,
    )
    conn.execute(insert(ev), events)
    conn.execute(insert(au), evidence)
    if inbound.has_parked(s, mapping.id):  # statuses that came before these receipts
        for a in s.scalars(
            select(Assignment)
            .where(Assignment.id.in_(assignment_ids))
            .options(selectinload(Assignment.case).selectinload(Case.assignments))
        ):
            inbound.apply_unmatched(s, mapping, a, now)
            lifecycle.refresh_case(a.case, now)
        return
    statuses: dict[int, list[str]] = {}
    for case_id, status in conn.execute(
        select(at.c.case_id, at.c.status).where(at.c.case_id.in_(case_ids))
    ):
        statuses.setdefault(case_id, []).append(status)
    current = dict(conn.execute(select(ca.c.id, ca.c.status).where(ca.c.id.in_(case_ids))).all())
    notify = []
    for case_id in case_ids:
        new = lifecycle.aggregate(statuses[case_id])
        if new != current[case_id] and new in lifecycle.NOTIFY_ON:
            notify.append(case_id)  # rare here (sent is not one): the ORM path tells the consumer
    conn.execute(
        update(ca)
        .where(ca.c.id == bindparam("cid"))
        .values(status=bindparam("st"), updated_at=now),
        [
            {"cid": cid, "st": lifecycle.aggregate(statuses[cid])}
            for cid in case_ids
            if cid not in notify
        ],
    )
    for case in s.scalars(
        select(Case)
        .where(Case.id.in_(notify))
        .options(
            selectinload(Case.assignments), selectinload(Case.events), selectinload(Case.parties)
        )
    ):
        lifecycle.refresh_case(case, now)


@dataclass(frozen=True)
class Failed:
    state: str  # the delivery's state now: retry | dead (or what another worker made it)
    breaker_opened: bool = False  # this failure opened the agency's breaker: stop the batch


def _line_with_case(s, assignment_id: int) -> Assignment:
    return s.scalars(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .options(selectinload(Assignment.case))
    ).one()


def _message_delivered(
    s, d: Delivery, receipt: Receipt, now: datetime, mapping: AgencyMapping
) -> None:
    message = s.get(Message, d.message_id)
    message.delivered_at = now
    a = _line_with_case(s, d.assignment_id)
    lifecycle.note(
        s,
        a,
        actor="hub",
        now=now,
        message=f"Your message was forwarded to {mapping.name(a.case.language)}.",
        kind="message_forwarded",
        action="message.delivered",
        data={
            "idempotency_key": d.idempotency_key,
            "message_id": d.message_id,
            "exchange": dict(receipt.raw),
        },
    )


def fail(
    db: Database,
    claimed: Claimed,
    error: AdapterError,
    now: datetime,
    policy: DeliveryPolicy | RetryPolicy,
    payload: dict[str, Any] | None = None,
    rng: _random.Random | None = None,
) -> Failed:
    """Record a failed attempt.

    Transient errors count towards the agency's breaker and retry with backoff until the round's
    attempts are used up; permanent errors dead-letter at once. A worker whose lease was taken
    over meanwhile only closes its attempt record.
    """
    delivery_policy = policy if isinstance(policy, DeliveryPolicy) else DeliveryPolicy(retry=policy)
    retry = delivery_policy.retry
    kind = "transient" if error.retryable else "permanent"
    with db.session() as s:
        d = _locked_delivery(s, db, claimed.delivery_id)
        _finish_attempt(s, claimed, now, kind, error.detail)
        if d.state != LEASED or (claimed.worker_id and d.leased_by != claimed.worker_id):
            return Failed(d.state)
        d.last_error, d.last_error_kind, d.updated_at = error.detail, kind, now
        d.lease_expires_at = d.leased_by = None
        if d.payload is None and payload is not None:
            d.payload = payload
        opened = False
        if error.retryable:
            opened = control.unreachable(s, d.agency_id, now, delivery_policy.breaker, error.detail)
        else:
            control.reachable(s, d.agency_id, now)
        round_attempts = d.attempts - d.round_started_attempts
        if error.retryable and round_attempts < retry.max_attempts:
            d.state = RETRY
            wait = retry.delay(round_attempts, rng, getattr(error, "retry_after", None))
            d.next_attempt_at = now + timedelta(seconds=wait)
            return Failed(RETRY, opened)
        d.state, d.dead_at = DEAD, now
        if d.kind == MESSAGE:
            a = _line_with_case(s, d.assignment_id)
            lifecycle.note(
                s,
                a,
                actor="hub",
                now=now,
                message="Your message could not be forwarded automatically; "
                "operators will forward it.",
                kind="message_delayed",
                action="message.dead",
                data={"error": error.detail, "kind": kind},
            )
            return Failed(DEAD, opened)
        a = s.scalars(
            select(Assignment)
            .where(Assignment.id == d.assignment_id)
            .options(selectinload(Assignment.case).selectinload(Case.assignments))
        ).one()
        why = "was refused" if not error.retryable else f"failed {round_attempts} times"
        if a.status == lifecycle.QUEUED:
            lifecycle.move(
                s,
                a,
                lifecycle.UNDELIVERABLE,
                actor="hub",
                at=now,
                now=now,
                message=f"Delivery {why}; operators will forward it. Last error: {error.detail}",
                kind="delivery_delayed",
            )
        audit.record(
            s,
            at=now,
            actor="hub",
            action="delivery.dead",
            case_id=a.case_id,
            agency_id=a.agency_id,
            data={"error": error.detail, "kind": kind, "attempts": d.attempts, "raw": error.raw},
        )
        lifecycle.refresh_case(a.case, now)
        return Failed(DEAD, opened)


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


# ------------------------------------------------------------------------------------ dead letters


@dataclass(frozen=True)
class Attempt:
    number: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None  # ok | transient | permanent | None (the worker died mid-attempt)
    error: str | None


@dataclass(frozen=True)
class DeadLetter:
    delivery_id: int
    agency_id: str
    case_reference: str
    idempotency_key: str
    attempts: int
    resends: int
    last_error: str | None
    last_error_kind: str | None
    dead_at: datetime | None
    payload: dict[str, Any] | None
    attempt_log: tuple[Attempt, ...] = ()


def dead_letters(
    db: Database, agency_id: str | None = None, delivery_ids: list[int] | None = None
) -> list[DeadLetter]:
    with db.session(read_only=True) as s:
        query = (
            select(Delivery, Case.reference)
            .join(Assignment, Assignment.id == Delivery.assignment_id)
            .join(Case, Case.id == Assignment.case_id)
            .where(Delivery.state == DEAD)
            .options(selectinload(Delivery.attempt_log))
            .order_by(Delivery.dead_at, Delivery.id)
        )
        if agency_id:
            query = query.where(Delivery.agency_id == agency_id)
        if delivery_ids:
            query = query.where(Delivery.id.in_(delivery_ids))
        return [
            DeadLetter(
                d.id,
                d.agency_id,
                ref,
                d.idempotency_key,
                d.attempts,
                d.resends,
                d.last_error,
                d.last_error_kind,
                d.dead_at,
                d.payload,
                tuple(
                    Attempt(a.number, a.worker, a.started_at, a.finished_at, a.outcome, a.error)
                    for a in d.attempt_log
                ),
            )
            for d, ref in s.execute(query)
        ]


@dataclass(frozen=True)
class ResendResult:
    resent: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...]  # (delivery id, why)


def resend(
    db: Database,
    *,
    now: datetime,
    operator: str,
    delivery_ids: list[int] | None = None,
    agency_id: str | None = None,
) -> ResendResult:
    """Put dead letters back in the queue with the same idempotency key and payload.

    Only rows that are dead at the moment of the update move, so two operators (or a retry of the
    same command) resending together deliver once: the second finds nothing dead to move.
    """
    if not delivery_ids and not agency_id:
        raise ValueError("name the dead letters to resend, or an agency")
    with db.session() as s:
        condition = [Delivery.state == DEAD]
        if delivery_ids:
            condition.append(Delivery.id.in_(delivery_ids))
        if agency_id:
            condition.append(Delivery.agency_id == agency_id)
        moved = list(
            s.scalars(
                update(Delivery)
                .where(*condition)
                .values(
                    state=PENDING,
                    next_attempt_at=now,
                    updated_at=now,
                    round_started_attempts=Delivery.attempts,
                    resends=Delivery.resends + 1,
                    dead_at=None,
                )
                .returning(Delivery.id)
            )
        )
        if moved:
            for a, kind in s.execute(
                select(Assignment, Delivery.kind)
                .join(Delivery, Delivery.assignment_id == Assignment.id)
                .where(Delivery.id.in_(moved))
                .options(selectinload(Assignment.case).selectinload(Case.assignments))
            ):
                what = "Your message was" if kind == MESSAGE else "The case was"
                message = f"{what} resent by {operator}; same idempotency key."
                if kind == CASE and a.status == lifecycle.UNDELIVERABLE:
                    lifecycle.move(
                        s,
                        a,
                        lifecycle.QUEUED,
                        actor="operator",
                        at=now,
                        now=now,
                        message=message,
                        kind="resent",
                    )
                    audit.record(
                        s,
                        at=now,
                        actor=f"operator:{operator}",
                        action="delivery.resend",
                        case_id=a.case_id,
                        agency_id=a.agency_id,
                    )
                else:
                    lifecycle.note(
                        s,
                        a,
                        actor="operator",
                        now=now,
                        message=message,
                        kind="resent",
                        action="delivery.resend",
                        audit_actor=f"operator:{operator}",
                    )
                lifecycle.refresh_case(a.case, now)
    skipped: list[tuple[int, str]] = []
    for delivery_id in delivery_ids or []:
        if delivery_id not in moved:
            skipped.append((delivery_id, _why_not_dead(db, delivery_id)))
    return ResendResult(tuple(sorted(moved)), tuple(skipped))


def _why_not_dead(db: Database, delivery_id: int) -> str:
    with db.session(read_only=True) as s:
        state = s.scalar(select(Delivery.state).where(Delivery.id == delivery_id))
    if state is None:
        return "no such delivery"
    return f"not a dead letter (it is {state}: already resent or delivered)"
