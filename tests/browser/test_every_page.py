"""Every page of the front desk in every language: axe-core finds no serious or critical
violation, and no page shows English source text where a translation exists."""

from __future__ import annotations

import re
from datetime import date

import pytest
from babel.messages.pofile import read_po

from hub.i18n import catalog
from tests.support.browser import check_axe, new_page, shot
from tests.support.journey import fill_date

pytestmark = pytest.mark.e2e

TEXTS = {
    "nl": ("Ja", "Nee", "Verder", "Ik ga ermee akkoord", "Mijn dossier versturen"),
    "fr": ("Oui", "Non", "Continuer", "J'accepte", "Envoyer mon dossier"),
    "de": ("Ja", "Nein", "Weiter", "Ich bin damit einverstanden", "Meine Akte senden"),
    "en": ("Yes", "No", "Continue", "I agree", "Send my case"),
}


def english_fragments(lang: str) -> list[str]:
    """Pieces of English source text that must not show on a page in `lang` (a msgid that
    fell back to English because it has no translation would show them)."""
    with open(catalog(lang), "rb") as fh:
        messages = read_po(fh, locale=lang)
    out = set()
    for m in messages:
        if not m.id or m.string == m.id:
            continue
        for piece in re.split(r"%\(\w+\)[sd]", m.id):
            piece = piece.strip(" .,:;?")
            if len(piece) >= 15:
                out.add(piece)
    return sorted(out)


def check_page(page, lang: str, what: str, fragments: list[str]) -> None:
    assert page.locator("html").get_attribute("lang") == lang, what
    # a service's own words stand in their own language, marked with `lang` (its messages are
    # quoted as written): only the hub's own text must be in the page's language
    text = page.evaluate(
        """(lang) => {
            const body = document.body.cloneNode(true);
            body.querySelectorAll('[lang]').forEach((e) => {
                if (e.getAttribute('lang') !== lang) e.remove();
            });
            return body.innerText;
        }""",
        lang,
    )
    assert "%(" not in text and "{{" not in text and "{%" not in text, what
    assert "{agency" not in text and "{to}" not in text, what  # a name form left unfilled
    if lang != "en":
        leftovers = [f for f in fragments if f in text]
        assert not leftovers, f"{what} ({lang}) shows untranslated text: {leftovers}"
    check_axe(page, f"{what} ({lang})")
    shot(page, f"all-{lang}-{what.replace(' ', '-')}")


@pytest.mark.parametrize("lang", ["nl", "fr", "de", "en"])
def test_every_page_is_translated_and_passes_axe(browser, stack, lang):
    _yes, _no, go_on, consent, send = TEXTS[lang]
    fragments = english_fragments(lang)
    page = new_page(browser, stack, f"{lang}-BE")
    try:
        page.goto(f"/{lang}/")
        check_page(page, lang, "start", fragments)
        page.click(f"a[href='/{lang}/problem/telecom/']")
        check_page(page, lang, "area", fragments)
        page.click(f"a[href='/{lang}/problem/telecom/billing/']")
        check_page(page, lang, "rights and options", fragments)
        page.click(f"a[href='/{lang}/problem/telecom/billing/complaint/']")
        check_page(page, lang, "who and questions", fragments)
        page.get_by_role("button", name=go_on, exact=True).click()
        check_page(page, lang, "questions unanswered", fragments)
        page.check("#a_contacted_trader-no")
        page.check("#a_court_case_pending-no")
        page.get_by_role("button", name=go_on, exact=True).click()
        check_page(page, lang, "advice and letter", fragments)

        # a telecom complaint: the simulated ombudsman stops at its information request, so
        # the case stays open to be withdrawn (a report to the inspection closes within seconds)
        page.goto(
            f"/{lang}/problem/telecom/billing/complaint/form"
            "?a_contacted_trader=yes&a_court_case_pending=no"
        )
        check_page(page, lang, "form", fragments)
        page.get_by_role("button", name=go_on, exact=True).click()
        check_page(page, lang, "form with errors", fragments)
        page.fill("#consumer_name", "A. Tester")
        page.fill("#consumer_email", f"tester.{lang}@example.be")
        page.fill("#trader_name", "Telco SA")
        page.fill("#description", "The October bill counts the subscription twice.")
        page.fill("#incident_date-year", "2026")  # a year alone is refused
        fill_date(page, "complaint_date", date(2026, 10, 20))
        page.get_by_label(re.compile(consent)).check()
        page.get_by_role("button", name=go_on, exact=True).click()
        check_page(page, lang, "form with a date error", fragments)
        page.fill("#incident_date-month", "10")
        page.get_by_role("button", name=go_on, exact=True).click()
        check_page(page, lang, "check your answers", fragments)
        page.get_by_role("button", name=send).click()
        page.wait_for_url(re.compile(f"/{lang}/filed/LK-"))
        reference = page.locator("#reference").inner_text().strip()
        check_page(page, lang, "confirmation", fragments)

        page.click(f"a[href='/{lang}/track/{reference}']")
        check_page(page, lang, "tracking", fragments)
        # by its address: the inspection may already have closed the report (it answers in
        # seconds), and then the page offers no link; the withdraw page itself still opens
        page.goto(f"/{lang}/track/{reference}/withdraw")
        check_page(page, lang, "withdraw", fragments)
        page.click("button.danger")
        page.wait_for_url(f"**/{lang}/track/{reference}")
        assert page.locator(".notice").count() == 1
        check_page(page, lang, "tracking withdrawn", fragments)

        page.goto(f"/{lang}/track")
        check_page(page, lang, "open a case", fragments)
        page.fill("#reference", reference)
        page.fill("#code", "not-the-code")
        page.click("form[method=post] button[type=submit]")
        assert page.locator("#error-summary").count() == 1
        check_page(page, lang, "open a case refused", fragments)
        for trust in ("privacy", "cookies", "accessibility", "contact"):
            page.goto(f"/{lang}/{trust}")
            check_page(page, lang, trust, fragments)
        page.goto(f"/{lang}/no/such/page")
        check_page(page, lang, "not found", fragments)
        for other in ("nl", "fr", "de", "en"):  # the switcher: the same page in each language
            href = page.locator(f"nav.langs [lang={other}]").get_attribute("href")
            assert href is None if other == lang else href == f"/{other}/no/such/page"
    finally:
        page.context.close()


def test_the_language_choice_for_a_browser_that_speaks_none_of_the_four(browser, stack):
    page = new_page(browser, stack, "es-ES")
    try:
        page.goto("/")
        assert page.url == f"{stack.web}/"
        assert [a.inner_text() for a in page.locator("main a").all()] == [
            "Nederlands",
            "Français",
            "Deutsch",
            "English",
        ]
        check_axe(page, "language choice")
        page.click("a[href='/de/']")
        page.goto("/")  # the choice is remembered
        assert page.url.endswith("/de/")
    finally:
        page.context.close()
