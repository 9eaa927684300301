"""The REST adapter passes the conformance kit against the live REST simulator."""

import pytest
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles

from adapters.rest import RestAdapter
from adapters.testing import AdapterConformance
from hub.clock import FrozenClock
from tests.support.env import agency_schema
from tests.support.peers import RestPeer


def start_rest_server(schema):
    system = AgencySystem(
        profiles()["ombudsman-telecom"],
        step_seconds=3600,
        api_key="conformance-key",
        schema=schema,
        clock=FrozenClock().now,
    )
    return SimulatorServer(system).start()


@pytest.fixture
def rest_server():
    """The telecom ombudsman's simulator, holding what it receives against its JSON Schema."""
    server = start_rest_server(agency_schema("ombudsman-telecom"))
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

    @pytest.fixture
    def bad_config(self):
        return {"base_url": "not a url", "api_key": "s3cret-conformance-key", "max_pages": 0}

    @pytest.fixture
    def paged_adapter(self, rest_server):
        """Two changes a page (`?limit=2`), one page a poll."""
        adapter = RestAdapter(
            {
                "base_url": rest_server.url,
                "api_key": "conformance-key",
                "changes_path": "/changes",
                "page_size_param": "limit",
                "page_size": 2,
                "max_pages": 1,
            }
        )
        yield adapter
        adapter.close()


class TestRestAdapterPerCaseConformance(TestRestAdapterConformance):
    """The same adapter, configured for an agency that only answers per case and takes the
    case's documents in the payload (a schema-less agency: the telecom schema has no field for
    them)."""

    @pytest.fixture
    def rest_server(self):
        server = start_rest_server(None)
        yield server
        server.stop()

    @pytest.fixture
    def adapter(self, rest_server):
        adapter = RestAdapter(
            {
                "base_url": rest_server.url,
                "api_key": "conformance-key",
                "status_path": "/cases/{agency_reference}",
                "read_timeout": 0.5,
                "message_path": "/cases/{agency_reference}/messages",
                "attachments_field": "attachments",
            }
        )
        yield adapter
        adapter.close()
