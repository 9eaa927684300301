"""Deliveries per second with 1, 2 and 4 `loket worker` processes on PostgreSQL, against the REST
simulator. Correctness is checked as it goes: the simulator must hold exactly N cases.

    .venv/bin/python bench/scaleout.py [--cases 2000] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Processes,
    free_port,
    machine,
    now_iso,
    pg_database,
    start_rest_sim,
    wait_until,
)
from bench.setup import file_backlog
from hub.config import Settings
from hub.db import upgrade
from hub.models import Delivery, DeliveryState
from hub.services import Hub

CASE = {
    "kind": "complaint",
    "domain": "telecom.billing",
    "language": "nl",
    "description": "Mijn factuur rekent roaming aan terwijl ik niet op reis was.",
    "incident_date": "2026-10-15",
    "complaint_date": "2026-10-20",
    "amount": 49.99,
    "consumer": {"name": "An Peeters", "email": "an@example.be"},
    "trader": {"name": "Telco NV", "enterprise_number": "0403.170.701"},
    "consent": {"share_with_agencies": True},
    "answers": {"contacted_trader": True, "court_case_pending": False},
}


def one_run(workers: int, n: int, logdir: Path) -> float:
    procs = Processes(logdir)
    try:
        with pg_database(f"loket_bench_scaleout_{workers}") as url:
            upgrade(url)
            sim = start_rest_sim(procs, free_port())
            import os

            os.environ["LOKET_OMBUDSMAN_TELECOM_URL"] = sim
            os.environ["LOKET_OMBUDSMAN_TELECOM_KEY"] = "bench-key"
            hub = Hub.from_settings(Settings(database_url=url))
            file_backlog(hub, n, CASE)
            env = {
                "LOKET_DATABASE_URL": url,
                "LOKET_OMBUDSMAN_TELECOM_URL": sim,
                "LOKET_OMBUDSMAN_TELECOM_KEY": "bench-key",
                "LOKET_DISPATCH_SECONDS": "0.05",
                "LOKET_POLL_SECONDS": "3600",
                "LOKET_HOUSEKEEPING_SECONDS": "3600",
            }
            started = time.perf_counter()
            for i in range(workers):
                procs.start(f"worker-{workers}-{i}", ["-m", "loket.cli", "worker"], env)

            def done() -> bool:
                with hub.db.session(read_only=True) as s:
                    return (
                        s.scalar(
                            select(func.count())
                            .select_from(Delivery)
                            .where(Delivery.state == DeliveryState.DONE)
                        )
                        == n
                    )

            wait_until(done, 600, "the backlog to drain", interval=0.05)
            elapsed = time.perf_counter() - started
            stats = requests.get(sim.replace("/api", "/_sim/stats"), timeout=5).json()
            assert stats["cases"] == n, f"simulator holds {stats['cases']} cases, expected {n}"
            hub.close()
            return n / elapsed
    finally:
        procs.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="loket-bench-"))
    print(
        f"# scale-out, {args.cases} deliveries, PostgreSQL, REST simulator; {machine()}; {now_iso()}"
    )
    base = None
    for workers in args.workers:
        rates = [one_run(workers, args.cases, logdir) for _ in range(args.runs)]
        median = statistics.median(rates)
        base = base or median
        print(
            f"workers={workers}  deliveries/s median={median:7.1f}  "
            f"spread={min(rates):.1f}..{max(rates):.1f}  x{median / base:.2f} of 1 worker",
            flush=True,
        )


if __name__ == "__main__":
    main()
