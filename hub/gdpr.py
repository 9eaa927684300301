"""Personal data by construction: how long it is kept, what a consumer may take away, and erasure.

- `retention_periods()`: the periods of contracts/retention.yaml, validated on load (the privacy
  notice reads them; docs/privacy.md explains them).
- `housekeeping()`: erases the cases past their period (the worker runs it, and `loket gdpr
  housekeeping`).
- `export_case()`: everything held about a case, as one JSON document and its files (a zip).
- `erase_case()`: empties every place a case's personal data lives and keeps what statistics
  and the agencies' follow-up need. Every place is listed in `_erase` below; when a table or a
  column that can hold personal data is added, add it there (tests/test_gdpr.py scans every
  column of every table and fails otherwise).
- consumers' requests from the tracking page: `for_consumer`, `consumer_export` (served at
  once) and `consumer_requests_erasure` (done by an operator within `ERASURE_DEADLINE`);
  `requests()` lists them for the back office.

The evidence log keeps a digest of each entry's data beside it and chains the digest
(hub/audit.py): an erasure empties the data of the case's entries that may hold personal text
and records one `gdpr.erased` entry saying how much it erased, never what. `loket evidence
verify` still passes, and names an entry whose data was emptied with no erasure on record.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Text, cast, or_, select, update
from sqlalchemy.orm import Session, selectinload

from hub import audit, consumer, lifecycle
from hub import reference as references
from hub.config import CONTRACTS_DIR
from hub.db import Database
from hub.evidence import ERASED as ERASED_ACTION
from hub.models import (
    AgencyState,
    Attachment,
    AuditEntry,
    Case,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    InboundProblem,
    Message,
    Notification,
    PollCursor,
    PrivacyRequest,
    StatusEvent,
    UnmatchedUpdate,
)
from hub.schemas import KINDS

RETENTION_FILE = CONTRACTS_DIR / "retention.yaml"
ERASURE_DEADLINE = timedelta(days=30)  # GDPR art. 12(3): one month
EXPORT_FORMAT = "loket-personal-data/1"

# Evidence data made only of these fields holds no personal text (digests, references, codes,
# numbers, statuses); an entry with any other field has its data erased (its digest stays).
_STRUCTURAL_KEYS = frozenset(
    {
        "reference",
        "kind",
        "domain",
        "recipients",
        "message_id",
        "attachments",
        "payload_sha256",
        "idempotency_key",
        "attempt",
        "attempts",
        "agency_reference",
        "provisional",
        "duplicate",
        "delivery",
        "content_digest",
        "agency_status",
        "occurred_at",
        "update",
        "message_sha256",
        "agency_id",
        "from",
        "from_agency_id",
        "to",
        "due",
        "status",
        "case",
        "outcome",
        "erased",
        "why",
    }
)


class RetentionError(ValueError):
    """contracts/retention.yaml is not what it should be; the message names the key and the fix."""


class PrivacyError(Exception):
    """A privacy command cannot be done; the message says why."""


# ------------------------------------------------------------------------------------- retention

_DURATION = re.compile(r"^\s*(\d+)\s*(day|month|year)s?\s*$")


@dataclass(frozen=True)
class Period:
    """A calendar duration: `amount` days, months or years."""

    amount: int
    unit: str  # day | month | year

    @classmethod
    def parse(cls, text: Any, where: str) -> Period:
        m = _DURATION.match(str(text)) if isinstance(text, str | int) else None
        if m is None or int(m.group(1)) <= 0:
            raise RetentionError(
                f"{where}: {text!r} is not a duration; write e.g. '90 days', '6 months', '2 years'"
            )
        return cls(int(m.group(1)), m.group(2))

    @property
    def text(self) -> str:
        return f"{self.amount} {self.unit}{'s' if self.amount != 1 else ''}"

    @property
    def approx_days(self) -> int:
        return self.amount * {"day": 1, "month": 31, "year": 366}[self.unit]

    def after(self, at: datetime) -> datetime:
        if self.unit == "day":
            return at + timedelta(days=self.amount)
        months = self.amount * (12 if self.unit == "year" else 1)
        y, m = divmod(at.month - 1 + months, 12)
        year, month = at.year + y, m + 1
        last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
        return at.replace(year=year, month=month, day=min(at.day, last))


@dataclass(frozen=True)
class Retention:
    """How long a case's personal data is kept: per kind after closure, per closing status
    instead, and after the last activity for a case that never closes."""

    closed: dict[str, Period]
    by_status: dict[str, Period]
    inactive: Period

    def period(self, kind: str, status: str) -> Period:
        return self.by_status.get(status) or self.closed[kind]

    @property
    def shortest_days(self) -> int:
        periods = [*self.closed.values(), *self.by_status.values(), self.inactive]
        return min(p.approx_days for p in periods) - 31

    def to_json(self) -> dict[str, Any]:
        return {
            "closed": {k: p.text for k, p in self.closed.items()},
            "by_status": {k: p.text for k, p in self.by_status.items()},
            "inactive": self.inactive.text,
        }


def load_retention(path: Path = RETENTION_FILE) -> Retention:
    """Read and check a retention file; RetentionError names the file, the key and the fix."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RetentionError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(doc, dict):
        raise RetentionError(f"{path}: expected a mapping with closed, by_status and inactive")
    extra = set(doc) - {"closed", "by_status", "inactive"}
    if extra:
        raise RetentionError(
            f"{path}: unknown key(s) {sorted(extra)}; allowed: closed, by_status, inactive"
        )
    closed = doc.get("closed")
    if not isinstance(closed, dict) or set(closed) != set(KINDS):
        raise RetentionError(
            f"{path}: closed: give a period for each kind of case: {', '.join(KINDS)}"
        )
    terminal = [s for s in lifecycle.statuses() if lifecycle.is_terminal(s)]
    by_status = doc.get("by_status") or {}
    if not isinstance(by_status, dict) or set(by_status) - set(terminal):
        raise RetentionError(
            f"{path}: by_status: keys must be closing statuses of contracts/statuses.yaml: "
            f"{', '.join(terminal)}"
        )
    if "inactive" not in doc:
        raise RetentionError(f"{path}: inactive: give the period for cases that never close")
    return Retention(
        closed={k: Period.parse(v, f"{path}: closed.{k}") for k, v in closed.items()},
        by_status={k: Period.parse(v, f"{path}: by_status.{k}") for k, v in by_status.items()},
        inactive=Period.parse(doc["inactive"], f"{path}: inactive"),
    )


_RETENTION: Retention | None = None


def retention_periods() -> Retention:
    """The configured retention periods (contracts/retention.yaml, checked once)."""
    global _RETENTION
    if _RETENTION is None:
        _RETENTION = load_retention()
    return _RETENTION


def _closed_at(case: Case) -> datetime | None:
    """When the case closed: the last of its lines ended; None while a line is open."""
    lines = case.assignments
    if not lines or not all(lifecycle.is_terminal(a.status) for a in lines):
        return None
    return max((a.status_at or a.updated_at) for a in lines)


def erase_after(case: Case, retention: Retention) -> datetime:
    """When the case's personal data is due for erasure."""
    closed = _closed_at(case)
    if closed is None:
        return retention.inactive.after(case.updated_at)
    return retention.period(case.kind, case.status).after(closed)


# --------------------------------------------------------------------------------------- erasure


@dataclass(frozen=True)
class Erased:
    reference: str
    rows: int  # rows changed or deleted
    attachments: int
    evidence_entries: int
    legacy_entries: int  # entries older than data digests whose data had to stay


def _needles(case: Case) -> list[str]:
    """The consumer's identifying strings, to find them where a row names no case."""
    out = []
    for p in case.parties:
        if p.role != "consumer":
            continue
        out += [v for v in (p.email, p.phone, p.name) if v and len(v) >= 5]
    return out


def _erase(s: Session, case: Case, now: datetime, reason: str, actor: str) -> Erased:
    rows = 0
    needles = _needles(case)
    case.description = ""
    case.answers = None
    case.incident_date = None
    case.amount_cents = None
    case.currency = None
    case.erased_at = now
    for p in case.parties:
        p.name = ""
        p.email = p.phone = p.website = p.street = p.postcode = p.city = None
        if p.role == "consumer":
            p.enterprise_number = p.country = None
        rows += 1
    line_ids = [a.id for a in case.assignments]
    agency_refs = [a.agency_reference for a in case.assignments if a.agency_reference]
    if line_ids:
        rows += s.execute(
            update(Delivery)
            .where(Delivery.assignment_id.in_(line_ids))
            .values(payload=None, last_error=None)
        ).rowcount
        # what had not gone out yet stays out: its payload is gone
        s.execute(
            update(Delivery)
            .where(
                Delivery.assignment_id.in_(line_ids),
                Delivery.state.in_(
                    (DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.DEAD)
                ),
            )
            .values(state=DeliveryState.CANCELLED, updated_at=now)
        )
        rows += s.execute(
            update(DeliveryAttempt)
            .where(
                DeliveryAttempt.delivery_id.in_(
                    select(Delivery.id).where(Delivery.assignment_id.in_(line_ids))
                )
            )
            .values(error=None)
        ).rowcount
    rows += s.execute(
        update(StatusEvent).where(StatusEvent.case_id == case.id).values(message=None)
    ).rowcount
    rows += s.execute(update(Message).where(Message.case_id == case.id).values(text="")).rowcount
    files = s.execute(
        Attachment.__table__.delete().where(Attachment.__table__.c.case_id == case.id)
    ).rowcount
    rows += files
    rows += s.execute(
        update(Notification)
        .where(Notification.case_id == case.id)
        .values(to_address="", data=None, secret=None, last_error=None)
    ).rowcount
    s.execute(
        update(Notification)
        .where(Notification.case_id == case.id, Notification.state.in_(("pending", "retry")))
        .values(state="cancelled")
    )
    matches = [UnmatchedUpdate.case_reference == case.reference]
    if agency_refs:
        matches.append(UnmatchedUpdate.agency_reference.in_(agency_refs))
    rows += s.execute(update(UnmatchedUpdate).where(or_(*matches)).values(message=None)).rowcount
    hits = [
        c.contains(n, autoescape=True)
        for n in [*needles, case.reference]
        for c in (InboundProblem.reason, InboundProblem.excerpt)
    ]
    rows += s.execute(
        update(InboundProblem)
        .where(or_(*hits))
        .values(excerpt=None, reason="(erased: it held personal data of an erased case)")
    ).rowcount
    if needles:  # errors kept per agency and per feed may quote what an agency refused
        for model in (AgencyState, PollCursor):
            rows += s.execute(
                update(model)
                .where(or_(*(model.last_error.contains(n, autoescape=True) for n in needles)))
                .values(last_error="(erased: it held personal data of an erased case)")
            ).rowcount
        rows += s.execute(
            update(UnmatchedUpdate)
            .where(or_(*(UnmatchedUpdate.message.contains(n, autoescape=True) for n in needles)))
            .values(message=None)
        ).rowcount
    erased, legacy = _erase_evidence(s, case, needles)
    rows += erased
    audit.record(
        s,
        at=now,
        actor=actor,
        action=ERASED_ACTION,
        case_id=case.id,
        data={
            "case": case.reference,
            "why": reason,
            "erased": {"rows": rows, "attachments": files, "evidence_entries": erased},
        },
    )
    for r in s.scalars(
        select(PrivacyRequest).where(
            PrivacyRequest.case_id == case.id,
            PrivacyRequest.kind == "erasure",
            PrivacyRequest.state == "pending",
        )
    ):
        r.state, r.done_at, r.done_by = "done", now, actor[:64]
    return Erased(case.reference, rows, files, erased, legacy)


def _erase_evidence(s: Session, case: Case, needles: list[str]) -> tuple[int, int]:
    """Empty the data of the case's entries that may hold personal text (and of entries without
    a case that name the consumer), keeping each entry's digest. Returns (erased, kept because
    older than digests)."""
    t = AuditEntry
    cond = t.case_id == case.id
    if needles:
        text = cast(t.data, Text)
        cond = or_(
            cond, (t.case_id.is_(None)) & or_(*(text.contains(n, autoescape=True) for n in needles))
        )
    erased = legacy = 0
    for e in s.scalars(select(t).where(cond).order_by(t.id)):
        if e.data is None or (
            e.case_id is not None
            and isinstance(e.data, dict)
            and set(e.data) <= _STRUCTURAL_KEYS
            and not _names_anyone(e.data, needles)
        ):
            continue
        sha = e.data_sha256
        if sha is None:
            if audit.digest(e.prev_hash, e.at, e.actor, e.action, e.agency_id, e.data) != e.hash:
                legacy += 1  # its hash covers the bytes: erasing them would break the chain
                continue
            sha = audit.data_digest(e.data)
        e.data, e.data_sha256 = None, sha
        erased += 1
    return erased, legacy


def _names_anyone(data: Any, needles: list[str]) -> bool:
    text = json.dumps(data, ensure_ascii=False, default=str)
    return any(n in text for n in needles)


def _load(s: Session, reference: str, *, lock: bool = False) -> Case:
    normalised = references.normalise(reference or "")
    if normalised is None:
        raise PrivacyError(f"{reference!r} is not a case reference (LK-XXXX-XXXX)")
    query = (
        select(Case)
        .where(Case.reference == normalised)
        .options(selectinload(Case.parties), selectinload(Case.assignments))
    )
    if lock:
        query = query.with_for_update(of=Case)
    case = s.scalars(query).first()
    if case is None:
        raise PrivacyError(f"no case {normalised}")
    return case


def _after_erasure(db: Database) -> None:
    """On SQLite, fold the write-ahead log into the database and empty it, so the pages that
    held the erased data (zeroed by secure_delete, hub/db.py) leave no copy in the -wal file."""
    if db.dialect == "sqlite":
        raw = db.engine.raw_connection()  # outside a transaction: a checkpoint cannot run in one
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            raw.close()


def erase_case(
    db: Database, reference: str, now: datetime, *, actor: str, reason: str = "request"
) -> Erased:
    """Erase a case's personal data now (an operator, on request or by decision). Raises
    PrivacyError for an unknown or already erased case."""
    actor = actor[:32]  # the evidence log's actor column
    with db.session() as s:
        case = _load(s, reference, lock=True)
        if case.erased_at is not None:
            raise PrivacyError(
                f"case {case.reference} was already erased on {case.erased_at:%Y-%m-%d}"
            )
        done = _erase(s, case, now, reason, actor)
    _after_erasure(db)
    return done


def housekeeping(
    db: Database, now: datetime, retention: Retention | None = None, *, limit: int = 200
) -> list[Erased]:
    """Erase the cases past their retention period, at most `limit` per run (the next run
    goes on). Only cases older than the shortest period are looked at."""
    retention = retention or retention_periods()
    oldest = now - timedelta(days=max(retention.shortest_days, 0))
    with db.session(read_only=True) as s:
        candidates = s.scalars(
            select(Case)
            .where(Case.erased_at.is_(None), Case.created_at <= oldest)
            .options(selectinload(Case.assignments))
            .order_by(Case.id)
        ).all()
        due = [c.reference for c in candidates if erase_after(c, retention) <= now]
    done = []
    for reference in due[:limit]:
        with db.session() as s:
            case = _load(s, reference, lock=True)
            if case.erased_at is not None or erase_after(case, retention) > now:
                continue
            done.append(_erase(s, case, now, "retention", "hub"))
    if done:
        _after_erasure(db)
    return done


# ---------------------------------------------------------------------------------------- export


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _row(obj: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        c.key: _iso(getattr(obj, c.key)) for c in obj.__table__.columns if c.key not in leave_out
    }


def export_case(
    db: Database, reference: str, now: datetime, *, actor: str, as_request: bool = False
) -> bytes:
    """A zip of everything held about the case: `personal-data.json` (the case, its parties,
    lines, timeline, messages, mails, requests and evidence entries) and `attachments/<id>-<name>`.
    The export is recorded on the case's evidence chain (what was exported: a count, no data);
    `as_request`: also as a done request of the consumer's."""
    actor = actor[:32]  # the evidence log's actor column
    with db.session() as s:
        case = _load(s, reference)
        t = Attachment
        files = s.scalars(select(t).where(t.case_id == case.id).order_by(t.id)).all()
        doc = {
            "format": EXPORT_FORMAT,
            "exported_at": now.isoformat(),
            "case": _row(case, ("id", "token_hash")),
            "parties": [_row(p, ("id", "case_id")) for p in case.parties],
            "lines": [_row(a, ("case_id",)) for a in case.assignments],
            "timeline": [
                _row(e, ("case_id", "dedupe_key"))
                for e in s.scalars(
                    select(StatusEvent)
                    .where(StatusEvent.case_id == case.id)
                    .order_by(StatusEvent.id)
                )
            ],
            "messages": [
                _row(m, ("case_id",))
                for m in s.scalars(
                    select(Message).where(Message.case_id == case.id).order_by(Message.id)
                )
            ],
            "attachments": [{**_row(f, ("data", "case_id")), "file": _file_name(f)} for f in files],
            "mails": [
                _row(n, ("case_id", "secret", "dedupe_key"))
                for n in s.scalars(
                    select(Notification)
                    .where(Notification.case_id == case.id)
                    .order_by(Notification.id)
                )
            ],
            "sent_to_agencies": [
                _row(d, ("assignment_id", "leased_by", "lease_expires_at"))
                for d in s.scalars(
                    select(Delivery)
                    .where(Delivery.assignment_id.in_([a.id for a in case.assignments]))
                    .order_by(Delivery.id)
                )
            ],
            "privacy_requests": [
                _row(r, ("case_id",))
                for r in s.scalars(
                    select(PrivacyRequest)
                    .where(PrivacyRequest.case_id == case.id)
                    .order_by(PrivacyRequest.id)
                )
            ],
            "evidence": [
                _row(e, ("case_id", "id"))
                for e in s.scalars(
                    select(AuditEntry).where(AuditEntry.case_id == case.id).order_by(AuditEntry.id)
                )
            ],
        }
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(
                "personal-data.json",
                json.dumps(doc, indent=2, ensure_ascii=False, default=str),
            )
            for f in files:
                z.writestr(f"attachments/{_file_name(f)}", bytes(f.data))
        audit.record(
            s,
            at=now,
            actor=actor,
            action="gdpr.exported",
            case_id=case.id,
            data={"case": case.reference, "attachments": len(files)},
        )
        if as_request:  # the consumer's own download, listed with their requests
            s.add(
                PrivacyRequest(
                    case_id=case.id,
                    kind="export",
                    state="done",
                    requested_at=now,
                    due_at=now,
                    done_at=now,
                    done_by=actor,
                )
            )
        return out.getvalue()


def _file_name(f: Attachment) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f.filename).strip("._") or "file"
    return f"{f.id}-{safe[:100]}"


# -------------------------------------------------------------------------- consumers' requests


@dataclass(frozen=True)
class Request:
    """A consumer's privacy request as the back office lists it."""

    id: int
    reference: str
    kind: str
    state: str
    requested_at: datetime
    due_at: datetime
    done_at: datetime | None
    done_by: str | None

    def overdue(self, now: datetime) -> bool:
        return self.state == "pending" and self.due_at < now


@dataclass(frozen=True)
class ConsumerView:
    """What the consumer's privacy page shows about their case."""

    reference: str
    erase_after: datetime | None  # None: erased already
    closed: bool
    pending: Request | None
    erased_at: datetime | None


def for_consumer(db: Database, reference: str, token: str) -> ConsumerView | None:
    """The privacy page's facts, for the holder of the case's code; None otherwise."""
    with db.session(read_only=True) as s:
        case = consumer.find_case(s, reference, token)
        if case is None:
            return None
        pending = pending_request(s, case.id)
        return ConsumerView(
            case.reference,
            None if case.erased_at else erase_after(case, retention_periods()),
            _closed_at(case) is not None,
            _request(pending, case.reference) if pending else None,
            case.erased_at,
        )


def consumer_export(db: Database, reference: str, token: str, now: datetime) -> bytes | None:
    """The export, served at once to the holder of the case's code; None for a wrong code."""
    with db.session(read_only=True) as s:
        case = consumer.find_case(s, reference, token)
        if case is None:
            return None
        reference = case.reference
    return export_case(db, reference, now, actor="consumer", as_request=True)


def consumer_requests_erasure(
    db: Database, reference: str, token: str, now: datetime
) -> Request | None:
    """The consumer confirmed they want their data erased: a request an operator carries out
    before `ERASURE_DEADLINE`. None for a wrong code; PrivacyError when already erased."""
    with db.session() as s:
        case = consumer.find_case(s, reference, token)
        if case is None:
            return None
        if case.erased_at is not None:
            raise PrivacyError(f"case {case.reference} is already erased")
        return request_erasure(s, case, now)


def request_erasure(s: Session, case: Case, now: datetime) -> Request:
    """Record the consumer's confirmed request to erase their data (an operator does it before
    the deadline); asking again while one is pending returns that one."""
    pending = pending_request(s, case.id)
    if pending is None:
        pending = PrivacyRequest(
            case_id=case.id,
            kind="erasure",
            state="pending",
            requested_at=now,
            due_at=now + ERASURE_DEADLINE,
        )
        s.add(pending)
        s.flush()
        audit.record(
            s,
            at=now,
            actor="consumer",
            action="gdpr.erasure_requested",
            case_id=case.id,
            data={"case": case.reference, "due": pending.due_at.isoformat()},
        )
    return _request(pending, case.reference)


def _request(r: PrivacyRequest, reference: str) -> Request:
    return Request(r.id, reference, r.kind, r.state, r.requested_at, r.due_at, r.done_at, r.done_by)


def pending_request(s: Session, case_id: int) -> PrivacyRequest | None:
    return s.scalars(
        select(PrivacyRequest).where(
            PrivacyRequest.case_id == case_id,
            PrivacyRequest.kind == "erasure",
            PrivacyRequest.state == "pending",
        )
    ).first()


def requests(db: Database, *, pending_only: bool = True, limit: int = 500) -> list[Request]:
    """Erasure requests, the most urgent first (pending ones by due date)."""
    with db.session(read_only=True) as s:
        query = (
            select(PrivacyRequest, Case.reference)
            .join(Case, Case.id == PrivacyRequest.case_id)
            .where(PrivacyRequest.kind == "erasure")
        )
        if pending_only:
            query = query.where(PrivacyRequest.state == "pending")
        rows = s.execute(query.order_by(PrivacyRequest.due_at).limit(limit)).all()
        return [_request(r, ref) for r, ref in rows]
