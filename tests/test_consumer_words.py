"""Whose words the consumer reads: the status in the hub's vocabulary and the consumer's
language; what a service wrote itself labelled as its own words, with the language it is
written in; an out-of-office reply and quoted text never shown. And, before filing, in which
languages each body works and what happens when the consumer's is not one of them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from adapters import mailtriage
from adapters.base import StatusUpdate
from hub import i18n, inbound, lifecycle
from hub.models import Assignment, Case
from tests.support.frontdesk import asked_for_information, text

TELECOM = "ombudsman-telecom"
OWN_WORDS = {
    "fr": "Message du service (texte original)\u00a0:",
    "nl": "Bericht van de dienst (oorspronkelijke tekst):",
    "de": "Nachricht des Dienstes im Wortlaut:",
}


def _line(hub, reference: str) -> Assignment:
    with hub.db.session(read_only=True) as s:
        case_id = s.scalar(select(Case.id).where(Case.reference == reference))
        return s.scalars(
            select(Assignment).where(Assignment.case_id == case_id, Assignment.agency_id == TELECOM)
        ).one()


def _said(page: str) -> list[tuple[str | None, str]]:
    """(lang attribute, text) of each service's text on the page."""
    return [
        (m.group(1), m.group(2).strip())
        for m in re.finditer(
            r'<blockquote class="agency-said"(?: lang="(\w+)")?>(.*?)</blockquote>', page, re.S
        )
    ]


@pytest.mark.parametrize("lang", ["fr", "de"])
def test_a_services_words_are_labelled_as_its_own_with_their_language(
    client, hub, sims, clock, lang
):
    reference, _code = asked_for_information(client, hub, sims, clock, lang)
    page = text(client.get(f"/{lang}/track/{reference}"))
    # the status is the hub's word, in the consumer's language
    shown = re.search(r'class="status-now" data-status="(\w+)">([^<]+)<', page)
    assert shown.group(1) == "waiting_for_consumer"
    assert shown.group(2) == lifecycle.label("waiting_for_consumer", lang)
    said = _said(page)
    assert said, "the service's question is on the page"
    for attr, words in said:
        assert attr == i18n.text_language(words)
        # never as the hub's own sentence: each time it is shown, it is quoted and labelled
        assert page.count(words) == len([w for _a, w in said if w == words])
    # the simulated telecom ombudsman asks in English, whatever the consumer's language
    assert ("en", "Please send us a copy of the disputed bill.") in said
    assert page.count(OWN_WORDS[lang]) == len(said)


def test_an_out_of_office_reply_and_quoted_text_never_reach_the_consumers_page(
    client, hub, sims, clock
):
    reference, _code = asked_for_information(client, hub, sims, clock, "nl")
    line = _line(hub, reference)
    mapping = hub.directory[TELECOM]
    now = clock.now()
    away = "Ik ben afwezig tot maandag 9 november. Voor dringende zaken: bel 02 000 00 00."
    reply = (
        "Wij hebben uw documenten ontvangen en behandelen uw dossier verder.\n"
        "\n"
        "Op 2 nov. 2026 schreef Loket <loket@loket.example>:\n"
        "> Geheime opmerking van de consument die niet terug mag komen.\n"
    )
    inbound.apply_updates(
        hub.db,
        mapping,
        (
            StatusUpdate(
                agency_status="INFO_REQUESTED",
                occurred_at=now,
                agency_reference=line.agency_reference,
                case_reference=reference,
                message=away,
                automatic="auto-replied",
                update_id="ooo-1",
            ),
            StatusUpdate(
                agency_status="ASSIGNED",
                occurred_at=now + timedelta(seconds=1),
                agency_reference=line.agency_reference,
                case_reference=reference,
                message=mailtriage.agency_text(reply),  # what the inbound triage keeps
                update_id="reply-1",
            ),
        ),
        now + timedelta(seconds=2),
    )
    clock.advance(seconds=5)
    page = text(client.get(f"/nl/track/{reference}"))
    assert "Wij hebben uw documenten ontvangen" in page  # the service's real words
    assert "afwezig" not in page and "Automatic reply" not in page
    assert "Geheime opmerking" not in page and "schreef Loket" not in page
    said = dict((w, a) for a, w in _said(page))
    assert said["Wij hebben uw documenten ontvangen en behandelen uw dossier verder."] == "nl"


@pytest.mark.parametrize(
    ("lang", "works", "not_yours"),
    [
        ("en", "It works in Dutch, French, and German.", "It does not work in English."),
        ("fr", "Ce service travaille en néerlandais, français et allemand.", None),
        ("de", "Dieser Dienst arbeitet auf Niederländisch, Französisch und Deutsch.", None),
    ],
)
def test_before_filing_each_body_says_in_which_languages_it_works(client, lang, works, not_yours):
    """The telecom ombudsman works in nl, fr, de (its mapping's `languages`)."""
    page = text(client.get(f"/{lang}/problem/telecom/billing/complaint/"))
    block = re.search(r'<p class="languages" data-languages="nl fr de">(.*?)</p>', page, re.S)
    assert block, "the telecom ombudsman's languages are said"
    assert works in block.group(1)
    if not_yours:
        assert not_yours in block.group(1)
        assert "passed on as you wrote it" in block.group(1)
        assert "marked as such" in block.group(1)
    else:
        assert "passed on" not in block.group(1) and "tel quel" not in block.group(1)


def test_a_body_working_in_one_language_tells_the_others_what_happens(client, hub):
    """Said for every body the page names, from its own mapping, never from a fixed list."""
    page = text(client.get("/de/problem/telecom/billing/complaint/"))
    for m in re.finditer(r'data-languages="([a-z ]+)">(.*?)</p>', page, re.S):
        languages = m.group(1).split()
        assert ("nicht auf Deutsch" in m.group(2)) == ("de" not in languages)


def test_when_complaint_and_mediation_go_to_one_body_the_page_says_so(client):
    page = text(client.get("/fr/problem/telecom/billing/"))
    note = re.search(r'<p class="note" id="same-service">(.*?)</p>', page, re.S)
    assert note, "telecom: the ombudsman takes a complaint and a request for mediation alike"
    assert "le même service, le Service de médiation pour les télécommunications" in note.group(1)
    german = text(client.get("/de/problem/telecom/billing/"))
    assert "an denselben Dienst, den Ombudsdienst für Telekommunikation" in german


def test_the_tracking_page_names_the_case_by_its_type_and_dates_without_seconds(
    client, hub, sims, clock
):
    reference, _code = asked_for_information(client, hub, sims, clock, "fr")
    page = text(client.get(f"/fr/track/{reference}"))
    assert '<p class="meta">Plainte · introduit le' in page or '<p class="meta">Plainte ·' in page
    assert "Introduire une plainte ·" not in page
    times = re.findall(r'<time datetime="[^"]+">([^<]+)</time>', page)
    assert times and not any(re.search(r"\d:\d\d:\d\d", t) for t in times)


@pytest.mark.parametrize(
    ("lang", "label"),
    [
        ("de", "Nachricht des Dienstes im Wortlaut:"),
        ("nl", "Bericht van de dienst (oorspronkelijke tekst):"),
        ("fr", "Message du service (texte original)\u00a0:"),
        ("en", "The service's message, as it wrote it:"),
    ],
)
def test_a_mail_gives_the_status_in_the_hubs_words_and_the_services_text_as_its_own(lang, label):
    from hub import notify
    from hub.config import MailSettings
    from hub.models import Notification

    case = Case(reference="LK-TEST-0001")
    said = "Clôturé : accord trouvé avec l'opérateur."
    status = lifecycle.label("resolved", lang)
    for rows in (
        [
            Notification(
                kind="status",
                language=lang,
                data={"agency_id": TELECOM, "status": status, "message": said},
            )
        ],
        [
            Notification(
                kind="status",
                language=lang,
                data={"agency_id": TELECOM, "status": status, "message": said},
            ),
            Notification(
                kind="status",
                language=lang,
                data={"agency_id": "economic-inspection", "status": status},
            ),
        ],
    ):
        _subject, body = notify.render_batch(rows, case, MailSettings())
        assert status in body
        assert said in body and body.count(said) == 1
        before = body[: body.index(said)]
        assert before.rstrip().endswith(label), body  # labelled right before the service's text
