"""Intake: a validated case becomes Case + Parties + one Assignment and one Delivery per agency.

All of it in one transaction (the transactional outbox): either the case exists together with
every delivery it needs, or nothing was stored.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import audit, lifecycle, notify
from hub.agencies import Directory
from hub.attachments import Upload
from hub.clock import Clock, RandomSource
from hub.db import Database, driver_errors
from hub.duedates import due_at
from hub.models import (
    Assignment,
    Attachment,
    AuditEntry,
    Case,
    Delivery,
    Notification,
    Party,
    StatusEvent,
)
from hub.outbox.rows import delivery_row
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


def idempotency_key(reference: str, agency_id: str, n: int = 1) -> str:
    """Stable per case x agency (and per n-th assignment of that pair, after a referral back)."""
    return f"{reference}.{agency_id}.{n}"


def attachment_row(
    case_id: int, upload: Upload, now: datetime, message_id: int | None = None
) -> dict[str, Any]:
    """The attachments row of an upload (of the case itself, or of one of its messages)."""
    return {
        "case_id": case_id,
        "message_id": message_id,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": len(upload.data),
        "sha256": upload.sha256,
        "data": upload.data,
        "created_at": now,
    }


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


# A line at a referral body (a mapping without adapter): the consumer was sent there; nothing
# is delivered, so the line starts and stays at this terminal status and has no outbox row.
REFERRED_OUTSIDE = "referred"


def _latest_day(data: dict[str, Any]):
    """The incident date a time limit is judged by: for a month-only date the month's last
    day, so the consumer who remembers only "October" gets the benefit of the doubt."""
    when = data.get("incident_date")
    if when is None or data.get("incident_date_precision") != "month":
        return when
    return when.replace(day=calendar.monthrange(when.year, when.month)[1])


def situation_of(data: dict[str, Any], today) -> Situation:
    trader = data.get("trader") or {}
    consumer = data.get("consumer") or {}
    return Situation(
        kind=data["kind"],
        domain=data["domain"],
        language=data["language"],
        trader_country=(trader.get("address") or {}).get("country"),
        answers=data.get("answers") or {},
        incident_date=_latest_day(data),
        today=today,
        postcode=(consumer.get("address") or {}).get("postcode"),
        complaint_date=data.get("complaint_date"),
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
    confirm: Callable[[str], bool] | None = None,
) -> Filed:
    """Store a validated case with one assignment and delivery per admitted agency.

    Raises NeedsAnswers when a pre-check is unanswered and NotAdmissible when every agency
    refuses; in both cases nothing is stored. Agencies refused while others accept are reported
    in `Filed.not_sent`. A case no rule matches is stored for operators to route.

    `confirm(email)`, asked once the case will be stored, says whether the confirmation mail may
    go to that address (a per-recipient limit); when not, the case is filed without it.
    """
    now = clock.now()
    decision = router.route(situation_of(data, now.date()))
    if decision.missing:
        raise NeedsAnswers(decision.missing)
    if not decision.recipients and decision.refusals:
        raise NotAdmissible(decision.refusals)
    email = (data.get("consumer") or {}).get("email")
    confirmation = bool(email) and (confirm is None or confirm(email))
    # PostgreSQL files a case without attachments in one statement, atomic by itself: it needs
    # no BEGIN and COMMIT around it (_store_in_one_statement).
    engine = db.one_statement if db.one_statement is not None and not uploads else db.engine
    for attempt in range(5):
        reference, token = new_reference(random), random.token()
        try:
            with engine.begin() as conn:  # Core, not an ORM session: this is the hot path
                case_id = _store(
                    conn,
                    data,
                    reference,
                    token,
                    decision.recipients,
                    directory,
                    now,
                    confirmation=confirmation,
                )
                if uploads:
                    conn.execute(
                        insert(Attachment.__table__),
                        [attachment_row(case_id, u, now) for u in uploads],
                    )
        except IntegrityError:
            if attempt == 4:
                raise
            continue  # a reference collision between two concurrent filings; draw again
        status = _case_status(decision.recipients, directory)
        return Filed(reference, token, status, decision.recipients, decision.refusals)
    raise RuntimeError("could not draw a free case reference")


def _case_status(recipients: tuple[Recipient, ...], directory: Directory) -> str:
    """The new case's status by the rule every later change uses (`lifecycle.case_status`: the
    lines that answer the consumer decide): `referred` when those are all referral bodies."""
    if not recipients:
        return lifecycle.QUEUED
    return lifecycle.case_status(
        (lifecycle.QUEUED if directory[r.agency_id].connected else REFERRED_OUTSIDE, r.stage, False)
        for r in recipients
    )


def assignment_row(
    mapping: AgencyMapping,
    *,
    reason: str,
    stage: str,
    now: datetime,
    referred_from_id: int | None = None,
    basis: str | None = None,
) -> dict[str, Any]:
    """The column values of a new line at `mapping`'s agency, queued, with its due dates, but
    its case_id, which the caller attaches. Intake's bulk insert and `add_assignment` both
    build their lines here, so the two cannot drift. A referral body's line is `referred` at
    once and has no due dates: the hub delivers nothing to it and waits for no answer."""
    connected = mapping.connected
    return {
        "agency_id": mapping.id,
        "reason": reason,
        "basis": basis or None,
        "stage": stage,
        "referred_from_id": referred_from_id,
        "status": lifecycle.QUEUED if connected else REFERRED_OUTSIDE,
        "acknowledge_due_at": due_at(now, mapping.acknowledge_within)
        if connected and mapping.acknowledge_within
        else None,
        "answer_due_at": due_at(now, mapping.answer_within)
        if connected and mapping.answer_within
        else None,
        "paused_seconds": 0,
        "agency_reference_provisional": False,
        "created_at": now,
        "updated_at": now,
    }


def routed_event(
    mapping: AgencyMapping, *, language: str, reason: str, now: datetime, actor: str = "hub"
) -> dict[str, Any]:
    """The timeline entry of a new line (`lifecycle.event_row` values); for a referral body,
    the line that keeps the timeline whole: referred to it, outside Loket."""
    if not mapping.connected:
        return lifecycle.event_row(
            actor=actor,
            at=now,
            now=now,
            to_status=REFERRED_OUTSIDE,
            message=f"{REFERRED_LINE.get(language, REFERRED_LINE['en'])} {mapping.name(language)}"
            f" ({mapping.referral.get('url', '')}): {reason}",
            kind="referred_outside",
        )
    return lifecycle.event_row(
        actor=actor,
        at=now,
        now=now,
        to_status=lifecycle.QUEUED,
        message=f"{mapping.name(language)}: {reason}".strip(),
        kind="routed",
    )


REFERRED_LINE = {
    "nl": "Doorverwezen, buiten Loket, naar",
    "fr": "Réorienté, en dehors de Loket, vers",
    "de": "Weiterverwiesen, außerhalb von Loket, an",
    "en": "Referred, outside Loket, to",
}


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
    basis: str | None = None,
) -> Assignment:
    """One agency's line on a case, and its outbox row (none for a referral body), in the
    caller's transaction. `basis`: the routing rule's legal basis, when a rule chose it."""
    assignment = Assignment(
        **assignment_row(
            mapping,
            reason=reason,
            stage=stage,
            now=now,
            referred_from_id=referred_from.id if referred_from else None,
            basis=basis,
        )
    )
    n = 1 + sum(1 for a in case.assignments if a.agency_id == mapping.id)
    case.assignments.append(assignment)
    session.flush()
    if mapping.connected:  # a referral body gets no outbox row: the worker has nothing to send
        session.add(
            Delivery(
                assignment_id=assignment.id,
                **delivery_row(
                    agency_id=mapping.id,
                    idempotency_key=idempotency_key(case.reference, mapping.id, n),
                    now=now,
                ),
            )
        )
    session.add(
        StatusEvent(
            case_id=case.id,
            assignment_id=assignment.id,
            **routed_event(mapping, language=case.language, reason=reason, now=now, actor=actor),
        )
    )
    return assignment


def _store(
    conn: Connection,
    data: dict[str, Any],
    reference: str,
    token: str,
    recipients: tuple[Recipient, ...],
    directory: Directory,
    now: datetime,
    one_statement: bool | None = None,
    *,
    confirmation: bool = True,
    driver: bool | None = None,
) -> int:
    """Insert the case and everything that goes with it; returns the case id.

    This is the hot path of the front desk, so it writes rows with SQLAlchemy Core rather than
    through the ORM's unit of work: on PostgreSQL all of it is ONE statement (data-modifying
    CTEs), on SQLite one statement per table, handed straight to the driver (`one_statement`
    forces either, `driver=False` sends the per-table statements through Core: the tests hold
    every path equal). The rows come from the builders the ORM writers use
    (`assignment_row`, `delivery_row`, `lifecycle.event_row`, `notify.notification_row`,
    `audit.entry_row`); later changes go through the ORM as usual.
    """
    amount = data.get("amount")
    consent = data["consent"]
    case_row = {
        "reference": reference,
        "kind": data["kind"],
        "domain": data["domain"],
        "language": data["language"],
        "description": data["description"],
        "incident_date": data.get("incident_date"),
        "incident_date_precision": data.get("incident_date_precision")
        if data.get("incident_date") and data.get("incident_date_precision") != "day"
        else None,
        "amount_cents": int(Decimal(amount) * 100) if amount is not None else None,
        "currency": data.get("currency") or ("EUR" if amount is not None else None),
        "consent_share": bool(consent["share_with_agencies"]),
        "anonymous_to_trader": bool(consent.get("anonymous_to_trader", False)),
        "answers": data.get("answers") or None,
        "status": _case_status(recipients, directory),
        "token_hash": token_hash(token),
        "created_at": now,
        "updated_at": now,
    }
    parties = [_party_row("consumer", data["consumer"])]
    if data.get("trader"):
        parties.append(_party_row("trader", data["trader"]))
    audit_data = {
        "reference": reference,  # binds the case's chain to its reference (an exported bundle)
        "kind": data["kind"],
        "domain": data["domain"],
        "recipients": [r.agency_id for r in recipients],
    }
    filed = audit.entry_row(
        None, at=now, actor="consumer", action="case.filed", agency_id=None, data=audit_data
    )
    children: dict[Any, list[dict[str, Any]]] = {
        Party.__table__: parties,
        AuditEntry.__table__: [filed],
        # the confirmation mail, with the link's token until sent
        Notification.__table__: [
            notify.notification_row(
                "filed",
                language=data["language"],
                to_address=parties[0]["email"],
                now=now,
                dedupe="filed",
                data={
                    "agencies": [{"agency_id": r.agency_id, "why": r.reason} for r in recipients]
                },
                secret=token,
            )
        ]
        if parties[0]["email"] and confirmation
        else [],
    }
    lines: list[dict[str, Any]] = []
    outbox: list[dict[str, Any] | None] = []  # None: a referral body's line, nothing to send
    routed: list[dict[str, Any]] = []
    for r in recipients:
        mapping = directory[r.agency_id]
        lines.append(
            assignment_row(mapping, reason=r.reason, stage=r.stage, now=now, basis=r.basis)
        )
        outbox.append(
            delivery_row(
                agency_id=r.agency_id,
                idempotency_key=idempotency_key(reference, r.agency_id),
                now=now,
            )
            if mapping.connected
            else None
        )
        routed.append(routed_event(mapping, language=data["language"], reason=r.reason, now=now))
    if not recipients:
        children[StatusEvent.__table__] = [
            {
                "assignment_id": None,
                **lifecycle.event_row(
                    actor="hub",
                    at=now,
                    now=now,
                    to_status=lifecycle.QUEUED,
                    message="No routing rule matched; an operator will route this case.",
                    kind="needs_routing",
                ),
            }
        ]
    if one_statement is None:
        one_statement = conn.dialect.name == "postgresql"
    if one_statement:
        return _store_in_one_statement(conn, case_row, children, lines, outbox, routed)
    return _store_per_table(conn, case_row, children, lines, outbox, routed, driver)


# The tables whose new ids the per-table writers hand back: the case's (for its children) and
# the lines' (for their outbox rows and timeline entries).
_IDS_USED = (Case.__table__, Assignment.__table__)


@functools.cache
def _insert(table) -> Any:
    """`INSERT INTO table`, built once: SQLAlchemy then finds its compiled form by a cache key
    it computed once, instead of building and keying a new statement on every filing."""
    if table is Case.__table__:
        return insert(table).returning(table.c.id)
    if table is Assignment.__table__:
        return insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return insert(table)


def _store_per_table(conn, case_row, children, lines, outbox, routed, driver=None) -> int:
    """Any database: one INSERT per table (the rows of a table in one statement). On SQLite the
    INSERTs go straight to the driver (`_SqliteInserts`, unless `driver=False`): SQLAlchemy's
    execution costs more per statement than SQLite's own work for these few rows."""
    if driver is None:
        driver = conn.dialect.name == "sqlite"
    add = _SqliteInserts(conn) if driver else functools.partial(_core_insert, conn)
    case_id = add(Case.__table__, [case_row])[0]
    for table, rows in children.items():
        if rows:
            add(table, [{**row, "case_id": case_id} for row in rows])
    if lines:
        ids = add(Assignment.__table__, [{**line, "case_id": case_id} for line in lines])
        deliveries = [{**d, "assignment_id": aid} for aid, d in zip(ids, outbox, strict=True) if d]
        if deliveries:
            add(Delivery.__table__, deliveries)
        add(
            StatusEvent.__table__,
            [
                {**e, "case_id": case_id, "assignment_id": aid}
                for aid, e in zip(ids, routed, strict=True)
            ],
        )
    return case_id


def _core_insert(conn: Connection, table, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT the rows with SQLAlchemy Core; the new ids of the tables whose ids are used."""
    result = conn.execute(_insert(table), rows)
    return list(result.scalars()) if table in _IDS_USED else []


class _SqliteInserts:
    """SQLite's per-table INSERTs on the driver's cursor, inside the connection's transaction.
    Each (table, columns) statement is built once, with its columns' bind processors (the same
    conversions Core applies: datetimes, JSON, booleans) and the columns' scalar Python defaults
    (Core's `default=`) for columns a row leaves out. Driver errors are raised as SQLAlchemy's
    (an IntegrityError is a reference collision, which `file_case` retries)."""

    def __init__(self, conn: Connection) -> None:
        self.dialect = conn.dialect
        self.dbapi = conn.dialect.dbapi
        self.cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def __call__(self, table, rows: list[dict[str, Any]]) -> list[int]:
        sql, names, processors, defaults = _sqlite_insert(self.dialect, table, tuple(rows[0]))
        values = [
            tuple(
                p(row[name]) if p else row[name] for name, p in zip(names, processors, strict=True)
            )
            + defaults
            for row in rows
        ]
        with driver_errors(sql, values, self.dbapi.Error):
            if table not in _IDS_USED:
                self.cursor.executemany(sql, values)
                return []
            ids = []
            for v in values:  # the ids are used: one execute per row (a case has few lines)
                self.cursor.execute(sql, v)
                ids.append(self.cursor.lastrowid)
            return ids


@functools.cache
def _sqlite_insert(dialect, table, columns: tuple[str, ...]) -> tuple[str, tuple, tuple, tuple]:
    """`INSERT INTO table (columns..., defaulted...) VALUES (?, ...)`, the columns' bind
    processors, and the values of the columns left out that have a scalar Python default."""
    defaulted = [
        c for c in table.c if c.name not in columns and c.default is not None and not c.primary_key
    ]
    for c in defaulted:
        if not c.default.is_scalar:
            raise ValueError(f"{table.name}.{c.name}: only scalar defaults are filled here")
    quote = dialect.identifier_preparer.quote
    names = [*columns, *(c.name for c in defaulted)]
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )
    processors = tuple(table.c[name].type.bind_processor(dialect) for name in columns)
    defaults = tuple(
        (p(c.default.arg) if (p := c.type.bind_processor(dialect)) else c.default.arg)
        for c in defaulted
    )
    return sql, columns, processors, defaults


_STATEMENTS: dict[tuple, Any] = {}


def _values(table, prefix: str, row: dict[str, Any], params: dict[str, Any]) -> list[Any]:
    """Bound parameters for one row (typed by its columns), filling `params` with the values."""
    out = []
    for column, value in row.items():
        name = f"{prefix}_{column}"
        params[name] = value
        out.append(bindparam(name, type_=table.c[column].type))
    return out


def _params(prefix: str, row: dict[str, Any], params: dict[str, Any]) -> None:
    """`_values` for a statement already built: the values only, under the same names."""
    for column, value in row.items():
        params[f"{prefix}_{column}"] = value


def _store_in_one_statement(conn, case_row, children, lines, outbox, routed) -> int:
    """PostgreSQL: the case, its parties, evidence, mail, lines, outbox rows and timeline in one
    `WITH ... INSERT` statement, so filing costs a single round trip before the commit. The
    statement is built once per shape (how many parties and lines) and reused, so PostgreSQL
    keeps its plan and Python does not rebuild it."""
    shape = (
        tuple((t.name, len(rows), tuple(rows[0]) if rows else ()) for t, rows in children.items()),
        len(lines),
        tuple(d is not None for d in outbox),
    )
    params: dict[str, Any] = {}
    cached = _STATEMENTS.get(shape)
    if cached is None:
        case_values = _values(Case.__table__, "c", case_row, params)
        cached = _STATEMENTS[shape] = _build(case_row, children, lines, outbox, routed, case_values)
    _params("c", case_row, params)
    for i, rows in enumerate(children.values()):
        for j, row in enumerate(rows):
            _params(f"t{i}_{j}", row, params)
    for j, (line, d, e) in enumerate(zip(lines, outbox, routed, strict=True)):
        _params(f"a{j}", line, params)
        if d is not None:
            _params(f"d{j}", d, params)
        _params(f"e{j}", e, params)
    return conn.execute(cached, params).scalar_one()


def _build(case_row, children, lines, outbox, routed, case_values):
    cases = Case.__table__
    c = (
        insert(cases)
        .values(dict(zip(case_row, case_values, strict=True)))
        .returning(cases.c.id)
        .cte("c")
    )
    statement = select(c.c.id)
    scratch: dict[str, Any] = {}

    def union(table, prefix: str, rows, refs, where=None):
        """`rows` may hold None (no row for that line); the others keep their line's index."""
        selects = []
        for j, row in enumerate(rows):
            if row is None:
                continue
            query = select(
                *refs.values(),
                *_values(table, f"{prefix}_{j}" if where is None else f"{prefix}{j}", row, scratch),
            )
            if where is not None:
                query = query.where(where(j))
            selects.append(query)
        first = next(row for row in rows if row is not None)
        return [*refs, *first], (selects[0] if len(selects) == 1 else union_all(*selects))

    for i, (table, rows) in enumerate(children.items()):
        if rows:
            cols, source = union(table, f"t{i}", rows, {"case_id": c.c.id})
            statement = statement.add_cte(insert(table).from_select(cols, source).cte(f"t{i}"))
    if lines:
        assignments = Assignment.__table__
        selects = [
            select(c.c.id, *_values(assignments, f"a{j}", line, scratch))
            for j, line in enumerate(lines)
        ]
        a = (
            insert(assignments)
            .from_select(
                ["case_id", *lines[0]], selects[0] if len(selects) == 1 else union_all(*selects)
            )
            .returning(assignments.c.id, assignments.c.agency_id)
            .cte("a")
        )
        statement = statement.add_cte(a)
        case_id = select(c.c.id).scalar_subquery()
        for name, table, rows, refs in (
            ("d", Delivery.__table__, outbox, {"assignment_id": a.c.id}),
            ("e", StatusEvent.__table__, routed, {"case_id": case_id, "assignment_id": a.c.id}),
        ):
            if all(row is None for row in rows):
                continue
            cols, source = union(
                table,
                name,
                rows,
                refs,
                where=lambda j: a.c.agency_id == bindparam(f"a{j}_agency_id"),
            )
            statement = statement.add_cte(insert(table).from_select(cols, source).cte(name))
    return statement


def _party_row(role: str, data: dict[str, Any]) -> dict[str, Any]:
    address = data.get("address") or {}
    number = data.get("enterprise_number")
    return {
        "role": role,
        "name": data["name"],
        "email": data["email"].lower() if data.get("email") else None,
        "phone": data.get("phone"),
        "enterprise_number": enterprise_digits(number) if number else None,
        "website": data.get("website"),
        "street": address.get("street"),
        "postcode": address.get("postcode"),
        "city": address.get("city"),
        "country": address.get("country"),
    }
