"""The case form as a consumer meets it: the GOV.UK date input (a month is enough), the "check
your answers" step that alone files the case, the model letters per problem area, and the trust
pages (privacy, cookies, accessibility, contact) every page links to."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from hub import i18n, letters, taxonomy, trust
from hub.canonical import case_document
from hub.models import Case
from hub.routing import Situation
from mappings.engine import TRANSFORMS, check_agency
from tests.support.backoffice import token_of
from tests.support.cases import CASE
from tests.support.frontdesk import (
    FORM,
    case_form,
    count_cases,
    date_parts,
    file_by_page,
    filed,
    hidden_fields,
    text,
)

QUERY = "?a_contacted_trader=yes&a_court_case_pending=no&a_trader_is_business=yes"


@pytest.fixture
def app_client(client):
    """A second visitor of the same app (own cookies)."""
    return client.application.test_client()


def review(client, lang: str = "fr", **override):
    """The form sent with "Continue": the check page, or the form with its errors."""
    path = FORM.format(lang=lang)
    data = {"csrf_token": token_of(client, path + QUERY), **case_form(lang), **override}
    return client.post(path, data={**data, "step": "review"}, content_type="multipart/form-data")


def _case(hub, reference: str) -> Case:
    with hub.db.session(read_only=True) as s:
        from sqlalchemy import select

        case = s.scalars(select(Case).where(Case.reference == reference)).one()
        s.expunge(case)
        return case


# ------------------------------------------------------------------------ check your answers


def test_continue_shows_every_answer_with_a_change_button_and_files_nothing(client, hub):
    page = review(client, "en", description="Line one.\nLine two of the story.")
    body = text(page)
    assert page.status_code == 200 and "Check your answers before you send your case" in body
    assert count_cases(hub) == 0  # nothing filed before Send
    for field, shown in (
        ("consumer_name", "Marie Dubois"),
        ("consumer_email", "marie@example.be"),
        ("trader_name", "Telco SA"),
        ("incident_date", "15 October 2026"),
        ("complaint_date", "20 October 2026"),
        ("amount", "49,99\xa0€"),  # en_BE writes euros the Belgian way
    ):
        row = re.search(rf'data-field="{field}">(.*?)</div>', body, re.S).group(1)
        assert shown in row, field
        assert f'name="change" value="{field}" formaction="#{field}"' in row
    assert "Line one.\nLine two of the story." in body
    assert "By sending this case you declare" in body
    assert 'name="attachments"' in body  # documents are added on this page


def test_change_goes_back_to_the_form_with_everything_typed_kept(client, hub):
    check = text(review(client, "nl", **date_parts("incident_date", "2026-10")))
    back = hidden_fields(check)
    back["change"] = "incident_date"
    answer = client.post(FORM.format(lang="nl"), data=back, content_type="multipart/form-data")
    form = text(answer)
    assert answer.status_code == 200 and 'name="step" value="review"' in form
    assert 'id="error-summary"' not in form  # coming back to change is not a mistake
    assert (
        'id="incident_date" name="incident_date-day" type="text" inputmode="numeric" value=""'
        in (form)
    )
    assert 'name="incident_date-month" type="text" inputmode="numeric" value="10"' in form
    assert 'value="Telco SA"' in form and "Ma facture compte deux fois" in form
    assert 'id="consent_share" name="consent_share" value="yes" checked' in form
    assert count_cases(hub) == 0


def test_only_send_files_the_case_and_it_checks_everything_again(client, hub):
    check = text(review(client, "fr"))
    tampered = {**hidden_fields(check), "consumer_email": "not an email"}
    refused = client.post(FORM.format(lang="fr"), data=tampered, content_type="multipart/form-data")
    assert refused.status_code == 422 and 'name="step" value="review"' in text(refused)
    assert count_cases(hub) == 0
    sent = client.post(
        FORM.format(lang="fr"), data=hidden_fields(check), content_type="multipart/form-data"
    )
    assert sent.status_code == 303 and "/fr/filed/" in sent.headers["Location"]
    assert count_cases(hub) == 1


# ------------------------------------------------------------------------------ date input


@pytest.mark.parametrize(
    ("day", "month", "year", "message", "target"),
    [
        ("", "", "2026", "Une année seule ne suffit pas", "incident_date-month"),
        ("15", "", "2026", "La date doit comporter un mois.", "incident_date-month"),
        ("15", "", "", "La date doit comporter un mois et une année.", "incident_date-month"),
        ("", "10", "", "La date doit comporter une année.", "incident_date-year"),
        ("", "12", "2026", "Cette date est dans le futur.", "incident_date-month"),
        ("3", "11", "2026", "Cette date est dans le futur.", "incident_date"),
        ("15", "10", "999", "Indiquez l'année en quatre chiffres", "incident_date-year"),
        ("15", "10", "0999", "Indiquez l'année en quatre chiffres", "incident_date-year"),
        ("31", "11", "2025", "Ce jour n'existe pas dans ce mois.", "incident_date"),
        ("15", "13", "2025", "Le mois doit être un nombre de 1 à 12.", "incident_date-month"),
    ],
)
def test_a_wrong_date_is_refused_and_the_summary_links_to_the_first_wrong_box(
    client, hub, day, month, year, message, target
):
    answer = review(
        client,
        "fr",
        **{"incident_date-day": day, "incident_date-month": month, "incident_date-year": year},
    )
    body = text(answer)
    assert answer.status_code == 422
    assert re.search(rf'<a href="#{target}">{re.escape(message)}', body), body[:3000]
    assert f'value="{year}"' in body  # what was typed is kept
    assert count_cases(hub) == 0


def test_a_month_and_a_year_are_enough_and_the_case_says_the_day_is_not_known(client, hub):
    reference, _ = filed(client, "nl", **date_parts("incident_date", "2026-10"))
    case = _case(hub, reference)
    assert str(case.incident_date) == "2026-10-01" and case.incident_date_precision == "month"
    with hub.db.session(read_only=True) as s:
        from sqlalchemy import select

        doc = case_document(s.scalars(select(Case).where(Case.reference == reference)).one())
    assert doc["case"]["incident_date"] == "2026-10"  # ISO 8601 reduced precision
    assert doc["case"]["incident_date_precision"] == "month"


def test_the_month_may_be_written_as_a_word_in_the_pages_language(client, hub):
    check = text(review(client, "nl", **{"incident_date-day": "", "incident_date-month": "okt"}))
    assert "oktober 2026" in check


def test_the_date_transform_keeps_a_month_a_month():
    date = TRANSFORMS["date"]
    assert date("2026-10", "%d/%m/%Y") == "10/2026"
    assert date("2026-10", "%Y-%m-%d") == "2026-10"
    assert date("2026-10", "%Y-%m-%d", "first") == "2026-10-01"
    assert date("2026-10-15", "%d/%m/%Y") == "15/10/2026"


def test_a_mapping_that_writes_a_month_as_its_first_day_must_say_so(tmp_path):
    source = Path("mappings/agencies/ombudsman-telecom.yaml").read_text(encoding="utf-8")
    # as shipped: the 1st of the month, and the description starts with a note saying so
    assert "case.incident_date | date('%d/%m/%Y', 'first')" in source
    assert "description: case.description_dated |" in source
    source = source.replace("case.description_dated", "case.description")
    line = "  incidentDate: case.incident_date | date('%d/%m/%Y', 'first')\n"
    silent = tmp_path / "ombudsman-telecom.yaml"
    silent.write_text(source)
    _mapping, problems = check_agency(silent, env={})
    assert any("the day is not known" in p.problem for p in problems)
    said = tmp_path / "said" / "ombudsman-telecom.yaml"
    said.parent.mkdir()
    said.write_text(
        source.replace(
            line,
            "  incidentDate: case.incident_date | date('%Y-%m-%d', 'first')\n"
            "  incidentDatePrecision: case.incident_date_precision\n",
        )
    )
    _mapping, problems = check_agency(said, env={})
    assert not any("the day is not known" in p.problem for p in problems)


def test_an_agency_that_takes_only_full_dates_reads_that_the_day_is_not_known():
    from mappings import AGENCIES_DIR
    from mappings.engine import load_agency

    telecom = load_agency(AGENCIES_DIR / "ombudsman-telecom.yaml", env={})
    case = {
        "reference": "LK-7F3K-9QX2",
        "kind": "complaint",
        "domain": "telecom.billing",
        "language": "fr",
        "description": "Ma facture compte deux fois l'abonnement.",
        "incident_date": "2026-10",
        "incident_date_precision": "month",
    }
    payload = telecom.render({"case": case, "consumer": {"name": "M", "email": "m@example.be"}})
    assert payload["incidentDate"] == "01/10/2026"
    assert payload["description"].startswith("[Date des faits : seul le mois est connu (10/2026)")
    day = telecom.render(
        {
            "case": {**case, "incident_date": "2026-10-15", "incident_date_precision": "day"},
            "consumer": {"name": "M", "email": "m@example.be"},
        }
    )
    assert day["incidentDate"] == "15/10/2026"
    assert day["description"] == case["description"]


def test_the_api_takes_the_same_dates_and_a_month_with_its_precision(client):
    day = client.post("/api/v1/cases", json={**CASE, "incident_date": "2026-10-15"})
    assert day.status_code == 201
    month = client.post(
        "/api/v1/cases",
        json={**CASE, "incident_date": "2026-10-01", "incident_date_precision": "month"},
    )
    assert month.status_code == 201
    wrong = client.post(
        "/api/v1/cases",
        json={**CASE, "incident_date": "2026-10-15", "incident_date_precision": "month"},
    )
    assert wrong.status_code == 422
    assert wrong.get_json()["errors"][0]["field"] == "incident_date"


# -------------------------------------------------------------------------------- letters


def _refusing_first(hub, kind: str, code: str, lang: str):
    today = hub.clock.now().date()
    answers = {"contacted_trader": False, "court_case_pending": False, "trader_is_business": True}
    situation = Situation(kind, code, lang, "BE", answers, None, today, "1000")
    return [
        r
        for r in hub.router.route(situation, skip_missing=True).refusals
        if r.check == "contacted_trader"
    ]


def test_every_area_with_advice_has_its_letter_in_every_language_with_the_advices_deadline(hub):
    seen = set()
    for sub in taxonomy.subareas():
        for kind in ("complaint", "mediation"):
            if kind not in sub.options:
                continue
            for lang in i18n.LANGUAGES:
                refusals = _refusing_first(hub, kind, sub.code, lang)
                if not refusals:
                    continue
                letter_id = letters.letter_for(sub.code)
                deadline = letters.deadline_for(r.agency_id for r in refusals)
                words = letters.deadline_words(deadline, lang)
                said = [r for r in refusals if words["said"] in r.advice]
                assert said, f"{sub.code} {lang}: no advice says {words['said']!r}"
                seen.add((letter_id, lang))
                letter = letters.render(letter_id, lang, deadline, dict.fromkeys(_slots(), "X"))
                assert words["within"] in letter.text()
    ids = {e["id"] for e in letters.index()["letters"]}
    assert {"non-delivery", "bill-dispute", "rail-delay", "general"} <= ids
    assert {(i, lang) for i in ids for lang in i18n.LANGUAGES} == seen


def test_each_services_advice_says_the_deadline_the_letter_gives(hub):
    data = letters.index()
    for agency_id, mapping in hub.directory.agencies.items():
        checks = {p.id: p for p in mapping.prechecks if p.id == "contacted_trader"}
        if not checks:
            continue
        assert agency_id in data["agencies"], f"{agency_id}: say its deadline in letters.yaml"
        for lang in i18n.LANGUAGES:
            said = letters.deadline_words(data["agencies"][agency_id], lang)["said"]
            assert said in checks["contacted_trader"].text("advice", lang), (agency_id, lang)


def _slots() -> set[str]:
    return {
        m
        for path in letters.LETTERS_DIR.glob("*.md")
        for m in letters.SLOT.findall(path.read_text(encoding="utf-8"))
    } - {"deadline"}


def test_letters_have_no_hard_wraps_and_every_slot_is_a_blank_to_fill_in(client):
    for path in sorted(letters.LETTERS_DIR.glob("*.md")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for before, after in itertools.pairwise(lines):
            assert not (before.strip() and after.strip()), f"{path.name}: hard wrap at {after!r}"
        assert "{customer_number}" in path.read_text() and "{date}" in path.read_text()
    page = text(client.get("/en/problem/transport/rail_delay/complaint/check?" + _no_contact()))
    assert 'data-letter="rail-delay"' in page and 'data-deadline="1-month"' in page
    assert "within one month of receiving this letter" in page
    assert "[your customer number]" in page and "[place and date]" in page
    assert not re.search(r"\{[a-z_]+\}", page)  # no slot left unfilled
    download = client.get("/en/letter/rail-delay/1-month.txt")
    assert download.status_code == 200 and "\n\nDear Sir or Madam,\n\n" in download.text
    assert client.get("/en/letter/rail-delay/3-years.txt").status_code == 404


def _no_contact() -> str:
    return "a_contacted_trader=no&a_court_case_pending=no&a_trader_is_business=yes"


def test_the_webshop_and_the_telecom_bill_get_their_own_letter(client):
    webshop = text(
        client.get("/nl/problem/ecommerce/non_delivery/complaint/check?" + _no_contact())
    )
    assert 'data-letter="non-delivery"' in webshop and "binnen 10 dagen na ontvangst" in webshop
    bill = text(client.get("/fr/problem/telecom/billing/complaint/check?" + _no_contact()))
    assert 'data-letter="bill-dispute"' in bill and "dans un délai de 10 jours" in bill


# ---------------------------------------------------------------------------- trust pages


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_page_links_the_trust_pages_and_each_opens(client, lang):
    for path in (f"/{lang}/", f"/{lang}/track", FORM.format(lang=lang) + QUERY):
        page = text(client.get(path))
        for name in ("privacy", "cookies", "accessibility", "contact"):
            assert f'href="/{lang}/{name}"' in page, (path, name)
    for name in ("privacy", "cookies", "accessibility", "contact"):
        answer = client.get(f"/{lang}/{name}")
        assert answer.status_code == 200 and f'<html lang="{lang}">' in text(answer)


def test_the_consent_links_to_the_privacy_notice(client):
    form = text(client.get(FORM.format(lang="de") + QUERY))
    consent = form[form.index('id="consent_share"') :]
    assert 'href="/de/privacy"' in consent[:1500]


def test_the_privacy_notice_names_the_controller_the_recipients_and_the_retention(client, hub):
    page = text(client.get("/en/privacy"))
    assert "FPS Economy, SMEs, Self-employed and Energy" in page
    for mapping in hub.directory.agencies.values():
        assert mapping.name("en") in page, mapping.id
    kept = trust.retention()
    assert f"Complaints: {kept.closed['complaint'].amount} years" in page
    assert f"{kept.inactive.amount} years after the last activity" in page
    assert "ask for a copy of your data or for their erasure" in page
    assert "Data Protection Authority" in page


def test_retention_is_read_from_the_configured_file_else_the_defaults(tmp_path):
    assert trust.retention(tmp_path / "absent.yaml").source == "defaults"
    configured = tmp_path / "retention.yaml"
    configured.write_text(yaml.safe_dump({"closed": {"question": "6 months"}}))
    kept = trust.retention(configured)
    assert kept.closed["question"] == trust.Period(6, "month")
    assert kept.closed["complaint"] == trust.Period(2, "year")  # a default where it is silent
    configured.write_text(yaml.safe_dump({"inactive": "forever"}))
    trust.retention.cache_clear()
    with pytest.raises(ValueError, match="inactive"):
        trust.retention(configured)


def test_the_cookie_page_lists_the_cookies_the_code_sets(client, app_client):
    from hub.frontdesk.views import CASE_COOKIE

    page = text(client.get("/fr/cookies"))
    names = set(re.findall(r'data-cookie="([^"]+)"', page))
    assert names == {
        client.application.config["SESSION_COOKIE_NAME"],
        i18n.LANG_COOKIE,
        CASE_COOKIE.format(reference="LK-…"),
    }
    form = client.get(FORM.format(lang="fr") + QUERY)
    [session] = [c for c in form.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Expires" not in session and "Max-Age" not in session  # "until you close it"
    reference, code = filed(app_client, "fr")
    answer = app_client.get(f"/fr/track/{reference}?k={code}")
    set_here = {c.split("=", 1)[0] for c in answer.headers.getlist("Set-Cookie")}
    shown = {n.replace("LK-…", reference) for n in names}
    assert set_here <= shown  # nothing set that the page does not list


def test_the_accessibility_statement_says_how_it_was_tested(client, monkeypatch):
    page = text(client.get("/nl/accessibility"))
    assert "WCAG 2.1 AA" in page and "axe-core" in page and "Nu HTML Checker" in page
    assert "Bekende beperkingen" in page
    assert "2540 keer een pagina geladen en gecontroleerd: 0 fouten" in page  # the last run's
    monkeypatch.setitem(trust.AUDIT, "figures", None)
    assert "gecontroleerd:" not in text(client.get("/nl/accessibility"))  # none without a run
    monkeypatch.setitem(trust.AUDIT, "figures", {"pages": 164, "axe": 0, "html": 0})
    page = text(client.get("/en/accessibility"))
    assert "164 page loads checked: 0 axe-core violations, 0 HTML errors." in page


def test_the_pages_stylesheet_and_script_are_served(client):
    page = text(client.get("/fr/"))
    for tag in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        answer = client.get(tag)
        assert answer.status_code == 200 and len(answer.data) > 1000, tag
    assert client.get("/static/frontdesk.css").mimetype == "text/css"


def test_file_by_page_goes_through_the_check_page(client, hub):
    answer = file_by_page(client, "en")
    assert answer.status_code == 303 and count_cases(hub) == 1


def test_a_month_only_date_gets_the_benefit_of_the_doubt_on_a_time_limit():
    from datetime import date

    from hub.intake import situation_of

    data = {**CASE, "incident_date": date(2025, 11, 1), "incident_date_precision": "month"}
    assert situation_of(data, date(2026, 11, 2)).incident_date == date(2025, 11, 30)
    data["incident_date_precision"] = "day"
    assert situation_of(data, date(2026, 11, 2)).incident_date == date(2025, 11, 1)
