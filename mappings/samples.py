"""Sample canonical case documents, to check a mapping against its agency's contract.

The shape is the one hub/canonical.py builds (tests/test_contracts.py fails if they drift apart).
Two samples per case kind the agency can be sent (what it handles and what the routing sends it)
and per language the consumer may write in (nl, fr, de, en): one with every optional field
filled, one with only what a consumer must give, so a contract that requires something the hub
may not have is caught, and so is a value the agency refuses in one language only (an English
case to an agency that works in nl, fr and de).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import yaml

from mappings import CONTRACTS_DIR
from mappings.engine import LANGUAGES, AgencyMapping

FULL: dict[str, Any] = {
    "case": {
        "reference": "LK-7F3K-9QX2",
        "kind": "complaint",
        "domain": "general.other",
        "area": "general",
        "subarea": "other",
        "language": "nl",
        "description": "Beschrijving van het probleem, lang genoeg om te tonen hoe het eruitziet.",
        "incident_date": "2026-10-15",
        "incident_date_precision": "day",
        "amount": "49.99",
        "currency": "EUR",
        "created_at": "2026-11-02T09:00:00+00:00",
        "anonymous_to_trader": False,
        "history": "",
    },
    "consumer": {
        "name": "An Peeters",
        "email": "an.peeters@example.be",
        "phone": "+32 470 12 34 56",
        "address": {
            "street": "Kerkstraat 1",
            "postcode": "1000",
            "city": "Brussel",
            "country": "BE",
        },
    },
    "trader": {
        "name": "Voorbeeld NV",
        "enterprise_number": "0403170701",
        "website": "https://voorbeeld.example.be",
        "address": {
            "street": "Marktplein 2",
            "postcode": "2000",
            "city": "Antwerpen",
            "country": "BE",
        },
    },
    "assignment": {
        "reason": "Handles this kind of dispute.",
        "acknowledge_due": "2026-11-05T22:59:59+00:00",
        "answer_due": "2026-12-02T22:59:59+00:00",
    },
    "agency": {"id": "agency"},
}


def _minimal(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for key in ("incident_date", "incident_date_precision", "amount", "currency"):
        out["case"][key] = None
    out["consumer"]["phone"] = None
    out["consumer"]["address"] = {"street": None, "postcode": None, "city": None, "country": None}
    out["trader"] = None
    return out


def _month_only(doc: dict[str, Any]) -> dict[str, Any]:
    """The consumer knew only the month: the reduced ISO date (see the guide's "Dates")."""
    out = copy.deepcopy(doc)
    out["case"].update(incident_date="2026-10", incident_date_precision="month")
    return out


def _domain_codes() -> list[str]:
    data = yaml.safe_load((CONTRACTS_DIR / "domains.yaml").read_text(encoding="utf-8"))
    return [f"{area}.{sub}" for area, spec in data["areas"].items() for sub in spec["subareas"]]


def first_domain(patterns: tuple[str, ...] | list[str]) -> str | None:
    """The first taxonomy code that matches one of the patterns."""
    return next((c for c in _domain_codes() if any(fnmatchcase(c, p) for p in patterns)), None)


def sample_documents(
    mapping: AgencyMapping, kinds: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(label, document) pairs: for each case kind, in each language, full, minimal and with a
    month-only incident date.

    `kinds` maps each kind the agency can be sent to a domain such a case has (what the routing
    rules naming the agency send it, see hub/mapping_check.py); the kinds the agency handles
    are always in, about the first domain it handles."""
    domain = first_domain(mapping.domains) or "general.other"
    wanted = {**dict.fromkeys(mapping.kinds, domain), **(kinds or {})}
    out = []
    for kind, about in wanted.items():
        for language in LANGUAGES:
            for label, make in (
                ("full", copy.deepcopy),
                ("minimal", _minimal),
                ("month-only", _month_only),
            ):
                doc = make(FULL)
                doc["case"].update(
                    kind=kind,
                    domain=about,
                    area=about.split(".")[0],
                    subarea=about.split(".")[1],
                    language=language,
                )
                doc["agency"]["id"] = mapping.id
                out.append((f"a {label} {kind} about {about} in {language}", doc))
    return out
