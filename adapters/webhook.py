"""Webhooks: the hub POSTs each event to the agency's own URL, signed per Standard Webhooks.

For a body that prefers to be told rather than polled: a new case, a consumer's reply and a
withdrawal each arrive as one JSON POST (`{"type": "case.created" | "case.message" |
"case.withdrawn", "timestamp": ..., "data": {...}}`) with the three headers of the Standard
Webhooks specification (https://www.standardwebhooks.com):

- `webhook-id`: the delivery's idempotency key. A retry of the same delivery carries the same
  id, so the receiver stores an event once whatever the number of attempts;
- `webhook-timestamp`: seconds since the epoch at this attempt (signed, so a captured request
  cannot be replayed later than the receiver's tolerance);
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the `whsec_`
  secret, one per secret, space separated: during a rotation the hub signs with the new secret
  and each old one in `previous_secrets`, and the agency moves its verifier over at its own
  pace. Signing is the `standardwebhooks` library's (the specification's reference code).

A 2xx answer means the agency has the event. 409 means it had it already (the receiver refuses
a webhook-id it has seen, which is what stops a replay): the delivery is done, as a duplicate.
408, 425, 429 and 5xx are transient, other statuses permanent.

The agency speaks back through the hub's agency API (acknowledge with its reference, statuses,
messages): a webhook agency is never polled, so it declares no `poll` capability. Until it
acknowledges, the case's reference stands as a provisional agency reference, unless the
receiver's answer names one (`reference_field`).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields, validates
from standardwebhooks.webhooks import Webhook

from adapters.base import (
    ATTACHMENTS,
    DELIVER,
    MESSAGES,
    Adapter,
    Attachment,
    Health,
    Outbound,
    OutboundMessage,
    PermanentError,
    Receipt,
    TransientError,
    dig,
)
from adapters.http import Answer, HttpSettings, client_for

CREATED, MESSAGE, WITHDRAWN, PING = "case.created", "case.message", "case.withdrawn", "loket.ping"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
SECRET_PREFIX = "whsec_"


def _secret_problem(value: str) -> str | None:
    if not value.startswith(SECRET_PREFIX):
        return f"a signing secret starts with {SECRET_PREFIX!r} followed by base64"
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        return f"the part after {SECRET_PREFIX!r} is not base64"
    if len(key) < 24:
        return "a signing secret needs at least 24 random bytes after the prefix (32 is usual)"
    return None


class WebhookConfig(HttpSettings):
    url = fields.Url(
        required=True,
        require_tld=False,
        schemes={"http", "https"},
        metadata={"doc": "the agency's receiving endpoint; every event is POSTed here"},
    )
    secret = fields.String(
        required=True,
        metadata={"secret": True, "doc": "whsec_<base64>: the current signing secret"},
    )
    previous_secrets = fields.List(
        fields.String(),
        load_default=list,
        metadata={
            "secret": True,
            "doc": "secrets still signed with during a rotation, until the agency verifies "
            "with the new one",
        },
    )
    reference_field = fields.String(
        load_default=None,
        metadata={"doc": "dotted field of the receiver's answer holding its own case reference"},
    )
    send_attachments = fields.Boolean(
        load_default=True, metadata={"doc": "documents travel base64 in the event's data"}
    )

    @validates("secret")
    def _check_secret(self, value: str, **_: Any) -> None:
        problem = _secret_problem(value)
        if problem:  # never echo the value: it is a secret
            raise ValidationError(problem)

    @validates("previous_secrets")
    def _check_previous(self, value: list[str], **_: Any) -> None:
        for number, secret in enumerate(value, 1):
            problem = _secret_problem(secret)
            if problem:
                raise ValidationError(f"secret {number}: {problem}")


def new_secret() -> str:
    """A fresh signing secret (32 random bytes), to give the agency once."""
    import secrets

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class WebhookAdapter(Adapter):
    kind = "webhook"
    config_schema = WebhookConfig
    # No POLL: statuses come through the agency API, never by asking the agency.
    declared_capabilities = frozenset({DELIVER, MESSAGES, ATTACHMENTS})
    max_concurrency = 8

    def __init__(self, config: Mapping[str, Any], *, clock=None):
        super().__init__(config)
        self.url = self.config["url"]
        self._signers = [
            Webhook(s) for s in [self.config["secret"], *self.config["previous_secrets"]]
        ]
        self._now = clock or (lambda: datetime.now(UTC))
        self.http = client_for(
            self.config,
            headers={"Accept": "application/json"},
            maxsize=self.max_concurrency,
        )

    @property
    def capabilities(self) -> frozenset[str]:
        caps = {DELIVER, MESSAGES}
        if self.config["send_attachments"]:
            caps.add(ATTACHMENTS)
        return frozenset(caps)

    # ---------------------------------------------------------------------------- signing

    def signed_headers(self, webhook_id: str, body: bytes, at: datetime) -> dict[str, str]:
        """The three Standard Webhooks headers for `body`, one signature per secret."""
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(s.sign(webhook_id, at, body) for s in self._signers),
            "Content-Type": "application/json",
        }

    def _post(self, webhook_id: str, event: str, data: Mapping[str, Any]) -> tuple[Answer, bool]:
        """POST one event; (answer, duplicate). HTTP refusals are classified here."""
        at = self._now()
        body = json.dumps(
            {"type": event, "timestamp": at.isoformat(), "data": data},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        answer = self.http.request(
            "POST",
            self.url,
            path=event,
            body=body,
            headers=self.signed_headers(webhook_id, body, at),
        )
        if answer.ok:
            return answer, False
        if answer.status == 409:
            return answer, True  # the receiver has this webhook-id already
        text = answer.text(2000)
        raw = {"status": answer.status, "body": text}
        detail = f"POST {event}: HTTP {answer.status} {answer.reason}: {text[:300]}"
        if answer.status in TRANSIENT_STATUSES or answer.status >= 500:
            retry = answer.headers.get("Retry-After") or ""
            raise TransientError(
                detail, retry_after=float(retry) if retry.isdigit() else None, raw=raw
            )
        if answer.status in (401, 403):
            detail += " (the agency could not verify the signature: check the secret it holds)"
        raise PermanentError(detail, raw=raw)

    def _receipt(
        self, answer: Answer, duplicate: bool, webhook_id: str, fallback: str, event: str
    ) -> Receipt:
        reference = None
        field = self.config["reference_field"]
        body: Any = None
        if answer.body:
            try:
                body = answer.json()
            except TransientError:
                body = answer.text(500)
        if field and isinstance(body, Mapping):
            reference = dig(body, field)
        return Receipt(
            agency_reference=str(reference) if reference not in (None, "") else fallback,
            duplicate=duplicate,
            provisional=reference in (None, ""),
            raw={
                "request": {"method": "POST", "event": event, "webhook_id": webhook_id},
                "response": {"status": answer.status, "body": body},
            },
        )

    # -------------------------------------------------------------------------- interface

    def deliver(self, item: Outbound) -> Receipt:
        data = {
            "case_reference": item.case_reference,
            "agency_id": item.agency_id,
            "language": item.language,
            "case": dict(item.payload),
            "attachments": self._documents(item.attachments),
        }
        answer, duplicate = self._post(item.idempotency_key, CREATED, data)
        return self._receipt(answer, duplicate, item.idempotency_key, item.case_reference, CREATED)

    def send_message(self, item: OutboundMessage) -> Receipt:
        event = WITHDRAWN if item.withdrawal else MESSAGE
        data = {
            "case_reference": item.case_reference,
            "agency_reference": item.agency_reference,
            "agency_id": item.agency_id,
            "language": item.language,
            "text": item.text,
            "attachments": self._documents(item.attachments),
        }
        answer, duplicate = self._post(item.idempotency_key, event, data)
        return self._receipt(answer, duplicate, item.idempotency_key, item.agency_reference, event)

    def check(self) -> Health:
        """A signed `loket.ping` event: passes when the agency verifies it and answers 2xx."""
        started = time.perf_counter()
        try:
            self._post(f"ping_{uuid.uuid4().hex}", PING, {})
        except (TransientError, PermanentError) as exc:
            return Health(False, exc.detail, (time.perf_counter() - started) * 1000)
        return Health(
            True, "the agency verified a signed ping", (time.perf_counter() - started) * 1000
        )

    def _documents(self, attachments: tuple[Attachment, ...]) -> list[dict[str, str]]:
        if not self.config["send_attachments"]:
            return []
        return [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "data": base64.b64encode(a.data).decode("ascii"),
            }
            for a in attachments
        ]

    def close(self) -> None:
        self.http.close()
