"""`loket run`: the whole system on one machine for a newcomer.

Starts one simulator per agency whose mapping names a `simulator`, on the port of that agency's
configured endpoint; a mail catcher for the consumers' mail (aiosmtpd writing a Maildir under
var/mail/, unless LOKET_SMTP_HOST points at a real server); then the web app and the worker, on
SQLite unless LOKET_DATABASE_URL says otherwise. The telecom ombudsman's simulator asks the
consumer for a document, so the demo shows the front desk's reply form. Prints the URLs and a
curl example. Ctrl-C (or SIGTERM) stops every child and waits.

The simulators (and the mail catcher's aiosmtpd) come with the `loket-simulators` distribution
(simulators/ in the repository; `make install` adds it). Without it, `loket run` says how to
install it instead of starting half a system.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hub.clock import Clock, SystemClock
from hub.config import ROOT, Settings
from hub.db import upgrade
from mappings.engine import load_all

if TYPE_CHECKING:
    from loket_simulators import Launch

SIMULATORS_MISSING = (
    "the agency simulators are not installed. Install them with `pip install -e ./simulators` "
    "(from the repository's root; `make install` does it), then try again."
)


class SimulatorsMissing(RuntimeError):
    """The `loket-simulators` distribution is not installed; the message says how to fix it."""


def simulators() -> ModuleType:
    """The simulators' package, or SimulatorsMissing naming the install command."""
    try:
        import loket_simulators
    except ImportError:
        raise SimulatorsMissing(SIMULATORS_MISSING) from None
    if not loket_simulators.kinds():  # importable from a checkout but not installed
        raise SimulatorsMissing(SIMULATORS_MISSING)
    return loket_simulators


# What the demo simulators do beyond their mapping's `simulator:` block.
DEMO_SIMULATORS = {"ombudsman-telecom": {"ask_info": True}}
DEMO_ENV = {
    "LOKET_POLL_SECONDS": "2",  # demo: see status moves in seconds, not minutes
    "LOKET_DISPATCH_SECONDS": "0.5",
    "LOKET_HOUSEKEEPING_SECONDS": "2",
}


@dataclass
class Child:
    name: str
    url: str | None
    process: subprocess.Popen
    agency_urls: tuple[tuple[str, str], ...] = ()  # a group simulator: one banner line each


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def simulator_launches(settings: Settings) -> list[Launch]:
    """The simulator processes for every agency whose mapping names one, grouped by kind."""
    sims = simulators()
    groups: dict[str, list[Any]] = {}
    for agency_id, mapping in load_all(settings.agencies_dir).items():
        spec = dict(mapping.extra.get("simulator") or {})
        if not spec:
            continue
        spec.update(DEMO_SIMULATORS.get(agency_id, {}))
        # A restarted demo continues where it stopped: each agency keeps its cases under var/.
        spec.setdefault("state", str(settings.var_dir / "simulators" / f"{agency_id}.json"))
        if mapping.extra.get("contract"):
            spec.setdefault("contract", mapping.extra["contract"])
        groups.setdefault(spec["kind"], []).append(
            sims.SimulatedAgency(agency_id, mapping.adapter_config, spec)
        )
    return [
        launch
        for kind, agencies in sorted(groups.items())
        for launch in sims.launch_all(kind, agencies, ROOT)
    ]


def maildir(settings: Settings) -> Path:
    """Where the mail catcher writes the consumers' mail."""
    return settings.var_dir / "mail" / "Maildir"


def mail_catcher(port: int, maildir: Path) -> list[str]:
    """aiosmtpd on loopback, writing every consumer mail into a Maildir (one file each)."""
    maildir.parent.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        f"127.0.0.1:{port}",
        "-c",
        "aiosmtpd.handlers.Mailbox",
        str(maildir),
    ]


def run_all(settings: Settings, web_port: int = 8000) -> int:
    web_url = f"http://127.0.0.1:{web_port}"
    catch_mail = not os.environ.get("LOKET_SMTP_HOST")
    mail_port = settings.mail.port
    env = {
        **os.environ,
        **{k: v for k, v in DEMO_ENV.items() if k not in os.environ},
        "LOKET_DATABASE_URL": settings.database_url,
        "LOKET_PUBLIC_URL": os.environ.get("LOKET_PUBLIC_URL") or web_url,
        "PYTHONUNBUFFERED": "1",
    }
    if catch_mail:
        env.update({"LOKET_SMTP_HOST": "127.0.0.1", "LOKET_SMTP_PORT": str(mail_port)})
    try:
        sims = simulator_launches(settings)
    except (SimulatorsMissing, ValueError) as exc:
        print(f"loket run: {exc}", file=sys.stderr)
        return 2
    wait_listening = simulators().wait_listening
    busy = []
    if not _port_free("127.0.0.1", web_port):
        busy.append(f"web port {web_port} is in use: stop what uses it or set LOKET_WEB_PORT")
    if catch_mail and not _port_free("127.0.0.1", mail_port):
        busy.append(
            f"mail catcher port {mail_port} is in use: set LOKET_SMTP_PORT to another port "
            "(or LOKET_SMTP_HOST to a real SMTP server)"
        )
    for sim in sims:
        for host, port, hint in ((sim.host, sim.port, sim.env_hint), *sim.also_listens):
            if not _port_free(host, port):
                busy.append(
                    f"simulator port {port} ({', '.join(sim.agencies)}) is in use: set "
                    f"{hint} to another port"
                )
    if busy:
        for line in busy:
            print(f"loket run: {line}", file=sys.stderr)
        return 2

    print(f"loket run: database {settings.database_url}", flush=True)
    upgrade(settings.database_url)
    logins = _demo_accounts(settings)

    children: list[Child] = []
    stopping = False

    def stop_all(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    try:
        # The mail catcher and the simulators start side by side, then each is awaited: none
        # needs another, and one after the other they took most of the wait for the banner.
        listening: list[tuple[Child, str, int]] = []
        if catch_mail:
            catcher = subprocess.Popen(
                mail_catcher(mail_port, maildir(settings)),
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            children.append(Child("mail catcher", f"smtp://127.0.0.1:{mail_port}", catcher))
            listening.append((children[-1], "127.0.0.1", mail_port))
        for sim in sims:
            name = f"simulator {', '.join(sim.agencies)}"
            proc = subprocess.Popen(sim.command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            children.append(Child(name, sim.url, proc, sim.agency_urls))
            listening.append((children[-1], sim.host, sim.port))
        for child, host, port in listening:
            if not wait_listening(child.process, host, port, 30):
                print(
                    f"loket run: the {child.name} did not start (exit code {child.process.poll()})",
                    file=sys.stderr,
                )
                return 1
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loket.cli",
                "serve",
                "--port",
                str(web_port),
                "--workers",
                "2",
                "--quiet",
            ],
            env=env,
            cwd=ROOT,
        )
        children.append(Child("web", web_url, web))
        if not wait_listening(web, "127.0.0.1", web_port, 30):
            print(f"loket run: the web app did not start (exit code {web.poll()})", file=sys.stderr)
            return 1
        children.append(
            Child(
                "worker",
                None,
                subprocess.Popen([sys.executable, "-m", "loket.cli", "worker"], env=env, cwd=ROOT),
            )
        )
        _banner(web_url, children, logins, maildir(settings))
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


DEMO_ACCOUNTS = (
    ("operator", "operator", None),
    ("telecom", "agency", "ombudsman-telecom"),
    # the hosted workspace: a water complaint from Wallonia lands in this body's inbox
    ("mediateur", "agency", "mediateur-wallonie"),
    ("inspector", "inspector", None),
)


def _demo_accounts(settings: Settings, clock: Clock | None = None) -> list[tuple[str, str, str]]:
    """Back-office accounts for the demo, with passwords that are new on every run."""
    from hub import accounts
    from hub.db import Database

    db = Database(settings.database_url)
    try:
        now = (clock or SystemClock()).now()
        return [
            (
                name,
                accounts.ensure_demo(db, name, role, agency, now),
                agency or ("market signals" if role == "inspector" else "every agency"),
            )
            for name, role, agency in DEMO_ACCOUNTS
        ]
    finally:
        db.dispose()


def _banner(
    web_url: str, children: list[Child], logins: list[tuple[str, str, str]], mail: Path
) -> None:
    lines = [
        "",
        "Loket is running.",
        f"  front desk      {web_url}/  (nl, fr, de, en: {web_url}/fr/ ...)",
        f"  web and API     {web_url}/",
        f"  file a case     POST {web_url}/api/v1/cases",
        f"  back office     {web_url}/admin/  sign in as:",
        *(f"{'':18}{name} / {password}  ({scope})" for name, password, scope in logins),
    ]
    for child in children:
        if child.name == "mail catcher":
            shown = mail.relative_to(ROOT) if mail.is_relative_to(ROOT) else mail
            lines.append(f"  consumer mail   {child.url} -> {shown}/new/ (one file per mail)")
    for child in children:
        if not child.name.startswith("simulator"):
            continue
        if child.agency_urls:  # a group that gives each agency its own address
            for agency_id, url in child.agency_urls:
                lines.append(f"  {'simulator ' + agency_id:34} {url}")
        elif len(child.name) <= 34:
            lines.append(f"  {child.name:34} {child.url}")
        else:  # one process for a group of agencies at one address: names wrapped, then it
            lines += textwrap.wrap(child.name, 98, initial_indent="  ", subsequent_indent=" " * 12)
            lines.append(f"  {'':34} {child.url}")
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
