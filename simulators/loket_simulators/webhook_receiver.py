"""A webhook receiver as an agency would write one: the example for bodies that connect by
API + webhooks, and the real peer the webhook adapter is tested against.

    loket-simulator webhook --port 8301 --secret whsec_... [--secret whsec_old...]

It does what the Standard Webhooks specification asks of a receiver, in this order, before it
believes a word of the body:

1. the three headers are there (`webhook-id`, `webhook-timestamp`, `webhook-signature`);
2. the timestamp is within the tolerance (5 minutes) of its own clock: an old captured request
   is refused even with a good signature;
3. one of the `v1,` signatures is the HMAC-SHA256 of `id.timestamp.body` under one of its
   secrets (several during a rotation), compared in constant time (the `standardwebhooks`
   library does 2 and 3): a tampered body or a wrong secret is refused with 401;
4. the `webhook-id` was not seen before: a replay (or a retry of an event already stored) gets
   409 and is not stored again. The sender takes 409 as "already have it".

Then it stores the event (`case.created`, `case.message`, `case.withdrawn`) and answers 200 with
its own case number. `loket.ping` (the hub's "test connection") is verified and answered, never
stored. Every refusal is counted by reason (`refusals`), so a test can say which rule held.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from loket_simulators import WsgiSimulatorServer, env_var, serve_until_interrupted, start_all, where

EVENTS = ("case.created", "case.message", "case.withdrawn")
MAX_BODY = 20 * 1024 * 1024


@dataclass
class Received:
    """One case as the receiver holds it: the created event, then messages and a withdrawal."""

    reference: str
    case_reference: str
    data: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: bool = False


@dataclass
class Fault:
    mode: str  # "error" | "timeout"
    status: int = 503
    delay: float = 1.0


class WebhookReceiver:
    """What the receiving agency holds: events by webhook-id, cases by case reference."""

    def __init__(self, secrets: list[str], prefix: str = "WH"):
        if not secrets:
            raise ValueError("a webhook receiver needs at least one whsec_ secret")
        self.verifiers = [Webhook(s) for s in secrets]
        self.prefix = prefix
        self.lock = threading.Lock()
        self.seen: dict[str, str] = {}  # webhook-id -> the case number it concerned
        self.cases: dict[str, Received] = {}  # by our own case number
        self.by_case_reference: dict[str, str] = {}
        self.events: list[tuple[str, str]] = []  # (webhook-id, type) in the order stored
        self.refusals: Counter[str] = Counter()
        self.pings = 0
        self.fault: Fault | None = None

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """The event, if some secret verifies it; WebhookVerificationError otherwise."""
        last: WebhookVerificationError | None = None
        for verifier in self.verifiers:
            try:
                event = verifier.verify(body, headers)
            except WebhookVerificationError as exc:
                last = exc
                if "timestamp" in str(exc).lower() or "headers" in str(exc).lower():
                    raise  # the same for every secret
                continue
            if not isinstance(event, dict):
                raise ValueError("the body is not a JSON object")
            return event
        assert last is not None
        raise last

    def receive(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one POST."""
        try:
            event = self.verify(body, headers)
        except ValueError as exc:  # signed by the sender, but not a JSON object
            with self.lock:
                self.refusals["unreadable"] += 1
            return 400, {"title": "not a JSON object", "detail": str(exc)[:200]}
        except WebhookVerificationError as exc:
            reason = _reason(str(exc))
            with self.lock:
                self.refusals[reason] += 1
            return 401, {"title": "webhook refused", "reason": reason, "detail": str(exc)}
        webhook_id = headers["webhook-id"]
        kind = event.get("type")
        if kind == "loket.ping":
            with self.lock:
                self.pings += 1
            return 200, {"pong": True}
        data = event.get("data")
        if kind not in EVENTS or not isinstance(data, dict):
            with self.lock:
                self.refusals["unknown event"] += 1
            return 422, {
                "title": "unknown event",
                "detail": f"type {kind!r} is not one of {EVENTS}",
            }
        with self.lock:
            if webhook_id in self.seen:
                self.refusals["replayed id"] += 1
                return 409, {
                    "title": "already received",
                    "detail": f"webhook-id {webhook_id} was received before; not stored again",
                    "reference": self.seen[webhook_id],
                }
            if kind == "case.created":
                reference = f"{self.prefix}-{len(self.cases) + 1:06d}"
                self.cases[reference] = Received(reference, str(data.get("case_reference")), data)
                self.by_case_reference[str(data.get("case_reference"))] = reference
            else:
                found = self._case_of(data)
                if found is None:
                    self.refusals["unknown case"] += 1
                    return 404, {
                        "title": "unknown case",
                        "detail": f"no case {data.get('case_reference')!r} here",
                    }
                reference = found
                case = self.cases[reference]
                if kind == "case.withdrawn":
                    case.withdrawn = True
                case.messages.append(data)
            self.seen[webhook_id] = reference
            self.events.append((webhook_id, kind))
        return 200, {"reference": reference}

    def _case_of(self, data: dict[str, Any]) -> str | None:
        ref = str(data.get("agency_reference") or "")
        if ref in self.cases:
            return ref
        return self.by_case_reference.get(str(data.get("case_reference")))

    def attachments(self, reference: str) -> list[tuple[str, bytes]]:
        return [
            (a["filename"], base64.b64decode(a["data"]))
            for a in self.cases[reference].data.get("attachments", [])
        ]


def _reason(message: str) -> str:
    text = message.lower()
    if "too old" in text or "too new" in text:
        return "timestamp outside tolerance"
    if "missing" in text:
        return "missing headers"
    if "signature" in text:
        return "bad signature"
    return "unreadable"


def make_app(receiver: WebhookReceiver):
    """The WSGI app: POST /webhooks takes events, GET /health answers."""
    import time

    from werkzeug.wrappers import Request, Response

    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/health" and request.method == "GET":
            return _json(200, {"ok": True})
        if request.path != "/webhooks":
            return _json(404, {"title": "not found"})
        if request.method != "POST":
            return _json(405, {"title": "POST events here"})
        if (request.content_length or 0) > MAX_BODY:
            return _json(413, {"title": "too large", "detail": f"at most {MAX_BODY} bytes"})
        with receiver.lock:
            fault, receiver.fault = receiver.fault, None
        if fault is not None:
            if fault.mode == "timeout":
                time.sleep(fault.delay)
            return _json(fault.status, {"title": "simulated fault"})
        body = request.get_data(cache=False)
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, answer = receiver.receive(body, headers)
        return _json(status, answer)

    return app


def _json(status: int, body: dict[str, Any]):
    from werkzeug.wrappers import Response

    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(json.dumps(body), status=status, mimetype=media)


class ReceiverServer(WsgiSimulatorServer):
    """The receiver on a real socket; `url` is where the hub POSTs."""

    def __init__(self, receiver: WebhookReceiver, host: str = "127.0.0.1", port: int = 0):
        self.receiver = receiver
        super().__init__(make_app(receiver), "/webhooks", host, port)


# ----------------------------------------------------------------------------------- launcher


def launch_group(agencies, root: Path):
    """For `loket run`: ONE process receives every webhook agency's events, each on the port of
    its own url, verifying with the secrets of its mapping."""
    from loket_simulators import Launch, command

    specs = []
    for agency in agencies:
        host, port = where(agency.adapter_config["url"])
        secrets = [
            agency.adapter_config["secret"],
            *agency.adapter_config.get("previous_secrets", []),
        ]
        specs.append({"id": agency.agency_id, "host": host, "port": port, "secrets": secrets})
    cmd = command("webhook")
    for spec in specs:
        cmd += ["--agency", json.dumps(spec)]
    first = agencies[0]
    return Launch(
        cmd,
        specs[0]["host"],
        specs[0]["port"],
        first.adapter_config["url"],
        env_var(first.agency_id, "URL"),
        agencies=tuple(a.agency_id for a in agencies),
        also_listens=tuple((s["host"], s["port"], env_var(s["id"], "URL")) for s in specs[1:]),
        agency_urls=tuple((a.agency_id, a.adapter_config["url"]) for a in agencies),
    )


def _agency(text: str) -> dict[str, Any]:
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(spec, dict) or not {"id", "port", "secrets"} <= set(spec):
        raise argparse.ArgumentTypeError("give a JSON object with at least id, port and secrets")
    return spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loket-simulator webhook",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--secret", action="append", default=[], help="whsec_ secret to verify with (repeatable)"
    )
    parser.add_argument(
        "--agency",
        type=_agency,
        action="append",
        default=[],
        metavar="JSON",
        help='receive for this agency (repeatable): {"id", "port", "host", "secrets"}',
    )
    args = parser.parse_args(argv)
    specs = list(args.agency)
    if args.secret:
        specs.append(
            {"id": "webhook", "host": args.host, "port": args.port, "secrets": args.secret}
        )
    if not specs:
        parser.error("give --secret (and --port), or --agency")
    servers = start_all(
        lambda s: ReceiverServer(
            WebhookReceiver(s["secrets"]), s.get("host", "127.0.0.1"), int(s["port"])
        ),
        specs,
    )
    serve_until_interrupted(
        servers, lambda spec, server: f"webhook receiver {spec['id']}: {server.url}", specs
    )
