"""The webhook adapter passes the conformance kit against the receiver example, a real HTTP
server that verifies every signature (simulators/loket_simulators/webhook_receiver.py)."""

import pytest
from loket_simulators.webhook_receiver import ReceiverServer, WebhookReceiver

from adapters.testing import AdapterConformance
from adapters.webhook import WebhookAdapter, new_secret
from tests.support.peers_webhook import WebhookPeer

SECRET = new_secret()


@pytest.fixture
def receiver_server():
    server = ReceiverServer(WebhookReceiver([SECRET])).start()
    yield server
    server.stop()


class TestWebhookAdapterConformance(AdapterConformance):
    @pytest.fixture
    def adapter(self, receiver_server):
        adapter = WebhookAdapter(
            {
                "url": receiver_server.url,
                "secret": SECRET,
                "reference_field": "reference",
                "read_timeout": 0.5,
            }
        )
        yield adapter
        adapter.close()

    @pytest.fixture
    def broken_adapter(self, receiver_server):
        """Signs with a secret the agency does not hold."""
        adapter = WebhookAdapter({"url": receiver_server.url, "secret": new_secret()})
        yield adapter
        adapter.close()

    @pytest.fixture
    def peer(self, receiver_server):
        return WebhookPeer(receiver_server)

    @pytest.fixture
    def bad_config(self):
        return {"url": "not a url", "secret": "s3cret-not-whsec-conformance"}


class TestWebhookAdapterDuringRotationConformance(TestWebhookAdapterConformance):
    """Mid-rotation: the hub signs with a new secret and the old one; the agency still verifies
    with the old one only, and everything still works."""

    @pytest.fixture
    def adapter(self, receiver_server):
        adapter = WebhookAdapter(
            {
                "url": receiver_server.url,
                "secret": new_secret(),
                "previous_secrets": [SECRET],
                "reference_field": "reference",
                "read_timeout": 0.5,
            }
        )
        yield adapter
        adapter.close()
