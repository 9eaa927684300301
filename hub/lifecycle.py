"""The status machine of assignments and the consumer's one status made from all of them.

contracts/statuses.yaml is the source of truth for the vocabulary, the allowed moves and the
aggregation rule; this module only reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, object_session

from hub import audit
from hub.models import Assignment, Case, StatusEvent
from mappings.engine import canonical_statuses

BRUSSELS = ZoneInfo("Europe/Brussels")
LOCALES = {"nl": "nl_BE", "fr": "fr_BE", "de": "de_BE", "en": "en_BE"}

QUEUED = "queued"
SENT = "sent"
UNDELIVERABLE = "undeliverable"


def vocabulary() -> dict:
    return canonical_statuses()


def statuses() -> tuple[str, ...]:
    return tuple(vocabulary()["statuses"])


def is_terminal(status: str) -> bool:
    return bool(vocabulary()["statuses"][status].get("terminal"))


def can_move(from_status: str, to_status: str) -> bool:
    return to_status in (vocabulary()["transitions"].get(from_status) or ())


def label(status: str, language: str) -> str:
    """The consumer-facing name of a status (contracts/statuses.yaml), in their language."""
    labels = vocabulary()["statuses"][status]["label"]
    return labels.get(language) or labels["en"]


def outcome_label(outcome: str | None, language: str) -> str | None:
    """The consumer-facing name of a resolved line's outcome (statuses.yaml `outcome_labels`)."""
    if not outcome:
        return None
    labels = (vocabulary().get("outcome_labels") or {}).get(outcome)
    return (labels.get(language) or labels["en"]) if labels else outcome


def consumer_sees(status: str) -> str:
    """What the consumer is shown for an assignment status (undeliverable shows as queued)."""
    return vocabulary()["statuses"][status].get("consumer_sees", status)


WAITING_FOR_CONSUMER = "waiting_for_consumer"


def answers_consumer(stage: str | None) -> bool:
    """Whether a line of this routing stage answers the consumer. A line that only informs an
    inspection (stage `inform`) never does, so it never holds the case's status or dates."""
    return (stage or "handle") not in vocabulary()["case"]["not_answering_stages"]


def shown_status(status: str, answered: bool = False) -> str:
    """What the consumer is shown for a line: `consumer_sees`, and a line waiting for the
    consumer that the consumer has answered shows as handled until the service asks again."""
    seen = consumer_sees(status)
    if answered and seen == WAITING_FOR_CONSUMER:
        return str(vocabulary()["case"]["after_consumer_reply"])
    return seen


def case_status(lines: Iterable[tuple[str, str | None, bool]]) -> str:
    """The case's one status from its lines, each given as (status, stage, answered): the lines
    that answer the consumer decide; only a case with no such line is told by the others."""
    lines = list(lines)
    speaking = [line for line in lines if answers_consumer(line[1])] or lines
    return aggregate(shown_status(status, answered) for status, _, answered in speaking)


def answered_lines(
    events: Iterable[tuple[int | None, int, str, str | None, str | None]],
) -> set[int]:
    """The lines whose latest request to the consumer has been answered: a consumer's reply
    came after the service last asked. Events are (line id, event id, actor, kind, to_status)."""
    asked: dict[int, int] = {}
    replied: dict[int, int] = {}
    for line_id, event_id, actor, kind, to_status in events:
        if line_id is None:
            continue
        if kind == "consumer_reply":
            replied[line_id] = max(event_id, replied.get(line_id, 0))
        elif to_status == WAITING_FOR_CONSUMER and actor != "consumer" and kind != "agency_note":
            asked[line_id] = max(event_id, asked.get(line_id, 0))
    return {line for line, at in replied.items() if at > asked.get(line, 0)}


def reply_by(status: str, asked_at: datetime | None) -> datetime | None:
    """By when the consumer should answer a service that waits for them: the request's time
    (when the service's clock stopped) plus `case.reply_within_days` of statuses.yaml."""
    if status != WAITING_FOR_CONSUMER or asked_at is None:
        return None
    return asked_at + timedelta(days=int(vocabulary()["case"]["reply_within_days"]))


def aggregate(assignment_statuses: Iterable[str]) -> str:
    """The case's one status: the first in the precedence list that any assignment holds."""
    seen = {consumer_sees(s) for s in assignment_statuses}
    if not seen:
        return QUEUED
    for status in vocabulary()["aggregate"]["precedence"]:
        if status in seen:
            return status
    raise ValueError(f"statuses {sorted(seen)} are not in the aggregation precedence list")


def event_row(
    *,
    actor: str,
    at: datetime,
    now: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    agency_status: str | None = None,
    message: str | None = None,
    dedupe_key: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The column values of one timeline entry but the keys that tie it to its case and line
    (case_id, assignment_id), which the caller attaches: what `add_event` stores through the
    ORM and the bulk writers (intake, receipts) insert with Core."""
    return {
        "actor": actor,
        "occurred_at": at,
        "recorded_at": now,
        "from_status": from_status,
        "to_status": to_status,
        "agency_status": agency_status,
        "message": message,
        "dedupe_key": dedupe_key,
        "kind": kind,
        "reason": reason,
    }


def add_event(
    session: Session,
    case: Case,
    *,
    actor: str,
    at: datetime,
    now: datetime,
    assignment: Assignment | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    agency_status: str | None = None,
    message: str | None = None,
    dedupe_key: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
) -> StatusEvent:
    event = StatusEvent(
        **event_row(
            actor=actor,
            at=at,
            now=now,
            from_status=from_status,
            to_status=to_status,
            agency_status=agency_status,
            message=message,
            dedupe_key=dedupe_key,
            kind=kind,
            reason=reason,
        )
    )
    # Ids when the rows exist; the objects when they are new in this transaction (one flush at
    # the end orders the inserts). Never through case.events: that would load the timeline.
    if case.id is not None:
        event.case_id = case.id
    else:
        event.case = case
    if assignment is not None:
        if assignment.id is not None:
            event.assignment_id = assignment.id
        else:
            event.assignment = assignment
    session.add(event)
    return event


def note(
    session: Session,
    a: Assignment,
    *,
    actor: str,
    now: datetime,
    message: str,
    kind: str,
    action: str,
    data: dict | None = None,
    audit_actor: str | None = None,
) -> None:
    """A line's event that moves no status (a message forwarded, delayed, written) and its entry
    on the case's evidence chain, together: the consumer's timeline and the evidence agree."""
    add_event(
        session, a.case, actor=actor, at=now, now=now, assignment=a, message=message, kind=kind
    )
    audit.record(
        session,
        at=now,
        actor=audit_actor or actor,
        action=action,
        case_id=a.case_id,
        agency_id=a.agency_id,
        data=data,
    )


@dataclass(frozen=True)
class Move:
    """What `move` does to a line in a given status: the status it ends in and the timeline
    entry it leaves (`event_row` keywords). Pure, so the bulk writers apply the same rule."""

    allowed: bool
    changed: bool
    status: str
    event: dict[str, Any]


def plan_move(
    current: str,
    to_status: str,
    *,
    message: str | None = None,
    kind: str | None = None,
) -> Move:
    """A move the machine allows changes the status; a refused one is kept as a note, so
    nothing the agency said is lost. `move` also stops or restarts the answer clock; a bulk
    writer that uses this plan must only make moves that leave the clock as it is."""
    allowed = current == to_status or can_move(current, to_status)
    return Move(
        allowed,
        allowed and current != to_status,
        to_status if allowed else current,
        {
            "from_status": current,
            "to_status": to_status if allowed else current,
            "message": message
            if allowed
            else f"{message or ''} (status {to_status} not applied after {current})".strip(),
            "kind": kind if allowed else "agency_note",
        },
    )


def move(
    session: Session,
    assignment: Assignment,
    to_status: str,
    *,
    actor: str,
    at: datetime,
    now: datetime,
    message: str | None = None,
    agency_status: str | None = None,
    dedupe_key: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
) -> bool:
    """Move an assignment if the machine allows it; always leave a timeline entry.

    Returns True when the status changed. A refused move is kept on the timeline as a note, so
    nothing the agency said is lost.
    """
    current = assignment.status
    plan = plan_move(current, to_status, message=message, kind=kind)
    if plan.allowed:
        assignment.status = to_status
        assignment.updated_at = now
        if plan.changed:
            _clock(assignment, current, to_status, at)
            if to_status in notify_on():
                notify_line(session, assignment, to_status, message=message, now=now, reason=reason)
    add_event(
        session,
        assignment.case,
        actor=actor,
        at=at,
        now=now,
        assignment=assignment,
        agency_status=agency_status,
        dedupe_key=dedupe_key,
        reason=reason,
        **plan.event,
    )
    return plan.changed


def pauses_clock(status: str) -> bool:
    return bool(vocabulary()["statuses"][status].get("pauses_clock"))


def _clock(a: Assignment, from_status: str, to_status: str, at: datetime) -> None:
    """The answer clock stops while the agency waits for the consumer; when it runs again, the
    due dates move by the time it stood still."""
    if pauses_clock(to_status) and not pauses_clock(from_status):
        a.paused_at = at
    elif pauses_clock(from_status) and not pauses_clock(to_status) and a.paused_at is not None:
        stood = max(timedelta(0), at - a.paused_at)
        a.paused_seconds = (a.paused_seconds or 0) + int(stood.total_seconds())
        if a.answer_due_at is not None:
            a.answer_due_at += stood
        a.paused_at = None


def is_past_due(a: Assignment, now: datetime) -> bool:
    """Past due: not finished, the clock is running, and the answer (or, before the agency
    acknowledged, the acknowledgement) is late."""
    if is_terminal(a.status) or pauses_clock(a.status):
        return False
    if a.answer_due_at is not None and now > a.answer_due_at:
        return True
    not_acknowledged = a.status in (QUEUED, SENT, UNDELIVERABLE)
    return not_acknowledged and a.acknowledge_due_at is not None and now > a.acknowledge_due_at


def mark_past_due(session: Session, now: datetime, limit: int = 500) -> int:
    """Stamp assignments that just went past due and say so on the timeline (the SLA watch)."""
    terminal = [s for s in statuses() if is_terminal(s)]
    paused = [s for s in statuses() if pauses_clock(s)]
    rows = session.scalars(
        select(Assignment)
        .where(
            Assignment.past_due_at.is_(None),
            Assignment.status.not_in(terminal + paused),
            or_(
                Assignment.answer_due_at < now,
                and_(
                    Assignment.status.in_((QUEUED, SENT, UNDELIVERABLE)),
                    Assignment.acknowledge_due_at < now,
                ),
            ),
        )
        .order_by(Assignment.id)
        .limit(limit)
    ).all()
    for a in rows:
        a.past_due_at = now
        late = (
            "answer" if a.answer_due_at is not None and now > a.answer_due_at else "acknowledgement"
        )
        due = a.answer_due_at if late == "answer" else a.acknowledge_due_at
        add_event(
            session,
            a.case,
            actor="hub",
            at=now,
            now=now,
            assignment=a,
            message=f"Past due: the agency's {late} was due on {due:%Y-%m-%d}.",
            dedupe_key=f"past-due:{late}",
            kind="past_due",
        )
        if due is not None and answers_consumer(a.stage):
            _notify_past_due(session, a, late, due, now)
    return len(rows)


def _notify_past_due(
    session: Session, a: Assignment, late: str, due: datetime, now: datetime
) -> None:
    """The past-due mail, once per line and kind of lateness. A line that only informs an
    inspection owes the consumer no answer, so its lateness is the operators' business only."""
    from hub import notify

    notify.enqueue(
        session,
        a.case,
        "past_due",
        now=now,
        dedupe=f"{a.agency_id}:{late}",
        data={"agency_id": a.agency_id, "due": local_date(due, a.case.language)},
    )


def local_date(value: datetime, language: str) -> str:
    """A date as a mail names it: in Brussels, written out in the consumer's language."""
    return format_date(value.astimezone(BRUSSELS), format="long", locale=LOCALES[language])


def notify_on() -> tuple[str, ...]:
    """The line statuses a consumer is mailed about (statuses.yaml `notify.moves_to`)."""
    return tuple(vocabulary()["notify"]["moves_to"])


NOTIFY_ON = notify_on()


def batch_delay() -> timedelta:
    """How long a line's change waits so that changes arriving together go out in one mail."""
    return timedelta(minutes=float(vocabulary()["notify"]["batch_minutes"]))


def notify_line(
    session: Session,
    a: Assignment,
    to_status: str,
    *,
    message: str | None,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Queue the mail for one line's change; the worker sends every change pending for the case
    in one mail once the first has waited `batch_delay` (hub/notify.send_due)."""
    from hub import notify

    case = a.case
    waiting = to_status == WAITING_FOR_CONSUMER
    data: dict[str, Any] = {
        "status": label(shown_status(to_status), case.language),
        "agency_id": a.agency_id,
        "message": message or "",
        "to": to_status,
    }
    if reason:
        data["reason"] = reason  # an information request's: the mail says it in the language
    if waiting:
        data["reply_by"] = local_date(reply_by(to_status, a.paused_at or now) or now, case.language)
    session.info.setdefault(MAILED, set()).add(id(case))
    notify.enqueue(
        session,
        case,
        "waiting" if waiting else "status",
        now=now,
        dedupe=f"{a.agency_id}:{to_status}@{now.isoformat()}",
        data=data,
    )


def refresh_case(case: Case, now: datetime, *, quiet: bool = False) -> None:
    """Recompute the case's one status from its lines (`case_status`). Each line's change mails
    the consumer on its own (`move`); a case status that changed without any line change queued
    here (a bulk writer's receipts) is mailed from here, unless `quiet` (the consumer's own act)."""
    session = object_session(case)
    queued = session is not None and _queued(session, case)
    answered = _answered(session, case) if session is not None else set()
    new = case_status((a.status, a.stage, a.id in answered) for a in case.assignments)
    if new != case.status:
        old, case.status = case.status, new
        if session is not None and not quiet and new in NOTIFY_ON and not queued:
            _notify_status(session, case, old, new, now)
    case.updated_at = now


def _answered(session: Session, case: Case) -> set[int]:
    """Which of the case's waiting lines the consumer has answered (a query only when a line
    waits for the consumer)."""
    waiting = [a.id for a in case.assignments if a.status == WAITING_FOR_CONSUMER and a.id]
    if not waiting:
        return set()
    rows = session.execute(
        select(
            StatusEvent.assignment_id,
            StatusEvent.id,
            StatusEvent.actor,
            StatusEvent.kind,
            StatusEvent.to_status,
        )
        .where(StatusEvent.assignment_id.in_(waiting))
        .order_by(StatusEvent.id)
    ).all()
    return answered_lines((r[0], r[1], r[2], r[3], r[4]) for r in rows)


MAILED = "loket.lines_mailed"  # session.info: the cases whose line changes were queued


def _queued(session: Session, case: Case) -> bool:
    return id(case) in session.info.get(MAILED, ())


def _notify_status(session: Session, case: Case, old: str, new: str, now: datetime) -> None:
    from hub import notify

    line = next((a for a in reversed(case.assignments) if consumer_sees(a.status) == new), None)
    said = None
    if line is not None:
        said = next(
            (
                e.message
                for e in reversed(case.events)
                if e.assignment_id == line.id and e.actor == "agency" and e.message
            ),
            None,
        )
    kind = "waiting" if new == "waiting_for_consumer" else "status"
    notify.enqueue(
        session,
        case,
        kind,
        now=now,
        dedupe=f"{old}->{new}@{now.isoformat()}",
        data={
            "status": label(new, case.language),
            "agency_id": line.agency_id if line else None,
            "message": said or "",
        },
    )


def event_exists(session: Session, assignment_id: int, dedupe_key: str) -> bool:
    return (
        session.scalar(
            select(StatusEvent.id).where(
                StatusEvent.assignment_id == assignment_id, StatusEvent.dedupe_key == dedupe_key
            )
        )
        is not None
    )
