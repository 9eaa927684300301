"""The SOAP adapter passes the conformance kit against the live spyne simulator of FAVV."""

import pytest

from adapters.testing import AdapterConformance

pytest_plugins = ["tests.support.peers_soap"]
READ_TIMEOUT = 3.0  # peers_soap.READ_TIMEOUT (importing it would keep pytest from rewriting it)


class TestSoapAdapterConformance(AdapterConformance):
    """Configured exactly as mappings/agencies/favv.yaml: changes since a sequence number."""

    @pytest.fixture
    def adapter(self, soap_adapter):
        return soap_adapter

    @pytest.fixture
    def broken_adapter(self, make_soap_adapter):
        return make_soap_adapter(password="not-the-password")

    @pytest.fixture
    def peer(self, soap_peer):
        return soap_peer

    @pytest.fixture
    def bad_config(self, soap_config):
        return soap_config(status_mode="both", page_size=0)

    @pytest.fixture
    def paged_adapter(self, make_soap_adapter):
        """Two changes a page (`Maximum`), one page a poll."""
        return make_soap_adapter(page_size=2, max_pages=1, read_timeout=READ_TIMEOUT)


class TestSoapAdapterPerCaseConformance(TestSoapAdapterConformance):
    """The same adapter for an agency that only answers per case (GeefStatus)."""

    @pytest.fixture
    def adapter(self, make_soap_adapter):
        return make_soap_adapter(per_case=True, read_timeout=READ_TIMEOUT)

    @pytest.fixture
    def broken_adapter(self, make_soap_adapter):
        return make_soap_adapter(per_case=True, endpoint="http://127.0.0.1:9/meldpunt")


class TestSoapAdapterWithoutStatusOrMessagesConformance(TestSoapAdapterConformance):
    """For an agency whose WSDL offers neither a status nor a message operation: the poll and
    reply tests skip naming the capability, and both are refused as permanent."""

    @pytest.fixture
    def adapter(self, make_soap_adapter):
        return make_soap_adapter(
            status_operation=None, message_operation=None, message=None, read_timeout=READ_TIMEOUT
        )
