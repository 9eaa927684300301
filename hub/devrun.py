"""`loket run`: the whole system on one machine for a newcomer.

Starts one simulator per agency whose mapping names a `simulator`, on the port of that agency's
configured endpoint; then the web app and the worker, on SQLite unless LOKET_DATABASE_URL says
otherwise. Prints the URLs and a curl example. Ctrl-C (or SIGTERM) stops every child and waits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.config import ROOT, Settings
from hub.db import upgrade
from mappings.engine import load_all

DEMO_ENV = {
    "LOKET_POLL_SECONDS": "2",  # demo: see status moves in seconds, not minutes
    "LOKET_DISPATCH_SECONDS": "0.5",
}


@dataclass
class Child:
    name: str
    url: str | None
    process: subprocess.Popen


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answers (e.g. 401 without an API key): it is up
        except OSError:
            time.sleep(0.1)
    return False


def simulator_commands(settings: Settings) -> list[tuple[str, str, list[str], str]]:
    """(agency id, url, command, env var to change its port) per simulated agency."""
    out = []
    for agency_id, mapping in load_all(settings.agencies_dir).items():
        sim = mapping.extra.get("simulator")
        if not sim or sim.get("kind") != "rest":
            continue
        base = mapping.adapter_config["base_url"]
        parts = urlsplit(base)
        cmd = [
            sys.executable,
            "-m",
            "adapters.simulators.rest_agency",
            "--profile",
            sim["profile"],
            "--host",
            parts.hostname or "127.0.0.1",
            "--port",
            str(parts.port or 80),
            "--step-seconds",
            str(sim.get("step_seconds", 5)),
        ]
        if mapping.adapter_config.get("api_key"):
            cmd += ["--api-key", mapping.adapter_config["api_key"]]
        if mapping.extra.get("contract"):
            cmd += ["--schema", str(ROOT / mapping.extra["contract"])]
        env_var = "LOKET_" + agency_id.upper().replace("-", "_") + "_URL"
        out.append((agency_id, base, cmd, env_var))
    return out


def run_all(settings: Settings, web_port: int = 8000) -> int:
    env = {
        **os.environ,
        **{k: v for k, v in DEMO_ENV.items() if k not in os.environ},
        "LOKET_DATABASE_URL": settings.database_url,
        "PYTHONUNBUFFERED": "1",
    }
    sims = simulator_commands(settings)
    busy = []
    if not _port_free("127.0.0.1", web_port):
        busy.append(f"web port {web_port} is in use: stop what uses it or set LOKET_WEB_PORT")
    for agency_id, url, _cmd, env_var in sims:
        parts = urlsplit(url)
        if not _port_free(parts.hostname or "127.0.0.1", parts.port or 80):
            busy.append(
                f"simulator port {parts.port} for {agency_id} is in use: set {env_var}="
                f"http://127.0.0.1:<free port>{parts.path}"
            )
    if busy:
        for line in busy:
            print(f"loket run: {line}", file=sys.stderr)
        return 2

    print(f"loket run: database {settings.database_url}", flush=True)
    upgrade(settings.database_url)

    children: list[Child] = []
    stopping = False

    def stop_all(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    try:
        for agency_id, url, cmd, _ in sims:
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            children.append(Child(f"simulator {agency_id}", url, proc))
        web_url = f"http://127.0.0.1:{web_port}"
        children.append(
            Child(
                "web",
                web_url,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hub.cli",
                        "serve",
                        "--port",
                        str(web_port),
                        "--workers",
                        "2",
                        "--quiet",
                    ],
                    env=env,
                    cwd=ROOT,
                ),
            )
        )
        children.append(
            Child(
                "worker",
                None,
                subprocess.Popen([sys.executable, "-m", "hub.cli", "worker"], env=env, cwd=ROOT),
            )
        )

        for child in children:
            if child.url and not _wait_http(
                child.url.rstrip("/") + ("/health" if "simulator" in child.name else "/healthz"),
                30,
                child.process,
            ):
                print(
                    f"loket run: {child.name} did not start (exit code {child.process.poll()})",
                    file=sys.stderr,
                )
                return 1
        _banner(web_url, children)
        while not stopping:
            dead = [c for c in children if c.process.poll() is not None]
            if dead:
                print(
                    f"loket run: {dead[0].name} exited with {dead[0].process.returncode}; stopping",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.2)
        print("\nloket run: stopping...", flush=True)
        return 0
    finally:
        _stop(children)


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
    print("loket run: all processes stopped", flush=True)


def _banner(web_url: str, children: list[Child]) -> None:
    lines = [
        "",
        "Loket is running.",
        f"  web and API     {web_url}/",
        f"  file a case     POST {web_url}/api/v1/cases",
    ]
    for child in children:
        if child.name.startswith("simulator"):
            lines.append(f"  {child.name:34} {child.url}")
    lines += [
        "",
        "Try it (see README):",
        f"  curl -s {web_url}/api/v1/cases -H 'Content-Type: application/json' "
        "-d @contracts/examples/case.json",
        "",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
