"""Shared test helpers: the whole Loket on loopback for the browser tests and the README
screenshots. The web app under gunicorn (`loket serve`), the worker, one REST simulator per
agency asked for, the Economic Inspection's SFTP simulator (asyncssh) and aiosmtpd catching the
consumers' mail in a Maildir; every process started and stopped by PID (tests.support.env)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import loket_simulators

from hub.config import ROOT
from hub.db import upgrade
from mappings import AGENCIES_DIR
from mappings.engine import load_agency
from tests.support.browser import Stack
from tests.support.env import Processes, env_prefix, free_port, wait_http, wait_until

INSPECTION = "economic-inspection"


@dataclass(frozen=True)
class Rest:
    """One REST agency to simulate: `step_seconds` between its own status moves (a large value
    lets the test move it with Stack.move), `ask_info` to stop at an information request."""

    agency: str
    step_seconds: float = 0.5
    ask_info: bool = False


@contextmanager
def running_stack(
    home: Path, rest: tuple[Rest, ...], inspection_step_seconds: float = 0.5
) -> Iterator[Stack]:
    processes = Processes(home)
    database_url = f"sqlite:///{home / 'loket.db'}"
    upgrade(database_url)
    env: dict[str, str] = {
        "LOKET_DATABASE_URL": database_url,
        "LOKET_SECRET_KEY": "browser-tests-only",
        "LOKET_FILING_LIMIT": "1000 per hour",
        "LOKET_TRACKING_LIMIT": "1000 per hour",
    }
    try:
        smtp = free_port()
        maildir = home / "Maildir"
        catcher = ["-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp}"]
        processes.start("smtp", [*catcher, "-c", "aiosmtpd.handlers.Mailbox", str(maildir)], {})
        sims: dict[str, str] = {}
        for sim in rest:
            port = free_port()
            key = f"test-{sim.agency}-key"
            processes.start(
                f"sim-{sim.agency}",
                ["-m", "loket_simulators", "rest", "--profile", sim.agency]
                + ["--port", str(port), "--step-seconds", str(sim.step_seconds)]
                + ["--api-key", key]
                + [
                    "--schema",
                    str(ROOT / "contracts" / "agencies" / sim.agency / "case.schema.json"),
                ]
                + (["--ask-info"] if sim.ask_info else []),
                {},
            )
            sims[sim.agency] = f"http://127.0.0.1:{port}"
            env[env_prefix(sim.agency) + "_URL"] = sims[sim.agency] + "/api"
            env[env_prefix(sim.agency) + "_KEY"] = key

        sftp_port = free_port()
        sftp_root = home / "inspection"
        keys = {
            env_prefix(INSPECTION) + "_PORT": str(sftp_port),
            env_prefix(INSPECTION) + "_PRIVATE_KEY": f"@file:{sftp_root}/client_ed25519_key",
            env_prefix(INSPECTION) + "_HOST_KEY": f"@file:{sftp_root}/ssh_host_ed25519_key.pub",
        }
        inspection = load_agency(AGENCIES_DIR / f"{INSPECTION}.yaml", env=keys)
        launch = loket_simulators.launch(
            "sftp",
            INSPECTION,
            inspection.adapter_config,
            {
                "root": str(sftp_root),
                "step_seconds": inspection_step_seconds,
                "contract": inspection.extra["contract"],
            },
            ROOT,
        )
        processes.start("sim-inspection", launch.command[1:], {})
        env.update(keys)
        env[env_prefix(INSPECTION) + "_USERNAME"] = "loket"

        web_port = free_port()
        web = f"http://127.0.0.1:{web_port}"
        env.update(
            {
                "LOKET_SMTP_HOST": "127.0.0.1",
                "LOKET_SMTP_PORT": str(smtp),
                "LOKET_PUBLIC_URL": web,
            }
        )
        for url in sims.values():
            wait_http(url + "/api/health")
        wait_until(
            lambda: (sftp_root / "ssh_host_ed25519_key.pub").exists(), 30, "the SFTP host key"
        )
        processes.start(
            "web",
            ["-m", "loket.cli", "serve", "--port", str(web_port), "--workers", "2", "--quiet"],
            env,
        )
        processes.start(
            "worker",
            ["-m", "loket.cli", "worker"],
            {
                **env,
                "LOKET_POLL_SECONDS": "0.3",
                "LOKET_DISPATCH_SECONDS": "0.2",
                "LOKET_HOUSEKEEPING_SECONDS": "0.5",
                "LOKET_MAIL_BATCH_SECONDS": "1",  # line changes a second apart share a mail
            },
        )
        wait_http(web + "/healthz")
        wait_until(lambda: (maildir / "new").is_dir(), 30, "the mail catcher's Maildir")
        yield Stack(
            web,
            database_url,
            maildir,
            sims.get("ombudsman-telecom", ""),
            processes,
            sims,
        )
    finally:
        processes.stop_all()
