"""A consumer's reply reaches each SOAP agency through its own message operation.

Every SOAP agency's simulator runs on loopback as its own spyne service; the adapter is built from
the agency's real mapping file pointed at it, delivers a case rendered from the mapping's sample
document, then answers on it with an attachment, twice with the same idempotency key: the agency
records exactly one message. A reply on a case the agency does not know is its SOAP fault, which
the adapter reports as permanent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import loket_simulators as simulators
import pytest
from loket_simulators.soap_agency import SoapAgencySystem, SoapSimulatorServer

from adapters.base import MESSAGES, Attachment, Outbound, OutboundMessage, PermanentError
from adapters.soap import SoapAdapter
from hub.clock import FrozenClock
from hub.config import ROOT
from mappings.engine import AgencyMapping, load_agency
from mappings.samples import sample_documents

SOAP_AGENCIES = ("favv", "fagg", "fod-health", "ombudsman-insurance")
REFERENCE = "LK-R3PL-Y7QZ"
PDF = b"%PDF-1.4\n% the invoice the agency asked for\n" + bytes(range(256))


@dataclass
class Served:
    agency_id: str
    mapping: AgencyMapping
    server: SoapSimulatorServer
    adapter: SoapAdapter

    def messages(self, agency_reference: str) -> list[dict[str, Any]]:
        system = self.server.system
        with system.lock:
            return [dict(m) for m in system.cases[agency_reference].messages]


@pytest.fixture(params=SOAP_AGENCIES)
def served(request) -> Iterator[Served]:
    """The agency's simulator with WS-Security on, and an adapter from its real mapping file."""
    agency_id = request.param
    path = ROOT / "mappings" / "agencies" / f"{agency_id}.yaml"
    profile = load_agency(path, env={}).extra["simulator"].get("profile") or agency_id
    username, password = f"hub-{agency_id}", f"pw-{agency_id}"
    server = SoapSimulatorServer(
        SoapAgencySystem(
            profile,
            step_seconds=3600,
            username=username,
            password=password,
            clock=FrozenClock().now,
        )
    ).start()
    env = {
        simulators.env_var(agency_id, "URL"): server.url,
        simulators.env_var(agency_id, "USERNAME"): username,
        simulators.env_var(agency_id, "PASSWORD"): password,
    }
    mapping = load_agency(path, env=env)
    adapter = SoapAdapter({**mapping.adapter_config, "read_timeout": 5.0})
    try:
        yield Served(agency_id, mapping, server, adapter)
    finally:
        adapter.close()
        server.stop()


def deliver(served: Served) -> str:
    """Deliver the mapping's first sample case; the agency's own case id."""
    document = sample_documents(served.mapping)[0][1]
    document["case"]["reference"] = REFERENCE
    receipt = served.adapter.deliver(
        Outbound(
            idempotency_key=f"{REFERENCE}.{served.agency_id}.1",
            case_reference=REFERENCE,
            agency_id=served.agency_id,
            payload=served.mapping.render(document),
            language=document["case"]["language"],
        )
    )
    assert receipt.agency_reference in served.server.system.cases
    return receipt.agency_reference


def reply(served: Served, agency_reference: str, key: str, **changes: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "idempotency_key": key,
        "case_reference": REFERENCE,
        "agency_id": served.agency_id,
        "agency_reference": agency_reference,
        "text": "Hierbij de gevraagde factuur / voici la facture demandée.",
        "attachments": (Attachment("factuur-2026-118.pdf", "application/pdf", PDF),),
        **changes,
    }
    return OutboundMessage(**fields)


def test_the_mapping_declares_the_reply_operation(served):
    assert served.mapping.adapter_config["message_operation"]
    assert MESSAGES in served.adapter.capabilities


def test_a_reply_with_an_attachment_sent_twice_is_recorded_once(served):
    agency_reference = deliver(served)
    message = reply(served, agency_reference, f"{REFERENCE}.{served.agency_id}.msg1")

    first = served.adapter.send_message(message)
    again = served.adapter.send_message(message)

    assert first.duplicate is False and again.duplicate is True
    assert first.agency_reference == again.agency_reference == f"{agency_reference}/A1"
    recorded = served.messages(agency_reference)
    assert len(recorded) == 1
    assert recorded[0]["text"] == message.text
    assert recorded[0]["key"] == message.idempotency_key
    assert recorded[0]["attachments"] == [
        {"filename": "factuur-2026-118.pdf", "content_type": "application/pdf", "size": len(PDF)}
    ]


def test_a_second_reply_with_its_own_key_is_a_second_message(served):
    agency_reference = deliver(served)
    served.adapter.send_message(reply(served, agency_reference, f"{REFERENCE}.msg1"))
    second = served.adapter.send_message(
        reply(served, agency_reference, f"{REFERENCE}.msg2", text="Nog een foto.", attachments=())
    )
    assert second.agency_reference == f"{agency_reference}/A2" and not second.duplicate
    assert [m["text"] for m in served.messages(agency_reference)][1] == "Nog een foto."


def test_a_reply_on_a_case_the_agency_does_not_know_is_permanent(served):
    deliver(served)
    unknown = "NO-SUCH-CASE-404"
    with pytest.raises(PermanentError) as info:
        served.adapter.send_message(reply(served, unknown, f"{REFERENCE}.msg-unknown"))
    assert "Client.UnknownCase" in info.value.detail
    assert unknown in info.value.detail
    system = served.server.system
    with system.lock:
        assert all(not case.messages for case in system.cases.values())


def test_a_reply_naming_another_case_reference_is_refused(served):
    agency_reference = deliver(served)
    with pytest.raises(PermanentError) as info:
        served.adapter.send_message(
            reply(served, agency_reference, f"{REFERENCE}.msg-other", case_reference="LK-OTHR-CASE")
        )
    assert "Client.Validation" in info.value.detail and "LK-OTHR-CASE" in info.value.detail
    assert served.messages(agency_reference) == []
