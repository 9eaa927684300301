"""The hosted workspace in a real browser: a water complaint reaches the Médiateur de la
Wallonie, which has no case system of its own. Its staff acknowledge the case, ask for "a copy
of the disputed bill"; the consumer reads that request in French on the tracking page and
answers with a PDF; the staff download it and close the case; the consumer's page shows each
step. Every workspace page passes axe-core."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from hub import accounts
from hub.config import ROOT
from hub.db import Database
from tests.support.browser import check_axe, new_page, shot
from tests.support.env import wait_until
from tests.support.frontdesk import PDF

pytestmark = pytest.mark.e2e

WORKSPACE = "mediateur-wallonie"


def _staff(stack) -> str:
    db = Database(stack.database_url)
    try:
        return accounts.ensure_demo(db, "claire-browser", "agency", WORKSPACE, datetime.now(UTC))
    finally:
        db.dispose()


def _file(stack) -> tuple[str, str]:
    case = json.loads((ROOT / "contracts" / "examples" / "water-case.json").read_text())
    answer = requests.post(f"{stack.web}/api/v1/cases", json=case, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["reference"], answer.json()["tracking_token"]


def test_a_workspace_body_works_a_case_with_the_consumer_in_the_browser(browser, stack):
    password = _staff(stack)
    reference, token = _file(stack)
    staff = new_page(
        browser, stack, "fr-BE"
    )  # the Médiateur works in French, and so does its back office
    consumer = new_page(browser, stack, "fr-BE")
    try:
        staff.goto("/admin/")
        staff.fill("#name", "claire-browser")
        staff.fill("#password", password)
        staff.get_by_role("button", name="Se connecter").click()
        staff.wait_for_url("**/admin/agency")

        def landed():
            staff.reload()
            row = staff.locator("tr", has_text=reference)
            return row.count() and "à confirmer" in row.inner_text()

        wait_until(landed, 30, f"{reference} in the Médiateur's inbox", 0.5)
        check_axe(staff, "workspace inbox")
        staff.get_by_role("link", name=reference).click()
        assert "Répondez en français" in staff.inner_text("#consumer-language")
        assert "Julie Lambert" in staff.inner_text("main")
        check_axe(staff, "workspace case, new")
        staff.fill("#agency_reference", "MW-2026-0815")
        staff.get_by_role("button", name="Confirmer la réception").click()
        assert "Réception confirmée" in staff.inner_text("main")

        staff.select_option("#reason", "disputed_bill")
        staff.fill("#info-text", "Joignez aussi le relevé de votre compteur.")
        staff.get_by_role("button", name="Demander des informations").click()
        assert "Votre question a été envoyée" in staff.inner_text("main")
        check_axe(staff, "workspace case, acknowledged")
        shot(staff, "workspace-case-fr")

        consumer.goto(f"/fr/track/{reference}?k={token}")
        consumer.wait_for_url(f"**/fr/track/{reference}")
        page_text = consumer.inner_text("main")
        assert "MW-2026-0815" in page_text
        assert "Le service vous demande une copie de la facture contestée." in page_text
        consumer.fill("textarea[name=text]", "Voici la facture de la SWDE.")
        consumer.set_input_files(
            "input[name=files]",
            files=[{"name": "facture SWDE.pdf", "mimeType": "application/pdf", "buffer": PDF}],
        )
        consumer.get_by_role("button", name="Envoyer ma réponse").click()
        assert "Votre réponse a été envoyée" in consumer.inner_text("main")

        def reply_arrived():
            staff.reload()
            return staff.get_by_role("link", name="facture SWDE.pdf").count() > 0

        wait_until(reply_arrived, 30, "the consumer's reply in the workspace", 0.5)
        assert "Voici la facture de la SWDE." in staff.inner_text("main")
        with staff.expect_download() as download:
            staff.get_by_role("link", name="facture SWDE.pdf").click()
        assert download.value.suggested_filename == "facture SWDE.pdf"
        assert Path(download.value.path()).read_bytes() == PDF

        staff.select_option("#close-status", "CLOTUREE_FONDEE")
        staff.fill("#close-message", "La SWDE annule la facture et rembourse 1 240 euros.")
        staff.get_by_role("button", name="Clôturer avec un résultat").click()
        assert "Le dossier est clôturé." in staff.inner_text("main")

        consumer.reload()
        final = consumer.inner_text("main")
        for step in (
            "MW-2026-0815",
            "Le service vous demande une copie de la facture contestée.",
            "Voici la facture de la SWDE.",
            "La SWDE annule la facture et rembourse 1 240 euros.",
        ):
            assert step in final, step
        assert consumer.locator('[data-status="resolved"]').count() == 1
        check_axe(consumer, "tracking, closed by a workspace body")
        shot(consumer, "tracking-workspace-closed-fr")
    finally:
        staff.context.close()
        consumer.context.close()
