"""Dead letters: what operators read about deliveries that gave up, and the safe resend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from hub import audit, lifecycle
from hub.db import Database
from hub.models import Assignment, Case, Delivery, DeliveryState
from hub.outbox.rows import CASE, MESSAGE

PENDING, DEAD = DeliveryState.PENDING, DeliveryState.DEAD


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
