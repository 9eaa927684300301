"""A generated dataset for the statistics, open data and market signals (tests and bench).

`generate(db, n, now)` writes n cases with their consumer and trader, one or two lines each, the
lines' status events and some ratings, with bulk inserts (COPY on PostgreSQL, executemany on
SQLite), and returns the `Generated` rows it wrote so a test can count them itself. The values
are drawn from a seeded random source: the same call writes the same data.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from hub import taxonomy
from hub.db import Database

AGENCIES = (
    "ombudsman-telecom",
    "consumer-mediation",
    "economic-inspection",
    "ombudsman-energy",
    "ecc-belgium",
    "favv",
)
KINDS = ("question", "complaint", "report", "mediation")
OUTCOMES = ("solved", "partly_solved", "not_solved", "advice_given", "unfounded", "inadmissible")
RATINGS = ("yes", "partly", "no")
LEGAL = ("NV", "BV", "SA", "SRL", "GmbH", "")


@dataclass
class Generated:
    cases: list[dict] = field(default_factory=list)
    parties: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    ratings: list[dict] = field(default_factory=list)


def _enterprise_number(rng: random.Random) -> str:
    base = rng.randrange(2_000_000, 9_999_999)  # 0 and seven digits, then the mod-97 check
    return f"0{base:07d}{97 - (base % 97):02d}"


def build(
    n: int,
    now: datetime,
    *,
    days: int = 400,
    seed: int = 18,
    traders: int = 400,
    first_ids: tuple[int, int, int] = (1, 1, 1),
    domains: tuple[str, ...] | None = None,
    agencies: tuple[str, ...] = AGENCIES,
) -> Generated:
    """n cases (ids from first_ids: cases, lines, events) filed in the `days` before now."""
    rng = random.Random(seed)
    domains = sorted(domains or taxonomy.domain_codes())
    pool = []
    for i in range(traders):
        legal = LEGAL[i % len(LEGAL)]
        pool.append(
            {
                "name": f"Handelaar {i:04d} {legal}".strip(),
                "number": _enterprise_number(rng) if i % 3 else None,
                "website": f"https://www.shop{i:04d}.example/" if i % 2 else None,
            }
        )
    g = Generated()
    line_id, event_id = first_ids[1] - 1, 0
    start = now - timedelta(days=days)
    span = int((now - start).total_seconds())
    for case_id in range(first_ids[0], first_ids[0] + n):
        created = start + timedelta(seconds=rng.randrange(span))
        created = created.replace(microsecond=0)
        kind = KINDS[rng.randrange(4)]
        g.cases.append(
            {
                "id": case_id,
                "reference": f"LK-G{case_id:09d}",  # no valid check character: never typed
                "kind": kind,
                "domain": domains[rng.randrange(len(domains))],
                "language": "nl",
                "description": f"Beschrijving {rng.getrandbits(48):012x} van het probleem",
                "consent_share": True,
                "anonymous_to_trader": False,
                "status": "queued",
                "token_hash": "0" * 64,
                "created_at": created,
                "updated_at": created,
            }
        )
        tag = rng.getrandbits(40)
        g.parties.append(
            {
                "case_id": case_id,
                "role": "consumer",
                "name": f"Consument{tag:010x} Janssens",
                "email": f"c{tag:010x}@mail.example",
                "phone": f"+324{tag % 10**8:08d}",
            }
        )
        t = pool[min(int(rng.paretovariate(1.2)) - 1, traders - 1)]
        g.parties.append(
            {
                "case_id": case_id,
                "role": "trader",
                "name": t["name"],
                "enterprise_number": t["number"],
                "website": t["website"],
            }
        )
        for agency in rng.sample(agencies, 1 if rng.random() < 0.7 or len(agencies) < 2 else 2):
            line_id += 1
            line = {
                "id": line_id,
                "case_id": case_id,
                "agency_id": agency,
                "stage": "handle",
                "status": "sent",
                "outcome": None,
                "past_due_at": None,
                "created_at": created,
                "updated_at": created,
            }
            answer_at = created + timedelta(hours=rng.randrange(1, 24 * 60))
            due_at = created + timedelta(days=30)
            if answer_at > due_at and due_at <= now:
                line["past_due_at"] = due_at
            if answer_at <= now and rng.random() < 0.85:
                first = "resolved" if rng.random() < 0.6 else "waiting_for_consumer"
                event_id += 1
                g.events.append(_event(event_id, line, answer_at, "sent", first))
                status = first
                if first == "waiting_for_consumer":
                    end_at = answer_at + timedelta(hours=rng.randrange(1, 24 * 20))
                    if end_at <= now:
                        status = "resolved" if rng.random() < 0.8 else "withdrawn"
                        event_id += 1
                        g.events.append(_event(event_id, line, end_at, first, status))
                line["status"] = status
                if status == "resolved":
                    line["outcome"] = OUTCOMES[rng.randrange(len(OUTCOMES))]
                    if rng.random() < 0.3:
                        rated_at = g.events[-1]["recorded_at"] + timedelta(
                            hours=rng.randrange(1, 200)
                        )
                        if rated_at <= now:
                            g.ratings.append(
                                {
                                    "case_id": case_id,
                                    "assignment_id": line_id,
                                    "agency_id": agency,
                                    "answer": RATINGS[rng.randrange(3)],
                                    "comment": f"Commentaar {rng.getrandbits(32):08x}",
                                    "created_at": rated_at,
                                }
                            )
            g.lines.append(line)
    # event ids follow the order they were recorded in, as the hub's do
    g.events.sort(key=lambda e: (e["recorded_at"], e["id"]))
    for i, e in enumerate(g.events, first_ids[2]):
        e["id"] = i
    return g


def _event(event_id: int, line: dict, at: datetime, src: str, dst: str) -> dict:
    return {
        "id": event_id,
        "case_id": line["case_id"],
        "assignment_id": line["id"],
        "actor": "agency",
        "occurred_at": at,
        "recorded_at": at,
        "from_status": src,
        "to_status": dst,
        "kind": "agency_status",
    }


TABLES = (
    ("cases", "cases"),
    ("parties", "parties"),
    ("assignments", "lines"),
    ("status_events", "events"),
    ("ratings", "ratings"),
)


def _sqlite_value(v):
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return v


def _copy_value(v) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def insert(db: Database, g: Generated) -> None:
    """The rows, fast: PostgreSQL's COPY, else one executemany per table."""
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.dialect == "sqlite":
            cur.execute("BEGIN")  # the hub's SQLite connections autocommit otherwise
        for table, attr in TABLES:
            rows = getattr(g, attr)
            if not rows:
                continue
            columns = sorted({k for r in rows for k in r})
            if db.dialect == "postgresql":
                buf = io.StringIO()
                for r in rows:
                    buf.write("\t".join(_copy_value(r.get(c)) for c in columns) + "\n")
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write(buf.getvalue())
            else:
                cur.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' for _ in columns)})",
                    [tuple(_sqlite_value(r.get(c)) for c in columns) for r in rows],
                )
        raw.commit()
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                for table, _attr in TABLES:
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"COALESCE((SELECT max(id) FROM {table}), 1))"
                        )
                    )
                conn.execute(text("ANALYZE"))
    finally:
        raw.close()


def generate(db: Database, n: int, now: datetime, **kwargs) -> Generated:
    """Build and insert, after the rows the database holds already."""
    with db.engine.connect() as conn:
        first_ids = tuple(
            int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {t}")).scalar()) + 1
            for t in ("cases", "assignments", "status_events")
        )
    g = build(n, now, first_ids=first_ids, **kwargs)
    insert(db, g)
    return g
