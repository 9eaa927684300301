"""An email agency simulator: an agency whose only system is a shared mailbox.

Three real servers play the mail world around the hub:
- the agency's SMTP server (aiosmtpd, with AUTH): receives the hub's case mails, keeps its own case
  numbers (`OE/2026/00042`), de-duplicates on Message-ID, checks the fields its contract requires;
- the hub's mailbox: Dovecot serving a Maildir over IMAP, where the hub reads the agency's replies;
- the hub's mail exchanger (aiosmtpd): the agency's replies arrive over SMTP and its handler writes
  them into that Maildir, as a real MX with local delivery would. (Not Dovecot's LDA/LMTP: a plain
  Maildir write needs no extra Dovecot service, and works the same under the pymap fallback.)

The agency replies to every new case with "Status: ONTVANGEN", then moves it one step every
`step_seconds` (IN_BEHANDELING, AFGESLOTEN), each a reply in the case's language with the case
reference kept in the subject, In-Reply-To set and the agency's own reference in the body.

    python -m adapters.simulators.email_agency --profile energy --smtp-port 8125 --imap-port 8143

For `loket run` the simulator serves the hub's mailbox itself: with Dovecot when it is installed
(`apt-get install dovecot-imapd`), else with pymap, a pure-Python IMAP server over the same Maildir
(a dependency of Loket). Without either, the agency still accepts cases and says plainly at
start-up that its replies cannot be read back. Tests always use Dovecot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

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


PROFILES: dict[str, Profile] = {
    "energy": Profile(
        name="Ombudsman for Energy (simulated)",
        domain="ombudsman-energy.invalid",
        id_format="OE/{year}/{n:05d}",
        flow=(
            (
                "ONTVANGEN",
                {
                    "nl": "Wij hebben uw dossier goed ontvangen.",
                    "fr": "Nous avons bien reçu votre dossier.",
                    "de": "Wir haben Ihre Akte erhalten.",
                },
            ),
            (
                "IN_BEHANDELING",
                {
                    "nl": "Een bemiddelaar behandelt het dossier; de leverancier is gecontacteerd.",
                    "fr": "Un médiateur traite le dossier ; le fournisseur a été contacté.",
                    "de": "Ein Schlichter bearbeitet die Akte; der Versorger wurde kontaktiert.",
                },
            ),
            (
                "AFGESLOTEN",
                {
                    "nl": "Dossier afgesloten: de leverancier crediteert de betwiste factuur.",
                    "fr": "Dossier clôturé : le fournisseur crédite la facture contestée.",
                    "de": "Akte geschlossen: der Versorger schreibt die Rechnung gut.",
                },
            ),
        ),
    ),
}


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
        self.received = 0
        self.replays = 0
        self.rejected = 0
        self.replies_sent = 0
        self.faults = Faults()

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
        found = parse_fields(body)
        missing = [f for f in self.required_fields if not found.get(f)]
        if missing:
            with self.lock:
                self.rejected += 1
            return f"550 5.6.0 The case mail lacks required fields: {', '.join(missing)}"
        subject = str(msg.get("Subject", ""))
        ref = self.REFERENCE.search(subject)
        attachments = [
            (
                part.get_filename() or "attachment",
                part.get_content_type(),
                _payload_bytes(part),
            )
            for part in msg.iter_attachments()
        ]
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
            return f"250 2.0.0 Received as {case.id}"

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
        serial = case.id.replace("/", "-")
        reply["Message-ID"] = f"<{serial}.{step + 1}.{code.lower()}@{self.profile.domain}>"
        reply["In-Reply-To"] = case.message_id
        reply["References"] = case.message_id
        quoted = "\n".join("> " + line for line in case.body.splitlines()[:6])
        reply.set_content(
            f"Status: {code}\nDossier: {case.id}\n\n{note}\n\n"
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
            return len(due)

    def step_case(self, case_id: str) -> str:
        """Move one case to its next status now and mail it (tests, demos)."""
        with self.lock:
            self.advance()
            case = self.cases[case_id]
            if case.step + 1 >= len(self.profile.flow):
                raise ValueError(f"case {case_id} is already at the end of its flow")
            return self._mail_step(case, case.step + 1, self.clock())

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
                "rejected": self.rejected,
                "replies_sent": self.replies_sent,
            }


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


def _payload_bytes(part: Any) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


class AgencySmtpHandler:
    """aiosmtpd handler of the agency's own mail server."""

    def __init__(self, agency: EmailAgency):
        self.agency = agency

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.lower() != self.agency.address.lower():
            return f"550 5.1.1 No mailbox {address} here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        fault = self.agency.take_fault()
        if fault is not None:
            if fault.mode == "timeout":
                await asyncio.sleep(fault.delay)
                return "451 4.4.2 Timeout (simulated)"
            if fault.mode == "permanent":
                return "550 5.7.1 Message refused by policy (simulated)"
            return "451 4.3.0 Mailbox temporarily unavailable (simulated)"
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        # The first reply goes out over SMTP before we answer 250: keep this loop free meanwhile.
        return await loop.run_in_executor(None, self.agency.receive, raw)


class PasswordAuthenticator:
    def __init__(self, username: str, password: str):
        self.username = username.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


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
) -> Controller:
    """An aiosmtpd server on a real socket in a thread; AUTH (without TLS: loopback) if given."""
    kwargs: dict[str, Any] = {}
    if username:
        kwargs = {
            "authenticator": PasswordAuthenticator(username, password or ""),
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

    def __init__(self, root: Path, port: int, host: str = "127.0.0.1"):
        self.root = root
        self.port = port
        self.host = host
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
        if not _wait_listening(self.process, self.host, self.port, timeout):
            code = self.process.poll()
            self.stop()
            raise RuntimeError(
                f"Dovecot {'exited with ' + str(code) if code is not None else 'did not listen'}"
                f" on {self.host}:{self.port}: {self.log()}"
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

    def __init__(self, root: Path, port: int, host: str = "127.0.0.1"):
        self.root = root
        self.port = port
        self.host = host
        self.owner: tuple[int, int] | None = None
        self.process: subprocess.Popen | None = None
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
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pymap.main import main; main()",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--no-tls",
                "maildir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "pymap.log", "wb"),  # noqa: SIM115 - lives with it
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        if not _wait_listening(self.process, self.host, self.port, timeout):
            self.stop()
            raise RuntimeError(f"pymap did not listen on {self.host}:{self.port}: {self.log()}")
        return self

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "pymap.log").read_text(errors="replace")[-1500:]
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_listening(process: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------- the world


class EmailAgencySimulator:
    """Everything one email agency needs, in one process: what `main()` and `loket run` start."""

    def __init__(
        self,
        agency: EmailAgency,
        *,
        host: str,
        smtp_port: int,
        smtp_username: str | None,
        smtp_password: str | None,
        hub_mailbox: MaildirDelivery,
        imap_server: DovecotServer | PymapServer | None,
    ):
        self.agency = agency
        self.imap_server = imap_server
        self.mx = smtp_controller(MailboxHandler(hub_mailbox), host, free_port(host))
        self.smtp = smtp_controller(
            AgencySmtpHandler(agency),
            host,
            smtp_port,
            username=smtp_username,
            password=smtp_password,
        )
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True, name="agency-clock")

    def start(self) -> EmailAgencySimulator:
        self.mx.start()
        self.agency.send = smtp_sender(self.mx.hostname, self.mx.port)
        self.smtp.start()  # last: once it listens, the whole world is ready
        self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(Exception):
                self.agency.advance()

    def stop(self) -> None:
        self._stop.set()
        for controller in (self.smtp, self.mx):
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


def launch(agency_id: str, adapter_config: Mapping[str, Any], spec: Mapping[str, Any], root: Path):
    """For `loket run`: serve this agency on the ports of its configured SMTP and IMAP."""
    from adapters.simulators import Launch, env_var

    c = adapter_config
    host, smtp_port = str(c["smtp_host"]), int(c["smtp_port"])
    imap_port = int(c["imap_port"])
    cmd = [
        sys.executable,
        "-m",
        "adapters.simulators.email_agency",
        "--profile",
        spec["profile"],
        "--host",
        host,
        "--smtp-port",
        str(smtp_port),
        "--agency-address",
        str(c["to_address"]),
        "--imap-port",
        str(imap_port),
        "--imap-user",
        str(c["imap_username"]),
        "--imap-password",
        str(c["imap_password"]),
        "--step-seconds",
        str(spec.get("step_seconds", 5)),
        "--imap-port-variable",
        env_var(agency_id, "IMAP_PORT"),
    ]
    if c.get("smtp_username"):
        cmd += ["--smtp-user", str(c["smtp_username"]), "--smtp-password", str(c["smtp_password"])]
    if spec.get("contract"):
        cmd += ["--contract", str(root / spec["contract"])]
    server = imap_server_kind("auto")
    imap = (
        f"imap://{c['imap_host']}:{imap_port} ({server})"
        if server != "none"
        else "nothing: IMAP is not simulated (see above)"
    )
    url = f"smtp://{host}:{smtp_port} -> {c['to_address']}; replies read via {imap}"
    return Launch(cmd, host, smtp_port, url, env_var(agency_id, "SMTP_PORT"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, required=True, help="the agency's SMTP server")
    parser.add_argument("--smtp-user", default=None, help="require this SMTP login")
    parser.add_argument("--smtp-password", default=None)
    parser.add_argument("--agency-address", default="klachten@ombudsman-energy.example")
    parser.add_argument("--imap-port", type=int, required=True, help="the hub's mailbox (IMAP)")
    parser.add_argument("--imap-user", default="loket")
    parser.add_argument("--imap-password", default="loket")
    parser.add_argument("--imap-port-variable", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between statuses")
    parser.add_argument("--contract", type=Path, default=None, help="agency contract folder")
    parser.add_argument("--mail-root", type=Path, default=None, help="default: a temp folder")
    parser.add_argument(
        "--imap-server",
        choices=["auto", "dovecot", "pymap", "none"],
        default="auto",
        help="what serves the hub's mailbox; auto: Dovecot if installed, else pymap",
    )
    args = parser.parse_args(argv)

    root = args.mail_root or Path(tempfile.mkdtemp(prefix="loket-mail-"))
    root.chmod(0o755)  # Dovecot's auth and mail processes run as other users: let them in
    kind = imap_server_kind(args.imap_server)
    imap_server: DovecotServer | PymapServer | None = None
    if kind == "none":
        print(f"email agency '{args.profile}': {DOVECOT_MISSING}", file=sys.stderr, flush=True)
        hub_mailbox = MaildirDelivery(root / "mail" / args.imap_user / "Maildir")
    else:
        server_class = DovecotServer if kind == "dovecot" else PymapServer
        imap_server = server_class(root / kind, args.imap_port, args.host)
        hub_mailbox = imap_server.add_user(args.imap_user, args.imap_password)
        try:
            imap_server.start()
        except RuntimeError as exc:
            hint = f" (set {args.imap_port_variable})" if args.imap_port_variable else ""
            print(
                f"email agency: {kind} did not start on port {args.imap_port}{hint}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            if args.mail_root is None:
                shutil.rmtree(root, ignore_errors=True)
            sys.exit(1)

    agency = EmailAgency(
        PROFILES[args.profile],
        address=args.agency_address,
        send=lambda _m: None,
        step_seconds=args.step_seconds,
        required_fields=read_contract(args.contract),
    )
    sim = EmailAgencySimulator(
        agency,
        host=args.host,
        smtp_port=args.smtp_port,
        smtp_username=args.smtp_user,
        smtp_password=args.smtp_password,
        hub_mailbox=hub_mailbox,
        imap_server=imap_server,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        sim.start()
        print(
            f"email agency '{args.profile}': SMTP on {args.host}:{args.smtp_port} for "
            f"{args.agency_address}; hub's mailbox "
            + (
                f"over IMAP ({kind}) on {args.host}:{args.imap_port}"
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


if __name__ == "__main__":
    main()
