"""What a consumer can do with their case after filing it: answer an agency, withdraw.

Every action needs the case's reference and its tracking token, is one transaction, and leaves
a timeline entry; anything for an agency goes through the outbox like the case itself did.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub import audit, lifecycle, notify, outbox
from hub import reference as references
from hub.attachments import Upload
from hub.db import Database
from hub.intake import attachment_row, token_matches
from hub.models import Assignment, Attachment, Case, Delivery, DeliveryState, Message, Rating
from hub.schemas import clean_text


class NotAllowed(ValueError):
    """The action does not apply (the line is closed, say); the message says why."""


class WrongCode(LookupError):
    """No case opens with this reference and code (an unknown reference or a wrong code alike):
    the front desk counts it as a wrong code."""


def find_case(s: Session, reference: str, token: str | None) -> Case | None:
    """The case, if the token opens it; None for an unknown reference or a wrong token alike.

    The token is checked on the case row alone, before anything else of the case is read: a
    wrong token costs what an unknown reference costs (one statement, one hash), and nothing
    else of the case (its lines, timeline, parties, documents) is loaded for a guesser."""
    normalised = references.normalise(reference or "")
    case = (
        s.scalars(select(Case).where(Case.reference == normalised)).first() if normalised else None
    )
    if case is None:
        token_matches(token, "0" * 64)  # the same work as a wrong token: no timing oracle
        return None
    if not token_matches(token, case.token_hash):
        return None
    # what the callers use, in one go; the documents' bytes stay in the database until served
    s.scalars(
        select(Case)
        .where(Case.id == case.id)
        .options(
            selectinload(Case.assignments),
            selectinload(Case.events),
            selectinload(Case.parties),
            selectinload(Case.attachments).defer(Attachment.data),
        )
    ).first()
    return case


def to_agency(
    s: Session,
    case: Case,
    line: Assignment,
    text: str,
    now: datetime,
    uploads: list[Upload] | None = None,
    *,
    withdrawal: bool = False,
) -> Message:
    """The consumer's message to the agency of `line`, its documents, and its outbox row (keyed
    `<reference>.<agency>.msg<message id>`, plus `.withdrawn` when it tells the agency the case
    is withdrawn: the key, which the consumer cannot write, is what marks it), in the caller's
    transaction."""
    message = Message(
        case_id=case.id,
        assignment_id=line.id,
        direction="to_agency",
        author="consumer",
        text=text,
        created_at=now,
    )
    s.add(message)
    s.flush()
    for upload in uploads or []:
        s.add(Attachment(**attachment_row(case.id, upload, now, message.id)))
    s.add(
        Delivery(
            assignment_id=line.id,
            **outbox.delivery_row(
                agency_id=line.agency_id,
                idempotency_key=f"{case.reference}.{line.agency_id}.msg{message.id}"
                + (outbox.WITHDRAWAL_SUFFIX if withdrawal else ""),
                now=now,
                kind=outbox.MESSAGE,
                message_id=message.id,
            ),
        )
    )
    return message


def reply(
    db: Database,
    reference: str,
    token: str,
    assignment_id: int,
    text: str,
    uploads: list[Upload],
    now: datetime,
) -> int:
    """The consumer answers an agency (usually its information request). Returns the message id.
    Control characters are dropped: no agency system (an XML one least of all) takes them."""
    text = clean_text(text or "", multiline=True).strip()
    if not text and not uploads:
        raise NotAllowed("Write an answer or add a document.")
    with db.session() as s:
        case = find_case(s, reference, token)
        if case is None:
            raise WrongCode(reference)
        line = next((a for a in case.assignments if a.id == assignment_id), None)
        if line is None or lifecycle.is_terminal(line.status):
            raise NotAllowed("This agency's part of the case is closed; it takes no answers.")
        message = to_agency(s, case, line, text, now, uploads)
        files = f" with {len(uploads)} document(s)" if uploads else ""
        lifecycle.note(
            s,
            line,
            actor="consumer",
            now=now,
            message=f"You answered{files}: {text[:500]}",
            kind="consumer_reply",
            action="message.written",
            data={"message_id": message.id, "attachments": [u.sha256 for u in uploads]},
        )
        # "Answer sent, the service is handling it" until the service asks again.
        lifecycle.refresh_case(case, now, quiet=True)
        return message.id


def withdraw(db: Database, reference: str, token: str, reason: str, now: datetime) -> int:
    """The consumer withdraws the case: every open line ends as withdrawn; agencies that have it
    are told through the outbox; what was not sent yet is not sent. Returns the lines closed."""
    with db.session() as s:
        case = find_case(s, reference, token)
        if case is None:
            raise WrongCode(reference)
        open_lines = [a for a in case.assignments if not lifecycle.is_terminal(a.status)]
        if not open_lines:
            raise NotAllowed("The case is already closed.")
        why = (reason or "").strip()[:1000]
        for line in open_lines:
            unsent = s.scalars(
                select(Delivery).where(
                    Delivery.assignment_id == line.id,
                    Delivery.kind == outbox.CASE,
                    Delivery.state.in_(
                        (DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.DEAD)
                    ),
                )
            ).first()
            if unsent is not None:
                unsent.state, unsent.updated_at = DeliveryState.CANCELLED, now
            elif line.agency_reference:
                to_agency(
                    s,
                    case,
                    line,
                    f"The consumer withdraws this case. {why}".strip(),
                    now,
                    withdrawal=True,
                )
            lifecycle.move(
                s,
                line,
                "withdrawn",
                actor="consumer",
                at=now,
                now=now,
                message=f"You withdrew the case. {why}".strip(),
                kind="withdrawn",
            )
        audit.record(
            s,
            at=now,
            actor="consumer",
            action="case.withdrawn",
            case_id=case.id,
            data={"reason": why},
        )
        lifecycle.refresh_case(case, now)
        notify.enqueue(s, case, "withdrawn", now=now, dedupe="withdrawn")
        return len(open_lines)


def attachment(db: Database, reference: str, token: str, attachment_id: int) -> Attachment:
    """One of the case's files, for the consumer who owns it."""
    with db.session(read_only=True) as s:
        case = find_case(s, reference, token)
        if case is None:
            raise WrongCode(reference)
        found = s.scalars(
            select(Attachment).where(Attachment.id == attachment_id, Attachment.case_id == case.id)
        ).first()
        if found is None:
            raise LookupError(attachment_id)
        return found


def messages(s: Session, case: Case) -> list[Message]:
    return list(
        s.scalars(
            select(Message)
            .where(Message.case_id == case.id)
            .options(selectinload(Message.attachments))
            .order_by(Message.id)
        )
    )


def lines_waiting(case: Case) -> list[Assignment]:
    return [a for a in case.assignments if a.status == "waiting_for_consumer"]


RATINGS = ("yes", "partly", "no")
RATING_COMMENT_MAX = 2000


def ratings(db: Database, reference: str, token: str) -> dict[int, str]:
    """The consumer's ratings of the case's lines: line id -> yes | partly | no."""
    with db.session(read_only=True) as s:
        case = find_case(s, reference, token)
        if case is None:
            return {}
        return {
            r.assignment_id: r.answer
            for r in s.scalars(select(Rating).where(Rating.case_id == case.id))
        }


def rate(
    db: Database,
    reference: str,
    token: str,
    assignment_id: int,
    answer: str,
    comment: str | None,
    now: datetime,
) -> None:
    """The consumer says whether a resolved line solved their problem: once per line. The
    comment is for that service only (its workspace), never published; the evidence log keeps
    the answer, not the comment."""
    if answer not in RATINGS:
        raise NotAllowed("Choose yes, partly or no.")
    comment = (comment or "").strip()[:RATING_COMMENT_MAX] or None
    with db.session() as s:
        case = find_case(s, reference, token)
        if case is None:
            raise LookupError(reference)
        line = next((a for a in case.assignments if a.id == assignment_id), None)
        if line is None or line.status != "resolved" or not lifecycle.answers_consumer(line.stage):
            raise NotAllowed("Only a service's answer to you can be rated, once it is given.")
        if s.scalar(select(Rating.id).where(Rating.assignment_id == line.id)) is not None:
            raise NotAllowed("You rated this answer already.")
        s.add(
            Rating(
                case_id=case.id,
                assignment_id=line.id,
                agency_id=line.agency_id,
                answer=answer,
                comment=comment,
                created_at=now,
            )
        )
        audit.record(
            s,
            at=now,
            actor="consumer",
            action="answer.rated",
            case_id=case.id,
            agency_id=line.agency_id,
            data={"line": line.id, "answer": answer},
        )
