"""Profile the intake path in-process with pyinstrument: where a POST /api/v1/cases spends its time.

    .venv/bin/python -m bench.profile_intake [--cases 500] [--database-url URL]

Files `--cases` copies of the benchmark's case through the Flask test client (no network, no
gunicorn) and prints pyinstrument's call tree, then the share of the main stages. SQLite in a
temporary directory unless a database URL is given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pyinstrument import Profiler

from bench.setup import CASE
from hub.config import Settings
from hub.db import upgrade
from hub.services import Hub
from loket.app import create_app

# A frame's stage is the deepest match on its stack, except the web layer, which only claims
# what no other stage does (it is at the bottom of every stack).
STAGES = {
    "validation (marshmallow, schema)": ("marshmallow", "hub/schemas.py"),
    "routing": ("hub/routing.py",),
    "database (SQLAlchemy, driver)": ("sqlalchemy", "sqlite3", "psycopg"),
    "building the rows (hub/intake.py, audit, notify)": (
        "hub/intake.py",
        "hub/audit.py",
        "hub/notify.py",
    ),
}
WEB = ("flask", "werkzeug", "hub/api.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'profile.db'}"
    upgrade(url)
    # One address files every case, as under wrk: lift the limits per address (API filings)
    # and per recipient (confirmation mails) so that none is refused and each writes every row.
    # They are still counted, as in production.
    unlimited = "1000000 per hour"
    hub = Hub.from_settings(
        Settings(database_url=url, api_filing_limit=unlimited, confirmation_mail_limit=unlimited)
    )
    client = create_app(hub=hub).test_client()
    filings = list(_filings(args.cases + 20))
    for body, environ in filings[:20]:  # warm caches (statement shapes, schemas) first
        client.post("/api/v1/cases", data=body, content_type=JSON, environ_base=environ)
    profiler = Profiler(interval=0.0005)
    started, cpu = time.perf_counter(), time.process_time()
    profiler.start()
    for body, environ in filings[20:]:
        answer = client.post("/api/v1/cases", data=body, content_type=JSON, environ_base=environ)
        if answer.status_code != 201:
            raise SystemExit(f"filing failed: {answer.status_code} {answer.get_data(as_text=True)}")
    profiler.stop()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    # CPU time too: on a shared machine the wall clock also counts other processes' turns (and,
    # for PostgreSQL, the server's share of the work, which the CPU time leaves out).
    print(
        f"{args.cases} cases in {elapsed:.2f} s: {1000 * elapsed / args.cases:.2f} ms each, "
        f"{1000 * cpu / args.cases:.2f} ms CPU in this process"
    )
    print(_stages(profiler))


JSON = "application/json"


def _filings(n: int) -> list[tuple[bytes, dict[str, str]]]:
    """The benchmark's case n times, from one address, as `make bench` files it; encoded before
    the clock starts (the client's work is not the hub's)."""
    body = json.dumps(CASE).encode()
    return [(body, {"REMOTE_ADDR": "127.0.0.1"})] * n


def _stages(profiler: Profiler) -> str:
    """Self time per stage, each frame in the deepest stage on its stack."""
    session = profiler.last_session
    assert session is not None
    totals = dict.fromkeys(
        [*STAGES, "web layer (Flask, werkzeug, hub/api.py)", "everything else"], 0.0
    )

    def walk(frame, stage):
        path = frame.file_path or ""
        for name, needles in STAGES.items():
            if any(n in path for n in needles):
                stage = name
                break
        else:
            if stage is None and any(n in path for n in WEB):
                stage = "web layer (Flask, werkzeug, hub/api.py)"
        totals[stage or "everything else"] += frame.total_self_time
        for child in frame.children:
            walk(child, stage)

    walk(session.root_frame(), None)
    whole = sum(totals.values()) or 1.0
    lines = ["share of intake time (self time, by the deepest stage on the stack):"]
    for name, seconds in totals.items():
        lines.append(f"  {name:52} {100 * seconds / whole:5.1f} %")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
