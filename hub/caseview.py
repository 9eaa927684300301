"""The consumer's view of one case, built in one place for every reader.

The API's status body, the front desk's confirmation and tracking pages and `loket cases show`
used to each read the case their own way, and drifted (the front desk hid SFTP file names by
guessing from a dot). They now all read one `CaseView`: the case, its lines per agency, its
timeline, and (for the pages) the messages and files, as frozen values computed at one moment of
the hub's clock. Callers only format it.

The view is read far more often than cases change, so it is built from Core queries on one
connection, no ORM: the case, its lines and its timeline (three queries), plus the consumer's
address, messages and files when the caller asks for `documents` (the pages, not the API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from hub import intake, lifecycle
from hub import reference as references
from hub.agencies import Directory
from hub.models import Assignment, Attachment, Case, Message, Party, StatusEvent
from hub.services import Hub
from mappings.names import NameForms
from mappings.names import forms as name_forms

WAITING_FOR_CONSUMER = "waiting_for_consumer"


@dataclass(frozen=True)
class Line:
    """The case at one agency, as the consumer may see it."""

    id: int
    agency_id: str
    names: Mapping[str, str]  # the agency's name per language; empty for an unknown agency
    body: str | None  # the kind of body (ombudsman, inspection, ...), from its mapping
    stage: str  # handle | inform | referral | operator
    reason: str | None  # why this agency has the case
    status: str  # the line's canonical status
    consumer_status: str  # what the consumer is shown for it (undeliverable shows as queued)
    agency_status: str | None
    agency_reference: str | None
    reference_provisional: bool  # a stand-in (an SFTP file name) until the agency numbers it
    acknowledge_by: datetime | None
    answer_by: datetime | None
    past_due: bool
    clock_paused: bool  # the agency waits for the consumer; its answer date moves on meanwhile
    terminal: bool
    answered: bool  # it waited for the consumer, who answered; the service acts until it asks again
    reply_by: datetime | None  # by when the consumer should answer it (while it waits for them)
    outcome: str | None
    referred_from: str | None  # the agency that referred the case here
    basis: str | None = None  # the law or the body's rules the routing decision rests on
    referral: Mapping[str, Any] | None = None  # a referral body: what, url, form_url, ...
    grammar: Mapping[str, Mapping[str, str]] | None = None  # its article per language
    languages: tuple[str, ...] = ()  # the languages the agency works in, from its mapping

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names.get("en") or self.agency_id

    def forms(self, language: str) -> NameForms:
        """The name as a sentence needs it, with its article ("au Service", "zum Ombudsdienst")."""
        lang = language if language in self.names else "en"
        return name_forms(self.name(lang), lang, (self.grammar or {}).get(lang))

    @property
    def shown_reference(self) -> str | None:
        """The agency's own reference, or None while it is only a stand-in."""
        return None if self.reference_provisional else self.agency_reference

    @property
    def needs_answer(self) -> bool:
        """What the consumer must do: answer this agency (it waits for them, not answered yet)."""
        return self.status == WAITING_FOR_CONSUMER and not self.answered

    @property
    def answers_consumer(self) -> bool:
        """The line answers the consumer (it does not only inform an inspection)."""
        return lifecycle.answers_consumer(self.stage)


@dataclass(frozen=True)
class Event:
    """One entry of the timeline."""

    id: int
    at: datetime
    actor: str  # hub | agency | consumer | operator
    kind: str | None
    line_id: int | None
    agency_id: str | None
    from_status: str | None  # canonical
    to_status: str | None
    message: str | None
    reason: str | None = None  # an information request's reason (mappings INFORMATION_REASONS)

    @property
    def consumer_from(self) -> str | None:
        return lifecycle.consumer_sees(self.from_status) if self.from_status else None

    @property
    def consumer_to(self) -> str | None:
        return lifecycle.consumer_sees(self.to_status) if self.to_status else None


@dataclass(frozen=True)
class File:
    """A document's metadata (never its content)."""

    id: int
    name: str
    size: int
    content_type: str


@dataclass(frozen=True)
class Note:
    """A message between the consumer and an agency, with its documents."""

    id: int
    line_id: int | None
    author: str  # consumer | agency | operator:<name>
    direction: str  # to_agency | from_agency
    text: str
    at: datetime
    files: tuple[File, ...]


@dataclass(frozen=True)
class CaseView:
    reference: str
    kind: str
    domain: str
    language: str
    status: str  # the case's one status
    created_at: datetime
    updated_at: datetime
    expected_answer_by: datetime | None
    past_due: bool
    lines: tuple[Line, ...]
    timeline: tuple[Event, ...]
    # With documents=True only (the pages); empty otherwise.
    consumer_email: str | None = None
    messages: tuple[Note, ...] = ()
    files: tuple[File, ...] = ()  # the documents filed with the case (not those of messages)

    @property
    def speaking_lines(self) -> tuple[Line, ...]:
        """The lines that answer the consumer (all lines when none does, e.g. a report)."""
        return tuple(line for line in self.lines if line.answers_consumer) or self.lines

    @property
    def waiting_lines(self) -> tuple[Line, ...]:
        """The services that wait for the consumer's answer, soonest reply-by first."""
        waiting = [line for line in self.lines if line.needs_answer]
        return tuple(sorted(waiting, key=lambda line: (line.reply_by is None, line.reply_by)))

    @property
    def answered_lines(self) -> tuple[Line, ...]:
        """The open lines the consumer has answered: those services act now."""
        return tuple(line for line in self.lines if line.answered and not line.terminal)

    @property
    def reply_by(self) -> datetime | None:
        """The soonest date by which the consumer should answer a service, if any waits."""
        dates = [line.reply_by for line in self.waiting_lines if line.reply_by]
        return min(dates) if dates else None

    @property
    def open_lines(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if not line.terminal)

    @property
    def can_withdraw(self) -> bool:
        return bool(self.open_lines)

    def line(self, line_id: int | None) -> Line | None:
        return next((line for line in self.lines if line.id == line_id), None)


def for_consumer(
    hub: Hub, reference: str, token: str | None, *, documents: bool = False
) -> CaseView | None:
    """The case if `token` opens it; None for an unknown reference or a wrong token alike, after
    the same work (no timing oracle)."""
    normalised = references.normalise(reference or "")
    if not normalised:
        intake.token_matches(token, "0" * 64)
        return None
    cases = Case.__table__
    with hub.db.engine.connect() as conn:
        case = conn.execute(select(cases).where(cases.c.reference == normalised)).first()
        if case is None:
            intake.token_matches(token, "0" * 64)
            return None
        if not intake.token_matches(token, case.token_hash):
            return None
        return build(conn, case, hub.directory, hub.clock.now(), documents=documents)


def for_operator(hub: Hub, reference: str, *, documents: bool = False) -> CaseView | None:
    """The same view without the consumer's token (the operator's CLI)."""
    normalised = references.normalise(reference or "")
    if not normalised:
        return None
    cases = Case.__table__
    with hub.db.engine.connect() as conn:
        case = conn.execute(select(cases).where(cases.c.reference == normalised)).first()
        if case is None:
            return None
        return build(conn, case, hub.directory, hub.clock.now(), documents=documents)


def build(
    conn: Connection, case: Any, directory: Directory, now: datetime, *, documents: bool = False
) -> CaseView:
    """The view of the case row `case` at `now`, read on `conn`."""
    lines_t, events_t = Assignment.__table__, StatusEvent.__table__
    rows = conn.execute(
        select(lines_t).where(lines_t.c.case_id == case.id).order_by(lines_t.c.id)
    ).all()
    agency_of = {r.id: r.agency_id for r in rows}
    timeline = tuple(
        Event(
            id=e.id,
            at=e.occurred_at,
            actor=e.actor,
            kind=e.kind,
            line_id=e.assignment_id,
            agency_id=agency_of.get(e.assignment_id) if e.assignment_id else None,
            from_status=e.from_status,
            to_status=e.to_status,
            message=e.message,
            reason=e.reason,
        )
        for e in conn.execute(
            select(events_t).where(events_t.c.case_id == case.id).order_by(events_t.c.id)
        )
    )
    answered = lifecycle.answered_lines(
        (e.line_id, e.id, e.actor, e.kind, e.to_status) for e in timeline
    )
    lines = tuple(_line(r, directory, agency_of, now, r.id in answered) for r in rows)
    # The truth rule: the status, the expected date and "past due" come from the lines that
    # answer the consumer; a line that only informs an inspection holds none of them.
    speaking = [line for line in lines if line.answers_consumer]
    open_dues = [line.answer_by for line in speaking if line.answer_by and not line.terminal]
    extra: dict[str, Any] = _documents(conn, case.id) if documents else {}
    return CaseView(
        reference=case.reference,
        kind=case.kind,
        domain=case.domain,
        language=case.language,
        status=lifecycle.case_status((line.status, line.stage, line.answered) for line in lines),
        created_at=case.created_at,
        updated_at=case.updated_at,
        expected_answer_by=max(open_dues) if open_dues else None,
        past_due=any(line.past_due for line in speaking),
        lines=lines,
        timeline=timeline,
        **extra,
    )


def _line(
    a: Any, directory: Directory, agency_of: dict[int, str], now: datetime, answered: bool
) -> Line:
    mapping = directory.agencies.get(a.agency_id)
    return Line(
        id=a.id,
        agency_id=a.agency_id,
        names=dict(mapping.names) if mapping else {},
        grammar=dict(mapping.grammar) if mapping else None,
        languages=tuple(mapping.languages) if mapping else (),
        body=mapping.body if mapping else None,
        stage=a.stage,
        reason=a.reason,
        basis=a.basis,
        referral=dict(mapping.referral) if mapping and not mapping.connected else None,
        status=a.status,
        consumer_status=lifecycle.shown_status(a.status, answered),
        agency_status=a.agency_status,
        agency_reference=a.agency_reference,
        reference_provisional=bool(a.agency_reference and a.agency_reference_provisional),
        acknowledge_by=a.acknowledge_due_at,
        answer_by=a.answer_due_at,
        past_due=lifecycle.is_past_due(a, now),
        clock_paused=a.paused_at is not None,
        terminal=lifecycle.is_terminal(a.status),
        answered=answered,
        reply_by=None if answered else lifecycle.reply_by(a.status, a.paused_at),
        outcome=a.outcome,
        referred_from=agency_of.get(a.referred_from_id) if a.referred_from_id else None,
    )


def _documents(conn: Connection, case_id: int) -> dict[str, Any]:
    """The consumer's address, the messages and the files' metadata: three more queries."""
    parties, messages_t, files_t = Party.__table__, Message.__table__, Attachment.__table__
    email = conn.execute(
        select(parties.c.email).where(parties.c.case_id == case_id, parties.c.role == "consumer")
    ).scalar()
    by_message: dict[int | None, list[File]] = {}
    for f in conn.execute(
        select(
            files_t.c.id,
            files_t.c.message_id,
            files_t.c.filename,
            files_t.c.size,
            files_t.c.content_type,
        )
        .where(files_t.c.case_id == case_id)
        .order_by(files_t.c.id)
    ):
        by_message.setdefault(f.message_id, []).append(
            File(f.id, f.filename, f.size, f.content_type)
        )
    notes = tuple(
        Note(
            id=m.id,
            line_id=m.assignment_id,
            author=m.author,
            direction=m.direction,
            text=m.text,
            at=m.created_at,
            files=tuple(by_message.get(m.id, ())),
        )
        for m in conn.execute(
            select(messages_t).where(messages_t.c.case_id == case_id).order_by(messages_t.c.id)
        )
    )
    return {"consumer_email": email, "messages": notes, "files": tuple(by_message.get(None, ()))}
