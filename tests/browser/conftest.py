"""The front desk in a real browser against real processes on loopback.

One stack per test session (the browser tests share it; each files its own cases): the web app
under gunicorn (`loket serve`), the worker, the telecom ombudsman's REST simulator asking the
consumer for a document (`--ask-info`), the Economic Inspection's SFTP simulator (asyncssh), and
aiosmtpd catching the consumers' mail in a Maildir (tests.support.stack). Modules that move their
cases step by step take `held_stack`, one per module. Playwright drives Debian's Chromium (no
browser download); axe-core comes from the npm registry (`make install` puts it in
tests/browser/node_modules). Missing either skips with the reason, or fails under
LOKET_REQUIRE_PEERS=1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import AXE, CHROMIUM, CHROMIUM_ARGS, Stack, new_page
from tests.support.env import peer_missing
from tests.support.stack import Rest, running_stack

TELECOM = "ombudsman-telecom"
MEDIATION = "consumer-mediation"
RAIL = "ombudsman-rail"
# Statuses these simulators never reach by themselves within a test: the test moves each case
# (Stack.move), so every step of a journey can be looked at.
HELD = 3600.0


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("frontdesk")
    with running_stack(home, (Rest(TELECOM, step_seconds=0.5, ask_info=True),)) as running:
        yield running


@pytest.fixture(scope="module")
def held_stack(tmp_path_factory) -> Iterator[Stack]:
    """A stack of its own for a module whose tests move every case themselves: the telecom
    ombudsman, the Consumer Mediation Service and the rail ombudsman hold each case at its first
    status; the Economic Inspection's SFTP simulator closes its reports by itself."""
    home = tmp_path_factory.mktemp("held")
    sims = tuple(Rest(agency, step_seconds=HELD) for agency in (TELECOM, MEDIATION, RAIL))
    with running_stack(home, sims) as running:
        yield running


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
