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


def case_form(lang: str = "fr", **override) -> dict:
    return {
        "a_contacted_trader": "yes",
        "a_court_case_pending": "no",
        "a_trader_is_business": "yes",
        "complaint_date": "2026-10-20",
        "consumer_name": "Marie Dubois",
        "consumer_email": "marie@example.be",
        "trader_name": "Telco SA",
        "trader_enterprise_number": "0403.170.701",
        "description": "Ma facture compte deux fois l'abonnement.",
        "incident_date": "2026-10-15",
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
    if files:
        data["attachments"] = files
    return client.post(path, data=data, content_type="multipart/form-data")


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
