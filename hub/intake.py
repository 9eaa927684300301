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
from sqlalchemy.orm import Session

from hub import audit, lifecycle
from hub.agencies import Directory
from hub.attachments import Upload
from hub.clock import Clock, RandomSource
from hub.db import Database
from hub.duedates import due_at
from hub.models import Assignment, Case, Delivery, Party
from hub.reference import new_reference
from hub.routing import Missing, Recipient, Refusal, Router, Situation
from hub.schemas import enterprise_digits
from mappings.engine import AgencyMapping


@dataclass(frozen=True)
class Filed:
    reference: str
    token: str  # shown once; only its hash is stored
    status: str
    recipients: tuple[Recipient, ...]
    not_sent: tuple[Refusal, ...] = ()


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
        email=data["email"].lower() if data.get("email") else None,
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


class NeedsAnswers(Exception):
    """Pre-checks without an answer: ask these questions, then file again."""

    def __init__(self, missing: tuple[Missing, ...]):
        super().__init__(", ".join(m.field for m in missing))
        self.missing = missing


class NotAdmissible(Exception):
    """Every agency the case would go to refuses it for now; the advice says what to do first."""

    def __init__(self, refusals: tuple[Refusal, ...]):
        super().__init__(", ".join(f"{r.agency_id}:{r.check}" for r in refusals))
        self.refusals = refusals


def situation_of(data: dict[str, Any], today) -> Situation:
    trader = data.get("trader") or {}
    return Situation(
        kind=data["kind"],
        domain=data["domain"],
        language=data["language"],
        trader_country=(trader.get("address") or {}).get("country"),
        answers=data.get("answers") or {},
        incident_date=data.get("incident_date"),
        today=today,
    )


def file_case(
    db: Database,
    data: dict[str, Any],
    *,
    router: Router,
    directory: Directory,
    clock: Clock,
    random: RandomSource,
    uploads: list[Upload] | None = None,
) -> Filed:
    """Store a validated case with one assignment and delivery per admitted agency.

    Raises NeedsAnswers when a pre-check is unanswered and NotAdmissible when every agency
    refuses; in both cases nothing is stored. Agencies refused while others accept are reported
    in `Filed.not_sent`. A case no rule matches is stored for operators to route.
    """
    now = clock.now()
    decision = router.route(situation_of(data, now.date()))
    if decision.missing:
        raise NeedsAnswers(decision.missing)
    if not decision.recipients and decision.refusals:
        raise NotAdmissible(decision.refusals)
    for attempt in range(5):
        reference, token = new_reference(random), random.token()
        try:
            with db.session() as session:
                if session.scalar(select(Case.id).where(Case.reference == reference)):
                    continue
                case = _store(session, data, reference, token, decision.recipients, directory, now)
                if uploads:
                    from hub.consumer import store_attachments

                    store_attachments(session, case, uploads, now)
        except IntegrityError:
            if attempt == 4:
                raise
            continue  # a reference collision between two concurrent filings; draw again
        return Filed(reference, token, lifecycle.QUEUED, decision.recipients, decision.refusals)
    raise RuntimeError("could not draw a free case reference")


def add_assignment(
    session: Session,
    case: Case,
    mapping: AgencyMapping,
    *,
    reason: str,
    stage: str,
    now: datetime,
    actor: str = "hub",
    referred_from: Assignment | None = None,
) -> Assignment:
    """One agency's line on a case, and its outbox row, in the caller's transaction."""
    assignment = Assignment(
        agency_id=mapping.id,
        reason=reason,
        stage=stage,
        referred_from_id=referred_from.id if referred_from else None,
        status=lifecycle.QUEUED,
        acknowledge_due_at=due_at(now, mapping.acknowledge_within)
        if mapping.acknowledge_within
        else None,
        answer_due_at=due_at(now, mapping.answer_within) if mapping.answer_within else None,
        created_at=now,
        updated_at=now,
    )
    n = 1 + sum(1 for a in case.assignments if a.agency_id == mapping.id)
    case.assignments.append(assignment)
    session.flush()
    session.add(
        Delivery(
            assignment_id=assignment.id,
            agency_id=mapping.id,
            idempotency_key=idempotency_key(case.reference, mapping.id, n),
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
        actor=actor,
        at=now,
        now=now,
        assignment=assignment,
        to_status=lifecycle.QUEUED,
        message=f"{mapping.name(case.language)}: {reason}".strip(),
        kind="routed",
    )
    return assignment


def _store(
    session: Session,
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
        answers=data.get("answers") or None,
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
    from hub import notify

    notify.enqueue(
        session,
        case,
        "filed",
        now=now,
        dedupe="filed",
        secret=token,
        data={"agencies": [{"agency_id": r.agency_id, "why": r.reason} for r in recipients]},
    )
    for recipient in recipients:
        add_assignment(
            session,
            case,
            directory[recipient.agency_id],
            reason=recipient.reason,
            stage=recipient.stage,
            now=now,
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
            kind="needs_routing",
        )
    return case
