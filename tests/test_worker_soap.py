"""The worker in-process against FAVV's SOAP simulator on loopback, with the test's frozen clock.

A food case is routed to FAVV, filed over SOAP with WS-Security, and followed through FAVV's own
statuses to resolved. Runs on SQLite and PostgreSQL (the `db` fixture).
"""

import shutil
from collections.abc import Iterator

import pytest
from loket_simulators.soap_agency import SoapAgencySystem, SoapSimulatorServer
from sqlalchemy import select

from adapters.base import POLL
from hub import attachments, consumer
from hub.config import ROOT, Settings
from hub.models import AuditEntry, Delivery, DeliveryAttempt, DeliveryState, PollCursor
from hub.services import Hub
from scheduler.worker import Worker
from tests.support.cases import assignment, delivery, distinct_statuses, file, timeline

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


@pytest.fixture
def favv_without_status(favv_sim, db, clock, tmp_path) -> Iterator[Hub]:
    """A hub whose FAVV mapping names neither a status nor a message operation: a WSDL that
    offers neither, as some agencies' do."""
    agencies = tmp_path / "agencies"
    shutil.copytree(ROOT / "mappings" / "agencies", agencies)
    favv = agencies / "favv.yaml"
    text = favv.read_text()
    for line in (
        "  status_operation: GeefWijzigingen\n",
        "  message_operation: DienAanvullingIn\n",
    ):
        assert line in text
        text = text.replace(line, "")
    favv.write_text(text)
    h = Hub.from_settings(Settings(database_url=db.url, agencies_dir=agencies), db=db, clock=clock)
    yield h
    h.close()


def test_an_agency_whose_adapter_cannot_poll_gets_no_poll_job_and_no_error_each_tick(
    favv_without_status, favv_sim, clock
):
    hub = favv_without_status
    adapter = hub.directory.adapter("favv")
    assert POLL not in adapter.capabilities and POLL in adapter.declared_capabilities
    worker = Worker(hub, "w1")
    jobs = {job.id for job in worker.build_scheduler().get_jobs()}
    assert "poll:favv" not in jobs
    assert "poll:ombudsman-telecom" in jobs  # the others are polled as before
    filed = file(hub, **FOOD_REPORT)
    assert worker.dispatch_once().delivered == 1  # delivering does not need polling
    for _ in range(3):
        assert worker.poll_agency("favv") is None
        clock.advance(seconds=60)
    with hub.db.session(read_only=True) as s:
        assert s.get(PollCursor, "favv") is None  # no lease taken, no error recorded
    assert assignment(hub, filed.reference).status == "sent"


def test_a_reply_to_an_agency_whose_adapter_takes_none_goes_to_operators_unsent(
    favv_without_status, favv_sim, clock
):
    hub = favv_without_status
    filed = file(hub, **FOOD_REPORT)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    a = assignment(hub, filed.reference)
    consumer.reply(hub.db, filed.reference, filed.token, a.id, "Voici l'addition.", [], clock.now())
    assert worker.dispatch_once().dead == 1
    with hub.db.session(read_only=True) as s:
        d = s.scalars(select(Delivery).where(Delivery.kind == "message")).one()
    assert d.state == "dead" and d.last_error_kind == "permanent"
    assert "'messages'" in d.last_error and "an operator must forward it" in d.last_error
    [sim_case] = favv_sim.system.cases.values()
    assert sim_case.messages == []
