"""Shared fixtures: databases (SQLite and PostgreSQL), simulators, the hub, real processes.

Every database-facing test runs twice: on SQLite and on PostgreSQL. PostgreSQL comes from
LOKET_TEST_DATABASE_URL (CI sets it, see .ci/run); without it those runs are skipped with the
reason, and under LOKET_REQUIRE_PEERS=1 they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.clock import FrozenClock
from hub.config import Settings, normalise_database_url
from hub.db import Database, upgrade
from hub.services import Hub
from tests.support.env import (
    API_KEYS,
    PG_URL,
    SIM_PROFILES,
    Processes,
    _truncate_all,
    agency_schema,
    env_prefix,
    peer_missing,
)

# Peer fixtures (a real Dovecot, OpenSSH) come as plugins: no test module imports another.
pytest_plugins = ["pytester", "tests.support.peers_email", "tests.support.peers_sftp"]


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

# agency -> the simulator profile it plays (its own: contracts/agencies/<id>/simulator.yaml)


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


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()
