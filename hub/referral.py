"""Referral: a case an agency is not competent for goes on to the competent one, by the hub.

The consumer never types the case again. The new agency gets the case with its history (the
canonical document's `case.history`), the old line stays on the timeline as `referred`, and the
consumer's timeline says where the case went and why. An agency's "not competent" triggers it
(the worker's referral job); an operator can refer any open line, or route a case no rule matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub import audit, lifecycle
from hub.agencies import Directory
from hub.db import Database
from hub.intake import add_assignment
from hub.models import Assignment, Case
from hub.routing import Router, Situation

NO_TARGET = "referral:no-target"


class ReferralError(ValueError):
    """The referral cannot be done as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Referred:
    case_reference: str
    from_agency: str | None
    to_agency: str | None  # None: nobody competent found; operators must route it


def situation_of_case(case: Case, today: date) -> Situation:
    trader = case.party("trader")
    consumer = case.party("consumer")
    return Situation(
        kind=case.kind,
        domain=case.domain,
        language=case.language,
        trader_country=trader.country if trader else None,
        answers=case.answers or {},
        incident_date=case.incident_date,
        today=today,
        postcode=consumer.postcode if consumer else None,
    )


def _load_case(s: Session, case_id: int) -> Case:
    return s.scalars(
        select(Case)
        .where(Case.id == case_id)
        .options(
            selectinload(Case.assignments), selectinload(Case.parties), selectinload(Case.events)
        )
    ).one()


def refer(
    db: Database,
    *,
    router: Router,
    directory: Directory,
    now: datetime,
    actor: str,
    assignment_id: int | None = None,
    case_reference: str | None = None,
    to_agency: str | None = None,
    reason: str | None = None,
) -> Referred:
    """Refer one assignment (or route a case without one) to `to_agency`, or to the next
    competent agency routing finds among those that have not had the case yet."""
    if to_agency is not None and to_agency not in directory:
        raise ReferralError(f"no agency {to_agency!r}; known: {', '.join(directory.ids())}")
    with db.session() as s:
        old: Assignment | None = None
        if assignment_id is not None:
            old = s.scalars(
                select(Assignment).where(Assignment.id == assignment_id).with_for_update()
            ).one()
            case = _load_case(s, old.case_id)
        else:
            case = s.scalars(select(Case).where(Case.reference == case_reference)).first()
            if case is None:
                raise ReferralError(f"no case {case_reference!r}")
            case = _load_case(s, case.id)
        if old is not None and any(a.referred_from_id == old.id for a in case.assignments):
            return Referred(case.reference, old.agency_id, None)  # already referred: no-op
        if old is not None and lifecycle.is_terminal(old.status) and old.status != "not_competent":
            raise ReferralError(
                f"the {old.agency_id} line is {old.status}; only an open line "
                "or one the agency is not competent for can be referred"
            )
        tried = {a.agency_id for a in case.assignments}
        target = to_agency
        basis = None
        if target is None:
            decision = router.route(
                situation_of_case(case, now.date()), exclude=tried, skip_missing=True
            )
            handlers = [r for r in decision.recipients if r.stage == "handle"]
            target = handlers[0].agency_id if handlers else None
            basis = handlers[0].basis if handlers else None
        if target is None:
            if old is not None and not lifecycle.event_exists(s, old.id, NO_TARGET):
                lifecycle.add_event(
                    s,
                    case,
                    actor="hub",
                    at=now,
                    now=now,
                    assignment=old,
                    message="No other competent agency was found; an operator will route the case.",
                    dedupe_key=NO_TARGET,
                    kind="needs_routing",
                )
            return Referred(case.reference, old.agency_id if old else None, None)
        mapping = directory[target]
        from_name = directory[old.agency_id].name(case.language) if old else None
        why = reason or (
            f"Referred by {from_name}, which is not competent for this case."
            if old is not None
            else "Routed by an operator."
        )
        add_assignment(
            s,
            case,
            mapping,
            reason=why,
            stage="referral" if old else "operator",
            now=now,
            actor=actor,
            referred_from=old,
            basis=basis,
        )
        if old is not None:
            lifecycle.move(
                s,
                old,
                "referred",
                actor=actor,
                at=now,
                now=now,
                message=f"Referred to {mapping.name(case.language)}: {why}",
                kind="referred",
            )
        from hub import notify

        notify.enqueue(
            s,
            case,
            "referred",
            now=now,
            dedupe=f"{old.id if old else 'new'}->{target}",
            data={"agency_id": target, "from_agency_id": old.agency_id if old else None},
        )
        audit.record(
            s,
            at=now,
            actor=actor,
            action="case.referred",
            case_id=case.id,
            agency_id=target,
            data={"from": old.agency_id if old else None, "reason": why},
        )
        lifecycle.refresh_case(case, now)
        return Referred(case.reference, old.agency_id if old else None, target)


def refer_not_competent(
    db: Database, *, router: Router, directory: Directory, now: datetime, limit: int = 100
) -> list[Referred]:
    """The worker's referral job: every line an agency answered `not_competent` moves on."""
    with db.session(read_only=True) as s:
        children = select(Assignment.referred_from_id).where(
            Assignment.referred_from_id.is_not(None)
        )
        ids = list(
            s.scalars(
                select(Assignment.id)
                .where(Assignment.status == "not_competent", Assignment.id.not_in(children))
                .order_by(Assignment.id)
                .limit(limit)
            )
        )
    out = []
    for assignment_id in ids:
        out.append(
            refer(
                db,
                router=router,
                directory=directory,
                now=now,
                actor="hub",
                assignment_id=assignment_id,
            )
        )
    return out
