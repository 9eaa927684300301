"""Languages of the front desk and the back office: the four catalogs
(hub/translations/<lang>/LC_MESSAGES) and the choice of language for a request.

The source strings are English and live in the templates, hub/frontdesk and admin/ (the back
office chooses its language in admin/views.py: the account's, a cookie, Accept-Language);
`make install` compiles the `.po` catalogs to `.mo` with pybabel. `compile_catalogs()` does the same from Python
when a `.mo` is missing or older than its `.po` (a fresh clone started without `make`), so a page
never falls back to English because a build step was skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Request

LANGUAGES = ("nl", "fr", "de", "en")
NAMES = {"nl": "Nederlands", "fr": "Français", "de": "Deutsch", "en": "English"}
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANG_COOKIE = "loket_lang"


def N_(text: str) -> str:
    """Marks a source string for the catalogs (pybabel's default keyword) without translating."""
    return text


# What an agency asks the consumer for: the reasons of its mapping's `information_requests`
# (mappings.engine.INFORMATION_REASONS), in the consumer's words; pages and mails translate them.
INFORMATION_REASONS = {
    "disputed_bill": N_("a copy of the disputed bill"),
    "customer_number": N_("your customer number"),
    "contract": N_("a copy of your contract"),
    "proof_of_payment": N_("proof of your payment"),
    "correspondence_with_trader": N_("your letters or e-mails with the company"),
    "proof_of_identity": N_("proof of your identity"),
    "photos": N_("photos of the problem"),
    "other": N_("more information"),
}
ASKS_FOR = N_("The service asks you for %(what)s.")


def information_request(gettext, reason: str | None, message: str | None) -> str | None:
    """What the consumer reads of an information request: the reason in their language (with
    `gettext` of a page or of a mail's language), then the agency's own words."""
    if not reason or reason not in INFORMATION_REASONS:
        return message
    asked = gettext(ASKS_FOR) % {"what": gettext(INFORMATION_REASONS[reason])}
    return f"{asked} {message}" if message else asked


def translations(lang: str):
    """The catalog of `lang` outside a request (the worker's mails)."""
    from babel.support import Translations

    compile_catalogs()
    return Translations.load(str(TRANSLATIONS), [lang])


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


def named(text: str, **forms: object) -> str:
    """A translated sentence with bodies' names in it: `{agency.to}`, `{agency.The}`, ... pick
    the grammatical form each language needs (mappings/names.py), so the French catalog can say
    "au {agency...}" where the Dutch says "naar de ...". Brace fields, not `%(...)s`: a
    translation may use another form of the same name than the English does. In a template,
    `_("...")|named(agency=...)` escapes the names (the text is Markup there)."""
    return text.format(**forms)


def uncap(text: str) -> str:
    """A label inside a sentence: "Facture" in "Télécoms : facture" (an acronym stays)."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def and_list(items: Iterable[object]) -> str:
    """ "a, b and c" in the page's language (babel's list patterns)."""
    from babel.lists import format_list
    from flask_babel import get_locale

    return format_list([str(i) for i in items], locale=get_locale() or "en")


# Below this confidence a short text's language is not claimed (a `lang` attribute that is
# wrong misleads a screen reader more than none).
SURE = 0.8


def text_language(text: str | None) -> str | None:
    """The language (nl, fr, de or en) a service's own text is written in, when the text says
    so clearly enough; None when it is too short or mixed to tell. py3langid's model, limited
    to the four languages of the front desk."""
    if not text or len(text.strip()) < 3:
        return None
    lang, confidence = _identifier().classify(text)
    return str(lang) if confidence >= SURE and lang in LANGUAGES else None


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier
