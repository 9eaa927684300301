"""Read models: what the back office, the CLI and /metrics show, as frozen values.

With `hub.operations` (the commands) this is the only door into the domain for callers outside
`hub/`: each function opens one read-only session, reads what a page or a command prints, and
returns frozen dataclasses. No ORM row leaves this module, so a template or a CLI line can never
trigger a lazy load or change a row by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from adapters.base import csv_cell
from hub import accounts, agencyside, control, evidence, lifecycle, outbox, search
from hub import reference as references
from hub.accounts import Account
from hub.canonical import case_document
from hub.control import AgencyControl
from hub.models import (
    AgencyState,
    Assignment,
    AuditEntry,
    Case,
    Delivery,
    DeliveryState,
    InboundProblem,
    Message,
    Notification,
    PollCursor,
    UnmatchedUpdate,
    User,
)
from hub.outbox import Attempt, DeadLetter
from hub.search import Hit
from hub.services import Hub

__all__ = [  # the read models; the functions are used as `queries.<name>`
    "Account",
    "AgencyControl",
    "AgencyFlow",
    "Attempt",
    "Attention",
    "CaseDetail",
    "DeadLetter",
    "DeadMail",
    "EventView",
    "EvidenceView",
    "FlowSnapshot",
    "Hit",
    "LateLine",
    "LineView",
    "MessageView",
    "PartyView",
    "ProblemItem",
    "StaffCase",
    "StatusCode",
    "StuckDelivery",
    "StuckLine",
    "UndoneDelivery",
    "UnmatchedItem",
    "UnroutedCase",
    "UserRow",
    "Workspace",
    "WorkspaceLine",
    "csv_cell",  # the one rule for CSV cells (adapters/base.py), for the workspace's export
]

LIST_LIMIT = 200
WAITING = (DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.LEASED)


# ------------------------------------------------------------------------------------ accounts


def authenticate(hub: Hub, name: str, password: str) -> Account | None:
    """The account if the name and password match and it is not disabled."""
    return accounts.authenticate(hub.db, name, password)


def account(hub: Hub, user_id: int, session_version: int | None) -> Account | None:
    """The signed-in account, or None when it was removed or disabled since, or when this
    session was signed out (its version is no longer the account's)."""
    return accounts.get(hub.db, user_id, session_version)


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    agency_id: str | None
    disabled: bool
    has_email: bool = False  # a reset link can be mailed
    totp: bool = False  # signs in with a second factor


def users(hub: Hub) -> list[UserRow]:
    with hub.db.session(read_only=True) as s:
        return [
            UserRow(u.name, u.role, u.agency_id, u.disabled, bool(u.email), bool(u.totp_secret))
            for u in s.scalars(select(User).order_by(User.name))
        ]


# ------------------------------------------------------------------------------------ agencies


def agency_ids(hub: Hub) -> list[str]:
    return hub.directory.ids()


def capabilities(hub: Hub, agency_id: str) -> frozenset[str] | None:
    """What the agency's configured adapter does (deliver, poll, messages, ...); None when its
    configuration cannot build an adapter."""
    return hub.directory.capabilities(agency_id)


def agency_names(hub: Hub, language: str = "en") -> dict[str, str]:
    return {a: hub.directory[a].name(language) for a in hub.directory.ids()}


def agency_name(hub: Hub, agency_id: str, language: str = "en") -> str | None:
    """The body's name in `language`; None for an id no mapping has (any more)."""
    if agency_id not in hub.directory:
        return None
    return hub.directory[agency_id].name(language)


def statuses() -> tuple[str, ...]:
    """The canonical assignment statuses, in the vocabulary's order."""
    return lifecycle.statuses()


def status_label(status: str, language: str = "en") -> str | None:
    """A canonical status's name in `language` (contracts/statuses.yaml); None for a code the
    vocabulary does not have, or one the consumer is shown as another status."""
    if status not in lifecycle.statuses() or lifecycle.consumer_sees(status) != status:
        return None  # unknown, or named after what the consumer is shown instead
    return lifecycle.label(status, language)


@dataclass(frozen=True)
class AgencyFlow:
    """One agency's flow health: its delivery control, its queue, its polling."""

    id: str
    name: str
    kind: str
    control: AgencyControl | None  # None: no delivery was ever attempted (breaker closed)
    counts: Mapping[str, int]  # deliveries per state
    waiting_seconds: float | None  # age of the oldest delivery waiting to go
    last_poll: datetime | None
    poll_error: str | None
    # What its configured adapter does (deliver, poll, messages, ...); empty when the
    # configuration cannot build one.
    capabilities: tuple[str, ...] = ()

    @property
    def paused(self) -> bool:
        return bool(self.control and self.control.paused)

    @property
    def breaker(self) -> str:
        return self.control.breaker if self.control else control.CLOSED


def agency_flows(hub: Hub, language: str = "en") -> list[AgencyFlow]:
    """Every configured agency's flow, in id order (the console's first page, `agencies
    status`)."""
    now = hub.clock.now()
    with hub.db.session(read_only=True) as s:
        controls = _controls(s)
        counts = outbox.counts_by_agency(s)
        oldest = _oldest(s, Delivery.state.in_(WAITING))
        polls = {
            p.agency_id: (p.last_success_at, p.last_error) for p in s.scalars(select(PollCursor))
        }
    flows = []
    for agency_id in hub.directory.ids():
        mapping = hub.directory[agency_id]
        since = oldest.get(agency_id)
        last_poll, poll_error = polls.get(agency_id, (None, None))
        flows.append(
            AgencyFlow(
                id=agency_id,
                name=mapping.name(language),
                kind=mapping.adapter_kind or "referral",
                control=controls.get(agency_id),
                counts=counts.get(agency_id, {}),
                waiting_seconds=(now - since).total_seconds() if since else None,
                last_poll=last_poll,
                poll_error=poll_error,
                capabilities=tuple(sorted(capabilities(hub, agency_id) or ())),
            )
        )
    return flows


@dataclass(frozen=True)
class FlowSnapshot:
    """The shared truth /metrics exports, read in one transaction at scrape time."""

    depth: Mapping[tuple[str, str], int]  # (agency, state) -> deliveries
    oldest_unfinished: Mapping[str, datetime]  # agency -> oldest delivery not done (dead too)
    last_poll: Mapping[str, datetime]
    controls: Mapping[str, AgencyControl]
    unmatched_updates: int
    inbound_problems: int


def flow_snapshot(hub: Hub) -> FlowSnapshot:
    with hub.db.session(read_only=True) as s:
        counts = outbox.counts_by_agency(s)
        return FlowSnapshot(
            depth={(a, st): n for a, by_state in counts.items() for st, n in by_state.items()},
            oldest_unfinished=_oldest(s, Delivery.state != DeliveryState.DONE),
            last_poll={
                a: last
                for a, last in s.execute(select(PollCursor.agency_id, PollCursor.last_success_at))
                if last is not None
            },
            controls=_controls(s),
            unmatched_updates=_open_count(s, UnmatchedUpdate),
            inbound_problems=_open_count(s, InboundProblem),
        )


def _controls(s: Session) -> dict[str, AgencyControl]:
    return {row.agency_id: control.view(row) for row in s.scalars(select(AgencyState))}


def _oldest(s: Session, condition) -> dict[str, datetime]:
    return {
        agency: oldest
        for agency, oldest in s.execute(
            select(Delivery.agency_id, func.min(Delivery.created_at))
            .where(condition)
            .group_by(Delivery.agency_id)
        )
        if oldest is not None
    }


def _open_count(s: Session, model) -> int:
    return s.scalar(select(func.count()).select_from(model).where(model.resolved_at.is_(None))) or 0


# ----------------------------------------------------------------------------- needs attention


@dataclass(frozen=True)
class LateLine:
    reference: str
    agency_id: str
    status: str
    answer_due_at: datetime | None
    past_due_at: datetime


@dataclass(frozen=True)
class StuckLine:
    """A line that waits for someone: undeliverable, or not competent with nowhere to go."""

    reference: str
    agency_id: str
    since: datetime


@dataclass(frozen=True)
class UnroutedCase:
    reference: str
    kind: str
    domain: str
    created_at: datetime


@dataclass(frozen=True)
class UnmatchedItem:
    id: int
    agency_id: str
    agency_reference: str | None
    case_reference: str | None
    agency_status: str | None
    message: str | None
    received_at: datetime


@dataclass(frozen=True)
class ProblemItem:
    id: int
    agency_id: str
    source: str
    reason: str
    excerpt: str | None
    received_at: datetime


@dataclass(frozen=True)
class StuckDelivery:
    """A delivery leased by a worker whose lease ran out (the worker died or hangs)."""

    delivery_id: int
    agency_id: str
    reference: str
    leased_by: str | None
    lease_expired_at: datetime
    attempts: int


@dataclass(frozen=True)
class UndoneDelivery:
    """A delivery still not done a while after it was queued: what it last met, when it is tried
    again, and whether "Retry now" applies (only to one waiting for its next retry; a dead one
    is resent from the dead letters, a leased one is in a worker's hands)."""

    delivery_id: int
    agency_id: str
    reference: str
    kind: str  # case | message
    state: str
    attempts: int
    queued_at: datetime
    last_error: str | None
    last_error_kind: str | None
    next_attempt_at: datetime | None

    @property
    def can_retry_now(self) -> bool:
        return self.state == DeliveryState.RETRY


@dataclass(frozen=True)
class DeadMail:
    reference: str
    kind: str
    to_address: str
    last_error: str | None


@dataclass(frozen=True)
class Attention:
    late: tuple[LateLine, ...]
    undeliverable: tuple[StuckLine, ...]
    not_competent: tuple[StuckLine, ...]
    unrouted: tuple[UnroutedCase, ...]
    unmatched: tuple[UnmatchedItem, ...]
    problems: tuple[ProblemItem, ...]
    stuck: tuple[StuckDelivery, ...]
    mail: tuple[DeadMail, ...]
    # Not done `stuck_after_minutes` after they were queued (settings), oldest first.
    undone: tuple[UndoneDelivery, ...] = ()
    undone_after_minutes: float = 0.0


def attention(hub: Hub, limit: int = LIST_LIMIT) -> Attention:
    """What is stuck or late, each list oldest first."""
    now = hub.clock.now()
    terminal = [st for st in lifecycle.statuses() if lifecycle.is_terminal(st)]
    with hub.db.session(read_only=True) as s:
        late = s.execute(
            select(
                Case.reference,
                Assignment.agency_id,
                Assignment.status,
                Assignment.answer_due_at,
                Assignment.past_due_at,
            )
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.past_due_at.is_not(None), Assignment.status.not_in(terminal))
            .order_by(Assignment.past_due_at)
            .limit(limit)
        ).all()
        undeliverable = s.execute(
            select(Case.reference, Assignment.agency_id, Assignment.updated_at)
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.status == lifecycle.UNDELIVERABLE)
            .order_by(Assignment.updated_at)
            .limit(limit)
        ).all()
        children = select(Assignment.referred_from_id).where(
            Assignment.referred_from_id.is_not(None)
        )
        not_competent = s.execute(
            select(Case.reference, Assignment.agency_id, Assignment.updated_at)
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.status == "not_competent", Assignment.id.not_in(children))
            .order_by(Assignment.updated_at)
            .limit(limit)
        ).all()
        unrouted = s.execute(
            select(Case.reference, Case.kind, Case.domain, Case.created_at)
            .where(~Case.id.in_(select(Assignment.case_id)))
            .order_by(Case.created_at)
            .limit(limit)
        ).all()
        unmatched = s.scalars(
            select(UnmatchedUpdate)
            .where(UnmatchedUpdate.resolved_at.is_(None))
            .order_by(UnmatchedUpdate.received_at)
            .limit(limit)
        ).all()
        problems = s.scalars(
            select(InboundProblem)
            .where(InboundProblem.resolved_at.is_(None))
            .order_by(InboundProblem.received_at)
            .limit(limit)
        ).all()
        stuck = s.execute(
            select(Delivery, Case.reference)
            .join(Assignment, Assignment.id == Delivery.assignment_id)
            .join(Case, Case.id == Assignment.case_id)
            .where(Delivery.state == DeliveryState.LEASED, Delivery.lease_expires_at <= now)
            .order_by(Delivery.lease_expires_at)
            .limit(limit)
        ).all()
        mail = s.execute(
            select(
                Case.reference, Notification.kind, Notification.to_address, Notification.last_error
            )
            .join(Case, Case.id == Notification.case_id)
            .where(Notification.state == "dead")
            .order_by(Notification.id)
            .limit(limit)
        ).all()
        return Attention(
            late=tuple(LateLine(*row) for row in late),
            undeliverable=tuple(StuckLine(*row) for row in undeliverable),
            not_competent=tuple(StuckLine(*row) for row in not_competent),
            unrouted=tuple(UnroutedCase(*row) for row in unrouted),
            unmatched=tuple(
                UnmatchedItem(
                    u.id,
                    u.agency_id,
                    u.agency_reference,
                    u.case_reference,
                    u.agency_status,
                    u.message,
                    u.received_at,
                )
                for u in unmatched
            ),
            problems=tuple(
                ProblemItem(p.id, p.agency_id, p.source, p.reason, p.excerpt, p.received_at)
                for p in problems
            ),
            stuck=tuple(
                StuckDelivery(d.id, d.agency_id, ref, d.leased_by, d.lease_expires_at, d.attempts)
                for d, ref in stuck
            ),
            mail=tuple(DeadMail(*row) for row in mail),
            undone=_undone(
                s,
                Delivery.created_at <= now - timedelta(minutes=hub.settings.stuck_after_minutes),
                limit,
            ),
            undone_after_minutes=hub.settings.stuck_after_minutes,
        )


def _undone(s: Session, condition, limit: int = LIST_LIMIT) -> tuple[UndoneDelivery, ...]:
    """Deliveries not done (pending, waiting for a retry, leased) that meet `condition`."""
    rows = s.execute(
        select(Delivery, Case.reference)
        .join(Assignment, Assignment.id == Delivery.assignment_id)
        .join(Case, Case.id == Assignment.case_id)
        .where(Delivery.state.in_(WAITING), condition)
        .order_by(Delivery.created_at, Delivery.id)
        .limit(limit)
    ).all()
    return tuple(
        UndoneDelivery(
            d.id,
            d.agency_id,
            reference,
            d.kind,
            d.state,
            d.attempts,
            d.created_at,
            d.last_error,
            d.last_error_kind,
            d.lease_expires_at if d.state == DeliveryState.LEASED else d.next_attempt_at,
        )
        for d, reference in rows
    )


# -------------------------------------------------------------------------------- dead letters


def dead_letters(
    hub: Hub, agency_id: str | None = None, delivery_ids: list[int] | None = None
) -> list[DeadLetter]:
    """Dead letters, oldest first, with their payload and every attempt."""
    return outbox.dead_letters(hub.db, agency_id, delivery_ids)


# ----------------------------------------------------------------------------------------- cases


def search_cases(
    hub: Hub, q: str, *, agency: str | None = None, status: str | None = None, limit: int = 50
) -> list[Hit]:
    """The operator's one search box: reference, email, enterprise number or a name's start."""
    return search.search(hub.db, q, agency=agency, status=status, limit=limit)


def case_reference(text: str) -> str | None:
    """The case reference in its canonical form (`LK-XXXX-XXXX`), however it was typed; None
    when the text is not a valid reference (its check character included)."""
    return references.normalise(text)


def load_case(s: Session, reference: str) -> Case | None:
    """The case a reference names (typed any way people type them), with its lines, timeline
    and parties loaded; None when it names none. The service layer's one case lookup: for
    hub's own modules (it returns the ORM row, which must not leave hub/)."""
    normalised = references.normalise(reference)
    if normalised is None:
        return None
    return s.scalars(
        select(Case)
        .where(Case.reference == normalised)
        .options(
            selectinload(Case.assignments),
            selectinload(Case.events),
            selectinload(Case.parties),
        )
    ).first()


def load_agency_case(s: Session, reference: str, agency_id: str) -> Case | None:
    """The case a reference names, only if it has a line at `agency_id`, with what `load_case`
    loads; None otherwise. One statement decides both "no such case" and "not this agency's":
    an unknown reference and another agency's case cost the same work (no timing oracle, no
    loading of the other agency's rows just to refuse them)."""
    normalised = references.normalise(reference)
    if normalised is None:
        return None
    return s.scalars(
        select(Case)
        .where(
            Case.reference == normalised,
            Case.assignments.any(Assignment.agency_id == agency_id),
        )
        .options(
            selectinload(Case.assignments),
            selectinload(Case.events),
            selectinload(Case.parties),
        )
    ).first()


@dataclass(frozen=True)
class PartyView:
    role: str
    name: str
    email: str | None
    enterprise_number: str | None
    website: str | None


@dataclass(frozen=True)
class LineView:
    """One case at one agency, as operators and that agency's staff see it."""

    id: int
    agency_id: str
    stage: str
    reason: str | None
    status: str
    agency_status: str | None
    agency_reference: str | None
    outcome: str | None
    answer_due_at: datetime | None
    past_due: bool
    clock_paused: bool
    referable: bool  # open, or answered "not competent": an operator may refer it
    payload: str  # what the agency receives (or why it cannot be rendered)


@dataclass(frozen=True)
class EventView:
    occurred_at: datetime
    actor: str
    assignment_id: int | None
    from_status: str | None
    to_status: str | None
    agency_status: str | None
    message: str | None


@dataclass(frozen=True)
class MessageView:
    created_at: datetime
    direction: str
    author: str
    text: str
    attachments: tuple[str, ...]  # file names
    delivered_at: datetime | None


@dataclass(frozen=True)
class EvidenceView:
    at: datetime
    actor: str
    action: str
    agency_id: str | None
    hash: str


@dataclass(frozen=True)
class CaseDetail:
    """A case as the operator console shows it: lines with their payloads, the timeline, the
    messages and the evidence chain (verified at read time)."""

    reference: str
    kind: str
    domain: str
    status: str
    language: str
    description: str
    created_at: datetime
    parties: tuple[PartyView, ...]
    lines: tuple[LineView, ...]
    events: tuple[EventView, ...]
    messages: tuple[MessageView, ...]
    evidence: tuple[EvidenceView, ...]
    evidence_intact: bool
    evidence_problem: str | None = None  # the first thing wrong with the case's evidence
    evidence_checkpointed: int = 0  # how many of its entries a signed checkpoint covers
    undone: tuple[UndoneDelivery, ...] = ()  # its deliveries not done yet, however recent


def _keyring(hub: Hub) -> evidence.Keyring | None:
    """The public keyring the checkpoints are checked with; None before the first checkpoint."""
    store = evidence.KeyStore.from_settings(hub.settings)
    return store.keyring() if store.keyring_path.exists() else None


def case_detail(hub: Hub, reference: str) -> CaseDetail | None:
    """The operator's view of a case, or None when the reference names no case."""
    now = hub.clock.now()
    with hub.db.session(read_only=True) as s:
        c = load_case(s, reference)
        if c is None:
            return None
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.case_id == c.id).order_by(AuditEntry.id)
        ).all()
        try:
            check = evidence.verify_case(s, c.id, _keyring(hub))
        except evidence.EvidenceError as exc:  # an unreadable keyring
            check = evidence.CaseCheck(False, str(exc), 0)
        messages = s.scalars(
            select(Message)
            .where(Message.case_id == c.id)
            .options(selectinload(Message.attachments))
            .order_by(Message.id)
        ).all()
        return CaseDetail(
            reference=c.reference,
            kind=c.kind,
            domain=c.domain,
            status=c.status,
            language=c.language,
            description=c.description,
            created_at=c.created_at,
            parties=tuple(
                PartyView(p.role, p.name, p.email, p.enterprise_number, p.website)
                for p in c.parties
            ),
            lines=tuple(_line(hub, c, a, now) for a in c.assignments),
            events=tuple(_event(e) for e in c.events),
            messages=tuple(
                MessageView(
                    m.created_at,
                    m.direction,
                    m.author,
                    m.text,
                    tuple(f.filename for f in m.attachments),
                    m.delivered_at,
                )
                for m in messages
            ),
            evidence=tuple(
                EvidenceView(x.at, x.actor, x.action, x.agency_id, x.hash) for x in entries
            ),
            evidence_intact=check.ok,
            evidence_problem=check.problem,
            evidence_checkpointed=check.checkpointed,
            undone=_undone(s, Assignment.case_id == c.id),
        )


def _line(hub: Hub, c: Case, a: Assignment, now: datetime) -> LineView:
    return LineView(
        id=a.id,
        agency_id=a.agency_id,
        stage=a.stage,
        reason=a.reason,
        status=a.status,
        agency_status=a.agency_status,
        agency_reference=a.agency_reference,
        outcome=a.outcome,
        answer_due_at=a.answer_due_at,
        past_due=lifecycle.is_past_due(a, now),
        clock_paused=a.paused_at is not None,
        referable=referable(a.status),
        payload=_payload(hub, c, a),
    )


def referable(status: str) -> bool:
    return not lifecycle.is_terminal(status) or status == "not_competent"


def _payload(hub: Hub, c: Case, a: Assignment) -> str:
    try:
        rendered: Any = hub.directory[a.agency_id].render(case_document(c, a))
    except Exception as exc:  # a preview must not break the page
        return f"cannot render: {exc}"
    return json.dumps(rendered, indent=2, ensure_ascii=False, default=str)


def agency_payload(hub: Hub, agency_id: str, reference: str) -> dict[str, Any] | None:
    """The payload `agency_id` would receive for the case (nothing is sent), whether or not the
    case has a line there; None when the reference names no case. Raises the mapping's
    RenderError when the case cannot be rendered for that agency."""
    with hub.db.session(read_only=True) as s:
        c = load_case(s, reference)
        if c is None:
            return None
        line = next((a for a in c.assignments if a.agency_id == agency_id), None)
        return hub.directory[agency_id].render(case_document(c, line))


def _event(e) -> EventView:
    return EventView(
        e.occurred_at,
        e.actor,
        e.assignment_id,
        e.from_status,
        e.to_status,
        e.agency_status,
        e.message,
    )


# ---------------------------------------------------------------------------- agency workspace


@dataclass(frozen=True)
class WorkspaceLine:
    reference: str
    kind: str
    domain: str
    created_at: datetime
    status: str
    agency_status: str | None
    agency_reference: str | None
    answer_due_at: datetime | None
    past_due_at: datetime | None
    language: str = "en"
    acknowledge_due_at: datetime | None = None
    provisional: bool = False


@dataclass(frozen=True)
class Workspace:
    agency_id: str
    agency_name: str
    lines: tuple[WorkspaceLine, ...]
    names: Mapping[str, str] = field(default_factory=dict)  # the agency's name per language
    codes: tuple[StatusCode, ...] = ()


def workspace(
    hub: Hub,
    agency_id: str,
    *,
    include_closed: bool = False,
    status: str | None = None,
    kind: str | None = None,
    language: str | None = None,
    text: str | None = None,
) -> Workspace:
    """One agency's lines, the ones due first first; filtered by status, kind, the consumer's
    language or a reference typed in part."""
    terminal = [st for st in lifecycle.statuses() if lifecycle.is_terminal(st)]
    query = (
        select(
            Case.reference,
            Case.kind,
            Case.domain,
            Case.created_at,
            Assignment.status,
            Assignment.agency_status,
            Assignment.agency_reference,
            Assignment.answer_due_at,
            Assignment.past_due_at,
            Case.language,
            Assignment.acknowledge_due_at,
            Assignment.agency_reference_provisional,
        )
        .join(Case, Case.id == Assignment.case_id)
        .where(Assignment.agency_id == agency_id)
        .order_by(Assignment.answer_due_at.is_(None), Assignment.answer_due_at, Assignment.id)
        .limit(500)
    )
    if status:
        query = query.where(Assignment.status == status)
    elif not include_closed:
        query = query.where(Assignment.status.not_in(terminal))
    if kind:
        query = query.where(Case.kind == kind)
    if language:
        query = query.where(Case.language == language)
    if text and text.strip():
        needle = text.strip().upper()[:40]
        query = query.where(
            func.upper(Case.reference).contains(needle, autoescape=True)
            | func.upper(Assignment.agency_reference).contains(needle, autoescape=True)
        )
    mapping = hub.directory[agency_id]
    with hub.db.session(read_only=True) as s:
        lines = tuple(WorkspaceLine(*row) for row in s.execute(query))
    return Workspace(
        agency_id,
        mapping.name("en"),
        lines,
        dict(mapping.names),
        _codes(mapping),
    )


@dataclass(frozen=True)
class StatusCode:
    """One of an agency's own status codes and what it means canonically."""

    code: str
    status: str
    outcome: str | None
    label: Mapping[str, str] = field(default_factory=dict)  # the agency's name, per language

    def name(self, language: str) -> str:
        return self.label.get(language) or self.label.get("en") or self.code


def _codes(mapping) -> tuple[StatusCode, ...]:
    return tuple(
        StatusCode(code, rule.status, rule.outcome, dict(rule.label))
        for code, rule in mapping.statuses.items()
    )


@dataclass(frozen=True)
class StaffCase:
    """A case as one agency's staff see it: their line only, what their system received, and
    the codes they may record."""

    reference: str
    agency_id: str
    line: LineView
    events: tuple[EventView, ...]
    codes: tuple[StatusCode, ...]


def staff_case(hub: Hub, agency_id: str, reference: str) -> StaffCase | None:
    """None when the case does not exist or has no line at this agency: to another agency's
    staff a case they do not handle does not exist."""
    now = hub.clock.now()
    mapping = hub.directory[agency_id]
    with hub.db.session(read_only=True) as s:
        c = load_agency_case(s, reference, agency_id)
        line = (
            next((a for a in reversed(c.assignments) if a.agency_id == agency_id), None)
            if c is not None
            else None
        )
        if c is None or line is None:
            return None
        return StaffCase(
            reference=c.reference,
            agency_id=agency_id,
            line=_line(hub, c, line, now),
            events=tuple(_event(e) for e in c.events if e.assignment_id == line.id),
            codes=_codes(mapping),
        )


def privacy_requests(hub: Hub, *, pending_only: bool = True) -> list[Any]:
    """Consumers' erasure requests (hub.gdpr.Request), the most urgent first, each with its
    due date."""
    from hub import gdpr

    return gdpr.requests(hub.db, pending_only=pending_only)


# ------------------------------------------------------------------------ the agency's own view


def agency_case(hub: Hub, agency_id: str, reference: str) -> agencyside.AgencyCase | None:
    """The case as the agency sees it (the agency API's and the workspace's one read model);
    None when the agency has no line on it, exactly as for an unknown reference."""
    try:
        return agencyside.read_case(hub, agency_id, reference)
    except agencyside.NotFound:
        return None


def agency_document(
    hub: Hub, agency_id: str, reference: str, document_id: int
) -> tuple[agencyside.Document, bytes] | None:
    try:
        return agencyside.document(hub, agency_id, reference, document_id)
    except agencyside.NotFound:
        return None


def status_codes(hub: Hub, agency_id: str) -> tuple[StatusCode, ...]:
    """The agency's own status codes, with their names per language."""
    return _codes(hub.directory[agency_id])


def information_reasons(hub: Hub, agency_id: str) -> tuple[str, ...]:
    """The reasons the agency may give when it asks the consumer for information."""
    return tuple(hub.directory[agency_id].information_requests)


def referral_targets(hub: Hub, agency_id: str, language: str = "en") -> list[tuple[str, str]]:
    """(id, name) of every other body a case can be referred to."""
    return sorted(
        ((i, hub.directory[i].name(language)) for i in hub.directory.ids() if i != agency_id),
        key=lambda pair: pair[1],
    )


# ------------------------------------------------------ ratings, statistics, market signals


@dataclass(frozen=True)
class RatingView:
    reference: str
    answer: str  # yes | partly | no
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class AgencyRatings:
    agency_name: str
    counts: dict[str, int]
    ratings: tuple[RatingView, ...]  # newest first


def agency_ratings(hub: Hub, agency_id: str, limit: int = LIST_LIMIT) -> AgencyRatings:
    """How consumers rated one agency's answers, with their comments (that agency only)."""
    from hub.models import Rating

    with hub.db.session(read_only=True) as s:
        counts = dict(
            s.execute(
                select(Rating.answer, func.count())
                .where(Rating.agency_id == agency_id)
                .group_by(Rating.answer)
            ).all()
        )
        rows = s.execute(
            select(Case.reference, Rating.answer, Rating.comment, Rating.created_at)
            .join(Case, Case.id == Rating.case_id)
            .where(Rating.agency_id == agency_id)
            .order_by(Rating.created_at.desc(), Rating.id.desc())
            .limit(limit)
        ).all()
    name = hub.directory[agency_id].name("en") if agency_id in hub.directory else agency_id
    return AgencyRatings(
        name,
        {a: int(counts.get(a, 0)) for a in ("yes", "partly", "no")},
        tuple(RatingView(*r) for r in rows),
    )


def market_signals(hub: Hub):
    """Every trader with cases in the last half year (hub/signals.py), and recent alerts."""
    from hub import signals

    now = hub.clock.now()
    return signals.traders(hub.db, now), signals.alerts(hub.db)


def trader(hub: Hub, key: str):
    from hub import signals

    return next((t for t in signals.traders(hub.db, hub.clock.now()) if t.key == key), None)


@dataclass(frozen=True)
class ReportView:
    reference: str
    kind: str
    domain: str
    filed_at: datetime
    trader_name: str
    enterprise_number: str | None
    website: str | None
    description: str
    agencies: tuple[str, ...]


def report(hub: Hub, reference: str):
    """One case as the inspection reads it, and the trader it belongs to (with its other cases)."""
    from hub import signals

    with hub.db.session(read_only=True) as s:
        c = load_case(s, reference)
        if c is None:
            return None, None
        t = c.party("trader")
        view = ReportView(
            c.reference,
            c.kind,
            c.domain,
            c.created_at,
            t.name if t else "",
            t.enterprise_number if t else None,
            t.website if t else None,
            c.description,
            tuple(a.agency_id for a in c.assignments),
        )
    return view, signals.trader_of(hub.db, hub.clock.now(), reference)
