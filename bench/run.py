"""Loket's benchmarks, each next to its denominator in the same run, written to bench/RESULTS.md.

    .venv/bin/python -m bench.run            # the full run (what `make bench` does)
    .venv/bin/python -m bench.run --quick    # a two-minute smoke (`make bench QUICK=1`)
    .venv/bin/python -m bench.run --only intake delivery

Figures (medians of repeated runs, with the spread):
1. intake: POST /api/v1/cases under wrk, Loket vs a minimal Flask + SQLAlchemy endpoint that
   validates the same JSON and inserts one row; gunicorn with 2 sync workers; SQLite and PostgreSQL.
2. delivery: drain a backlog to a sink with 1 and 2 worker processes vs (a) the same number of
   plain processes posting with requests.Session (the raw limit) and (b) Celery 5 on RabbitMQ.
3. polling: one full poll cycle over open assignments of 20 agencies, changes-since vs per case.
4. scale: status lookup and operator search p50/p99 at a large case count; worker RSS.
5. scale-out: deliveries per second with 1, 2 and 4 workers on PostgreSQL.
6. stats: the public statistics page p50/p99 at 1,000,000 cases (read from daily rollups).
Next to each throughput figure, the CPU milliseconds per item of the processes doing the work
(per delivery, per filing), and one idle worker's CPU.
Correctness is checked as it goes: the sink counts exactly N distinct cases, rows equal 2xx.

`--only` measures those figures and merges their rows into the existing RESULTS.md (the others
keep theirs, each re-measured row says when and by what command); the plot is redrawn only when
every series it shows was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Processes,
    free_port,
    machine,
    now_iso,
    pg_database,
    wait_until,
)
from bench.setup import (  # noqa: E402
    CASE,
    file_backlog,
    ref_of,
    reset_deliveries,
    seed_cases,
    token_of,
    write_agencies,
)
from hub.config import Settings  # noqa: E402
from hub.db import Database, upgrade  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
PLOT = ROOT / "bench" / "results.png"


@dataclass
class Row:
    figure: str
    loket: float
    denominator: float | None
    unit: str
    spread: str
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.loket / self.denominator if self.denominator else None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        print(
            f"  {row.figure}: {row.loket:,.1f} {row.unit} vs {row.denominator or 0:,.1f}  "
            f"ratio {ratio}  [{row.spread}]  {row.goal} {'met' if row.met else 'NOT met' if row.met is False else ''}",
            flush=True,
        )


def spread(values: list[float], digits: int = 1) -> str:
    return f"{min(values):,.{digits}f}-{max(values):,.{digits}f} (n={len(values)})"


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their live descendants:
    gunicorn's and Celery's pool workers are children of the process the benchmark started, and
    their CPU is part of the cost of the item. A child that already exited is not counted."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            top = psutil.Process(pid)
            tree = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in tree:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def env_for(url: str, agencies: Path | None = None, routing: Path | None = None) -> dict[str, str]:
    env = {
        "LOKET_DATABASE_URL": url,
        "LOKET_DISPATCH_SECONDS": "0.05",
        "LOKET_POLL_SECONDS": "3600",
        "LOKET_HOUSEKEEPING_SECONDS": "3600",
        "LOKET_SMTP_PORT": str(free_port()),
    }
    if agencies:
        env["LOKET_AGENCIES_DIR"] = str(agencies)
    if routing:
        env["LOKET_ROUTING_FILE"] = str(routing)
    return env


# -------------------------------------------------------------------------------------- intake

LUA = """
wrk.method = "POST"
wrk.body   = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, seconds: int, lua: Path) -> tuple[float, int, int]:
    """(requests/s, total requests, non-2xx responses)"""
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, total, int(bad.group(1)) if bad else 0


def intake(report: Report, quick: bool, work: Path) -> None:
    print("intake", flush=True)
    seconds, runs = (4, 1) if quick else (15, 3)
    lua = work / "post_case.lua"
    lua.write_text(LUA.replace("{body}", json.dumps(CASE)))
    for backend in ("sqlite", "postgresql"):
        loket_rates, minimal_rates = [], []
        cpu: dict[str, list[float]] = {"loket": [], "minimal": []}
        for run in range(runs):
            for who in ("loket", "minimal"):
                procs = Processes(work / "logs")
                try:
                    rate, ms = _intake_once(procs, who, backend, seconds, lua, work, run)
                finally:
                    procs.stop_all()
                (loket_rates if who == "loket" else minimal_rates).append(rate)
                cpu[who].append(ms)
        lo, mi = statistics.median(loket_rates), statistics.median(minimal_rates)
        report.add(
            Row(
                f"intake req/s, {backend}",
                lo,
                mi,
                "req/s",
                f"Loket {spread(loket_rates)}; minimal {spread(minimal_rates)}",
                ">= 0.8 of minimal",
                lo / mi >= 0.8,
            )
        )
        report.add(
            Row(
                f"server CPU per filing, {backend}",
                statistics.median(cpu["loket"]),
                statistics.median(cpu["minimal"]),
                "ms",
                f"Loket {spread(cpu['loket'], 2)}; minimal {spread(cpu['minimal'], 2)}",
                note="gunicorn master + 2 workers, CPU during wrk / requests (the database's not "
                "counted)",
            )
        )


def _intake_once(
    procs: Processes, who: str, backend: str, seconds: int, lua: Path, work: Path, run: int
) -> tuple[float, float]:
    """(requests/s, the server's CPU milliseconds per request)"""
    port = free_port()
    if backend == "sqlite":
        db_file = work / f"intake-{who}-{run}.db"
        db_file.unlink(missing_ok=True)
        ctx = None
        url = f"sqlite:///{db_file}"
    else:
        ctx = pg_database(f"loket_bench_intake_{who}")
        url = ctx.__enter__()
    try:
        if who == "loket":
            upgrade(url)
            server = procs.start(
                f"intake-{who}",
                ["-m", "loket.cli", "serve", "--port", str(port), "--workers", "2", "--quiet"],
                # wrk files from one address: the per-address API limit (20 per hour) would
                # refuse all but the first; it is still counted, as in production
                {**env_for(url), "LOKET_API_FILING_LIMIT": "100000000 per hour"},
            )
        else:
            from bench.peers.minimal_intake import prepare

            prepare(url)
            server = procs.start(
                f"intake-{who}",
                [
                    "-m",
                    "gunicorn",
                    "-w",
                    "2",
                    "-b",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                    "bench.peers.minimal_intake:app",
                ],
                {"MINIMAL_DATABASE_URL": url},
            )
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: requests.post(base + "/api/v1/cases", json=CASE, timeout=5).status_code == 201,
            60,
            f"{who} to serve",
        )
        cpu_before = _tree_cpu([server.pid])
        rps, total, bad = wrk(base + "/api/v1/cases", seconds, lua)
        cpu_ms = (_tree_cpu([server.pid]) - cpu_before) * 1000 / max(total, 1)
        if bad:
            raise AssertionError(f"{who} on {backend}: {bad} non-2xx responses")
        db = Database(url)
        table = "cases" if who == "loket" else "minimal_cases"
        with db.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        db.dispose()
        # every 2xx is a stored case (+1 for the readiness probe; wrk may cut a last request)
        if not (total <= rows <= total + 1 + 16):
            raise AssertionError(f"{who} on {backend}: {rows} rows for {total} requests")
        return rps, cpu_ms
    finally:
        if ctx is not None:
            procs.stop_all()
            ctx.__exit__(None, None, None)


# ------------------------------------------------------------------------------------ delivery


def _file_backlog(url: str, agencies: Path, routing: Path, n: int) -> None:
    from hub.services import Hub

    hub = Hub.from_settings(Settings(database_url=url, agencies_dir=agencies, routing_file=routing))
    file_backlog(hub, n, CASE)
    hub.close()


def _sink_stats(sink: str) -> dict:
    return requests.get(sink + "/_stats", timeout=5).json()


def _drain_loket(
    procs: Processes,
    url: str,
    env: dict,
    workers: int,
    n: int,
    sink: str,
    rss: list[float] | None = None,
    cpu: list[float] | None = None,
) -> float:
    """Deliveries/s from the sink's first to its last receipt. `cpu` gets the workers' CPU
    milliseconds per delivery over the same stretch: from the first receipt the sink saw until
    every row is committed as done (start-up and imports are not a delivery's cost)."""
    db = Database(url)
    reset_deliveries(db)
    requests.post(sink + "/_reset", timeout=5)
    started = [
        procs.start(f"worker-{workers}-{i}", ["-m", "loket.cli", "worker"], env)
        for i in range(workers)
    ]

    pids = [p.pid for p in started]
    baseline: list[tuple[float, int]] = []

    def done() -> bool:
        if rss is not None:
            rss.append(max(_rss_mb(pid) for pid in pids))
        distinct = _sink_stats(sink)["distinct"]
        if distinct and not baseline:
            baseline.append((_tree_cpu(pids), distinct))
        return distinct >= n

    from hub.models import Delivery, DeliveryState

    def undone() -> int:
        with db.session(read_only=True) as s:
            return s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.state != DeliveryState.DONE)
            )

    wait_until(done, 900, "Loket to drain the backlog", interval=0.1)
    if cpu is not None:
        with contextlib.suppress(TimeoutError):  # rows not done are reported below
            wait_until(lambda: undone() == 0, 30, "the last receipts to be committed")
        cpu0, seen = baseline[0] if baseline else (0.0, 0)
        cpu.append((_tree_cpu(pids) - cpu0) * 1000 / max(n - seen, 1))
    for p in started:
        procs.stop(p)
    stats = _sink_stats(sink)
    left = undone()
    db.dispose()
    if stats["distinct"] != n or left:
        raise AssertionError(f"Loket: sink holds {stats['distinct']} cases of {n}; {left} not done")
    return (n - 1) / stats["span"]


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _drain_raw(
    procs: Processes,
    sink: str,
    payload: Path,
    processes: int,
    n: int,
    cpu: list[float] | None = None,
) -> float:
    """Deliveries/s of plain posting processes; `cpu` gets their CPU milliseconds per delivery
    (each process reports its posting loop's CPU, start-up not counted)."""
    requests.post(sink + "/_reset", timeout=5)
    share = n // processes
    cpu_files = [payload.parent / f"raw-cpu-{processes}-{i}" for i in range(processes)]
    started = [
        procs.start(
            f"raw-{processes}-{i}",
            [
                "-m",
                "bench.raw_post",
                "--url",
                sink + "/cases",
                "--payload",
                str(payload),
                "--count",
                str(share if i < processes - 1 else n - share * i),
                "--offset",
                str(i * share),
                "--cpu-file",
                str(cpu_files[i]),
            ],
        )
        for i in range(processes)
    ]
    for p in started:
        p.wait(timeout=900)
    if cpu is not None:
        cpu.append(sum(float(f.read_text()) for f in cpu_files) * 1000 / n)
    stats = _sink_stats(sink)
    if stats["distinct"] != n:
        raise AssertionError(f"raw: sink holds {stats['distinct']} of {n}")
    return (n - 1) / stats["span"]


def _drain_celery(
    procs: Processes, sink: str, payload: dict, n: int, cpu: list[float] | None = None
) -> float:
    """Deliveries/s of Celery; `cpu` gets the CPU milliseconds per delivery of its worker and
    prefork pool, from the sink's first receipt to its last."""
    from bench.peers.celery_app import app, post_case

    requests.post(sink + "/_reset", timeout=5)
    app.control.purge()
    for i in range(n):
        post_case.apply_async(args=[sink + "/cases", payload, f"celery-{i}"])
    worker = procs.start(
        "celery",
        [
            "-m",
            "celery",
            "-A",
            "bench.peers.celery_app",
            "worker",
            "--concurrency",
            "8",
            "--pool",
            "prefork",
            "-Q",
            "loket-bench",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
    )
    baseline: list[tuple[float, int]] = []

    def done() -> bool:
        distinct = _sink_stats(sink)["distinct"]
        if distinct and not baseline:
            baseline.append((_tree_cpu([worker.pid]), distinct))
        return distinct >= n

    wait_until(done, 900, "Celery to drain", interval=0.1)
    if cpu is not None:
        cpu0, seen = baseline[0] if baseline else (0.0, 0)
        cpu.append((_tree_cpu([worker.pid]) - cpu0) * 1000 / max(n - seen, 1))
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    stats = _sink_stats(sink)
    if stats["distinct"] != n:
        raise AssertionError(f"Celery: sink holds {stats['distinct']} of {n}")
    return (n - 1) / stats["span"]


def delivery(report: Report, quick: bool, work: Path, scaleout: bool) -> None:
    n, runs = (500, 1) if quick else (5000, 3)
    print(f"delivery ({n} cases)", flush=True)
    procs = Processes(work / "logs")
    sink_port = free_port()
    procs.start("sink", ["-m", "bench.sink", "--port", str(sink_port)])
    sink = f"http://127.0.0.1:{sink_port}"
    wait_until(lambda: requests.get(sink + "/_stats", timeout=1).ok, 30, "the sink")
    agencies, routing = write_agencies(work / "delivery", sink)
    payload_file = work / "payload.json"
    try:
        with pg_database("loket_bench_delivery") as url:
            upgrade(url)
            _file_backlog(url, agencies, routing, n)
            from hub.services import Hub

            hub = Hub.from_settings(
                Settings(database_url=url, agencies_dir=agencies, routing_file=routing)
            )
            from hub.canonical import case_document
            from hub.models import Assignment, Case

            with hub.db.session(read_only=True) as s:
                a = s.scalars(select(Assignment).limit(1)).one()
                payload = hub.directory[a.agency_id].render(
                    case_document(s.get(Case, a.case_id), a)
                )
            hub.close()
            payload_file.write_text(json.dumps(payload))
            env = env_for(url, agencies, routing)
            rss: list[float] = []
            best: dict[int, float] = {}
            lo_cpu: dict[int, list[float]] = {1: [], 2: []}
            raw_cpu: dict[int, list[float]] = {1: [], 2: []}
            for workers in (1, 2):
                lo = [
                    _drain_loket(procs, url, env, workers, n, sink, rss, lo_cpu[workers])
                    for _ in range(runs)
                ]
                raw = [
                    _drain_raw(procs, sink, payload_file, workers, n, raw_cpu[workers])
                    for _ in range(runs)
                ]
                report.add(
                    Row(
                        f"delivery/s, {workers} worker(s) vs raw limit",
                        statistics.median(lo),
                        statistics.median(raw),
                        "deliveries/s",
                        f"Loket {spread(lo)}; raw {spread(raw)}",
                        ">= 0.7 of raw",
                        statistics.median(lo) / statistics.median(raw) >= 0.7,
                    )
                )
                report.series.setdefault("Loket", []).append((workers, statistics.median(lo)))
                report.series.setdefault("raw", []).append((workers, statistics.median(raw)))
                best[workers] = statistics.median(lo)
            celery_cpu: list[float] = []
            celery = [_drain_celery(procs, sink, payload, n, celery_cpu) for _ in range(runs)]
            for workers, rate in sorted(best.items()):
                report.add(
                    Row(
                        f"delivery/s, {workers} Loket worker(s) vs Celery (prefork 8, acks_late)",
                        rate,
                        statistics.median(celery),
                        "deliveries/s",
                        f"Celery {spread(celery)}",
                        ">= 1.5x Celery",
                        rate / statistics.median(celery) >= 1.5,
                    )
                )
            for workers in (1, 2):
                ms = statistics.median(lo_cpu[workers])
                report.add(
                    Row(
                        f"worker CPU per delivery, {workers} worker(s), PostgreSQL",
                        ms,
                        statistics.median(raw_cpu[workers]),
                        "ms",
                        f"Loket {spread(lo_cpu[workers], 2)}; raw {spread(raw_cpu[workers], 2)}",
                        "<= 0.5 ms",
                        ms <= 0.5,
                        f"Celery (prefork 8, worker + pool) {statistics.median(celery_cpu):.2f} ms, "
                        f"{spread(celery_cpu, 2)}; the database's CPU not counted",
                    )
                )
            report.add(
                Row(
                    "worker RSS while dispatching (max)",
                    max(rss),
                    None,
                    "MB",
                    f"{len(rss)} samples",
                    "< 200 MB",
                    max(rss) < 200,
                )
            )
            idle_worker(report, procs, agencies, routing, quick)
            if scaleout:
                _scaleout(report, procs, url, env, n, sink, runs)
    finally:
        procs.stop_all()


def idle_worker(
    report: Report, procs: Processes, agencies: Path, routing: Path, quick: bool
) -> None:
    """One `loket worker` with the shipped timings on an empty database with the bench agency:
    what a quiet deployment pays to keep it running (its dispatch ticks and housekeeping)."""
    settle, window = 3.0, 10.0 if quick else 20.0
    print(f"idle worker ({window:.0f} s)", flush=True)
    with pg_database("loket_bench_idle") as url:
        upgrade(url)
        env = {
            "LOKET_DATABASE_URL": url,
            "LOKET_AGENCIES_DIR": str(agencies),
            "LOKET_ROUTING_FILE": str(routing),
            "LOKET_SMTP_PORT": str(free_port()),
        }
        worker = procs.start("worker-idle", ["-m", "loket.cli", "worker"], env)
        log = procs.logdir / "worker-idle.log"
        try:
            wait_until(lambda: "started:" in log.read_text(errors="replace"), 60, "the worker")
            time.sleep(settle)
            cpu0, t0 = _tree_cpu([worker.pid]), time.monotonic()
            time.sleep(window)
            cpu1, t1 = _tree_cpu([worker.pid]), time.monotonic()
            if worker.poll() is not None:
                raise AssertionError(f"the idle worker exited ({worker.returncode}); see {log}")
        finally:
            procs.stop(worker)
    share = (cpu1 - cpu0) / (t1 - t0) * 100
    report.add(
        Row(
            "idle worker CPU",
            share,
            None,
            "% of a core",
            f"{cpu1 - cpu0:.2f} CPU s over {t1 - t0:.0f} s after {settle:.0f} s settling",
            "< 1 % of a core",
            share < 1,
            "1 worker, shipped timings (dispatch every 1 s, housekeeping every 10 s), empty "
            "PostgreSQL database, 1 bench agency polled hourly",
        )
    )


def _machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as fh:
        parts = [float(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def _scaleout(
    report: Report, procs: Processes, url: str, env: dict, n: int, sink: str, runs: int
) -> None:
    print("scale-out", flush=True)
    sink_pid = procs.procs[0].pid
    base = None
    for workers in (1, 2, 4):
        rates, sink_cpu, machine_cpu, worker_cpu = [], [], [], []
        for _ in range(runs):
            c0, (b0, t0), w0 = _tree_cpu([sink_pid]), _machine_busy(), time.monotonic()
            rates.append(_drain_loket(procs, url, env, workers, n, sink, cpu=worker_cpu))
            c1, (b1, t1), w1 = _tree_cpu([sink_pid]), _machine_busy(), time.monotonic()
            sink_cpu.append((c1 - c0) / (w1 - w0))
            machine_cpu.append((b1 - b0) / (t1 - t0))
        median = statistics.median(rates)
        base = base or median
        report.series.setdefault("scale-out", []).append((workers, median))
        saturated = (
            "the sink (one core)"
            if max(sink_cpu) > 0.9
            else "the machine's CPUs"
            if statistics.median(machine_cpu) > 0.9
            else "nothing"
        )
        report.add(
            Row(
                f"scale-out: {workers} worker(s), PostgreSQL",
                median,
                base,
                "deliveries/s",
                spread(rates),
                "2 workers >= 1.7x one" if workers == 2 else "",
                (median / base >= 1.7) if workers == 2 else None,
                f"worker CPU {statistics.median(worker_cpu):.2f} ms per delivery; "
                f"sink CPU {statistics.median(sink_cpu):.0%}, machine CPU "
                f"{statistics.median(machine_cpu):.0%}; saturated: {saturated}",
            )
        )


# ------------------------------------------------------------------------------------- polling


def polling(report: Report, quick: bool, work: Path) -> None:
    n = 5000 if quick else 100_000
    print(f"polling ({n} open assignments over 20 agencies)", flush=True)
    procs = Processes(work / "logs")
    sink_port = free_port()
    procs.start("poll-sink", ["-m", "bench.sink", "--port", str(sink_port)])
    sink = f"http://127.0.0.1:{sink_port}"
    wait_until(lambda: requests.get(sink + "/_stats", timeout=1).ok, 30, "the sink")
    try:
        for mode in ("changes", "per_case"):
            agencies, routing = write_agencies(
                work / f"poll-{mode}", sink, count=20, per_case=mode == "per_case"
            )
            with pg_database(f"loket_bench_poll_{mode}") as url:
                upgrade(url)
                ids = [f"bench-{i:02d}" for i in range(20)]
                db = Database(url)
                seed_cases(db, n, ids)
                db.dispose()
                from hub.services import Hub
                from scheduler.worker import Worker

                hub = Hub.from_settings(
                    Settings(database_url=url, agencies_dir=agencies, routing_file=routing)
                )
                worker = Worker(hub, "bench")
                requests.post(sink + "/_reset", timeout=5)
                started = time.perf_counter()
                for agency_id in ids:
                    worker.poll_agency(agency_id)
                elapsed = time.perf_counter() - started
                gets = _sink_stats(sink)["gets"]
                hub.close()
                report.add(
                    Row(
                        f"one poll cycle, {n:,} open cases, {mode.replace('_', ' ')}",
                        elapsed,
                        None,
                        "s",
                        f"{gets:,} requests to the agencies",
                        note=f"{gets / elapsed:,.0f} requests/s",
                    )
                )
    finally:
        procs.stop_all()


# --------------------------------------------------------------------------------------- scale


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def scale(report: Report, quick: bool, work: Path) -> None:
    n, lookups = (50_000, 300) if quick else (1_000_000, 2000)
    print(f"scale ({n:,} cases)", flush=True)
    for backend in ("postgresql", "sqlite"):
        if backend == "sqlite":
            path = work / "scale.db"
            path.unlink(missing_ok=True)
            ctx, url = None, f"sqlite:///{path}"
        else:
            ctx = pg_database("loket_bench_scale")
            url = ctx.__enter__()
        try:
            upgrade(url)
            db = Database(url)
            agencies = [f"bench-{i:02d}" for i in range(20)]
            t = time.perf_counter()
            seed_cases(db, n, agencies)
            print(f"  seeded {backend} in {time.perf_counter() - t:.0f}s", flush=True)
            from hub.search import search
            from hub.services import Hub
            from loket.app import create_app

            agencies_dir, routing = write_agencies(
                work / f"scale-{backend}", "http://127.0.0.1:9", count=20
            )
            hub = Hub.from_settings(
                Settings(database_url=url, agencies_dir=agencies_dir, routing_file=routing), db=db
            )
            client = create_app(hub=hub).test_client()
            rng = random.Random(7)
            status_ms = []
            for _ in range(lookups):
                i = rng.randrange(n)
                t = time.perf_counter()
                r = client.get(
                    f"/api/v1/cases/{ref_of(i)}", headers={"Authorization": f"Bearer {token_of(i)}"}
                )
                status_ms.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    raise AssertionError(f"status lookup answered {r.status_code}")
            search_ms = []
            queries = ["c{}@example.be", "Trader {:05d}", "Consumer {:07d}", "0{:09d}"]
            for k in range(lookups // 2):
                i = rng.randrange(n)
                q = queries[k % 4].format(
                    i % 5000
                    if "Trader" in queries[k % 4]
                    else i % 900000000 + 100000000
                    if queries[k % 4].startswith("0")
                    else i
                )
                t = time.perf_counter()
                search(hub.db, q)
                search_ms.append((time.perf_counter() - t) * 1000)
            p50, p99 = _percentiles(status_ms)
            report.add(
                Row(
                    f"status lookup p99, {n:,} cases, {backend}",
                    p99,
                    None,
                    "ms",
                    f"p50 {p50:.2f} ms: GET /api/v1/cases/<ref> with the token, through the "
                    "Flask app (case, lines, timeline)",
                    "< 10 ms",
                    p99 < 10,
                )
            )
            s50, s99 = _percentiles(search_ms)
            report.add(
                Row(
                    f"operator search p99, {n:,} cases, {backend}",
                    s99,
                    None,
                    "ms",
                    f"p50 {s50:.2f} ms (email, trader name, consumer name, KBO)",
                    "< 200 ms",
                    s99 < 200,
                )
            )
            report.series.setdefault(f"latency {backend}", []).extend(
                [(50, p50), (99, p99), (50.5, s50), (99.5, s99)]
            )
            hub.close()
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)


def stats_page(report: Report, quick: bool, work: Path, cases: int | None = None) -> None:
    """The public statistics page at scale: it reads only the daily rollups, so its p99 should
    not grow with the cases. Source rows are generated in chunks with COPY (PostgreSQL) or
    executemany (SQLite) by tests/support/statsdata.py; the full rollup, one daily (incremental)
    rollup and the page's first view (charts drawn) are timed once, then p50/p99 of the page."""
    from datetime import UTC, datetime

    from hub import statistics as stats
    from hub.services import Hub
    from loket.app import create_app
    from tests.support import statsdata

    n = cases or (50_000 if quick else 1_000_000)
    views = 300 if quick else 2000
    print(f"statistics page ({n:,} cases)", flush=True)
    now = datetime.now(UTC)
    for backend in ("postgresql", "sqlite"):
        if backend == "sqlite":
            path = work / "stats.db"
            path.unlink(missing_ok=True)
            ctx, url = None, f"sqlite:///{path}"
        else:
            ctx = pg_database("loket_bench_stats")
            url = ctx.__enter__()
        try:
            upgrade(url)
            db = Database(url)
            t = time.perf_counter()
            chunk = 100_000
            for i, start in enumerate(range(0, n, chunk)):
                statsdata.generate(db, min(chunk, n - start), now, seed=18 + i)
            print(f"  seeded {backend} in {time.perf_counter() - t:.0f}s", flush=True)
            t = time.perf_counter()
            run = stats.rollup(db, now, full=True)
            full_s = time.perf_counter() - t
            t = time.perf_counter()
            stats.rollup(db, now)
            daily_s = time.perf_counter() - t
            hub = Hub.from_settings(
                Settings(database_url=url, var_dir=work / f"var-{backend}"), db=db
            )
            client = create_app(hub=hub).test_client()
            t = time.perf_counter()
            assert client.get("/nl/statistics").status_code == 200
            first_ms = (time.perf_counter() - t) * 1000
            samples = []
            for k in range(views):
                lang = ("nl", "fr", "de", "en")[k % 4]
                t = time.perf_counter()
                r = client.get(f"/{lang}/statistics")
                samples.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    raise AssertionError(f"statistics page answered {r.status_code}")
            p50, p99 = _percentiles(samples[4:])  # each language's first view draws its charts
            report.add(
                Row(
                    f"statistics page p99, {n:,} cases, {backend}",
                    p99,
                    None,
                    "ms",
                    f"p50 {p50:.2f} ms over {views} views in 4 languages; {run.rows:,} rollup rows; "
                    f"full rollup {full_s:.1f} s, daily rollup {daily_s:.1f} s, "
                    f"first view (charts drawn) {first_ms:.0f} ms",
                    "< 100 ms",
                    p99 < 100,
                )
            )
            hub.close()
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)


# ------------------------------------------------------------------------------------- results


READING = [
    "## Reading these figures",
    "",
    "- **Intake** does more than its denominator by design: the minimal endpoint validates and",
    "  inserts one row; Loket validates against the canonical schema, routes, and writes the case,",
    "  its parties, one line and one outbox row per agency, the first timeline events, the evidence",
    "  chain entry and the confirmation mail, in one transaction (one statement on PostgreSQL).",
    "  Profiled in-process (`python -m bench.profile_intake`, pyinstrument): a third to a half",
    "  of a filing is the database (on SQLite the INSERTs go straight to the driver and the COMMIT",
    "  writes pages of seven tables and their indexes, where the minimal endpoint writes one; on",
    "  PostgreSQL one Core statement), then the web layer (Flask, werkzeug, the rate limiter),",
    "  then validation, routing and building the rows. `python -m bench.sqlite_group_commit`",
    "  measures what committing filings in groups would gain on SQLite. Both servers share two",
    "  cores with the database and `wrk`.",
    "- **Delivery** keeps the outbox's promises the denominators do not: each delivery is claimed",
    "  under a lease, rendered through the agency's mapping, logged as an attempt, and its receipt,",
    "  the line's status move, its timeline event and the consumer's notification are committed",
    "  (in groups) before the row counts as done. The raw limit posts and forgets; Celery acks",
    "  the message but records nothing about the case. On two cores the worker, the database and",
    "  the sink compete for the same CPU, which the scale-out rows show (4 workers saturate it).",
    "- **CPU per item** rows divide the CPU time (user + system, read with psutil) of the",
    "  processes doing the work by the items they did; the database's CPU is in none of them.",
    "  Per delivery: the `loket worker` processes from the sink's first receipt until every row",
    "  is committed as done; the raw posters' posting loop (start-up not counted); Celery's worker",
    "  with its prefork pool (in the row's note). Per filing: the gunicorn master and its two",
    "  workers while `wrk` ran, divided by its requests. **Idle worker CPU** is one `loket worker`",
    "  with the shipped timings (dispatch every second, housekeeping every 10 s) on an empty",
    "  database with the bench agency, over 20 s after 3 s of settling.",
    "- **Scale-out** names what saturated: the sink when it uses more than 90 % of its core, the",
    "  machine's CPUs when they are more than 90 % busy; two cores cannot show a 4-worker gain.",
    "- **Statistics page** reads only the daily rollups (`stat_rollups`, recomputed by the",
    "  worker from the last run's day), so its cost follows the months and services shown, not",
    "  the cases; each process keeps the figures and drawn charts until the next rollup run.",
    "  The full rollup (first run, or `loket stats rollup --full`) is the one cost that grows",
    "  with the cases.",
]


# Which --only choice measures a row, by the start of its figure, in RESULTS.md's order.
SECTIONS = {
    "intake": ("intake req/s", "server CPU per filing"),
    "delivery": ("delivery/s", "worker CPU per delivery", "worker RSS", "idle worker CPU"),
    "scaleout": ("scale-out",),
    "polling": ("one poll cycle",),
    "scale": ("status lookup", "operator search"),
    "stats": ("statistics page",),
}
# The plot shows delivery throughput (delivery, scale-out) and latency at scale.
PLOTTED = {"delivery", "scaleout", "scale"}
TABLE_HEAD = [
    "| figure | Loket | denominator | ratio | spread | goal | met |",
    "|---|---|---|---|---|---|---|",
]


def _section(figure: str) -> str | None:
    return next((k for k, starts in SECTIONS.items() if figure.startswith(starts)), None)


def _row_line(r: Row, stamp: str = "") -> str:
    ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
    digits = 2 if r.denominator is not None and r.denominator < 10 else 1
    den = f"{r.denominator:,.{digits}f} {r.unit}" if r.denominator is not None else ""
    met = {True: "yes", False: "**no**", None: ""}[r.met]
    spread_note = r.spread + (f"; {r.note}" if r.note else "") + (f" ({stamp})" if stamp else "")
    return (
        f"| {r.figure} | {r.loket:,.2f} {r.unit} | {den} | {ratio} | {spread_note} "
        f"| {r.goal} | {met} |"
    )


def _merged_rows(report: Report, stamp: str) -> tuple[str | None, list[str]]:
    """The existing RESULTS.md's first line after the title and its table, with the sections this
    run measured replaced by the new rows (each stamped) and every other row kept as it was."""
    if not RESULTS.exists():
        return None, [_row_line(r, stamp) for r in report.rows]
    text_lines = RESULTS.read_text().splitlines()
    header = next((ln for ln in text_lines if ln.startswith("Machine:")), None)
    old = [ln for ln in text_lines if ln.startswith("| ") and ln not in TABLE_HEAD]
    new: dict[str | None, list[str]] = {}
    for r in report.rows:
        new.setdefault(_section(r.figure), []).append(_row_line(r, stamp))
    rows: list[str] = []
    for section in [*SECTIONS, None]:
        if section in new:
            rows += new[section]
        else:
            rows += [ln for ln in old if _section(ln.split("|")[1].strip()) == section]
    return header, rows


def write_results(report: Report, command: str, quick: bool, only: set[str] | None) -> None:
    """Write RESULTS.md: the whole table after a full run; after `--only`, the measured rows
    merged into the existing table. The plot is redrawn only when all its series were measured,
    so a partial run does not leave it with series missing."""
    header = (
        f"Machine: {machine()}. Date: {now_iso()}. Command: `{command}`"
        + (" (QUICK: smoke sizes, not the figures to quote)" if quick else "")
        + "."
    )
    if only is None:
        rows = [_row_line(r) for r in report.rows]
    else:
        stamp = f"measured {now_iso()} by `{command}`" + (", QUICK: smoke sizes" if quick else "")
        old_header, rows = _merged_rows(report, stamp)
        header = old_header or header
    lines = ["# Benchmark results", "", header, "", *TABLE_HEAD, *rows]
    if report.notes:
        lines += ["", *[f"- {n}" for n in report.notes]]
    lines += ["", "![scale-out and latency](results.png)", "", *READING, ""]
    RESULTS.write_text("\n".join(lines))
    if only is None or PLOTTED.issubset(only | ({"delivery"} if "scaleout" in only else set())):
        _plot(report)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}", flush=True)
    else:
        print(
            f"merged {len(report.rows)} row(s) into {RESULTS.relative_to(ROOT)}; kept "
            f"{PLOT.relative_to(ROOT)} (this run did not measure all of its series)",
            flush=True,
        )


def _plot(report: Report) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("scale-out", "Loket", "raw"):
        if name in report.series:
            xs, ys = zip(*sorted(report.series[name]), strict=True)
            left.plot(xs, ys, marker="o", label=name)
    left.set_xlabel("worker processes")
    left.set_ylabel("deliveries / s")
    left.set_title("Delivery throughput")
    left.legend()
    bars, labels = [], []
    for name, points in report.series.items():
        if name.startswith("latency"):
            for x, y in points:
                labels.append(
                    f"{name.split()[1][:2]} {'status' if x in (50, 99) else 'search'} p{int(x)}"
                )
                bars.append(y)
    if bars:
        right.barh(labels, bars)
        right.set_xscale("log")
        right.set_xlabel("ms (log)")
        right.set_title("Latency at scale")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=["intake", "delivery", "polling", "scale", "scaleout", "stats"],
    )
    parser.add_argument(
        "--stats-cases", type=int, help="cases for the statistics benchmark (default 1,000,000)"
    )
    args = parser.parse_args()
    only = set(args.only or ["intake", "delivery", "polling", "scale", "scaleout", "stats"])
    work = Path(tempfile.mkdtemp(prefix="loket-bench-"))
    report = Report()
    print(f"# Loket benchmarks on {machine()}, {now_iso()} (work dir {work})", flush=True)
    if "intake" in only:
        intake(report, args.quick, work)
    if "delivery" in only or "scaleout" in only:
        delivery(report, args.quick, work, scaleout="scaleout" in only)
    if "polling" in only:
        polling(report, args.quick, work)
    if "scale" in only:
        scale(report, args.quick, work)
    if "stats" in only:
        stats_page(report, args.quick, work, args.stats_cases)
    if args.only:
        command = "python -m bench.run" + (" --quick" if args.quick else "")
        command += f" --only {' '.join(sorted(only))}"
        write_results(report, command, args.quick, only)
    else:
        write_results(report, "make bench" + (" QUICK=1" if args.quick else ""), args.quick, None)


if __name__ == "__main__":
    main()
