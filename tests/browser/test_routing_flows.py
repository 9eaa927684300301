"""Issue 14 in a real browser: a regional case and a case for a body outside Loket, each walked
from the problem page to its confirmation page."""

from __future__ import annotations

import re

import pytest

from tests.support.browser import check_axe, fill_date, review_and_send, shot

pytestmark = pytest.mark.e2e


def test_a_walloon_consumers_budget_meter_goes_to_the_walloon_regulator(page_fr, stack):
    page = page_fr
    page.goto("/fr/problem/energy/budget_meter/")
    assert "matières régionales" in page.inner_text("main")
    page.get_by_role("link", name="Introduire une plainte").click()
    page.get_by_role("button", name="Continuer").click()  # the postcode is asked first
    assert "code postal belge" in page.locator("#postcode-error").inner_text()
    page.fill("#postcode", "5000")  # Namur
    page.get_by_role("button", name="Continuer").click()

    assert "/form" in page.url and "postcode=5000" in page.url
    page.fill("#consumer_name", "Sophie Lambert")
    page.fill("#consumer_email", "sophie.lambert@example.be")
    page.fill("#trader_name", "ORES")
    page.fill("#description", "Mon compteur à budget a été placé sans que je sois prévenue.")
    fill_date(page, "incident_date", "2026-10-20")
    page.get_by_label(re.compile("J'accepte que le guichet conserve mon dossier")).check()
    review_and_send(page)

    page.wait_for_url(re.compile(r"/fr/filed/LK-"))
    main = page.inner_text("main")
    assert "Service régional de médiation pour l'énergie" in main
    assert "Base légale" in main and "12 April 2001" in main  # the rule's legal basis
    assert "n'est pas relié à Loket" in main  # a referral body: the consumer is told so
    assert "https://www.cwape.be" in main
    check_axe(page, "confirmation, regional referral (fr)")
    shot(page, "fr-budget-meter-confirmation")


def test_a_phishing_sms_is_referred_to_safeonweb_and_the_case_keeps_the_line(page_nl, stack):
    page = page_nl
    page.goto("/nl/problem/scam/phishing/")
    assert "suspect@safeonweb.be" in page.inner_text("main")
    page.get_by_role("link", name="Melden aan een inspectie").click()
    assert "Safeonweb" in page.inner_text("main")
    page.check("#a_gave_codes_or_paid-no")
    page.get_by_role("button", name="Verder").click()

    assert "/form" in page.url
    page.fill("#consumer_name", "Els Janssens")
    page.fill("#consumer_email", "els.janssens@example.be")
    page.fill("#trader_name", "Onbekende afzender (zogezegd bpost)")
    page.fill("#description", "Sms met een link om douanekosten te betalen voor een pakje.")
    page.get_by_label(re.compile("Ik ga ermee akkoord dat het loket mijn dossier")).check()
    review_and_send(page)

    page.wait_for_url(re.compile(r"/nl/filed/LK-"))
    main = page.inner_text("main")
    assert "Safeonweb" in main and "https://safeonweb.be" in main
    assert "niet met Loket verbonden" in main and "Wettelijke basis" in main
    check_axe(page, "confirmation, referral body (nl)")
    shot(page, "nl-phishing-confirmation")
