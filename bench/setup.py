"""Benchmark fixtures: agency mapping files pointing at the sink, and bulk data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from sqlalchemy import text

from hub.db import Database

CASE = {
    "kind": "report",
    "domain": "ecommerce.fake_webshop",
    "language": "nl",
    "description": "De webshop prijsbreker.example verkoopt merkschoenen aan 20 euro en levert niets.",
    "incident_date": "2026-10-15",
    "amount": 89.95,
    "consumer": {"name": "An Peeters", "email": "an.peeters@example.be"},
    "trader": {"name": "Prijsbreker", "website": "https://prijsbreker.example"},
    "consent": {"share_with_agencies": True},
}


def agency_spec(agency_id: str, base_url: str, *, per_case: bool = False) -> dict:
    adapter = {
        "kind": "rest",
        "base_url": base_url,
        "submit_path": "/cases",
        "reference_field": "id",
        "read_timeout": 30,
    }
    if per_case:
        adapter["status_path"] = "/cases/{agency_reference}"
    else:
        adapter["changes_path"] = "/changes"
    return {
        "id": agency_id,
        "names": {lang: f"Bench {agency_id}" for lang in ("nl", "fr", "de", "en")},
        "grammar": {lang: {"article": "none"} for lang in ("nl", "fr", "de", "en")},
        "body": "inspection",
        "handles": {"kinds": ["question", "complaint", "report", "mediation"], "domains": ["*"]},
        "languages": ["nl", "fr", "de", "en"],
        "adapter": adapter,
        "fields": {
            "reference": "case.reference",
            "kind": "case.kind",
            "description": "case.description",
            "name": "consumer.name",
            "email": "consumer.email",
            "trader": "trader.name",
            "website": "trader.website",
        },
        "statuses": {"OPEN": "in_progress", "CLOSED": "resolved"},
        "sla": {"acknowledge": "3 business days", "answer": "30 days"},
        "poll": {"every": "60 minutes"},
        "delivery": {"max_in_flight": 10000},
    }


def write_agencies(
    folder: Path, base_url: str, count: int = 1, per_case: bool = False
) -> tuple[Path, Path]:
    """`count` agencies bench-00.. at the sink, and a routing file sending every case to bench-00."""
    agencies = folder / "agencies"
    agencies.mkdir(parents=True, exist_ok=True)
    ids = [f"bench-{i:02d}" for i in range(count)]
    for agency_id in ids:
        (agencies / f"{agency_id}.yaml").write_text(
            yaml.safe_dump(agency_spec(agency_id, base_url, per_case=per_case))
        )
    routing = folder / "routing.yaml"
    routing.write_text(
        yaml.safe_dump(
            {
                "handle": [
                    {"name": "all", "to": [ids[0]], "reason": "bench", "basis": "the benchmark"}
                ]
            }
        )
    )
    return agencies, routing


def reset_deliveries(db: Database) -> None:
    """Put every delivery back in the queue, as if just filed (between benchmark runs)."""
    with db.session() as s:
        s.execute(text("DELETE FROM delivery_attempts"))
        s.execute(text("DELETE FROM status_events WHERE kind IS NULL OR kind <> 'routed'"))
        s.execute(text("DELETE FROM audit_entries WHERE action <> 'case.filed'"))
        s.execute(text("DELETE FROM agency_states"))
        s.execute(
            text(
                "UPDATE assignments SET status = 'queued', agency_reference = NULL, "
                "status_at = NULL"
            )
        )
        s.execute(text("UPDATE cases SET status = 'queued'"))
        s.execute(text("UPDATE notifications SET state = 'sent'"))
        s.execute(
            text(
                "UPDATE deliveries SET state = 'pending', attempts = 0, "
                "round_started_attempts = 0, lease_expires_at = NULL, leased_by = NULL, "
                "delivered_at = NULL, payload = NULL, last_error = NULL, "
                "next_attempt_at = CURRENT_TIMESTAMP"
            )
        )


def ref_of(i: int) -> str:
    """A valid public reference for seeded case i (Crockford base 32, with its check symbol)."""
    from hub.reference import ALPHABET, check_symbol

    body = ""
    for _ in range(7):
        i, digit = divmod(i, 32)
        body = ALPHABET[digit] + body
    full = body + check_symbol(body)
    return f"LK-{full[:4]}-{full[4:]}"


def token_of(i: int) -> str:
    return f"bench-token-{i}"


def seed_cases(
    db: Database, n: int, agencies: list[str], *, open_assignments: bool = True, chunk: int = 20000
) -> None:
    """n cases, each with a consumer and a trader, one assignment (sent, with an agency reference)
    spread over `agencies`, its delivery done and three timeline events — in bulk, by SQL, on
    SQLite and PostgreSQL alike. Case i has the reference LK-<i> and the token token_of(i)."""
    now = "2026-11-02 09:00:00"
    k = len(agencies)
    with db.engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        for start in range(0, n, chunk):
            rows = range(start, min(n, start + chunk))
            conn.execute(
                text(
                    "INSERT INTO cases (id, reference, kind, domain, language, description, "
                    "consent_share, anonymous_to_trader, status, token_hash, created_at, updated_at) "
                    "VALUES (:id, :ref, 'complaint', 'ecommerce.non_delivery', 'nl', :desc, true, "
                    "false, :status, :hash, :now, :now)"
                ),
                [
                    {
                        "id": i + 1,
                        "ref": ref_of(i),
                        "desc": f"Bench case {i}: nothing delivered.",
                        "status": "in_progress" if open_assignments else "resolved",
                        "hash": hashlib.sha256(token_of(i).encode()).hexdigest(),
                        "now": now,
                    }
                    for i in rows
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO parties (case_id, role, name, email, enterprise_number) "
                    "VALUES (:case, :role, :name, :email, :kbo)"
                ),
                [
                    p
                    for i in rows
                    for p in (
                        {
                            "case": i + 1,
                            "role": "consumer",
                            "name": f"Consumer {i:07d}",
                            "email": f"c{i}@example.be",
                            "kbo": None,
                        },
                        {
                            "case": i + 1,
                            "role": "trader",
                            "name": f"Trader {i % 5000:05d}",
                            "email": None,
                            "kbo": f"0{i % 900000000 + 100000000:09d}",
                        },
                    )
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO assignments (id, case_id, agency_id, stage, status, agency_status, "
                    "agency_reference, paused_seconds, created_at, updated_at, answer_due_at) "
                    "VALUES (:id, :id, :agency, 'handle', :status, 'OPEN', :ref, 0, :now, :now, :due)"
                ),
                [
                    {
                        "id": i + 1,
                        "agency": agencies[i % k],
                        "ref": f"S-{i}",
                        "status": "in_progress" if open_assignments else "resolved",
                        "now": now,
                        "due": "2026-12-02 22:59:59",
                    }
                    for i in rows
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO deliveries (assignment_id, kind, agency_id, idempotency_key, state, "
                    "attempts, next_attempt_at, created_at, updated_at, resends, "
                    "round_started_attempts) VALUES (:id, 'case', :agency, :key, 'done', 1, :now, "
                    ":now, :now, 0, 0)"
                ),
                [
                    {
                        "id": i + 1,
                        "agency": agencies[i % k],
                        "key": f"{ref_of(i)}.bench.1",
                        "now": now,
                    }
                    for i in rows
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO status_events (case_id, assignment_id, actor, occurred_at, "
                    "recorded_at, from_status, to_status, kind, message) VALUES "
                    "(:id, :id, :actor, :now, :now, :f, :t, :kind, :msg)"
                ),
                [
                    e
                    for i in rows
                    for e in (
                        {
                            "id": i + 1,
                            "actor": "hub",
                            "now": now,
                            "f": None,
                            "t": "queued",
                            "kind": "routed",
                            "msg": "Routed",
                        },
                        {
                            "id": i + 1,
                            "actor": "hub",
                            "now": now,
                            "f": "queued",
                            "t": "sent",
                            "kind": "delivered",
                            "msg": "Delivered",
                        },
                        {
                            "id": i + 1,
                            "actor": "agency",
                            "now": now,
                            "f": "sent",
                            "t": "in_progress",
                            "kind": "agency_status",
                            "msg": "Opened",
                        },
                    )
                ],
            )
        if pg:
            for table in ("cases", "parties", "assignments", "deliveries", "status_events"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))


def file_backlog(hub, n: int, case: dict) -> None:
    """File `n` copies of `case` through the intake (routing, outbox), as the API would."""
    from hub import intake
    from hub.schemas import CaseInSchema

    data = CaseInSchema().load(case)
    for _ in range(n):
        intake.file_case(
            hub.db,
            data,
            router=hub.router,
            directory=hub.directory,
            clock=hub.clock,
            random=hub.random,
        )
