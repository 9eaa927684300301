"""Recording what an attempt came to: the agency's receipt (the line goes to `sent`, with a
timeline entry and a piece of evidence) or a failure (a retry with backoff, or a dead letter).

Receipts are written two ways from the same row builders (`lifecycle.plan_move`,
`lifecycle.event_row`, `audit.chained_rows`): `complete` records one receipt through the ORM
helpers (`lifecycle.move`, `audit.record`, `lifecycle.refresh_case`), and `complete_many`, the
worker's path, records a lane's group of receipts in a handful of Core statements.
tests/test_write_paths.py holds the two equal.
"""

from __future__ import annotations

import logging
import random as _random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, selectinload

from adapters.base import AdapterError, ContractViolation, Receipt
from hub import audit, bulk, control, inbound, lifecycle
from hub.db import Database
from hub.models import (
    Assignment,
    AuditEntry,
    Case,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Message,
    StatusEvent,
)
from hub.outbox.claim import Claimed
from hub.outbox.rows import CASE, MESSAGE
from mappings.engine import AgencyMapping, DeliveryPolicy, RetryPolicy

log = logging.getLogger("loket.worker")

LEASED, DONE, RETRY, DEAD = (
    DeliveryState.LEASED,
    DeliveryState.DONE,
    DeliveryState.RETRY,
    DeliveryState.DEAD,
)


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


# ------------------------------------------------------------------------------------- receipts


def _delivered_message(mapping: AgencyMapping, receipt: Receipt) -> str:
    name = mapping.name("en")
    if receipt.provisional:
        return (
            f"Delivered to {name} as {receipt.agency_reference}; they give their own reference "
            "later."
        )
    return f"Delivered to {name}; their reference is {receipt.agency_reference}."


def _goes_to_sent(status: str) -> bool:
    """A receipt moves a line that waited to be sent; a later one (a resend, a line the agency
    already moved on) only leaves its note on the timeline."""
    return status in (lifecycle.QUEUED, lifecycle.UNDELIVERABLE)


def _receipt_evidence(
    idempotency_key: str, attempt: int, receipt: Receipt, payload: Any = None
) -> dict[str, Any]:
    """What the evidence log keeps of a delivery: the digest of the payload sent (SHA-256 of
    its canonical JSON, `audit.payload_digest`) and the agency's answer as the adapter saw it."""
    return {
        "payload_sha256": audit.payload_digest(payload),
        "idempotency_key": idempotency_key,
        "attempt": attempt,
        "agency_reference": receipt.agency_reference,
        "provisional": receipt.provisional,
        "duplicate": receipt.duplicate,
        "exchange": dict(receipt.raw),
    }


def complete(
    db: Database,
    claimed: Claimed,
    receipt: Receipt,
    payload: dict[str, Any],
    now: datetime,
    mapping: AgencyMapping,
) -> bool:
    """Record one receipt, one object at a time through the ORM helpers. Returns False when
    another worker already did (a no-op). The worker records its groups with `complete_many`."""
    with db.session() as s:
        d = _locked_delivery(s, db, claimed.delivery_id)
        _finish_attempt(s, claimed, now, "ok", None)
        if d.state == DONE:
            return False
        d.state, d.delivered_at, d.updated_at = DONE, now, now
        d.lease_expires_at = d.leased_by = d.last_error = d.last_error_kind = None
        if d.payload is None:
            d.payload = payload
        control.reachable(s, mapping.id, now)
        if d.kind == MESSAGE:
            _message_delivered(s, d, receipt, now, mapping)
            return True
        a = s.scalars(
            select(Assignment)
            .where(Assignment.id == d.assignment_id)
            .options(selectinload(Assignment.case).selectinload(Case.assignments))
            .with_for_update(of=Assignment)  # a concurrent poll parks or applies, never both
        ).one()
        record_receipt(
            s,
            a,
            idempotency_key=d.idempotency_key,
            attempt=claimed.attempt,
            receipt=receipt,
            now=now,
            mapping=mapping,
            payload=payload,
        )
        if inbound.has_parked(s, mapping.id):  # statuses that came before this receipt
            inbound.apply_unmatched(s, mapping, a, now)
        lifecycle.refresh_case(a.case, now)
        if receipt.agency_reference and inbound.flag_shared_references(
            s, mapping.id, {receipt.agency_reference}, now
        ):
            log.warning("%s: an agency reference is held by more than one case", mapping.id)
        return True


def record_receipt(
    s: Session,
    a: Assignment,
    *,
    idempotency_key: str,
    attempt: int,
    receipt: Receipt,
    now: datetime,
    mapping: AgencyMapping,
    payload: Any = None,
) -> None:
    """One line's receipt through the ORM: its reference, its move to `sent` (or a note), and
    its evidence. The caller refreshes the case's status."""
    a.agency_reference = receipt.agency_reference
    a.agency_reference_provisional = receipt.provisional
    a.updated_at = now
    message = _delivered_message(mapping, receipt)
    if _goes_to_sent(a.status):
        lifecycle.move(
            s, a, lifecycle.SENT, actor="hub", at=now, now=now, message=message, kind="delivered"
        )
    else:
        lifecycle.add_event(
            s, a.case, actor="hub", at=now, now=now, assignment=a, message=message, kind="delivered"
        )
    audit.record(
        s,
        at=now,
        actor="hub",
        action="delivery.receipt",
        case_id=a.case_id,
        agency_id=a.agency_id,
        data=_receipt_evidence(idempotency_key, attempt, receipt, payload),
    )


def complete_many(
    db: Database,
    done: list[tuple[Claimed, Receipt, dict[str, Any]]],
    now: datetime,
    mapping: AgencyMapping,
    busy: list[tuple[Claimed, Receipt, dict[str, Any]]] | None = None,
) -> int:
    """Record a group of receipts from one agency in one transaction; returns how many were new.

    With `busy` (a list), a receipt whose line another transaction holds (a poll applying the
    agency's statuses) is not waited for: it goes into `busy`, untouched, for the caller to
    record with a later group, and the rest are recorded now (PostgreSQL; SQLite has one writer).

    A lane delivers a group and records it here in a fixed handful of statements, whatever its
    size (hub/bulk.py): one UPDATE for the attempts, one `UPDATE ... FROM unnest(...)
    WHERE state <> 'done' RETURNING` for the deliveries on PostgreSQL (its RETURNING is exactly
    the receipts no other worker recorded meanwhile; SQLite, one writer, reads them first), then
    one statement per table for the lines, events, evidence and cases of exactly those rows. Nothing is lost if the worker dies before: the leases expire, the
    cases are sent again with the same idempotency keys, and the agency answers with the cases
    it already has. An agency reference now held by two cases is flagged in the same
    transaction (`inbound.flag_shared_references`).
    """
    if not done:
        return 0
    deliveries_t, attempts_t = Delivery.__table__, DeliveryAttempt.__table__
    with db.session() as s:
        conn = s.connection()
        dialect = conn.dialect.name
        # The lines first, in id order (the order every writer of lines takes): while a poll
        # holds them, the deliveries stay unlocked and the heartbeat keeps their leases alive.
        wanted = {c.assignment_id for c, _, _ in done if c.assignment_id is not None}
        held = _lock_lines(conn, wanted, skip_locked=busy is not None)
        if busy is not None and held != wanted:
            busy.extend(item for item in done if item[0].assignment_id not in held)
            done = [item for item in done if item[0].assignment_id in held]
            if not done:
                return 0
        conn.execute(
            update(attempts_t)
            .where(bulk.any_of(attempts_t.c.id, sorted(c.attempt_id for c, _, _ in done), dialect))
            .values(finished_at=now, outcome="ok", error=None)
        )
        finished = {
            "state": DONE,
            "delivered_at": now,
            "updated_at": now,
            "lease_expires_at": None,
            "leased_by": None,
            "last_error": None,
            "last_error_kind": None,
        }
        returned = (
            deliveries_t.c.id,
            deliveries_t.c.kind,
            deliveries_t.c.assignment_id,
            deliveries_t.c.idempotency_key,
        )
        by_id = sorted(((c.delivery_id, p) for c, _, p in done), key=lambda r: r[0])
        if dialect == "postgresql":
            sent = bulk.unnest("sent", {"delivery_id": BigInteger(), "new_payload": JSON()}, by_id)
            rows = {
                r.id: r
                for r in conn.execute(
                    update(deliveries_t)
                    .where(deliveries_t.c.id == sent.c.delivery_id, deliveries_t.c.state != DONE)
                    .values(
                        **finished,
                        payload=func.coalesce(
                            deliveries_t.c.payload, cast(sent.c.new_payload, JSON)
                        ),
                    )
                    .returning(*returned)
                )
            }
        else:  # one writer at a time: read which are not done yet, then one executemany
            rows = {
                r.id: r
                for r in conn.execute(
                    select(*returned).where(
                        deliveries_t.c.id.in_([i for i, _ in by_id]), deliveries_t.c.state != DONE
                    )
                )
            }
            if rows:
                conn.execute(
                    update(deliveries_t)
                    .where(deliveries_t.c.id == bindparam("delivery_id"))
                    .values(
                        **finished,
                        payload=func.coalesce(
                            deliveries_t.c.payload, bindparam("new_payload", type_=JSON)
                        ),
                    ),
                    [{"delivery_id": i, "new_payload": p} for i, p in by_id if i in rows],
                )
        fresh = [(c, r, p) for c, r, p in done if c.delivery_id in rows]
        if not fresh:
            return 0
        control.reachable(s, mapping.id, now)
        messages = [(c, r) for c, r, _ in fresh if rows[c.delivery_id].kind == MESSAGE]
        for c, r in messages:
            _message_delivered(s, s.get(Delivery, c.delivery_id), r, now, mapping)
        cases_ = [(c, r) for c, r, _ in fresh if rows[c.delivery_id].kind == CASE]
        if cases_:
            _record_receipts(s, rows, cases_, now, mapping, {c.delivery_id: p for c, _, p in fresh})
        references = {r.agency_reference for _, r, _ in fresh if r.agency_reference}
        audit.write_deferred(s)  # what was applied above (parked statuses) comes first
        if inbound.flag_shared_references(s, mapping.id, references, now):
            log.warning("%s: an agency reference is held by more than one case", mapping.id)
        return len(fresh)


def _lock_lines(conn, assignment_ids: set[int], *, skip_locked: bool = False) -> set[int]:
    """Lock the lines in id order; with `skip_locked`, only those no other transaction holds.
    Returns the lines locked (all of them on SQLite, whose one writer holds the database)."""
    if not assignment_ids or conn.dialect.name != "postgresql":
        return set(assignment_ids)
    at = Assignment.__table__
    return set(
        conn.scalars(
            select(at.c.id)
            .where(bulk.any_of(at.c.id, sorted(assignment_ids), conn.dialect.name))
            .order_by(at.c.id)
            .with_for_update(skip_locked=skip_locked)
        )
    )


def _record_receipts(
    s,
    rows: dict,
    items: list[tuple[Claimed, Receipt]],
    now: datetime,
    mapping: AgencyMapping,
    sent: dict[int, Any],
) -> None:
    """`record_receipt` for a group, one statement per table: the same moves, events and
    evidence (built by the same functions); each case's one status is recomputed."""
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
            select(at.c.id, at.c.case_id, at.c.status, at.c.agency_id, ca.c.reference)
            .join(ca, ca.c.id == at.c.case_id)
            .where(bulk.any_of(at.c.id, assignment_ids, conn.dialect.name))
        )  # locked already by complete_many (`_lock_lines`): a poll parks or applies, never both
    }
    case_ids = sorted({line.case_id for line in lines.values()})
    moves, events, evidence = [], [], []
    received = []
    for c, receipt in items:
        d = rows[c.delivery_id]
        line = lines[d.assignment_id]
        received.append((line, receipt))
        message = _delivered_message(mapping, receipt)
        status, change = line.status, {"message": message, "kind": "delivered"}
        if _goes_to_sent(line.status):
            plan = lifecycle.plan_move(
                line.status, lifecycle.SENT, message=message, kind="delivered"
            )
            status, change = plan.status, plan.event
        moves.append(
            {
                "id": line.id,
                "agency_reference": receipt.agency_reference,
                "agency_reference_provisional": receipt.provisional,
                "status": status,
            }
        )
        events.append(
            {
                "case_id": line.case_id,
                "assignment_id": line.id,
                **lifecycle.event_row(actor="hub", at=now, now=now, **change),
            }
        )
        evidence.append(
            {
                "at": now,
                "actor": "hub",
                "action": "delivery.receipt",
                "case_id": line.case_id,
                "agency_id": line.agency_id,
                "data": _receipt_evidence(
                    d.idempotency_key, c.attempt, receipt, sent.get(c.delivery_id)
                ),
            }
        )
    bulk.update_rows(conn, at, "id", moves, updated_at=now)
    # executemany: psycopg pipelines the rows; an INSERT from unnest(arrays) measured slower
    # (psycopg dumps array items in Python)
    conn.execute(insert(ev), events)
    conn.execute(insert(au), audit.chained_rows(conn, evidence))
    # Statuses the agency sent before these receipts were recorded wait (parked); the lines they
    # name take the ORM way (apply, then the case's status with its mails), the rest stay here.
    refs = {line.id: receipt.agency_reference for line, receipt in received}
    parked_refs, parked_cases = inbound.parked_for(
        s,
        mapping.id,
        {r for r in refs.values() if r},
        {line.reference for line in lines.values()},
    )
    slow = sorted(
        aid
        for aid, line in lines.items()
        if line.reference in parked_cases or (refs.get(aid) and refs[aid] in parked_refs)
    )
    if slow:
        for a in s.scalars(
            select(Assignment)
            .where(Assignment.id.in_(slow))
            .order_by(Assignment.id)
            .options(selectinload(Assignment.case).selectinload(Case.assignments))
        ):
            inbound.apply_unmatched(s, mapping, a, now)
            lifecycle.refresh_case(a.case, now)
        done_cases = {lines[aid].case_id for aid in slow}
        case_ids = [cid for cid in case_ids if cid not in done_cases]
        if not case_ids:
            return
    case_lines: dict[int, list[tuple[str, str | None, bool]]] = {}
    current: dict[int, str] = {}
    for case_id, status, stage, case_status in conn.execute(
        select(at.c.case_id, at.c.status, at.c.stage, ca.c.status)
        .join(ca, ca.c.id == at.c.case_id)
        .where(bulk.any_of(at.c.case_id, case_ids, conn.dialect.name))
    ):
        case_lines.setdefault(case_id, []).append((status, stage, False))
        current[case_id] = case_status
    notify = []
    new_status: dict[int, str] = {}
    for case_id in case_ids:
        # The same rule as refresh_case (lifecycle.case_status). Whether the consumer answered
        # a waiting line needs the timeline: such a (rare) case goes the ORM way too.
        waiting = any(st == lifecycle.WAITING_FOR_CONSUMER for st, _, _ in case_lines[case_id])
        new_status[case_id] = new = lifecycle.case_status(case_lines[case_id])
        if waiting or (new != current[case_id] and new in lifecycle.NOTIFY_ON):
            notify.append(case_id)  # rare here (sent is not one): the ORM path tells the consumer
    quiet = [{"id": cid, "status": new_status[cid]} for cid in case_ids if cid not in notify]
    bulk.update_rows(conn, ca, "id", quiet, updated_at=now)
    if notify:
        for case in s.scalars(
            select(Case)
            .where(Case.id.in_(notify))
            .options(
                selectinload(Case.assignments),
                selectinload(Case.events),
                selectinload(Case.parties),
            )
        ):
            lifecycle.refresh_case(case, now)


# ------------------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class Failed:
    state: DeliveryState  # the delivery's state now: retry | dead (or what another worker made it)
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
    attempts are used up; permanent errors dead-letter at once (a payload off the agency's
    contract too, without touching the breaker: it was never sent). A worker whose lease was
    taken over meanwhile only closes its attempt record.
    """
    delivery_policy = policy if isinstance(policy, DeliveryPolicy) else DeliveryPolicy(retry=policy)
    retry = delivery_policy.retry
    kind = "transient" if error.retryable else "permanent"
    with db.session() as s:
        d = _locked_delivery(s, db, claimed.delivery_id)
        _finish_attempt(s, claimed, now, kind, error.detail)
        if d.state != LEASED or (claimed.worker_id and d.leased_by != claimed.worker_id):
            return Failed(DeliveryState(d.state))
        d.last_error, d.last_error_kind, d.updated_at = error.detail, kind, now
        d.lease_expires_at = d.leased_by = None
        if d.payload is None and payload is not None:
            d.payload = payload
        opened = False
        if isinstance(error, ContractViolation):
            # Never sent, so it says nothing of the agency's reachability; and a resend after
            # the mapping is fixed must render anew, not send the refused payload again.
            d.payload = None
        elif error.retryable:
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
