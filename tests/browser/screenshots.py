"""The README's screenshots of the tracking page, at 1280 and 390 px:

    .venv/bin/python -m tests.browser.screenshots

Starts the whole Loket on loopback (tests.support.stack), files a demo case through the API (a
French consumer's fake-webshop complaint: the Consumer Mediation Service handles it, the
Economic Inspection is informed), has the mediation take it up, and photographs the consumer's
tracking page into docs/tracking-1280.png and docs/tracking-390.png. Needs Chromium
(apt-get install chromium), as the browser tests do."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import requests

from hub.config import ROOT
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.env import wait_until
from tests.support.stack import Rest, running_stack

MEDIATION, INSPECTION = "consumer-mediation", "economic-inspection"
WIDTHS = {1280: ROOT / "docs" / "tracking-1280.png", 390: ROOT / "docs" / "tracking-390.png"}


def demo_case(web: str) -> tuple[str, str]:
    case = json.loads((ROOT / "contracts" / "examples" / "case.json").read_text())
    case.update(
        domain="ecommerce.fake_webshop",
        language="fr",
        description="J'ai payé un smartphone le 15 octobre ; il n'a jamais été livré et le "
        "webshop ne répond plus.",
        consumer={"name": "Marie Dubois", "email": "marie.dubois@example.be"},
        trader={"name": "Prixcassés SPRL", "website": "https://prixcasses.example"},
        answers={"contacted_trader": True, "court_case_pending": False, "trader_is_business": True},
    )
    answer = requests.post(f"{web}/api/v1/cases", json=case, timeout=10)
    answer.raise_for_status()
    return answer.json()["reference"], answer.json()["tracking_token"]


def main() -> int:
    if not CHROMIUM.exists():
        print("Chromium not installed: apt-get install chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory() as home,
        running_stack(Path(home), (Rest(MEDIATION, step_seconds=3600),)) as stack,
    ):
        reference, token = demo_case(stack.web)

        def lines() -> dict[str, str]:
            body = requests.get(
                f"{stack.web}/api/v1/cases/{reference}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).json()
            return {line["agency"]: line["status"] for line in body["agencies"]}

        stack.move(MEDIATION, reference, "IN_BEHANDELING", "Le webshop a été contacté.")
        wait_until(lambda: lines().get(MEDIATION) == "in_progress", 60, "the mediation at work")
        wait_until(lambda: lines().get(INSPECTION) != "queued", 60, "the inspection informed")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for width, target in WIDTHS.items():
                context = browser.new_context(
                    base_url=stack.web, locale="fr-BE", viewport={"width": width, "height": 900}
                )
                page = context.new_page()
                page.goto(f"/fr/track/{reference}?k={token}")
                page.wait_for_url(f"**/fr/track/{reference}")
                page.screenshot(path=str(target), full_page=True)
                print(f"{target.relative_to(ROOT)}: {width} px")
                context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
