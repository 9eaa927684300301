"""The canonical case document: what the mapping engine reads to render an agency's payload.

Plain data (str, int, bool, dicts), so it can cross into `mappings` and be stored as evidence.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hub.models import Assignment, Case, Party


def _address(p: Party) -> dict[str, Any]:
    return {"street": p.street, "postcode": p.postcode, "city": p.city, "country": p.country}


def history_text(case: Case) -> str:
    """What happened before, for an agency that receives a referred case: one line per agency
    that had it and per message it left. Empty for a case's first agency."""
    if len(case.assignments) < 2:
        return ""
    by_id = {a.id: a for a in case.assignments}
    lines = []
    for e in case.events:
        a = by_id.get(e.assignment_id) if e.assignment_id else None
        relevant = e.actor in ("agency", "operator") or e.to_status in ("not_competent", "referred")
        if a is None or not relevant:
            continue
        what = e.agency_status or e.to_status or ""
        lines.append(f"{e.occurred_at:%Y-%m-%d} {a.agency_id} [{what}] {e.message or ''}".strip())
    return "\n".join(lines)


def document_from_rows(case: Any, parties: dict[str, Any], line: Any) -> dict[str, Any]:
    """The same document from plain rows (the worker's claim reads them with Core). For a case
    with one line: its history is empty."""
    return _document(case, parties.get("consumer"), parties.get("trader"), line, "")


def _incident(case: Any) -> str | None:
    """ISO 8601 at the precision the consumer gave: 2026-10-15, or the reduced form 2026-10
    for "October 2026" (the `date()` transform of mappings/engine.py renders it as a month)."""
    if not case.incident_date:
        return None
    iso = case.incident_date.isoformat()
    return iso[:7] if case.incident_date_precision == "month" else iso


def case_document(case: Case, assignment: Assignment | None = None) -> dict[str, Any]:
    return _document(
        case, case.party("consumer"), case.party("trader"), assignment, history_text(case)
    )


def _document(
    case: Any, consumer: Any, trader: Any, assignment: Any, history: str
) -> dict[str, Any]:
    area, _, subarea = case.domain.partition(".")
    doc: dict[str, Any] = {
        "case": {
            "reference": case.reference,
            "kind": case.kind,
            "domain": case.domain,
            "area": area,
            "subarea": subarea,
            "language": case.language,
            "description": case.description,
            "incident_date": _incident(case),
            "incident_date_precision": (case.incident_date_precision or "day")
            if case.incident_date
            else None,
            "amount": str(Decimal(case.amount_cents) / 100)
            if case.amount_cents is not None
            else None,
            "currency": case.currency,
            "created_at": case.created_at.isoformat(),
            "anonymous_to_trader": case.anonymous_to_trader,
            "history": history,
        },
        "consumer": None,
        "trader": None,
    }
    if consumer:
        doc["consumer"] = {
            "name": consumer.name,
            "email": consumer.email,
            "phone": consumer.phone,
            "address": _address(consumer),
        }
    if trader:
        doc["trader"] = {
            "name": trader.name,
            "enterprise_number": trader.enterprise_number,
            "website": trader.website,
            "address": _address(trader),
        }
    if assignment is not None:
        doc["assignment"] = {
            "reason": assignment.reason,
            "acknowledge_due": assignment.acknowledge_due_at.isoformat()
            if assignment.acknowledge_due_at
            else None,
            "answer_due": assignment.answer_due_at.isoformat()
            if assignment.answer_due_at
            else None,
        }
        doc["agency"] = {"id": assignment.agency_id}
    return doc
