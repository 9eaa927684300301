"""Back-office accounts: who may sign in, with which role, and which sessions still count.

A session names the account and its `session_version`; signing out or disabling the account
bumps the version, so a copied cookie dies with the sign-out. Signing in costs one password
hash whether the name is unknown, disabled or right, so timing does not tell which names exist.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from hub.db import Database
from hub.models import User

ROLES = ("operator", "agency", "inspector")  # inspector: market signals (admin/signals.py)


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    agency_id: str | None
    session_version: int = 0

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
    return Account(user.id, user.name, user.role, user.agency_id, user.session_version)


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
