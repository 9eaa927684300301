"""The SOAP adapter passes the conformance kit against the live spyne simulator of FAVV."""

import pytest

from adapters.testing import AdapterConformance

pytest_plugins = ["tests.peers_soap"]


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


class TestSoapAdapterPerCaseConformance(TestSoapAdapterConformance):
    """The same adapter for an agency that only answers per case (GeefStatus)."""

    @pytest.fixture
    def adapter(self, make_soap_adapter):
        return make_soap_adapter(per_case=True, read_timeout=3.0)  # peers_soap.READ_TIMEOUT

    @pytest.fixture
    def broken_adapter(self, make_soap_adapter):
        return make_soap_adapter(per_case=True, endpoint="http://127.0.0.1:9/meldpunt")
