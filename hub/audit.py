"""The evidence log: every exchange with an agency, hash-chained per case.

Each entry's hash covers its content and the previous entry's hash for the same case, so editing
or deleting an entry breaks the chain (`verify`). Chaining per case keeps writers on different
cases from contending for one lock. The one global order, the signed checkpoints over it and the
whole-log check are hub/evidence.py's.

The hash covers the SHA-256 of the entry's `data` (kept beside it in `data_sha256`), not the data
itself: erasing a case's personal data (hub/gdpr.py) empties `data` and keeps the digest, so the
chain and the signed checkpoints still verify, and data put back can still be proved. Entries
written before that (no `data_sha256`) hashed their data directly and still verify as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, event, func, insert, select
from sqlalchemy.orm import Session

from hub import bulk
from hub.models import AuditEntry, Case

_DEFERRED = "loket.audit.deferred"
_NULL_DIGEST = hashlib.sha256(b"null").hexdigest()


def digest(
    prev: str | None, at: datetime, actor: str, action: str, agency: str | None, data: Any
) -> str:
    """An entry's hash, from its data (what a writer has at hand)."""
    return digest_of(prev, at, actor, action, agency, data_digest(data))


def digest_of(
    prev: str | None, at: datetime, actor: str, action: str, agency: str | None, data_sha256: str
) -> str:
    """An entry's hash, from the digest of its data: what still verifies once data is erased."""
    body = json.dumps(
        [prev, at.isoformat(), actor, action, agency, {"data_sha256": data_sha256}],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def legacy_digest(
    prev: str | None, at: datetime, actor: str, action: str, agency: str | None, data: Any
) -> str:
    """The hash of entries written before data digests (migration 0014): over the data itself."""
    body = json.dumps(
        [prev, at.isoformat(), actor, action, agency, data],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def data_digest(data: Any) -> str:
    """SHA-256 of an entry's data as canonical JSON (None included: `null`)."""
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def is_erased(data: Any, data_sha256: str | None) -> bool:
    """An entry whose data was erased: its digest is kept, its data is gone."""
    return data is None and data_sha256 is not None and data_sha256 != _NULL_DIGEST


def intact(
    entry_hash: str,
    prev: str | None,
    at: datetime,
    actor: str,
    action: str,
    agency: str | None,
    data: Any,
    data_sha256: str | None,
) -> bool:
    """Whether an entry's content matches its hash: its data matches the digest kept beside it
    (unless erased), and the hash covers that digest; or, for an entry older than digests, the
    hash covers its data."""
    if data_sha256 is not None:
        if not is_erased(data, data_sha256) and data_digest(data) != data_sha256:
            return False
        return digest_of(prev, at, actor, action, agency, data_sha256) == entry_hash
    if digest(prev, at, actor, action, agency, data) == entry_hash:
        return True
    return legacy_digest(prev, at, actor, action, agency, data) == entry_hash


def payload_digest(payload: Any) -> str | None:
    """SHA-256 of a payload as canonical JSON (sorted keys, no spaces, UTF-8): what the
    evidence log keeps of the bytes sent, so the payload stored with a delivery can be proved."""
    if payload is None:
        return None
    body = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def normalise(data: Any) -> Any:
    """The data as it will read back from a JSON column, so its hash can be checked later."""
    return json.loads(json.dumps(data, default=str)) if data is not None else None


def entry_row(
    prev: str | None,
    *,
    at: datetime,
    actor: str,
    action: str,
    agency_id: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """The column values of one entry chained after `prev` (the case's head, None for the
    first), but its case_id, which the caller attaches. The one place an entry's hash is
    computed: `record` and the bulk writers use it."""
    data = normalise(data)
    data_sha256 = data_digest(data)
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "agency_id": agency_id,
        "data": data,
        "data_sha256": data_sha256,
        "prev_hash": prev,
        "hash": digest_of(prev, at, actor, action, agency_id, data_sha256),
    }


def heads(conn: Connection, case_ids: Iterable[int]) -> dict[int, str]:
    """The newest entry's hash of each case that has one, in one query."""
    t = AuditEntry.__table__
    return dict(
        conn.execute(
            select(t.c.case_id, t.c.hash).where(
                t.c.id.in_(
                    select(func.max(t.c.id))
                    .where(bulk.any_of(t.c.case_id, case_ids, conn.dialect.name))
                    .group_by(t.c.case_id)
                )
            )
        ).all()
    )


def chained_rows(conn: Connection, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for many new entries, in order, each chained after its case's current head (looked
    up in one query) or after the entry before it in `entries`; for one multi-row INSERT.

    Each entry names `at`, `actor`, `action`, `case_id` and optionally `agency_id` and `data`.
    The caller holds the cases' lines locked, as `record` callers do.
    """
    case_ids = {e["case_id"] for e in entries if e["case_id"] is not None}
    head = heads(conn, case_ids) if case_ids else {}
    rows = []
    for e in entries:
        case_id = e["case_id"]
        row = {"case_id": case_id, **entry_row(head.get(case_id), **_without(e, "case_id"))}
        if case_id is not None:
            head[case_id] = row["hash"]
        rows.append(row)
    return rows


def _without(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


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
    entry = AuditEntry(
        case_id=case_id,
        **entry_row(prev, at=at, actor=actor, action=action, agency_id=agency_id, data=data),
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
        if not intact(
            entry.hash,
            prev,
            entry.at,
            entry.actor,
            entry.action,
            entry.agency_id,
            entry.data,
            entry.data_sha256,
        ):
            return False
        prev = entry.hash
    return True


def defer(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    case_id: int | None,
    agency_id: str | None = None,
    data: Any = None,
) -> None:
    """`record`, written when the transaction commits: all the entries deferred in it go in one
    multi-row INSERT (`chained_rows`), so a poll of thousands of updates costs one statement.
    Rolled back with the transaction like any other row."""
    entry = {"at": at, "actor": actor, "action": action, "case_id": case_id}
    session.info.setdefault(_DEFERRED, []).append({**entry, "agency_id": agency_id, "data": data})


@event.listens_for(Session, "before_commit")
def write_deferred(session: Session) -> None:
    """Write the entries deferred so far (at commit, or earlier when an entry written now must
    come after them)."""
    entries = session.info.pop(_DEFERRED, None)
    if not entries:
        return
    session.flush()
    conn = session.connection()
    case_ids = sorted({e["case_id"] for e in entries if e["case_id"] is not None})
    if case_ids and conn.dialect.name == "postgresql":
        # Writers of one case queue here so its chain never forks (SQLite has one writer).
        c = Case.__table__
        conn.execute(
            select(c.c.id)
            .where(bulk.any_of(c.c.id, case_ids, conn.dialect.name))
            .order_by(c.c.id)
            .with_for_update()
        )
    conn.execute(insert(AuditEntry.__table__), chained_rows(conn, entries))


@event.listens_for(Session, "after_rollback")
def _drop_deferred(session: Session) -> None:
    session.info.pop(_DEFERRED, None)
