"""Shared test helpers: cases."""

from __future__ import annotations

import requests
from sqlalchemy import select

from hub import intake
from hub.models import (
    Assignment,
    Case,
    Delivery,
    StatusEvent,
)
from hub.schemas import CaseInSchema

TELECOM = "ombudsman-telecom"
MEDIATION = "consumer-mediation"
INSPECTION = "economic-inspection"

MEDIATION_CASE = {"domain": "ecommerce.non_delivery", "kind": "mediation"}


def fault(sims, agency_id, **spec):
    url = sims.servers[agency_id].url.replace("/api", "/_sim/faults")
    requests.post(url, json=spec, timeout=5).raise_for_status()


def file(hub, **changes):
    data = CaseInSchema().load({**CASE, **changes})
    return intake.file_case(
        hub.db, data, router=hub.router, directory=hub.directory, clock=hub.clock, random=hub.random
    )


def assignment(hub, reference):
    with hub.db.session(read_only=True) as s:
        return s.scalars(select(Assignment).join(Case).where(Case.reference == reference)).one()


def delivery(hub, reference):
    with hub.db.session(read_only=True) as s:
        return s.scalars(
            select(Delivery).join(Assignment).join(Case).where(Case.reference == reference)
        ).one()


def timeline(hub, reference):
    with hub.db.session(read_only=True) as s:
        return list(
            s.scalars(
                select(StatusEvent)
                .join(Case)
                .where(Case.reference == reference)
                .order_by(StatusEvent.id)
            )
        )


def distinct_statuses(events):
    out = []
    for e in events:
        if e.to_status and (not out or out[-1] != e.to_status):
            out.append(e.to_status)
    return out


CASE = {
    "kind": "complaint",
    "domain": "telecom.billing",
    "language": "fr",
    "description": "Ma facture d'octobre compte 49,99 euros de roaming alors que je n'ai pas voyagé.",
    "incident_date": "2026-10-15",
    "complaint_date": "2026-10-20",
    "amount": 49.99,
    "consumer": {"name": "Anne Dubois", "email": "anne@example.be"},
    "trader": {"name": "Telco SA", "enterprise_number": "0403.170.701"},
    "consent": {"share_with_agencies": True},
    "answers": {"contacted_trader": True, "court_case_pending": False, "trader_is_business": True},
}


# A fake webshop's complaint: mediation answers, the inspection is informed (fan-out).
COMPLAINT = {
    **CASE,
    "domain": "ecommerce.fake_webshop",
    "language": "nl",  # the inspection takes nl, fr, de; the page is read in English
    "description": "The webshop took my money for a phone and never delivered it.",
    "trader": {"name": "Prijsbreker BV", "enterprise_number": "0403.170.701"},
}
