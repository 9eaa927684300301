"""The worker in-process against FAVV's SOAP simulator on loopback, with the test's frozen clock.

A food case is routed to FAVV, filed over SOAP with WS-Security, and followed through FAVV's own
statuses to resolved. Runs on SQLite and PostgreSQL (the `db` fixture).
"""

from collections.abc import Iterator

import pytest
from loket_simulators.soap_agency import SoapAgencySystem, SoapSimulatorServer
from sqlalchemy import select

from hub import attachments, consumer
from hub.config import Settings
from hub.models import AuditEntry, DeliveryAttempt, DeliveryState, PollCursor
from hub.services import Hub
from scheduler.worker import Worker
from tests.test_worker import assignment, delivery, distinct_statuses, file, timeline

FOOD_REPORT = {
    "kind": "report",
    "domain": "food.poisoning",
    "language": "fr",
    "description": "Toute la famille malade après un repas au restaurant le 14 octobre.",
    "incident_date": "2026-10-14",
    "amount": 38.50,  # what the meal cost
    "trader": {"name": "Chez Max SPRL", "enterprise_number": "0403.170.701"},
}
USER, PASSWORD = "favv-hub", "favv-test-password"


@pytest.fixture
def favv_sim(clock, monkeypatch) -> Iterator[SoapSimulatorServer]:
    """FAVV's SOAP simulator sharing the test's clock; the environment points the mapping at it."""
    system = SoapAgencySystem(step_seconds=60, username=USER, password=PASSWORD, clock=clock.now)
    server = SoapSimulatorServer(system).start()
    monkeypatch.setenv("LOKET_FAVV_URL", server.url)
    monkeypatch.setenv("LOKET_FAVV_USERNAME", USER)
    monkeypatch.setenv("LOKET_FAVV_PASSWORD", PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def soap_hub(favv_sim, db, clock) -> Iterator[Hub]:
    """A hub built after the simulator is up, so FAVV's mapping reads its URL and credentials."""
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.close()


def test_a_food_case_is_filed_at_favv_over_soap_with_its_reference(soap_hub, favv_sim):
    filed = file(soap_hub, **FOOD_REPORT)
    stats = Worker(soap_hub, "w1").dispatch_once()
    assert stats.delivered == 1
    a = assignment(soap_hub, filed.reference)
    assert (a.agency_id, a.status) == ("favv", "sent")
    [sim_case] = favv_sim.system.cases.values()
    assert a.agency_reference == sim_case.id == "FAVV-2026-00001"
    assert sim_case.idempotency_key == f"{filed.reference}.favv.1"
    assert sim_case.payload["LoketReferentie"] == filed.reference
    assert (sim_case.payload["Soort"], sim_case.payload["Categorie"]) == (
        "MELDING",
        "VOEDSELVERGIFTIGING",
    )
    assert sim_case.payload["Taal"] == "FR" and sim_case.payload["DatumVoorval"] == "2026-10-14"
    assert sim_case.payload["Inrichting"]["Ondernemingsnummer"] == "0403170701"
    assert favv_sim.system.stats()["auth_failures"] == 0
    d = delivery(soap_hub, filed.reference)
    assert d.state == DeliveryState.DONE and d.attempts == 1
    with soap_hub.db.session(read_only=True) as s:
        receipt = s.scalars(
            select(AuditEntry).where(
                AuditEntry.case_id == a.case_id, AuditEntry.action == "delivery.receipt"
            )
        ).one()
        assert receipt.data["agency_reference"] == sim_case.id


def test_polling_moves_the_favv_case_through_its_statuses_to_resolved(soap_hub, favv_sim, clock):
    filed = file(soap_hub, **FOOD_REPORT)
    worker = Worker(soap_hub, "w1")
    worker.dispatch_once()
    worker.poll_agency("favv")
    assert assignment(soap_hub, filed.reference).status == "received"
    clock.advance(seconds=60)
    worker.poll_agency("favv")
    assert assignment(soap_hub, filed.reference).status == "in_progress"
    for _ in range(2):
        clock.advance(seconds=60)
        worker.poll_agency("favv")
    a = assignment(soap_hub, filed.reference)
    assert (a.status, a.outcome, a.agency_status) == ("resolved", "solved", "AFGESLOTEN")
    events = timeline(soap_hub, filed.reference)
    assert distinct_statuses(events) == ["queued", "sent", "received", "in_progress", "resolved"]
    assert [e.agency_status for e in events if e.actor == "agency"] == [
        "NIEUW",
        "IN_ONDERZOEK",
        "INSPECTIE_GEPLAND",
        "AFGESLOTEN",
    ]
    with soap_hub.db.session(read_only=True) as s:
        assert s.get(PollCursor, "favv").cursor == "4"


def test_a_soap_server_fault_retries_later_with_the_same_key_and_files_once(
    soap_hub, favv_sim, clock
):
    filed = file(soap_hub, **FOOD_REPORT)
    favv_sim.system.fail_next("server_fault")
    worker = Worker(soap_hub, "w1")
    stats = worker.dispatch_once()
    assert (stats.delivered, stats.retried) == (0, 1)
    d = delivery(soap_hub, filed.reference)
    assert d.state == DeliveryState.RETRY and d.last_error_kind == "transient"
    assert "Server.Unavailable" in d.last_error
    clock.advance(seconds=10)
    assert worker.dispatch_once().delivered == 1
    assert len(favv_sim.system.cases) == 1
    with soap_hub.db.session(read_only=True) as s:
        outcomes = s.scalars(select(DeliveryAttempt.outcome).order_by(DeliveryAttempt.id)).all()
    assert outcomes == ["transient", "ok"]


def test_rotated_credentials_dead_letter_with_a_message_that_names_them(soap_hub, favv_sim):
    favv_sim.system.password = "rotated-by-the-agency"
    filed = file(soap_hub, **FOOD_REPORT)
    assert Worker(soap_hub, "w1").dispatch_once().dead == 1
    d = delivery(soap_hub, filed.reference)
    assert d.state == DeliveryState.DEAD and d.attempts == 1 and d.payload is not None
    assert "Client.Authentication" in d.last_error and "check the credentials" in d.last_error
    assert PASSWORD not in d.last_error
    assert assignment(soap_hub, filed.reference).status == "undeliverable"
    assert favv_sim.system.cases == {}


def test_a_consumers_answer_reaches_favvs_case_over_soap_once(soap_hub, favv_sim, clock):
    filed = file(soap_hub, **FOOD_REPORT)
    worker = Worker(soap_hub, "w1")
    worker.dispatch_once()
    a = assignment(soap_hub, filed.reference)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    upload = attachments.check("addition restaurant.pdf", pdf)
    consumer.reply(
        soap_hub.db, filed.reference, filed.token, a.id, "Voici l'addition.", [upload], clock.now()
    )
    assert worker.dispatch_once().delivered == 1
    assert worker.dispatch_once().delivered == 0  # sent once: nothing left to send
    [sim_case] = favv_sim.system.cases.values()
    [got] = sim_case.messages
    assert got["text"] == "Voici l'addition."
    assert got["key"].startswith(f"{filed.reference}.favv.msg")
    assert [(f["filename"], f["size"]) for f in got["attachments"]] == [(upload.filename, len(pdf))]
    messages = [e.message for e in timeline(soap_hub, filed.reference)]
    assert any("Your message was forwarded" in m for m in messages)
