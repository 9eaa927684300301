"""What the front desk's trust pages (privacy notice, cookies, accessibility, contact) state
about the system itself, read from the one place that decides it, so a page cannot drift from
the code: the retention periods, the service's identity and the last accessibility audit.

Retention comes from `contracts/retention.yaml` when that file exists (the GDPR housekeeping
erases by it); without it, from `DEFAULT_RETENTION` below, which states the same policy. The
cookie names are read by the front desk from the code that sets them (hub/frontdesk/views.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hub.config import CONTRACTS_DIR

RETENTION_FILE = CONTRACTS_DIR / "retention.yaml"

# The policy when contracts/retention.yaml is absent; the same shape as that file. The clock of
# `closed` starts when every service has ended its part of the case.
DEFAULT_RETENTION: dict[str, Any] = {
    "closed": {
        "question": "1 year",
        "complaint": "2 years",
        "mediation": "2 years",
        "report": "5 years",
    },
    "by_status": {"withdrawn": "1 year"},
    "inactive": "5 years",
}

_DURATION = re.compile(r"^\s*(\d+)\s*(day|month|year)s?\s*$")

# Who is responsible for the front desk (controller under the GDPR) and how to reach it. A
# deployment states its own here; the pages show nothing that is not in this block. Names are
# labels without their article: each page's text gives the article its sentence needs.
IDENTITY: dict[str, Any] = {
    "controller": {
        "nl": "FOD Economie, K.M.O., Middenstand en Energie",
        "fr": "SPF Economie, P.M.E., Classes moyennes et Energie",
        "de": "FÖD Wirtschaft, KMB, Mittelstand und Energie",
        "en": "FPS Economy, SMEs, Self-employed and Energy",
    },
    "address": {
        "nl": "Vooruitgangstraat 50, 1210 Brussel",
        "fr": "Rue du Progrès 50, 1210 Bruxelles",
        "de": "Rue du Progrès 50, 1210 Brüssel",
        "en": "Rue du Progrès 50, 1210 Brussels",
    },
    "phone": "0800 120 33",
    "email": "info.eco@economie.fgov.be",
    "dpo_email": "privacy@economie.fgov.be",
    "accessibility_email": "info.eco@economie.fgov.be",
    "dpa": {
        "name": {
            "nl": "Gegevensbeschermingsautoriteit",
            "fr": "Autorité de protection des données",
            "de": "Datenschutzbehörde",
            "en": "Data Protection Authority",
        },
        "address": {
            "nl": "Drukpersstraat 35, 1000 Brussel",
            "fr": "Rue de la Presse 35, 1000 Bruxelles",
            "de": "Rue de la Presse 35, 1000 Brüssel",
            "en": "Rue de la Presse 35, 1000 Brussels",
        },
        "email": "contact@apd-gba.be",
        "url": "https://www.dataprotectionauthority.be",
    },
}

# The last accessibility audit the statement reports (tests/browser/test_every_page.py runs it).
# `figures`: what that run found (page loads checked, axe-core violations of any impact, Nu HTML
# Checker errors); None until a run's numbers are written here, and the page then states none.
AUDIT: dict[str, Any] = {
    "date": "2026-12-04",
    "standard": "WCAG 2.1 AA",
    "languages": ("nl", "fr", "de", "en"),
    # tests/browser/test_all_pages.py on 2026-12-04: every page a consumer, operator, agency staff
    # member or inspector reaches, in every language and case state; the Nu HTML Checker on all
    # of them, axe-core (any impact) on each kind of page at 320 px
    "figures": {"pages": 2540, "axe": 0, "html": 0},
}


@dataclass(frozen=True)
class Period:
    amount: int
    unit: str  # day | month | year


@dataclass(frozen=True)
class Retention:
    closed: dict[str, Period]  # per kind of case, from the day it is closed
    by_status: dict[str, Period]  # a case closed in this status keeps its data this long
    inactive: Period  # a case that never closes, from its last activity
    source: str  # the file read, or "defaults"


def period(text: Any, where: str) -> Period:
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{where}: {text!r} is not a duration; write e.g. 2 years or 6 months")
    return Period(int(m.group(1)), m.group(2))


@lru_cache(maxsize=4)
def retention(path: Path = RETENTION_FILE) -> Retention:
    """The retention periods the privacy notice states: the configured ones, else the
    defaults. A period the file leaves out keeps its default."""
    data: dict[str, Any] = {**DEFAULT_RETENTION}
    source = "defaults"
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            configured = yaml.safe_load(fh) or {}
        for key in ("closed", "by_status"):
            data[key] = {**DEFAULT_RETENTION[key], **(configured.get(key) or {})}
        data["inactive"] = configured.get("inactive", DEFAULT_RETENTION["inactive"])
        source = path.name
    return Retention(
        closed={k: period(v, f"closed.{k}") for k, v in data["closed"].items()},
        by_status={k: period(v, f"by_status.{k}") for k, v in data["by_status"].items()},
        inactive=period(data["inactive"], "inactive"),
        source=source,
    )
