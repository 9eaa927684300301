"""The email adapter against real servers: aiosmtpd for SMTP, Dovecot for the hub's IMAP mailbox.

What an agency with only a mailbox, and the operators behind the hub, would notice: the case mail
is complete and in the agency's language, replies become statuses exactly once, and a reply the
hub cannot read is kept for a person, never dropped and never blocking the others.
"""

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from loket_simulators.email_agency import Faults

from adapters.base import (
    MESSAGES,
    Attachment,
    InboundProblem,
    Outbound,
    OutboundMessage,
    PermanentError,
    TransientError,
)
from adapters.email import EmailAdapter
from adapters.mailtriage import agency_text
from tests.support.env import free_port
from tests.support.peers_email import case_payload

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n\x00\xff\x10 binary tail"
NOTE = "Relevé de compteur du 3 octobre: 12345 kWh — contesté.\n".encode()


def outbound(reference="LK-7F3K-9QX2", language="nl", attachments=(), key=None) -> Outbound:
    return Outbound(
        idempotency_key=key or f"{reference}.ombudsman-energy.1",
        case_reference=reference,
        agency_id="ombudsman-energy",
        payload=case_payload(reference),
        language=language,
        attachments=tuple(attachments),
    )


@pytest.fixture
def adapter(email_world):
    adapter = EmailAdapter(
        email_world.adapter_config(), clock=lambda: datetime(2026, 11, 2, tzinfo=UTC)
    )
    yield adapter
    adapter.close()


def reply(
    world,
    *,
    subject="Re: [LK-7F3K-9QX2] Nieuw dossier",
    body="Status: IN_BEHANDELING\n",
    message_id="<r1@ombudsman-energy.invalid>",
    **headers,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = world.agency_address
    msg["To"] = world.hub_address
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


# ------------------------------------------------------------------------------------ deliver


def test_attachments_arrive_intact(adapter, email_world):
    adapter.deliver(
        outbound(
            attachments=[
                Attachment("factuur oktober.pdf", "application/pdf", PDF),
                Attachment("meterstand.txt", "text/plain", NOTE),
            ]
        )
    )
    [case] = email_world.agency.cases.values()
    assert case.attachments == [
        ("factuur oktober.pdf", "application/pdf", PDF),
        ("meterstand.txt", "text/plain", NOTE),
    ]


def test_the_subject_carries_the_case_reference_and_the_message_id_the_key(adapter, email_world):
    receipt = adapter.deliver(outbound())
    [case] = email_world.agency.cases.values()
    assert "[LK-7F3K-9QX2]" in case.subject
    assert case.case_reference == "LK-7F3K-9QX2"
    assert case.message_id == "<LK-7F3K-9QX2.ombudsman-energy.1@loket.invalid>"
    # the agency's own reference is only known when it replies: we are known by ours
    assert receipt.agency_reference == "LK-7F3K-9QX2" and receipt.provisional
    assert receipt.raw["message_id"] == case.message_id


@pytest.mark.parametrize(
    "language, says, not_says",
    [
        ("nl", "Via het Consumentenloket ontvangt u een nieuw dossier", "Guichet"),
        ("fr", "Le Guichet des consommateurs vous transmet un nouveau dossier", "Consumentenloket"),
        ("de", "über den Verbraucherschalter erhalten Sie eine neue Akte", "Consumentenloket"),
    ],
)
def test_the_body_is_in_the_agencys_working_language(
    adapter, email_world, language, says, not_says
):
    adapter.deliver(outbound(language=language))
    [case] = email_world.agency.cases.values()
    assert says in case.body
    assert not_says not in case.body
    assert case.language == language
    # the mapped fields travel as `field: value` lines the agency's contract names
    assert "consumer.name: Test Consument" in case.body
    assert case.fields["description"] == "Conformance test case"


def test_a_case_mail_lacking_a_field_the_agency_requires_is_refused_permanently(
    adapter,
    email_world,
):
    item = outbound()
    item = Outbound(**{**item.__dict__, "payload": {"reference": item.case_reference}})
    with pytest.raises(PermanentError, match="required fields: type, language"):
        adapter.deliver(item)
    assert email_world.agency.cases == {}


def test_an_unknown_recipient_is_permanent_and_names_the_setting(email_world):
    adapter = EmailAdapter(email_world.adapter_config(to_address="nobody@ombudsman-energy.example"))
    with pytest.raises(PermanentError, match="to_address"):
        adapter.deliver(outbound())


def test_a_wrong_smtp_password_is_permanent_and_says_what_to_check(email_world):
    adapter = EmailAdapter(email_world.adapter_config(smtp_password="rotated"))
    with pytest.raises(PermanentError, match="smtp_password"):
        adapter.deliver(outbound())


def test_no_smtp_server_listening_is_transient(email_world):
    adapter = EmailAdapter(email_world.adapter_config(smtp_port=free_port()))
    with pytest.raises(TransientError, match="cannot send"):
        adapter.deliver(outbound())


def test_check_names_the_side_that_failed(email_world):
    health = EmailAdapter(email_world.adapter_config(imap_password="wrong")).check()
    assert not health.ok
    assert "SMTP 127.0.0.1" in health.message and " ok" in health.message
    assert "IMAP failed" in health.message and "imap_password" in health.message
    health = EmailAdapter(email_world.adapter_config(smtp_port=free_port())).check()
    assert not health.ok
    assert "SMTP failed" in health.message and "IMAP 127.0.0.1" in health.message


# -------------------------------------------------------------------------- consumer replies


def message(
    text="Hierbij de gevraagde factuur.",
    *,
    agency_reference="LK-7F3K-9QX2",
    language="nl",
    attachments=(),
    key="LK-7F3K-9QX2.ombudsman-energy.msg7",
) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=key,
        case_reference="LK-7F3K-9QX2",
        agency_id="ombudsman-energy",
        agency_reference=agency_reference,
        text=text,
        language=language,
        attachments=tuple(attachments),
    )


def test_a_consumer_reply_reaches_its_case_in_the_cases_thread_once(adapter, email_world):
    assert MESSAGES in adapter.capabilities
    adapter.deliver(outbound())
    [case] = email_world.agency.cases.values()
    assert case.id == "OE/2026/00001"
    item = message(
        "Hierbij de gevraagde factuur.\nMet vriendelijke groet,\nAnne",
        agency_reference=case.id,  # the hub adopted the agency's reference from its first reply
        attachments=[
            Attachment("factuur oktober.pdf", "application/pdf", PDF),
            Attachment("meterstand.txt", "text/plain", NOTE),
        ],
    )
    receipt = adapter.send_message(item)
    again = adapter.send_message(item)  # the hub lost the receipt and sends it again

    assert len(email_world.agency.cases) == 1  # a reply is never a new case
    [got] = case.messages
    assert got["text"] == "Hierbij de gevraagde factuur.\nMet vriendelijke groet,\nAnne"
    assert got["attachments"] == [
        ("factuur oktober.pdf", "application/pdf", PDF),
        ("meterstand.txt", "text/plain", NOTE),
    ]
    # the same key, the same Message-ID: the agency recognised the repeat
    assert got["message_id"] == "<LK-7F3K-9QX2.ombudsman-energy.msg7@loket.invalid>"
    assert email_world.agency.message_replays == 1
    # threaded on the case mail, both references in the subject
    assert got["in_reply_to"] == case.message_id
    assert got["subject"] == (
        "Re: [LK-7F3K-9QX2] Antwoord van de consument (uw dossier OE/2026/00001)"
    )
    assert receipt.agency_reference == again.agency_reference == "OE/2026/00001"
    assert receipt.raw["message_id"] == got["message_id"]
    assert receipt.raw["attachments"] == ["factuur oktober.pdf", "meterstand.txt"]


def test_the_reply_mail_names_the_case_for_the_agencys_filters():
    adapter = EmailAdapter(
        {
            "smtp_host": "x",
            "from_address": "loket@loket.example",
            "to_address": "klachten@ombudsman-energy.example",
            "imap_host": "x",
            "imap_username": "u",
            "imap_password": "p",
        },
        clock=lambda: datetime(2026, 11, 2, tzinfo=UTC),
    )
    mail = adapter.compose_message(message(agency_reference="OE/2026/00001"))
    assert mail["X-Loket-Kind"] == "message"
    assert mail["X-Loket-Reference"] == "LK-7F3K-9QX2"
    assert mail["X-Loket-Agency-Reference"] == "OE/2026/00001"
    assert mail["References"] == "<LK-7F3K-9QX2.ombudsman-energy.1@loket.invalid>"
    assert mail["Reply-To"] == "loket@loket.example"
    assert mail["Content-Language"] == "nl"
    # before the agency named its own reference, the mail carries ours alone
    mail = adapter.compose_message(message())
    assert mail["Subject"] == "Re: [LK-7F3K-9QX2] Antwoord van de consument"
    assert mail["X-Loket-Agency-Reference"] is None
    # a key that does not name its case mail: no guessed In-Reply-To
    mail = adapter.compose_message(message(key="reply-42"))
    assert mail["Message-ID"] == "<reply-42@loket.invalid>"
    assert mail["In-Reply-To"] is None and mail["References"] is None


@pytest.mark.parametrize(
    "language, subject, says, not_says",
    [
        ("nl", "Antwoord van de consument", "antwoordt de consument in dossier", "Guichet"),
        ("fr", "Réponse du consommateur", "le consommateur répond dans le dossier", "Loket"),
        ("de", "Antwort des Verbrauchers", "antwortet der Verbraucher in der Akte", "Loket"),
    ],
)
def test_a_reply_is_written_in_the_agencys_working_language(
    adapter, email_world, language, subject, says, not_says
):
    adapter.deliver(outbound(language=language))
    adapter.send_message(
        message(
            "Voici la facture.",
            language=language,
            attachments=[Attachment("facture.pdf", "application/pdf", PDF)],
        )
    )
    [case] = email_world.agency.cases.values()
    [got] = case.messages
    assert got["subject"] == f"Re: [LK-7F3K-9QX2] {subject}"
    assert got["language"] == language
    assert says in got["body"] and not_says not in got["body"]
    assert "facture.pdf (application/pdf, " in got["body"]  # the documents are listed
    assert got["text"] == "Voici la facture."  # the consumer's words as they wrote them


def test_a_reply_for_a_case_the_agency_does_not_know_is_kept_aside(adapter, email_world):
    receipt = adapter.send_message(message(key="LK-7F3K-9QX2.ombudsman-energy.msg1"))
    assert receipt.agency_reference == "LK-7F3K-9QX2"
    assert email_world.agency.cases == {}
    [orphan] = email_world.agency.orphans
    assert orphan["text"] == "Hierbij de gevraagde factuur."
    # the agency still takes new cases afterwards
    adapter.deliver(outbound())
    assert len(email_world.agency.cases) == 1


@pytest.mark.parametrize(
    "fault, error",
    [("transient", TransientError), ("timeout", TransientError), ("permanent", PermanentError)],
)
def test_a_refused_reply_is_classified_like_a_refused_case(adapter, email_world, fault, error):
    adapter.deliver(outbound())
    [case] = email_world.agency.cases.values()
    email_world.agency.faults = Faults(mode=fault, remaining=1, delay=0.5)
    with pytest.raises(error) as info:
        adapter.send_message(message())
    assert "SMTP 127.0.0.1" in info.value.detail
    assert ("451" if error is TransientError else "550") in info.value.detail
    assert case.messages == []
    adapter.send_message(message())  # the retry, with the same key
    adapter.send_message(message())
    assert [m["text"] for m in case.messages] == ["Hierbij de gevraagde factuur."]


def test_a_reply_with_a_wrong_smtp_password_is_permanent(email_world):
    adapter = EmailAdapter(email_world.adapter_config(smtp_password="rotated"))
    with pytest.raises(PermanentError, match="smtp_password"):
        adapter.send_message(message())


def test_a_missing_reply_template_is_permanent_and_named(email_world):
    adapter = EmailAdapter(email_world.adapter_config(message_template_name="antwoord"))
    with pytest.raises(PermanentError, match=r"antwoord\.nl\.txt or antwoord\.en\.txt"):
        adapter.send_message(message())
    assert email_world.agency.orphans == []


# --------------------------------------------------------------------------------------- poll


def test_a_reply_becomes_a_status_with_its_time_references_and_text(adapter, email_world):
    email_world.send_to_hub(
        reply(
            email_world,
            body="Status: IN_BEHANDELING\nDossier: OE/2026/00042\n\nDe leverancier is gecontacteerd.\n\n"
            "Op 2 november schreef Loket:\n> Status: AFGESLOTEN\n> oude tekst\n",
            Date="Tue, 03 Nov 2026 11:15:00 +0100",
        )
    )
    result = adapter.poll(None, [])
    [update] = result.updates
    assert update.agency_status == "IN_BEHANDELING"  # not the quoted AFGESLOTEN
    assert update.case_reference == "LK-7F3K-9QX2"
    assert update.agency_reference == "OE/2026/00042"
    # the Message-ID plus a digest of what the agency wrote: a different mail under the same
    # Message-ID is not taken for a repeat
    assert update.update_id.startswith("<r1@ombudsman-energy.invalid> #")
    assert update.occurred_at == datetime(2026, 11, 3, 10, 15, tzinfo=UTC)
    assert update.occurred_at.tzinfo is not None
    assert "De leverancier is gecontacteerd." in update.message
    assert "oude tekst" not in update.message
    assert result.problems == ()


def test_a_reply_matched_only_by_in_reply_to_is_still_matched(adapter, email_world):
    email_world.send_to_hub(
        reply(
            email_world,
            subject="Antwoord",
            In_Reply_To="<LK-7F3K-9QX2.ombudsman-energy.1@loket.invalid>",
        )
    )
    [update] = adapter.poll(None, []).updates
    assert update.case_reference == "LK-7F3K-9QX2"


def test_a_reply_without_a_date_gets_the_time_it_was_read(adapter, email_world):
    raw = (
        b"From: klachten@ombudsman-energy.example\r\nSubject: [LK-7F3K-9QX2]\r\n"
        b"Message-ID: <nodate@x>\r\n\r\nStatus: ONTVANGEN\r\n"
    )
    email_world.send_to_hub(raw)
    [update] = adapter.poll(None, []).updates
    assert update.occurred_at == datetime(2026, 11, 2, tzinfo=UTC)


def test_broken_mime_is_kept_for_operators_and_the_other_replies_are_still_read(
    adapter,
    email_world,
):
    email_world.send_to_hub(reply(email_world, message_id="<a@x>", body="Status: ONTVANGEN\n"))
    email_world.send_to_hub(
        b"From: klachten@ombudsman-energy.example\r\n"
        b"Subject: Re: [LK-7F3K-9QX2] Nieuw dossier\r\n"
        b"Message-ID: <broken@x>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-used"\r\n\r\n'
        b"Status: AFGESLOTEN\r\nthe boundary never comes\r\n"
    )
    email_world.send_to_hub(reply(email_world, message_id="<b@x>", body="Status: IN_BEHANDELING\n"))
    result = adapter.poll(None, [])
    assert [u.update_id.split(" #")[0] for u in result.updates] == ["<a@x>", "<b@x>"]
    [problem] = result.problems
    assert isinstance(problem, InboundProblem)
    assert problem.source == "<broken@x>"
    assert "broken MIME" in problem.reason and "StartBoundaryNotFoundDefect" in problem.reason
    assert "the boundary never comes" in problem.excerpt


def test_a_reply_without_a_status_line_is_kept_for_operators(adapter, email_world):
    email_world.send_to_hub(reply(email_world, body="Bedankt, we kijken ernaar.\n"))
    result = adapter.poll(None, [])
    assert result.updates == ()
    [problem] = result.problems
    assert problem.reason == "no readable status line in the reply"
    assert "Bedankt, we kijken ernaar." in problem.excerpt


def test_a_reply_naming_no_case_is_kept_for_operators_never_dropped(adapter, email_world):
    email_world.send_to_hub(reply(email_world, subject="Out of office", message_id="<ooo@x>"))
    # only the agency's own reference: an update the hub parks until it can match it
    email_world.send_to_hub(
        reply(
            email_world,
            subject="Uw dossier",
            message_id="<own@x>",
            body="Status: ONTVANGEN\nDossier: OE/2026/00099\n",
        )
    )
    # a case reference the hub may not know: the hub keeps it as unmatched
    email_world.send_to_hub(reply(email_world, subject="Re: [LK-0000-0000]", message_id="<unk@x>"))
    result = adapter.poll(None, [])
    [problem] = result.problems
    assert (problem.source, problem.reason) == ("<ooo@x>", "no case reference")
    by_id = {u.update_id.split(" #")[0]: u for u in result.updates}
    assert set(by_id) == {"<own@x>", "<unk@x>"}
    assert (by_id["<own@x>"].case_reference, by_id["<own@x>"].agency_reference) == (
        None,
        "OE/2026/00099",
    )
    assert by_id["<unk@x>"].case_reference == "LK-0000-0000"


def test_the_same_reply_twice_in_the_mailbox_is_one_status(adapter, email_world):
    email_world.send_to_hub(reply(email_world))
    email_world.send_to_hub(reply(email_world))  # the agency's mail system sent it twice
    result = adapter.poll(None, [])
    # Both are returned (nothing vanishes unrecorded) under one id: the hub applies one and
    # counts the other as a duplicate.
    ids = [u.update_id for u in result.updates]
    assert len(ids) == 2 and len(set(ids)) == 1
    assert ids[0].startswith("<r1@ombudsman-energy.invalid> #")


def test_processed_mail_is_not_read_again_and_leaves_the_watched_folder(adapter, email_world):
    email_world.send_to_hub(reply(email_world))
    first = adapter.poll(None, [])
    assert len(first.updates) == 1
    second = adapter.poll(first.cursor, [])  # the hub committed `first`: now it is moved
    assert second.updates == () and second.problems == ()
    assert email_world.mailbox.count() == 0
    assert email_world.processed() == 1
    assert adapter.poll(second.cursor, []).updates == ()


def test_a_hub_that_crashed_before_committing_reads_the_reply_again(adapter, email_world):
    email_world.send_to_hub(reply(email_world))
    first = adapter.poll(None, [])
    # the hub died before saving `first.cursor`: it polls with the cursor it had (None)
    again = adapter.poll(None, [])
    assert [u.update_id for u in again.updates] == [u.update_id for u in first.updates]
    assert email_world.processed() == 0  # nothing was moved away before the hub had it


def test_unreadable_mail_is_flagged_and_moved_with_the_rest(adapter, email_world):
    email_world.send_to_hub(reply(email_world, body="geen status\n"))
    first = adapter.poll(None, [])
    assert len(first.problems) == 1
    adapter.poll(first.cursor, [])
    folder = email_world.dovecot.maildir(email_world.imap_user) / ".Processed"
    [name] = [p.name for sub in ("new", "cur") for p in (folder / sub).iterdir()]
    assert "F" in name.rpartition(":2,")[2]  # Maildir info flag F: \Flagged


def test_a_new_folder_generation_is_read_from_the_start(adapter, email_world):
    email_world.send_to_hub(reply(email_world))
    # a cursor from another UIDVALIDITY (the folder was recreated) must not move anything
    result = adapter.poll("1:999", [])
    assert len(result.updates) == 1
    assert email_world.processed() == 0


def test_status_keywords_read_a_reply_written_in_prose(email_world):
    adapter = EmailAdapter(
        email_world.adapter_config(
            status_pattern=None,
            status_keywords={"wordt behandeld": "IN_BEHANDELING", "is afgesloten": "AFGESLOTEN"},
        )
    )
    email_world.send_to_hub(reply(email_world, body="Uw dossier wordt behandeld door Jan.\n"))
    [update] = adapter.poll(None, []).updates
    assert update.agency_status == "IN_BEHANDELING"


def test_a_wrong_imap_password_fails_the_poll_permanently(email_world):
    adapter = EmailAdapter(email_world.adapter_config(imap_password="wrong"))
    with pytest.raises(PermanentError, match="imap_password"):
        adapter.poll(None, [])


def test_no_imap_server_listening_is_transient(email_world):
    adapter = EmailAdapter(email_world.adapter_config(imap_port=free_port()))
    with pytest.raises(TransientError):
        adapter.poll(None, [])


# ------------------------------------------------------------------------------------- config


def test_a_subject_without_the_case_reference_is_refused_at_load():
    from adapters.base import ConfigurationError

    with pytest.raises(ConfigurationError, match="case_reference"):
        EmailAdapter(
            {
                "smtp_host": "x",
                "from_address": "a@b.example",
                "to_address": "c@d.example",
                "imap_host": "x",
                "imap_username": "u",
                "imap_password": "p",
                "subject_template": "New case",
            }
        )


def test_quoted_history_is_cut_in_every_working_language():
    for header in (
        "On Mon, 2 Nov 2026 Loket wrote:",
        "Op ma 2 nov. 2026 schreef Loket:",
        "Le lun. 2 nov. 2026, Loket a écrit :",
        "Am Mo., 2. Nov. 2026 schrieb Loket:",
        "-----Original Message-----",
    ):
        assert agency_text(f"Status: AFGESLOTEN\nBedankt.\n\n{header}\nStatus: ONTVANGEN\n") == (
            "Status: AFGESLOTEN\nBedankt."
        )
