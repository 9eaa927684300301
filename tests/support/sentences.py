"""Every consumer-facing sentence that carries a body's name, rendered for every body in every
language: the catalogs' sentences, the consumer mails and the timeline's sentences.

tests/test_names_in_sentences.py holds them against the rule that a name never stands bare after
a preposition; tests/test_language_review.py searches them for the review's "before" phrases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache

from babel.messages.pofile import read_po

from hub import i18n
from hub.config import MailSettings
from hub.models import Case, Notification
from mappings.engine import AGENCIES_DIR, AgencyMapping, load_all
from mappings.names import NameForms

LANGUAGES = ("nl", "fr", "de", "en")


@lru_cache(maxsize=1)
def agencies() -> dict[str, AgencyMapping]:
    return dict(load_all(AGENCIES_DIR, {}))


@lru_cache(maxsize=4)
def catalog(lang: str) -> dict[str, str]:
    """msgid -> msgstr of the front desk's catalog in `lang`."""
    with open(i18n.catalog(lang), "rb") as fh:
        return {m.id: m.string for m in read_po(fh, locale=lang) if m.id and m.string}


_PERCENT = re.compile(r"%\((\w+)\)[sd]")


def fill(text: str, forms: NameForms, forms2: NameForms | None = None) -> str:
    """A catalog sentence with the body's name in it: brace fields get the forms (what the code
    passes), `%(agency)s`-style placeholders the bare name (what they used to get)."""
    other = forms2 or forms
    values = {
        "agency": forms,
        "from_agency": other,
        "to": forms.to,
        "acc": forms.acc,
        "reference": "LK-TEST-0001",
        "status": "STATUS",
        "languages": "LANGS",
        "language": "LANG",
    }
    out = _PERCENT.sub(
        lambda m: forms.name if m.group(1) in ("agency", "agencies") else f"<{m.group(1)}>", text
    )
    return out.format(**values) if "{" in out else out


def catalog_sentences(lang: str, forms: NameForms) -> Iterator[str]:
    """The catalog's sentences that take a body's name, with this body's name in them."""
    for msgid, msgstr in catalog(lang).items():
        if "{agency." in msgid or "{to}" in msgid or re.search(r"%\((agency|agencies)\)s", msgid):
            yield fill(msgstr, forms)


def mail_sentences(lang: str, forms: NameForms, other: NameForms) -> Iterator[str]:
    """Each consumer mail in `lang` about this body (referred from `other`)."""
    from hub import notify

    case = Case(reference="LK-TEST-0001")

    def names(agency_id: str, _lang: str) -> NameForms:
        return forms if agency_id == "this" else other

    for kind in notify.KINDS:
        n = Notification(
            kind=kind,
            language=lang,
            secret="tok",
            data={
                "agency_id": "this",
                "from_agency_id": "other",
                "status": "STATUS",
                "message": "MESSAGE",
                "due": "1 December 2026",
                "reply_by": "1 December 2026",
                "agencies": [{"agency_id": "this", "why": "WHY"}],
            },
            created_at=datetime(2026, 11, 2, tzinfo=UTC),
        )
        subject, body = notify.render(n, case, MailSettings(), names)
        yield subject
        yield body
    two = [
        Notification(kind="status", language=lang, data={"agency_id": "this", "status": "S"}),
        Notification(kind="waiting", language=lang, data={"agency_id": "other", "status": "W"}),
    ]
    yield "\n".join(notify.render_batch(two, case, MailSettings(), names))


@lru_cache(maxsize=1)
def babel_app():
    """A bare Flask app with the front desk's catalogs: enough to run its gettext calls."""
    from flask import Flask, g
    from flask_babel import Babel

    i18n.compile_catalogs()
    app = Flask(__name__)
    Babel(
        app,
        locale_selector=lambda: f"{g.lang}_BE",
        default_translation_directories=str(i18n.TRANSLATIONS),
    )
    return app


def timeline_sentences(lang: str, forms: NameForms) -> Iterator[str]:
    """The tracking page's timeline sentences (hub/frontdesk/texts.py) in `lang`."""
    from flask import g

    from hub.frontdesk import texts

    kinds = (
        "routed",
        "delivered",
        "agency_reference",
        "agency_status",
        "consumer_reply",
        "message_forwarded",
        "delivery_delayed",
        "past_due",
        "referred",
    )
    with babel_app().test_request_context(f"/{lang}/"):
        g.lang = lang
        for kind in kinds:
            yield texts.event_text(kind, forms, "", "REF-1")
            yield texts.event_text(kind, forms, "STATUS", None)


def bodies() -> Iterator[tuple[str, AgencyMapping]]:
    yield from sorted(agencies().items())
