"""Back-office accounts: who may sign in, with which role, and which sessions still count.

A session names the account and its `session_version`; signing out or disabling the account
bumps the version, so a copied cookie dies with the sign-out. Signing in costs one password
hash whether the name is unknown, disabled or right, so timing does not tell which names exist.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import pyotp
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from hub.db import Database
from hub.models import PasswordReset, User

ROLES = ("operator", "agency", "inspector")  # inspector: market signals (admin/signals.py)
RESET_VALID = timedelta(minutes=30)
MAX_OPEN_RESETS = 3  # unused, unexpired links per account at once
TOTP_ISSUER = "Loket back office"


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    agency_id: str | None
    session_version: int = 0
    totp: bool = False  # signs in with a second factor
    language: str | None = None  # the back office's language the account chose

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


def add(
    db: Database,
    name: str,
    role: str,
    agency_id: str | None,
    now: datetime,
    password: str | None = None,
) -> str:
    """Create an account; returns its password (generated unless given), shown once."""
    with db.session() as s:
        return create(s, name, role, agency_id, now, password)


def create(
    s: Session,
    name: str,
    role: str,
    agency_id: str | None,
    now: datetime,
    password: str | None = None,
) -> str:
    """`add` in the caller's transaction (hub.operations writes the evidence in the same one)."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use operator, agency or inspector")
    if role == "agency" and not agency_id:
        raise AccountError("an agency account needs --agency AGENCY_ID")
    if role in ("operator", "inspector") and agency_id:
        raise AccountError(f"an {role} account serves no single agency; leave out --agency")
    password = password or secrets.token_urlsafe(12)
    if s.scalar(select(User.id).where(User.name == name)):
        raise AccountError(f"an account named {name!r} exists already")
    s.add(
        User(
            name=name,
            password_hash=generate_password_hash(password),
            role=role,
            agency_id=agency_id,
            disabled=False,
            created_at=now,
        )
    )
    return password


@cache
def _stand_in_hash() -> str:
    """A hash made like every stored one, checked when there is no account to check against."""
    return generate_password_hash(secrets.token_urlsafe(16))


def _account(user: User) -> Account:
    return Account(
        user.id,
        user.name,
        user.role,
        user.agency_id,
        user.session_version,
        totp=bool(user.totp_secret),
        language=user.language,
    )


def authenticate(db: Database, name: str, password: str) -> Account | None:
    with db.session(read_only=True) as s:
        user = s.scalars(select(User).where(User.name == name)).first()
    # Exactly one hash check for an unknown, a disabled and an existing name alike.
    matches = check_password_hash(user.password_hash if user else _stand_in_hash(), password)
    if user is None or user.disabled or not matches:
        return None
    return _account(user)


def get(db: Database, user_id: int, session_version: int | None) -> Account | None:
    """The account of a session, or None when it was removed or disabled or the session ended
    (signed out, or from before the version this session carries)."""
    with db.session(read_only=True) as s:
        user = s.get(User, user_id)
    if user is None or user.disabled or user.session_version != session_version:
        return None
    return _account(user)


def end_sessions(s: Session, user_id: int) -> None:
    """Every session of the account ends at its next request (in the caller's transaction)."""
    user = s.get(User, user_id)
    if user is not None:
        user.session_version += 1


def ensure_demo(db: Database, name: str, role: str, agency_id: str | None, now: datetime) -> str:
    """For `loket run`: the account exists with a fresh password, which is returned to print."""
    password = secrets.token_urlsafe(9)
    with db.session() as s:
        user = s.scalars(select(User).where(User.name == name)).first()
        if user is not None:
            user.password_hash = generate_password_hash(password)
            user.disabled = False
            return password
    return add(db, name, role, agency_id, now, password)


def disable(db: Database, name: str) -> None:
    with db.session() as s:
        deactivate(s, name)


def deactivate(s: Session, name: str) -> None:
    """`disable` in the caller's transaction: the account can no longer sign in."""
    user = s.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise AccountError(f"no account named {name!r}")
    user.disabled = True
    user.session_version += 1


def all_accounts(db: Database) -> list[tuple[str, str, str | None, bool]]:
    with db.session(read_only=True) as s:
        return [
            (u.name, u.role, u.agency_id, u.disabled)
            for u in s.scalars(select(User).order_by(User.name))
        ]


# ------------------------------------------------------------------------- password reset


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ResetLink:
    user_id: int
    name: str
    email: str
    token: str  # shown (mailed) once; only its hash is stored
    language: str | None


def start_reset(s: Session, name: str, now: datetime) -> ResetLink | None:
    """A one-time reset token for the account `name`, or None when there is no enabled account
    of that name with a mail address (the caller answers the same either way)."""
    user = s.scalars(select(User).where(User.name == name)).first()
    if user is None or user.disabled or not user.email:
        return None
    open_links = s.scalar(
        select(func.count(PasswordReset.id)).where(
            PasswordReset.user_id == user.id,
            PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > now,
        )
    )
    if open_links >= MAX_OPEN_RESETS:
        return None  # a mailbox is not flooded: the links already sent still work
    token = secrets.token_urlsafe(32)
    s.add(
        PasswordReset(
            user_id=user.id,
            token_hash=_token_hash(token),
            created_at=now,
            expires_at=now + RESET_VALID,
        )
    )
    return ResetLink(user.id, user.name, user.email, token, user.language)


def reset_is_valid(s: Session, token: str, now: datetime) -> bool:
    row = s.scalars(
        select(PasswordReset).where(PasswordReset.token_hash == _token_hash(token or ""))
    ).first()
    return row is not None and row.used_at is None and row.expires_at > now


def finish_reset(s: Session, token: str, password: str, now: datetime) -> User | None:
    """Set the new password if the token is known, unused and not expired; the token and
    every other open one of the account are spent, and its sessions end. None: refused."""
    row = s.scalars(
        select(PasswordReset).where(PasswordReset.token_hash == _token_hash(token or ""))
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    check_password(password)
    for other in s.scalars(
        select(PasswordReset).where(
            PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None)
        )
    ):
        other.used_at = now
    user.password_hash = generate_password_hash(password)
    user.session_version += 1
    return user


def check_password(password: str) -> None:
    if len(password or "") < 10:
        raise AccountError("choose a password of at least 10 characters")


# ------------------------------------------------------------------------------------ TOTP


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, name: str) -> str:
    """The otpauth:// URI an authenticator app reads (shown once, as text and QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=TOTP_ISSUER)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (30 s) whose code `code` is, within one step either side of `now`."""
    code = "".join((code or "").split())
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def enrol_totp(s: Session, user_id: int, secret: str, code: str, now: datetime) -> bool:
    """Switch the second factor on once a code from the new secret checks out."""
    user = s.get(User, user_id)
    step = _matching_step(secret, code, now) if user is not None else None
    if user is None or step is None:
        return False
    user.totp_secret, user.totp_last_step = secret, step
    return True


def check_totp(s: Session, user_id: int, code: str, now: datetime) -> bool:
    """A sign-in code: right within one step, and never a step already used (a replayed code,
    even a second later, is refused)."""
    user = s.get(User, user_id)
    if user is None or not user.totp_secret:
        return False
    step = _matching_step(user.totp_secret, code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def drop_totp(s: Session, user_id: int) -> None:
    user = s.get(User, user_id)
    if user is not None:
        user.totp_secret, user.totp_last_step = None, None


def set_language(s: Session, user_id: int, language: str) -> None:
    user = s.get(User, user_id)
    if user is not None:
        user.language = language


def set_email(s: Session, name: str, email: str | None) -> None:
    user = s.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise AccountError(f"no account named {name!r}")
    user.email = email or None
