"""What the request/answer transports (REST, SOAP) send with: one urllib3 pool per adapter.

An agency's system is a peer we do not control. A read timeout alone bounds each read, not the
answer: a peer sending one byte a second holds a call for as long as it likes, and a peer sending
50 MB gets them read into memory. So every call here has

- a **total deadline** (`deadline_seconds`): connecting, waiting for the headers and reading the
  whole body must end by it. The body is read in chunks with the socket's timeout set to the time
  left, and the call stops the moment the deadline passes: `TransientError` (the agency is slow
  today; a retry with the same idempotency key is safe).
- a **size cap** (`max_response_bytes`): a `Content-Length` above it is refused before reading,
  and reading stops as soon as the body passes it (a compressed body is capped before and after
  decompressing). Over the cap is a `PermanentError` whose message names the cap and the setting
  to raise: the same question gets the same oversized answer next time, so retrying only repeats
  the cost, and a person has to decide (raise the cap, or ask the agency why a status answer is
  that big). Its `raw["scope"]` is `"limits"`, so per-case polls fail as a whole rather than once
  per case.

The pool is kept for the adapter's life (connections are reused, as with a `requests.Session`)
and released by `close()`. Nothing is read from the environment (no proxies, no netrc, no
`REQUESTS_CA_BUNDLE`): an agency's address is exactly what its mapping says. TLS certificates
are verified unless the mapping turns `verify_tls` off. Redirects are not followed (an agency's
API does not move without telling us) and nothing is retried here: retrying is the outbox's job.

Failures are classified once, here: a passed deadline, a refused or dropped connection, a TLS
handshake failure are transient; a certificate that does not verify is permanent (an operator
must fix the trust, not wait). HTTP status codes are the caller's to classify: they mean
different things to REST and to SOAP.
"""

from __future__ import annotations

import contextlib
import heapq
import json as jsonlib
import socket
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from marshmallow import Schema, fields, validate
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    HTTPError,
    LocationValueError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3Timeout,
)
from urllib3.util import parse_url

from adapters.base import PermanentError, TransientError
from adapters.fileformats import FormatError, parse_json

DEFAULT_DEADLINE_SECONDS = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
CHUNK = 64 * 1024
MAX_KNOWN_URLS = 1024  # URLs whose pool and request target a client remembers
USER_AGENT = "Loket/0.1 (+hub)"


def deadline_field() -> fields.Float:
    """`deadline_seconds` of an HTTP transport's config schema (REST and SOAP declare it)."""
    return fields.Float(
        load_default=DEFAULT_DEADLINE_SECONDS,
        validate=validate.Range(min=0.1, max=600),
        metadata={"doc": "whole-call deadline: connect, headers and the entire body (seconds)"},
    )


def max_response_bytes_field() -> fields.Integer:
    """`max_response_bytes` of an HTTP transport's config schema (REST and SOAP declare it)."""
    return fields.Integer(
        load_default=DEFAULT_MAX_RESPONSE_BYTES,
        validate=validate.Range(min=1024),
        metadata={"doc": "largest answer read from the agency; a larger one is refused"},
    )


class HttpSettings(Schema):
    """The settings every HTTP transport's config has (REST, SOAP, webhook); their schemas
    derive from this one, and `client_for` builds the pool from them."""

    connect_timeout = fields.Float(load_default=3.05, validate=validate.Range(min=0.01))
    read_timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.01))
    verify_tls = fields.Boolean(load_default=True)
    deadline_seconds = deadline_field()
    max_response_bytes = max_response_bytes_field()


def client_for(config: Mapping[str, Any], **kwargs: Any) -> HttpClient:
    """The agency's connection pool with the HTTP settings of its (loaded) config."""
    return HttpClient(
        deadline_seconds=config["deadline_seconds"],
        max_response_bytes=config["max_response_bytes"],
        connect_timeout=config["connect_timeout"],
        read_timeout=config["read_timeout"],
        verify_tls=config["verify_tls"],
        **kwargs,
    )


# The deadline of the call this thread is making, for the watchdog of the connection it uses.
_call = threading.local()


class _Watchdog:
    """One thread for every connection's deadline: a call registers its socket and deadline
    before sending and withdraws them when the headers are in; if the deadline passes first, the
    socket is shut down. A timer thread per call would cost a thread start per delivery (the
    hot path of a fast agency); this costs a lock and a heap push."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Any]] = []
        self._live: dict[int, Any] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, conn: Any) -> int:
        with self._cond:
            self._seq += 1
            token = self._seq
            self._live[token] = conn
            heapq.heappush(self._heap, (deadline, token, conn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="http-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == token:
                self._cond.notify()  # an earlier deadline than the one the thread waits for
            return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._live.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # withdrawn: the call finished in time
                if not self._heap:
                    self._cond.wait(30.0)
                    continue
                deadline, token, conn = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.pop(token, None)
            conn._expire(token)


_WATCHDOG = _Watchdog()


class _Watched:
    """A connection whose sending and wait for the status line and headers end at the call's
    deadline: the shared watchdog shuts the socket down then, so a peer that stops reading our
    request or trickles its headers cannot hold the call (the body is bounded by the chunked read
    in `HttpClient._read`; connecting by `connect_timeout`)."""

    sock: socket.socket | None
    _watch: int | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_call, "deadline", None)
        if deadline is not None:
            self._watch = _WATCHDOG.arm(deadline, self)
        try:
            return super().request(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            self._stop_watchdog()
            raise

    def getresponse(self) -> Any:
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        if self._watch is not None:
            _WATCHDOG.disarm(self._watch)
            self._watch = None

    def _expire(self, token: int) -> None:
        sock = self.sock
        if sock is not None and self._watch == token:  # not a later call on the same connection
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole (within the cap) before the caller sees it."""

    method: str
    path: str
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    def text(self, limit: int | None = None) -> str:
        """The body as text for messages and the evidence log (undecodable bytes replaced)."""
        data = self.body if limit is None else self.body[:limit]
        return data.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON, read as untrusted (`parse_json`: UTF-8 only, nesting bounded).

        The agency said yes but we cannot read it (an HTML page from a gateway, broken UTF-8,
        nesting deeper than any real answer): transient, a retry with the same key is safe."""
        try:
            return parse_json(self.body)
        except FormatError as exc:
            kind = _content_kind(self.headers.get("Content-Type", ""), self.body)
            raise TransientError(
                f"{self.method} {self.path}: HTTP {self.status} but the body is not JSON we can "
                f"read ({kind}: {exc}): {self.text(200)!r}",
                raw={"status": self.status, "body": self.text(2000)},
            ) from None


class HttpClient:
    """A connection pool for one agency with the limits of its mapping. Thread-safe (urllib3
    pools are), so a polling thread pool shares it."""

    def __init__(
        self,
        *,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        connect_timeout: float = 3.05,
        read_timeout: float | None = None,
        verify_tls: bool = True,
        headers: Mapping[str, str] | None = None,
        maxsize: int = 16,
        setting_prefix: str = "adapter",
    ):
        self.deadline_seconds = deadline_seconds
        self.max_response_bytes = max_response_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.setting_prefix = setting_prefix
        self.headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        self.maxsize = maxsize
        self.cert_reqs = "CERT_REQUIRED" if verify_tls else "CERT_NONE"
        # One urllib3 pool per host the agency's URLs name (its base URL, a token URL), kept
        # for the client's life, and each URL's pool and request target, so a call does not
        # parse its URL and look up its pool again (urllib3's PoolManager does both per call).
        self._pools: dict[tuple[str, str, int | None], HTTPConnectionPool] = {}
        self._targets: dict[str, tuple[HTTPConnectionPool, str]] = {}
        self._lock = threading.Lock()

    def _target(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """The pool for the URL's host and the URL's request target (path and query)."""
        known = self._targets.get(url)
        if known is not None:
            return known
        u = parse_url(url)
        scheme = (u.scheme or "http").lower()
        if scheme not in ("http", "https") or not u.host:
            raise LocationValueError(f"not an http(s) URL with a host: {url!r}")
        key = (scheme, u.host, u.port)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if scheme == "https":
                    pool = _HTTPSPool(
                        u.host,
                        u.port,
                        maxsize=self.maxsize,
                        block=False,
                        retries=False,
                        cert_reqs=self.cert_reqs,
                    )
                else:
                    pool = _HTTPPool(
                        u.host, u.port, maxsize=self.maxsize, block=False, retries=False
                    )
                self._pools[key] = pool
            if len(self._targets) >= MAX_KNOWN_URLS:  # per-case status URLs: forget, not grow
                self._targets.clear()
            self._targets[url] = (pool, u.request_uri)
        return pool, u.request_uri

    def request(
        self,
        method: str,
        url: str,
        *,
        path: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request and read its whole answer within the deadline and the cap.

        `path` names the call in messages (`GET /changes`); HTTP error statuses are returned,
        not raised. Raises TransientError or PermanentError for everything else."""
        what = f"{method} {path or url}"
        sent = {**self.headers, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        if params:
            url = url + ("&" if "?" in url else "?") + urlencode(params)
        started = time.monotonic()
        deadline = started + self.deadline_seconds

        def left() -> float:
            return deadline - time.monotonic()

        _call.deadline = deadline
        try:
            pool, target = self._target(url)
            response = pool.urlopen(
                method,
                target,
                body=body,
                headers=sent,
                timeout=urllib3.Timeout(
                    connect=max(0.001, min(self.connect_timeout, left())),
                    read=max(0.001, min(self.read_timeout or left(), left())),
                ),
                preload_content=False,
                decode_content=False,
                redirect=False,
                retries=False,
                assert_same_host=False,
            )
        except Urllib3Timeout as exc:
            if isinstance(exc, NewConnectionError):
                raise TransientError(
                    f"{what}: cannot connect to the agency ({_short(exc)})"
                ) from None
            raise self._too_slow(what, started, exc) from None
        except SSLError as exc:
            raise _tls_error(what, exc) from None
        except (ProtocolError, HTTPError, OSError) as exc:
            if left() <= 0:  # the watchdog cut a peer that stalled the request or its headers
                raise self._too_slow(what, started, exc) from None
            raise TransientError(f"{what}: cannot connect to the agency ({_short(exc)})") from None
        finally:
            _call.deadline = None
        try:
            data = self._read(response, what, started, left)
        finally:
            response.release_conn()
        return Answer(
            method=method,
            path=path or url,
            status=response.status,
            reason=response.reason or "",
            headers=response.headers,
            body=data,
        )

    def _read(self, response: Any, what: str, started: float, left: Any) -> bytes:
        cap = self.max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            response.close()
            raise self._too_big(what, f"it announces {int(declared):,} bytes")
        chunks = bytearray()
        sock = getattr(getattr(response, "connection", None), "sock", None)
        try:
            while True:
                remaining = left()
                if remaining <= 0:
                    raise self._too_slow(what, started)
                if sock is not None:
                    sock.settimeout(min(remaining, self.read_timeout or remaining))
                chunk = (
                    response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
                )
                if not chunk:
                    break
                chunks += chunk
                if len(chunks) > cap:
                    raise self._too_big(what, f"it sent more than {cap:,} bytes")
        except (TransientError, PermanentError):
            response.close()
            raise
        except Urllib3Timeout as exc:
            response.close()
            raise self._too_slow(what, started, exc) from None
        except (ProtocolError, HTTPError, OSError) as exc:
            response.close()
            raise TransientError(
                f"{what}: the connection broke while reading the answer ({_short(exc)})"
            ) from None
        return self._decoded(bytes(chunks), response.headers.get("Content-Encoding", ""), what)

    def _decoded(self, data: bytes, encoding: str, what: str) -> bytes:
        """A body compressed although we asked for none, decompressed within the same cap."""
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            return data
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise TransientError(
                f"{what}: the answer is in an encoding we did not ask for: {encoding}"
            )
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else 0)
        out = bytearray()
        pending = data
        try:
            while True:  # in steps, so a decompression bomb stops at the cap
                piece = decompressor.decompress(pending, CHUNK)
                out += piece
                if len(out) > self.max_response_bytes:
                    raise self._too_big(
                        what, f"it decompresses to more than {self.max_response_bytes:,} bytes"
                    )
                pending = decompressor.unconsumed_tail
                if not piece and not pending:
                    break
        except zlib.error as exc:
            raise TransientError(
                f"{what}: the {encoding} answer does not decompress ({exc})"
            ) from None
        return bytes(out)

    def _too_slow(
        self, what: str, started: float, exc: BaseException | None = None
    ) -> TransientError:
        elapsed = time.monotonic() - started
        cause = f"; {type(exc).__name__}" if exc is not None else ""
        raw = {"error": "deadline", "deadline_seconds": self.deadline_seconds}
        if self.read_timeout and elapsed < self.deadline_seconds - 0.05:
            return TransientError(
                f"{what}: the agency did not answer in time: nothing arrived for "
                f"{self.read_timeout:g} s (read_timeout{cause}); it is retried later",
                raw={**raw, "error": "read_timeout"},
            )
        return TransientError(
            f"{what}: the agency did not answer in time: the call passed its deadline of "
            f"{self.deadline_seconds:g} s (gave up after {elapsed:.1f} s{cause}); it is retried "
            f"later. If this agency is always this slow, raise "
            f"{self.setting_prefix}.deadline_seconds in its mapping",
            raw=raw,
        )

    def _too_big(self, what: str, how: str) -> PermanentError:
        return PermanentError(
            f"{what}: refused the agency's answer: {how}, over the cap of "
            f"{self.max_response_bytes:,} bytes (max_response_bytes); nothing of it was used. "
            f"Ask the agency why the answer is that large, or raise "
            f"{self.setting_prefix}.max_response_bytes in its mapping",
            raw={
                "error": "max_response_bytes",
                "max_response_bytes": self.max_response_bytes,
                "scope": "limits",
            },
        )

    def close(self) -> None:
        """Release every pooled connection; the client may still be used (and reconnects)."""
        with self._lock:
            pools, self._pools, self._targets = list(self._pools.values()), {}, {}
        for pool in pools:
            pool.close()


def _tls_error(what: str, exc: SSLError) -> TransientError | PermanentError:
    text = _short(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return PermanentError(
            f"{what}: the agency's TLS certificate does not verify ({text}); nothing was sent. "
            "Check the certificate with the agency (verify_tls: false only for a test system)",
            raw={"scope": "configuration"},
        )
    return TransientError(f"{what}: the TLS handshake failed ({text})")


def _content_kind(content_type: str, body: bytes) -> str:
    head = body[:512].lstrip().lower()
    if "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    return f"Content-Type {content_type or 'none'}"


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
