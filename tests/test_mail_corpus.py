"""The far-side mail corpus through the real mailbox (Dovecot over IMAP) and the worker.

Each sample is mailed to the hub's mailbox on its own and polled; the table says the one outcome
it must end in. Out-of-office replies, delivery reports and strangers never change a status,
and every mail ends in exactly one counted outcome. CPython's own email test messages (from the
installed Python's test suite) are mailed too: none of their senders is the agency, so each
must end as an operator problem (or a duplicate of one), never a status and never a crash.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest
from sqlalchemy import select

from hub.config import Settings
from hub.models import StatusEvent
from hub.services import Hub
from scheduler.worker import Worker
from tests.support import mailcorpus
from tests.support.cases import assignment, file
from tests.support.env import peer_missing

AGENCY = "ombudsman-energy"
TABLE = {
    "agency-reply.eml": "applied",
    "html-only.eml": "applied",
    "future-date.eml": "applied",  # clamped to the hub's receive time, flagged
    "same-id-first.eml": "applied",
    "same-id-second.eml": "applied",  # same Message-ID, other words: not a duplicate
    "ooo-nl.eml": "note",  # quotes the consumer's "Status: AFGESLOTEN" without `>`
    "ooo-fr.eml": "note",
    "ooo-de.eml": "note",
    "ooo-en.eml": "note",
    "dsn-permanent.eml": "problem",
    "dsn-delayed.eml": "problem",
    "forged-from.eml": "problem",
    "status-only-below-marker.eml": "problem",
    "broken-mime.eml": "problem",
}


@pytest.fixture
def energy(email_world, monkeypatch):
    for key, value in email_world.env(AGENCY).items():
        monkeypatch.setenv(key, value)
    return email_world


@pytest.fixture
def hub(db, sims, clock, energy):
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.directory.close()


def _built(energy, case: str, when) -> dict[str, bytes]:
    """Samples built in code: a 20 MB reply, a UTF-16 reply, a repeat of a mail."""
    big = EmailMessage()
    big["From"], big["To"] = energy.agency_address, energy.hub_address
    big["Subject"], big["Message-ID"] = f"Re: [{case}] dossier", "<big-1@x>"
    big["Date"] = when
    big.set_content("Status: IN_BEHANDELING\nDossier: OE/2026/00001\nZie bijlage.\n")
    big.add_attachment(b"%PDF-1.4\n" + b"0" * 20_000_000, "application", "pdf", filename="x.pdf")
    utf16 = EmailMessage()
    utf16["From"], utf16["To"] = energy.agency_address, energy.hub_address
    utf16["Subject"], utf16["Message-ID"] = f"Re: [{case}] dossier", "<utf16-1@x>"
    utf16["Date"] = when
    utf16.set_content(
        "Status: IN_BEHANDELING\nDossier: OE/2026/00001\nÉén ding nog.\n",
        charset="utf-16",
        cte="base64",
    )
    return {
        name: m.as_bytes(policy=SMTP) for name, m in (("20mb-attachment", big), ("utf-16", utf16))
    }


def test_every_mail_ends_in_its_one_outcome_and_none_changes_a_status_it_may_not(
    hub, energy, clock
):
    filed = file(hub, domain="energy.billing")
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 1
    worker.poll_agency(AGENCY)  # the agency's own first reply: received, its reference
    assert assignment(hub, filed.reference).agency_reference == "OE/2026/00001"

    def fill(name: str):
        return lambda: mailcorpus.sample(
            name,
            case=filed.reference,
            agency=energy.agency_address,
            hub=energy.hub_address,
            date=clock.now(),
        )

    first = fill("agency-reply.eml")()  # kept: the very same mail is sent again at the end
    samples = [(name, fill(name), want) for name, want in TABLE.items()]
    samples[0] = ("agency-reply.eml", lambda: first, TABLE["agency-reply.eml"])
    samples += [
        (name, lambda name=name: _built(energy, filed.reference, clock.now())[name], "applied")
        for name in ("20mb-attachment", "utf-16")
    ]
    samples.append(("agency-reply.eml again", lambda: first, "duplicate"))
    cpython = mailcorpus.cpython_messages()
    if not cpython:
        peer_missing(f"this Python installation has no email test data ({mailcorpus.CPYTHON})")
    samples += [(p.name, lambda p=p: mailcorpus.wire(p.read_bytes()), "problem") for p in cpython]

    got = {}
    for name, make, _ in samples:
        energy.send_to_hub(make())
        stats = worker.poll_agency(AGENCY)
        got[name] = stats.counts if stats else None
        clock.advance(seconds=60)  # each mail written a minute after the one before
    wrong = {
        name: got[name]
        for name, _, want in samples
        if got[name] != {want: 1} and not (want == "problem" and got[name] == {"duplicate": 1})
    }
    assert wrong == {}, f"outcomes that differ from the table: {wrong}"
    assert sum(sum(c.values()) for c in got.values()) == len(samples)  # no mail without one

    a = assignment(hub, filed.reference)
    assert (a.status, a.outcome) == ("in_progress", None)  # no OOO, DSN or stranger closed it
    with hub.db.session(read_only=True) as s:
        statuses = set(
            s.scalars(
                select(StatusEvent.agency_status).where(
                    StatusEvent.case_id == a.case_id, StatusEvent.kind == "agency_status"
                )
            )
        )
        notes = list(
            s.scalars(
                select(StatusEvent.message).where(
                    StatusEvent.case_id == a.case_id, StatusEvent.kind == "agency_note"
                )
            )
        )
    assert statuses == {"ONTVANGEN", "IN_BEHANDELING"}
    assert sum("Automatic reply" in n for n in notes) == 4
    assert any("in the future" in n for n in notes) or any(
        "in the future" in (m or "") for m in _messages(hub, a.case_id)
    )
    # The other agencies' work goes on: the REST agency still takes and reports a case.
    other = file(hub)
    worker.dispatch_once()
    worker.poll_agency("ombudsman-telecom")
    assert assignment(hub, other.reference).status == "received"


def _messages(hub, case_id):
    with hub.db.session(read_only=True) as s:
        return list(s.scalars(select(StatusEvent.message).where(StatusEvent.case_id == case_id)))


def test_a_bounce_of_the_case_mail_makes_the_delivery_a_dead_letter(hub, energy, clock):
    """The agency's mail server refused the case mail (RFC 3464, 5.1.1): the delivery is a dead
    letter with the server's words, the line undeliverable, never 'sent'."""
    from hub.models import Delivery

    filed = file(hub, domain="energy.billing")
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    with hub.db.session(read_only=True) as s:
        key = s.scalars(select(Delivery.idempotency_key)).one()
    ours = hub.directory.adapter(AGENCY).message_id(key)
    raw = mailcorpus.sample(
        "dsn-permanent.eml",
        case=filed.reference,
        agency=energy.agency_address,
        hub=energy.hub_address,
        date=clock.now(),
    ).replace(f"<{filed.reference}.ombudsman-energy.1@loket.example>".encode(), ours.encode())
    assert ours.encode() in raw
    energy.send_to_hub(raw)
    # The simulated agency's own first reply is in the mailbox too; the refusal is about the
    # delivery itself and is applied first, so that reply cannot make the line "received".
    stats = worker.poll_agency(AGENCY)
    assert stats.counts == {"applied": 1, "not_allowed": 1}
    with hub.db.session(read_only=True) as s:
        d = s.scalars(select(Delivery)).one()
    assert (d.state, d.last_error_kind) == ("dead", "refused")
    assert "User unknown" in d.last_error
    assert assignment(hub, filed.reference).status == "undeliverable"
