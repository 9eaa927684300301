"""Real protocol servers that play an agency's own system, for the demo, tests and integrators.

A distribution of its own (`loket-simulators`, folder simulators/ of the repository), so the
hub does not carry spyne, aiosmtpd, pymap or asyncssh. It imports nothing of the hub but
`adapters.base`: a test peer sharing code with what it tests would share its bugs.

Each kind of simulator (rest, soap, email, sftp) is a module registered in the entry-point group
`loket.simulators`; it offers `launch_group(agencies, root) -> Launch` (ONE process playing every
agency of that kind, what `loket run` starts) and `main(argv)` (its command line, reached through
the one launcher: `loket-simulator KIND ...` or `python -m loket_simulators KIND ...`). What each
agency's system looks like (case numbers, status flow, codes, texts) is data:
contracts/agencies/<id>/simulator.yaml (see `profiles`).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

GROUP = "loket.simulators"


@cache
def kinds() -> dict[str, EntryPoint]:
    """The installed kinds of simulator, by name (entry-point group `loket.simulators`)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def kind_module(kind: str) -> ModuleType:
    """The module that plays agencies of `kind`; a ValueError names the known kinds."""
    found = kinds()
    if kind not in found:
        known = ", ".join(sorted(found)) or "none: pip install -e ./simulators"
        raise ValueError(f"no simulator of kind {kind!r} (known: {known})")
    return found[kind].load()


def command(kind: str, *args: str) -> list[str]:
    """The argv that runs the simulator of `kind` in a process of its own."""
    return [sys.executable, "-m", "loket_simulators", kind, *args]


@dataclass(frozen=True)
class Launch:
    """How `loket run` starts one simulator process and knows it is up."""

    command: list[str]  # argv; sys.executable first
    host: str  # a TCP port that accepts connections once the simulator is ready
    port: int
    url: str  # shown in the banner
    env_hint: str  # the environment variable that moves it to another port
    agencies: tuple[str, ...] = ()  # the agencies this process plays (one, or all of a group)
    also_listens: tuple[tuple[str, int, str], ...] = ()  # other (host, port, env var) it binds
    agency_urls: tuple[tuple[str, str], ...] = ()  # (agency, url) for the banner, one per agency


@dataclass(frozen=True)
class SimulatedAgency:
    agency_id: str
    adapter_config: Mapping[str, Any]
    spec: Mapping[str, Any]  # the mapping's `simulator:` block


def launch(
    kind: str,
    agency_id: str,
    adapter_config: Mapping[str, Any],
    spec: Mapping[str, Any],
    root: Path,
) -> Launch:
    """The process that plays one agency alone (a group of one)."""
    [one] = launch_all(kind, [SimulatedAgency(agency_id, adapter_config, spec)], root)
    return one


def launch_all(kind: str, agencies: list[SimulatedAgency], root: Path) -> list[Launch]:
    """The process that plays every agency of one kind (none for no agencies)."""
    if not agencies:
        return []
    return [kind_module(kind).launch_group(agencies, root)]


def env_var(agency_id: str, suffix: str) -> str:
    """LOKET_<AGENCY_ID>_<SUFFIX>: the naming convention of per-agency settings."""
    return "LOKET_" + agency_id.upper().replace("-", "_") + "_" + suffix


def where(url: str) -> tuple[str, int]:
    """The (host, port) a simulator binds to serve `url`."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def group_launch(
    kind: str,
    transport: str,
    agencies: list[SimulatedAgency],
    url_key: str,
    extra: Callable[[SimulatedAgency], dict[str, Any]],
) -> Launch:
    """ONE process (`loket-simulator KIND --agency JSON ...`) playing every agency of a transport
    that listens on its own URL: each agency's spec is id, host, port, step_seconds plus what
    `extra` adds (profile, credentials, contract). Two agencies on one port are refused."""
    specs: list[dict[str, Any]] = []
    taken: dict[tuple[str, int], str] = {}
    for agency in agencies:
        host, port = where(agency.adapter_config[url_key])
        if (host, port) in taken:
            raise ValueError(
                f"{transport} simulators {taken[(host, port)]} and {agency.agency_id} are both "
                f"configured on {host}:{port}; set {env_var(agency.agency_id, 'URL')} to "
                "another port"
            )
        taken[(host, port)] = agency.agency_id
        specs.append(
            {
                "id": agency.agency_id,
                "host": host,
                "port": port,
                "step_seconds": agency.spec.get("step_seconds", 5),
                # where the agency keeps its cases across restarts (`loket run`: under var/)
                **({"state": agency.spec["state"]} if agency.spec.get("state") else {}),
                **extra(agency),
            }
        )
    cmd = command(kind)
    for spec in specs:
        cmd += ["--agency", json.dumps(spec)]
    first = agencies[0]
    return Launch(
        cmd,
        specs[0]["host"],
        specs[0]["port"],
        first.adapter_config[url_key],
        env_var(first.agency_id, "URL"),
        agencies=tuple(a.agency_id for a in agencies),
        also_listens=tuple((s["host"], s["port"], env_var(s["id"], "URL")) for s in specs[1:]),
        agency_urls=tuple((a.agency_id, a.adapter_config[url_key]) for a in agencies),
    )


def parse_agency_spec(text: str, check_profile: Callable[[str], object]) -> dict[str, Any]:
    """One `--agency` option of a group simulator: a JSON object with at least id, profile and
    port; `check_profile` raises ValueError naming the known profiles."""
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(spec, dict) or not {"id", "profile", "port"} <= set(spec):
        raise argparse.ArgumentTypeError("give a JSON object with at least id, profile and port")
    try:
        check_profile(spec["profile"])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def wait_listening(process: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port; False when `process` exits
    first or `timeout` seconds pass (a peer or simulator that did not start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


class WsgiSimulatorServer:
    """A simulator's WSGI app on a real socket, served from a background thread (`loket run`'s
    group processes, tests, embedded use)."""

    def __init__(self, app: Any, prefix: str, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import make_server

        self.server = make_server(host, port, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}{prefix}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


S = TypeVar("S", bound=WsgiSimulatorServer)


def start_all(build: Callable[[dict[str, Any]], S], specs: list[dict[str, Any]]) -> list[S]:
    """One server per spec, each on its own port. All sockets are bound before any is served,
    so a port that answers means every agency of the group is reachable; a port that cannot be
    bound closes the ones already bound."""
    servers: list[S] = []
    try:
        for spec in specs:
            servers.append(build(spec))
    except BaseException:
        for server in servers:
            server.server.server_close()
        raise
    return [server.start() for server in servers]


def serve_until_interrupted(
    servers: list[S], banner: Callable[[dict[str, Any], S], str], specs: list[dict[str, Any]]
) -> None:
    """Print one line per agency, serve until Ctrl-C (or SIGINT from `loket run`), stop all."""
    for spec, server in zip(specs, servers, strict=True):
        print(banner(spec, server), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
