"""REST adapter: JSON over HTTP(S) with an API-key header, via the agency's `HttpClient` pool.

deliver: POST the payload to `submit_path` with `Idempotency-Key` (the case's documents, base64,
at `attachments_field` when the agency takes them); the agency's reference is read from
`reference_field` of the answer. poll: `changes_path` (changes since a cursor, one request
per tick, following `has_more`, asking for `page_size` changes a page when the agency takes a
`page_size_param`) when the agency offers it, else `status_path` per open case.

Every call has the whole-call deadline and the answer size cap of `adapters.http`
(`deadline_seconds`, `max_response_bytes`), and every answer is read as untrusted JSON (an HTML
page with status 200, broken UTF-8 or absurd nesting is a classified error, never a crash).
"""

from __future__ import annotations

import base64
import copy
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from marshmallow import fields, validate

from adapters.base import (
    ATTACHMENTS,
    DELIVER,
    MESSAGES,
    POLL,
    POLL_CHANGES,
    POLL_PER_ITEM,
    Adapter,
    Attachment,
    ContractChecker,
    Health,
    InboundProblem,
    OpenItem,
    Outbound,
    OutboundMessage,
    PermanentError,
    PollResult,
    Receipt,
    StatusUpdate,
    TransientError,
    dig,
)
from adapters.http import Answer, HttpSettings, client_for
from adapters.wire import ChangesSchema, StatusSchema, opt_str, parse_time

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class RestConfig(HttpSettings):
    base_url = fields.Url(required=True, require_tld=False, metadata={"doc": "Agency API root"})
    api_key = fields.String(load_default=None, metadata={"secret": True})
    api_key_header = fields.String(load_default="X-API-Key")
    submit_path = fields.String(load_default="/cases")
    reference_field = fields.String(load_default="id")
    changes_path = fields.String(load_default=None)
    cursor_param = fields.String(load_default="since")
    page_size_param = fields.String(
        load_default=None, metadata={"doc": "query parameter asking for at most page_size changes"}
    )
    page_size = fields.Integer(load_default=200, validate=validate.Range(min=1))
    max_pages = fields.Integer(load_default=20, validate=validate.Range(min=1))
    changes = fields.Nested(ChangesSchema, load_default=lambda: ChangesSchema().load({}))
    status_path = fields.String(load_default=None)
    status = fields.Nested(StatusSchema, load_default=lambda: StatusSchema().load({}))
    poll_concurrency = fields.Integer(load_default=4, validate=validate.Range(min=1, max=32))
    message_path = fields.String(load_default=None)  # e.g. /cases/{agency_reference}/messages
    attachments_field = fields.String(
        load_default=None,
        metadata={
            "doc": "dotted payload field that carries the case's documents as a list of "
            "{filename, content_type, data (base64)}; none: the agency takes no documents"
        },
    )
    health_path = fields.String(load_default="/health")


def _retry_after(response: Answer) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class RestAdapter(Adapter):
    kind = "rest"
    config_schema = RestConfig
    declared_capabilities = frozenset(
        {DELIVER, POLL, POLL_CHANGES, POLL_PER_ITEM, ATTACHMENTS, MESSAGES}
    )
    max_concurrency = 16

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.base_url = self.config["base_url"].rstrip("/")
        headers = {"Accept": "application/json"}
        if self.config["api_key"]:
            headers[self.config["api_key_header"]] = self.config["api_key"]
        self.http = client_for(
            self.config,
            headers=headers,
            maxsize=max(self.max_concurrency, self.config["poll_concurrency"]),
        )

    @property
    def capabilities(self) -> frozenset[str]:
        """Polling as `poll` does it (the changes feed wins when both paths are set), replies
        with a `message_path`, attachments with an `attachments_field`."""
        caps = {DELIVER}
        if self.config["changes_path"]:
            caps |= {POLL, POLL_CHANGES}
        elif self.config["status_path"]:
            caps |= {POLL, POLL_PER_ITEM}
        if self.config["message_path"]:
            caps.add(MESSAGES)
        if self.config["attachments_field"]:
            caps.add(ATTACHMENTS)
        return frozenset(caps)

    # -------------------------------------------------------------------------------- transport

    def _request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One call within the agency's deadline and cap; HTTP refusals classified here."""
        response = self.http.request(method, self.base_url + path, path=path, **kwargs)
        if response.ok:
            return response
        text = response.text(2000)
        raw = {"status": response.status, "body": text}
        detail = f"{method} {path}: HTTP {response.status} {response.reason}: {text[:300]}"
        if response.status in TRANSIENT_STATUSES or response.status >= 500:
            raise TransientError(detail, retry_after=_retry_after(response), raw=raw)
        if response.status in (401, 403):
            detail += " (check the API key in the agency's adapter configuration)"
        raise PermanentError(detail, raw=raw)

    # -------------------------------------------------------------------------------- interface

    def deliver(self, item: Outbound) -> Receipt:
        path = self.config["submit_path"]
        response = self._request(
            "POST",
            path,
            json=self._with_attachments(item),
            headers={
                "Idempotency-Key": item.idempotency_key,
                "X-Loket-Reference": item.case_reference,
            },
        )
        body = response.json()
        reference = dig(body, self.config["reference_field"])
        if reference in (None, ""):
            raise TransientError(
                f"POST {path}: the answer has no {self.config['reference_field']!r}: {str(body)[:200]}",
                raw={"status": response.status, "body": body},
            )
        replay = response.headers.get("Idempotent-Replay", "").lower() == "true"
        return Receipt(
            agency_reference=str(reference),
            duplicate=replay or response.status == 200,
            raw={
                "request": {
                    "method": "POST",
                    "path": path,
                    "idempotency_key": item.idempotency_key,
                },
                "response": {"status": response.status, "body": body},
            },
        )

    def _with_attachments(self, item: Outbound) -> dict[str, Any]:
        """The payload, with the case's documents at `attachments_field` when one is set."""
        field = self.config["attachments_field"]
        if not (field and item.attachments):
            return dict(item.payload)
        payload = copy.deepcopy(dict(item.payload))
        *parents, last = field.split(".")
        target = payload
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = _encoded(item.attachments)
        return payload

    def send_message(self, item: OutboundMessage) -> Receipt:
        """POST the reply (text + base64 attachments) to `message_path` with the idempotency key."""
        if not self.config["message_path"]:
            raise PermanentError(
                "this agency's REST configuration has no message_path; an "
                "operator must forward the reply"
            )
        path = self.config["message_path"].format(
            agency_reference=item.agency_reference, case_reference=item.case_reference
        )
        body = {
            "text": item.text,
            "language": item.language,
            "attachments": _encoded(item.attachments),
        }
        response = self._request(
            "POST",
            path,
            json=body,
            headers={
                "Idempotency-Key": item.idempotency_key,
                "X-Loket-Reference": item.case_reference,
            },
        )
        answer = response.json()
        return Receipt(
            agency_reference=str(dig(answer, "id") or item.agency_reference),
            duplicate=response.headers.get("Idempotent-Replay", "").lower() == "true",
            raw={
                "request": {
                    "method": "POST",
                    "path": path,
                    "idempotency_key": item.idempotency_key,
                },
                "response": {"status": response.status, "body": answer},
            },
        )

    def poll(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        if self.config["changes_path"]:
            return self._poll_changes(cursor)
        if self.config["status_path"]:
            return self._poll_each(cursor, open_items)
        raise PermanentError("the REST adapter has neither changes_path nor status_path configured")

    def _poll_changes(self, cursor: str | None) -> PollResult:
        spec = self.config["changes"]
        path = self.config["changes_path"]
        updates: list[StatusUpdate] = []
        for _ in range(self.config["max_pages"]):
            params = {self.config["cursor_param"]: cursor} if cursor is not None else {}
            if self.config["page_size_param"]:
                params[self.config["page_size_param"]] = str(self.config["page_size"])
            body = self._request("GET", path, params=params).json()
            items = dig(body, spec["items"])
            if not isinstance(items, list):
                raise TransientError(f"GET {path}: no list at {spec['items']!r} in the answer")
            for entry in items:
                try:
                    updates.append(
                        StatusUpdate(
                            agency_status=str(dig(entry, spec["status"])),
                            occurred_at=parse_time(dig(entry, spec["time"])),
                            agency_reference=opt_str(dig(entry, spec["reference"])),
                            case_reference=opt_str(dig(entry, spec["case_reference"])),
                            message=opt_str(dig(entry, spec["message"])),
                            update_id=opt_str(dig(entry, spec["id"])),
                        )
                    )
                except (TypeError, ValueError) as exc:
                    # One bad entry must not block the feed nor be silently dropped.
                    raise TransientError(
                        f"GET {path}: unreadable change {str(entry)[:200]}: {exc}"
                    ) from None
            next_cursor = dig(body, spec["next_cursor"])
            if next_cursor is not None:
                cursor = str(next_cursor)
            if not dig(body, spec["has_more"]):
                break
        return PollResult(tuple(updates), cursor)

    def _poll_each(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        """One GET per open case, `poll_concurrency` at a time. A case the agency does not know
        (a refusal) is reported for operators and the others are still read; trouble at the
        agency (transient) fails the poll as a whole, to be retried next tick."""
        workers = min(self.config["poll_concurrency"], max(1, len(open_items)))
        if workers == 1:
            results = [self._status_of(item) for item in open_items]
        else:
            # The first failure ends the poll: cases not yet asked are not asked, so a slow
            # agency costs about one deadline, not one per open case.
            failed = threading.Event()

            def status_of(item: OpenItem) -> StatusUpdate | InboundProblem | None:
                if failed.is_set():
                    return None
                try:
                    return self._status_of(item)
                except BaseException:
                    failed.set()
                    raise

            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rest-poll")
            try:
                results = list(pool.map(status_of, open_items))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        updates = tuple(r for r in results if isinstance(r, StatusUpdate))
        problems = tuple(r for r in results if isinstance(r, InboundProblem))
        return PollResult(updates, cursor, problems)

    def _status_of(self, item: OpenItem) -> StatusUpdate | InboundProblem | None:
        spec = self.config["status"]
        path = self.config["status_path"].format(
            agency_reference=item.agency_reference, case_reference=item.case_reference
        )
        try:
            body = self._request("GET", path).json()
        except PermanentError as exc:
            if exc.raw.get("scope") in ("limits", "configuration"):
                raise  # every case would fail the same way: the poll fails, once, for operators
            return InboundProblem(
                source=f"{item.case_reference} ({item.agency_reference})", reason=exc.detail
            )
        code = dig(body, spec["status"])
        if code is None or str(code) == item.agency_status:
            return None
        try:
            occurred = parse_time(dig(body, spec["time"]))
        except ValueError as exc:
            return InboundProblem(
                source=f"{item.case_reference} ({item.agency_reference})",
                reason=f"GET {path}: {exc}",
                excerpt=str(body)[:500],
            )
        return StatusUpdate(
            agency_status=str(code),
            occurred_at=occurred,
            agency_reference=item.agency_reference,
            case_reference=item.case_reference,
            message=opt_str(dig(body, spec["message"])),
        )

    def check(self) -> Health:
        started = time.perf_counter()
        path = self.config["health_path"]
        try:
            self._request("GET", path)
        except (TransientError, PermanentError) as exc:
            return Health(False, exc.detail, (time.perf_counter() - started) * 1000)
        return Health(True, f"GET {path} answered", (time.perf_counter() - started) * 1000)

    @classmethod
    def contract_checker(cls, contract_dir, config) -> ContractChecker:
        """Each payload must validate against the agency's JSON Schema (case.schema.json)."""
        import json

        from jsonschema import Draft202012Validator

        path = contract_dir / "case.schema.json"
        if not path.exists():
            return ContractChecker(
                problems=[
                    f"no {path.name} in {contract_dir.name}/: put the agency's JSON Schema of a "
                    "new case there"
                ]
            )
        validator = Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))

        def check(payload: Mapping[str, Any]) -> list[str]:
            return [
                f"fields.{'.'.join(map(str, error.absolute_path)) or '(payload)'}: "
                f"{error.message} (the agency's {path.name}). Fix: map the field, or transform "
                "the value to fit"
                for error in validator.iter_errors(payload)
            ]

        return ContractChecker(check)

    def close(self) -> None:
        self.http.close()


def _encoded(attachments: Sequence[Attachment]) -> list[dict[str, str]]:
    return [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "data": base64.b64encode(a.data).decode("ascii"),
        }
        for a in attachments
    ]


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
