"""SQLite under concurrent filing: a transaction per filing against group commit.

    .venv/bin/python -m bench.sqlite_group_commit [--seconds 8] [--processes 1 2 4] [--groups 1 4 16]

Each of `--processes` processes files the benchmark's case in a loop on one SQLite file (WAL,
`synchronous=NORMAL`, a busy timeout: how Loket opens it), through intake's own write
(`hub.intake._store`: the case, its parties, line, outbox row, timeline, evidence and mail),
committing every `group` filings. Group 1 is what the front desk does: one `BEGIN IMMEDIATE` ...
`COMMIT` per request. A larger group is what a group committer would do: concurrent requests of
one process handed to one writer thread, which commits them together. Prints filings per second
over all processes and the time from a filing's start to its commit (p50, p99): a group makes
its first filing wait for the others, and a real committer would add the wait for a group to
fill. Nothing here goes through HTTP: it isolates the database's share of intake.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from bench.setup import CASE, write_agencies


def _filer(url: str, agencies: str, routing: str, group: int, until: float, out) -> None:
    from hub.config import Settings
    from hub.intake import _store, situation_of
    from hub.reference import new_reference
    from hub.schemas import CaseInSchema
    from hub.services import Hub

    hub = Hub.from_settings(
        Settings(database_url=url, agencies_dir=Path(agencies), routing_file=Path(routing))
    )
    data = CaseInSchema().load(CASE)
    now = hub.clock.now()
    recipients = hub.router.route(situation_of(data, now.date())).recipients
    waits: list[float] = []
    while time.time() < until:
        starts = []
        with hub.db.engine.begin() as conn:
            for _ in range(group):
                starts.append(time.perf_counter())
                _store(
                    conn,
                    data,
                    new_reference(hub.random),
                    hub.random.token(),
                    recipients,
                    hub.directory,
                    hub.clock.now(),
                )
        done = time.perf_counter()
        waits.extend(done - s for s in starts)
    hub.close()
    out.put(waits)


def measure(work: Path, processes: int, group: int, seconds: float) -> tuple[float, float, float]:
    from hub.db import upgrade

    url = f"sqlite:///{work / f'group-{processes}-{group}.db'}"
    upgrade(url)
    agencies, routing = write_agencies(work / f"agencies-{processes}-{group}", "http://127.0.0.1:9")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3  # every process loaded before the clock starts
    until = start_at + seconds
    procs = [
        ctx.Process(
            target=_delayed, args=(start_at, url, str(agencies), str(routing), group, until, out)
        )
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    waits: list[float] = []
    for _ in procs:
        waits.extend(out.get())
    for p in procs:
        p.join()
    waits.sort()
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    return len(waits) / seconds, statistics.median(waits) * 1000, p99 * 1000


def _delayed(start_at: float, *args) -> None:
    import hub.services  # noqa: F401  (imports before the start, not in the measured time)

    time.sleep(max(0.0, start_at - time.time()))
    _filer(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loket-group-commit-"))
    print(
        f"{'processes':>9} {'group':>5} {'filings/s':>10} {'vs group 1':>10} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for processes in args.processes:
        base = None
        for group in args.groups:
            rate, p50, p99 = measure(work, processes, group, args.seconds)
            base = base or rate
            print(
                f"{processes:>9} {group:>5} {rate:>10,.0f} {rate / base:>10.2f} {p50:>7.2f} {p99:>7.2f}"
            )


if __name__ == "__main__":
    main()
