"""Shared fixtures: databases (SQLite and PostgreSQL), simulators, the hub, real processes.

Every database-facing test runs twice: on SQLite and on PostgreSQL. PostgreSQL comes from
LOKET_TEST_DATABASE_URL (CI sets it, see .ci/run); without it those runs are skipped with the
reason, and under LOKET_REQUIRE_PEERS=1 they fail instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.clock import FrozenClock
from hub.config import ROOT, Settings, normalise_database_url
from hub.db import Database, upgrade
from hub.models import Base
from hub.services import Hub

pytest_plugins = ["pytester"]

REQUIRE_PEERS = os.environ.get("LOKET_REQUIRE_PEERS") == "1"
PG_URL = os.environ.get("LOKET_TEST_DATABASE_URL")


def peer_missing(reason: str) -> None:
    """Skip with the reason; under LOKET_REQUIRE_PEERS=1 (CI) fail instead."""
    if REQUIRE_PEERS:
        pytest.fail(f"LOKET_REQUIRE_PEERS=1 but a peer is missing: {reason}", pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------------------------ databases


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    if not PG_URL:
        peer_missing(
            "PostgreSQL not configured: set LOKET_TEST_DATABASE_URL "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test); .ci/run does"
        )
    base = make_url(normalise_database_url(PG_URL))
    name = f"loket_test_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        peer_missing(
            f"PostgreSQL at {base.render_as_string(hide_password=True)} is not usable: {exc}"
        )
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "loket.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "loket.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_server_url")
    _truncate_all(url)
    return url


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


# ---------------------------------------------------------------------------------------- clock


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


# ------------------------------------------------------------------------------------ simulators

API_KEYS = {"ombudsman-telecom": "test-telecom-key", "consumer-mediation": "test-mediation-key"}
# agency -> the simulator profile it plays (its own: contracts/agencies/<id>/simulator.yaml)
SIM_PROFILES = {
    "ombudsman-telecom": "ombudsman-telecom",
    "consumer-mediation": "consumer-mediation",
}


def env_prefix(agency_id: str) -> str:
    return "LOKET_" + agency_id.upper().replace("-", "_")


def agency_schema(agency_id: str) -> dict:
    import json

    return json.loads(
        (ROOT / "contracts" / "agencies" / agency_id / "case.schema.json").read_text()
    )


@dataclass
class Sims:
    servers: dict[str, SimulatorServer]

    def system(self, agency_id: str) -> AgencySystem:
        return self.servers[agency_id].system

    def env(self) -> dict[str, str]:
        out = {}
        for agency_id, server in self.servers.items():
            out[env_prefix(agency_id) + "_URL"] = server.url
            out[env_prefix(agency_id) + "_KEY"] = API_KEYS[agency_id]
        return out


@pytest.fixture
def sims(clock, monkeypatch) -> Iterator[Sims]:
    """Both REST agency simulators on loopback, sharing the test's clock; the env points at them."""
    servers = {
        agency_id: SimulatorServer(
            AgencySystem(
                profiles()[profile],
                step_seconds=60,
                api_key=API_KEYS[agency_id],
                schema=agency_schema(agency_id),
                clock=clock.now,
            )
        ).start()
        for agency_id, profile in SIM_PROFILES.items()
    }
    result = Sims(servers)
    for key, value in result.env().items():
        monkeypatch.setenv(key, value)
    yield result
    for server in servers.values():
        server.stop()


@pytest.fixture
def hub(db, sims, clock) -> Iterator[Hub]:
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.directory.close()


@pytest.fixture
def client(hub):
    from loket.app import create_app

    app = create_app(hub=hub)
    app.testing = True
    return app.test_client()


# ------------------------------------------------------------------------------- real processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_exc})" if last_exc else "")
    )


class Processes:
    """Start real processes for a test; stop every one by PID at teardown."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def wait_http(url: str, timeout: float = 30) -> None:
    def up():
        requests.get(url, timeout=1)
        return True

    wait_until(up, timeout, f"{url} to answer")
