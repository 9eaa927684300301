"""What an agency does with its cases, whichever door it uses: the agency API (hub/agencyapi.py)
and the hosted workspace (admin/workspace.py) call these same functions.

Every action that speaks for the agency (acknowledge, a status, a message, an information
request, "not competent", a document for the consumer) becomes a `StatusUpdate` and goes through
the inbound path polled updates take (hub/inbound.py): idempotent by the update id (an API
client's `update_id`, else one made here), ordered by its time (a late one is kept, never moves
the line back), counted, and on the evidence log. Who acted (an API client, a staff account) is
recorded in the same transaction.

Scope: an agency sees and changes only the lines it holds. A case without a line at the agency
answers exactly like an unknown reference (`NotFound`, after the same lookup), so another
agency's cases do not even show that they exist.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from adapters.base import StatusUpdate
from hub import (
    audit,
    inbound,
    lifecycle,
    queries,  # its case lookup (queries reads the agency view from here)
    referral,
)
from hub.attachments import Upload
from hub.canonical import case_document
from hub.intake import attachment_row
from hub.models import Assignment, Attachment, Case, Message
from hub.services import Hub
from mappings.engine import INFORMATION_REASONS, AgencyMapping

__all__ = [
    "INFORMATION_REASONS",
    "ActionResult",
    "AgencyActor",
    "AgencyCase",
    "AssignmentPage",
    "AssignmentRow",
    "Document",
    "Invalid",
    "NotFound",
]

PAGE_LIMIT = 100
# What a readable summary of a case shows, when the agency's mapping shares it (a path its
# fields read, or a part of one): the data-minimisation rule holds on screen too.
SUMMARY = (
    "consumer.name",
    "consumer.email",
    "consumer.phone",
    "consumer.address.postcode",
    "consumer.address.city",
    "trader.name",
    "trader.enterprise_number",
    "trader.website",
    "case.description",
    "case.incident_date",
    "case.amount",
    "case.currency",
)


def _summary(mapping: AgencyMapping, document: Mapping[str, Any]) -> dict[str, Any]:
    sources = {rule.source for rule in mapping.fields if rule.source}
    out: dict[str, Any] = {}
    for path in SUMMARY:
        if not any(path == src or path.startswith(src + ".") for src in sources):
            continue
        value: Any = document
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value not in (None, ""):
            out[path] = value
    return out


class NotFound(LookupError):
    """No such case at this agency (unknown, or another agency's: the caller cannot tell)."""


class Invalid(ValueError):
    """The action cannot be done as asked; `field` names what to change, `fix` how."""

    def __init__(self, field: str, detail: str, fix: str):
        super().__init__(detail)
        self.field, self.detail, self.fix = field, detail, fix


@dataclass(frozen=True)
class AgencyActor:
    """Who acts for the agency: `name` goes on the evidence log (`api:<client>` or
    `agency:<account>`)."""

    agency_id: str
    name: str


@dataclass(frozen=True)
class ActionResult:
    reference: str
    agency_reference: str | None
    status: str
    agency_status: str | None
    outcome: str  # applied | duplicate | stale | unknown | not_allowed (hub/inbound.py)
    update_id: str


@dataclass(frozen=True)
class Document:
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime
    origin: str  # case | consumer | agency


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    from_status: str | None
    to_status: str | None
    agency_status: str | None
    message: str | None
    reason: str | None


@dataclass(frozen=True)
class Note:
    at: datetime
    direction: str  # to_agency (the consumer wrote) | from_agency
    text: str
    documents: tuple[int, ...]


@dataclass(frozen=True)
class AgencyCase:
    """One case as one agency sees it: its line, the case as its mapping renders it (only the
    mapped fields: the data-minimisation rule holds here too), documents and exchanges."""

    reference: str
    agency_id: str
    kind: str
    domain: str
    language: str  # the consumer's
    created_at: datetime
    status: str
    agency_status: str | None
    agency_reference: str | None
    agency_reference_provisional: bool
    outcome: str | None
    acknowledge_due_at: datetime | None
    answer_due_at: datetime | None
    past_due: bool
    updated_at: datetime
    payload: Mapping[str, Any]
    summary: Mapping[str, Any]  # canonical values the mapping shares with the agency (SUMMARY)
    documents: tuple[Document, ...]
    timeline: tuple[TimelineEntry, ...]
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class AssignmentRow:
    reference: str
    kind: str
    domain: str
    language: str
    status: str
    agency_status: str | None
    agency_reference: str | None
    acknowledge_due_at: datetime | None
    answer_due_at: datetime | None
    past_due: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AssignmentPage:
    items: tuple[AssignmentRow, ...]
    next_cursor: str | None


# ------------------------------------------------------------------------------------- reading


def _line_of(case: Case | None, agency_id: str) -> Assignment | None:
    if case is None:
        return None
    return next((a for a in reversed(case.assignments) if a.agency_id == agency_id), None)


def _find(s: Session, agency_id: str, reference: str) -> tuple[Case, Assignment]:
    case = queries.load_case(s, reference or "")
    line = _line_of(case, agency_id)
    if case is None or line is None:
        raise NotFound(reference)
    return case, line


def _encode_cursor(updated_at: datetime, line_id: int) -> str:
    raw = json.dumps([updated_at.isoformat(), line_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, line_id = json.loads(raw)
        return datetime.fromisoformat(at), int(line_id)
    except (ValueError, TypeError) as exc:
        raise Invalid(
            "cursor",
            "The cursor is not one this API gave.",
            "Pass the next_cursor of the previous page unchanged, or leave it out.",
        ) from exc


def list_assignments(
    hub: Hub,
    agency_id: str,
    *,
    status: str | None = None,
    kind: str | None = None,
    changed_since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> AssignmentPage:
    """The agency's lines, least recently changed first (stable paging on (updated_at, id)), so
    `changed_since` plus the cursor reads every change once."""
    if status is not None and status not in lifecycle.statuses():
        raise Invalid(
            "status",
            f"{status!r} is not a status.",
            "Use one of " + ", ".join(lifecycle.statuses()) + ".",
        )
    if kind is not None and kind not in ("question", "complaint", "report", "mediation"):
        raise Invalid(
            "kind", f"{kind!r} is not a kind.", "Use question, complaint, report or mediation."
        )
    limit = max(1, min(int(limit), PAGE_LIMIT))
    query = (
        select(Assignment, Case)
        .join(Case, Case.id == Assignment.case_id)
        .where(Assignment.agency_id == agency_id)
        .order_by(Assignment.updated_at, Assignment.id)
        .limit(limit + 1)
    )
    if status:
        query = query.where(Assignment.status == status)
    if kind:
        query = query.where(Case.kind == kind)
    if changed_since is not None:
        query = query.where(Assignment.updated_at >= changed_since)
    if cursor:
        at, line_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Assignment.updated_at > at,
                (Assignment.updated_at == at) & (Assignment.id > line_id),
            )
        )
    now = hub.clock.now()
    with hub.db.session(read_only=True) as s:
        rows = s.execute(query).all()
        items = [
            (
                AssignmentRow(
                    reference=c.reference,
                    kind=c.kind,
                    domain=c.domain,
                    language=c.language,
                    status=a.status,
                    agency_status=a.agency_status,
                    agency_reference=None if a.agency_reference_provisional else a.agency_reference,
                    acknowledge_due_at=a.acknowledge_due_at,
                    answer_due_at=a.answer_due_at,
                    past_due=lifecycle.is_past_due(a, now),
                    created_at=c.created_at,
                    updated_at=a.updated_at,
                ),
                a.id,
            )
            for a, c in rows
        ]
    more = len(items) > limit
    items = items[:limit]
    next_cursor = _encode_cursor(items[-1][0].updated_at, items[-1][1]) if more else None
    return AssignmentPage(tuple(row for row, _ in items), next_cursor)


def _documents(s: Session, case: Case, line_ids: set[int]) -> list[Document]:
    """The case's own documents and those exchanged with this agency's lines (never another
    agency's)."""
    rows = s.execute(
        select(Attachment, Message.direction, Message.assignment_id)
        .outerjoin(Message, Message.id == Attachment.message_id)
        .where(Attachment.case_id == case.id)
        .order_by(Attachment.id)
    ).all()
    out = []
    for f, direction, line_id in rows:
        if f.message_id is not None and line_id not in line_ids:
            continue
        origin = (
            "case"
            if f.message_id is None
            else ("consumer" if direction == "to_agency" else "agency")
        )
        out.append(
            Document(f.id, f.filename, f.content_type, f.size, f.sha256, f.created_at, origin)
        )
    return out


def read_case(hub: Hub, agency_id: str, reference: str) -> AgencyCase:
    mapping = hub.directory[agency_id]
    now = hub.clock.now()
    with hub.db.session(read_only=True) as s:
        case, line = _find(s, agency_id, reference)
        line_ids = {a.id for a in case.assignments if a.agency_id == agency_id}
        doc = case_document(case, line)
        try:
            payload: Mapping[str, Any] = mapping.render(doc)
        except Exception as exc:  # a case the mapping cannot render is still the agency's
            payload = {"error": f"cannot render: {exc}"}
        messages = s.scalars(
            select(Message)
            .where(Message.case_id == case.id, Message.assignment_id.in_(line_ids))
            .options(selectinload(Message.attachments))
            .order_by(Message.id)
        ).all()
        return AgencyCase(
            reference=case.reference,
            agency_id=agency_id,
            kind=case.kind,
            domain=case.domain,
            language=case.language,
            created_at=case.created_at,
            status=line.status,
            agency_status=line.agency_status,
            agency_reference=line.agency_reference,
            agency_reference_provisional=bool(line.agency_reference_provisional),
            outcome=line.outcome,
            acknowledge_due_at=line.acknowledge_due_at,
            answer_due_at=line.answer_due_at,
            past_due=lifecycle.is_past_due(line, now),
            updated_at=line.updated_at,
            payload=payload,
            summary=_summary(mapping, doc),
            documents=tuple(_documents(s, case, line_ids)),
            timeline=tuple(
                TimelineEntry(
                    e.occurred_at,
                    e.actor,
                    e.from_status,
                    e.to_status,
                    e.agency_status,
                    e.message,
                    e.reason,
                )
                for e in case.events
                if e.assignment_id in line_ids
            ),
            notes=tuple(
                Note(m.created_at, m.direction, m.text, tuple(f.id for f in m.attachments))
                for m in messages
            ),
        )


def document(hub: Hub, agency_id: str, reference: str, document_id: int) -> tuple[Document, bytes]:
    """One document of the case the agency may read, with its content."""
    with hub.db.session(read_only=True) as s:
        case, _ = _find(s, agency_id, reference)
        line_ids = {a.id for a in case.assignments if a.agency_id == agency_id}
        for d in _documents(s, case, line_ids):
            if d.id == document_id:
                data = s.scalar(select(Attachment.data).where(Attachment.id == d.id))
                return d, bytes(data or b"")
    raise NotFound(f"{reference}/documents/{document_id}")


# ------------------------------------------------------------------------------------- acting


def _code_for(mapping: AgencyMapping, status: str, prefer: str | None = None) -> str | None:
    if prefer and (rule := mapping.statuses.get(prefer)) and rule.status == status:
        return prefer
    return next((c for c, r in mapping.statuses.items() if r.status == status), None)


def _apply(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    action: str,
    build,
    *,
    update_id: str | None = None,
    occurred_at: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
    after=None,
) -> ActionResult:
    """Load the agency's line, build its StatusUpdate, and apply it through the inbound path,
    with the actor's evidence entry, in one transaction."""
    mapping = hub.directory[actor.agency_id]
    now = hub.clock.now()
    update_id = (update_id or "").strip() or f"{action}-{uuid.uuid4().hex}"
    if len(update_id) > 120:
        raise Invalid(
            "update_id",
            "The update id is longer than 120 characters.",
            "Use a shorter id, such as a UUID.",
        )
    with hub.db.session() as s:
        case, line = _find(s, actor.agency_id, reference)
        update: StatusUpdate = build(mapping, case, line)
        update = StatusUpdate(
            agency_status=update.agency_status,
            occurred_at=occurred_at or now,
            agency_reference=update.agency_reference or line.agency_reference,
            case_reference=case.reference,
            message=update.message,
            update_id=f"{actor.agency_id}:{update_id}",
            reason=update.reason,
        )
        stats = inbound.apply_in(s, mapping, (update,), now)
        outcome = next(iter(stats.counts), inbound.DUPLICATE)
        if after is not None and outcome != inbound.DUPLICATE:
            after(s, case, line, now)
        audit.record(
            s,
            at=now,
            actor=actor.name[:32],
            action=f"agency.{action}",
            case_id=case.id,
            agency_id=actor.agency_id,
            data={
                "case": case.reference,
                "agency_status": update.agency_status,
                "update": update_id,
                "outcome": stats.counts,
                **dict(extra or {}),
            },
        )
        s.flush()
        return ActionResult(
            case.reference,
            line.agency_reference,
            line.status,
            line.agency_status,
            outcome,
            update_id,
        )


def _text(value: str | None, field: str, required: bool = False, limit: int = 4000) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise Invalid(field, f"`{field}` is empty.", f"Write the {field.replace('_', ' ')}.")
    if len(text) > limit:
        raise Invalid(
            field,
            f"`{field}` is {len(text)} characters long.",
            f"Keep it under {limit} characters.",
        )
    return text or None


def acknowledge(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    agency_reference: str,
    *,
    code: str | None = None,
    message: str | None = None,
    update_id: str | None = None,
    occurred_at: datetime | None = None,
) -> ActionResult:
    """The agency has the case and numbers it: its reference replaces the hub's placeholder
    and the line is `received` (or the received code the agency names)."""
    agency_reference = _text(agency_reference, "agency_reference", required=True, limit=128) or ""
    message = _text(message, "message")

    def build(mapping: AgencyMapping, case: Case, line: Assignment) -> StatusUpdate:
        chosen = _code_for(mapping, "received", code)
        if chosen is None:
            raise Invalid(
                "code",
                "The agency's mapping has no code meaning received.",
                "Add one to its statuses.",
            )
        if code and chosen != code:
            raise Invalid("code", f"{code!r} does not mean received.", f"Use {chosen}.")
        if (
            line.agency_reference
            and not line.agency_reference_provisional
            and line.agency_reference != agency_reference
        ):
            raise Invalid(
                "agency_reference",
                f"The case is already acknowledged as {line.agency_reference}.",
                "Acknowledge it once; send statuses under that reference.",
            )
        if line.agency_reference is None:
            raise Invalid(
                "reference",
                "The case has not reached your system yet; wait for it to be delivered.",
                "It shows in the list of assignments with status sent once delivered.",
            )
        return StatusUpdate(
            chosen, datetime.min, agency_reference=agency_reference, message=message
        )

    return _apply(
        hub,
        actor,
        reference,
        "acknowledged",
        build,
        update_id=update_id,
        occurred_at=occurred_at,
        extra={"agency_reference": agency_reference},
    )


def _acknowledged(line: Assignment) -> None:
    if line.agency_reference is None or line.agency_reference_provisional:
        raise Invalid(
            "agency_reference",
            "The case is not acknowledged yet.",
            "Acknowledge it with your reference first.",
        )


def set_status(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    code: str,
    *,
    message: str | None = None,
    update_id: str | None = None,
    occurred_at: datetime | None = None,
    allowed: Sequence[str] | None = None,
) -> ActionResult:
    """A status in the agency's own codes (its mapping's `statuses`), with an optional message
    to the consumer. A code meaning `not_competent` hands the case back to the hub, which refers
    it. `allowed` narrows the canonical statuses the code may mean (a "close" button)."""
    message = _text(message, "message")

    def build(mapping: AgencyMapping, case: Case, line: Assignment) -> StatusUpdate:
        rule = mapping.statuses.get(code or "")
        if rule is None or (allowed is not None and rule.status not in allowed):
            codes = [
                c for c, r in mapping.statuses.items() if allowed is None or r.status in allowed
            ]
            raise Invalid(
                "code",
                f"{code!r} is not a status code of this agency here.",
                "Choose one of your agency's status codes: " + ", ".join(codes) + ".",
            )
        if line.agency_reference is None:
            raise Invalid(
                "reference",
                "The case has not reached your system yet; wait for it to be delivered.",
                "Wait for its delivery.",
            )
        return StatusUpdate(code, datetime.min, message=message)

    return _apply(
        hub, actor, reference, "status", build, update_id=update_id, occurred_at=occurred_at
    )


def post_message(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    text: str,
    *,
    update_id: str | None = None,
    occurred_at: datetime | None = None,
) -> ActionResult:
    """A message to the consumer; the line keeps its status (the agency's current code)."""
    text = _text(text, "text", required=True) or ""

    def build(mapping: AgencyMapping, case: Case, line: Assignment) -> StatusUpdate:
        _acknowledged(line)
        code = line.agency_status or _code_for(mapping, line.status)
        if code is None:
            raise Invalid(
                "reference",
                "The case has no status the agency's codes can say.",
                "Set a status first.",
            )
        return StatusUpdate(code, datetime.min, message=text)

    return _apply(
        hub, actor, reference, "message", build, update_id=update_id, occurred_at=occurred_at
    )


def request_information(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    reason: str,
    text: str | None = None,
    *,
    update_id: str | None = None,
    occurred_at: datetime | None = None,
) -> ActionResult:
    """Ask the consumer for information: a reason from the mapping's `information_requests`
    (the consumer reads it in their language) and the agency's own words. The line waits for
    the consumer; its answer clock stops."""
    text = _text(text, "text")

    def build(mapping: AgencyMapping, case: Case, line: Assignment) -> StatusUpdate:
        if reason not in mapping.information_requests:
            offered = (
                ", ".join(mapping.information_requests)
                or "(none: add information_requests to the mapping)"
            )
            raise Invalid(
                "reason",
                f"{reason!r} is not a reason this agency asks for.",
                f"Use one of {offered}.",
            )
        _acknowledged(line)
        return StatusUpdate(
            mapping.information_requests[reason], datetime.min, message=text, reason=reason
        )

    return _apply(
        hub,
        actor,
        reference,
        "information_requested",
        build,
        update_id=update_id,
        occurred_at=occurred_at,
        extra={"reason": reason},
    )


def not_competent(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    *,
    refer_to: str | None = None,
    message: str | None = None,
    update_id: str | None = None,
    occurred_at: datetime | None = None,
) -> ActionResult:
    """ "Not competent": the line ends `not_competent` and the hub refers the case, to
    `refer_to` when the agency names the competent body, else to the next one routing finds."""
    message = _text(message, "message")

    def build(mapping: AgencyMapping, case: Case, line: Assignment) -> StatusUpdate:
        if refer_to is not None and refer_to not in hub.directory:
            raise Invalid(
                "refer_to",
                f"There is no body {refer_to!r}.",
                "Use an id of GET /api/v1/agency/bodies, or leave it out.",
            )
        if refer_to == actor.agency_id:
            raise Invalid(
                "refer_to",
                "A case cannot be referred to the body that refers it.",
                "Name another body.",
            )
        code = _code_for(mapping, "not_competent")
        if code is None:
            raise Invalid(
                "reference",
                "The agency's mapping has no code meaning not_competent.",
                "Add one to its statuses.",
            )
        if line.agency_reference is None:
            raise Invalid(
                "reference",
                "The case has not reached your system yet; wait for it to be delivered.",
                "Wait for its delivery.",
            )
        return StatusUpdate(code, datetime.min, message=message)

    result = _apply(
        hub,
        actor,
        reference,
        "not_competent",
        build,
        update_id=update_id,
        occurred_at=occurred_at,
        extra={"refer_to": refer_to},
    )
    if result.outcome == inbound.APPLIED:
        with hub.db.session(read_only=True) as s:
            _, line = _find(s, actor.agency_id, reference)
            line_id = line.id
        # a referral that cannot be made now is left to the worker's referral job and the
        # operators' attention page ("not competent" answers not yet referred)
        with contextlib.suppress(referral.ReferralError):
            referral.refer(
                hub.db,
                router=hub.router,
                directory=hub.directory,
                now=hub.clock.now(),
                actor="agency",  # the timeline's who; the evidence above names the account
                assignment_id=line_id,
                to_agency=refer_to,
                reason=message,
            )
    return result


def add_document(
    hub: Hub,
    actor: AgencyActor,
    reference: str,
    upload: Upload,
    text: str | None = None,
    *,
    update_id: str | None = None,
) -> ActionResult:
    """A document for the consumer (checked like the consumer's own: hub/attachments.py), on
    a message from the agency; the timeline says it arrived."""
    text = _text(text, "text")

    def build(mapping: AgencyMapping, case: Case, line: Assignment) -> StatusUpdate:
        _acknowledged(line)
        code = line.agency_status or _code_for(mapping, line.status)
        if code is None:
            raise Invalid(
                "reference",
                "The case has no status the agency's codes can say.",
                "Set a status first.",
            )
        said = f"{text}\n" if text else ""
        return StatusUpdate(code, datetime.min, message=f"{said}[{upload.filename}]")

    def store(s: Session, case: Case, line: Assignment, now: datetime) -> None:
        message = Message(
            case_id=case.id,
            assignment_id=line.id,
            direction="from_agency",
            author="agency",
            text=text or upload.filename,
            created_at=now,
            delivered_at=now,
        )
        s.add(message)
        s.flush()
        s.add(Attachment(**attachment_row(case.id, upload, now, message.id)))

    return _apply(
        hub,
        actor,
        reference,
        "document",
        build,
        update_id=update_id,
        extra={"document": upload.sha256, "filename": upload.filename},
        after=store,
    )
