"""The front desk's pages in-process (Flask test client; SQLite and PostgreSQL): languages,
private links, protection (CSRF, rate limits, downloads, headers), past due, replies, and the
catalogs. The flows in a real browser are in tests/browser/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select

from hub import i18n
from hub.config import ROOT
from hub.frontdesk import FILING_LIMIT, TRACKING_LIMIT
from hub.models import Case, Delivery, Message
from tests.support.backoffice import token_of
from tests.support.cases import CASE
from tests.support.frontdesk import (
    FORM,
    PDF,
    asked_for_information,
    case_form,
    count_cases,
    file_by_page,
    filed,
    post_form,
    text,
)

# ------------------------------------------------------------------------------------ languages


def test_the_first_visit_follows_the_remembered_language_then_the_browser_else_asks(client):
    asks = client.get("/", headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert asks.status_code == 200
    assert all(f'href="/{lang}/"' in text(asks) for lang in i18n.LANGUAGES)
    browser = client.get("/", headers={"Accept-Language": "de-BE,de;q=0.9,fr;q=0.5"})
    assert browser.status_code == 302 and browser.headers["Location"] == "/de/"
    client.get("/nl/")  # a page in Dutch remembers the choice
    again = client.get("/", headers={"Accept-Language": "de-BE"})
    assert again.headers["Location"] == "/nl/"


def test_a_case_is_filed_in_the_language_of_the_page_it_was_filed_from(client, hub):
    reference, _ = filed(client, "de")
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Case.language).where(Case.reference == reference)).one() == "de"


def test_the_catalogs_translate_every_string_of_the_front_desk_with_its_placeholders():
    method_map = [("hub/frontdesk/**.py", "python"), ("hub/templates/frontdesk/**.html", "jinja2")]
    found = {
        (message if isinstance(message, str) else message[0])
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT,
            method_map,
            keywords={"_": None, "_l": None, "gettext": None},
        )
    }
    found.discard("")
    assert len(found) > 150
    for lang in ("nl", "fr", "de"):
        with open(i18n.catalog(lang), "rb") as fh:
            messages = {m.id: m for m in read_po(fh, locale=lang) if m.id}
        missing = sorted(found - set(messages))
        assert not missing, f"{lang}: not in the catalog: {missing}"
        for msgid in found:
            m = messages[msgid]
            assert m.string and not m.fuzzy, f"{lang}: untranslated {msgid!r}"
            placeholders = sorted(re.findall(r"%\(\w+\)[sd]", msgid))
            assert sorted(re.findall(r"%\(\w+\)[sd]", m.string)) == placeholders, (lang, msgid)


def test_a_missing_compiled_catalog_is_compiled_at_start(tmp_path, monkeypatch):
    for lang in i18n.LANGUAGES:
        target = tmp_path / lang / "LC_MESSAGES"
        target.mkdir(parents=True)
        (target / "messages.po").write_bytes(i18n.catalog(lang).read_bytes())
    monkeypatch.setattr(i18n, "TRANSLATIONS", tmp_path)
    written = i18n.compile_catalogs()
    assert sorted(p.parent.parent.name for p in written) == sorted(i18n.LANGUAGES)
    assert i18n.compile_catalogs() == []  # up to date: nothing to do


# ------------------------------------------------------------------------------ private links


def test_the_private_link_sets_a_strict_cookie_for_that_case_and_leaves_the_address_bar(
    client, app_client
):
    reference, code = filed(client)
    visit = app_client.get(f"/fr/track/{reference}?k={code}")
    assert visit.status_code == 200
    page = text(visit)
    assert f'content="0;url=/fr/track/{reference}"' in page  # on to the clean address
    cookies = visit.headers.getlist("Set-Cookie")
    for lang in i18n.LANGUAGES:
        [cookie] = [c for c in cookies if f"Path=/{lang}/track/{reference}" in c]
        assert cookie.startswith(f"loket_case_{reference}={code};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert visit.headers["Referrer-Policy"] == "no-referrer"
    assert visit.headers["Cache-Control"] == "no-store"
    case_page = text(app_client.get(f"/fr/track/{reference}"))
    assert f"Votre dossier {reference}" in case_page
    assert code not in case_page
    stranger = client.application.test_client()
    other = text(stranger.get(f"/fr/track/{reference}"))
    assert "Suivre votre dossier" in other and "Marie" not in other


@pytest.fixture
def app_client(client):
    """A second visitor of the same app (own cookies)."""
    return client.application.test_client()


def test_wrong_codes_open_nothing_and_guesses_are_limited_per_address(client, app_client):
    reference, code = filed(client)
    client.application.config[TRACKING_LIMIT] = "3 per hour"
    form_token = token_of(app_client, "/fr/track")
    assert app_client.get(f"/fr/track/{reference}?k={code}").status_code == 200  # not counted
    for guess in ("a", "b", "c"):
        wrong = app_client.get(f"/fr/track/{reference}?k={guess}")
        assert wrong.status_code == 404 and "Ce lien n'ouvre aucun dossier" in text(wrong)
        assert "Set-Cookie" not in wrong.headers or "loket_case" not in wrong.headers["Set-Cookie"]
    limited = app_client.get(f"/fr/track/{reference}?k={code}")
    assert limited.status_code == 429
    assert "Trop de tentatives" in text(limited)
    post = app_client.post(
        "/fr/track",
        data={
            "csrf_token": form_token,
            "reference": reference,
            "code": code,
        },
    )
    assert post.status_code == 429


def test_the_case_opens_with_its_reference_and_code_typed_or_the_whole_link_pasted(client):
    reference, code = filed(client)
    visitor = client.application.test_client()
    answer = visitor.post(
        "/de/track",
        data={
            "csrf_token": token_of(visitor, "/de/track"),
            "reference": reference.lower().replace("-", " "),
            "code": f"http://127.0.0.1:8000/fr/track/{reference}?k={code}",
        },
    )
    assert answer.status_code == 303 and answer.headers["Location"] == f"/de/track/{reference}"
    assert f"Ihre Akte {reference}" in text(visitor.get(answer.headers["Location"]))


# -------------------------------------------------------------------------------- protection


def test_every_form_needs_its_csrf_token_but_the_json_api_does_not(client, hub):
    before = count_cases(hub)
    bare = client.post(FORM.format(lang="nl"), data=case_form("nl"))
    assert bare.status_code == 400
    assert "Uw formulier kon niet worden aanvaard" in text(bare)
    assert count_cases(hub) == before
    assert client.post("/api/v1/cases", json=CASE).status_code == 201


def test_filing_is_limited_per_address_and_only_filed_cases_count(client, hub):
    client.application.config[FILING_LIMIT] = "2 per hour"
    assert file_by_page(client, consumer_email="not an email").status_code == 422  # not counted
    filed(client)
    filed(client)
    third = file_by_page(client)
    assert third.status_code == 429 and "Trop de tentatives" in text(third)
    assert 0 < int(third.headers["Retry-After"]) <= 3601  # the first filing ages out
    assert count_cases(hub) == 2


def test_pages_carry_security_headers(client):
    answer = client.get("/en/")
    csp = answer.headers["Content-Security-Policy"]
    for rule in (
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ):
        assert rule in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_files_are_only_served_as_downloads_with_their_checked_type(client, app_client):
    from io import BytesIO

    reference, code = filed(client, files=[(BytesIO(PDF), "facture<script>.pdf")])
    app_client.get(f"/fr/track/{reference}?k={code}")
    page = text(app_client.get(f"/fr/track/{reference}"))
    href = re.search(rf'href="(/fr/track/{reference}/files/\d+)"', page).group(1)
    answer = app_client.get(href)
    assert answer.status_code == 200 and answer.data == PDF
    assert answer.mimetype == "application/pdf"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert "script" in answer.headers["Content-Disposition"]  # the name, percent-encoded
    assert "<" not in answer.headers["Content-Disposition"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in answer.headers["Content-Security-Policy"]
    assert client.application.test_client().get(href).status_code == 404  # not without the code


def test_a_body_beyond_the_upload_limit_gets_a_page_in_the_consumers_language(
    client, hub, monkeypatch
):
    from io import BytesIO

    from hub.frontdesk import views

    monkeypatch.setattr(views, "UPLOAD_BODY_LIMIT", 1024 * 1024)
    answer = file_by_page(client, "nl", files=[(BytesIO(b"%PDF-" + b"0" * 2_000_000), "a.pdf")])
    assert answer.status_code == 413
    assert "Uw bestanden zijn te groot" in text(answer)
    assert count_cases(hub) == 0


# ---------------------------------------------------------------------------------- tracking


def test_a_late_service_is_shown_plainly_as_past_due(client, app_client, hub, clock):
    reference, code = filed(client, "en")
    app_client.get(f"/en/track/{reference}?k={code}")
    assert "Past due" not in text(app_client.get(f"/en/track/{reference}"))
    clock.advance(days=45)
    page = text(app_client.get(f"/en/track/{reference}"))
    assert "Past due:" in page and 'class="past-due">Past due</strong>' in page


def test_an_answer_with_a_refused_file_keeps_the_text_and_a_good_one_goes_to_the_outbox(
    client, app_client, hub, sims, clock
):
    from io import BytesIO

    reference, code = asked_for_information(client, hub, sims, clock)
    app_client.get(f"/nl/track/{reference}?k={code}")
    page = text(app_client.get(f"/nl/track/{reference}"))
    assert "Wacht op uw antwoord" in page
    action = re.search(r'action="(/nl/track/[^"]+/reply/\d+)#error-summary"', page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = app_client.post(
        action,
        data={
            "csrf_token": token,
            "text": "Hierbij de factuur.",
            "files": [(BytesIO(b"MZ\x90\x00 program"), "factuur.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    body = text(refused)
    assert "factuur.pdf kan niet worden aanvaard" in body
    # without JavaScript the page comes back anchored at its error summary (the form's address
    # ends in #error-summary), and the summary is the first thing under the title
    summary = body.index('id="error-summary"')
    assert body.index("<h1") < summary < body.index('id="status"')
    assert re.search(r'href="#files-\d+">factuur.pdf kan niet', body)
    assert ">Hierbij de factuur.</textarea>" in body  # what was typed is kept
    assert "Bestanden worden na een fout niet bewaard" in body
    sent = app_client.post(
        action,
        data={
            "csrf_token": token,
            "text": "Hierbij de factuur.",
            "files": [(BytesIO(PDF), "factuur.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert sent.status_code == 303
    with hub.db.session(read_only=True) as s:
        [message] = s.scalars(select(Message).where(Message.author == "consumer")).all()
        assert message.text == "Hierbij de factuur." and len(message.attachments) == 1
        assert s.scalars(select(Delivery).where(Delivery.message_id == message.id)).one()
    assert "Uw antwoord werd verstuurd" in text(app_client.get(sent.headers["Location"]))


def test_withdrawing_asks_first_then_closes_every_line(client, app_client, hub):
    reference, code = filed(client, "en")
    app_client.get(f"/en/track/{reference}?k={code}")
    confirm = text(app_client.get(f"/en/track/{reference}/withdraw"))
    assert "Withdraw your case" in confirm and "No, keep my case" in confirm
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Case.status).where(Case.reference == reference)).one() == "queued"
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm).group(1)
    done = app_client.post(
        f"/en/track/{reference}/withdraw", data={"csrf_token": token, "reason": "Solved."}
    )
    assert done.status_code == 303
    page = text(app_client.get(done.headers["Location"]))
    assert "You withdrew your case" in page and "Withdraw my case" not in page
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Case.status).where(Case.reference == reference)).one() == (
            "withdrawn"
        )


def test_the_anonymity_choice_is_offered_only_where_the_agency_takes_it(client):
    mediation = text(
        client.get(
            "/en/problem/ecommerce/withdrawal/complaint/form?a_contacted_trader=yes&a_court_case_pending=no&a_trader_is_business=yes"
        )
    )
    assert 'name="anonymous"' in mediation  # the Consumer Mediation Service maps it
    telecom = text(
        client.get(
            FORM.format(lang="en")
            + "?a_contacted_trader=yes&a_court_case_pending=no&a_trader_is_business=yes"
        )
    )
    assert 'name="anonymous"' not in telecom


def test_static_files_exist_and_the_pages_point_at_them(client):
    static = Path(ROOT / "hub" / "static")
    assert (static / "frontdesk.css").stat().st_size > 1000
    assert (static / "frontdesk.js").exists()
    start = text(client.get("/fr/"))
    for linked in re.findall(r'(?:href|src)="(/static/[^"]+)"', start):
        served = client.get(linked)  # served by the app, as the browser asks for it
        assert served.status_code == 200, linked
        assert served.get_data() == (static / linked.removeprefix("/static/")).read_bytes()
        served.close()


def test_a_dutch_cheese_complaint_reaches_favv_and_ecc_without_a_second_round_of_questions(
    client, db
):
    kind = text(client.get("/nl/problem/food/hygiene/complaint/"))
    assert "Voedselagentschap" in kind or "FAVV" in kind
    for check in ("contacted_trader", "court_case_pending", "trader_is_business"):
        assert f'name="a_{check}"' in kind  # ECC Belgium may need them: asked before the form
    query = "?a_contacted_trader=no&a_court_case_pending=no&a_trader_is_business=yes"
    path = "/nl/problem/food/hygiene/complaint/form"
    data = {
        "csrf_token": token_of(client, path + query),
        **case_form("nl"),
        "a_contacted_trader": "no",
        "trader_name": "Kaasboerderij BV",
        "trader_enterprise_number": "",
        "trader_country": "NL",
        "description": "Beschimmelde kaas gekocht, geproduceerd in Nederland.",
    }
    resp = post_form(client, path, data)
    assert resp.status_code == 303, text(resp)
    page = text(client.get(resp.headers["Location"]))
    assert "FAVV" in page  # competent whatever the producer's country
    assert "Wettelijke basis" in page
    assert "Europees Centrum voor de Consument" in page  # refused for now: complain first


def test_a_flight_asks_about_other_airports_only_when_it_did_not_leave_from_belgium(client):
    base = "/en/problem/transport/flight_cancelled/complaint/"
    first = text(client.get(base))
    assert 'name="a_departs_from_belgium"' in first and "a_departs_from_eu" not in first
    checks = "&a_contacted_trader=yes&a_court_case_pending=no&a_trader_is_business=yes"
    asked = "&asked=departs_from_belgium&asked=contacted_trader"
    left_belgium = client.get(base + "check?a_departs_from_belgium=yes" + checks + asked)
    assert left_belgium.status_code == 303 and "/form" in left_belgium.headers["Location"]
    elsewhere = client.get(base + "check?a_departs_from_belgium=no" + checks + asked)
    page = text(elsewhere)
    assert elsewhere.status_code == 200 and 'name="a_departs_from_eu"' in page
    assert "error-summary" not in page  # a new question, not a mistake
    go = client.get(base + "check?a_departs_from_belgium=no&a_departs_from_eu=yes" + checks)
    assert go.status_code == 303 and "a_departs_from_eu=yes" in go.headers["Location"]
    form = text(client.get(go.headers["Location"]))
    assert "European Consumer Centre" in form  # the enforcement body of the departure country
