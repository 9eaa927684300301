"""The worker in-process against the Economic Inspection over SFTP: a real OpenSSH sshd on
loopback, the agency's batch run by the test with the test's clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from adapters.fileformats import read_case
from hub.models import InboundProblem, PollCursor
from scheduler.worker import Worker
from tests.support.cases import INSPECTION, assignment, distinct_statuses, file, timeline
from tests.support.peers_sftp import INSPECTION_STEP as STEP

AGENCY = INSPECTION


@pytest.fixture
def hub(inspection_hub):
    return inspection_hub


def report(hub):
    return file(
        hub,
        kind="report",
        domain="ecommerce.fake_webshop",
        language="nl",
        description="De webshop prijsbreker.example levert niet en antwoordt niet.",
        trader={
            "name": "Prijsbreker BV",
            "enterprise_number": "0403.170.701",
            "website": "https://prijsbreker.example",
        },
    )


def test_an_ecommerce_report_reaches_the_inspection_and_ends_as_market_intelligence(
    hub, inspection, clock
):
    filed = report(hub)
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 1
    a = assignment(hub, filed.reference)
    name = f"{filed.reference}.{AGENCY}.1.xml"
    assert (a.agency_id, a.status, a.agency_reference) == (AGENCY, "sent", name)
    assert a.agency_reference_provisional  # the file name stands in until the batch numbers it
    case_file = read_case((inspection.inbox / name).read_bytes(), "xml")
    assert case_file["referentie_loket"] == filed.reference
    assert case_file["soort"] == "MELDING" and case_file["onderneming"]["kbo"] == "0403170701"
    assert "telefoon" not in str(case_file)  # only the mapped fields leave the hub

    run = inspection.batch.run_once()  # the nightly batch: validates against the XSD, numbers
    assert run.picked_up == [name] and run.rejected == []
    worker.poll_agency(AGENCY)
    a = assignment(hub, filed.reference)
    assert (a.status, a.agency_reference) == ("received", "EI-2026-000001")
    assert not a.agency_reference_provisional

    for _ in range(2):
        clock.advance(seconds=STEP)
        inspection.batch.run_once()
        worker.poll_agency(AGENCY)
    a = assignment(hub, filed.reference)
    assert (a.status, a.agency_status) == ("closed_no_individual_follow_up", "CLOSED_INTELLIGENCE")
    assert a.agency_reference == "EI-2026-000001"
    assert distinct_statuses(timeline(hub, filed.reference)) == [
        "queued",
        "sent",
        "received",
        "in_progress",
        "closed_no_individual_follow_up",
    ]
    worker.poll_agency(AGENCY)  # the last status file is moved once its update is saved
    assert [n for n in os.listdir(inspection.outbox) if n.endswith(".xml")] == []
    assert len(os.listdir(inspection.outbox / "processed")) == 3


def test_a_redelivery_after_a_lost_receipt_creates_no_second_case_at_the_inspection(
    hub, inspection, clock
):
    from hub import outbox

    filed = report(hub)
    [claimed] = outbox.claim(
        hub.db, worker_id="lost", now=clock.now(), lease_seconds=5, limit=5, agency_id=AGENCY
    )
    mapping = hub.directory[AGENCY]
    from adapters.base import Outbound

    hub.directory.adapter(AGENCY).deliver(
        Outbound(
            claimed.idempotency_key,
            claimed.case_reference,
            AGENCY,
            mapping.render(claimed.document),
        )
    )
    inspection.batch.run_once()  # the agency already picked it up before we retried
    clock.advance(seconds=6)
    assert Worker(hub, "w2").dispatch_once().delivered == 1
    inspection.batch.run_once()
    assert inspection.batch.case_count() == 1 and inspection.batch.replays == 0
    assert assignment(hub, filed.reference).agency_reference == claimed.idempotency_key + ".xml"


def test_an_unreadable_status_file_is_kept_for_operators_and_moved_to_failed(
    hub, inspection, clock
):
    (inspection.outbox / "statussen-kapot.xml").write_bytes(b"<statussen><status>")
    worker = Worker(hub, "w1")
    worker.poll_agency(AGENCY)
    with hub.db.session(read_only=True) as s:
        [problem] = s.scalars(select(InboundProblem)).all()
        assert problem.agency_id == AGENCY and "not well-formed XML" in problem.reason
        assert s.get(PollCursor, AGENCY).last_error is None
    worker.poll_agency(AGENCY)
    assert sorted(os.listdir(inspection.outbox / "failed")) == [
        "statussen-kapot.xml",
        "statussen-kapot.xml.reason.txt",
    ]


def test_a_consumer_reply_reaches_the_inspection_as_a_message_file_with_its_document(
    hub, inspection, clock
):
    """Not dead-lettered: the SFTP adapter carries messages; the batch attaches it to the case."""
    from hub import attachments, consumer

    filed = report(hub)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    inspection.batch.run_once()
    worker.poll_agency(AGENCY)
    a = assignment(hub, filed.reference)
    upload = attachments.check("factuur oktober.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n")
    message_id = consumer.reply(
        hub.db, filed.reference, filed.token, a.id, "Hierbij de factuur.", [upload], clock.now()
    )
    assert worker.dispatch_once().delivered == 1
    name = f"{filed.reference}.{AGENCY}.msg{message_id}.xml"
    assert (inspection.inbox / name).exists()
    run = inspection.batch.run_once()
    assert run.messages == [name] and run.rejected == []
    assert inspection.batch.messages_for("EI-2026-000001") == [
        ("Hierbij de factuur.", ["factuur oktober.pdf"])
    ]
    messages = [e.message for e in timeline(hub, filed.reference)]
    assert any("Your message was forwarded" in m for m in messages)
    assert not any("could not be forwarded" in m for m in messages)


def test_an_english_report_reaches_the_inspection_in_its_working_language(hub, inspection, clock):
    """The inspection works in nl, fr and de (its XSD refuses EN): an English report goes out in
    its first language, is accepted, and its reference comes back."""
    filed = file(
        hub,
        kind="report",
        domain="ecommerce.fake_webshop",
        language="en",
        description="The webshop cheapdeals.example took my money and never delivered.",
        trader={"name": "Cheap Deals BV", "website": "https://cheapdeals.example"},
    )
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 1
    name = f"{filed.reference}.{AGENCY}.1.xml"
    assert read_case((inspection.inbox / name).read_bytes(), "xml")["taal"] == "NL"
    run = inspection.batch.run_once()
    assert run.picked_up == [name] and run.rejected == []
    worker.poll_agency(AGENCY)
    a = assignment(hub, filed.reference)
    assert (a.status, a.agency_reference) == ("received", "EI-2026-000001")


def test_a_case_file_the_inspection_refuses_is_a_dead_letter_never_delivered(
    hub, inspection, clock
):
    """The batch moves a file it cannot take to inbox/rejected with a reason file: the hub reads
    it, dead-letters the delivery with the agency's reason and tells the consumer the hub is
    sorting it out; resent after a fix, it arrives."""
    from hub import outbox
    from hub.models import Delivery

    filed = report(hub)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    name = f"{filed.reference}.{AGENCY}.1.xml"
    good = (inspection.inbox / name).read_bytes()
    (inspection.inbox / name).write_bytes(good.replace(b"<taal>NL</taal>", b"<taal>EN</taal>"))
    run = inspection.batch.run_once()
    assert run.rejected == [name]
    stats = worker.poll_agency(AGENCY)
    assert stats.counts == {"applied": 1}
    a = assignment(hub, filed.reference)
    assert a.status == "undeliverable"
    with hub.db.session(read_only=True) as s:
        d = s.scalars(select(Delivery)).one()
        assert d.state == "dead" and d.last_error_kind == "refused"
        assert "taal" in d.last_error  # the agency's own reason, from its reason file
    events = timeline(hub, filed.reference)
    assert "refused the case" in events[-1].message
    # The next poll moves the recorded refusal aside: it is not applied a second time.
    assert worker.poll_agency(AGENCY).counts == {}
    assert sorted(os.listdir(inspection.inbox / "rejected" / "read")) == [
        name,
        f"{name}.reason.txt",
    ]
    # An operator resends; this time the file is as the hub wrote it, and the batch takes it.
    outbox.resend(hub.db, now=clock.now(), operator="op", agency_id=AGENCY)
    assert worker.dispatch_once().delivered == 1
    assert inspection.batch.run_once().picked_up == [name]
    worker.poll_agency(AGENCY)
    assert assignment(hub, filed.reference).status == "received"
