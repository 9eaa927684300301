"""The email adapter passes the conformance kit against real aiosmtpd and Dovecot servers."""

import pytest

from adapters.email import EmailAdapter
from adapters.testing import AdapterConformance
from tests.support.peers_email import EmailPeer


class TestEmailAdapterConformance(AdapterConformance):
    @pytest.fixture
    def adapter(self, email_world):
        adapter = EmailAdapter(email_world.adapter_config(smtp_timeout=2))
        yield adapter
        adapter.close()

    @pytest.fixture
    def broken_adapter(self, email_world):
        adapter = EmailAdapter(
            email_world.adapter_config(smtp_password="wrong", imap_password="wrong")
        )
        yield adapter
        adapter.close()

    @pytest.fixture
    def peer(self, email_world):
        return EmailPeer(email_world)

    @pytest.fixture
    def bad_config(self, email_world):
        return email_world.adapter_config(smtp_ssl=True, smtp_starttls=True, imap_port="imap")

    @pytest.fixture
    def paged_adapter(self, email_world):
        """Reads two replies a poll."""
        adapter = EmailAdapter(email_world.adapter_config(smtp_timeout=2, max_messages=2))
        yield adapter
        adapter.close()
