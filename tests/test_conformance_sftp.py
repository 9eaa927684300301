"""The SFTP adapter passes the conformance kit against a real OpenSSH sshd, and against the
pure-Python asyncssh server that `loket run` uses for the demo agency."""

import pytest
from loket_simulators.sftp_agency import ensure_keys

from adapters.sftp import SftpAdapter
from adapters.testing import AdapterConformance
from tests.support.peers_sftp import FaultProxy, SftpPeer, start_asyncssh, start_sshd


@pytest.fixture
def sshd_server(tmp_path):
    server = start_sshd(tmp_path / "sftp")
    yield server
    server.stop()


@pytest.fixture
def proxy(sshd_server):
    p = FaultProxy(sshd_server.port, sshd_server.read_only_port)
    yield p
    p.stop()


class TestSftpAdapterConformance(AdapterConformance):
    @pytest.fixture
    def adapter(self, sshd_server, proxy):
        return SftpAdapter(sshd_server.config(port=proxy.port, connect_timeout=2))

    @pytest.fixture
    def broken_adapter(self, sshd_server, tmp_path):
        """Pins a host key the server does not have: refused before anything is sent."""
        other = ensure_keys(tmp_path / "other")
        return SftpAdapter(sshd_server.config(host_key=other.host_public.read_text()))

    @pytest.fixture
    def peer(self, sshd_server, proxy):
        return SftpPeer(sshd_server, proxy)

    @pytest.fixture
    def bad_config(self, sshd_server):
        return sshd_server.config(host_key="ssh-ed25519 not-a-key", password="s3cret-sftp")

    @pytest.fixture
    def paged_adapter(self, sshd_server, proxy):
        """Reads two status files a poll."""
        return SftpAdapter(sshd_server.config(port=proxy.port, connect_timeout=2, max_files=2))


@pytest.fixture
def asyncssh_server(tmp_path):
    server = start_asyncssh(tmp_path / "sftp", read_only=True)
    yield server
    server.stop()


@pytest.fixture
def asyncssh_proxy(asyncssh_server):
    p = FaultProxy(asyncssh_server.port, asyncssh_server.read_only_port)
    yield p
    p.stop()


class TestSftpAdapterOnTheDemoServerConformance(AdapterConformance):
    """The demo's pure-Python server behind the same fault proxy; "permanent" faults go to a
    read-only asyncssh server on the same folder."""

    @pytest.fixture
    def adapter(self, asyncssh_server, asyncssh_proxy):
        return SftpAdapter(asyncssh_server.config(port=asyncssh_proxy.port, connect_timeout=2))

    @pytest.fixture
    def broken_adapter(self, asyncssh_server, tmp_path):
        """A client key the server does not authorise: the login is refused."""
        other = ensure_keys(tmp_path / "other")
        return SftpAdapter(asyncssh_server.config(private_key=other.client_key.read_text()))

    @pytest.fixture
    def peer(self, asyncssh_server, asyncssh_proxy):
        return SftpPeer(asyncssh_server, asyncssh_proxy)

    @pytest.fixture
    def bad_config(self, asyncssh_server):
        return asyncssh_server.config(format="yaml", password="s3cret-sftp")

    @pytest.fixture
    def paged_adapter(self, asyncssh_server, asyncssh_proxy):
        """Reads two status files a poll."""
        return SftpAdapter(
            asyncssh_server.config(port=asyncssh_proxy.port, connect_timeout=2, max_files=2)
        )
