"""Profile delivery in-process: where a worker's CPU goes per delivery.

    .venv/bin/python -m bench.profile_delivery [--cases 2000] [--database-url URL] [--profile]

Starts the benchmark sink (its own process), files `--cases` copies of the benchmark case for
one agency at it, and drains them with `Worker.dispatch_agency` in this process, as a worker's
lane does. Prints deliveries per second, this process's CPU milliseconds per delivery (the
worker's own cost; the database server's is not in it), and with `--profile` pyinstrument's
call tree and the share of the main stages. SQLite in a temporary directory unless a database
URL is given (`postgresql://postgres@127.0.0.1:5432/test` makes a fresh database beside it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.common import Processes, free_port, pg_database, wait_until
from bench.setup import CASE, file_backlog, reset_deliveries, write_agencies
from hub.config import Settings
from hub.db import upgrade
from hub.services import Hub

STAGES = {
    "HTTP send (adapters, urllib3, http.client)": ("urllib3", "http/client", "adapters/", "socket"),
    "rendering and contract check (mappings, jsonschema)": ("mappings/", "jsonschema"),
    "database (SQLAlchemy, driver)": ("sqlalchemy", "sqlite3", "psycopg"),
    "outbox and timeline rows (hub/)": ("hub/",),
}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--database-url")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loket-profile-"))
    with ExitStack() as stack:
        procs = Processes(work / "logs")
        stack.callback(procs.stop_all)
        port = free_port()
        procs.start("sink", ["-m", "bench.sink", "--port", str(port)])
        sink = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(sink + "/_stats", timeout=1).ok, 30, "the sink")
        agencies, routing = write_agencies(work, sink)
        if args.database_url and args.database_url.startswith("postgresql"):
            url = stack.enter_context(pg_database("loket_profile_delivery"))
        else:
            url = args.database_url or f"sqlite:///{work / 'profile.db'}"
        upgrade(url)
        hub = Hub.from_settings(
            Settings(database_url=url, agencies_dir=agencies, routing_file=routing)
        )
        stack.callback(hub.close)
        file_backlog(hub, args.cases, CASE)
        from scheduler.worker import Worker

        for run in range(args.runs):
            reset_deliveries(hub.db)
            requests.post(sink + "/_reset", timeout=5)
            worker = Worker(hub, worker_id=f"profile-{run}")
            profiler = None
            if args.profile and run == args.runs - 1:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
            cpu, wall = _cpu(), time.perf_counter()
            stats = worker.dispatch_agency("bench-00")
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            if profiler is not None:
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
                print(_stages(profiler))
            got = requests.get(sink + "/_stats", timeout=5).json()["distinct"]
            if stats.delivered != args.cases or got != args.cases:
                raise SystemExit(f"delivered {stats.delivered}, sink has {got} of {args.cases}")
            print(
                f"run {run + 1}: {args.cases} deliveries in {wall:.2f} s: "
                f"{args.cases / wall:,.0f}/s, worker CPU {1000 * cpu / args.cases:.3f} ms each"
            )


def _stages(profiler) -> str:
    session = profiler.last_session
    totals = dict.fromkeys([*STAGES, "everything else"], 0.0)

    def walk(frame, stage):
        path = frame.file_path or ""
        for name, needles in STAGES.items():
            if any(n in path for n in needles):
                stage = name
                break
        totals[stage or "everything else"] += frame.total_self_time
        for child in frame.children:
            walk(child, stage)

    walk(session.root_frame(), None)
    whole = sum(totals.values()) or 1.0
    return "\n".join(f"{share / whole:6.1%}  {name}" for name, share in totals.items())


if __name__ == "__main__":
    main()
