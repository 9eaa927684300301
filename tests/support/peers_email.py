"""Real mail servers on loopback for the email adapter's tests, and its conformance-kit peer.

One Dovecot per test session (starting and stopping it takes seconds) serves the hub's mailbox
over IMAP; each test gets its own mailbox user in it, so tests never see each other's mail. Per
test: the agency's SMTP server (aiosmtpd, with AUTH) and the hub's mail exchanger (aiosmtpd, whose
handler writes into that user's Maildir), both on free loopback ports. The fixtures
(`dovecot_server`, `email_world`) reach every test through tests/conftest.py's pytest_plugins.
"""

from __future__ import annotations

import itertools
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from loket_simulators.email_agency import (
    AgencySmtpHandler,
    DovecotServer,
    EmailAgency,
    Faults,
    MailboxHandler,
    MaildirDelivery,
    dovecot_binary,
    profiles,
    read_contract,
    smtp_controller,
    smtp_sender,
)

from adapters.testing import FAULTS, Peer
from adapters.testing.peer import ATTACHMENTS as PEER_ATTACHMENTS
from adapters.testing.peer import MESSAGES as PEER_MESSAGES
from hub.config import ROOT
from tests.support.env import env_prefix, free_port, peer_missing

CONTRACT = ROOT / "contracts" / "agencies" / "ombudsman-energy"
_users = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    if dovecot_binary() is None:
        peer_missing("dovecot not installed: apt-get install dovecot-imapd")
    # Not pytest's tmp_path: Dovecot's processes run as other users and must traverse the path
    # (pytest-of-root is private), and its socket paths must stay short.
    root = Path(tempfile.mkdtemp(prefix="loket-dovecot-"))
    server = DovecotServer(root, free_port()).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class EmailWorld:
    """The mail world of one test: the agency, its SMTP server, the hub's MX and mailbox."""

    dovecot: DovecotServer
    agency: EmailAgency
    mailbox: MaildirDelivery
    mx: Any  # aiosmtpd Controller
    smtp: Any  # aiosmtpd Controller
    imap_user: str
    imap_password: str = "hub-imap-secret"
    smtp_user: str = "hub"
    smtp_password: str = "hub-smtp-secret"
    hub_address: str = "loket@loket.example"

    @property
    def agency_address(self) -> str:
        return self.agency.address

    def adapter_config(self, **overrides: Any) -> dict[str, Any]:
        config = {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp.port,
            "smtp_starttls": False,
            "smtp_username": self.smtp_user,
            "smtp_password": self.smtp_password,
            "from_address": self.hub_address,
            "to_address": self.agency_address,
            "imap_host": "127.0.0.1",
            "imap_port": self.dovecot.port,
            "imap_ssl": False,
            "imap_username": self.imap_user,
            "imap_password": self.imap_password,
            "reference_pattern": r"^[ \t]*Dossier[ \t]*:[ \t]*(?P<reference>OE/\d{4}/\d{5})",
            "smtp_timeout": 10,
            "imap_timeout": 10,
        }
        config.update(overrides)
        return config

    def env(self, agency_id: str) -> dict[str, str]:
        """The variables the agency's mapping file reads (`${LOKET_<ID>_...}`)."""
        p = env_prefix(agency_id)
        return {
            f"{p}_SMTP_HOST": "127.0.0.1",
            f"{p}_SMTP_PORT": str(self.smtp.port),
            f"{p}_SMTP_STARTTLS": "false",
            f"{p}_SMTP_USER": self.smtp_user,
            f"{p}_SMTP_PASSWORD": self.smtp_password,
            f"{p}_FROM": self.hub_address,
            f"{p}_TO": self.agency_address,
            f"{p}_IMAP_HOST": "127.0.0.1",
            f"{p}_IMAP_PORT": str(self.dovecot.port),
            f"{p}_IMAP_SSL": "false",
            f"{p}_IMAP_USER": self.imap_user,
            f"{p}_IMAP_PASSWORD": self.imap_password,
        }

    def send_to_hub(self, message: EmailMessage | bytes) -> None:
        """Mail the hub's mailbox over real SMTP (replies a test crafts itself)."""
        with smtplib.SMTP(self.mx.hostname, self.mx.port, timeout=10) as smtp:
            if isinstance(message, bytes):
                smtp.sendmail(self.agency_address, [self.hub_address], message)
            else:
                smtp.send_message(message)

    def processed(self) -> int:
        """Mail the adapter has moved to the processed folder."""
        folder = self.dovecot.maildir(self.imap_user) / ".Processed"
        return sum(
            1 for sub in ("new", "cur") if (folder / sub).exists() for _ in (folder / sub).iterdir()
        )

    def stop(self) -> None:
        self.smtp.stop()
        self.mx.stop()


@pytest.fixture
def email_world(dovecot_server, clock) -> Iterator[EmailWorld]:
    user = f"hub{next(_users)}"
    mailbox = dovecot_server.add_user(user, EmailWorld.imap_password)
    mx = smtp_controller(MailboxHandler(mailbox), "127.0.0.1", free_port())
    mx.start()
    agency = EmailAgency(
        profiles()["ombudsman-energy"],
        address="klachten@ombudsman-energy.example",
        send=smtp_sender(mx.hostname, mx.port),
        step_seconds=60,
        required_fields=read_contract(CONTRACT),
        clock=clock.now,
    )
    smtp = smtp_controller(
        AgencySmtpHandler(agency),
        "127.0.0.1",
        free_port(),
        username=EmailWorld.smtp_user,
        password=EmailWorld.smtp_password,
    )
    smtp.start()
    world = EmailWorld(dovecot_server, agency, mailbox, mx, smtp, imap_user=user)
    yield world
    world.stop()


def case_payload(case_reference: str) -> dict[str, Any]:
    """A payload with the fields the energy ombudsman's contract requires."""
    return {
        "reference": case_reference,
        "type": "klacht",
        "language": "nl",
        "consumer": {"name": "Test Consument", "email": "test@example.be"},
        "description": "Conformance test case",
    }


class EmailPeer(Peer):
    """The simulated email agency, as the conformance kit sees it."""

    capabilities = frozenset({FAULTS, PEER_MESSAGES, PEER_ATTACHMENTS})

    def __init__(self, world: EmailWorld):
        self.world = world
        self.agency = world.agency

    def case_count(self) -> int:
        return len(self.agency.cases)

    def payload(self, case_reference: str):
        return case_payload(case_reference)

    def advance(self, agency_reference: str) -> str:
        # The email adapter's receipt carries our case reference (the agency's is not known yet).
        case = self.agency.find(agency_reference) or self.agency.cases[agency_reference]
        return self.agency.step_case(case.id)

    def fail_next(self, kind: str) -> None:
        with self.agency.lock:
            self.agency.faults = Faults(mode=kind, remaining=1, delay=4.0)

    def attachments(self, agency_reference: str) -> list[tuple[str, bytes]]:
        case = self.agency.find(agency_reference) or self.agency.cases[agency_reference]
        with self.agency.lock:
            return [(name, data) for name, _, data in case.attachments]

    def messages(self, agency_reference: str) -> list[tuple[str, list[str]]]:
        # The agency files a forwarded reply before its SMTP server answers 250, so what
        # send_message returned from is here already: no waiting.
        case = self.agency.find(agency_reference) or self.agency.cases[agency_reference]
        with self.agency.lock:
            return [(m["text"], [a[0] for a in m["attachments"]]) for m in case.messages]
