"""The back office speaks nl, fr, de and en: every string of its pages and messages is in the
four catalogs, each page in each language shows no English left over, dates are written the
way the language writes them, and the staff member's choice of language is remembered."""

from __future__ import annotations

import html
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from hub import accounts, i18n
from hub.config import ROOT
from scheduler.worker import Worker
from tests.support.backoffice import PASSWORD, sign_in, token_of
from tests.support.cases import TELECOM, fault, file

# The hosted workspace's pages are another change's; these are the console's and the accounts'.
METHOD_MAP = [
    ("admin/workspace.py", "ignore"),
    ("admin/templates/admin/workspace*.html", "ignore"),
    ("admin/**.py", "python"),
    ("admin/templates/admin/**.html", "jinja2"),
]


def admin_msgids() -> set[str]:
    found = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, METHOD_MAP, keywords={"_": None, "_l": None, "gettext": None}
        )
    }
    found.discard("")
    return found


def catalog(lang: str) -> dict:
    with open(i18n.catalog(lang), "rb") as fh:
        return {m.id: m for m in read_po(fh, locale=lang) if m.id}


def test_the_catalogs_translate_every_back_office_string_with_its_placeholders():
    found = admin_msgids()
    assert len(found) > 120
    for lang in ("nl", "fr", "de", "en"):
        messages = catalog(lang)
        missing = sorted(found - set(messages))
        assert not missing, f"{lang}: not in the catalog: {missing}"
        for msgid in found:
            m = messages[msgid]
            assert m.string and not m.fuzzy, f"{lang}: untranslated {msgid!r}"
            placeholders = sorted(re.findall(r"%\(\w+\)[sd]", msgid))
            assert sorted(re.findall(r"%\(\w+\)[sd]", m.string)) == placeholders, (lang, msgid)


@pytest.fixture
def operator(hub, client):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    return client


def visible_text(page: str) -> str:
    # what the page quotes as data (an agency's payload, an excerpt) is not the page's language
    page = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def leftovers(text: str, lang: str) -> list[str]:
    """English back-office strings that show on a page in `lang` (whole, as phrases)."""
    translated = catalog(lang)
    ids = admin_msgids()
    # every back-office text in `lang`: an English string that is also a word there ("Status"
    # in German, "Transport" in French) is no leftover
    own = " ".join(translated[i].string for i in ids)
    english = []
    for msgid in ids:
        if "%(" in msgid or len(msgid) < 6:
            continue
        if re.search(r"(?<![\w-])" + re.escape(msgid) + r"(?![\w-])", own):
            continue  # the same in both languages (a name, "Hash", "Status")
        if re.search(r"(?<![\w-])" + re.escape(msgid) + r"(?![\w-])", text):
            english.append(msgid)
    return english


@pytest.mark.parametrize("lang", ["nl", "fr", "de"])
def test_every_operator_page_in_each_language_has_no_english_left(hub, sims, operator, lang):
    reference = file(hub).reference
    fault(sims, TELECOM, mode="error", status=503, count=1)
    Worker(hub, "w").dispatch_once()  # a delivery waiting for a retry: the case page lists it
    operator.get(f"/admin/language/{lang}")
    pages = [
        "/admin/flows",
        "/admin/attention",
        "/admin/dead-letters",
        "/admin/cases",
        f"/admin/cases/{reference}",
        "/admin/security",
        "/admin/users",
    ]
    for path in pages:
        answer = operator.get(path)
        assert answer.status_code == 200, path
        page = answer.get_data(as_text=True)
        assert f'<html lang="{lang}">' in page, path
        assert leftovers(visible_text(page), lang) == [], (lang, path)


@pytest.mark.parametrize("lang", ["nl", "fr", "de"])
def test_the_pages_before_sign_in_have_no_english_left(client, lang):
    client.get(f"/admin/language/{lang}")
    for path, status in (
        ("/admin/login", 200),
        ("/admin/forgot", 200),
        ("/admin/reset/not-a-token", 410),
    ):
        answer = client.get(path)
        assert answer.status_code == status, path
        page = answer.get_data(as_text=True)
        assert f'<html lang="{lang}">' in page
        assert leftovers(visible_text(page), lang) == [], (lang, path)
    sent = client.post(
        "/admin/forgot",
        data={"csrf_token": token_of(client, "/admin/forgot"), "name": "nobody"},
    ).get_data(as_text=True)
    assert leftovers(visible_text(sent), lang) == []


def test_dates_are_written_the_way_each_language_writes_them(hub, sims, operator):
    reference = file(hub).reference  # filed on 2 November 2026 (the test clock)
    shown = {}
    for lang in ("nl", "fr", "de", "en"):
        operator.get(f"/admin/language/{lang}")
        shown[lang] = visible_text(operator.get(f"/admin/cases/{reference}").get_data(as_text=True))
    assert "2026-11-02" not in " ".join(shown.values())  # no ISO dates left
    # in Brussels time (09:00 UTC is 10:00 there), as Babel writes each language for Belgium
    assert "2/11/2026, 10:00" in shown["nl"] and "2 nov 2026, 10:00:00" in shown["nl"]
    assert "2/11/26 10:00" in shown["fr"] and "2 nov. 2026, 10:00:00" in shown["fr"]
    assert "02.11.26, 10:00" in shown["de"] and "02.11.2026, 10:00:00" in shown["de"]
    assert "02 Nov 2026, 10:00:00" in shown["en"]


def test_the_sign_in_page_follows_the_browser_and_the_choice_is_remembered_per_account(hub, client):
    page = client.get("/admin/login", headers={"Accept-Language": "fr-BE,fr;q=0.9"})
    assert '<html lang="fr">' in page.get_data(as_text=True)
    assert "Se connecter" in page.get_data(as_text=True)
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    switched = client.get("/admin/language/de?next=/admin/flows")
    assert switched.status_code == 302 and switched.headers["Location"].endswith("/admin/flows")
    assert "Datenflüsse" in client.get("/admin/flows").get_data(as_text=True)
    # another browser, which asks for Dutch: the account's choice wins once signed in
    client.get("/admin/language/en")  # (this test client's cookie; the account says en now)
    accounts_db_lang = accounts.get(hub.db, *_session_of(hub, "olga"))
    assert accounts_db_lang.language == "en"
    with client.application.test_client() as other:
        sign_in(other, "olga")
        page = other.get("/admin/flows", headers={"Accept-Language": "nl-BE"})
        assert '<html lang="en">' in page.get_data(as_text=True)
    assert client.get("/admin/language/xx").status_code == 404


def _session_of(hub, name):
    from sqlalchemy import select

    from hub.models import User

    with hub.db.session(read_only=True) as s:
        user = s.scalars(select(User).where(User.name == name)).one()
        return user.id, user.session_version
