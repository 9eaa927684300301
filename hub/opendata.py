"""The anonymised case-level open data: one row per case and service, with small-cell suppression.

Columns (and nothing else: no name, address, e-mail, phone, description, reference, date finer
than the month): area, kind, month, service, outcome, timeliness, enterprise_number.

The rule, applied in this order (documented in the data package, `loket:suppression`):
1. `enterprise_number` is given only for a company (the trader's name carries a legal form:
   NV, BV, SA, SRL, GmbH, Ltd, ...; a sole trader's number identifies a person) that has at
   least `TRADER_MIN_CASES` cases; otherwise it is empty.
2. Rows are grouped by all their values. Where a group has fewer than `K` rows, the enterprise
   number is emptied in those rows and the rows regrouped.
3. Rows of a group still under `K` are left out; the package says how many.
So every combination of values in the file occurs at least K times.

The files are written by `loket stats export` and by the worker's housekeeping (next to the
daily rollups) into <var_dir>/opendata/, and served as they are by the statistics page.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from hub import lifecycle
from hub.db import Database
from hub.models import Assignment, Case, Party, StatusEvent
from hub.statistics import ANSWERED, ENDED, K, area_of

TRADER_MIN_CASES = K
FILES = ("cases.csv", "datapackage.json")
COLUMNS = ("area", "kind", "month", "service", "outcome", "timeliness", "enterprise_number")
LEGAL_FORMS = re.compile(
    r"\b(nv|bv|bvba|cv|cvba|vzw|sa|srl|sprl|sc|scrl|asbl|sca|comm\.?\s?v|ag|gmbh|ltd|llc|"
    r"inc|plc|bv|sarl|sas|spa|ab|oy|as)\b\.?",
    re.IGNORECASE,
)


def is_company(name: str | None) -> bool:
    return bool(name and LEGAL_FORMS.search(name))


Row = tuple[str, str, str, str, str, str, str]


@dataclass(frozen=True)
class Export:
    rows: list[Row]
    total: int
    suppressed: int
    generalised: int


def _timeliness(past_due: datetime | None, answered: datetime | None) -> str:
    if answered is not None:
        return "on_time" if past_due is None or past_due > answered else "late"
    return "late" if past_due is not None else "open"


def source_rows(db: Database) -> Iterable[tuple[Row, str]]:
    """(row with the enterprise number where rule 1 allows it, the trader's number) per line."""
    trader = aliased(Party)
    answered = (
        select(StatusEvent.assignment_id, func.min(StatusEvent.recorded_at).label("at"))
        .where(StatusEvent.to_status.in_(ANSWERED))
        .group_by(StatusEvent.assignment_id)
        .subquery()
    )
    with db.session(read_only=True) as s:
        counts = dict(
            s.execute(
                select(Party.enterprise_number, func.count(func.distinct(Party.case_id)))
                .where(Party.role == "trader", Party.enterprise_number.is_not(None))
                .group_by(Party.enterprise_number)
            ).all()
        )
        rows = s.execute(
            select(
                Case.domain,
                Case.kind,
                Case.created_at,
                Assignment.agency_id,
                Assignment.status,
                Assignment.outcome,
                Assignment.past_due_at,
                answered.c.at,
                trader.enterprise_number,
                trader.name,
            )
            .join(Case, Case.id == Assignment.case_id)
            .outerjoin(answered, answered.c.assignment_id == Assignment.id)
            .outerjoin(trader, (trader.case_id == Case.id) & (trader.role == "trader"))
            .execution_options(yield_per=10000)
        )
        for domain, kind, created, agency, status, outcome, past_due, at, number, name in rows:
            if status in ENDED:
                ended = (outcome or status) if status == "resolved" else status
            else:
                ended = "open"
            shown = (
                number
                if number and is_company(name) and counts.get(number, 0) >= TRADER_MIN_CASES
                else ""
            )
            yield (
                (
                    area_of(domain),
                    kind,
                    created.astimezone(UTC).strftime("%Y-%m"),
                    agency,
                    ended,
                    _timeliness(past_due, at),
                    shown or "",
                ),
                number or "",
            )


def anonymise(rows: Iterable[Row], k: int = K) -> Export:
    """Rules 2 and 3 of the module docstring."""
    rows = list(rows)
    total = len(rows)
    groups = Counter(rows)
    generalised = 0
    out: list[Row] = []
    for row in rows:
        if groups[row] < k and row[-1]:
            row = (*row[:-1], "")
            generalised += 1
        out.append(row)
    groups = Counter(out)
    kept = [r for r in out if groups[r] >= k]
    kept.sort()
    return Export(kept, total, total - len(kept), generalised)


def build(db: Database, k: int = K) -> Export:
    return anonymise((row for row, _number in source_rows(db)), k)


def package(export: Export, now: datetime, k: int = K) -> dict:
    """The Frictionless Data package (datapackage.json) describing cases.csv."""
    statuses = [*lifecycle.vocabulary().get("outcomes", []), *ENDED, "open"]
    return {
        "profile": "tabular-data-package",
        "name": "loket-cases",
        "title": "Consumer front desk: cases per service (anonymised)",
        "description": (
            "One row per case and service it went to. No free text and no personal data. "
            f"Every combination of values occurs at least {k} times (small-cell suppression)."
        ),
        "created": now.astimezone(UTC).isoformat(),
        "licenses": [
            {"name": "CC0-1.0", "path": "https://creativecommons.org/publicdomain/zero/1.0/"}
        ],
        "loket:suppression": {
            "k": k,
            "trader_min_cases": TRADER_MIN_CASES,
            "rule": (
                "1. enterprise_number only for a company (legal form in the trader's name) with "
                f"at least {TRADER_MIN_CASES} cases; 2. in rows whose combination of values "
                f"occurs fewer than {k} times the enterprise number is emptied; 3. rows whose "
                f"combination still occurs fewer than {k} times are left out."
            ),
            "rows_total": export.total,
            "rows_left_out": export.suppressed,
            "enterprise_numbers_emptied": export.generalised,
        },
        "resources": [
            {
                "name": "cases",
                "path": "cases.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "dialect": {"delimiter": ",", "header": True},
                "schema": {
                    "fields": [
                        {
                            "name": "area",
                            "type": "string",
                            "description": "Problem area (contracts/domains.yaml).",
                        },
                        {
                            "name": "kind",
                            "type": "string",
                            "constraints": {
                                "enum": ["question", "complaint", "report", "mediation"]
                            },
                        },
                        {
                            "name": "month",
                            "type": "yearmonth",
                            "description": "Month the case was filed (UTC).",
                        },
                        {
                            "name": "service",
                            "type": "string",
                            "description": "The service's id (mappings/agencies/<id>.yaml).",
                        },
                        {
                            "name": "outcome",
                            "type": "string",
                            "constraints": {"enum": sorted(set(statuses))},
                            "description": "The outcome of a resolved line, its end status, "
                            "or open.",
                        },
                        {
                            "name": "timeliness",
                            "type": "string",
                            "constraints": {"enum": ["on_time", "late", "open"]},
                            "description": "First answer before the deadline (on_time), after "
                            "it or still missing past it (late), or not answered yet (open).",
                        },
                        {
                            "name": "enterprise_number",
                            "type": "string",
                            "constraints": {"pattern": "^([01][0-9]{9})?$"},
                            "description": "The trader's Belgian enterprise number, only for "
                            "companies with many cases (see loket:suppression); else empty.",
                        },
                    ]
                },
            }
        ],
    }


def write(db: Database, directory: Path, now: datetime, k: int = K) -> Export:
    """Write cases.csv and datapackage.json into `directory`, each replaced atomically."""
    export = build(db, k)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".cases.csv.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(COLUMNS)
        w.writerows(export.rows)
    os.replace(tmp, directory / "cases.csv")
    tmp = directory / f".datapackage.json.{os.getpid()}"
    tmp.write_text(json.dumps(package(export, now, k), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, directory / "datapackage.json")
    return export


def due(var_dir: Path, now: datetime, every: timedelta = timedelta(days=1)) -> bool:
    """Whether the files are missing or older than `every` (they are rewritten once a day:
    reading every line of every case is the one cost here that grows with the cases)."""
    path = directory_of(var_dir) / "datapackage.json"
    if not path.is_file():
        return True
    written = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    return now - written >= every


def directory_of(var_dir: Path) -> Path:
    return var_dir / "opendata"


def available(var_dir: Path) -> bool:
    return all((directory_of(var_dir) / name).is_file() for name in FILES)


def file(var_dir: Path, name: str) -> Path | None:
    if name not in FILES:
        return None
    path = directory_of(var_dir) / name
    return path if path.is_file() else None
