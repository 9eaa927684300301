"""An agency connected by webhooks, end to end through the outbox: the worker POSTs the new case,
a retry after the receiver's outage delivers it once, and the consumer's withdrawal arrives as a
`case.withdrawn` event of its own, all verified by the receiver example."""

from __future__ import annotations

import re
import shutil

import pytest
from loket_simulators.webhook_receiver import Fault, ReceiverServer, WebhookReceiver

from adapters.webhook import new_secret
from hub import consumer
from hub.config import ROOT, Settings
from hub.services import Hub
from scheduler.worker import Worker
from tests.support.cases import TELECOM, assignment, delivery, file

SECRET = new_secret()


@pytest.fixture
def receiver():
    server = ReceiverServer(WebhookReceiver([SECRET])).start()
    yield server
    server.stop()


@pytest.fixture
def webhook_hub(db, sims, clock, tmp_path, monkeypatch, receiver):
    """The hub with the telecom ombudsman connected by webhooks instead of its REST API."""
    agencies = tmp_path / "agencies"
    shutil.copytree(ROOT / "mappings" / "agencies", agencies)
    path = agencies / f"{TELECOM}.yaml"
    text = path.read_text(encoding="utf-8")
    block = re.search(r"^adapter:\n(?:  .*\n)+", text, flags=re.M).group(0)
    path.write_text(
        text.replace(
            block,
            "adapter:\n"
            "  kind: webhook\n"
            '  url: "${LOKET_TELECOM_WEBHOOK_URL}"\n'
            '  secret: "${LOKET_TELECOM_WEBHOOK_SECRET}"\n'
            "  reference_field: reference\n",
        ).replace("simulator: {kind: rest}\n", ""),
        encoding="utf-8",
    )
    monkeypatch.setenv("LOKET_TELECOM_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("LOKET_TELECOM_WEBHOOK_SECRET", SECRET)
    hub = Hub.from_settings(
        Settings(database_url=db.url, agencies_dir=agencies), db=db, clock=clock
    )
    yield hub
    hub.directory.close()


def test_a_case_goes_out_as_a_signed_webhook_and_its_withdrawal_as_an_event(webhook_hub, receiver):
    hub = webhook_hub
    assert hub.directory[TELECOM].adapter_kind == "webhook"
    filed = file(hub)
    assert Worker(hub, "w").dispatch_once().delivered == 1
    [case] = receiver.receiver.cases.values()
    assert case.case_reference == filed.reference
    assert case.data["case"]["externalReference"] == filed.reference  # the mapping's payload
    line = assignment(hub, filed.reference)
    assert line.agency_reference == case.reference and line.status == "sent"
    consumer.withdraw(
        hub.db, filed.reference, filed.token, "Solved with the operator.", hub.clock.now()
    )
    assert Worker(hub, "w").dispatch_once().delivered == 1
    assert receiver.receiver.events[-1][1] == "case.withdrawn"
    assert receiver.receiver.events[-1][0].endswith(".withdrawn")
    assert case.withdrawn and "Solved with the operator." in case.messages[-1]["text"]
    assert sum(receiver.receiver.refusals.values()) == 0  # every event verified


def test_an_outage_at_the_receiver_is_retried_and_the_case_arrives_once(
    webhook_hub, receiver, clock
):
    hub = webhook_hub
    filed = file(hub)
    receiver.receiver.fault = Fault("error", 503)
    assert Worker(hub, "w").dispatch_once().delivered == 0
    row = delivery(hub, filed.reference)
    assert row.state == "retry" and "HTTP 503" in row.last_error
    clock.advance(seconds=(row.next_attempt_at - clock.now()).total_seconds() + 1)
    assert Worker(hub, "w").dispatch_once().delivered == 1
    assert len(receiver.receiver.cases) == 1
    assert [kind for _, kind in receiver.receiver.events] == ["case.created"]
