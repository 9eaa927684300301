"""Back-office accounts: who may sign in, with which role."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from hub.db import Database
from hub.models import User

ROLES = ("operator", "agency")


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    agency_id: str | None

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
        raise AccountError(f"unknown role {role!r}; use operator or agency")
    if role == "agency" and not agency_id:
        raise AccountError("an agency account needs --agency AGENCY_ID")
    if role == "operator" and agency_id:
        raise AccountError("an operator account serves every agency; leave out --agency")
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


def authenticate(db: Database, name: str, password: str) -> Account | None:
    with db.session(read_only=True) as s:
        user = s.scalars(select(User).where(User.name == name)).first()
    if user is None:
        check_password_hash(generate_password_hash("x"), password)  # same work either way
        return None
    if user.disabled or not check_password_hash(user.password_hash, password):
        return None
    return Account(user.id, user.name, user.role, user.agency_id)


def get(db: Database, user_id: int) -> Account | None:
    with db.session(read_only=True) as s:
        user = s.get(User, user_id)
    if user is None or user.disabled:
        return None
    return Account(user.id, user.name, user.role, user.agency_id)


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


def all_accounts(db: Database) -> list[tuple[str, str, str | None, bool]]:
    with db.session(read_only=True) as s:
        return [
            (u.name, u.role, u.agency_id, u.disabled)
            for u in s.scalars(select(User).order_by(User.name))
        ]
