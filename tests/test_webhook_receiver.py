"""The receiver example refuses what the Standard Webhooks specification says to refuse: a
tampered body, a wrong secret, a timestamp outside the tolerance, missing headers and a replayed
webhook-id; it stores each event once. The hub's side signs so that it verifies."""

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from loket_simulators.webhook_receiver import ReceiverServer, WebhookReceiver

from adapters.base import Outbound, OutboundMessage, PermanentError
from adapters.webhook import WebhookAdapter, new_secret

SECRET = new_secret()


@pytest.fixture
def server():
    server = ReceiverServer(WebhookReceiver([SECRET])).start()
    yield server
    server.stop()


def adapter_for(server, **config):
    return WebhookAdapter({"url": server.url, "secret": SECRET, **config})


def post(server, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(server.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def signed(adapter: WebhookAdapter, webhook_id: str, reference: str, at=None):
    body = json.dumps(
        {"type": "case.created", "data": {"case_reference": reference, "case": {}}}
    ).encode()
    return body, adapter.signed_headers(webhook_id, body, at or datetime.now(UTC))


def test_a_signed_event_is_stored_and_its_exact_replay_is_refused(server):
    adapter = adapter_for(server)
    body, headers = signed(adapter, "LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB")
    assert post(server, body, headers) == (200, {"reference": "WH-000001"})
    status, answer = post(server, body, headers)  # captured and sent again
    assert status == 409 and answer["reference"] == "WH-000001"
    assert len(server.receiver.cases) == 1
    assert server.receiver.events == [("LK-AAAA-BBBB.wh.1", "case.created")]
    assert server.receiver.refusals["replayed id"] == 1


def test_a_tampered_body_is_refused_and_not_stored(server):
    adapter = adapter_for(server)
    body, headers = signed(adapter, "LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB")
    tampered = body.replace(b"LK-AAAA-BBBB", b"LK-EVIL-CASE")
    status, answer = post(server, tampered, headers)
    assert (status, answer["reason"]) == (401, "bad signature")
    assert server.receiver.cases == {}
    # the genuine body still goes through: the refusal did not burn its id
    assert post(server, body, headers)[0] == 200


def test_a_tampered_id_or_timestamp_breaks_the_signature(server):
    adapter = adapter_for(server)
    body, headers = signed(adapter, "LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB")
    other_id = {**headers, "webhook-id": "LK-AAAA-BBBB.wh.2"}
    later = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}
    assert post(server, body, other_id)[1]["reason"] == "bad signature"
    assert post(server, body, later)[1]["reason"] == "bad signature"
    assert server.receiver.cases == {}


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_timestamp_outside_the_tolerance_is_refused_though_signed(server, minutes):
    adapter = adapter_for(server)
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    body, headers = signed(adapter, "LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB", at)
    status, answer = post(server, body, headers)
    assert (status, answer["reason"]) == (401, "timestamp outside tolerance")
    assert server.receiver.cases == {}


def test_a_wrong_secret_or_missing_headers_are_refused(server):
    stranger = WebhookAdapter({"url": server.url, "secret": new_secret()})
    body, headers = signed(stranger, "LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB")
    assert post(server, body, headers)[1]["reason"] == "bad signature"
    bare = {"Content-Type": "application/json"}
    assert post(server, body, bare)[1]["reason"] == "missing headers"
    assert server.receiver.cases == {}
    # the adapter sees the same refusal as permanent, with a hint about the secret
    with pytest.raises(PermanentError, match="check the secret"):
        stranger.deliver(Outbound("LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB", "wh", {}))


def test_during_a_rotation_each_secret_signs_and_either_verifies():
    new = new_secret()
    adapter = WebhookAdapter(
        {"url": "http://127.0.0.1:9/", "secret": new, "previous_secrets": [SECRET]}
    )
    _, headers = signed(adapter, "id-1", "LK-AAAA-BBBB")
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (new, SECRET):
        receiver = WebhookReceiver([secret])
        body, headers = signed(adapter, f"id-{secret[-6:]}", "LK-AAAA-BBBB")
        assert receiver.receive(body, headers)[0] == 200


def test_a_retry_after_a_lost_answer_counts_as_delivered_once(server):
    """The receiver stored the event but the hub never saw the answer: the retry (same id, new
    timestamp and signature) is refused as seen, which the adapter takes as delivered."""
    adapter = adapter_for(server, reference_field="reference")
    item = Outbound("LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB", "wh", {"a": 1})
    first = adapter.deliver(item)
    again = adapter.deliver(item)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.agency_reference == first.agency_reference == "WH-000001"
    assert len(server.receiver.cases) == 1


def test_a_withdrawal_is_an_event_of_its_own(server):
    adapter = adapter_for(server, reference_field="reference")
    receipt = adapter.deliver(Outbound("LK-AAAA-BBBB.wh.1", "LK-AAAA-BBBB", "wh", {}))
    adapter.send_message(
        OutboundMessage(
            "LK-AAAA-BBBB.wh.msg3.withdrawn",
            "LK-AAAA-BBBB",
            "wh",
            receipt.agency_reference,
            "The consumer withdraws this case.",
            withdrawal=True,
        )
    )
    assert server.receiver.events[-1] == ("LK-AAAA-BBBB.wh.msg3.withdrawn", "case.withdrawn")
    assert server.receiver.cases["WH-000001"].withdrawn


def test_a_secret_that_is_not_whsec_base64_is_refused_without_echoing_it():
    from adapters.base import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        WebhookAdapter({"url": "http://127.0.0.1:9/", "secret": "hunter2-hunter2"})
    assert "whsec_" in info.value.detail and "hunter2" not in info.value.detail


def test_a_signed_body_that_is_not_a_json_object_is_refused_as_unreadable(server):
    adapter = adapter_for(server)
    for body in (b"not json", b"[1, 2]"):
        headers = adapter.signed_headers("id-x", body, datetime.now(UTC))
        status, answer = post(server, body, headers)
        assert status == 400 and answer["title"] == "not a JSON object"
    assert server.receiver.refusals["unreadable"] == 2 and server.receiver.cases == {}
