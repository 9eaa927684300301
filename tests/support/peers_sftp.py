"""SFTP peers for tests: a real OpenSSH sshd on loopback (or the simulator's asyncssh server),
the simulated agency's batch on its data folder, and a TCP fault proxy in front.

Faults that are real for SFTP, made by the proxy for exactly the next connection:
- "transient": the connection is reset before the server says anything (a network drop);
- "timeout": the connection is accepted and nothing is ever said (a hung server);
- "permanent": the connection goes to a second port of the same server whose sessions are
  read-only, so the write is refused with "permission denied": for sshd a second ListenAddress
  with `internal-sftp -R`; for the asyncssh demo server a second asyncssh server on the same
  folder and keys whose SFTP handler refuses every change (`ReadOnlySftp`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from loket_simulators.sftp_agency import (
    AgencyBatch,
    AsyncsshServer,
    Keys,
    OpenSshServer,
    ensure_keys,
    profiles,
)

from adapters.testing import FAULTS, Peer
from adapters.testing.peer import MESSAGES
from hub.clock import FrozenClock
from hub.config import ROOT, Settings
from hub.services import Hub
from tests.support.env import free_port, peer_missing

SSHD_MISSING = "sshd not installed: apt-get install openssh-server"


class FaultProxy:
    """A TCP forwarder on loopback that can spoil the next connection (see the module doc)."""

    def __init__(self, upstream_port: int, read_only_port: int | None = None):
        self.upstream_port, self.read_only_port = upstream_port, read_only_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._next: str | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def fail_next(self, mode: str) -> None:
        if mode == "permanent" and self.read_only_port is None:
            raise ValueError("this proxy has no read-only upstream")
        with self._lock:
            self._next = mode

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                mode, self._next = self._next, None
                self._sockets.append(client)
            if mode == "transient":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()
                continue
            if mode == "timeout":
                continue  # accepted, never answered; closed at stop()
            port = self.read_only_port if mode == "permanent" else self.upstream_port
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
        self._thread.join(timeout=5)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        # both ends go: the other direction's recv() returns at once, and no descriptor
        # outlives the connection (the conformance kit counts them after close())
        for s in (source, target):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@dataclass
class SftpServer:
    """A running SFTP server with the agency's batch on its data folder."""

    root: Path
    data: Path
    keys: Keys
    port: int
    batch: AgencyBatch
    clock: FrozenClock
    username: str
    stop: Callable[[], None]
    sshd: OpenSshServer | None = None
    read_only_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inbox(self) -> Path:
        return self.data / "inbox"

    @property
    def outbox(self) -> Path:
        return self.data / "outbox"

    def env(self, agency_id: str = "economic-inspection") -> dict[str, str]:
        """The variables that point that agency's mapping file at this server."""
        prefix = "LOKET_" + agency_id.upper().replace("-", "_")
        return {
            f"{prefix}_PORT": str(self.port),
            f"{prefix}_USERNAME": self.username,
            f"{prefix}_PRIVATE_KEY": f"@file:{self.keys.client_key}",
            f"{prefix}_HOST_KEY": self.keys.host_public.read_text().strip(),
        }

    def config(self, **overrides: Any) -> dict[str, Any]:
        """An adapter configuration for this server (keys by @file:, folders relative)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.username,
            "private_key": f"@file:{self.keys.client_key}",
            "host_key": f"@file:{self.keys.host_public}",
            "inbox_dir": "inbox",
            "outbox_dir": "outbox",
            "format": self.batch.fmt,
            "connect_timeout": 5,
            "timeout": 10,
            **overrides,
        }


def start_sshd(
    root: Path,
    *,
    fmt: str = "xml",
    clock: FrozenClock | None = None,
    layout: dict[str, Any] | None = None,
    schema: Path | None = None,
    step_seconds: float = 60,
    profile: str = "economic-inspection",
    delimiter: str = ";",
) -> SftpServer:
    if not OpenSshServer.installed():
        peer_missing(SSHD_MISSING)
    clock = clock or FrozenClock(datetime.fromisoformat("2026-11-02T09:00:00+00:00"))
    keys = ensure_keys(root)
    data = root / "data"
    batch = AgencyBatch(
        data,
        profiles()[profile],
        fmt=fmt,
        step_seconds=step_seconds,
        clock=clock.now,
        layout=layout,
        schema=schema,
        delimiter=delimiter,
    )
    port, read_only = free_port(), free_port()
    sshd = OpenSshServer(root, data, keys, port, read_only_port=read_only).start()
    return SftpServer(
        root, data, keys, port, batch, clock, "root", sshd.stop, sshd=sshd, read_only_port=read_only
    )


def read_only_sftp() -> type:
    """An asyncssh SFTP handler that reads like the real one and refuses every change with
    "permission denied", as `internal-sftp -R` does."""
    import asyncssh

    def refuse(*_: Any, **__: Any) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only session")

    writes = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND

    class ReadOnlySftp(asyncssh.SFTPServer):
        def open(self, path, pflags, attrs):
            if pflags & writes:
                refuse()
            return super().open(path, pflags, attrs)

        def open56(self, path, desired_access, flags, attrs):
            if desired_access & (asyncssh.ACE4_WRITE_DATA | asyncssh.ACE4_APPEND_DATA):
                refuse()
            return super().open56(path, desired_access, flags, attrs)

        mkdir = rmdir = remove = rename = posix_rename = refuse
        setstat = fsetstat = lsetstat = symlink = link = write = refuse

    return ReadOnlySftp


def start_asyncssh(
    root: Path, *, fmt: str = "xml", server_class: Any = None, read_only: bool = False
) -> SftpServer:
    """The demo's asyncssh server on the agency's folder; with `read_only`, a second one on the
    same folder and keys whose sessions cannot change anything (for FaultProxy "permanent")."""
    clock = FrozenClock(datetime.fromisoformat("2026-11-02T09:00:00+00:00"))
    keys = ensure_keys(root)
    data = root / "data"
    batch = AgencyBatch(
        data, profiles()["economic-inspection"], fmt=fmt, step_seconds=60, clock=clock.now
    )
    port = free_port()
    server = AsyncsshServer(data, keys, port, server_class=server_class).start()
    if not read_only:
        return SftpServer(root, data, keys, port, batch, clock, "loket", server.stop)
    read_only_port = free_port()
    try:
        locked = AsyncsshServer(data, keys, read_only_port, server_class=read_only_sftp()).start()
    except BaseException:
        server.stop()
        raise

    def stop() -> None:
        locked.stop()
        server.stop()

    return SftpServer(
        root, data, keys, port, batch, clock, "loket", stop, read_only_port=read_only_port
    )


class SftpPeer(Peer):
    capabilities = frozenset({FAULTS, MESSAGES})

    def __init__(self, server: SftpServer, proxy: FaultProxy | None = None):
        self.server, self.proxy = server, proxy
        if proxy is None:
            self.capabilities = frozenset({MESSAGES})

    def case_count(self) -> int:
        return self.server.batch.case_count()

    def payload(self, case_reference: str):
        return {
            "referentie_loket": case_reference,
            "taal": "NL",
            "soort": "MELDING",
            "domein": "ecommerce.fake_webshop",
            "omschrijving": "Conformance test case",
        }

    def advance(self, agency_reference: str) -> str:
        return self.server.batch.step_case(agency_reference)

    def fail_next(self, kind: str) -> None:
        assert self.proxy is not None
        self.proxy.fail_next(kind)

    def messages(self, agency_reference: str) -> list[tuple[str, list[str]]]:
        """What the agency received on the case; its batch runs first (it reads the inbox on
        its own schedule otherwise, as the real one does at night)."""
        self.server.batch.run_once()
        return self.server.batch.messages_for(agency_reference)


# ------------------------------------------------------------- the Economic Inspection's folder

INSPECTION_STEP = 3600  # the inspection's batch moves a case one status per hour in these tests
INSPECTION_LAYOUT = {
    "root": "statussen",
    "record": "status",
    "agency_reference": "dossier",
    "case_reference": "referentie_loket",
    "status": "code",
    "time": "tijdstip",
    "message": "toelichting",
}


@pytest.fixture
def inspection(tmp_path, clock, monkeypatch):
    """sshd serving the Economic Inspection's folder (its mapping's XML layout and XSD); the
    environment points the mapping at it before a hub is built (`inspection_hub`)."""
    server = start_sshd(
        tmp_path / "sftp",
        clock=clock,
        layout=INSPECTION_LAYOUT,
        schema=ROOT / "contracts" / "agencies" / "economic-inspection" / "case.xsd",
        step_seconds=INSPECTION_STEP,
    )
    for key, value in server.env("economic-inspection").items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


@pytest.fixture
def inspection_hub(inspection, db, sims, clock):
    """A hub whose Economic Inspection is the `inspection` peer (a module that needs it names
    it its `hub`)."""
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.directory.close()
