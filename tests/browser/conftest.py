"""The front desk in a real browser against real processes on loopback.

One stack per test session (the browser tests share it; each files its own cases): the web app
under gunicorn (`loket serve`), the worker, the telecom ombudsman's REST simulator asking the
consumer for a document (`--ask-info`), the Economic Inspection's SFTP simulator (asyncssh), and
aiosmtpd catching the consumers' mail in a Maildir. Playwright drives Debian's Chromium (no
browser download); axe-core comes from the npm registry (`make install` puts it in
tests/browser/node_modules). Missing either skips with the reason, or fails under
LOKET_REQUIRE_PEERS=1.
"""

from __future__ import annotations

from collections.abc import Iterator

import loket_simulators
import pytest

from hub.config import ROOT
from hub.db import upgrade
from mappings import AGENCIES_DIR
from mappings.engine import load_agency
from tests.support.browser import AXE, CHROMIUM, CHROMIUM_ARGS, Stack, new_page
from tests.support.env import (
    API_KEYS,
    Processes,
    env_prefix,
    free_port,
    peer_missing,
    wait_http,
    wait_until,
)

TELECOM = "ombudsman-telecom"
INSPECTION = "economic-inspection"


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("frontdesk")
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
        processes.start(
            "smtp",
            [
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{smtp}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(maildir),
            ],
            {},
        )
        telecom_port = free_port()
        processes.start(
            "sim-telecom",
            [
                "-m",
                "loket_simulators",
                "rest",
                "--profile",
                "ombudsman-telecom",
                "--port",
                str(telecom_port),
                "--step-seconds",
                "0.5",
                "--api-key",
                API_KEYS[TELECOM],
                "--schema",
                str(ROOT / "contracts" / "agencies" / TELECOM / "case.schema.json"),
                "--ask-info",
            ],
            {},
        )
        telecom = f"http://127.0.0.1:{telecom_port}"
        env[env_prefix(TELECOM) + "_URL"] = telecom + "/api"
        env[env_prefix(TELECOM) + "_KEY"] = API_KEYS[TELECOM]

        sftp_port = free_port()
        sftp_root = home / "inspection"
        inspection = load_agency(
            AGENCIES_DIR / f"{INSPECTION}.yaml",
            env={
                env_prefix(INSPECTION) + "_PORT": str(sftp_port),
                env_prefix(INSPECTION) + "_PRIVATE_KEY": f"@file:{sftp_root}/client_ed25519_key",
                env_prefix(INSPECTION) + "_HOST_KEY": f"@file:{sftp_root}/ssh_host_ed25519_key.pub",
            },
        )
        launch = loket_simulators.launch(
            "sftp",
            INSPECTION,
            inspection.adapter_config,
            {
                "root": str(sftp_root),
                "step_seconds": 0.5,
                "contract": inspection.extra["contract"],
            },
            ROOT,
        )
        processes.start("sim-inspection", launch.command[1:], {})
        env.update(
            {
                env_prefix(INSPECTION) + "_PORT": str(sftp_port),
                env_prefix(INSPECTION) + "_USERNAME": "loket",
                env_prefix(INSPECTION) + "_PRIVATE_KEY": f"@file:{sftp_root}/client_ed25519_key",
                env_prefix(INSPECTION) + "_HOST_KEY": f"@file:{sftp_root}/ssh_host_ed25519_key.pub",
            }
        )

        web_port = free_port()
        web = f"http://127.0.0.1:{web_port}"
        env.update(
            {
                "LOKET_SMTP_HOST": "127.0.0.1",
                "LOKET_SMTP_PORT": str(smtp),
                "LOKET_PUBLIC_URL": web,
            }
        )
        wait_http(telecom + "/api/health")
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
        yield Stack(web, database_url, maildir, telecom, processes)
    finally:
        processes.stop_all()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        peer_missing("Chromium not installed: apt-get install chromium (.ci/run does)")
    if not AXE.exists():
        peer_missing("axe-core not installed: run `make install` (npm install in tests/browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_fr(browser, stack):
    page = new_page(browser, stack, "fr-BE")
    yield page
    page.context.close()


@pytest.fixture
def page_nl(browser, stack):
    page = new_page(browser, stack, "nl-BE")
    yield page
    page.context.close()
