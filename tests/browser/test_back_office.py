"""The back office in a real browser: an operator signs in and walks every console page; a
telecom ombudsman's staff member finds a delivered case and moves it in the agency's own code.
Each page passes axe-core."""

from __future__ import annotations

import json

import pytest
import requests

from hub import accounts
from hub.config import ROOT
from hub.db import Database
from mappings import AGENCIES_DIR
from mappings.engine import load_agency
from tests.support.browser import check_axe, new_page, shot
from tests.support.cases import TELECOM
from tests.support.env import wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "browser test password"


def sign_in(page, name: str, password: str) -> None:
    page.goto("/admin/")
    assert "/admin/login" in page.url
    check_axe(page, "back office sign in")
    page.fill("#name", name)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()


def file_case(stack) -> tuple[str, str]:
    case = json.loads((ROOT / "contracts" / "examples" / "case.json").read_text())
    answer = requests.post(f"{stack.web}/api/v1/cases", json=case, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["reference"], answer.json()["tracking_token"]


def create(stack, name: str, role: str, agency: str | None) -> str:
    from datetime import UTC, datetime

    db = Database(stack.database_url)
    try:
        return accounts.ensure_demo(db, name, role, agency, datetime.now(UTC))
    finally:
        db.dispose()


def test_an_operator_walks_every_console_page(browser, stack):
    password = create(stack, "olga-browser", "operator", None)
    reference, _token = file_case(stack)
    page = new_page(browser, stack, "en-BE")
    try:
        sign_in(page, "olga-browser", password)
        page.wait_for_url("**/admin/flows")
        assert TELECOM in page.inner_text("main")
        check_axe(page, "flows")
        shot(page, "admin-flows")
        for link, what in (
            ("Needs attention", "attention"),
            ("Dead letters", "dead letters"),
            ("Cases", "cases"),
        ):
            page.get_by_role("link", name=link, exact=True).click()
            check_axe(page, what)
        page.fill("#q", reference)
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name=reference).click()
        assert "chain intact" in page.inner_text("main")
        check_axe(page, "case")
        shot(page, "admin-case")
        page.get_by_role("button", name="Sign out").click()
        page.goto("/admin/flows")
        assert "/admin/login" in page.url
    finally:
        page.context.close()


def test_agency_staff_move_their_case_and_the_consumer_timeline_shows_it(browser, stack):
    password = create(stack, "tom-browser", "agency", TELECOM)
    reference, token = file_case(stack)
    page = new_page(browser, stack, "en-BE")
    try:
        sign_in(page, "tom-browser", password)
        page.wait_for_url("**/admin/agency")
        check_axe(page, "agency workspace")

        def delivered():
            page.reload()
            row = page.locator("tr", has_text=reference)
            return row.count() and "not delivered yet" not in row.inner_text()

        wait_until(delivered, 30, f"{reference} delivered to the telecom simulator", 0.5)
        page.get_by_role("link", name=reference).click()
        check_axe(page, "agency case")
        mapping = load_agency(AGENCIES_DIR / f"{TELECOM}.yaml", env={})
        code = next(c for c, rule in mapping.statuses.items() if rule.status == "in_progress")
        page.select_option("#status", code)
        page.fill("#message", "Wij bekijken uw factuur.")
        page.get_by_role("button", name="Record").click()
        assert f"Status {code} recorded" in page.inner_text("main")
        assert "Wij bekijken uw factuur." in page.inner_text("main")
        shot(page, "admin-agency-case")
        seen = requests.get(
            f"{stack.web}/api/v1/cases/{reference}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert "Wij bekijken uw factuur." in [e.get("message") for e in seen["timeline"]]
    finally:
        page.context.close()
