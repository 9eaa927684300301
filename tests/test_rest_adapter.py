"""REST adapter unit tests against a real loopback peer: how each answer of an agency is read
and classified."""

import base64
import contextlib
import json
import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.base import (
    Attachment,
    ConfigurationError,
    OpenItem,
    Outbound,
    PermanentError,
    TransientError,
)
from adapters.rest import RestAdapter
from tests.httppeer import HttpPeer, slow_body
from tests.support.env import free_port

BASE = "http://agency.test/api"  # replaced by the loopback peer's address in each test
ITEM = Outbound("LK-AAAA-BBBB.x.1", "LK-AAAA-BBBB", "x", {"a": 1})


@pytest.fixture(autouse=True)
def agency():
    """The agency: a real HTTP peer on loopback; tests register its answers under /api."""
    global BASE
    peer = HttpPeer()
    BASE, saved = peer.url + "/api", BASE
    yield peer
    BASE = saved
    peer.close()


def adapter(**config):
    return RestAdapter(
        {"base_url": BASE, "api_key": "s3cret", "changes_path": "/changes", **config}
    )


def test_deliver_posts_json_with_key_headers_and_reads_the_reference(agency):
    agency.post("/api/cases", json={"id": "OMB-1"}, status=201)
    receipt = adapter().deliver(ITEM)
    assert receipt.agency_reference == "OMB-1" and not receipt.duplicate
    sent = agency.calls[0]
    assert sent.headers["Idempotency-Key"] == "LK-AAAA-BBBB.x.1"
    assert sent.headers["X-API-Key"] == "s3cret"
    assert sent.body == b'{"a": 1}'


def test_a_replayed_delivery_is_recognised(agency):
    agency.post(
        "/api/cases", json={"id": "OMB-1"}, status=200, headers={"Idempotent-Replay": "true"}
    )
    assert adapter().deliver(ITEM).duplicate


def test_reference_field_may_be_nested(agency):
    agency.post("/api/cases", json={"data": {"caseId": 7}}, status=201)
    assert adapter(reference_field="data.caseId").deliver(ITEM).agency_reference == "7"


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_server_trouble_and_throttling_are_transient(status, agency):
    agency.post("/api/cases", json={"error": "busy"}, status=status, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as info:
        adapter().deliver(ITEM)
    assert str(status) in info.value.detail
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_refusals_are_permanent(status, agency):
    agency.post("/api/cases", json={"error": "no"}, status=status)
    with pytest.raises(PermanentError):
        adapter().deliver(ITEM)


def test_a_refused_api_key_is_permanent_and_says_what_to_check(agency):
    agency.post("/api/cases", json={"error": "who are you"}, status=401)
    with pytest.raises(PermanentError, match="check the API key"):
        adapter().deliver(ITEM)


def test_a_2xx_without_json_or_reference_is_transient_so_the_same_key_is_retried(agency):
    agency.post("/api/cases", body="<html>OK</html>", status=200)
    with pytest.raises(TransientError, match="not JSON"):
        adapter().deliver(ITEM)
    agency.add("POST", "/api/cases", replace=True, json={"ok": True}, status=201)
    with pytest.raises(TransientError, match="no 'id'"):
        adapter().deliver(ITEM)


def test_timeouts_and_refused_connections_are_transient(agency):
    agency.post("/api/cases", writer=slow_body(total=20))
    with pytest.raises(
        TransientError, match="did not answer in time: the call passed its deadline of 1 s"
    ):
        adapter(deadline_seconds=1).deliver(ITEM)
    closed = RestAdapter({"base_url": f"http://127.0.0.1:{free_port()}/api"})
    with pytest.raises(TransientError, match="cannot connect"):
        closed.deliver(ITEM)


def test_changes_since_follows_pages_and_returns_the_last_cursor(agency):
    agency.get(
        "/api/changes",
        query={"since": "3"},
        json={
            "changes": [{"seq": 4, "case_id": "A", "status": "NEW", "at": "2026-11-02T09:00:00Z"}],
            "next": "4",
            "has_more": True,
        },
    )
    agency.get(
        "/api/changes",
        query={"since": "4"},
        json={
            "changes": [
                {
                    "seq": 5,
                    "case_id": "A",
                    "status": "OPEN",
                    "at": "2026-11-02T10:00:00+01:00",
                    "note": "hi",
                    "external_reference": "LK-AAAA-BBBB",
                }
            ],
            "next": "5",
            "has_more": False,
        },
    )
    result = adapter().poll("3", [])
    assert result.cursor == "5"
    assert [(u.agency_reference, u.agency_status, u.update_id) for u in result.updates] == [
        ("A", "NEW", "4"),
        ("A", "OPEN", "5"),
    ]
    assert result.updates[1].occurred_at == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert result.updates[1].case_reference == "LK-AAAA-BBBB" and result.updates[1].message == "hi"


def test_a_first_poll_sends_no_cursor_and_an_empty_feed_keeps_it(agency):
    agency.get("/api/changes", json={"changes": [], "next": None, "has_more": False})
    result = adapter().poll(None, [])
    assert result.updates == () and result.cursor is None
    assert "since" not in agency.calls[0].url


def test_an_unreadable_change_fails_the_poll_so_the_cursor_does_not_move(agency):
    agency.get(
        "/api/changes",
        json={
            "changes": [{"seq": 1, "case_id": "A", "status": "NEW", "at": "yesterday"}],
            "next": "1",
            "has_more": False,
        },
    )
    with pytest.raises(TransientError, match="unreadable change"):
        adapter().poll("0", [])


def test_per_case_polling_when_the_agency_has_no_changes_feed(agency):
    agency.get("/api/cases/A", json={"status": "OPEN", "updated_at": "2026-11-02T09:00:00Z"})
    agency.get("/api/cases/B", json={"status": "NEW", "updated_at": "2026-11-02T09:00:00Z"})
    rest = RestAdapter({"base_url": BASE, "status_path": "/cases/{agency_reference}"})
    result = rest.poll(
        "c", [OpenItem("A", "LK-1", "k1", "NEW"), OpenItem("B", "LK-2", "k2", "NEW")]
    )
    assert [(u.agency_reference, u.agency_status) for u in result.updates] == [("A", "OPEN")]
    assert result.cursor == "c"


def test_check_tells_a_working_agency_from_a_refusing_one(agency):
    agency.get("/api/health", json={"status": "ok"})
    assert adapter().check().ok
    agency.add("GET", "/api/health", replace=True, status=401, json={})
    health = adapter().check()
    assert not health.ok and "API key" in health.message


def test_bad_configuration_names_each_key():
    with pytest.raises(ConfigurationError) as info:
        RestAdapter({"base_url": "not a url", "read_timeout": -1})
    assert "base_url" in str(info.value) and "read_timeout" in str(info.value)


def test_the_api_key_is_masked_in_repr_and_masked_config():
    rest = adapter()
    assert "s3cret" not in repr(rest)
    assert rest.masked_config()["api_key"] == "***"


def test_per_case_polling_reports_a_case_the_agency_does_not_know_and_reads_the_others(agency):
    agency.get("/api/cases/A", json={"status": "OPEN", "updated_at": "2026-11-02T09:00:00Z"})
    agency.get("/api/cases/GONE", json={"error": "no such case"}, status=404)
    rest = RestAdapter(
        {"base_url": BASE, "status_path": "/cases/{agency_reference}", "poll_concurrency": 2}
    )
    result = rest.poll(None, [OpenItem("A", "LK-1", "k1", "NEW"), OpenItem("GONE", "LK-2", "k2")])
    assert [(u.agency_reference, u.agency_status) for u in result.updates] == [("A", "OPEN")]
    [problem] = result.problems
    assert "LK-2" in problem.source and "404" in problem.reason


def test_per_case_polling_fails_as_a_whole_when_the_agency_is_down(agency):
    agency.get("/api/cases/A", json={"status": "OPEN", "updated_at": "2026-11-02T09:00:00Z"})
    agency.get("/api/cases/B", status=503, json={})
    rest = RestAdapter({"base_url": BASE, "status_path": "/cases/{agency_reference}"})
    with pytest.raises(TransientError):
        rest.poll(None, [OpenItem("A", "LK-1", "k1"), OpenItem("B", "LK-2", "k2")])


# ------------------------------------------------------------ what the configuration offers


def test_the_capabilities_follow_the_configured_paths():
    assert adapter().capabilities == {"deliver", "poll", "poll_changes"}
    per_case = adapter(changes_path=None, status_path="/cases/{agency_reference}")
    assert per_case.capabilities == {"deliver", "poll", "poll_per_item"}
    assert adapter(changes_path=None).capabilities == {"deliver"}
    full = adapter(message_path="/m/{agency_reference}", attachments_field="files")
    assert full.capabilities == {"deliver", "poll", "poll_changes", "messages", "attachments"}
    assert full.capabilities == RestAdapter.declared_capabilities - {"poll_per_item"}


def test_documents_travel_base64_at_the_attachments_field_and_nowhere_without_one(agency):
    agency.post("/api/cases", json={"id": "OMB-1"}, status=201)
    pdf = b"%PDF-1.4\x00\xff"
    item = Outbound(
        "LK-AAAA-BBBB.x.1",
        "LK-AAAA-BBBB",
        "x",
        {"a": 1, "case": {"b": 2}},
        attachments=(Attachment("bon été.pdf", "application/pdf", pdf),),
    )
    adapter(attachments_field="case.documents").deliver(item)
    adapter().deliver(item)
    with_field, without = (json.loads(c.body) for c in agency.calls)
    assert with_field == {
        "a": 1,
        "case": {
            "b": 2,
            "documents": [
                {
                    "filename": "bon été.pdf",
                    "content_type": "application/pdf",
                    "data": base64.b64encode(pdf).decode(),
                }
            ],
        },
    }
    assert without == {"a": 1, "case": {"b": 2}}
    assert item.payload == {"a": 1, "case": {"b": 2}}  # the rendered payload is not changed


def test_a_page_size_is_asked_for_when_the_agency_takes_one(agency):
    agency.get("/api/changes", json={"changes": [], "next": "7", "has_more": False})
    adapter(page_size_param="limit", page_size=50).poll("7", [])
    assert agency.calls[0].params == {"since": "7", "limit": "50"}


def test_close_lets_a_kept_alive_connection_go_and_may_be_called_twice():
    """The simulators close every HTTP connection; a real agency keeps it alive."""

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rest = RestAdapter({"base_url": f"http://127.0.0.1:{server.server_port}/api"})
        before = sockets()
        assert rest.check().ok
        assert sockets() > before  # the connection is kept for the next request
        rest.close()
        rest.close()
        deadline = time.monotonic() + 5
        while sockets() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sockets() == before
    finally:
        server.shutdown()
        server.server_close()


def sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count
