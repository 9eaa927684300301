"""A real HTTP peer on loopback that plays an agency's system, friendly or hostile.

Routes are registered per test (`peer.get("/changes", json=...)`), every request is recorded
(`peer.calls`), and a route may answer with a function that writes raw bytes to the socket: a
body trickling one byte a second, 50 MB streamed, an HTML page, broken UTF-8, an entity bomb.
Real sockets, no mocks: what the adapters' HTTP client does on the wire is what is tested.
"""

from __future__ import annotations

import json as jsonlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass
class Call:
    method: str
    url: str  # path and query, as sent
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query))


Writer = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Route:
    method: str
    path: str
    query: Mapping[str, str] | None
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    writer: Writer | None = None


class HttpPeer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: list[Route] = []
        self.calls: list[Call] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = Call(self.command, self.path, dict(self.headers.items()), body)
                peer.calls.append(call)
                route = peer.match(call)
                if route is None:
                    route = Route(self.command, call.path, None, 404, b'{"error": "no route"}')
                try:
                    if route.writer is not None:
                        route.writer(self)
                        self.close_connection = True
                        return
                    self.send_response(route.status)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def match(self, call: Call) -> Route | None:
        for route in self.routes:
            same = route.method == call.method and route.path == call.path
            if same and (route.query is None or dict(route.query) == call.params):
                return route
        return None

    def add(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | str = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        writer: Writer | None = None,
        replace: bool = False,
    ) -> None:
        if replace:
            self.routes = [r for r in self.routes if (r.method, r.path) != (method, path)]
        sent = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        data = body.encode() if isinstance(body, str) else body
        self.routes.append(Route(method, path, query, status, data, sent, writer))

    def get(self, path: str, **kwargs: Any) -> None:
        self.add("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> None:
        self.add("POST", path, **kwargs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    peer = HttpPeer()
    yield peer
    peer.close()


def self_signed_tls(tmp_path: Any) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (trusted by
    nobody: what an agency's misconfigured or intercepted endpoint looks like)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


# ------------------------------------------------------------------------- hostile answers


def slow_body(total: int = 120, per_second: int = 1, status: int = 200) -> Writer:
    """A well-formed start, then the body one byte a second (each read times out never)."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(total):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(1 / per_second)

    return write


def slow_headers(count: int = 120) -> Writer:
    """The status line, then header bytes one a second: the body never starts."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        handler.wfile.flush()
        for _ in range(count):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(1)

    return write


def huge_body(size: int = 50 * 1024 * 1024, announce: bool = False) -> Writer:
    """`size` bytes streamed in chunks (chunked encoding unless the length is announced)."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if announce:
            handler.send_header("Content-Length", str(size))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"[" * 65536
        sent = 0
        while sent < size:
            if announce:
                handler.wfile.write(chunk)
            else:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        if not announce:
            handler.wfile.write(b"0\r\n\r\n")

    return write


def fixed(body: bytes, content_type: str, status: int = 200) -> Writer:
    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return write


HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Maintenance</h1>Back at 14:00</body></html>"
BROKEN_UTF8 = b'{"changes": [], "next": "\xff\xfe\xc3", "has_more": false}'
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol9;</soap:Body></soap:Envelope>
"""
