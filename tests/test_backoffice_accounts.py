"""Agency staff accounts: a password reset by a one-time link mailed over SMTP (hashed, 30
minutes, once; the same answer whether the account exists), an optional TOTP second factor
(one step either side, a code never twice), and every back-office action in the evidence log."""

from __future__ import annotations

import dataclasses
import email
import hashlib
import re
import socket
import threading

import pyotp
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select

from hub import accounts, operations
from hub.frontdesk import limiter
from hub.models import AuditEntry, PasswordReset
from loket.cli import main as cli
from tests.support.backoffice import PASSWORD, post, sign_in, token_of
from tests.support.cases import TELECOM


class Inbox:
    """A real SMTP server on loopback that keeps what it is given."""

    def __init__(self):
        self.messages: list[email.message.Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox(hub):
    box = Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd checks it is up by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    mail = dataclasses.replace(hub.settings.mail, host="127.0.0.1", port=controller.port)
    object.__setattr__(hub, "settings", dataclasses.replace(hub.settings, mail=mail))
    yield box
    controller.stop()


@pytest.fixture
def staff(hub):
    operations.add_user(
        hub,
        "tom",
        "agency",
        operator="olga",
        agency_id=TELECOM,
        password=PASSWORD,
        email="tom@ombudsman.example.be",
    )
    return "tom"


def actions(hub) -> list[tuple[str, str]]:
    with hub.db.session(read_only=True) as s:
        return [(e.actor, e.action) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def ask_reset(client, name: str):
    return client.post(
        "/admin/forgot", data={"csrf_token": token_of(client, "/admin/forgot"), "name": name}
    )


def link_in(message) -> str:
    body = message.get_payload(decode=True).decode()
    return re.search(r"http://\S+/admin/reset/(\S+)", body).group(1)


def test_a_reset_link_is_mailed_works_once_and_the_answer_is_the_same_for_any_name(
    hub, client, inbox, staff
):
    known = ask_reset(client, "tom")
    unknown = ask_reset(client, "nobody")
    assert known.status_code == unknown.status_code == 200
    assert _without_token(known) == _without_token(unknown)
    [message] = inbox.messages
    assert message["To"] == "tom@ombudsman.example.be"
    token = link_in(message)
    with hub.db.session(read_only=True) as s:  # only the hash is kept
        [row] = s.scalars(select(PasswordReset)).all()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    page = f"/admin/reset/{token}"
    assert client.get(page).status_code == 200
    differ = client.post(
        page, data={"csrf_token": token_of(client, page), "password": "a" * 12, "again": "b" * 12}
    )
    assert differ.status_code == 400
    new = "a brand new passphrase"
    done = client.post(
        page, data={"csrf_token": token_of(client, page), "password": new, "again": new}
    )
    assert done.status_code == 302
    assert accounts.authenticate(hub.db, "tom", new) is not None
    assert accounts.authenticate(hub.db, "tom", PASSWORD) is None
    assert client.get(page).status_code == 410  # used: once only
    assert ("user:tom", "user.password_reset") in actions(hub)
    assert ("user:nobody", "user.reset_requested") in actions(hub)


def _without_token(answer) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", answer.get_data(as_text=True))


def test_a_reset_link_expires_after_30_minutes(hub, client, clock, inbox, staff):
    assert operations.request_password_reset(hub, "tom", by="olga")  # the operator triggers it
    token = link_in(inbox.messages[0])
    clock.advance(minutes=31)
    assert client.get(f"/admin/reset/{token}").status_code == 410
    with pytest.raises(operations.Refused):
        operations.reset_password(hub, token, "another passphrase")
    assert ("operator:olga", "user.reset_requested") in actions(hub)


def test_a_reset_ends_the_accounts_sessions(hub, client, inbox, staff):
    sign_in(client, "tom")
    assert client.get("/admin/security").status_code == 200
    operations.request_password_reset(hub, "tom")
    operations.reset_password(hub, link_in(inbox.messages[0]), "a brand new passphrase")
    assert client.get("/admin/security").status_code == 302


def enrol(client, clock) -> str:
    page = client.get("/admin/security").get_data(as_text=True)
    secret = re.search(r'id="secret" value="([A-Z2-7]+)"', page).group(1)
    assert f"secret={secret}" in page  # the otpauth:// URI, shown once
    code = pyotp.TOTP(secret).at(clock.now())
    post(client, "/admin/security", {"action": "enable", "code": code}, "/admin/security")
    return secret


def sign_in_with(client, name: str, code: str = ""):
    return client.post(
        "/admin/login",
        data={
            "csrf_token": token_of(client, "/admin/login"),
            "name": name,
            "password": PASSWORD,
            "code": code,
        },
    )


def test_a_second_factor_is_asked_once_enrolled_and_a_code_is_good_only_once(
    hub, client, clock, staff
):
    sign_in(client, "tom")
    secret = enrol(client, clock)
    assert "sign-in asks for a code" in client.get("/admin/security").get_data(as_text=True)
    post(client, "/admin/logout", {}, "/admin/security")
    totp = pyotp.TOTP(secret)
    missing = sign_in_with(client, "tom")
    assert missing.status_code == 401 and "authenticator app" in missing.get_data(as_text=True)
    clock.advance(seconds=30)
    assert sign_in_with(client, "tom", totp.at(clock.now())).status_code == 302
    post(client, "/admin/logout", {}, "/admin/security")
    # the very same code again, a moment later: a replay, refused
    clock.advance(seconds=5)
    assert sign_in_with(client, "tom", totp.at(clock.now() - _s(5))).status_code == 401
    # two steps late is refused though never used, one step late is accepted (valid window 1)
    clock.advance(seconds=90)
    assert sign_in_with(client, "tom", totp.at(clock.now() - _s(60))).status_code == 401
    assert sign_in_with(client, "tom", totp.at(clock.now() - _s(30))).status_code == 302
    events = actions(hub)
    assert ("agency:tom", "user.totp_enabled") in events
    assert events.count(("user:tom", "user.sign_in_refused")) == 3
    assert ("user:tom", "user.signed_out") in events


def _s(seconds: int):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def test_switching_the_second_factor_off_needs_a_current_code(hub, client, clock, staff):
    sign_in(client, "tom")
    secret = enrol(client, clock)
    clock.advance(seconds=30)
    post(client, "/admin/security", {"action": "disable", "code": "000000"}, "/admin/security")
    assert accounts.get(hub.db, *_version(hub, "tom")).totp
    code = pyotp.TOTP(secret).at(clock.now())
    post(client, "/admin/security", {"action": "disable", "code": code}, "/admin/security")
    assert not accounts.get(hub.db, *_version(hub, "tom")).totp
    assert ("agency:tom", "user.totp_disabled") in actions(hub)


def _version(hub, name):
    from hub.models import User

    with hub.db.session(read_only=True) as s:
        user = s.scalars(select(User).where(User.name == name)).one()
        return user.id, user.session_version


def test_console_actions_and_sign_ins_are_in_the_evidence_log(hub, client):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    wrong = client.post(
        "/admin/login",
        data={"csrf_token": token_of(client, "/admin/login"), "name": "olga", "password": "guess"},
    )
    assert wrong.status_code == 401
    sign_in(client, "olga")
    post(client, f"/admin/agencies/{TELECOM}/check", {})
    post(client, f"/admin/agencies/{TELECOM}/pause", {"reason": "maintenance"})
    post(client, f"/admin/agencies/{TELECOM}/resume", {})
    post(client, "/admin/logout", {})
    assert actions(hub)[-6:] == [
        ("user:olga", "user.sign_in_refused"),
        ("user:olga", "user.signed_in"),
        ("operator:olga", "agency.checked"),
        ("operator:olga", "agency.paused"),
        ("operator:olga", "agency.resumed"),
        ("user:olga", "user.signed_out"),
    ]
    with hub.db.session(read_only=True) as s:
        refused = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "user.sign_in_refused")
        ).one()
        assert refused.data["reason"] == "wrong name or password"
        assert "guess" not in str(refused.data)


def test_reset_requests_flood_neither_a_mailbox_nor_the_relay(hub, client, inbox, staff):
    for _ in range(5):
        operations.request_password_reset(hub, "tom")
    assert len(inbox.messages) == accounts.MAX_OPEN_RESETS  # the links already sent still work
    client.application.config["LOKET_SIGNIN_LIMIT"] = "2 per hour"
    codes = [ask_reset(client, "nobody").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limiter.reset()  # the counters live in this process; leave none for the next test


def test_an_operator_mails_a_reset_link_from_the_console_or_the_cli(
    hub, client, inbox, staff, monkeypatch
):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    page = client.get("/admin/users").get_data(as_text=True)
    assert "tom" in page and "/admin/users/tom/reset" in page
    assert "/admin/users/olga/reset" not in page  # no mail address: nothing to send to
    post(client, "/admin/users/tom/reset", {}, "/admin/users")
    assert "A reset link was mailed to tom" in client.get("/admin/users").get_data(as_text=True)
    assert len(inbox.messages) == 1
    assert ("operator:olga", "user.reset_requested") in actions(hub)
    # the CLI, the other door to the same command
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    monkeypatch.setenv("LOKET_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LOKET_SMTP_PORT", str(hub.settings.mail.port))
    done = CliRunner().invoke(cli, ["users", "reset", "tom", "--operator", "olga"])
    assert done.exit_code == 0, done.output
    assert len(inbox.messages) == 2
    refused = CliRunner().invoke(cli, ["users", "reset", "olga"])
    assert refused.exit_code == 1 and "no link mailed" in refused.output


def test_agency_staff_cannot_see_accounts_or_send_links(hub, client, staff):
    sign_in(client, "tom")
    assert client.get("/admin/users").status_code == 403
    assert post(client, "/admin/users/tom/reset", {}, "/admin/security").status_code == 403
