"""Shared test helpers: filing through the front desk's pages as a consumer would."""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from hub.models import Case
from tests.support.backoffice import token_of

FORM = "/{lang}/problem/telecom/billing/complaint/form"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def date_parts(name: str, iso: str) -> dict[str, str]:
    """A date as the consumer types it in the three boxes of the form's date input: 2026-10-15
    -> 15 / 10 / 2026; 2026-10 -> only the month and the year."""
    year, month, *day = iso.split("-")
    return {f"{name}-day": day[0] if day else "", f"{name}-month": month, f"{name}-year": year}


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    """What the "check your answers" page carries to its Send button (its hidden fields)."""
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


def post_form(client, path: str, data: dict, files=None):
    """Fill the case form and go on, as a consumer does: the form answers with the "check your
    answers" page (or itself with its errors), and only that page's Send files the case, with
    the documents added there. Returns the last answer: the form's own if it refused, else
    the Send's (303 to the confirmation, or the check page again with a refused file)."""
    review = client.post(path, data={**data, "step": "review"}, content_type="multipart/form-data")
    if review.status_code != 200 or 'name="step" value="send"' not in text(review):
        return review
    send = hidden_fields(text(review))
    if files:
        send["attachments"] = files
    return client.post(path, data=send, content_type="multipart/form-data")


def case_form(lang: str = "fr", **override) -> dict:
    return {
        "a_contacted_trader": "yes",
        "a_court_case_pending": "no",
        "a_trader_is_business": "yes",
        **date_parts("complaint_date", "2026-10-20"),
        "consumer_name": "Marie Dubois",
        "consumer_email": "marie@example.be",
        "trader_name": "Telco SA",
        "trader_enterprise_number": "0403.170.701",
        "description": "Ma facture compte deux fois l'abonnement.",
        **date_parts("incident_date", "2026-10-15"),
        "amount": "49,99",
        "trader_country": "BE",
        "consent_share": "yes",
        **override,
    }


def file_by_page(client, lang: str = "fr", files=None, **override):
    path = FORM.format(lang=lang)
    data = {
        "csrf_token": token_of(
            client,
            path + "?a_contacted_trader=yes&a_court_case_pending=no&a_trader_is_business=yes",
        ),
        **case_form(lang),
    }
    data.update(override)
    return post_form(client, path, data, files)


def filed(client, lang: str = "fr", **kw) -> tuple[str, str]:
    """File through the form; returns (reference, private code) as the confirmation shows."""
    answer = file_by_page(client, lang, **kw)
    assert answer.status_code == 303, text(answer)[:2000]
    reference = answer.headers["Location"].rsplit("/", 1)[1]
    page = text(client.get(answer.headers["Location"]))
    code = re.search(r'id="private-link"[^>]*value="[^"]*\?k=([^"]+)"', page).group(1)
    return reference, code


def count_cases(hub) -> int:
    with hub.db.session(read_only=True) as s:
        return s.scalar(select(func.count(Case.id)))


def asked_for_information(client, hub, sims, clock, lang: str = "nl") -> tuple[str, str]:
    """A telecom complaint filed through the pages, delivered, and moved by the simulated
    ombudsman to its information request; returns (reference, private code)."""
    from loket_simulators.rest_agency import profiles

    from scheduler.worker import Worker

    sims.system("ombudsman-telecom").profile = profiles()["ombudsman-telecom"].with_info()
    reference, code = filed(client, lang)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    for _ in range(3):
        worker.poll_agency("ombudsman-telecom")
        clock.advance(seconds=60)
    worker.poll_agency("ombudsman-telecom")
    return reference, code
