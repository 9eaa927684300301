"""The SOAP simulator as a conformance-kit peer, and the fixtures that start it on loopback.

Use from a test module with `pytest_plugins = ["tests.support.peers_soap"]` and take what you need as
fixtures (importing from this module first would keep pytest from rewriting its asserts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loket_simulators.soap_agency import SoapAgencySystem, SoapSimulatorServer

from adapters.soap import SoapAdapter
from adapters.testing import FAULTS, Peer
from adapters.testing.peer import MESSAGES
from hub.clock import FrozenClock
from hub.config import ROOT
from mappings.engine import load_agency

FAVV_USER = "favv-test"
FAVV_PASSWORD = "s3cret-favv-pw"
# The test adapters' read timeout: short enough for a stall test, long enough that an answer on a
# loaded two-core machine (CI runs the whole suite there) is never taken for one.
READ_TIMEOUT = 3.0


class SoapPeer(Peer):
    capabilities = frozenset({FAULTS, MESSAGES})

    def __init__(self, server: SoapSimulatorServer):
        self.server = server
        self.system = server.system

    def case_count(self) -> int:
        return len(self.system.cases)

    def payload(self, case_reference: str) -> dict[str, Any]:
        return {
            "LoketReferentie": case_reference,
            "Soort": "MELDING",
            "Categorie": "HYGIENE",
            "Taal": "NL",
            "Omschrijving": "Conformance test: muizen in de keuken",
            "Melder": {"Naam": "Test", "Email": "test@example.be"},
        }

    def advance(self, agency_reference: str) -> str:
        return self.system.step_case(agency_reference)

    def messages(self, agency_reference: str) -> list[tuple[str, list[str]]]:
        """The replies the agency recorded on a case (DienAanvullingIn), in arrival order."""
        with self.system.lock:
            case = self.system.cases[agency_reference]
            return [(m["text"], [a["filename"] for a in m["attachments"]]) for m in case.messages]

    def fail_next(self, kind: str) -> None:
        modes = {"transient": "server_fault", "permanent": "client_fault", "timeout": "timeout"}
        # a stall twice the adapters' read timeout below: long enough to be one on a busy machine
        self.system.fail_next(modes[kind], delay=2 * READ_TIMEOUT)


def favv_env(server: SoapSimulatorServer, password: str = FAVV_PASSWORD) -> dict[str, str]:
    return {
        "LOKET_FAVV_URL": server.url,
        "LOKET_FAVV_USERNAME": FAVV_USER,
        "LOKET_FAVV_PASSWORD": password,
    }


def favv_config(server: SoapSimulatorServer, **overrides: Any) -> dict[str, Any]:
    """FAVV's adapter configuration from its real mapping file, pointed at `server`."""
    password = overrides.pop("password", FAVV_PASSWORD)
    mapping = load_agency(ROOT / "mappings" / "agencies" / "favv.yaml", favv_env(server, password))
    return {**mapping.adapter_config, **overrides}


PER_CASE = {
    "status_mode": "per_case",
    "status_operation": "GeefStatus",
    "reference_parameter": "DossierNummer",
    "status": {"status": "Status", "time": "Tijdstip", "message": "Toelichting"},
}


@pytest.fixture
def soap_server() -> Iterator[SoapSimulatorServer]:
    """FAVV's SOAP simulator with WS-Security on, a frozen clock and long steps."""
    system = SoapAgencySystem(
        step_seconds=3600, username=FAVV_USER, password=FAVV_PASSWORD, clock=FrozenClock().now
    )
    server = SoapSimulatorServer(system).start()
    yield server
    server.stop()


@pytest.fixture
def make_soap_adapter(soap_server) -> Iterator[Callable[..., SoapAdapter]]:
    """Build SOAP adapters configured as FAVV's mapping says, with `overrides`; `per_case=True`
    polls with GeefStatus instead of GeefWijzigingen. Closed at teardown."""
    made: list[SoapAdapter] = []

    def make(per_case: bool = False, **overrides: Any) -> SoapAdapter:
        config = favv_config(soap_server, **{**(PER_CASE if per_case else {}), **overrides})
        made.append(SoapAdapter(config))
        return made[-1]

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def soap_config(soap_server) -> Callable[..., dict[str, Any]]:
    """FAVV's adapter configuration pointed at the simulator, with overrides (unchecked)."""
    return lambda **overrides: favv_config(soap_server, **overrides)


@pytest.fixture
def soap_adapter(make_soap_adapter) -> SoapAdapter:
    return make_soap_adapter(read_timeout=READ_TIMEOUT)


@pytest.fixture
def soap_peer(soap_server) -> SoapPeer:
    return SoapPeer(soap_server)
