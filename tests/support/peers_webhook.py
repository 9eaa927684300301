"""The webhook receiver example as a conformance-kit peer (see adapters/testing/peer.py)."""

from __future__ import annotations

from loket_simulators.webhook_receiver import Fault, ReceiverServer

from adapters.testing import FAULTS, Peer
from adapters.testing.peer import ATTACHMENTS, MESSAGES


class WebhookPeer(Peer):
    capabilities = frozenset({FAULTS, MESSAGES, ATTACHMENTS})

    def __init__(self, server: ReceiverServer):
        self.receiver = server.receiver

    def case_count(self) -> int:
        return len(self.receiver.cases)

    def payload(self, case_reference: str):
        return {"reference": case_reference, "kind": "complaint", "description": "Conformance"}

    def advance(self, agency_reference: str) -> str:
        raise NotImplementedError(
            "a webhook agency reports its statuses through the agency API; it is never polled"
        )

    def messages(self, agency_reference: str):
        case = self.receiver.cases[agency_reference]
        return [(m["text"], [a["filename"] for a in m["attachments"]]) for m in case.messages]

    def attachments(self, agency_reference: str):
        return self.receiver.attachments(agency_reference)

    def fail_next(self, kind: str) -> None:
        faults = {
            "transient": Fault("error", 503),
            "permanent": Fault("error", 422),
            "timeout": Fault("timeout", 503, delay=1.0),
        }
        with self.receiver.lock:
            self.receiver.fault = faults[kind]
