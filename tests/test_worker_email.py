"""The worker in-process against the email agency: the Ombudsman for Energy's mailbox, for real.

A case goes out by SMTP (aiosmtpd plays the agency's mail server), the simulated agency answers
with status mails that land in the hub's mailbox (Dovecot), and the worker reads them over IMAP.
Runs on SQLite and PostgreSQL (the `db` fixture).
"""

from email.message import EmailMessage

import pytest
from sqlalchemy import select

from adapters.base import Outbound
from hub import attachments, consumer, inbound
from hub.config import Settings
from hub.models import Delivery, InboundProblem, PollCursor, UnmatchedUpdate
from hub.services import Hub
from scheduler.worker import Worker
from tests.support.cases import assignment, distinct_statuses, file, timeline

AGENCY = "ombudsman-energy"


@pytest.fixture
def energy(email_world, monkeypatch):
    """The email agency's servers, with the mapping's ${LOKET_OMBUDSMAN_ENERGY_*} pointing at them."""
    for key, value in email_world.env(AGENCY).items():
        monkeypatch.setenv(key, value)
    return email_world


@pytest.fixture
def hub(db, sims, clock, energy):
    """Built after `energy` has set the environment the mapping files are read with."""
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.directory.close()


def test_an_energy_case_goes_received_in_progress_resolved_by_mail(hub, energy, clock):
    filed = file(hub, domain="energy.billing")
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 1
    a = assignment(hub, filed.reference)
    assert (a.agency_id, a.status, a.agency_reference) == (AGENCY, "sent", filed.reference)
    # the agency got one mail, in the working language (the consumer wrote in French)
    [case] = energy.agency.cases.values()
    assert case.case_reference == filed.reference
    assert case.language == "fr" and "Le Guichet des consommateurs" in case.body
    assert case.fields["consumer.name"] == "Anne Dubois"
    assert case.fields["type"] == "klacht"

    worker.poll_agency(AGENCY)
    assert assignment(hub, filed.reference).status == "received"
    for _ in range(2):
        clock.advance(seconds=60)
        energy.agency.advance()  # the agency's clock ticks: its next status mail goes out
        worker.poll_agency(AGENCY)

    a = assignment(hub, filed.reference)
    assert (a.status, a.outcome, a.agency_status) == ("resolved", "solved", "AFGESLOTEN")
    # the receipt carried our reference; the agency's first reply named its own, which replaced it
    assert a.agency_reference == "OE/2026/00001"
    events = timeline(hub, filed.reference)
    assert distinct_statuses(events) == ["queued", "sent", "received", "in_progress", "resolved"]
    agency_events = [e for e in events if e.actor == "agency"]
    assert [e.agency_status for e in agency_events] == ["ONTVANGEN", "IN_BEHANDELING", "AFGESLOTEN"]
    # the reply text is on the timeline, without the quoted history
    assert "Nous avons bien reçu votre dossier." in agency_events[0].message
    assert "le fournisseur crédite la facture contestée" in agency_events[2].message
    # the lines meant for the hub (status, reference) are not shown as the agency's words
    assert not any("Status:" in e.message or "Dossier:" in e.message for e in agency_events)
    assert not any("> " in e.message for e in agency_events)
    # each status carries the time the agency mailed it (the Date header), not when we read it
    step = energy.agency.step
    assert [e.occurred_at.replace(tzinfo=None) for e in agency_events] == [
        (case.created + n * step).replace(tzinfo=None) for n in range(3)
    ]


def test_a_repeat_delivery_makes_no_second_case_and_a_reread_reply_no_second_status(
    hub, energy, clock
):
    filed = file(hub, domain="energy.contract")
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    # the hub crashed after the agency accepted the mail: a second worker sends it again
    adapter = hub.directory.adapter(AGENCY)
    mapping = hub.directory[AGENCY]
    with hub.db.session(read_only=True) as s:
        d = s.scalars(select(Delivery)).one()
        key, payload = d.idempotency_key, d.payload
    adapter.deliver(Outbound(key, filed.reference, AGENCY, payload, "fr"))
    assert len(energy.agency.cases) == 1 and energy.agency.replays == 1

    # a poll whose cursor was never committed is read again: still one status
    stale_cursor = None
    for _ in range(2):
        result = adapter.poll(stale_cursor, [])
        inbound.apply_poll(hub.db, mapping, result, clock.now())
        with hub.db.session() as s:  # as if that commit were lost: back to the old cursor
            s.get(PollCursor, AGENCY).cursor = stale_cursor
    events = [e for e in timeline(hub, filed.reference) if e.actor == "agency"]
    assert [e.agency_status for e in events] == ["ONTVANGEN"]
    assert energy.processed() == 0  # never moved before a committed cursor named it


def test_unreadable_and_unmatched_replies_reach_the_operators(hub, energy, clock):
    def mail(subject, body, message_id):
        msg = EmailMessage()
        msg["From"], msg["To"] = energy.agency_address, energy.hub_address
        msg["Subject"], msg["Message-ID"] = subject, message_id
        msg.set_content(body)
        return msg

    energy.send_to_hub(mail("Re: [LK-0000-0000] dossier", "Status: ONTVANGEN\n", "<unk@x>"))
    energy.send_to_hub(mail("Afwezig", "Ik ben afwezig tot maandag.\n", "<ooo@x>"))
    stats = Worker(hub, "w1").poll_agency(AGENCY)
    assert stats.counts == {"unmatched": 1, "problem": 1}
    with hub.db.session(read_only=True) as s:
        [unmatched] = s.scalars(select(UnmatchedUpdate)).all()
        assert (unmatched.case_reference, unmatched.agency_status) == ("LK-0000-0000", "ONTVANGEN")
        [problem] = s.scalars(select(InboundProblem)).all()
        assert (problem.agency_id, problem.source) == (AGENCY, "<ooo@x>")
        assert "Ik ben afwezig" in problem.excerpt


def test_a_consumers_answer_reaches_the_agencys_case_by_mail_once(hub, energy, clock):
    filed = file(hub, domain="energy.billing")
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    worker.poll_agency(AGENCY)  # the agency's first reply names its own reference
    a = assignment(hub, filed.reference)
    assert a.agency_reference == "OE/2026/00001"

    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    upload = attachments.check("facture octobre.pdf", pdf)
    consumer.reply(
        hub.db, filed.reference, filed.token, a.id, "Voici la facture.", [upload], clock.now()
    )
    assert worker.dispatch_once().delivered == 1
    assert worker.dispatch_once().delivered == 0  # sent once: nothing left to send

    [case] = energy.agency.cases.values()
    [got] = case.messages
    assert got["text"] == "Voici la facture."
    assert [(name, kind) for name, kind, _ in got["attachments"]] == [
        (upload.filename, "application/pdf")
    ]
    assert got["attachments"][0][2] == pdf
    # in the case's thread, in the agency's working language for this case (French)
    assert got["in_reply_to"] == case.message_id
    assert got["subject"] == (
        f"Re: [{filed.reference}] Réponse du consommateur (votre dossier OE/2026/00001)"
    )
    assert got["language"] == "fr" and "Le Guichet des consommateurs" in got["body"]
    assert len(energy.agency.cases) == 1
    messages = [e.message for e in timeline(hub, filed.reference)]
    assert any("Your message was forwarded" in m for m in messages)
