"""The REST adapter passes the conformance kit against the live REST simulator."""

import pytest
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles

from adapters.rest import RestAdapter
from adapters.testing import AdapterConformance
from hub.clock import FrozenClock
from tests.conftest import agency_schema
from tests.peers import RestPeer


@pytest.fixture
def rest_server():
    system = AgencySystem(
        profiles()["ombudsman-telecom"],
        step_seconds=3600,
        api_key="conformance-key",
        schema=agency_schema("ombudsman-telecom"),
        clock=FrozenClock().now,
    )
    server = SimulatorServer(system).start()
    yield server
    server.stop()


class TestRestAdapterConformance(AdapterConformance):
    @pytest.fixture
    def adapter(self, rest_server):
        adapter = RestAdapter(
            {
                "base_url": rest_server.url,
                "api_key": "conformance-key",
                "changes_path": "/changes",
                "read_timeout": 0.5,
                "message_path": "/cases/{agency_reference}/messages",
            }
        )
        yield adapter
        adapter.close()

    @pytest.fixture
    def broken_adapter(self, rest_server):
        adapter = RestAdapter(
            {"base_url": rest_server.url, "api_key": "wrong-key", "changes_path": "/changes"}
        )
        yield adapter
        adapter.close()

    @pytest.fixture
    def peer(self, rest_server):
        return RestPeer(rest_server)


class TestRestAdapterPerCaseConformance(TestRestAdapterConformance):
    """The same adapter, configured for an agency that only answers per case."""

    @pytest.fixture
    def adapter(self, rest_server):
        adapter = RestAdapter(
            {
                "base_url": rest_server.url,
                "api_key": "conformance-key",
                "status_path": "/cases/{agency_reference}",
                "read_timeout": 0.5,
                "message_path": "/cases/{agency_reference}/messages",
            }
        )
        yield adapter
        adapter.close()
