"""Who wrote a mail and which part the agency wrote, judged before any status is read.

Samples: tests/corpus/mail (out-of-office in four languages, RFC 3464 reports, a forged sender,
a real reply) and CPython's own email test messages (every one must be judged without raising).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from adapters import mailtriage
from tests.support import mailcorpus
from tests.support.env import peer_missing

AGENCY = ["@ombudsman-energie.be"]


def _mail(name: str):
    raw = mailcorpus.sample(
        name,
        case="LK-7F3K-9QX2",
        agency="klachten@ombudsman-energie.be",
        hub="loket@loket.example",
        date=datetime(2026, 11, 2, 9, tzinfo=UTC),
    )
    return BytesParser(policy=policy.default).parsebytes(raw)


@pytest.mark.parametrize("name", ["ooo-nl.eml", "ooo-fr.eml", "ooo-de.eml", "ooo-en.eml"])
def test_out_of_office_in_four_languages_is_automatic(name: str) -> None:
    assert mailtriage.automatic_reason(_mail(name))


def test_a_persons_reply_is_not_automatic() -> None:
    assert mailtriage.automatic_reason(_mail("agency-reply.eml")) is None
    assert mailtriage.delivery_report(_mail("agency-reply.eml")) is None


def test_a_permanent_dsn_names_the_recipient_and_the_bounced_mail() -> None:
    report = mailtriage.delivery_report(_mail("dsn-permanent.eml"))
    assert report is not None and report.permanent
    assert report.recipients == ("klachten@ombudsman-energie.be",)
    assert "User unknown" in report.diagnostic
    assert report.original_message_id == "<LK-7F3K-9QX2.ombudsman-energy.1@loket.example>"


def test_a_delayed_dsn_is_not_a_failure() -> None:
    report = mailtriage.delivery_report(_mail("dsn-delayed.eml"))
    assert report is not None and not report.permanent


def test_only_the_agency_speaks_for_the_agency() -> None:
    assert mailtriage.sender_allowed(_mail("agency-reply.eml"), AGENCY)
    assert mailtriage.sender_allowed(_mail("agency-reply.eml"), ["klachten@ombudsman-energie.be"])
    assert not mailtriage.sender_allowed(_mail("forged-from.eml"), AGENCY)
    assert not mailtriage.sender_allowed(_mail("agency-reply.eml"), [])  # nobody configured
    assert not mailtriage.sender_allowed(_mail("agency-reply.eml"), ["energie.be"])  # no subdomains


def test_the_consumers_words_below_the_marker_never_count() -> None:
    body = _mail("ooo-nl.eml").get_body(("plain",)).get_content()
    assert "Status: AFGESLOTEN" in body
    assert "Status" not in mailtriage.agency_text(body)
    reply = _mail("agency-reply.eml").get_body(("plain",)).get_content()
    assert mailtriage.agency_text(reply) == (
        "Status: IN_BEHANDELING\nDossier: OE/2026/00001\nWij behandelen uw dossier."
    )


def test_the_marker_is_recognised_in_every_language_and_when_quoted() -> None:
    for marker in mailtriage.REPLY_MARKERS.values():
        assert mailtriage.agency_text(f"Status: OPEN\n{marker}\nStatus: CLOSED") == "Status: OPEN"
        assert mailtriage.agency_text(f"Ok\n> {marker}\n> Status: CLOSED") == "Ok"


def test_cpythons_email_corpus_is_judged_without_raising() -> None:
    files = mailcorpus.cpython_messages()
    if not files:
        peer_missing(f"this Python installation has no email test data ({mailcorpus.CPYTHON})")
    verdicts = {}
    for path in files:
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        verdicts[path.name] = (
            mailtriage.automatic_reason(msg),
            mailtriage.delivery_report(msg),
            mailtriage.sender_allowed(msg, AGENCY),
        )
    assert len(verdicts) >= 40
    # The corpus's DSNs are recognised as delivery reports; none of its senders is the agency.
    assert verdicts["msg_43.txt"][1] is not None and verdicts["msg_43.txt"][1].permanent
    assert verdicts["msg_05.txt"][1] is not None
    assert not any(allowed for _, _, allowed in verdicts.values())
