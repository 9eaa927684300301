"""The consumer's privacy page: the holder of a case's code downloads their data at once, or
asks (confirming) for it to be erased; operators see the request with its due date and erase it;
each step is on the evidence log without the data."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from hub import accounts
from hub.models import AuditEntry, Case, Party, PrivacyRequest
from tests.support.backoffice import PASSWORD, sign_in
from tests.support.frontdesk import filed, text


@pytest.fixture
def opened(client):
    """A case filed through the pages and opened on this client with its link."""
    reference, code = filed(client, "en")
    assert client.get(f"/en/track/{reference}?k={code}").status_code == 200
    return reference


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def actions(hub, reference) -> list[str]:
    with hub.db.session(read_only=True) as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .join(Case)
                .where(Case.reference == reference)
                .order_by(AuditEntry.id)
            )
        )


def test_the_tracking_page_leads_to_the_privacy_page(client, opened):
    page = text(client.get(f"/en/track/{opened}"))
    assert f"/en/track/{opened}/privacy" in page
    privacy = text(client.get(f"/en/track/{opened}/privacy"))
    assert "Download my data" in privacy and "Ask to erase my data" in privacy


def test_the_holder_of_the_code_downloads_everything_at_once(client, opened, hub):
    page = text(client.get(f"/en/track/{opened}/privacy"))
    answer = client.post(f"/en/track/{opened}/privacy/export", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    assert answer.headers["Cache-Control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(answer.data)) as z:
        doc = json.loads(z.read("personal-data.json"))
    consumer = next(p for p in doc["parties"] if p["role"] == "consumer")
    assert (consumer["name"], consumer["email"]) == ("Marie Dubois", "marie@example.be")
    assert doc["case"]["description"] == "Ma facture compte deux fois l'abonnement."
    assert actions(hub, opened)[-1] == "gdpr.exported"
    with hub.db.session(read_only=True) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "gdpr.exported")).one()
        assert "Marie" not in json.dumps(entry.data)


def test_without_the_code_there_is_nothing_to_download_or_erase(client, opened, hub):
    stranger = client.application.test_client()
    token = csrf_of(text(stranger.get("/en/track")))
    for what in ("export", "erase"):
        answer = stranger.post(
            f"/en/track/{opened}/privacy/{what}", data={"csrf_token": token, "confirm": "yes"}
        )
        assert answer.status_code == 303 and answer.mimetype != "application/zip"
        assert answer.headers["Location"].endswith(f"/en/track/{opened}")
    assert stranger.get(f"/en/track/{opened}/privacy").status_code == 303
    assert "gdpr.exported" not in actions(hub, opened)
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(PrivacyRequest)).all() == []


def test_erasure_is_asked_with_a_confirmation_then_done_by_an_operator(client, opened, hub):
    page = text(client.get(f"/en/track/{opened}/privacy"))
    unconfirmed = client.post(
        f"/en/track/{opened}/privacy/erase", data={"csrf_token": csrf_of(page)}
    )
    assert unconfirmed.status_code == 422
    assert "Tick the box to confirm" in text(unconfirmed)
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(PrivacyRequest)).all() == []

    asked = client.post(
        f"/en/track/{opened}/privacy/erase",
        data={"csrf_token": csrf_of(page), "confirm": "yes"},
    )
    assert asked.status_code == 303
    shown = text(client.get(asked.headers["Location"]))
    assert "We received your request" in shown and 'data-privacy="pending"' in shown
    with hub.db.session(read_only=True) as s:
        request = s.scalars(select(PrivacyRequest)).one()
        assert (request.kind, request.state) == ("erasure", "pending")
        assert request.due_at - request.requested_at == timedelta(days=30)
    again = client.post(
        f"/en/track/{opened}/privacy/erase",
        data={"csrf_token": csrf_of(page), "confirm": "yes"},
    )
    assert again.status_code == 303
    with hub.db.session(read_only=True) as s:
        assert len(s.scalars(select(PrivacyRequest)).all()) == 1  # one request, not two
    assert actions(hub, opened).count("gdpr.erasure_requested") == 1

    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    operator = client.application.test_client()
    sign_in(operator, "olga")
    listed = text(operator.get("/admin/privacy"))
    assert opened in listed and "02 Dec 2026" in listed  # the due date, localised (en_GB)
    done = operator.post(f"/admin/privacy/{opened}/erase", data={"csrf_token": csrf_of(listed)})
    assert done.status_code == 302
    assert "Erased the personal data" in text(operator.get("/admin/privacy?all=1"))
    with hub.db.session(read_only=True) as s:
        request = s.scalars(select(PrivacyRequest)).one()
        assert (request.state, request.done_by) == ("done", "operator:olga")
        case = s.scalars(select(Case).where(Case.reference == opened)).one()
        names = s.scalars(select(Party.name).where(Party.case_id == case.id)).all()
        assert case.erased_at is not None and set(names) == {""}
    assert actions(hub, opened)[-1] == "gdpr.erased"
    assert 'data-privacy="erased"' in text(client.get(f"/en/track/{opened}/privacy"))
    assert client.get(f"/en/track/{opened}").status_code == 200  # statuses are still shown
    case_page = operator.get(f"/admin/cases/{opened}")
    assert case_page.status_code == 200 and "Marie" not in text(case_page)
    assert "No erasure requests waiting" in text(operator.get("/admin/privacy"))


def test_agency_staff_cannot_see_the_requests(client, hub):
    accounts.add(hub.db, "tom", "agency", "ombudsman-telecom", hub.clock.now(), PASSWORD)
    staff = client.application.test_client()
    sign_in(staff, "tom")
    assert staff.get("/admin/privacy").status_code in (403, 404)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("nl", "Uw persoonsgegevens"),
        ("fr", "Vos données personnelles"),
        ("de", "Ihre personenbezogenen Daten"),
    ],
)
def test_the_privacy_page_speaks_the_consumers_language(client, lang, words):
    reference, code = filed(client, lang)
    client.get(f"/{lang}/track/{reference}?k={code}")
    assert words in text(client.get(f"/{lang}/track/{reference}/privacy"))
