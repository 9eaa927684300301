"""A trivial agency sink for benchmarks: answers every POST with 202 and an id, counts requests and
distinct idempotency keys, and serves an empty changes feed so poll jobs stay quiet.

    python -m bench.sink --port 9900
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts = 0
        self.gets = 0
        self.ids: dict[str, str] = {}
        self.first: float | None = None
        self.last: float | None = None

    def reset(self) -> None:
        with self.lock:
            self.posts = self.gets = 0
            self.ids.clear()
            self.first = self.last = None


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK wait

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/_reset":
            STATE.reset()
            return self._send(200, {"ok": True})
        key = self.headers.get("Idempotency-Key") or f"anon-{id(self)}"
        now = time.monotonic()
        with STATE.lock:
            STATE.posts += 1
            STATE.first = STATE.first or now
            STATE.last = now
            ident = STATE.ids.setdefault(key, f"S-{len(STATE.ids) + 1}")
        self._send(202, {"id": ident})

    def do_GET(self) -> None:
        if self.path.startswith("/_stats"):
            with STATE.lock:
                span = (STATE.last - STATE.first) if STATE.first and STATE.last else 0.0
                return self._send(
                    200,
                    {
                        "posts": STATE.posts,
                        "gets": STATE.gets,
                        "distinct": len(STATE.ids),
                        "span": span,
                    },
                )
        with STATE.lock:
            STATE.gets += 1
        if "/changes" in self.path:
            since = self.path.split("since=")[-1] if "since=" in self.path else "0"
            return self._send(200, {"changes": [], "next": since, "has_more": False})
        if "/cases/" in self.path:
            return self._send(200, {"status": "OPEN", "updated_at": "2026-11-02T09:00:00+00:00"})
        return self._send(200, {"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
