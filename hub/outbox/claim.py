"""Claiming: lease due deliveries of one agency, as its breaker, pause and in-flight cap allow,
with everything needed to render and send them; hand back what was never tried.

A claimed row carries a lease. A worker that dies simply lets it expire and any worker claims the
row again; the idempotency key is the same on every attempt, so the agency recognises a repeat.
On PostgreSQL, claims use FOR UPDATE SKIP LOCKED so many workers share the work; on SQLite one
worker is the supported setup (writes are serialised by BEGIN IMMEDIATE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import selectinload

from adapters.base import Attachment as AttachmentValue
from hub import control
from hub.canonical import case_document, document_from_rows
from hub.db import Database
from hub.models import (
    Assignment,
    Attachment,
    Case,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Message,
    Party,
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
