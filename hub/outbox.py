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

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import selectinload

from adapters.base import AdapterError, Receipt
from hub import audit, inbound, lifecycle
from hub.canonical import case_document
from hub.db import Database
from hub.models import Assignment, Case, Delivery, DeliveryAttempt
from mappings.engine import AgencyMapping

PENDING, LEASED, DONE, RETRY, DEAD = "pending", "leased", "done", "retry", "dead"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: delay = uniform(0, min(cap, base * multiplier^n))."""

    max_attempts: int = 10
    base_seconds: float = 2.0
    multiplier: float = 2.0
    cap_seconds: float = 3600.0

    def delay(
        self, attempt: int, rng: _random.Random | None = None, retry_after: float | None = None
    ) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * self.multiplier ** max(0, attempt - 1))
        chosen = (rng or _random).uniform(0, ceiling)
        if retry_after is not None:
            chosen = max(chosen, min(retry_after, self.cap_seconds))
        return chosen


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


def due_condition(now: datetime):
    return or_(
        and_(Delivery.state.in_((PENDING, RETRY)), Delivery.next_attempt_at <= now),
        and_(Delivery.state == LEASED, Delivery.lease_expires_at <= now),
    )


def claim(
    db: Database,
    *,
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    agency_ids: list[str] | None = None,
) -> list[Claimed]:
    lease_until = now + timedelta(seconds=lease_seconds)
    with db.session() as s:
        query = select(Delivery).where(due_condition(now))
        if agency_ids is not None:
            query = query.where(Delivery.agency_id.in_(agency_ids))
        query = query.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(s.scalars(query))
        if not rows:
            return []
        attempts = []
        for d in rows:
            d.state, d.leased_by, d.lease_expires_at = LEASED, worker_id, lease_until
            d.attempts += 1
            d.updated_at = now
            attempt = DeliveryAttempt(
                delivery_id=d.id, number=d.attempts, worker=worker_id, started_at=now
            )
            s.add(attempt)
            attempts.append(attempt)
        s.flush()
        assignments = {
            a.id: a
            for a in s.scalars(
                select(Assignment)
                .where(Assignment.id.in_([d.assignment_id for d in rows]))
                .options(selectinload(Assignment.case).selectinload(Case.parties))
            )
        }
        out = []
        for d, attempt in zip(rows, attempts, strict=True):
            a = assignments[d.assignment_id]
            out.append(
                Claimed(
                    delivery_id=d.id,
                    attempt_id=attempt.id,
                    attempt=d.attempts,
                    agency_id=d.agency_id,
                    idempotency_key=d.idempotency_key,
                    case_reference=a.case.reference,
                    language=a.case.language,
                    document=case_document(a.case, a),
                    payload=d.payload,
                    lease_expires_at=lease_until,
                )
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
    with db.session() as s:
        d = _locked_delivery(s, db, claimed.delivery_id)
        _finish_attempt(s, claimed, now, "ok", None)
        if d.state == DONE:
            return False
        d.state, d.delivered_at, d.updated_at = DONE, now, now
        d.lease_expires_at = d.leased_by = d.last_error = d.last_error_kind = None
        if d.payload is None:
            d.payload = payload
        a = s.scalars(
            select(Assignment)
            .where(Assignment.id == d.assignment_id)
            .options(selectinload(Assignment.case).selectinload(Case.assignments))
            .with_for_update(of=Assignment)  # a concurrent poll parks or applies, never both
        ).one()
        a.agency_reference = receipt.agency_reference
        message = (
            f"Delivered to {mapping.name('en')}; their reference is {receipt.agency_reference}."
        )
        if a.status in (lifecycle.QUEUED, lifecycle.UNDELIVERABLE):
            lifecycle.move(s, a, lifecycle.SENT, actor="hub", at=now, now=now, message=message)
        else:
            lifecycle.add_event(
                s, a.case, actor="hub", at=now, now=now, assignment=a, message=message
            )
        audit.record(
            s,
            at=now,
            actor="hub",
            action="delivery.receipt",
            case_id=a.case_id,
            agency_id=a.agency_id,
            data={
                "idempotency_key": d.idempotency_key,
                "attempt": claimed.attempt,
                "agency_reference": receipt.agency_reference,
                "duplicate": receipt.duplicate,
                "exchange": dict(receipt.raw),
            },
        )
        inbound.apply_unmatched(s, mapping, a, now)
        lifecycle.refresh_case(a.case, now)
        return True


def fail(
    db: Database,
    claimed: Claimed,
    error: AdapterError,
    now: datetime,
    policy: RetryPolicy,
    payload: dict[str, Any] | None = None,
    rng: _random.Random | None = None,
) -> str:
    """Record a failed attempt; returns the delivery's new state (retry or dead)."""
    kind = "transient" if error.retryable else "permanent"
    with db.session() as s:
        d = _locked_delivery(s, db, claimed.delivery_id)
        _finish_attempt(s, claimed, now, kind, error.detail)
        if d.state == DONE:
            return DONE
        d.last_error, d.last_error_kind, d.updated_at = error.detail, kind, now
        d.lease_expires_at = d.leased_by = None
        if d.payload is None and payload is not None:
            d.payload = payload
        if error.retryable and d.attempts < policy.max_attempts:
            d.state = RETRY
            wait = policy.delay(d.attempts, rng, getattr(error, "retry_after", None))
            d.next_attempt_at = now + timedelta(seconds=wait)
            return RETRY
        d.state = DEAD
        a = s.scalars(
            select(Assignment)
            .where(Assignment.id == d.assignment_id)
            .options(selectinload(Assignment.case).selectinload(Case.assignments))
        ).one()
        why = "refused" if not error.retryable else f"failed {d.attempts} times"
        if a.status == lifecycle.QUEUED:
            lifecycle.move(
                s,
                a,
                lifecycle.UNDELIVERABLE,
                actor="hub",
                at=now,
                now=now,
                message=f"Delivery {why}; operators will forward it. Last error: {error.detail}",
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
        return DEAD
