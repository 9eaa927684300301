"""The canonical model (SQLAlchemy 2). ORM objects never leave `hub/`: other rooms get value objects.

Schema changes go through Alembic (hub/migrations); tests/test_migrations.py fails when these
classes and the migrations disagree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT keys on PostgreSQL; SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in Python on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (Index(None, "created_at"),)  # the operator's newest-first lists

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    description: Mapped[str] = mapped_column(Text)
    incident_date: Mapped[date | None] = mapped_column(Date)
    # "month" when the consumer knows only the month (incident_date is then its 1st); None: a day
    incident_date_precision: Mapped[str | None] = mapped_column(String(5))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    consent_share: Mapped[bool] = mapped_column(Boolean)
    anonymous_to_trader: Mapped[bool] = mapped_column(Boolean, default=False)
    answers: Mapped[Any | None] = mapped_column(JSON)  # the consumer's answers to pre-checks
    status: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When its personal data was erased (hub/gdpr.py): past retention, or on request.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    parties: Mapped[list[Party]] = relationship(back_populates="case", order_by="Party.id")
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="case", order_by="Assignment.id"
    )
    events: Mapped[list[StatusEvent]] = relationship(
        back_populates="case", order_by="StatusEvent.id"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        primaryjoin="and_(Attachment.case_id == Case.id, Attachment.message_id.is_(None))",
        order_by="Attachment.id",
        viewonly=True,
    )

    def party(self, role: str) -> Party | None:
        return next((p for p in self.parties if p.role == role), None)


class Party(Base):
    __tablename__ = "parties"
    __table_args__ = (
        UniqueConstraint("case_id", "role"),
        # the operator's search (hub/search.py): by email, enterprise number, name prefix
        Index(None, "email"),
        Index(None, "enterprise_number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # consumer | trader
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    enterprise_number: Mapped[str | None] = mapped_column(String(10))
    website: Mapped[str | None] = mapped_column(String(500))
    street: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))

    case: Mapped[Case] = relationship(back_populates="parties")


# Name prefix search: lower(name) LIKE 'prefix%' needs text_pattern_ops on PostgreSQL.
Index(
    "ix_parties_lower_name",
    func.lower(Party.name).label("lower_name"),
    postgresql_ops={"lower_name": "text_pattern_ops"},
)


class Assignment(Base):
    """One case at one agency: its canonical status, the agency's own status and reference."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index(None, "case_id"),
        Index(None, "agency_id", "agency_reference"),
        Index(None, "agency_id", "status"),
        Index(None, "created_at"),  # the statistics' daily rollups (hub/statistics.py)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    agency_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    basis: Mapped[str | None] = mapped_column(Text)  # the routing rule's legal basis
    stage: Mapped[str] = mapped_column(String(16), default="handle", server_default="handle")
    referred_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(32))
    agency_status: Mapped[str | None] = mapped_column(String(64))
    agency_reference: Mapped[str | None] = mapped_column(String(128))
    # The reference is a stand-in (the file name an SFTP agency got) until the agency numbers
    # the case and names its own reference in a status: consumers are not shown a stand-in.
    agency_reference_provisional: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    outcome: Mapped[str | None] = mapped_column(String(32))
    acknowledge_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The answer clock stops while the agency waits for the consumer (paused_at is set).
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    past_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    case: Mapped[Case] = relationship(back_populates="assignments")
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="assignment")


class DeliveryState(StrEnum):
    """Where an outbox row stands. The members are the very strings stored in
    `deliveries.state`, so they compare equal to what a query reads back."""

    PENDING = "pending"  # waiting for its first attempt (or a resend)
    LEASED = "leased"  # a worker holds it until lease_expires_at
    DONE = "done"  # the agency answered with a receipt
    RETRY = "retry"  # a transient failure; due again at next_attempt_at
    DEAD = "dead"  # out of attempts or refused: a dead letter for operators
    CANCELLED = "cancelled"  # the consumer withdrew the case before it was sent


class Delivery(Base):
    """The transactional outbox: one row per thing to send to an agency.

    kind: `case` (the case itself, one per assignment) or `message` (a consumer's reply to the
    agency, with its attachments). state: a `DeliveryState`. The idempotency key never changes,
    across attempts and resends, so the agency can recognise a repeat.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index(None, "state", "next_attempt_at"),
        Index(None, "agency_id", "state", "next_attempt_at"),
        Index(None, "assignment_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="case", server_default="case")
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    agency_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Each resend starts a new round of attempts; `attempts` keeps counting for the evidence.
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    round_started_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    assignment: Mapped[Assignment] = relationship(back_populates="deliveries")
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(order_by="DeliveryAttempt.id")


class DeliveryAttempt(Base):
    """Every try of a delivery, with its outcome and error: what operators read on a dead letter."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index(None, "delivery_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # ok | transient | permanent
    error: Mapped[str | None] = mapped_column(Text)


class StatusEvent(Base):
    """The timeline: who moved what, when, from which status to which, with a message."""

    __tablename__ = "status_events"
    __table_args__ = (
        UniqueConstraint("assignment_id", "dedupe_key"),
        Index(None, "case_id", "id"),
        Index(None, "recorded_at"),  # the statistics' daily rollups (hub/statistics.py)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE")
    )
    actor: Mapped[str] = mapped_column(String(16))  # hub | agency | consumer | operator
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    agency_status: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    # what happened, for a consumer-facing text in their language (hub/web.py translates it):
    # routed | delivered | agency_status | agency_note | agency_reference | referred | past_due
    # | consumer_reply | message_forwarded | message_delayed | delivery_delayed | resent
    # | withdrawn | needs_routing
    kind: Mapped[str | None] = mapped_column(String(32))
    # an agency's information request: the reason from its mapping's `information_requests`
    # (disputed_bill, customer_number, ...), shown to the consumer in their language
    reason: Mapped[str | None] = mapped_column(String(64))

    case: Mapped[Case] = relationship(back_populates="events")
    assignment: Mapped[Assignment | None] = relationship()


class WorkerBeat(Base):
    """A running worker's heartbeat: `seen_at` moves every few seconds while it lives, and its
    leases move with it. Claims divide an agency's in-flight allowance among the workers seen
    lately, so several deliver to one agency at once and a killed one holds only its share."""

    __tablename__ = "worker_beats"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AgencyState(Base):
    """Per-agency delivery control shared by every worker: the circuit breaker and a manual pause.

    breaker: closed (deliver) | open (wait until probe_at) | half_open (one probe in flight until
    probe_until). A claim locks this row, so the in-flight cap and the breaker hold across workers.
    """

    __tablename__ = "agency_states"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    breaker: Mapped[str] = mapped_column(String(16), default="closed")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probe_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_by: Mapped[str | None] = mapped_column(String(64))
    paused_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PollCursor(Base):
    """Where polling an agency resumes; saved in the same transaction as the updates it read."""

    __tablename__ = "poll_cursors"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(64))


class UnmatchedUpdate(Base):
    """A status from an agency that names no assignment we know (yet).

    Kept, never dropped: it is applied as soon as the matching receipt is recorded, and operators
    see what stays unmatched.
    """

    __tablename__ = "unmatched_updates"
    __table_args__ = (
        UniqueConstraint("agency_id", "update_key"),
        Index(None, "agency_id", "resolved_at"),  # what still waits, per agency, at every poll
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    update_key: Mapped[str] = mapped_column(String(200))
    agency_reference: Mapped[str | None] = mapped_column(String(128))
    case_reference: Mapped[str | None] = mapped_column(String(16))
    agency_status: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Message(Base):
    """Words between the consumer and an agency that are not a status: a consumer's reply to an
    information request (sent to the agency through the outbox), or what an agency wrote."""

    __tablename__ = "messages"
    __table_args__ = (Index(None, "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE")
    )
    direction: Mapped[str] = mapped_column(String(16))  # to_agency | from_agency
    author: Mapped[str] = mapped_column(String(32))  # consumer | agency | operator:<name>
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")


class Attachment(Base):
    """A file the consumer gave: checked against an allow-list by its content, stored in the
    database with the case so it travels in the same transaction, never served as executable."""

    __tablename__ = "attachments"
    __table_args__ = (Index(None, "case_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Notification(Base):
    """A mail to the consumer, written in the same transaction as what it tells (the outbox
    pattern again): sent by the worker over SMTP, retried, never lost.

    `secret` holds the tracking token only for the confirmation mail, and is wiped once sent.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("case_id", "dedupe_key"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(120))
    language: Mapped[str] = mapped_column(String(2))
    to_address: Mapped[str] = mapped_column(String(254))
    data: Mapped[Any | None] = mapped_column(JSON)
    secret: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundProblem(Base):
    """Something an agency sent that could not be read; kept for operators, never dropped."""

    __tablename__ = "inbound_problems"
    __table_args__ = (UniqueConstraint("agency_id", "source"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A back-office account. role: `operator` (the whole front desk) or `agency` (the staff of
    one agency: only that agency's lines). Passwords are stored as salted hashes (werkzeug)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    agency_id: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Stored in each back-office session at sign-in; signing out or disabling the account bumps
    # it, so every copy of an older session cookie stops working at its next request.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where a password-reset link is mailed; None: only an operator can give a new password.
    email: Mapped[str | None] = mapped_column(String(254))
    # The back office's language the account chose (nl, fr, de, en); None: the browser's.
    language: Mapped[str | None] = mapped_column(String(2))
    # The TOTP second factor (RFC 6238, base32), when enrolled, and the last time step a code
    # was accepted for: a code is good once.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class PasswordReset(Base):
    """A one-time link to choose a new password: only the SHA-256 of its token is kept; it
    expires (30 minutes) and is used once."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Evidence of every exchange, hash-chained per case so a changed entry breaks the chain.

    `seq` is the entry's place in the one global log (1, 2, 3, ... without gaps), given by the
    next signed checkpoint (hub/evidence.py); None until then. Writers never take a global lock.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index(None, "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    agency_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[Any | None] = mapped_column(JSON)
    # SHA-256 of `data` as canonical JSON: the entry's hash covers this digest, not the bytes,
    # so erasing `data` (hub/gdpr.py) leaves the chain and the checkpoints verifiable.
    data_sha256: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class EvidenceCheckpoint(Base):
    """A signed tree head: the RFC 6962 Merkle root of the log's entries 1..size, signed with an
    Ed25519 key kept outside the database. `leaves` holds the entry hashes this checkpoint added
    (size - the previous size, 32 bytes each): authenticated by the signed root, they let
    `verify` name the exact entry that changed."""

    __tablename__ = "evidence_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, unique=True)
    root: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
    leaves: Mapped[bytes] = mapped_column(LargeBinary)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)  # the tree's right edge (Frontier)


class PrivacyRequest(Base):
    """A consumer's request about their personal data, made from the tracking page: `export`
    (served at once, recorded) or `erasure` (confirmed by the consumer, then done by an
    operator before `due_at`). state: pending | done."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index(None, "state", "due_at"), Index(None, "case_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(64))


class AgencyClient(Base):
    """An agency's OAuth 2.0 client for the agency API (client credentials). One per agency.
    Only hashes of secrets are stored; after a rotation the previous secret keeps working until
    `previous_expires_at` (the overlap), so the agency can switch without downtime."""

    __tablename__ = "agency_clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgencyToken(Base):
    """A short-lived bearer token issued to an agency client; stored as its SHA-256 only."""

    __tablename__ = "agency_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(200), default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Rating(Base):
    """The consumer's answer to "did this solve your problem?" for one resolved line: yes, partly
    or no, with an optional comment that only the line's service sees (never published)."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("assignment_id"), Index(None, "agency_id", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    agency_id: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(String(8))  # yes | partly | no
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatRollup(Base):
    """Daily figures for the public statistics (hub/statistics.py): one count per day, metric and
    dimensions. The page reads only these rows; housekeeping recomputes the last days."""

    __tablename__ = "stat_rollups"
    __table_args__ = (
        UniqueConstraint("day", "metric", "agency_id", "area", "kind", "value"),
        Index(None, "metric", "month"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM of day, to group without date maths
    metric: Mapped[str] = mapped_column(String(16))
    agency_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    area: Mapped[str] = mapped_column(String(32), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(16), default="", server_default="")
    value: Mapped[str] = mapped_column(String(32), default="", server_default="")
    n: Mapped[int] = mapped_column(Integer)


class StatState(Base):
    """One row per rollup: the last day recomputed and when, so the page knows its figures'
    version (and caches by it) and the next run knows where to start."""

    __tablename__ = "stat_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_day: Mapped[date | None] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[str] = mapped_column(String(32))  # new at every run: the figures' version


class TraderAlert(Base):
    """A market signal sent to the Economic Inspection: a trader whose reports spiked this week.
    One per trader and ISO week (the unique key); mailed by housekeeping, retried until sent."""

    __tablename__ = "trader_alerts"
    __table_args__ = (UniqueConstraint("trader_key", "week"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trader_key: Mapped[str] = mapped_column(String(200))
    trader_name: Mapped[str] = mapped_column(String(200))
    week: Mapped[str] = mapped_column(String(8))  # ISO week, 2026-W49
    area: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer)
    trailing_mean: Mapped[float] = mapped_column(Float)
    to_address: Mapped[str] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
