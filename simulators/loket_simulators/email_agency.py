"""An email agency simulator: an agency whose only system is a shared mailbox.

Three real servers play the mail world around the hub:
- the agency's SMTP server (aiosmtpd, with AUTH): receives the hub's case mails, keeps its own case
  numbers (`OE/2026/00042`), de-duplicates on Message-ID, checks the fields its contract requires;
- the hub's mailbox: Dovecot serving a Maildir over IMAP, where the hub reads the agency's replies;
- the hub's mail exchanger (aiosmtpd): the agency's replies arrive over SMTP and its handler writes
  them into that Maildir, as a real MX with local delivery would. (Not Dovecot's LDA/LMTP: a plain
  Maildir write needs no extra Dovecot service, and works the same under the pymap fallback.)

The agency replies to every new case with its first status (the energy ombudsman: "Status:
ONTVANGEN"), then moves it one step every `step_seconds` (IN_BEHANDELING, AFGESLOTEN), each a
reply in the case's language with the case reference kept in the subject, In-Reply-To set and
the agency's own reference in the body. A consumer's reply the hub forwards (a mail marked
`X-Loket-Kind: message`) is no new case: it is filed on its case (by the agency's reference in
`X-Loket-Agency-Reference`, else the case mail named in In-Reply-To, else our case reference)
with its text (what stands between the two rules of dashes) and its attachments, once per
Message-ID; one for a case the agency does not know is kept aside, never a crash. Each agency's
profile (contracts/agencies/<id>/simulator.yaml, `kind: email`) holds its own case numbers,
status codes, flow, status lines and the texts of its replies per language.

    loket-simulator email --profile ombudsman-energy --smtp-port 8125 --imap-port 8143

Many agencies in one process (`launch_group`, what `loket run` uses): one agencies' SMTP server
per endpoint the mappings name (normally one) routes each case mail by its recipient to that
agency and accepts each agency's own SMTP login for it; the hub's mail exchanger delivers each
reply by its recipient (the hub's address for that agency) into that agency's own IMAP user, so
every agency's adapter reads only its own replies; one Dovecot (or pymap) serves all of them.

For `loket run` the simulator serves the hub's mailbox itself: with Dovecot when it is installed
(`apt-get install dovecot-imapd`), else with pymap, a pure-Python IMAP server over the same Maildir
(a dependency of loket-simulators). Without either, the agency still accepts cases and says plainly at
start-up that its replies cannot be read back. Tests always use Dovecot.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import json
import logging
import mailbox
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from loket_simulators import wait_listening
from loket_simulators.profiles import Reader, load, named

log = logging.getLogger(__name__)

# Where the consumer's own words start and end in a forwarded reply (adapters/templates/email).
MESSAGE_RULE = re.compile(r"^[ \t]*-{10,}[ \t]*$", re.MULTILINE)

DOVECOT_MISSING = (
    "neither Dovecot nor pymap is installed, so the hub's mailbox for this email agency is not "
    "served: cases are delivered to it, but its status replies cannot be read back. Install "
    "Dovecot with `apt-get install dovecot-imapd` (nothing else to configure), or pymap with "
    "`pip install pymap`, and restart."
)


# ------------------------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class Profile:
    """How one email agency looks from outside."""

    name: str
    domain: str  # of its own Message-IDs
    id_format: str  # formatted with n (sequence), year, yy
    flow: tuple[tuple[str, Mapping[str, str]], ...]  # (status code, note per language)
    # How its status mails read: each agency's system writes its own lines.
    status_line: str = "Status: {code}"
    reference_line: str = "Dossier: {id}"


def _notes(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError("give the note per language, e.g. {nl: ..., fr: ...}")
    return {str(k): str(v) for k, v in value.items()}


def read_profile(data: Reader) -> Profile:
    data.known(
        {"name", "message_id_domain", "case_number", "status_line", "reference_line", "statuses"}
    )
    try:
        flow = data.statuses(note=_notes)
    except ValueError as exc:
        raise data.fail("statuses", str(exc)) from None
    return Profile(
        name=data.text("name"),
        domain=data.text("message_id_domain"),
        id_format=data.case_number(),
        flow=flow,
        status_line=data.text("status_line", "Status: {code}"),
        reference_line=data.text("reference_line", "Dossier: {id}"),
    )


@cache
def profiles() -> dict[str, Profile]:
    """Every email agency's profile by agency id (simulator.yaml files with `kind: email`)."""
    return load("email", read_profile)


def profile(name: str) -> Profile:
    return named("email", profiles(), name)


# ------------------------------------------------------------------------------------ maildir


class MaildirDelivery:
    """Local delivery into one Maildir, readable by the IMAP server's mail user."""

    def __init__(self, path: Path, owner: tuple[int, int] | None = None):
        self.path = path
        self.owner = owner
        self.lock = threading.Lock()
        make_maildir(path, owner)

    def add(self, raw: bytes) -> str:
        with self.lock:
            box = mailbox.Maildir(self.path, create=False)
            key = box.add(raw)
            if self.owner:
                for sub in ("new", "cur"):
                    with contextlib.suppress(FileNotFoundError):
                        os.chown(self.path / sub / key, *self.owner)
            return key

    def count(self) -> int:
        """Messages in the folder (INBOX only; moved-away mail is in sub-folders)."""
        with self.lock:
            return sum(
                1
                for sub in ("new", "cur")
                for p in (self.path / sub).iterdir()
                if not p.name.startswith(".")
            )


def make_maildir(path: Path, owner: tuple[int, int] | None) -> None:
    for sub in ("", "cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(path / sub, *owner)


class MailboxHandler:
    """aiosmtpd handler of the hub's mail exchanger: every accepted mail goes into the Maildir."""

    def __init__(self, delivery: MaildirDelivery):
        self.delivery = delivery

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        rcpt = ", ".join(envelope.rcpt_tos)
        self.delivery.add(f"Delivered-To: {rcpt}\r\n".encode() + raw)
        return "250 2.0.0 Delivered to the mailbox"


# ------------------------------------------------------------------------------------- agency


@dataclass
class SimCase:
    id: str
    message_id: str
    case_reference: str | None
    subject: str
    reply_to: str
    language: str
    fields: dict[str, str]
    body: str
    attachments: list[tuple[str, str, bytes]]
    created: datetime
    step: int = -1  # index in the flow of the last status mailed
    history: list[dict[str, Any]] = field(default_factory=list)
    # the consumer's replies the hub forwarded, in arrival order: message_id, in_reply_to,
    # text, body, attachments [(filename, content type, data)], language, subject, at
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Faults:
    """What the agency's SMTP server does to the next messages (tests inject these)."""

    mode: str = "none"  # none | transient | permanent | timeout
    remaining: int = 0
    delay: float = 1.0


class EmailAgency:
    """The simulated agency's state. Thread-safe; time comes from `clock` so tests are exact.

    `send` delivers one reply (the simulator sends it over SMTP to the hub's mail exchanger).
    Replies for a case go out in order, under the lock, so the mailbox sees them in flow order.
    """

    REFERENCE = re.compile(r"LK-[0-9A-Z]{4}-[0-9A-Z]{4}")

    def __init__(
        self,
        profile: Profile,
        *,
        address: str,
        send: Callable[[EmailMessage], None],
        step_seconds: float = 5.0,
        required_fields: tuple[str, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.profile = profile
        self.address = address
        self.send = send
        self.step = timedelta(seconds=step_seconds)
        self.required_fields = required_fields
        self.clock = clock
        self.lock = threading.RLock()
        self.cases: dict[str, SimCase] = {}
        self.by_message_id: dict[str, str] = {}
        self.message_ids: dict[str, str] = {}  # a forwarded reply's Message-ID -> its case id
        self.orphans: list[dict[str, Any]] = []  # forwarded replies naming no case we know
        self.received = 0
        self.replays = 0
        self.message_replays = 0
        self.rejected = 0
        self.replies_sent = 0
        self.faults = Faults()
        self.state_file: Path | None = None

    # --------------------------------------------------------------------------------- state

    def keep_state_in(self, path: Path) -> None:
        """Keep the cases (numbers, statuses mailed, forwarded replies) in `path` (JSON),
        loading what is there: a restarted agency continues where it stopped. Each change is
        written atomically (a temporary file renamed over the old one)."""
        with self.lock:
            self.state_file = path
            if path.exists():
                data = json.loads(path.read_text())
                self.cases = {c["id"]: _case_from(c) for c in data.get("cases", [])}
                self.by_message_id = dict(data.get("by_message_id", {}))
                self.message_ids = dict(data.get("message_ids", {}))
                self.orphans = [_from_json(o) for o in data.get("orphans", [])]

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {
            "cases": [_to_json(asdict(c)) for c in self.cases.values()],
            "by_message_id": self.by_message_id,
            "message_ids": self.message_ids,
            "orphans": [_to_json(o) for o in self.orphans],
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------------------- inbound

    def take_fault(self) -> Faults | None:
        with self.lock:
            if self.faults.mode == "none" or self.faults.remaining <= 0:
                return None
            self.faults.remaining -= 1
            return Faults(self.faults.mode, 1, self.faults.delay)

    def receive(self, raw: bytes) -> str:
        """A case mail arrived; returns the SMTP reply to give."""
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        message_id = " ".join(str(msg.get("Message-ID", "")).split())
        if not message_id:
            with self.lock:
                self.rejected += 1
            return "550 5.6.0 A Message-ID is required: it is how we recognise a repeated mail"
        body_part = msg.get_body(preferencelist=("plain",))
        body = body_part.get_content() if body_part is not None else ""
        if str(msg.get("X-Loket-Kind", "")).strip().lower() == "message":
            return self._receive_message(msg, message_id, body)
        found = parse_fields(body)
        missing = [f for f in self.required_fields if not found.get(f)]
        if missing:
            with self.lock:
                self.rejected += 1
            return f"550 5.6.0 The case mail lacks required fields: {', '.join(missing)}"
        subject = str(msg.get("Subject", ""))
        ref = self.REFERENCE.search(subject)
        attachments = _attachments(msg)
        with self.lock:
            self.received += 1
            if message_id in self.by_message_id:
                self.replays += 1
                return f"250 2.0.0 Already received as {self.by_message_id[message_id]}"
            now = self.clock()
            case = SimCase(
                id=self.profile.id_format.format(
                    n=len(self.cases) + 1, year=now.year, yy=now.strftime("%y")
                ),
                message_id=message_id,
                case_reference=ref.group(0) if ref else None,
                subject=subject,
                reply_to=parseaddr(str(msg.get("Reply-To") or msg.get("From") or ""))[1],
                language=str(msg.get("Content-Language") or "nl").strip()[:2],
                fields=found,
                body=body,
                attachments=attachments,
                created=now,
            )
            self.cases[case.id] = case
            self.by_message_id[message_id] = case.id
            self._mail_step(case, 0, now)
            self._save()
            return f"250 2.0.0 Received as {case.id}"

    def _receive_message(self, msg: EmailMessage, message_id: str, body: str) -> str:
        """A consumer's reply the hub forwarded: filed on its case once per Message-ID."""
        subject = " ".join(str(msg.get("Subject", "")).split())
        entry = {
            "message_id": message_id,
            "in_reply_to": " ".join(str(msg.get("In-Reply-To", "")).split()) or None,
            "text": message_text(body),
            "body": body,
            "attachments": _attachments(msg),
            "language": str(msg.get("Content-Language") or "").strip()[:2] or None,
            "subject": subject,
        }
        with self.lock:
            if message_id in self.message_ids:
                self.message_replays += 1
                return f"250 2.0.0 Already received on {self.message_ids[message_id]}"
            case = self._case_of(msg, subject)
            entry["at"] = self.clock().isoformat()
            if case is None:
                if not any(o["message_id"] == message_id for o in self.orphans):
                    self.orphans.append(entry)
                    self._save()
                log.warning(
                    "%s: a forwarded reply %s (%r) names no case we know; kept aside",
                    self.profile.name,
                    message_id,
                    subject,
                )
                return "250 2.0.0 Received; no case of ours matches it, a person will look"
            case.messages.append(entry)
            self.message_ids[message_id] = case.id
            self._save()
            return f"250 2.0.0 Added to {case.id}"

    def _case_of(self, msg: EmailMessage, subject: str) -> SimCase | None:
        """The case a forwarded reply belongs to: our own reference, the case mail it answers,
        or the hub's case reference (the newest case with it)."""
        ours = " ".join(str(msg.get("X-Loket-Agency-Reference", "")).split())
        if ours in self.cases:
            return self.cases[ours]
        for answered in str(msg.get("In-Reply-To", "")).split():
            if answered in self.by_message_id:
                return self.cases[self.by_message_id[answered]]
        for text in (str(msg.get("X-Loket-Reference", "")), subject):
            ref = self.REFERENCE.search(text)
            if ref:
                matches = [c for c in self.cases.values() if c.case_reference == ref.group(0)]
                if matches:
                    return matches[-1]
        return None

    # ------------------------------------------------------------------------------ outbound

    def _mail_step(self, case: SimCase, step: int, at: datetime) -> str:
        code, notes = self.profile.flow[step]
        note = notes.get(case.language) or next(iter(notes.values()))
        reply = EmailMessage(policy=policy.SMTP)
        reply["From"] = self.address
        reply["To"] = case.reply_to
        subject = case.subject if case.subject.lower().startswith("re:") else f"Re: {case.subject}"
        reply["Subject"] = subject
        reply["Date"] = format_datetime(at)
        serial = re.sub(r"[^A-Za-z0-9.-]", "-", case.id)
        reply["Message-ID"] = f"<{serial}.{step + 1}.{code.lower()}@{self.profile.domain}>"
        reply["In-Reply-To"] = case.message_id
        reply["References"] = case.message_id
        quoted = "\n".join("> " + line for line in case.body.splitlines()[:6])
        status = self.profile.status_line.format(code=code)
        reference = self.profile.reference_line.format(id=case.id)
        reply.set_content(
            f"{status}\n{reference}\n\n{note}\n\n"
            f"{self.profile.name}\n\n"
            f"On {format_datetime(case.created)}, {case.reply_to} wrote:\n{quoted}\n"
        )
        self.send(reply)
        case.step = step
        case.history.append(
            {"status": code, "at": at.isoformat(), "message_id": reply["Message-ID"]}
        )
        self.replies_sent += 1
        return code

    def advance(self) -> int:
        """Mail every status move the clock has reached, in time order; returns how many."""
        with self.lock:
            now = self.clock()
            due: list[tuple[datetime, str, int]] = []
            for case in self.cases.values():
                for step in range(case.step + 1, len(self.profile.flow)):
                    at = case.created + self.step * step
                    if at > now:
                        break
                    due.append((at, case.id, step))
            for at, case_id, step in sorted(due):
                self._mail_step(self.cases[case_id], step, at)
            if due:
                self._save()
            return len(due)

    def step_case(self, case_id: str) -> str:
        """Move one case to its next status now and mail it (tests, demos)."""
        with self.lock:
            self.advance()
            case = self.cases[case_id]
            if case.step + 1 >= len(self.profile.flow):
                raise ValueError(f"case {case_id} is already at the end of its flow")
            code = self._mail_step(case, case.step + 1, self.clock())
            self._save()
            return code

    def find(self, case_reference: str) -> SimCase | None:
        with self.lock:
            return next(
                (c for c in self.cases.values() if c.case_reference == case_reference), None
            )

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "cases": len(self.cases),
                "received": self.received,
                "replays": self.replays,
                "messages": sum(len(c.messages) for c in self.cases.values()),
                "message_replays": self.message_replays,
                "orphan_messages": len(self.orphans),
                "rejected": self.rejected,
                "replies_sent": self.replies_sent,
            }


def _to_json(data: dict[str, Any]) -> dict[str, Any]:
    """A case or forwarded reply as JSON: times as ISO text, attachment data as base64."""
    out = dict(data)
    if isinstance(out.get("created"), datetime):
        out["created"] = out["created"].isoformat()
    out["attachments"] = [
        [name, kind, base64.b64encode(blob).decode()] for name, kind, blob in out["attachments"]
    ]
    if "messages" in out:
        out["messages"] = [_to_json(m) for m in out["messages"]]
    return out


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    out["attachments"] = [
        (name, kind, base64.b64decode(blob)) for name, kind, blob in out["attachments"]
    ]
    if "messages" in out:
        out["messages"] = [_from_json(m) for m in out["messages"]]
    return out


def _case_from(data: dict[str, Any]) -> SimCase:
    out = _from_json(data)
    out["created"] = datetime.fromisoformat(out["created"])
    return SimCase(**out)


FIELD_LINE = re.compile(r"^([a-z][a-z0-9_.]*):[ \t]*(.*?)\s*$")


def parse_fields(body: str) -> dict[str, str]:
    """The `field: value` lines of a case mail; `field:` alone heads a text up to a blank line."""
    found: dict[str, str] = {}
    lines = body.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        m = FIELD_LINE.match(lines[i])
        i += 1
        if not m:
            continue
        key, value = m.groups()
        if not value:
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            value = "\n".join(block)
        found.setdefault(key, value)
    return found


def message_text(body: str) -> str:
    """The consumer's own words in a forwarded reply: between the first and the last rule of
    dashes (the hub's template puts them there); the whole body when there are none."""
    body = body.replace("\r\n", "\n")
    rules = list(MESSAGE_RULE.finditer(body))
    if len(rules) >= 2:
        return body[rules[0].end() : rules[-1].start()].strip()
    return body.strip()


def _attachments(msg: EmailMessage) -> list[tuple[str, str, bytes]]:
    return [
        (part.get_filename() or "attachment", part.get_content_type(), _payload_bytes(part))
        for part in msg.iter_attachments()
    ]


def _payload_bytes(part: Any) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


class AgencyRouter:
    """aiosmtpd handler of the agencies' mail server: each case mail goes to the agency whose
    mailbox it is addressed to. `senders` says which SMTP login may write to which mailbox
    (each agency gives the hub its own credentials); a mailbox without an entry takes any."""

    def __init__(
        self, agencies: Mapping[str, EmailAgency], senders: Mapping[str, str] | None = None
    ):
        self.agencies = {address.lower(): agency for address, agency in agencies.items()}
        self.senders = {address.lower(): login for address, login in (senders or {}).items()}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.lower() not in self.agencies:
            return f"550 5.1.1 No mailbox {address} here"
        allowed = self.senders.get(address.lower())
        login = getattr(session.auth_data, "login", None)
        if allowed and login is not None and login.decode(errors="replace") != allowed:
            return (
                f"550 5.7.1 The login {login.decode(errors='replace')} may not write to {address}"
            )
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        answer = "554 5.5.1 No valid recipients"
        for address in envelope.rcpt_tos:
            answer = await self._deliver(self.agencies[address.lower()], raw)
            if not answer.startswith("2"):
                break
        return answer

    async def _deliver(self, agency: EmailAgency, raw: bytes) -> str:
        fault = agency.take_fault()
        if fault is not None:
            if fault.mode == "timeout":
                await asyncio.sleep(fault.delay)
                return "451 4.4.2 Timeout (simulated)"
            if fault.mode == "permanent":
                return "550 5.7.1 Message refused by policy (simulated)"
            return "451 4.3.0 Mailbox temporarily unavailable (simulated)"
        loop = asyncio.get_running_loop()
        # The first reply goes out over SMTP before we answer 250: keep this loop free meanwhile.
        return await loop.run_in_executor(None, agency.receive, raw)


class AgencySmtpHandler(AgencyRouter):
    """aiosmtpd handler of one agency's own mail server."""

    def __init__(self, agency: EmailAgency):
        super().__init__({agency.address: agency})
        self.agency = agency


class MailboxRouter:
    """aiosmtpd handler of the hub's mail exchanger for many agencies: each reply goes into the
    mailbox of the hub's address it is sent to (one IMAP user per agency)."""

    def __init__(self, mailboxes: Mapping[str, MaildirDelivery]):
        self.mailboxes = {address.lower(): box for address, box in mailboxes.items()}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.lower() not in self.mailboxes:
            return f"550 5.1.1 No mailbox {address} at the hub"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        for address in envelope.rcpt_tos:
            self.mailboxes[address.lower()].add(f"Delivered-To: {address}\r\n".encode() + raw)
        return "250 2.0.0 Delivered to the mailbox"


class PasswordAuthenticator:
    """SMTP AUTH against one or more (login, password) pairs; the login is kept in the session
    (`session.auth_data.login`) so the router can check who may write to which agency."""

    def __init__(self, username: str | None = None, password: str | None = None, *, logins=()):
        pairs = [*logins, *([(username, password or "")] if username else [])]
        self.logins = {(u.encode(), p.encode()) for u, p in pairs}

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) in self.logins
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def smtp_sender(host: str, port: int, timeout: float = 10.0) -> Callable[[EmailMessage], None]:
    def send(message: EmailMessage) -> None:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.send_message(message)

    return send


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def smtp_controller(
    handler: Any,
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    logins: Sequence[tuple[str, str]] = (),
) -> Controller:
    """An aiosmtpd server on a real socket in a thread; AUTH (without TLS: loopback) if given,
    against `username`/`password` or any of the (login, password) pairs in `logins`."""
    kwargs: dict[str, Any] = {}
    if username or logins:
        kwargs = {
            "authenticator": PasswordAuthenticator(username, password, logins=logins),
            "auth_required": True,
            "auth_require_tls": False,
        }
    import logging
    import warnings

    # AUTH without TLS is what we want on loopback; aiosmtpd warns about it on every session.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    return Controller(handler, hostname=host, port=port, ready_timeout=10, **kwargs)


# ------------------------------------------------------------------------------------ dovecot


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: Dovecot gets SIGTERM if the simulator that started it dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class DovecotServer:
    """A private Dovecot serving Maildirs over IMAP on loopback, started and stopped by PID.

    Users can be added while it runs (one mailbox per test, one server per test session). As root, mail is owned by
    `nobody` (Dovecot refuses uid 0 for mail); otherwise by the current user.
    """

    def __init__(
        self,
        root: Path,
        port: int,
        host: str = "127.0.0.1",
        more_listeners: Sequence[tuple[str, int]] = (),
    ):
        self.root = root
        self.port = port
        self.host = host
        self.more_listeners = tuple(more_listeners)  # other (host, port) serving the same mail
        self.process: subprocess.Popen | None = None
        if os.geteuid() == 0:
            import pwd

            nobody = pwd.getpwnam("nobody")
            self.owner: tuple[int, int] | None = (nobody.pw_uid, nobody.pw_gid)
            self.user_name = "nobody"
        else:
            import pwd

            self.owner = None
            self.user_name = pwd.getpwuid(os.getuid()).pw_name

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user / "Maildir"

    def add_user(self, user: str, password: str) -> MaildirDelivery:
        """Create a mailbox and its login; returns local delivery into its INBOX.

        One passwd-file per user (`users/%u`): Dovecot re-reads a changed passwd-file at most
        once a second, but reads a file it has not seen yet at once, so a user added while it
        runs can log in straight away.
        """
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", user):
            raise ValueError(f"{user!r}: use letters, digits, '.', '_' or '-' in a mail user name")
        if ":" in password or "\n" in password:
            raise ValueError("a mail password may not contain ':' or a newline")
        self.users_dir.mkdir(parents=True, exist_ok=True)
        self.users_dir.chmod(0o755)
        file = self.users_dir / user
        file.write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        file.chmod(0o644)
        home = self.root / "mail" / user
        home.mkdir(parents=True, exist_ok=True)
        if self.owner:
            os.chown(self.root / "mail", *self.owner)
            os.chown(home, *self.owner)
        return MaildirDelivery(self.maildir(user), self.owner)

    def config(self) -> str:
        r = self.root
        lines = [
            "protocols = imap",
            f"listen = {self.host}",
            f"base_dir = {r}/run",
            f"state_dir = {r}/state",
            f"log_path = {r}/dovecot.log",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_failure_delay = 0",
            f"mail_location = maildir:{r}/mail/%u/Maildir",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN {self.users_dir}/%u",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={self.user_name} gid={os.getgid() if not self.owner else self.owner[1]} "
            f"home={r}/mail/%u",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            f"    address = {self.host}",
            f"    port = {self.port}",
            "  }",
            *(
                line
                for n, (host, port) in enumerate(self.more_listeners, start=2)
                for line in (
                    f"  inet_listener imap{n} {{",
                    f"    address = {host}",
                    f"    port = {port}",
                    "  }",
                )
            ),
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
        ]
        if self.owner:
            lines.insert(0, f"first_valid_uid = {self.owner[0]}")
            lines.append("}")
        else:  # rootless: every Dovecot process runs as the current user, nothing chroots
            import grp

            me, group = self.user_name, grp.getgrgid(os.getgid()).gr_name
            lines[:0] = [
                f"default_internal_user = {me}",
                f"default_login_user = {me}",
                f"default_internal_group = {group}",
                f"first_valid_uid = {os.getuid()}",
            ]
            lines += ["  chroot =", "}", "service anvil {", "  chroot =", "}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20.0) -> DovecotServer:
        binary = dovecot_binary()
        if binary is None:
            raise FileNotFoundError(DOVECOT_MISSING)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # Dovecot's processes run as other users and must traverse it
        (self.root / "mail").mkdir(exist_ok=True)
        if self.owner:
            os.chown(self.root / "mail", *self.owner)
        self.users_dir.mkdir(exist_ok=True)
        self.users_dir.chmod(0o755)
        conf = self.root / "dovecot.conf"
        conf.write_text(self.config())
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "dovecot.stderr", "wb"),  # noqa: SIM115 - lives with it
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        for host, port in ((self.host, self.port), *self.more_listeners):
            if not wait_listening(self.process, host, port, timeout):
                code = self.process.poll()
                self.stop()
                raise RuntimeError(
                    f"Dovecot {'exited with ' + str(code) if code is not None else 'did not listen'}"
                    f" on {host}:{port}: {self.log()}"
                )
        return self

    def log(self) -> str:
        out = []
        for name in ("dovecot.stderr", "dovecot.log"):
            with contextlib.suppress(OSError):
                out.append((self.root / name).read_text(errors="replace")[-1500:])
        return "\n".join(out).strip()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID, then wait for the PID to exit (Dovecot takes 1-3 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def imap_server_kind(wanted: str) -> str:
    """What serves the hub's mailbox: Dovecot if installed, else pymap, else nothing."""
    if wanted != "auto":
        return wanted
    if dovecot_binary():
        return "dovecot"
    return "pymap" if pymap_available() else "none"


def pymap_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pymap") is not None


class PymapServer:
    """The fallback mailbox when Dovecot is not installed: pymap, a pure-Python IMAP server.

    pymap's maildir backend serves the same Maildir layout as Dovecot (and understands
    `.Processed`-style sub-folders, MOVE and flags), so nothing else changes. Only `loket run`
    uses it; the tests use Dovecot. Its users live in `pymap-etc-passwd` and `-shadow`, read at
    every login; passwords are stored PBKDF2-hashed with few rounds (a local demo mailbox).
    """

    def __init__(
        self,
        root: Path,
        port: int,
        host: str = "127.0.0.1",
        more_listeners: Sequence[tuple[str, int]] = (),
    ):
        self.root = root
        self.port = port
        self.host = host
        self.more_listeners = tuple(more_listeners)  # pymap listens once: one process each
        self.owner: tuple[int, int] | None = None
        self.process: subprocess.Popen | None = None
        self.others: list[subprocess.Popen] = []
        self.users: dict[str, str] = {}

    def maildir(self, user: str) -> Path:
        return self.root / user / "Maildir"

    def add_user(self, user: str, password: str) -> MaildirDelivery:
        from pysasl.hashing import BuiltinHash

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", user):
            raise ValueError(f"{user!r}: use letters, digits, '.', '_' or '-' in a mail user name")
        self.root.mkdir(parents=True, exist_ok=True)
        self.users[user] = BuiltinHash(rounds=1000).hash(password)
        (self.root / "pymap-etc-passwd").write_text(
            "".join(f"{u}:::::{u}/Maildir:\n" for u in self.users)
        )
        (self.root / "pymap-etc-shadow").write_text(
            "".join(f"{u}:{h}:::::::\n" for u, h in self.users.items())
        )
        return MaildirDelivery(self.maildir(user))

    def start(self, timeout: float = 20.0) -> PymapServer:
        self.root.mkdir(parents=True, exist_ok=True)
        for n, (host, port) in enumerate(((self.host, self.port), *self.more_listeners)):
            process = self._spawn(host, port, "pymap.log" if n == 0 else f"pymap-{port}.log")
            if n == 0:
                self.process = process
            else:
                self.others.append(process)
            if not wait_listening(process, host, port, timeout):
                self.stop()
                raise RuntimeError(f"pymap did not listen on {host}:{port}: {self.log()}")
        return self

    def _spawn(self, host: str, port: int, log: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pymap.main import main; main()",
                "--host",
                host,
                "--port",
                str(port),
                "--no-tls",
                "maildir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / log, "wb"),
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "pymap.log").read_text(errors="replace")[-1500:]
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        for process in (self.process, *self.others):
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class MailAgencySpec:
    """One simulated email agency, as its mapping file configures the hub's side of it: the
    agency's mailbox and mail server, and the hub's mailbox (address, IMAP user) for its replies.
    `hub_address` "*" takes replies to any address (the single-agency command line)."""

    agency_id: str
    profile: str
    address: str  # the agency's mailbox: the adapter's to_address
    hub_address: str  # the hub's mailbox for it: the adapter's from_address, where replies go
    smtp_host: str
    smtp_port: int
    imap_host: str
    imap_port: int
    imap_user: str
    imap_password: str
    smtp_user: str | None = None
    smtp_password: str | None = None
    step_seconds: float = 5.0
    contract: str | None = None  # the folder holding the agency's email.yaml
    state: str | None = None  # a JSON file keeping the agency's cases across restarts

    @classmethod
    def from_mapping(
        cls, agency_id: str, adapter_config: Mapping[str, Any], spec: Mapping[str, Any], root: Path
    ) -> MailAgencySpec:
        c = adapter_config
        login = str(c["smtp_username"]) if c.get("smtp_username") else None
        contract = spec.get("contract")
        return cls(
            agency_id=agency_id,
            profile=str(spec.get("profile") or agency_id),
            address=str(c["to_address"]),
            hub_address=str(c["from_address"]),
            smtp_host=str(c["smtp_host"]),
            smtp_port=int(c["smtp_port"]),
            imap_host=str(c["imap_host"]),
            imap_port=int(c["imap_port"]),
            imap_user=str(c["imap_username"]),
            imap_password=str(c["imap_password"]),
            smtp_user=login,
            smtp_password=str(c.get("smtp_password") or "") if login else None,
            step_seconds=float(spec.get("step_seconds", 5)),
            contract=str(root / contract) if contract else None,
            state=str(spec["state"]) if spec.get("state") else None,
        )


def group_problems(specs: Sequence[MailAgencySpec]) -> list[str]:
    """Why these agencies cannot share one mail world; each line names the setting to change."""
    out: list[str] = []
    mailboxes: dict[tuple[str, int, str], str] = {}
    users: dict[str, str] = {}
    hub_addresses: dict[str, str] = {}
    for s in specs:
        if s.profile not in profiles():
            out.append(
                f"{s.agency_id}: no email simulator profile {s.profile!r}; set simulator.profile "
                f"to one of {', '.join(sorted(profiles()))} or write "
                f"contracts/agencies/{s.profile}/simulator.yaml"
            )
        key = (s.smtp_host, s.smtp_port, s.address.lower())
        if key in mailboxes:
            out.append(
                f"{s.agency_id} and {mailboxes[key]} both use the mailbox {s.address}: give "
                "each agency its own to_address"
            )
        mailboxes.setdefault(key, s.agency_id)
        if s.imap_user in users:
            out.append(
                f"{s.agency_id} and {users[s.imap_user]} both read the hub's IMAP user "
                f"{s.imap_user!r}, so each would read the other's replies: give each agency its "
                "own imap_username"
            )
        users.setdefault(s.imap_user, s.agency_id)
        if s.hub_address != "*" and s.hub_address.lower() in hub_addresses:
            out.append(
                f"{s.agency_id} and {hub_addresses[s.hub_address.lower()]} both send from "
                f"{s.hub_address}, so their replies cannot be told apart: give each agency its "
                "own from_address"
            )
        hub_addresses.setdefault(s.hub_address.lower(), s.agency_id)
    return out


def _endpoints(specs: Sequence[MailAgencySpec], kind: str) -> dict[tuple[str, int], list[str]]:
    """(host, port) -> the agencies configured there, in order (kind: smtp | imap)."""
    out: dict[tuple[str, int], list[str]] = {}
    for s in specs:
        endpoint = (getattr(s, f"{kind}_host"), getattr(s, f"{kind}_port"))
        out.setdefault(endpoint, []).append(s.agency_id)
    return out


class EmailGroupSimulator:
    """Email agencies in one process (what `main()` and `loket run` start).

    - One agencies' SMTP server per endpoint the mappings name (normally one, 127.0.0.1:8125),
      routing each case mail by its recipient to that agency (its own mailbox, case numbers,
      status codes, flow and SMTP login);
    - one mail exchanger for the hub, delivering each reply into the mailbox of the hub's
      address it is sent to (`mailboxes`: hub address -> Maildir; one IMAP user per agency);
    - the IMAP server over those Maildirs is started by the caller and stopped here.
    """

    def __init__(
        self,
        specs: Sequence[MailAgencySpec],
        *,
        mailboxes: Mapping[str, MaildirDelivery],
        imap_server: DovecotServer | PymapServer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        if not specs:
            raise ValueError("no email agencies to simulate")
        self.specs = list(specs)
        self.imap_server = imap_server
        self.agencies = {
            s.agency_id: EmailAgency(
                profile(s.profile),
                address=s.address,
                send=lambda _m: None,
                step_seconds=s.step_seconds,
                required_fields=read_contract(Path(s.contract) if s.contract else None),
                clock=clock,
            )
            for s in self.specs
        }
        for spec in self.specs:
            if spec.state:
                self.agencies[spec.agency_id].keep_state_in(Path(spec.state))
        catch_all = mailboxes.get("*")
        mx_handler = MailboxHandler(catch_all) if catch_all else MailboxRouter(mailboxes)
        host = self.specs[0].smtp_host
        self.mx = smtp_controller(mx_handler, host, free_port(host))
        self.servers = []
        for (smtp_host, smtp_port), ids in _endpoints(self.specs, "smtp").items():
            here = [s for s in self.specs if s.agency_id in ids]
            router = AgencyRouter(
                {s.address: self.agencies[s.agency_id] for s in here},
                {s.address: s.smtp_user for s in here if s.smtp_user},
            )
            logins = [(s.smtp_user, s.smtp_password or "") for s in here if s.smtp_user]
            self.servers.append(smtp_controller(router, smtp_host, smtp_port, logins=logins))
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True, name="agency-clock")

    def start(self) -> EmailGroupSimulator:
        self.mx.start()
        send = smtp_sender(self.mx.hostname, self.mx.port)
        for agency in self.agencies.values():
            agency.send = send
        for server in reversed(self.servers):  # the first last: once it listens, all is ready
            server.start()
        self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            for agency in self.agencies.values():
                with contextlib.suppress(Exception):
                    agency.advance()

    def stop(self) -> None:
        self._stop.set()
        for controller in (*self.servers, self.mx):
            with contextlib.suppress(Exception):
                controller.stop()
        if self.imap_server is not None:
            self.imap_server.stop()


def read_contract(folder: Path | None) -> tuple[str, ...]:
    """The fields a case mail must carry, from `<contract>/email.yaml` (`required_fields`)."""
    if folder is None:
        return ()
    path = folder / "email.yaml" if folder.is_dir() else folder
    if not path.exists():
        return ()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return tuple(data.get("case_mail", {}).get("required_fields", ()))


def launch_group(agencies: Sequence[Any], root: Path):
    """For `loket run`: every email agency in one process (see EmailGroupSimulator). Agencies
    whose mappings name the same SMTP (IMAP) endpoint share one server there; the hint to move
    a port names every agency's variable for it, as they must move together."""
    from loket_simulators import Launch, command, env_var

    specs = [
        MailAgencySpec.from_mapping(a.agency_id, a.adapter_config, a.spec, root) for a in agencies
    ]
    smtp, imap = _endpoints(specs, "smtp"), _endpoints(specs, "imap")

    def hint(ids: list[str], suffix: str) -> str:
        return ", ".join(env_var(i, suffix) for i in ids)

    [((host, port), first), *more] = smtp.items()
    also = [(h, p, hint(ids, "SMTP_PORT")) for (h, p), ids in more]
    also += [(h, p, hint(ids, "IMAP_PORT")) for (h, p), ids in imap.items()]
    cmd = command("email", "--group", json.dumps([asdict(s) for s in specs]))
    mailboxes = f"{len(specs)} agency mailbox{'es' if len(specs) > 1 else ''}"
    servers = ", ".join(f"smtp://{h}:{p}" for h, p in smtp)
    url = f"{servers} -> {mailboxes}; replies read via {_imap_text(list(imap))}"
    return Launch(
        cmd,
        host,
        port,
        url,
        hint(first, "SMTP_PORT"),
        agencies=tuple(s.agency_id for s in specs),
        also_listens=tuple(also),
    )


def _imap_text(endpoints: list[tuple[str, int]]) -> str:
    server = imap_server_kind("auto")
    if server == "none":
        return "nothing: IMAP is not simulated (see above)"
    users = ", one user per agency" if len(endpoints) > 1 else ""
    return ", ".join(f"imap://{h}:{p}" for h, p in endpoints) + f" ({server}){users}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loket-simulator email",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile",
        help="the agency to play (its id: ombudsman-energy, ...); required without --group",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, help="the agency's SMTP server")
    parser.add_argument("--smtp-user", default=None, help="require this SMTP login")
    parser.add_argument("--smtp-password", default=None)
    parser.add_argument("--agency-address", default="klachten@ombudsman-energy.example")
    parser.add_argument("--imap-port", type=int, help="the hub's mailbox (IMAP)")
    parser.add_argument("--imap-user", default="loket")
    parser.add_argument("--imap-password", default="loket")
    parser.add_argument("--imap-port-variable", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between statuses")
    parser.add_argument("--contract", type=Path, default=None, help="agency contract folder")
    parser.add_argument(
        "--group",
        default=None,
        help="many agencies in one process: a JSON list of MailAgencySpec (what loket run "
        "passes); replaces the single-agency options above",
    )
    parser.add_argument("--mail-root", type=Path, default=None, help="default: a temp folder")
    parser.add_argument(
        "--imap-server",
        choices=["auto", "dovecot", "pymap", "none"],
        default="auto",
        help="what serves the hub's mailbox; auto: Dovecot if installed, else pymap",
    )
    args = parser.parse_args(argv)

    if args.group:
        specs = [MailAgencySpec(**entry) for entry in json.loads(args.group)]
        name = "email agencies " + ", ".join(s.agency_id for s in specs)
    else:
        missing = [
            flag
            for flag, value in (
                ("--profile", args.profile),
                ("--smtp-port", args.smtp_port),
                ("--imap-port", args.imap_port),
            )
            if value is None
        ]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)}")
        specs = [
            MailAgencySpec(
                agency_id=args.profile,
                profile=args.profile,
                address=args.agency_address,
                hub_address="*",
                smtp_host=args.host,
                smtp_port=args.smtp_port,
                imap_host=args.host,
                imap_port=args.imap_port,
                imap_user=args.imap_user,
                imap_password=args.imap_password,
                smtp_user=args.smtp_user,
                smtp_password=args.smtp_password,
                step_seconds=args.step_seconds,
                contract=str(args.contract) if args.contract else None,
            )
        ]
        name = f"email agency '{args.profile}'"
    problems = group_problems(specs)
    if problems:
        for line in problems:
            print(f"email agencies: {line}", file=sys.stderr, flush=True)
        sys.exit(2)

    root = args.mail_root or Path(tempfile.mkdtemp(prefix="loket-mail-"))
    root.chmod(0o755)  # Dovecot's auth and mail processes run as other users: let them in
    kind = imap_server_kind(args.imap_server)
    imap_server: DovecotServer | PymapServer | None = None
    [(imap_host, imap_port), *more] = _endpoints(specs, "imap")
    if kind == "none":
        print(f"{name}: {DOVECOT_MISSING}", file=sys.stderr, flush=True)
        mailboxes = {
            s.hub_address: MaildirDelivery(root / "mail" / s.imap_user / "Maildir") for s in specs
        }
    else:
        server_class = DovecotServer if kind == "dovecot" else PymapServer
        imap_server = server_class(root / kind, imap_port, imap_host, more_listeners=more)
        mailboxes = {
            s.hub_address: imap_server.add_user(s.imap_user, s.imap_password) for s in specs
        }
        try:
            imap_server.start()
        except RuntimeError as exc:
            if args.group:
                from loket_simulators import env_var

                hint = " (set " + ", ".join(env_var(s.agency_id, "IMAP_PORT") for s in specs) + ")"
            else:
                hint = f" (set {args.imap_port_variable})" if args.imap_port_variable else ""
            print(
                f"{name}: {kind} did not start on port {imap_port}{hint}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            if args.mail_root is None:
                shutil.rmtree(root, ignore_errors=True)
            sys.exit(1)

    sim = EmailGroupSimulator(specs, mailboxes=mailboxes, imap_server=imap_server)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        sim.start()
        for s in specs:
            print(
                f"{name if not args.group else 'email agency ' + s.agency_id}: SMTP on "
                f"{s.smtp_host}:{s.smtp_port} for {s.address}; hub's mailbox "
                + (
                    f"over IMAP ({kind}) on {s.imap_host}:{s.imap_port} as {s.imap_user}"
                    if imap_server
                    else "not served"
                )
                + f" ({root})",
                flush=True,
            )
        stopping.wait()
    finally:
        sim.stop()
        if args.mail_root is None:
            shutil.rmtree(root, ignore_errors=True)
