"""Issue 13: every page, in every language, is valid HTML (the Nu HTML Checker: 0 errors), has no
axe-core finding of any impact, and does not scroll sideways on a 320 px screen.

"Every page" is found, not listed: the crawler follows every link and GET form from each
language's start page and the back office's, over cases in several states (filed, with the
service, waiting for the consumer, answered, resolved, withdrawn, a fan-out to the mediation and
the inspection, a rail case); the test adds what only a POST shows (refused forms, a refused
code, a refused answer, the check before filing if there is one). Each endpoint of the front desk
and the back office must be among the pages checked, so a new page cannot slip past."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from hub import accounts
from hub.config import ROOT, Settings
from hub.db import Database
from tests.support.browser import AXE, CHROMIUM, CHROMIUM_ARGS
from tests.support.crawl import VNU, Pages, nu_check
from tests.support.env import peer_missing, wait_until

pytestmark = pytest.mark.e2e

LANGS = ("nl", "fr", "de", "en")
TELECOM, MEDIATION, RAIL = "ombudsman-telecom", "consumer-mediation", "ombudsman-rail"
# endpoints that are no page: downloads, and the not-found catch-all (its page is checked as
# the "not found" state under frontdesk.not_found's handler)
NOT_PAGES = {"frontdesk.letter", "frontdesk.download", "static", "admin.static", "web.healthz"}
NOT_PAGES |= {"web.readyz", "web.metrics", "admin.home"}  # admin.home: a redirect to one's start
# downloads (CSV, JSON, a zip, a document) and a redirect (the back office's language switch)
NOT_PAGES |= {
    "frontdesk.statistics_open_data",
    "frontdesk.statistics_json",
    "frontdesk.statistics_csv",
    "admin.workspace_export",
    "admin.workspace_document",
    "admin.signals_csv",
    "admin.language",
}
PASSWORD = "every page password"
PARTS = ("year", "month", "day")


def file_case(stack, **override) -> tuple[str, str]:
    case = json.loads((ROOT / "contracts" / "examples" / "case.json").read_text())
    case.update(override)
    case["answers"] = {**case["answers"], "trader_is_business": True}
    answer = requests.post(f"{stack.web}/api/v1/cases", json=case, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["reference"], answer.json()["tracking_token"]


def line_status(stack, reference: str, token: str, agency: str) -> str:
    body = requests.get(
        f"{stack.web}/api/v1/cases/{reference}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    return next((line["status"] for line in body["agencies"] if line["agency"] == agency), "")


def settled(stack, reference, token, agency, status) -> None:
    wait_until(
        lambda: line_status(stack, reference, token, agency) == status,
        30,
        f"{reference}: {agency} {status}",
        interval=0.3,
    )


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, f"no CSRF token on the page: {html[:1500]}"
    return found.group(1)


def seed(stack) -> dict[str, tuple[str, str]]:
    """Cases in the states a consumer meets, each with its private code."""
    cases = {
        "filed": file_case(stack),
        "waiting": file_case(stack),
        "answered": file_case(stack),
        "resolved": file_case(stack),
        "withdrawn": file_case(stack),
        "fan-out": file_case(
            stack,
            domain="ecommerce.fake_webshop",
            description="Betaald voor een gsm, nooit geleverd; de webwinkel antwoordt niet.",
        ),
        "rail": file_case(
            stack,
            domain="transport.rail_delay",
            language="de",
            description="Mein Zug hatte 95 Minuten Verspätung; die SNCB erstattet nichts.",
        ),
    }
    for name in ("waiting", "answered", "resolved"):
        settled(stack, *cases[name], TELECOM, "received")
    stack.move(TELECOM, cases["waiting"][0], "INFO_REQUESTED", "Please send us the bill.")
    stack.move(TELECOM, cases["answered"][0], "INFO_REQUESTED", "Please send us the bill.")
    stack.move(TELECOM, cases["resolved"][0], "CLOSED_AGREEMENT", "The operator credits you.")
    stack.move(MEDIATION, cases["fan-out"][0], "AFGESLOTEN_MINNELIJK", "Minnelijke schikking.")
    settled(stack, *cases["waiting"], TELECOM, "waiting_for_consumer")
    settled(stack, *cases["answered"], TELECOM, "waiting_for_consumer")
    settled(stack, *cases["resolved"], TELECOM, "resolved")
    settled(stack, *cases["fan-out"], MEDIATION, "resolved")
    settled(stack, *cases["rail"], RAIL, "received")
    return cases


def front_desk(stack, pages: Pages, lang: str, cases) -> None:
    """One language: the crawl from its start page with every case open, and the POST states."""
    s = requests.Session()
    s.headers["Accept-Language"] = f"{lang}-BE"
    web = stack.web
    for reference, token in cases.values():
        assert s.get(f"{web}/{lang}/track/{reference}?k={token}", timeout=10).ok  # remembered
    reference, _ = cases["answered"]
    if lang == "fr":  # one consumer answers (once: the page then shows the answer sent)
        tracking = s.get(f"{web}/{lang}/track/{reference}", timeout=10).text
        reply = re.search(
            rf'action="(/{lang}/track/{reference}/reply/\d+)(?:#[\w-]+)?"', tracking
        ).group(1)
        sent = s.post(web + reply, data={"csrf_token": csrf(tracking), "text": "Voici."})
        assert sent.ok, sent.text[:500]
    reference, _ = cases["withdrawn"]
    if lang == "nl":
        page = s.get(f"{web}/nl/track/{reference}/withdraw", timeout=10).text
        s.post(f"{web}/nl/track/{reference}/withdraw", data={"csrf_token": csrf(page)})

    starts = [f"/{lang}/", f"/{lang}/track"]
    starts += [f"/{lang}/track/{ref}" for ref, _ in cases.values()]
    starts += [f"/{lang}/filed/{ref}" for ref, _ in cases.values()]
    pages.crawl(s, starts, f"/{lang}/", limit=6000)

    # what only a POST (or a wrong address) shows
    form = f"/{lang}/problem/telecom/billing/complaint/form?a_contacted_trader=yes&a_court_case_pending=no"
    empty = s.get(web + form, timeout=10).text
    pages.keep(s.post(web + form, data={"csrf_token": csrf(empty)}, timeout=10), "form with errors")
    valid = {
        "csrf_token": csrf(empty),
        "consumer_name": "A. Tester",
        "consumer_email": f"tester.{lang}@example.be",
        "trader_name": "Telco SA",
        "description": "The October bill counts the subscription twice.",
        "consent_share": "yes",
        "trader_country": "BE",
        "amount": "49,99",
    }
    for name, when in (("incident_date", (2026, 10, 15)), ("complaint_date", (2026, 10, 20))):
        valid[name] = date(*when).isoformat()  # one field, or day, month and year (GOV.UK)
        for sep in ("-", "_"):
            valid.update(
                {f"{name}{sep}{part}": str(v) for part, v in zip(PARTS, when, strict=True)}
            )
    answer = s.post(web + form, data=valid, timeout=10)  # a check step, or filed at once
    pages.keep(answer, "form sent")
    pages.keep(s.get(f"{web}/{lang}/no/such/page", timeout=10), "not found")
    opening = s.get(f"{web}/{lang}/track", timeout=10).text
    refused = {"csrf_token": csrf(opening), "reference": cases["filed"][0], "code": "nope"}
    fresh = requests.Session()  # a visitor without the case's cookie
    fresh.cookies.update({k: v for k, v in s.cookies.items() if k == "session"})
    pages.keep(fresh.post(f"{web}/{lang}/track", data=refused, timeout=10), "open refused")
    reference, _ = cases["waiting"]
    tracking = s.get(f"{web}/{lang}/track/{reference}", timeout=10).text
    action = re.search(
        rf'action="(/{lang}/track/{reference}/reply/\d+)(?:#[\w-]+)?"', tracking
    ).group(1)
    pages.keep(
        s.post(web + action, data={"csrf_token": csrf(tracking), "text": ""}, timeout=10),
        "answer refused",
    )


def back_office(stack, pages: Pages, cases) -> None:
    db = Database(stack.database_url)
    try:
        now = datetime.now(UTC)
        operator = accounts.ensure_demo(db, "olga-pages", "operator", None, now)
        staff = accounts.ensure_demo(db, "tom-pages", "agency", TELECOM, now)
        inspector = accounts.ensure_demo(db, "ines-pages", "inspector", None, now)
    finally:
        db.dispose()
    before = (
        requests.Session()
    )  # the pages before signing in: a reset asked, a link that is no more
    forgot = before.get(f"{stack.web}/admin/forgot", timeout=10)
    pages.keep(forgot, "forgot")
    asked = {"csrf_token": csrf(forgot.text), "name": "nobody-pages"}
    pages.keep(before.post(f"{stack.web}/admin/forgot", data=asked, timeout=10), "reset asked")
    pages.keep(before.get(f"{stack.web}/admin/reset/not-a-link", timeout=10), "reset link unknown")
    for name, password, home in (
        ("olga-pages", operator, "/admin/flows"),
        ("tom-pages", staff, "/admin/agency"),
        ("ines-pages", inspector, "/admin/signals"),
    ):
        s = requests.Session()
        login = s.get(f"{stack.web}/admin/login", timeout=10)
        pages.keep(login, "sign in")
        refused = {"csrf_token": csrf(login.text), "name": name, "password": "wrong"}
        pages.keep(s.post(f"{stack.web}/admin/login", data=refused, timeout=10), "sign in refused")
        signed = {"csrf_token": csrf(login.text), "name": name, "password": password}
        assert s.post(f"{stack.web}/admin/login", data=signed, timeout=10).ok
        starts = [home, f"/admin/cases?q={cases['waiting'][0]}"]
        starts += [f"/admin/cases/{ref}" for ref, _ in cases.values()]
        starts += [f"/admin/agency/cases/{ref}" for ref, _ in cases.values()]
        starts += [f"/admin/signals/cases/{ref}" for ref, _ in cases.values()]
        pages.crawl(s, starts, "/admin/", limit=6000)


def endpoints(stack):
    """The app's routes, to name the endpoint of each page checked."""
    from loket.app import create_app

    app = create_app(
        Settings.from_env({"LOKET_DATABASE_URL": stack.database_url, "LOKET_SECRET_KEY": "x"})
    )
    return app.url_map


@pytest.fixture(scope="module")
def every_page(held_stack, tmp_path_factory):
    cases = seed(held_stack)
    pages = Pages(held_stack.web)
    pages.keep(requests.get(held_stack.web + "/", timeout=10), "language choice")
    for lang in LANGS:
        front_desk(held_stack, pages, lang, cases)
    back_office(held_stack, pages, cases)
    folder = tmp_path_factory.mktemp("pages")
    for n, page in enumerate(pages.pages):
        (folder / f"{n:05d}.html").write_text(page.html, encoding="utf-8")
    return pages, folder


def test_every_page_is_found_and_valid_html(every_page, held_stack):
    pages, folder = every_page
    url_map = endpoints(held_stack)
    adapter = url_map.bind("localhost")
    seen = set()
    for page in pages.pages:
        try:
            endpoint, _ = adapter.match(urlsplit(page.url).path, method=page.method)
            seen.add(endpoint)
        except Exception:
            seen.add("404")
    wanted = {
        rule.endpoint
        for rule in url_map.iter_rules()
        if "GET" in (rule.methods or ())
        and rule.endpoint.split(".")[0] in ("frontdesk", "admin", "web")
        and rule.endpoint not in NOT_PAGES
    }
    print(f"{len(pages.pages)} pages, {len(seen)} endpoints")
    missing = wanted - seen
    assert not missing, f"pages nobody checks (link them, or add their state here): {missing}"
    assert not [p for p in pages.pages if p.status >= 500], "a page failed"

    if not VNU.exists():
        peer_missing("vnu-jar not installed: run `make install` (npm install in tests/browser)")
    if not shutil.which("java"):
        peer_missing("Java not installed: apt-get install default-jre-headless (.ci/run does)")
    errors = nu_check(folder)
    by_page = defaultdict(list)
    for e in errors:
        n = int(Path(urlsplit(e.get("url", "")).path).stem or -1)
        page = pages.pages[n] if 0 <= n < len(pages.pages) else None
        where = f"{page.method} {page.url} {page.state}" if page else e.get("url")
        by_page[e["message"]].append(where)
    report = "\n".join(
        f"{len(where)} x {message}\n    e.g. {where[:3]}" for message, where in by_page.items()
    )
    assert not errors, (
        f"Nu HTML Checker: {len(errors)} errors on {len(pages.pages)} pages\n{report}"
    )


def test_every_kind_of_page_passes_axe_and_fits_320_px(every_page, held_stack):
    if not CHROMIUM.exists():
        peer_missing("Chromium not installed: apt-get install chromium (.ci/run does)")
    if not AXE.exists():
        peer_missing("axe-core not installed: run `make install` (npm install in tests/browser)")
    from playwright.sync_api import sync_playwright

    pages, _ = every_page
    adapter = endpoints(held_stack).bind("localhost")
    chosen, kinds = [], set()
    for page in pages.pages:  # each endpoint in each language and state, once
        path = urlsplit(page.url).path
        try:
            endpoint = adapter.match(path, method=page.method)[0]
        except Exception:
            endpoint = "404"
        kind = (endpoint, path.split("/")[1], page.state, page.status)
        if kind not in kinds:
            kinds.add(kind)
            chosen.append(page)
    wide, found = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=held_stack.web, bypass_csp=True, viewport={"width": 320, "height": 640}
        )
        tab = context.new_page()
        tab.goto("/healthz")
        axe = Path(AXE).read_text()
        for page in chosen:  # the page as it was served, on its own site (its CSS, its scripts)
            tab.set_content(page.html, wait_until="load")
            width = tab.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
            if width[0] > width[1]:
                wide.append(f"{page.url} {page.state}: {width[0]} px")
            tab.add_script_tag(content=axe)
            violations = tab.evaluate(
                """async () => (await axe.run(document, {resultTypes: ['violations']}))
                    .violations.map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 2)
                    .map(n => n.target.join(' ')).join(', ')}`)"""
            )
            found += [f"{page.url} {page.state}: {v}" for v in violations]
        browser.close()
    assert len(chosen) >= 40, f"only {len(chosen)} kinds of page"
    assert not wide, "scrolls sideways at 320 px:\n" + "\n".join(wide)
    assert not found, "axe-core:\n" + "\n".join(found)
