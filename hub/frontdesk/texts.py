"""Consumer-facing sentences that depend on data (case kinds, agency bodies, timeline events).

They are written here, in English source strings marked for translation, so that the catalogs
hold them and the page shows them in the consumer's language. Agency names, rights texts,
routing reasons, pre-check questions and status names come translated from the data files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from babel import Locale
from babel.lists import format_list
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from hub import i18n
from hub.i18n import named
from mappings.names import NameForms

# The kinds of case as the privacy notice lists them (how long each is kept).
KIND_PLURALS = {
    "question": _l("Questions"),
    "complaint": _l("Complaints"),
    "mediation": _l("Requests for mediation"),
    "report": _l("Reports to an inspection service"),
}
KINDS = {
    "question": (
        _l("Ask a question"),
        _l("You want information or advice about your rights. You get an answer in writing."),
    ),
    "complaint": (
        _l("File a complaint"),
        _l(
            "You tried to solve it with the company and it did not work. The competent service "
            "takes up your complaint."
        ),
    ),
    "mediation": (
        _l("Ask for mediation"),
        _l("A neutral service helps you and the company reach an agreement. It is free of charge."),
    ),
    "report": (
        _l("Report it to an inspection"),
        _l(
            "You warn the authorities about a company that breaks the rules. The inspection "
            "uses your report to act; you do not get an individual answer."
        ),
    ),
}

# What a case is, as a noun: the tracking page's "Complaint · filed on 3 December 2026".
CASE_TYPES = {
    "question": _l("Question"),
    "complaint": _l("Complaint"),
    "mediation": _l("Request for mediation"),
    "report": _l("Report"),
}

# What each kind of body does with a case, said plainly (mappings/agencies/*.yaml `body`).
BODY_WILL = {
    "ombudsman": _l("It examines your case, mediates with the company and tells you the outcome."),
    "mediation": _l(
        "It looks for an amicable solution with the company and tells you the outcome."
    ),
    "dispute_committee": _l(
        "It tries to reconcile you and the company; if that fails, it decides the dispute."
    ),
    "inspection": _l(
        "It uses your information to check the company and act against it; it does not "
        "answer you individually."
    ),
    "regulator": _l("It checks whether the company keeps to the rules and answers you."),
    "network": _l("It advises you and contacts the service in the company's country for you."),
}
INFORMED_WILL = _l(
    "It is informed so that it can act against the company; it does not answer you individually."
)

# What the consumer should do next, by the case's one status.
NEXT_STEP = {
    "waiting_for_consumer": _l(
        "A service needs an answer from you before it can go on. Answer it below; you can add "
        "documents."
    ),
    "queued": _l(
        "Nothing to do for now. Your case is being forwarded; you get an email when a service "
        "has it."
    ),
    "sent": _l("Nothing to do for now. You get an email when the service confirms it has it."),
    "received": _l(
        "Nothing to do for now. The service has your case; you get an email when it moves."
    ),
    "in_progress": _l(
        "Nothing to do for now. The service is handling your case; keep your documents at hand "
        "in case it asks for them."
    ),
    "resolved": _l(
        "Your case is closed. Read the service's answer below. Not satisfied? You can still go "
        "to court or ask for legal advice."
    ),
    "closed_no_individual_follow_up": _l(
        "Your report was used for inspections. The service does not answer individually; "
        "nothing more to do."
    ),
    "not_competent": _l(
        "The service is not competent; your case goes to the right service. Nothing to do."
    ),
    "referred": _l("Your case went to another service. Nothing to do for now."),
    "withdrawn": _l("You withdrew this case. Nothing more will happen with it."),
}

# After the consumer answered a service that waited for them, until it asks again.
ANSWER_SENT = _l(
    "Your answer was sent. The service is handling your case now; nothing to do for now. If it "
    "needs more from you, you get an email."
)


def working_languages(languages: Sequence[str], page_language: str) -> dict[str, Any]:
    """In which languages a body works, said plainly before filing, and what happens when the
    consumer's language is not one of them: the hub translates the structured parts, the free
    text goes as written, and the body's answers are shown in its own words, labelled so."""
    locale = Locale.parse(page_language)
    names = [locale.languages.get(code, code) for code in languages]
    return {
        "languages": tuple(languages),
        "works_in": named(
            _("It works in {languages}."), languages=format_list(names, locale=locale)
        )
        if names
        else "",
        "speaks_yours": page_language in languages,
        "not_yours": ""
        if page_language in languages or not names
        else named(
            _(
                "It does not work in {language}. We pass on the structured parts of your case "
                "(the kind of problem, dates, amounts) in its language; what you write yourself "
                "is passed on as you wrote it. You read the status of your case in {language}; "
                "its own messages are shown as it wrote them, marked as such."
            ),
            language=locale.languages.get(page_language, page_language),
        ),
    }


def event_text(
    kind: str | None, agency: NameForms | None, status: str, reference: str | None
) -> str:
    """One timeline entry in the page's language; the agency's own words are shown beside it.

    The agency's name goes in with the form each language's sentence needs (`{agency.to}`: "to
    the X", "au X", "zum X", "naar de X"); see mappings/names.py."""
    a = agency or NameForms("", "", "", "", "", "", "")
    if kind == "routed":
        return named(_("Your case is on its way {agency.to}."), agency=a)
    if kind == "delivered":
        if reference:
            return named(
                _("{agency.The} has registered your case (its reference: {reference})."),
                agency=a,
                reference=reference,
            )
        return named(_("{agency.The} has registered your case."), agency=a)
    if kind == "agency_reference":
        return named(
            _("{agency.The} gave your case the reference {reference}."),
            agency=a,
            reference=reference or "",
        )
    if kind in ("agency_status", "agency_note") and status:
        return named(_("{agency.name}: {status}."), agency=a, status=status)
    if kind in ("agency_status", "agency_note"):
        return named(_("{agency.The} sent a message."), agency=a)
    if kind == "consumer_reply":
        return named(_("You replied {agency.to}."), agency=a)
    if kind == "message_forwarded":
        return named(_("Your message was forwarded {agency.to}."), agency=a)
    if kind in ("message_delayed", "delivery_delayed", "resent"):
        return named(
            _("Forwarding {agency.to} takes longer than usual; we keep trying, nothing is lost."),
            agency=a,
        )
    if kind == "past_due":
        return named(_("{agency.The} has not answered in time."), agency=a)
    if kind == "referred":
        return named(
            _("{agency.The} is not competent; your case goes to the competent service."),
            agency=a,
        )
    if kind == "withdrawn":
        return _("You withdrew the case.")
    if kind == "needs_routing":
        return _("Our staff are choosing the right service for your case.")
    if status and a.name:
        return named(_("{agency.name}: {status}."), agency=a, status=status)
    return _("Your case was updated.")


def information_request(reason: str | None, message: str | None) -> str | None:
    """What the consumer reads of an information request, in the page's language."""
    return i18n.information_request(_, reason, message)
