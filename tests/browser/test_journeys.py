"""Issue 13: three consumers follow their case from the first page to its end, on a desktop
(1280 px) and on a phone (390 px). The simulated agencies hold each case until the test moves it
(as their staff would), so every step is looked at: the case's status, its expected date, who
must act by when, the mail each line change brings in the consumer's language, and a page that
never scrolls sideways."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pytest
from babel.support import Translations

from hub import lifecycle
from hub.i18n import TRANSLATIONS
from tests.support.browser import CHROMIUM, check_axe, shot
from tests.support.env import peer_missing
from tests.support.journey import (
    Tracked,
    answer_prechecks,
    day,
    fill_date,
    fill_if_there,
    no_sideways_scroll,
    send_case,
)

pytestmark = pytest.mark.e2e

TELECOM = "ombudsman-telecom"
MEDIATION = "consumer-mediation"
INSPECTION = "economic-inspection"
RAIL = "ombudsman-rail"
VIEWPORTS = {"desktop": (1280, 900), "mobile": (390, 844)}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def page_text(msgid: str, lang: str) -> str:
    """A page string in `lang`, from the front desk's catalog."""
    return Translations.load(str(TRANSLATIONS), [lang]).gettext(msgid)


@dataclass(frozen=True)
class Consumer:
    lang: str
    name: str
    trader: str
    description: str
    go_on: str  # the pre-check's button
    send: str  # the form's button


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request, browser, held_stack):
    if not CHROMIUM.exists():
        peer_missing("Chromium not installed: apt-get install chromium (.ci/run does)")
    width, height = VIEWPORTS[request.param]
    context = browser.new_context(
        base_url=held_stack.web,
        locale="en-BE",  # the consumer picks their language in the address
        bypass_csp=True,  # to inject axe-core
        viewport={"width": width, "height": height},
    )
    context.set_default_timeout(15000)
    page = context.new_page()
    page.screen = request.param
    yield page
    context.close()


def file(page, stack, who: Consumer, problem: str) -> Tracked:
    """From the problem's page to the confirmation, as `who`; returns the case as they follow
    it (their private link comes by mail)."""
    lang = who.lang
    email = f"{who.name.split()[0].lower()}.{page.screen}@example.be"
    page.goto(f"/{lang}/problem/{problem}/complaint/")
    no_sideways_scroll(page, "the problem's page")
    answer_prechecks(page, who.go_on)
    page.fill("#consumer_name", who.name)
    page.fill("#consumer_email", email)
    page.fill("#trader_name", who.trader)
    page.fill("#description", who.description)
    fill_date(page, "incident_date", date(2026, 10, 15))
    fill_date(page, "complaint_date", date(2026, 10, 20))
    fill_if_there(page, "#amount", "49,99")
    for consent in page.locator("input[type=checkbox][name^=consent]").all():
        consent.check()
    no_sideways_scroll(page, "the form")
    reference = send_case(page, who.send, lang)
    no_sideways_scroll(page, "the confirmation")
    tracked = Tracked(stack, page, lang, email, reference)
    page.goto(tracked.link)
    page.wait_for_url(f"**/{lang}/track/{reference}")  # the code left the address bar
    return tracked


def step(tracked: Tracked, what: str) -> None:
    """What every step checks besides its own state: no sideways scroll, no axe finding, a
    screenshot for the record."""
    no_sideways_scroll(tracked.page, what)
    check_axe(tracked.page, what)
    shot(tracked.page, f"journey-{tracked.lang}-{tracked.page.screen}-{what.replace(' ', '-')}")


def test_a_french_telecom_double_bill_goes_to_the_telecom_ombudsman(screen, held_stack):
    stack, page = held_stack, screen
    who = Consumer(
        "fr",
        "Marie Dubois",
        "Telco SA",
        "Ma facture d'octobre compte deux fois l'abonnement internet.",
        "Continuer",
        "Envoyer mon dossier",
    )
    case = file(page, stack, who, "telecom/billing")
    name = case.line(TELECOM)["name"]

    line = case.wait_line(TELECOM, "received", "received by the ombudsman")
    case.shows("received", dated=True)
    assert re.fullmatch(r"OMB-\d{4}-\d{6}", line["agency_reference"])
    case.card_shows(TELECOM, "received", day(line["answer_by"], "fr"))
    case.mailed(name, "received")
    step(case, "received")

    stack.move(TELECOM, case.reference, "INFO_REQUESTED", "Envoyez-nous la facture contestée.")
    line = case.wait_line(TELECOM, "waiting_for_consumer", "asking for the bill")
    reply_by = day(line["reply_by"], "fr")
    assert reply_by
    case.shows("waiting_for_consumer", dated=None)
    # who acts by when: the consumer, by the reply date, said at the top and at the form
    assert reply_by in page.locator("#status .reply-by").inner_text()
    assert page.locator("#status [data-acts=consumer]").count() == 1
    assert page.locator("#status [data-acts=service]").count() == 0
    assert reply_by in page.locator("section.reply .reply-by").inner_text()
    assert "Envoyez-nous la facture contestée." in page.locator("section.reply").inner_text()
    case.card_shows(TELECOM, "waiting_for_consumer")
    case.mailed(name, None, body_has=reply_by)  # the request, and by when to answer
    step(case, "waiting for the consumer")

    page.fill("section.reply textarea[name=text]", "Voici la facture contestée.")
    page.set_input_files(
        "section.reply input[name=files]",
        files=[{"name": "facture.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    page.locator("section.reply button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/fr/track/{case.reference}#status$"))
    assert page.locator(".notice").count() == 1  # it was sent
    # answered: the service acts now; nothing on the page asks for the answer again
    assert page.locator("section.reply").count() == 0
    assert page.locator("#status .reply-by").count() == 0
    assert page.locator("#status [data-acts=consumer]").count() == 0
    assert page.locator("#status [data-acts=service]").count() == 1
    assert page.locator(".status-now").inner_text().strip() != case.label("waiting_for_consumer")
    step(case, "answered")

    stack.move(TELECOM, case.reference, "MEDIATING", "L'opérateur a été interrogé.")
    line = case.wait_line(TELECOM, "in_progress", "mediating")
    case.shows("in_progress", dated=True)
    case.card_shows(TELECOM, "in_progress")
    case.mailed(name, "in_progress")
    step(case, "in progress")

    stack.move(TELECOM, case.reference, "CLOSED_AGREEMENT", "L'opérateur rembourse 49,99 EUR.")
    case.wait_line(TELECOM, "resolved", "closed with an agreement")
    case.shows("resolved", dated=False)
    assert case.api()["expected_answer_by"] is None
    outcome = lifecycle.outcome_label("solved", "fr")
    assert outcome in page.locator("#status .outcome").inner_text()
    case.card_shows(TELECOM, "resolved")
    case.mailed(name, "resolved")
    step(case, "resolved")


def test_a_dutch_webshop_that_never_delivered_goes_to_mediation_and_the_inspection(
    screen, held_stack
):
    stack, page = held_stack, screen
    who = Consumer(
        "nl",
        "Jan Peeters",
        "Prijsbreker",
        "Betaald voor een gsm op 15 oktober, nooit geleverd; de webwinkel antwoordt niet meer.",
        "Verder",
        "Mijn dossier versturen",
    )
    case = file(page, stack, who, "ecommerce/fake_webshop")
    lines = {line["agency"]: line for line in case.api()["agencies"]}
    assert set(lines) == {MEDIATION, INSPECTION}  # the fan-out
    assert lines[INSPECTION]["answers_consumer"] is False
    name = lines[MEDIATION]["name"]

    line = case.wait_line(MEDIATION, "received", "received by the mediation")
    # the case's status and date are the mediation's: the inspection never answers one by one
    body = case.shows("received", dated=True)
    assert body["expected_answer_by"] == line["answer_by"]
    case.card_shows(MEDIATION, "received", day(line["answer_by"], "nl"))
    inspection = case.card(INSPECTION).inner_text()
    assert (
        page_text("No individual answer", "nl") in inspection
        or lifecycle.label("closed_no_individual_follow_up", "nl") in inspection
    ), inspection
    case.mailed(name, "received")
    step(case, "received")

    stack.move(MEDIATION, case.reference, "IN_BEHANDELING", "De webwinkel werd aangeschreven.")
    case.wait_line(MEDIATION, "in_progress", "handled by the mediation")
    case.shows("in_progress", dated=True)
    case.card_shows(MEDIATION, "in_progress")
    case.mailed(name, "in_progress")
    step(case, "in progress")

    stack.move(MEDIATION, case.reference, "AFGESLOTEN_MINNELIJK", "Minnelijke schikking bereikt.")
    case.wait_line(MEDIATION, "resolved", "resolved by the mediation")
    case.shows("resolved", dated=False)
    outcome = lifecycle.outcome_label("solved", "nl")
    assert outcome in page.locator(f"#status .outcome[data-agency={MEDIATION}]").inner_text()
    case.card_shows(MEDIATION, "resolved")
    assert page.locator(f"li.line[data-agency={INSPECTION}]").count() == 1
    case.mailed(name, "resolved", body_has="Minnelijke schikking bereikt.")
    step(case, "resolved")


def test_a_german_train_delay_goes_to_the_rail_ombudsman(screen, held_stack):
    stack, page = held_stack, screen
    who = Consumer(
        "de",
        "Lukas Schmitz",
        "SNCB/NMBS",
        "Mein Zug von Eupen nach Brüssel hatte 95 Minuten Verspätung; die SNCB erstattet nichts.",
        "Weiter",
        "Meine Akte senden",
    )
    case = file(page, stack, who, "transport/rail_delay")
    name = case.line(RAIL)["name"]

    line = case.wait_line(RAIL, "received", "received by the rail ombudsman")
    case.shows("received", dated=True)
    assert re.fullmatch(r"OTR-\d{4}-\d{5}", line["agency_reference"])
    case.card_shows(RAIL, "received", day(line["answer_by"], "de"))
    case.mailed(name, "received")
    step(case, "received")

    stack.move(RAIL, case.reference, "EN_MEDIATION", "Médiation en cours avec la SNCB.")
    case.wait_line(RAIL, "in_progress", "mediating with the railway")
    case.shows("in_progress", dated=True)
    case.card_shows(RAIL, "in_progress")
    case.mailed(name, "in_progress")
    step(case, "in progress")

    stack.move(RAIL, case.reference, "CLOTURE_ACCORD", "La SNCB rembourse le billet.")
    case.wait_line(RAIL, "resolved", "closed with an agreement")
    case.shows("resolved", dated=False)
    assert lifecycle.outcome_label("solved", "de") in page.locator("#status .outcome").inner_text()
    case.card_shows(RAIL, "resolved")
    case.mailed(name, "resolved")
    step(case, "resolved")
