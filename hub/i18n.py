"""Languages of the front desk and the back office: the four catalogs
(hub/translations/<lang>/LC_MESSAGES) and the choice of language for a request.

The source strings are English and live in the templates, hub/frontdesk and admin/ (the back
office chooses its language in admin/views.py: the account's, a cookie, Accept-Language);
`make install` compiles the `.po` catalogs to `.mo` with pybabel. `compile_catalogs()` does the same from Python
when a `.mo` is missing or older than its `.po` (a fresh clone started without `make`), so a page
never falls back to English because a build step was skipped.
"""

from __future__ import annotations

from pathlib import Path

from flask import Request

LANGUAGES = ("nl", "fr", "de", "en")
NAMES = {"nl": "Nederlands", "fr": "Français", "de": "Deutsch", "en": "English"}
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANG_COOKIE = "loket_lang"


def catalog(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def compile_catalogs() -> list[Path]:
    """Compile every `.po` whose `.mo` is missing or stale; returns the files written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for lang in LANGUAGES:
        po = catalog(lang)
        mo = po.with_suffix(".mo")
        if not po.exists() or (mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime):
            continue
        with open(po, "rb") as fh:
            messages = read_po(fh, locale=lang)
        tmp = mo.with_suffix(".mo.tmp")
        try:
            with open(tmp, "wb") as fh:
                write_mo(fh, messages)
            tmp.replace(mo)
        except OSError:  # a read-only install: the build step must have compiled them
            continue
        written.append(mo)
    return written


def preferred(request: Request) -> str | None:
    """The language for a visitor who has not chosen one in the URL: the one they picked
    before (cookie), else the best match of their browser's Accept-Language, else None."""
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES)
