"""The hosted workspace: a body without a case system receives its cases in the back office
and works them there, in its own language and status names; no other agency sees them."""

from __future__ import annotations

import csv
import io
import re
from io import BytesIO

import pytest
from sqlalchemy import select

from hub import accounts, notify
from hub.config import MailSettings
from hub.models import Case, Notification
from scheduler.worker import Worker
from tests.support.agencyside import OTHER, WORKSPACE, file_water_case
from tests.support.backoffice import PASSWORD, post, sign_in
from tests.support.cases import assignment, timeline
from tests.support.frontdesk import PDF, text


@pytest.fixture
def staff(hub, client):
    accounts.add(hub.db, "claire", "agency", WORKSPACE, hub.clock.now(), PASSWORD)
    sign_in(client, "claire")
    return client


@pytest.fixture
def stranger(hub, client):
    """Staff of another agency, in a browser of their own."""
    other = client.application.test_client()
    accounts.add(hub.db, "tom", "agency", OTHER, hub.clock.now(), PASSWORD)
    sign_in(other, "tom")
    return other


def _delivered(hub) -> str:
    reference = file_water_case(hub).reference
    Worker(hub, "w").dispatch_once()
    return reference


def test_a_case_lands_in_the_inbox_and_staff_acknowledge_it_with_their_reference(hub, staff):
    reference = _delivered(hub)
    line = assignment(hub, reference)
    assert (line.status, line.agency_reference_provisional) == ("sent", True)
    inbox = text(staff.get("/admin/agency", headers={"Accept-Language": "fr-BE"}))
    assert reference in inbox and "à confirmer" in inbox and "français" in inbox
    page = f"/admin/agency/cases/{reference}"
    shown = text(staff.get(page, headers={"Accept-Language": "fr-BE"}))
    assert "Langue du consommateur\u00a0: français. Répondez en français." in shown
    for seen in ("Julie Lambert", "SWDE", "1240", "fuite après compteur", "Namur"):
        assert seen in shown, seen
    assert "Confirmer la réception" in shown and "Demander des informations" not in shown
    post(staff, f"{page}/acknowledge", {"agency_reference": "MW-2026-0007"}, page=page)
    line = assignment(hub, reference)
    assert (line.status, line.agency_reference, line.agency_reference_provisional) == (
        "received",
        "MW-2026-0007",
        False,
    )
    after = text(staff.get(page, headers={"Accept-Language": "fr-BE"}))
    assert "votre référence MW-2026-0007" in after
    # the agency's own status names, in the page's language, on every action
    assert "Reçue" in after and "Clôturée" in after and "réclamation fondée" in after
    assert "Une copie de la facture contestée" in after  # the reasons it may ask for


def test_staff_ask_for_information_exchange_documents_and_close(hub, staff, app_client):
    filed = file_water_case(hub)
    reference = filed.reference
    Worker(hub, "w").dispatch_once()
    page = f"/admin/agency/cases/{reference}"
    post(staff, f"{page}/acknowledge", {"agency_reference": "MW-1"}, page=page)
    post(
        staff,
        f"{page}/information",
        {"reason": "disputed_bill", "text": "Et le relevé du compteur."},
        page=page,
    )
    assert assignment(hub, reference).status == "waiting_for_consumer"
    [asked] = [e for e in timeline(hub, reference) if e.reason]
    assert (asked.reason, asked.message) == ("disputed_bill", "Et le relevé du compteur.")
    with hub.db.session(read_only=True) as s:  # the mail says it in French too
        [mail] = s.scalars(select(Notification).where(Notification.kind == "waiting")).all()
        case = s.scalars(select(Case).where(Case.reference == reference)).one()
        _, body = notify.render(mail, case, MailSettings())
    assert "Le service vous demande une copie de la facture contestée. Et le relevé" in body

    app_client.get(f"/nl/track/{reference}?k={filed.token}")
    consumer_page = text(app_client.get(f"/nl/track/{reference}"))
    assert "De dienst vraagt u een kopie van de betwiste factuur." in consumer_page

    sent = staff.post(
        f"{page}/documents",
        data={
            "csrf_token": _token(staff, page),
            "file": (BytesIO(PDF), "decision.pdf"),
            "text": "Notre décision",
        },
        content_type="multipart/form-data",
    )
    assert sent.status_code == 302
    shown = text(staff.get(page))
    [link] = [
        line.split('href="')[1].split('"')[0]
        for line in shown.splitlines()
        if "decision.pdf" in line and "href" in line
    ]
    download = staff.get(link)
    assert download.data == PDF and "attachment" in download.headers["Content-Disposition"]
    assert "decision.pdf" in text(app_client.get(f"/nl/track/{reference}"))

    post(
        staff,
        f"{page}/close",
        {"status": "CLOTUREE_FONDEE", "message": "La SWDE annule la facture."},
        page=page,
    )
    line = assignment(hub, reference)
    assert (line.status, line.outcome) == ("resolved", "solved")
    refused = post(staff, f"{page}/close", {"status": "INSTRUCTION"}, page=page)
    assert refused.status_code == 302 and assignment(hub, reference).status == "resolved"


def _token(client, page):
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).get_data(as_text=True))[
        1
    ]


def test_another_agencys_staff_see_nothing_and_change_nothing(hub, staff, stranger):
    reference = _delivered(hub)
    page = f"/admin/agency/cases/{reference}"
    post(staff, f"{page}/acknowledge", {"agency_reference": "MW-2"}, page=page)
    before = (assignment(hub, reference).status, len(timeline(hub, reference)))
    assert reference not in text(stranger.get("/admin/agency?closed=1"))
    assert reference not in text(stranger.get("/admin/agency/export.csv"))
    assert stranger.get(page).status_code == 404
    assert stranger.get(f"{page}/documents/1").status_code == 404
    token = _token(stranger, "/admin/agency")
    for action, data in (
        ("", {"status": "INSTRUCTION"}),
        ("/acknowledge", {"agency_reference": "X"}),
        ("/information", {"reason": "disputed_bill"}),
        ("/message", {"text": "hello"}),
        ("/close", {"status": "CLOTUREE_FONDEE"}),
        ("/not-competent", {}),
    ):
        answer = stranger.post(page + action, data={"csrf_token": token, **data})
        assert answer.status_code == 404, action
    assert (assignment(hub, reference).status, len(timeline(hub, reference))) == before


def test_the_csv_export_follows_the_filters_and_neutralises_formulas(hub, staff):
    reference = _delivered(hub)
    other = _delivered(hub)
    page = f"/admin/agency/cases/{reference}"
    post(staff, f"{page}/acknowledge", {"agency_reference": '=HYPERLINK("x")'}, page=page)
    exported = staff.get("/admin/agency/export.csv?status=received")
    assert exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert [r[0] for r in rows[1:]] == [reference]  # the filter holds
    assert rows[1][1] == '\'=HYPERLINK("x")'  # no spreadsheet runs it
    everything = staff.get("/admin/agency/export.csv").get_data(as_text=True)
    assert reference in everything and other in everything
    filtered = text(staff.get("/admin/agency?kind=report"))
    assert reference not in filtered and "No cases." in filtered


def test_operators_do_not_work_in_an_agencys_workspace(hub, client):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    assert client.get("/admin/agency").status_code == 403
    assert client.get("/admin/agency/export.csv").status_code == 403


@pytest.fixture
def app_client(client):
    """The consumer: a second visitor of the same app (own cookies)."""
    return client.application.test_client()


def test_anonymous_visitors_get_the_sign_in_page_for_every_workspace_page(hub, client):
    reference = _delivered(hub)
    for path in (
        "/admin/agency",
        "/admin/agency/export.csv",
        f"/admin/agency/cases/{reference}",
        f"/admin/agency/cases/{reference}/documents/1",
    ):
        answer = client.get(path)
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"], path
    refused = client.post(
        f"/admin/agency/cases/{reference}/acknowledge", data={"agency_reference": "X"}
    )
    assert refused.status_code in (400, 302)
    assert assignment(hub, reference).agency_reference_provisional
