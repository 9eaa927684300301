"""Shared test helpers: env."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from hub.config import ROOT
from hub.models import Base

REQUIRE_PEERS = os.environ.get("LOKET_REQUIRE_PEERS") == "1"


PG_URL = os.environ.get("LOKET_TEST_DATABASE_URL")


def peer_missing(reason: str) -> None:
    """Skip with the reason; under LOKET_REQUIRE_PEERS=1 (CI) fail instead."""
    if REQUIRE_PEERS:
        pytest.fail(f"LOKET_REQUIRE_PEERS=1 but a peer is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


API_KEYS = {"ombudsman-telecom": "test-telecom-key", "consumer-mediation": "test-mediation-key"}


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


# Ports for the servers tests start. Port 0 would hand out a port from the kernel's ephemeral
# range, which every outgoing connection on the machine also draws from: in the seconds between
# choosing a port and a server binding it (or between two `loket run`s on the same ports), a
# client socket of another test could take it. Below that range no connect() picks a port, and
# each xdist worker draws from its own slice, so two workers never choose the same one.
_PORTS_LOW, _PORTS_HIGH = 20000, 32000


def _port_slice() -> range:
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    worker = int((os.environ.get("PYTEST_XDIST_WORKER") or "gw0").removeprefix("gw") or 0)
    width = (_PORTS_HIGH - _PORTS_LOW) // max(count, 1)
    start = _PORTS_LOW + worker * width
    return range(start, start + width)


_PORTS = _port_slice()
_next_port = _PORTS.start + (os.getpid() % len(_PORTS))


def free_port() -> int:
    """A loopback port no one listens on or holds, from this worker's slice (see above); the next
    call takes the one after it, so the ports a test holds for a while are not handed out again."""
    global _next_port
    for _ in range(len(_PORTS)):
        port, _next_port = _next_port, _PORTS.start + (_next_port + 1 - _PORTS.start) % len(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a TIME_WAIT on it counts as held
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.1,
    raise_on: tuple[type[BaseException], ...] = (),
):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout`.
    An exception of a `raise_on` type ends the wait at once (the thing waited for cannot come)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except raise_on:
            raise
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


def wait_http(url: str, timeout: float = 30) -> None:
    def up():
        requests.get(url, timeout=1)
        return True

    wait_until(up, timeout, f"{url} to answer")
