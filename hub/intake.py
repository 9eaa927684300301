"""Intake: a validated case becomes Case + Parties + one Assignment and one Delivery per agency.

All of it in one transaction (the transactional outbox): either the case exists together with
every delivery it needs, or nothing was stored.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub import audit, lifecycle
from hub.agencies import Directory
from hub.clock import Clock, RandomSource
from hub.db import Database
from hub.duedates import due_at
from hub.models import Assignment, Case, Delivery, Party
from hub.reference import new_reference
from hub.routing import Recipient, Router
from hub.schemas import enterprise_digits


@dataclass(frozen=True)
class Filed:
    reference: str
    token: str  # shown once; only its hash is stored
    status: str
    recipients: tuple[Recipient, ...]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token or ""), stored_hash)


def _party(role: str, data: dict[str, Any]) -> Party:
    address = data.get("address") or {}
    number = data.get("enterprise_number")
    return Party(
        role=role,
        name=data["name"],
        email=data.get("email"),
        phone=data.get("phone"),
        enterprise_number=enterprise_digits(number) if number else None,
        website=data.get("website"),
        street=address.get("street"),
        postcode=address.get("postcode"),
        city=address.get("city"),
        country=address.get("country"),
    )


def idempotency_key(reference: str, agency_id: str, n: int = 1) -> str:
    """Stable per case x agency (and per n-th assignment of that pair, after a referral back)."""
    return f"{reference}.{agency_id}.{n}"


def file_case(
    db: Database,
    data: dict[str, Any],
    *,
    router: Router,
    directory: Directory,
    clock: Clock,
    random: RandomSource,
) -> Filed:
    recipients = tuple(router.route(data["kind"], data["domain"], data["language"]))
    for attempt in range(5):
        reference, token = new_reference(random), random.token()
        try:
            with db.session() as session:
                if session.scalar(select(Case.id).where(Case.reference == reference)):
                    continue
                _store(session, data, reference, token, recipients, directory, clock.now())
        except IntegrityError:
            if attempt == 4:
                raise
            continue  # a reference collision between two concurrent filings; draw again
        return Filed(reference, token, lifecycle.QUEUED, recipients)
    raise RuntimeError("could not draw a free case reference")


def _store(
    session,
    data: dict[str, Any],
    reference: str,
    token: str,
    recipients: tuple[Recipient, ...],
    directory: Directory,
    now: datetime,
) -> Case:
    amount = data.get("amount")
    consent = data["consent"]
    case = Case(
        reference=reference,
        kind=data["kind"],
        domain=data["domain"],
        language=data["language"],
        description=data["description"],
        incident_date=data.get("incident_date"),
        amount_cents=int(Decimal(amount) * 100) if amount is not None else None,
        currency=data.get("currency") or ("EUR" if amount is not None else None),
        consent_share=bool(consent["share_with_agencies"]),
        anonymous_to_trader=bool(consent.get("anonymous_to_trader", False)),
        status=lifecycle.QUEUED,
        token_hash=token_hash(token),
        created_at=now,
        updated_at=now,
    )
    case.parties.append(_party("consumer", data["consumer"]))
    if data.get("trader"):
        case.parties.append(_party("trader", data["trader"]))
    session.add(case)
    session.flush()
    audit.record(
        session,
        at=now,
        actor="consumer",
        action="case.filed",
        case_id=case.id,
        data={
            "kind": case.kind,
            "domain": case.domain,
            "recipients": [r.agency_id for r in recipients],
        },
    )
    for recipient in recipients:
        mapping = directory[recipient.agency_id]
        assignment = Assignment(
            agency_id=recipient.agency_id,
            reason=recipient.reason,
            status=lifecycle.QUEUED,
            acknowledge_due_at=due_at(now, mapping.acknowledge_within)
            if mapping.acknowledge_within
            else None,
            answer_due_at=due_at(now, mapping.answer_within) if mapping.answer_within else None,
            created_at=now,
            updated_at=now,
        )
        case.assignments.append(assignment)
        session.flush()
        session.add(
            Delivery(
                assignment_id=assignment.id,
                agency_id=recipient.agency_id,
                idempotency_key=idempotency_key(reference, recipient.agency_id),
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        lifecycle.add_event(
            session,
            case,
            actor="hub",
            at=now,
            now=now,
            assignment=assignment,
            to_status=lifecycle.QUEUED,
            message=f"Routed to {mapping.name('en')}: {recipient.reason}".strip(),
        )
    if not recipients:
        lifecycle.add_event(
            session,
            case,
            actor="hub",
            at=now,
            now=now,
            to_status=lifecycle.QUEUED,
            message="No routing rule matched; an operator will route this case.",
        )
    return case
