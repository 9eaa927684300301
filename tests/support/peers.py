"""Peers of the built-in simulators for the conformance kit (see adapters/testing/peer.py)."""

from __future__ import annotations

import base64

from loket_simulators.rest_agency import Faults, SimulatorServer

from adapters.testing import FAULTS, Peer
from adapters.testing.peer import ATTACHMENTS, MESSAGES


class RestPeer(Peer):
    capabilities = frozenset({FAULTS, MESSAGES, ATTACHMENTS})

    def __init__(self, server: SimulatorServer):
        self.server = server
        self.system = server.system

    def case_count(self) -> int:
        return len(self.system.cases)

    def payload(self, case_reference: str):
        return {
            "externalReference": case_reference,
            "requestType": "KLACHT",
            "language": "NL",
            "subject": "FACTURATIE",
            "description": "Conformance test case",
            "complainant": {"name": "Test", "email": "test@example.be"},
        }

    def advance(self, agency_reference: str) -> str:
        return self.system.step_case(agency_reference)

    def messages(self, agency_reference: str):
        case = self.system.cases[agency_reference]
        return [(m["text"], [a["filename"] for a in m["attachments"]]) for m in case.messages]

    def attachments(self, agency_reference: str):
        """What arrived in the payload's `attachments` (the conformance adapters' field)."""
        payload = self.system.cases[agency_reference].payload
        return [
            (a["filename"], base64.b64decode(a["data"])) for a in payload.get("attachments", [])
        ]

    def fail_next(self, kind: str) -> None:
        faults = {
            "transient": Faults(mode="error", status=503, remaining=1),
            "permanent": Faults(mode="error", status=422, remaining=1),
            "timeout": Faults(mode="timeout", remaining=1, delay=1.0),
        }
        with self.system.lock:
            self.system.faults = faults[kind]
