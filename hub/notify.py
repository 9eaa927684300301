"""Mail to consumers when something they care about happens to their case.

A notification is written in the same transaction as the change it tells of (an outbox again), so
a crash loses none and none is sent for a change that was rolled back. The worker sends them over
SMTP in the consumer's language and retries on failure. The confirmation mail carries the private
tracking link: its token waits in the row (`secret`) only until the mail is sent, then is wiped.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from hub.config import MailSettings
from hub.db import Database
from hub.models import Case, Notification
from mappings.names import NameForms

TEMPLATES = Path(__file__).resolve().parent / "templates" / "mail"
KINDS = ("filed", "status", "waiting", "past_due", "referred", "withdrawn", "message")
# A line's change: those pending for one case go out together, in one mail (`send_due`).
BATCHED = ("status", "waiting")
MAX_ATTEMPTS = 8

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


def tracking_url(public_url: str, language: str, reference: str, token: str | None = None) -> str:
    """The consumer's private link; the web front desk serves it (hub/web.py)."""
    base = f"{public_url.rstrip('/')}/{language}/track/{reference}"
    return f"{base}?k={token}" if token else base


def notification_row(
    kind: str,
    *,
    language: str,
    to_address: str,
    now: datetime,
    dedupe: str,
    data: dict[str, Any] | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """The column values of one queued mail but its case_id, which the caller attaches: what
    `enqueue` stores and intake's bulk insert writes for the confirmation mail."""
    assert kind in KINDS, kind
    return {
        "kind": kind,
        "dedupe_key": dedupe_key(kind, dedupe),
        "language": language,
        "to_address": to_address,
        "data": data or {},
        "secret": secret,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def dedupe_key(kind: str, dedupe: str) -> str:
    return f"{kind}:{dedupe}"[:120]


def enqueue(
    session: Session,
    case: Case,
    kind: str,
    *,
    now: datetime,
    dedupe: str,
    data: dict[str, Any] | None = None,
    secret: str | None = None,
    new_case: bool = False,
) -> None:
    """Queue a mail to the case's consumer, once per (case, dedupe)."""
    assert kind in KINDS, kind
    consumer = case.party("consumer")
    if consumer is None or not consumer.email:
        return
    key = dedupe_key(kind, dedupe)
    pending = [n for n in session.new if isinstance(n, Notification) and n.case_id == case.id]
    if any(n.dedupe_key == key for n in pending):
        return
    exists = (
        None
        if new_case
        else session.scalar(
            select(Notification.id).where(
                Notification.case_id == case.id, Notification.dedupe_key == key
            )
        )
    )
    if exists is None:
        row = notification_row(
            kind,
            language=case.language,
            to_address=consumer.email,
            now=now,
            dedupe=dedupe,
            data=data,
            secret=secret,
        )
        session.add(Notification(case_id=case.id, **row))


# (agency id, language) -> the agency's name with its forms for sentences: a template says
# `{{ agency.The }}`, `{{ agency.to }}` ("au Service", "zum Ombudsdienst"), or `{{ agency }}`
# for the bare name as a label (mappings/names.py).
Names = Callable[[str, str], NameForms]


def _ids(agency_id: str, _language: str) -> NameForms:
    return NameForms(*(agency_id,) * 7)


def render(
    n: Notification, case: Case, settings: MailSettings, names: Names = _ids
) -> tuple[str, str]:
    """(subject, body) of a notification in the consumer's language."""
    template = _env.get_template(f"{n.kind}.{n.language}.txt")
    data = dict(n.data or {})
    lang = n.language
    data["status"] = _with_outcome(data, case, lang)
    data["message"] = _said(data, lang)
    data["agency"] = names(data["agency_id"], lang) if data.get("agency_id") else ""
    data["from_agency"] = names(data["from_agency_id"], lang) if data.get("from_agency_id") else ""
    data["agencies"] = [
        {"name": names(a["agency_id"], lang), "why": a.get("why") or ""}
        for a in data.get("agencies") or []
    ]
    data["rate"] = n.kind == "status" and data.get("to") == "resolved"
    text = template.render(
        reference=case.reference,
        link=tracking_url(settings.public_url, lang, case.reference, n.secret),
        **data,
    )
    subject, _, body = text.partition("\n")
    return subject.removeprefix("Subject: ").strip(), body.lstrip("\n")


def _said(data: dict[str, Any], language: str) -> str:
    """The agency's message, after the reason of its information request in `language`."""
    if not data.get("reason"):
        return str(data.get("message") or "")
    from hub import i18n

    said = i18n.information_request(
        i18n.translations(language).gettext, data["reason"], data.get("message") or None
    )
    return said or ""


def _with_outcome(data: dict[str, Any], case: Case, language: str) -> str:
    """A resolved line's status with its outcome ("Resolved (solved)"): the agency names the
    outcome with the status, so it is read when the mail goes out."""
    status = str(data.get("status") or "")
    if data.get("to") != "resolved" or not data.get("agency_id"):
        return status
    from hub import lifecycle

    line = next(
        (a for a in case.assignments if a.agency_id == data["agency_id"] and a.outcome), None
    )
    outcome = lifecycle.outcome_label(line.outcome, language) if line else None
    return f"{status} ({outcome})" if outcome else status


def render_batch(
    rows: Sequence[Notification], case: Case, settings: MailSettings, names: Names = _ids
) -> tuple[str, str]:
    """(subject, body) of one mail telling every change in `rows` (line changes of one case);
    a single change reads as its own kind of mail."""
    if len(rows) == 1:
        return render(rows[0], case, settings, names)
    lang = rows[0].language
    changes = []
    for n in rows:
        data = n.data or {}
        changes.append(
            {
                "agency": names(data["agency_id"], lang) if data.get("agency_id") else "",
                "status": _with_outcome(data, case, lang),
                "message": _said(data, lang),
                "waiting": n.kind == "waiting",
                "reply_by": data.get("reply_by") or "",
            }
        )
    text = _env.get_template(f"changes.{lang}.txt").render(
        reference=case.reference,
        link=tracking_url(settings.public_url, lang, case.reference),
        changes=changes,
        waiting=any(c["waiting"] for c in changes),
        rate=any((n.data or {}).get("to") == "resolved" for n in rows),
    )
    subject, _, body = text.partition("\n")
    return subject.removeprefix("Subject: ").strip(), body.lstrip("\n")


def send_due(
    db: Database, settings: MailSettings, now: datetime, limit: int = 50, names: Names = _ids
) -> int:
    """Send pending notifications; returns how many went out."""
    with db.session() as s:
        query = (
            select(Notification)
            .where(
                or_(Notification.state == "pending", Notification.state == "retry"),
                Notification.next_attempt_at <= now,
                # a line's change waits a little for the case's other changes to join its mail
                or_(
                    Notification.kind.not_in(BATCHED),
                    Notification.created_at <= now - batch_delay(settings),
                ),
            )
            .order_by(Notification.id)
            .limit(limit)
        )
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(s.scalars(query))
        if not rows:
            return 0
        cases = {
            c.id: c
            for c in s.scalars(
                select(Case)
                .where(Case.id.in_([n.case_id for n in rows]))
                .options(selectinload(Case.parties), selectinload(Case.assignments))
            )
        }
        sent = 0
        for n in rows:
            if n.state == "sent":  # went out with an earlier row's batch
                continue
            batch = [n]
            if n.kind in BATCHED:
                batch = sorted(batch + _pending_changes(s, db, n), key=lambda m: m.id)
            n.attempts += 1
            try:
                subject, body = render_batch(batch, cases[n.case_id], settings, names)
                _smtp_send(settings, n.to_address, subject, body, cases[n.case_id].reference, now)
            except (OSError, smtplib.SMTPException) as exc:
                n.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                permanent = isinstance(exc, smtplib.SMTPRecipientsRefused)
                if permanent or n.attempts >= MAX_ATTEMPTS:
                    n.state = "dead"
                else:
                    n.state = "retry"
                    n.next_attempt_at = now + timedelta(seconds=min(3600, 5 * 2**n.attempts))
                continue
            for m in batch:
                m.state, m.sent_at, m.secret, m.last_error = "sent", now, None, None
            sent += 1
        return sent


def batch_delay(settings: MailSettings) -> timedelta:
    """How long a line's change waits for others (the setting, else statuses.yaml)."""
    if settings.batch_seconds is not None:
        return timedelta(seconds=settings.batch_seconds)
    from hub import lifecycle

    return lifecycle.batch_delay()


def _pending_changes(s: Session, db: Database, first: Notification) -> list[Notification]:
    """The other line changes pending for `first`'s case, due or not yet: they join its mail."""
    query = (
        select(Notification)
        .where(
            Notification.case_id == first.case_id,
            Notification.id != first.id,
            Notification.kind.in_(BATCHED),
            or_(Notification.state == "pending", Notification.state == "retry"),
        )
        .order_by(Notification.id)
    )
    if db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(s.scalars(query))


def _smtp_send(
    settings: MailSettings, to: str, subject: str, body: str, reference: str, now: datetime
) -> None:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)  # the hub's clock (aware UTC)
    msg["Message-ID"] = make_msgid(domain="loket.example.be")
    if reference:
        msg["X-Loket-Reference"] = reference
    msg.set_content(body)
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(msg)


def send_account_mail(
    settings: MailSettings, to: str, kind: str, language: str, data: dict[str, Any], now: datetime
) -> None:
    """A mail to a back-office account (a password-reset link), sent at once over the same SMTP
    relay as the consumers' mail, in the account's language (templates account_<kind>.<lang>.txt).
    Raises OSError or smtplib.SMTPException when the relay refuses; nothing is kept to retry:
    a reset link is asked for again."""
    template = _env.get_template(f"account_{kind}.{language}.txt")
    subject, _, body = template.render(**data).partition("\n")
    _smtp_send(settings, to, subject.removeprefix("Subject: ").strip(), body.lstrip("\n"), "", now)
