"""A hostile agency over HTTP: every REST and SOAP call ends by its deadline, within its memory
cap, with an error an operator can act on, never a hang, a 50 MB read or a crash.

The peer is real (tests/httppeer.py on loopback): a body trickling one byte a second, 50 MB
streamed (with and without announcing its length), an HTML page with status 200, broken UTF-8,
nesting deeper than any real answer, an XML entity bomb. Each call's time is measured with
time.monotonic and its memory with tracemalloc; both are printed (`pytest -s`) as the table's
evidence.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.base import AdapterError, Outbound, PermanentError, TransientError
from adapters.rest import RestAdapter
from adapters.soap import SoapAdapter
from hub.config import ROOT
from mappings.engine import load_agency
from tests.httppeer import (
    BROKEN_UTF8,
    DEEP_JSON,
    ENTITY_BOMB,
    HTML_PAGE,
    HttpPeer,
    fixed,
    huge_body,
    self_signed_tls,
    slow_body,
    slow_headers,
)

DEADLINE = 2.0
CAP = 1024 * 1024
MARGIN = 2.0
ITEM = Outbound("LK-AAAA-BBBB.x.1", "LK-AAAA-BBBB", "x", {"a": 1})

DEEP_XML = (
    b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soap:Body>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</soap:Body></soap:Envelope>"
)
BROKEN_UTF8_XML = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>\xff\xfe\xc3'
    b"</soap:Body></soap:Envelope>"
)

# name -> (what the peer sends to a REST call, what it sends to a SOAP call)
HOSTILE = {
    "slow body (1 byte/s)": (slow_body(total=120), slow_body(total=120)),
    "slow headers (1 byte/s)": (slow_headers(), slow_headers()),
    "50 MB streamed": (huge_body(), huge_body()),
    "50 MB announced": (huge_body(announce=True), huge_body(announce=True)),
    "HTML page, status 200": (
        fixed(HTML_PAGE, "text/html; charset=utf-8"),
        fixed(HTML_PAGE, "text/html; charset=utf-8"),
    ),
    "invalid UTF-8": (
        fixed(BROKEN_UTF8, "application/json"),
        fixed(BROKEN_UTF8_XML, "text/xml; charset=utf-8"),
    ),
    "nested too deep": (
        fixed(DEEP_JSON, "application/json"),
        fixed(DEEP_XML, "text/xml; charset=utf-8"),
    ),
    "XML entity bomb": (
        fixed(ENTITY_BOMB, "application/json"),
        fixed(ENTITY_BOMB, "text/xml; charset=utf-8"),
    ),
}

# (hostile, call) -> the error class and a phrase the operator reads
EXPECTED: dict[tuple[str, str], tuple[type[AdapterError], str]] = {}
for call in ("REST poll", "REST deliver", "SOAP poll"):
    EXPECTED[("slow body (1 byte/s)", call)] = (TransientError, "deadline of 2 s")
    EXPECTED[("slow headers (1 byte/s)", call)] = (TransientError, "deadline of 2 s")
    EXPECTED[("50 MB streamed", call)] = (PermanentError, "max_response_bytes")
    EXPECTED[("50 MB announced", call)] = (PermanentError, "announces 52,428,800 bytes")
for call in ("REST poll", "REST deliver"):
    EXPECTED[("HTML page, status 200", call)] = (TransientError, "an HTML page")
    EXPECTED[("invalid UTF-8", call)] = (TransientError, "not valid JSON")
    EXPECTED[("nested too deep", call)] = (TransientError, "nested deeper than")
    EXPECTED[("XML entity bomb", call)] = (TransientError, "not JSON we can read")
EXPECTED[("HTML page, status 200", "SOAP poll")] = (
    TransientError,
    "not a readable SOAP envelope: HTTP 200 with an HTML page",
)
EXPECTED[("invalid UTF-8", "SOAP poll")] = (TransientError, "malformed SOAP envelope")
EXPECTED[("nested too deep", "SOAP poll")] = (TransientError, "malformed SOAP envelope")
EXPECTED[("XML entity bomb", "SOAP poll")] = (PermanentError, "declares a DTD or XML entities")

LIMITS = {"deadline_seconds": DEADLINE, "max_response_bytes": CAP}


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    p = HttpPeer()
    yield p
    p.close()


def rest_adapter(peer: HttpPeer) -> RestAdapter:
    return RestAdapter({"base_url": peer.url + "/api", "changes_path": "/changes", **LIMITS})


def soap_adapter(peer: HttpPeer) -> SoapAdapter:
    env = {
        "LOKET_FAVV_URL": peer.url + "/meldpunt",
        "LOKET_FAVV_USERNAME": "demo",
        "LOKET_FAVV_PASSWORD": "demo",
    }
    mapping = load_agency(ROOT / "mappings" / "agencies" / "favv.yaml", env)
    adapter = SoapAdapter({**mapping.adapter_config, **LIMITS})
    adapter._load()  # the WSDL is read from disk before measuring
    return adapter


def measured(call: Any) -> tuple[BaseException | None, float, int]:
    gc.collect()  # what earlier tests left behind is finalised before, not during, the count
    tracemalloc.start()
    started = time.monotonic()
    try:
        call()
        error = None
    except BaseException as exc:
        error = exc
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, elapsed, peak


@pytest.mark.parametrize("call", ["REST poll", "REST deliver", "SOAP poll"])
@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_a_hostile_answer_ends_in_time_within_memory_with_a_classified_error(peer, hostile, call):
    rest_writer, soap_writer = HOSTILE[hostile]
    if call == "REST poll":
        peer.get("/api/changes", writer=rest_writer)
        adapter: Any = rest_adapter(peer)
        error, elapsed, peak = measured(lambda: adapter.poll("0", []))
    elif call == "REST deliver":
        peer.post("/api/cases", writer=rest_writer)
        adapter = rest_adapter(peer)
        error, elapsed, peak = measured(lambda: adapter.deliver(ITEM))
    else:
        peer.post("/meldpunt", writer=soap_writer)
        adapter = soap_adapter(peer)
        error, elapsed, peak = measured(lambda: adapter.poll("0", []))
    adapter.close()
    print(
        f"\nHOSTILE | {call:12} | {hostile:22} | {elapsed:5.2f} s | peak {peak / 1024:8.0f} KiB"
        f" | {type(error).__name__}: {getattr(error, 'detail', error)!s:.110}"
    )
    kind, phrase = EXPECTED[(hostile, call)]
    assert isinstance(error, kind), f"{call} / {hostile}: {error!r}"
    assert phrase in error.detail
    assert elapsed < DEADLINE + MARGIN
    assert peak < 2 * CAP


def test_a_slow_agency_polled_per_case_costs_about_one_deadline_not_one_per_case(peer):
    from adapters.base import OpenItem

    for n in range(12):
        peer.get(f"/api/cases/A{n}", writer=slow_body(total=120))
    rest = RestAdapter(
        {
            "base_url": peer.url + "/api",
            "status_path": "/cases/{agency_reference}",
            "poll_concurrency": 3,
            **LIMITS,
        }
    )
    items = [OpenItem(f"A{n}", f"LK-{n}", f"k{n}") for n in range(12)]
    started = time.monotonic()
    with pytest.raises(TransientError, match="deadline of 2 s"):
        rest.poll(None, items)
    assert time.monotonic() - started < DEADLINE + MARGIN
    assert len(peer.calls) == 3  # the other nine cases were not asked


def test_the_cap_and_the_deadline_come_from_the_mapping_with_sane_defaults():
    rest = RestAdapter({"base_url": "http://127.0.0.1:1/api"})
    assert (rest.http.deadline_seconds, rest.http.max_response_bytes) == (30.0, 5 * 1024 * 1024)
    tight = RestAdapter(
        {"base_url": "http://127.0.0.1:1/api", "deadline_seconds": 5, "max_response_bytes": 4096}
    )
    assert (tight.http.deadline_seconds, tight.http.max_response_bytes) == (5.0, 4096)


def test_an_answer_within_the_cap_is_read_and_one_just_over_it_is_refused(peer):
    body = b'{"changes": [], "next": "9", "has_more": false, "pad": "' + b"x" * 3000 + b'"}'
    peer.get("/api/changes", body=body, headers={"Content-Type": "application/json"})
    rest = RestAdapter(
        {"base_url": peer.url + "/api", "changes_path": "/changes", "max_response_bytes": 4096}
    )
    assert rest.poll("0", []).cursor == "9"
    small = RestAdapter(
        {"base_url": peer.url + "/api", "changes_path": "/changes", "max_response_bytes": 2048}
    )
    with pytest.raises(PermanentError, match=r"cap of 2,048 bytes \(max_response_bytes\)"):
        small.poll("0", [])


def test_no_proxy_from_the_environment_is_used(peer, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    peer.get("/api/changes", json={"changes": [], "next": "1", "has_more": False})
    assert rest_adapter(peer).poll("0", []).cursor == "1"


# ------------------------------------------------------------------ in the worker, per agency


@pytest.fixture
def hub_with_a_hostile_agency(db, sims, clock, peer, monkeypatch):
    """The hub with ombudsman-telecom on its simulator and consumer-mediation answering its
    changes feed with 50 MB (the mapping's default cap: 5 MB)."""
    from hub.config import Settings
    from hub.services import Hub

    peer.get("/api/changes", writer=huge_body())
    monkeypatch.setenv("LOKET_CONSUMER_MEDIATION_URL", peer.url + "/api")
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.directory.close()


def test_a_hostile_agencys_poll_fails_for_operators_and_the_other_agency_is_still_polled(
    hub_with_a_hostile_agency, clock
):
    from hub.models import PollCursor
    from scheduler.worker import Worker
    from tests.support.cases import TELECOM, assignment, file

    hub = hub_with_a_hostile_agency
    filed = file(hub)
    worker = Worker(hub, "w1")
    worker.dispatch_once()
    started = time.monotonic()
    assert worker.poll_agency("consumer-mediation") is None
    assert time.monotonic() - started < 5
    worker.poll_agency(TELECOM)
    with hub.db.session(read_only=True) as s:
        hostile = s.get(PollCursor, "consumer-mediation")
        fine = s.get(PollCursor, TELECOM)
        assert "over the cap of 5,242,880 bytes (max_response_bytes)" in hostile.last_error
        assert "raise adapter.max_response_bytes" in hostile.last_error
        assert hostile.last_success_at is None
        assert fine.last_error is None and fine.last_success_at is not None
    assert assignment(hub, filed.reference).status == "received"


def test_a_compressed_answer_is_capped_after_decompressing_too(peer):
    import gzip

    bomb = gzip.compress(b"[" * (20 * CAP))  # ~20 KB on the wire, 20 MiB unpacked
    assert len(bomb) < CAP
    peer.get(
        "/api/changes",
        body=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    error, elapsed, peak = measured(lambda: rest_adapter(peer).poll("0", []))
    assert isinstance(error, PermanentError), error
    assert elapsed < DEADLINE + MARGIN
    assert "decompresses to more than 1,048,576 bytes" in error.detail
    assert peak < 2 * CAP + len(bomb)
    small = gzip.compress(b'{"changes": [], "next": "3", "has_more": false}')
    peer.add(
        "GET",
        "/api/changes",
        body=small,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        replace=True,
    )
    assert rest_adapter(peer).poll("0", []).cursor == "3"


def test_tls_certificates_are_verified_unless_the_mapping_says_otherwise(tmp_path):
    agency = HttpPeer(tls=self_signed_tls(tmp_path))
    try:
        agency.get("/api/changes", json={"changes": [], "next": "2", "has_more": False})
        config = {"base_url": agency.url + "/api", "changes_path": "/changes", **LIMITS}
        with pytest.raises(PermanentError, match="TLS certificate does not verify") as info:
            RestAdapter(config).poll("0", [])
        assert agency.calls == []  # nothing was sent to an endpoint we could not verify
        assert "verify_tls" in info.value.detail
        from urllib3.exceptions import InsecureRequestWarning

        with pytest.warns(InsecureRequestWarning):
            assert RestAdapter({**config, "verify_tls": False}).poll("0", []).cursor == "2"
    finally:
        agency.close()
