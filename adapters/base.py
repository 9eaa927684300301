"""The adapter interface and the value objects that cross it.

An adapter speaks one transport (REST, SOAP, email, SFTP) to one agency system. It knows nothing of
the database or Flask. The hub gives it an `Outbound` and gets a `Receipt`; it asks `poll` for
`StatusUpdate`s and a cursor to resume from; `check` powers "test connection".

What an adapter can do depends on its configuration as much as on its class: a SOAP agency whose
WSDL has no status operation cannot be polled, a REST agency without a message path takes no
replies. So a class declares what its transport *can* do (`declared_capabilities`) and each
instance says what it *does* with its configuration (`capabilities`). Everything that decides
(the worker's jobs, the conformance kit, `loket agencies`, the console) reads the instance.

Errors are classified once, here: `TransientError` (try again later, same idempotency key) or
`PermanentError` (retrying will not help; an operator must act). Anything else escaping an
adapter is a bug and is treated as transient by the worker, with the traceback logged.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError

# Capabilities an adapter may declare and offer. The conformance kit skips what the configured
# adapter does not offer, naming the capability.
DELIVER = "deliver"
POLL = "poll"
POLL_CHANGES = "poll_changes"  # one request per tick: changes since a cursor
POLL_PER_ITEM = "poll_per_item"  # one request per open case
ATTACHMENTS = "attachments"
MESSAGES = "messages"  # carries a consumer's reply to an open case (send_message)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Outbound:
    """One case for one agency, rendered in the agency's own format."""

    idempotency_key: str
    case_reference: str
    agency_id: str
    payload: Mapping[str, Any]
    language: str = "en"
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class OutboundMessage:
    """A consumer's reply to an agency about a case it already has (its information request)."""

    idempotency_key: str
    case_reference: str
    agency_id: str
    agency_reference: str
    text: str
    language: str = "en"
    attachments: tuple[Attachment, ...] = ()
    # The consumer withdraws the case (the text says so too): a transport with event types
    # (webhooks) tells the agency so in a field of its own, not in words it must read.
    withdrawal: bool = False


@dataclass(frozen=True)
class Receipt:
    """The agency accepted the case. `duplicate` is true when it recognised a repeat delivery.

    `provisional` is true when `agency_reference` is not yet the agency's own number but a name
    the adapter chose (an SFTP file name before the agency's batch numbers the case, our own case
    reference until an email agency replies with its own): show it as a placeholder, never as
    the agency's reference, and expect that to arrive with a later status."""

    agency_reference: str
    duplicate: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)
    provisional: bool = False


@dataclass(frozen=True)
class OpenItem:
    """A case the agency still handles, as the hub knows it: what per-case polling asks about."""

    agency_reference: str
    case_reference: str
    idempotency_key: str
    agency_status: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One status change in the agency's own words (its own code, time and message)."""

    agency_status: str
    occurred_at: datetime
    agency_reference: str | None = None
    case_reference: str | None = None
    message: str | None = None
    update_id: str | None = None
    # Set when a machine wrote it (an out-of-office reply, say: the reason): the hub keeps it on
    # the timeline as a note and never applies a status from it.
    automatic: str | None = None
    # An information request's structured reason (a key of the mapping's
    # `information_requests`: disputed_bill, customer_number, ...), which the consumer reads in
    # their own language next to the agency's free text.
    reason: str | None = None

    def key(self) -> str:
        """A stable identity for de-duplication: the agency's event id, else a content hash."""
        if self.update_id:
            if len(self.update_id) <= 160:
                return f"id:{self.update_id}"
            # An over-long event id (a 500-character Message-ID) still fits the key's column.
            return "id:sha256:" + hashlib.sha256(self.update_id.encode()).hexdigest()
        basis = json.dumps(
            [
                self.agency_reference,
                self.case_reference,
                self.agency_status,
                self.occurred_at.isoformat(),
                self.message,
            ],
            ensure_ascii=False,
        )
        return "h:" + hashlib.sha256(basis.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class InboundProblem:
    """Something the agency sent that could not be read (broken MIME, a bad status file, ...).

    Adapters report it instead of raising, so one bad item neither blocks the rest nor is lost:
    the hub keeps it for operators. `source` identifies it at the agency (Message-ID, file name).
    """

    source: str
    reason: str
    excerpt: str = ""


@dataclass(frozen=True)
class Refusal:
    """The agency's side refused a delivery the transport had accepted: a file moved to its
    rejected folder (with its reason), a mail server's permanent bounce. The hub turns the
    delivery into a dead letter with this reason; the consumer is told the hub is sorting it
    out, never that the agency has the case. The delivery is named by the receipt's
    `agency_reference` (an SFTP file name) or by its `idempotency_key` (a bounce names the
    case mail's Message-ID, which is derived from it)."""

    source: str
    reason: str
    agency_reference: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class PollResult:
    updates: tuple[StatusUpdate, ...]
    cursor: str | None
    problems: tuple[InboundProblem, ...] = ()
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class Health:
    ok: bool
    message: str
    latency_ms: float | None = None


class AdapterError(Exception):
    """Base of what adapters raise. `detail` is safe to show operators (no secrets)."""

    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, *, raw: Mapping[str, Any] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.raw = dict(raw or {})


class TransientError(AdapterError):
    """Try again later with the same idempotency key (timeouts, 5xx, throttling, lost connection)."""

    retryable = True

    def __init__(self, detail: str, *, retry_after: float | None = None, raw=None):
        super().__init__(detail, raw=raw)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    """Retrying will not help: the agency refused the content or the configuration is wrong."""


class ConfigurationError(PermanentError):
    """The adapter's configuration is invalid; the message names each bad key."""


class ContractViolation(PermanentError):
    """The rendered payload does not fit the agency's own contract (its JSON Schema, XSD, WSDL
    types, file layout or email contract). Found before sending: the agency received nothing,
    and retrying the same payload cannot help. `problems` are the contract check's own
    sentences (agency field, the contract's message, the fix)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        super().__init__(
            "not sent: the payload does not fit the agency's contract: " + "; ".join(self.problems)
        )


def how_often(count: int, total: int) -> str:
    return "in every sample case" if count >= total else f"in {count} of {total} sample cases"


class ContractChecker:
    """An agency's contract, read and compiled once, to hold rendered payloads against.

    One object serves both callers: `loket mappings validate` runs `check_all` on sample cases,
    and the worker calls it on every case just before it leaves (so building it is where the
    cost goes; a call should cost little). `problems` are about the contract or the adapter
    configuration themselves (a missing schema, a WSDL without the element the configuration
    names): `loket mappings validate` reports them, the send path does not hold them against a
    case. A per-payload problem may say `{how_often}`: how many sample cases have it.
    """

    def __init__(
        self,
        each: Callable[[Mapping[str, Any]], Sequence[str]] | None = None,
        problems: Sequence[str] = (),
    ):
        self._each = each
        self.problems = tuple(problems)
        # Compiled validators (lxml's XMLSchema, zeep's client) are not all safe to share
        # between the sending threads of one agency; a check is short, so they take turns.
        self._lock = threading.Lock()

    def __call__(self, payload: Mapping[str, Any]) -> list[str]:
        """What is wrong with one payload under the contract; [] when it fits."""
        if self._each is None:
            return []
        with self._lock:
            found = self._each(payload)
        return [text.replace(" {how_often}", "") for text in dict.fromkeys(found)]

    def findings(self, payloads: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
        """Each distinct problem of the payloads, with the positions of the payloads that have
        it (so a caller can say which sample cases, in which language, fail)."""
        found: dict[str, list[int]] = {}
        each = self._each
        for number, payload in enumerate(payloads):
            for text in dict.fromkeys(each(payload) if each is not None else ()):
                found.setdefault(text, []).append(number)
        return found

    def check_all(self, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        """Every distinct problem of the payloads, then the contract's own."""
        found = [
            text.replace("{how_often}", how_often(len(where), len(payloads)))
            for text, where in self.findings(payloads).items()
        ]
        return found + [text for text in self.problems if text not in found]


# A cell a spreadsheet would run as a formula starts with one of these (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """Text as a CSV cell that no spreadsheet runs as a formula: one rule for every CSV the
    hub writes (agency case files, the workspace's export)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def secret_fields(schema: type[Schema]) -> frozenset[str]:
    return frozenset(name for name, f in schema().fields.items() if f.metadata.get("secret"))


def mask(config: Mapping[str, Any], schema: type[Schema]) -> dict[str, Any]:
    """The configuration with every secret field replaced by '***', for logs and screens."""
    secrets = secret_fields(schema)
    return {k: ("***" if k in secrets and v else v) for k, v in config.items()}


class Adapter(ABC):
    """Base class of every transport. Subclasses set the three class attributes, and override
    `capabilities` when a setting switches one off."""

    kind: ClassVar[str]
    config_schema: ClassVar[type[Schema]]
    # Everything the transport can do with some configuration; `capabilities` narrows it.
    declared_capabilities: ClassVar[frozenset[str]]
    # How many deliveries may be in flight at once from several threads. 1 unless the adapter
    # is safe to call concurrently (the REST adapter keeps a session per thread).
    max_concurrency: ClassVar[int] = 1

    def __init__(self, config: Mapping[str, Any]):
        try:
            self.config: dict[str, Any] = self.config_schema().load(dict(config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{key}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for key, msgs in sorted(exc.messages_dict.items())
            )
            raise ConfigurationError(f"{self.kind} adapter configuration: {problems}") from None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Adapters written before `declared_capabilities` set a class attribute
        `capabilities`; it is taken as the declaration, so the instance property still rules."""
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get("capabilities")
        if isinstance(old, frozenset | set):
            cls.declared_capabilities = frozenset(old)
            delattr(cls, "capabilities")

    @property
    def capabilities(self) -> frozenset[str]:
        """What this adapter does with its configuration: the one answer the worker (poll
        jobs, replies), the conformance kit, the CLI and the console read. A subset of
        `declared_capabilities`; by default all of it."""
        return self.declared_capabilities

    @abstractmethod
    def deliver(self, item: Outbound) -> Receipt: ...

    def poll(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        raise PermanentError(f"the {self.kind} adapter cannot poll")

    def cursor_behind(self, stored: str, returned: str) -> bool:
        """Whether a poll handed `stored` answered with a cursor *before* it: the agency's feed
        went backwards (restored from a backup, reset). The hub then re-reads the feed from an
        empty cursor and tells operators. The default understands the two common formats, a
        sequence number and an ISO 8601 time; anything else is never called behind. An adapter
        with its own cursor format overrides this (it is the one that knows the format)."""
        try:
            return int(returned) < int(stored)
        except ValueError:
            pass
        try:
            return _cursor_time(returned) < _cursor_time(stored)
        except ValueError:
            return False

    def send_message(self, item: OutboundMessage) -> Receipt:
        """Send a consumer's reply on an open case (capability MESSAGES)."""
        raise PermanentError(
            f"the {self.kind} adapter cannot carry messages; an operator must forward this one"
        )

    @abstractmethod
    def check(self) -> Health: ...

    @classmethod
    def contract_checker(cls, contract_dir: Path, config: Mapping[str, Any]) -> ContractChecker:
        """The agency's contract in `contract_dir` (its schema, WSDL, file layout or mail
        contract), compiled once for this configuration. Transports with a machine-readable
        contract override this; the default checks what an older `check_contract` override
        checks, else nothing."""
        if cls.check_contract.__func__ is not Adapter.check_contract.__func__:  # type: ignore[attr-defined]
            return ContractChecker(
                lambda payload: cls.check_contract(contract_dir, config, [payload])
            )
        return ContractChecker()

    @classmethod
    def check_contract(
        cls, contract_dir: Path, config: Mapping[str, Any], payloads: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Problems between payloads a mapping renders and the agency's contract in
        `contract_dir`: each one sentence naming the agency field and the fix. `loket mappings
        validate` calls it with sample cases; it is `contract_checker(...).check_all(...)`."""
        return cls.contract_checker(contract_dir, config).check_all(payloads)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Adapters are long-lived; the worker closes them on shutdown."""

    def masked_config(self) -> dict[str, Any]:
        return mask(self.config, self.config_schema)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.masked_config()}>"


def _cursor_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a cursor time without a zone is not comparable")
    return parsed


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path in nested mappings, or None."""
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data
