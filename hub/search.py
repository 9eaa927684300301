"""The operator's case search: one box that finds a case by what an operator has at hand.

A reference (typed any way people type them), a consumer's email address, an enterprise number, or
the start of a trader's or consumer's name; optionally narrowed to one agency or one status. Every
branch is an indexed lookup, so it stays fast at a million cases (bench/scale.py measures it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from hub import reference as references
from hub.db import Database
from hub.models import Assignment, Case, Party
from hub.schemas import ENTERPRISE, enterprise_digits


@dataclass(frozen=True)
class Hit:
    reference: str
    kind: str
    domain: str
    status: str
    created_at: datetime
    consumer: str | None
    trader: str | None
    agencies: tuple[str, ...]


def search(
    db: Database, q: str, *, agency: str | None = None, status: str | None = None, limit: int = 50
) -> list[Hit]:
    q = (q or "").strip()
    query = select(Case.id).order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)
    ref = references.normalise(q) if q else None
    if ref:
        query = query.where(Case.reference == ref)
    elif "@" in q:
        query = query.where(Case.id.in_(select(Party.case_id).where(Party.email == q.lower())))
    elif q and ENTERPRISE.match(q):
        query = query.where(
            Case.id.in_(
                select(Party.case_id).where(Party.enterprise_number == enterprise_digits(q))
            )
        )
    elif q:
        prefix = re.sub(r"[%_\\\\]", "", q.lower())
        name = func.lower(Party.name)
        if db.dialect == "postgresql":  # the text_pattern_ops index serves LIKE 'x%'
            match = name.like(prefix + "%")
        else:  # SQLite's LIKE ignores an index on lower(name); a range on it does not
            match = and_(name >= prefix, name < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        query = query.where(Case.id.in_(select(Party.case_id).where(match)))
    if agency:
        query = query.where(
            Case.id.in_(select(Assignment.case_id).where(Assignment.agency_id == agency))
        )
    if status:
        query = query.where(Case.status == status)
    with db.session(read_only=True) as s:
        ids = list(s.scalars(query))
        if not ids:
            return []
        cases = {c.id: c for c in s.scalars(select(Case).where(Case.id.in_(ids)))}
        parties: dict[tuple[int, str], str] = {
            (p.case_id, p.role): p.name
            for p in s.scalars(select(Party).where(Party.case_id.in_(ids)))
        }
        lines: dict[int, list[str]] = {}
        for case_id, agency_id in s.execute(
            select(Assignment.case_id, Assignment.agency_id)
            .where(Assignment.case_id.in_(ids))
            .order_by(Assignment.id)
        ):
            lines.setdefault(case_id, []).append(agency_id)
    return [
        Hit(
            c.reference,
            c.kind,
            c.domain,
            c.status,
            c.created_at,
            parties.get((c.id, "consumer")),
            parties.get((c.id, "trader")),
            tuple(lines.get(c.id, ())),
        )
        for c in (cases[i] for i in ids)
    ]


__all__ = ["Hit", "or_", "search"]
