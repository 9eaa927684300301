"""Shared pieces of the benchmarks: a private PostgreSQL database, simulator and worker processes
started and stopped by PID, and a results writer. Nothing here is part of the test suite."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get(
    "LOKET_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def pg_database(name: str):
    """A fresh database on the PostgreSQL server of LOKET_BENCH_DATABASE_URL, dropped after."""
    base = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Processes:
    """Child processes started by the benchmark, stopped by PID."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        self.procs.clear()


def start_rest_sim(
    procs: Processes, port: int, profile: str = "ombudsman-telecom", workers_note: str = ""
) -> str:
    procs.start(
        f"sim-{port}",
        [
            "-m",
            "loket_simulators",
            "rest",
            "--profile",
            profile,
            "--port",
            str(port),
            "--step-seconds",
            "3600",
            "--api-key",
            "bench-key",
        ],
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_until(
        lambda: requests.get(url + "/health", headers={"X-API-Key": "bench-key"}, timeout=1).ok,
        30,
        "the simulator",
    )
    return url


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()} ({os.cpu_count()} cores, {cpu}, Python {platform.python_version()})"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
