"""Shared test helpers: browser."""

from __future__ import annotations

import json
import mailbox
import re
import shutil
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

import requests
from sqlalchemy import func, select

from hub.config import ROOT
from hub.db import Database
from hub.models import Case
from tests.support.env import Processes, wait_until

CHROMIUM = Path("/usr/bin/chromium")


AXE = (
    Path(__file__).resolve().parent.parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
)


SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Stack:
    web: str
    database_url: str
    maildir: Path
    telecom: str  # the REST simulator's base URL (without /api)
    processes: Processes
    sims: dict[str, str] = field(default_factory=dict)  # agency id -> REST simulator base URL

    def mails(self) -> list:
        box = mailbox.Maildir(self.maildir, create=False)
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(box.get_bytes(key)) for key in box.iterkeys()]

    def wait_for_mail(self, to: str, *subject_has: str, body_has: str = "", timeout: float = 30):
        def found():
            for m in self.mails():
                if (
                    m["To"] == to
                    and all(s in str(m["Subject"]) for s in subject_has)
                    and body_has in m.get_body(("plain",)).get_content()
                ):
                    return m
            return None

        return wait_until(found, timeout, f"a mail to {to} about {subject_has!r} {body_has!r}")

    def case_count(self) -> int:
        db = Database(self.database_url)
        try:
            with db.session(read_only=True) as s:
                return s.scalar(select(func.count(Case.id))) or 0
        finally:
            db.dispose()

    def simulated_cases(self, agency: str = "ombudsman-telecom") -> list[dict]:
        base = self.sims.get(agency, self.telecom)
        return requests.get(f"{base}/_sim/cases", timeout=5).json()

    def move(self, agency: str, reference: str, status: str, note: str = "") -> None:
        """Have the simulated agency move the case the hub sent it (found by our reference),
        as its staff would in its own system; waits for the case to arrive there first."""
        case = wait_until(
            lambda: next(
                (c for c in self.simulated_cases(agency) if c["external_reference"] == reference),
                None,
            ),
            30,
            f"{reference} at the {agency} simulator",
            interval=0.3,
        )
        answer = requests.post(
            f"{self.sims[agency]}/_sim/cases/{case['id']}/status",
            json={"status": status, "note": note},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text

    def mails_about(self, to: str, reference: str) -> list:
        return [m for m in self.mails() if m["To"] == to and reference in str(m["Subject"])]


def mail_link(message) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https?://\S+/track/\S+\?k=\S+", body).group(0)


def new_page(browser, stack: Stack, locale: str):
    """A fresh visitor (own cookies) whose browser speaks `locale`. CSP is bypassed so the test
    can inject axe-core; the pages' own defence against script injection is escaping, which the
    bad-input tests check with CSP off on purpose."""
    context = browser.new_context(
        base_url=stack.web, locale=locale, bypass_csp=True, viewport={"width": 1100, "height": 900}
    )
    context.set_default_timeout(15000)
    return context.new_page()


def check_axe(page, what: str) -> None:
    """No axe-core finding of any impact (minor to critical) on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    assert not found, f"axe on {what} ({page.url}):\n" + json.dumps(found, indent=1)


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def copy_to_docs(path: Path, name: str) -> None:
    """Refresh a screenshot the README shows (docs/), when the test run is asked to."""
    import os

    if os.environ.get("LOKET_UPDATE_DOCS_SCREENSHOTS") == "1":
        shutil.copy(path, ROOT / "docs" / name)


def fill_date(page, name: str, iso: str) -> None:
    """Type a date into the form's day / month / year boxes: 2026-10-15, or 2026-10 (no day)."""
    year, month, *day = iso.split("-")
    page.fill(f"#{name}", day[0] if day else "")
    page.fill(f"#{name}-month", month)
    page.fill(f"#{name}-year", year)


def go_on_to_check(page) -> None:
    """'Continue' on the case form; the "check your answers" page (or the form's errors)."""
    page.locator("form.case-form button.button[type=submit]").click()
    page.wait_for_load_state()


def on_check_page(page) -> bool:
    return page.locator("form.case-form input[name=step][value=send]").count() == 1


def review_and_send(page, files=None) -> None:
    """'Continue' on the form, then, on "check your answers", add the files and Send."""
    go_on_to_check(page)
    assert on_check_page(page), page.inner_text("main")[:2000]
    if files:
        page.set_input_files("#attachments", files=files)
    page.locator("form.case-form button.button[type=submit]").click()
    page.wait_for_load_state()
