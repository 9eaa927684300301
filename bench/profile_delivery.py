"""Profile delivery in-process: where a worker's CPU goes per delivery.

    .venv/bin/python -m bench.profile_delivery [--cases 2000] [--database-url URL] [--split]

Starts the benchmark sink (its own process), files `--cases` copies of the benchmark case for
one agency at it, and drains them with `Worker.dispatch_agency` in this process, as a worker's
lane does. Prints deliveries per second and this process's CPU milliseconds per delivery (the
worker's own cost; the database server's is not in it). With `--split`, the CPU of each step
per delivery, measured as the time of the thread that ran it (the lane claims and sends, its
recorder thread records): a sampling profiler sees only one thread, and the recorder's work
overlaps the sending. SQLite in a temporary directory unless a database URL is given
(`postgresql://postgres@127.0.0.1:5432/test` makes a fresh database beside it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from bench.common import Processes, free_port, pg_database, wait_until
from bench.setup import CASE, file_backlog, reset_deliveries, write_agencies
from hub.config import Settings
from hub.db import upgrade
from hub.services import Hub

# The steps of a delivery, timed on the thread that runs each (`--split`).
STEPS = {
    "claim (lease, attempts, the cases' rows)": ("hub.outbox", "claim"),
    "send (render, adapter, HTTP)": ("scheduler.worker", "Worker._send"),
    "of which the HTTP call": ("adapters.http", "HttpClient.request"),
    "record a group (recorder thread)": ("hub.outbox", "complete_many"),
}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--database-url")
    parser.add_argument("--split", action="store_true", help="CPU per step (thread time)")
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

        spent = _timed_steps() if args.split else None
        for run in range(args.runs):
            reset_deliveries(hub.db)
            requests.post(sink + "/_reset", timeout=5)
            worker = Worker(hub, worker_id=f"profile-{run}")
            cpu, wall = _cpu(), time.perf_counter()
            stats = worker.dispatch_agency("bench-00")
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            got = requests.get(sink + "/_stats", timeout=5).json()["distinct"]
            if stats.delivered != args.cases or got != args.cases:
                raise SystemExit(f"delivered {stats.delivered}, sink has {got} of {args.cases}")
            print(
                f"run {run + 1}: {args.cases} deliveries in {wall:.2f} s: "
                f"{args.cases / wall:,.0f}/s, worker CPU {1000 * cpu / args.cases:.3f} ms each"
            )
        if spent is not None:
            total = args.cases * args.runs
            for name, seconds in spent.items():
                print(f"  {name:45} {1000 * seconds / total:.3f} ms per delivery")


def _timed_steps() -> dict[str, float]:
    """Wrap each step so its thread's CPU time adds up per step (a dict filled as it runs)."""
    import importlib

    spent = dict.fromkeys(STEPS, 0.0)
    for name, (module, attribute) in STEPS.items():
        owner: Any = importlib.import_module(module)
        *path, leaf = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, leaf)

        def timed(*args, _original=original, _name=name, **kwargs):
            started = time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] += time.thread_time() - started

        setattr(owner, leaf, timed)
    return spent


if __name__ == "__main__":
    main()
