"""Shared test helpers: a consumer's journey in the browser, read as they would read it.

The filing helpers look at what the page offers rather than a fixed list (the pre-check
questions of the chosen problem, the fields of its form, a date given as one field or as day,
month and year, a "check your answers" step before filing), so a journey keeps working when a
page gains a question or a step."""

from __future__ import annotations

import re
from datetime import date, datetime

import requests

from hub import lifecycle
from tests.support import browser
from tests.support.browser import Stack, mail_link
from tests.support.env import wait_until

# the pre-check answers of a consumer who did what they should before filing
YES = ("contacted_trader", "trader_is_business", "departed_from_belgium")


def answer_prechecks(page, go_on: str) -> None:
    """Answer every yes/no question of the problem's page (yes where the consumer did their
    part, no to "a court case is pending" and the like) and go on to the form."""
    for _ in range(3):  # an answer can open another question
        for radio in page.locator("input[type=radio][id$='-no']").all():
            check = radio.get_attribute("name").removeprefix("a_")
            if page.locator(f"input[name='a_{check}']:checked").count():
                continue
            page.check(f"#a_{check}-{'yes' if check in YES else 'no'}")
        page.get_by_role("button", name=go_on, exact=True).click()
        if "/form" in page.url:
            return
    raise AssertionError(f"the pre-check did not lead to the form: {page.url}")


def fill_date(page, name: str, when: date) -> None:
    """A whole date in the form's day / month / year boxes (tests/support/browser.py), when the
    form asks for that date (a complaint date only where a service counts from it)."""
    if page.locator(f"#{name}-year").count():
        browser.fill_date(page, name, when.isoformat())


def fill_if_there(page, selector: str, value: str) -> None:
    if page.locator(selector).count():
        page.fill(selector, value)


def send_case(page, send: str, lang: str) -> str:
    """'Continue' on the form, then `send` on "check your answers". Returns the case's
    reference from the confirmation page."""
    browser.go_on_to_check(page)
    assert not page.locator("#error-summary").count(), page.inner_text("#error-summary")
    assert browser.on_check_page(page), page.url
    page.get_by_role("button", name=send).click()
    page.wait_for_url(re.compile(rf"/{lang}/filed/LK-"))
    return page.locator("#reference").inner_text().strip()


def no_sideways_scroll(page, what: str) -> None:
    wide = page.evaluate(
        "() => [document.scrollingElement.scrollWidth, window.innerWidth,"
        " [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
        " > window.innerWidth + 1).slice(0, 3).map(e => e.tagName + '.' + e.className)]"
    )
    assert wide[0] <= wide[1], f"{what} scrolls sideways at {wide[1]} px: {wide[0]} px, {wide[2]}"


def day(iso: str | None, lang: str) -> str | None:
    """A date of the API as the pages and mails write it (in Brussels, long, their language)."""
    return lifecycle.local_date(datetime.fromisoformat(iso), lang) if iso else None


class Tracked:
    """One case as its consumer follows it: the API's view (with their private code) and the
    tracking page in their browser."""

    def __init__(self, stack: Stack, page, lang: str, email: str, reference: str):
        self.stack, self.page, self.lang, self.email, self.reference = (
            stack,
            page,
            lang,
            email,
            reference,
        )
        # the confirmation: the one mail with the private link (a status mail may come first)
        mail = stack.wait_for_mail(email, reference, body_has="?k=")
        self.link = mail_link(mail)
        self.token = self.link.split("?k=", 1)[1]

    def api(self) -> dict:
        return requests.get(
            f"{self.stack.web}/api/v1/cases/{self.reference}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        ).json()

    def line(self, agency: str) -> dict:
        return next(line for line in self.api()["agencies"] if line["agency"] == agency)

    def wait_line(self, agency: str, status: str, what: str) -> dict:
        return wait_until(
            lambda: (line := self.line(agency))["status"] == status and line,
            30,
            f"{self.reference}: {agency} {what}",
            interval=0.3,
        )

    def open(self) -> None:
        self.page.goto(f"/{self.lang}/track/{self.reference}")

    def label(self, status: str) -> str:
        return lifecycle.label(status, self.lang)

    def card(self, agency: str):
        return self.page.locator(f"li.line[data-agency='{agency}']")

    def shows(self, status: str, dated: bool | None) -> dict:
        """Open the tracking page: it says the case's status and, when `dated`, the expected
        answer date the API gives (none when False; not looked at when None). Read again while the worker is still
        settling the change (the API and the page are two requests). Returns the API's view."""
        seen: list = []

        def agree():
            body = self.api()
            self.open()
            now = self.page.locator(".status-now").inner_text().strip()
            panel = self.page.locator("#status").inner_text()
            expected = day(body["expected_answer_by"], self.lang)
            seen[:] = [now, panel, body]
            if now != self.label(status):
                return None
            if dated:
                return body if expected and expected in panel else None
            if dated is None:
                return body
            return body if body["expected_answer_by"] is None else None

        try:
            return wait_until(agree, 10, f"{self.reference} shown as {status}", interval=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}: the page said {seen[:2]}, the API {seen[2:]}") from None

    def card_shows(self, agency: str, status: str, expected: str | None = None) -> None:
        card = self.card(agency)
        text = card.inner_text()
        assert self.label(status) in text, f"{agency}: {self.label(status)!r} not in {text}"
        if expected:
            assert expected in text, f"{agency}: {expected!r} not in {text}"
        reference = self.line(agency)["agency_reference"]
        if reference:  # their reference, whole, on one line
            ref = card.locator(".ref")
            assert ref.inner_text() == reference
            box = ref.bounding_box()
            assert box and box["height"] < 2 * float(
                ref.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 24")
            ), f"{reference} is broken over lines"

    def mailed(self, agency_name: str, status: str | None, body_has: str = "") -> object:
        """A mail about this case, in the consumer's language, names the line's change: the
        agency, its new status (None: a mail of its own words, e.g. the information request)
        and `body_has`; alone or with the changes of the same minute."""
        label = self.label(status) if status else ""

        def found():
            for m in self.stack.mails_about(self.email, self.reference):
                body = m.get_body(("plain",)).get_content()
                if agency_name in body and label in body and body_has in body:
                    return m
            return None

        try:
            return wait_until(found, 30, f"a mail: {agency_name}: {label} {body_has}", 0.3)
        except AssertionError as e:
            got = [
                m.get_body(("plain",)).get_content()
                for m in self.stack.mails_about(self.email, self.reference)
            ]
            raise AssertionError(f"{e}; the mails about the case:\n" + "\n---\n".join(got)) from e
