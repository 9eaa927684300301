"""A third-party adapter, packaged on its own: it proves that Loket finds adapters by entry point.

Transport: a local spool folder shared with the agency (a network share, say). Cases are written as
`<inbox>/<key>.json` (temp file, then rename); the agency answers with JSON lines appended to
`<outbox>/status.jsonl`; the cursor is the byte offset already read (`max_lines` a poll, if set).
A cursor that is not an offset into the file (damaged, or the file was replaced) reads it again
from the start: the hub de-duplicates by update id.

Its own tests (`tests/`) run Loket's conformance kit against it, as any adapter package would.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

from marshmallow import Schema, fields, validate

from adapters.base import (
    DELIVER,
    POLL,
    POLL_CHANGES,
    Adapter,
    Health,
    OpenItem,
    Outbound,
    PermanentError,
    PollResult,
    Receipt,
    StatusUpdate,
    TransientError,
)


class SpoolConfig(Schema):
    inbox = fields.String(required=True)
    outbox = fields.String(required=True)
    token = fields.String(load_default=None, metadata={"secret": True})
    max_lines = fields.Integer(load_default=None, validate=validate.Range(min=1))


class SpoolAdapter(Adapter):
    kind = "spool"
    config_schema = SpoolConfig
    declared_capabilities = frozenset({DELIVER, POLL, POLL_CHANGES})

    def _dir(self, key: str) -> Path:
        path = Path(self.config[key])
        if not path.is_dir():
            raise PermanentError(f"{key} folder {path} does not exist; create it or fix the path")
        return path

    def deliver(self, item: Outbound) -> Receipt:
        inbox = self._dir("inbox")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", item.idempotency_key) + ".json"
        final = inbox / name
        if final.exists():
            return Receipt(agency_reference=name, duplicate=True)
        tmp = inbox / f".{name}.part"
        try:
            tmp.write_text(json.dumps(dict(item.payload)))
            os.replace(tmp, final)
        except OSError as exc:
            raise TransientError(f"cannot write {name}: {exc.strerror}") from None
        return Receipt(agency_reference=name)

    def poll(self, cursor: str | None, open_items: list[OpenItem]) -> PollResult:
        path = self._dir("outbox") / "status.jsonl"
        if not path.exists():
            return PollResult((), cursor)
        offset = int(cursor) if cursor and cursor.isascii() and cursor.isdigit() else 0
        if offset > path.stat().st_size:
            offset = 0  # not an offset into this file: read it again
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        updates = []
        consumed = 0
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # a line the agency is still writing
            if self.config["max_lines"] and len(updates) == self.config["max_lines"]:
                break  # the rest next time
            entry = json.loads(raw)
            updates.append(
                StatusUpdate(
                    agency_status=entry["status"],
                    occurred_at=datetime.fromisoformat(entry["at"]),
                    agency_reference=entry["ref"],
                    update_id=f"{offset + consumed}",
                )
            )
            consumed += len(raw)
        return PollResult(tuple(updates), str(offset + consumed))

    def check(self) -> Health:
        started = time.perf_counter()
        try:
            self._dir("inbox")
            self._dir("outbox")
        except PermanentError as exc:
            return Health(False, exc.detail)
        return Health(True, "both folders exist", (time.perf_counter() - started) * 1000)
