"""The evidence log: every exchange with an agency, hash-chained per case.

Each entry's hash covers its content and the previous entry's hash for the same case, so editing
or deleting an entry breaks the chain (`verify`). Chaining per case keeps writers on different
cases from contending for one lock.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import AuditEntry


def digest(
    prev: str | None, at: datetime, actor: str, action: str, agency: str | None, data: Any
) -> str:
    body = json.dumps(
        [prev, at.isoformat(), actor, action, agency, data],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def normalise(data: Any) -> Any:
    """The data as it will read back from a JSON column, so its hash can be checked later."""
    return json.loads(json.dumps(data, default=str)) if data is not None else None


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    case_id: int | None,
    agency_id: str | None = None,
    data: Any = None,
    first: bool = False,
) -> AuditEntry:
    """Append an entry to the case's chain. `first=True` for a case created in this very
    transaction: there is no previous entry to look up."""
    prev = None
    if case_id is not None and not first:
        prev = session.scalar(
            select(AuditEntry.hash)
            .where(AuditEntry.case_id == case_id)
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
    data = normalise(data)
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        case_id=case_id,
        agency_id=agency_id,
        data=data,
        prev_hash=prev,
        hash=digest(prev, at, actor, action, agency_id, data),
    )
    session.add(entry)
    return entry


def verify(session: Session, case_id: int) -> bool:
    """True when the chain of this case's entries is intact."""
    prev = None
    for entry in session.scalars(
        select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(AuditEntry.id)
    ):
        if entry.prev_hash != prev:
            return False
        expected = digest(prev, entry.at, entry.actor, entry.action, entry.agency_id, entry.data)
        if entry.hash != expected:
            return False
        prev = entry.hash
    return True
