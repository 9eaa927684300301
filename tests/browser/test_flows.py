"""The acceptance flows of issue 6, in a real browser, against real processes."""

from __future__ import annotations

import re

import pytest

from tests.support.browser import (
    check_axe,
    copy_to_docs,
    fill_date,
    go_on_to_check,
    mail_link,
    on_check_page,
    shot,
)
from tests.support.env import wait_until

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
REFERENCE = re.compile(r"LK-[0-9A-Z]{4}-[0-9A-Z]{4}")


def status_text(page) -> str:
    return page.locator(".status-now").inner_text().strip()


def reload_until(page, predicate, timeout: float, what: str):
    def check():
        page.reload()
        return predicate()

    return wait_until(check, timeout, what, interval=0.3)


def fill_consumer(page, name: str, email: str) -> None:
    page.fill("#consumer_name", name)
    page.fill("#consumer_email", email)


def test_in_french_a_telecom_bill_complaint_goes_from_the_start_page_to_resolved(page_fr, stack):
    page = page_fr
    page.goto("/")
    assert page.url.endswith("/fr/")  # the browser's Accept-Language chose French
    assert page.locator("html").get_attribute("lang") == "fr"
    check_axe(page, "start (fr)")
    copy_to_docs(shot(page, "fr-01-start"), "frontdesk-start-fr.png")

    page.click("a[href='/fr/problem/telecom/']")
    page.click("a[href='/fr/problem/telecom/billing/']")
    assert "Vous avez le droit de contester une facture" in page.inner_text("main")
    shot(page, "fr-02-rights-and-options")
    page.get_by_role("link", name="Introduire une plainte").click()
    main = page.inner_text("main")
    assert "Service de médiation pour les télécommunications" in main  # who, and why
    assert "traite les litiges avec les opérateurs télécoms" in main
    page.check("#a_contacted_trader-yes")
    page.check("#a_court_case_pending-no")
    shot(page, "fr-03-who-and-questions")
    page.get_by_role("button", name="Continuer").click()

    assert "/form" in page.url
    fill_consumer(page, "Marie Dubois", "marie.dubois@example.be")
    page.fill("#trader_name", "Telco SA")
    page.fill("#trader_enterprise_number", "0403.170.701")
    page.fill("#description", "Ma facture d'octobre compte deux fois l'abonnement internet.")
    fill_date(page, "incident_date", "2026-10-15")
    fill_date(page, "complaint_date", "2026-10-20")
    page.fill("#amount", "49,99")
    page.get_by_label(re.compile("J'accepte que le guichet transmette")).check()
    check_axe(page, "form (fr)")
    shot(page, "fr-04-form")
    before = stack.case_count()  # the stack is shared by the module's tests
    page.get_by_role("button", name="Continuer").click()

    # "check your answers": everything entered, each with its Change button; files go here
    assert on_check_page(page) and stack.case_count() == before
    main = page.inner_text("main")
    assert "Vérifiez vos réponses" in main and "15 octobre 2026" in main
    check_axe(page, "check your answers (fr)")
    shot(page, "fr-04b-check-your-answers")
    page.get_by_role("button", name=re.compile("Modifier.*nom de l'entreprise")).click()
    assert page.input_value("#trader_name") == "Telco SA"  # back on the form, nothing lost
    assert page.input_value("#incident_date-month") == "10"
    page.fill("#trader_name", "Telco Belgium SA")
    page.get_by_role("button", name="Continuer").click()
    assert "Telco Belgium SA" in page.inner_text("main")
    page.set_input_files(
        "#attachments",
        files=[{"name": "facture.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    page.get_by_role("button", name="Envoyer mon dossier").click()

    page.wait_for_url(re.compile(r"/fr/filed/LK-"))
    reference = page.locator("#reference").inner_text().strip()
    assert REFERENCE.fullmatch(reference)
    assert "Service de médiation pour les télécommunications" in page.inner_text("main")
    assert "Réponse attendue au plus tard le" in page.inner_text("main")
    check_axe(page, "confirmation (fr)")
    shot(page, "fr-05-confirmation")

    mail = stack.wait_for_mail("marie.dubois@example.be", reference, "a bien été reçu")
    link = mail_link(mail)
    assert link.startswith(f"{stack.web}/fr/track/{reference}?k=")

    page.goto(link)
    page.wait_for_url(f"{stack.web}/fr/track/{reference}")  # the code left the address bar
    assert "k=" not in page.url
    reload_until(
        page,
        lambda: status_text(page) == "En attente de votre réponse",
        60,
        "the ombudsman's information request on the tracking page",
    )
    main = page.inner_text("main")
    assert "Reçu par le service" in main or "OMB-" in main  # its status and its reference
    assert re.search(r"OMB-\d{4}-\d{6}", main)
    assert "Please send us a copy of the disputed bill." in main  # the agency's own words
    check_axe(page, "tracking, waiting for the consumer (fr)")
    copy_to_docs(shot(page, "fr-06-tracking-reply"), "frontdesk-tracking-fr.png")

    page.fill("textarea[name=text]", "Voici la facture contestée.")
    page.set_input_files(
        "input[name=files]",
        files=[{"name": "facture octobre.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    page.get_by_role("button", name="Envoyer ma réponse").click()
    assert "Votre réponse a été envoyée" in page.inner_text("main")

    def reached_the_simulator():
        for case in stack.simulated_cases():
            if case["external_reference"] == reference and case["messages"]:
                return case["messages"][0]
        return None

    message = wait_until(reached_the_simulator, 30, "the answer at the ombudsman")
    assert message["text"] == "Voici la facture contestée."
    assert [a["filename"] for a in message["attachments"]] == ["facture octobre.pdf"]

    reload_until(page, lambda: status_text(page) == "Clôturé", 60, "the case to be resolved")
    assert "Votre dossier est clôturé" in page.inner_text("main")
    check_axe(page, "tracking, resolved (fr)")
    shot(page, "fr-07-tracking-resolved")
    # the information request was mailed, alone or with the changes of the same minute
    stack.wait_for_mail(
        "marie.dubois@example.be", reference, body_has="Merci de répondre au plus tard le"
    )


def test_in_dutch_a_fake_webshop_report_reaches_the_inspection_and_closes_honestly(page_nl, stack):
    page = page_nl
    page.goto("/")
    assert page.url.endswith("/nl/")
    page.click("a[href='/nl/problem/ecommerce/']")
    page.click("a[href='/nl/problem/ecommerce/fake_webshop/']")
    shot(page, "nl-01-rights-and-options")
    page.get_by_role("link", name="Melden aan een inspectie").click()
    assert "Economische Inspectie" in page.inner_text("main")
    page.get_by_role("link", name="Verder naar het formulier").click()

    fill_consumer(page, "Jan Peeters", "jan.peeters@example.be")
    page.fill("#trader_name", "Prijsbreker")
    page.fill("#trader_website", "prijsbreker.example")
    page.fill("#description", "Betaald voor een gsm, nooit geleverd; de webwinkel is onbereikbaar.")
    fill_date(page, "incident_date", "2026-10")  # about October: the month is enough
    page.get_by_label(re.compile("Ik ga ermee akkoord")).check()
    shot(page, "nl-02-form")
    go_on_to_check(page)
    assert "oktober 2026" in page.inner_text("main")
    page.get_by_role("button", name="Mijn dossier versturen").click()

    page.wait_for_url(re.compile(r"/nl/filed/LK-"))
    reference = page.locator("#reference").inner_text().strip()
    main = page.inner_text("main")
    assert "Economische Inspectie (FOD Economie)" in main
    assert "u krijgt geen individueel antwoord" in main  # said before, not discovered later
    shot(page, "nl-03-confirmation")

    mail = stack.wait_for_mail("jan.peeters@example.be", reference, "ontvangen")
    page.goto(mail_link(mail))
    page.wait_for_url(f"{stack.web}/nl/track/{reference}")
    reload_until(
        page,
        lambda: (
            status_text(page) == "Afgesloten: gebruikt voor controles, zonder individueel antwoord"
        ),
        60,
        "the inspection's closing status",
    )
    main = page.inner_text("main")
    assert re.search(r"EI-\d{4}-\d{6}", main)  # the inspection's own number reached the page
    assert "Uw melding werd gebruikt voor controles" in main  # what to do next: nothing
    check_axe(page, "tracking, closed (nl)")
    shot(page, "nl-04-tracking-closed")


def test_a_failed_precheck_shows_what_to_do_first_and_the_model_letter(browser, stack):
    from tests.support.browser import new_page

    page = new_page(browser, stack, "de-BE")
    before = stack.case_count()
    page.goto("/de/problem/telecom/billing/complaint/")
    page.check("#a_contacted_trader-no")
    page.check("#a_court_case_pending-no")
    page.get_by_role("button", name="Weiter").click()
    main = page.inner_text("main")
    assert "Tun Sie zuerst Folgendes" in main
    assert "Schicken Sie dem Unternehmen zuerst eine schriftliche Beschwerde" in main  # advice
    letter = page.locator("#letter").inner_text()
    assert "[Name des Unternehmens]" in letter and "{" not in letter
    assert "innerhalb von 10 Tagen" in letter  # the deadline the advice gives
    assert page.locator("#letter p").count() > 8  # paragraphs the browser wraps
    assert page.locator("form[method=post]").count() == 0  # no form to file a refused case
    check_axe(page, "advice (de)")
    shot(page, "de-advice")
    with page.expect_download() as download:
        page.get_by_role("link", name="Den Brief herunterladen").click()
    assert download.value.suggested_filename == "brief-an-das-unternehmen.txt"
    assert stack.case_count() == before
    page.context.close()
