"""SOAP adapter: an agency's own WSDL, called with zeep over the agency's `HttpClient` pool.

deliver: call `submit_operation` with the rendered payload (its keys are the operation's
parameters, dotted mapping fields become nested complex types) plus the idempotency key in the
`idempotency_key_parameter` element; the agency's reference is read from `reference_field` of the
answer. poll: `status_mode: changes` calls `status_operation` once per tick with the cursor in
`cursor_parameter` (following `has_more`); `per_case` calls it per open case with
`reference_parameter`. send_message: call `message_operation` with the consumer's reply, its
elements named by `message:` (the agency's case id, our reference, the text, the attachments as
base64 with their file names) plus the idempotency key, so that a repeat is recognised; without a
message operation the adapter does not declare MESSAGES and a reply goes to an operator. check:
load the WSDL and call `ping_operation` (or the changes operation from the start). A WS-Security
UsernameToken is sent when `username` is set.

Errors are classified as SOAP 1.1 defines its fault classes: a Client (1.2: Sender) fault means
"do not resend without change" -> PermanentError; a Server (1.2: Receiver) fault means "may
succeed later" -> TransientError. HTTP 5xx, timeouts, lost connections and unreadable envelopes
are transient (the same idempotency key makes a retry safe). An answer that declares a DTD or XML
entities (entity-expansion bombs, external entities/XXE) is refused without expanding or fetching
anything and is *permanent*: SOAP forbids DTDs in messages, so such an answer is an attack or a
broken gateway that needs a person, and retrying would only send the consumer's data again into it.

zeep sends through `CappedTransport`, a zeep Transport whose post/get go through
`adapters.http.HttpClient`: each call has the same whole-call deadline (`deadline_seconds`) and
answer size cap (`max_response_bytes`) as a REST call, classified the same way. `requests` stays
only because zeep's Transport base class makes a Session; it is built with `trust_env=False` and
nothing is sent through it (a `file://` WSDL is read directly, an `http(s)://` one through the
client).
"""

from __future__ import annotations

import base64
import copy
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.exceptions as zx
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from zeep.helpers import serialize_object
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from adapters.base import (
    DELIVER,
    MESSAGES,
    POLL,
    POLL_CHANGES,
    POLL_PER_ITEM,
    Adapter,
    Attachment,
    ConfigurationError,
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
from adapters.http import Answer, HttpClient, HttpSettings, client_for
from adapters.wire import ChangesSchema, StatusSchema, opt_str, parse_time

# Where a relative `wsdl` path is looked for after the working directory: the source checkout
# (the folder holding `adapters/` and `contracts/`).
SOURCE_ROOT = Path(__file__).resolve().parent.parent

CLIENT_FAULTS = frozenset({"Client", "Sender"})
SERVER_FAULTS = frozenset({"Server", "Receiver"})
SETUP_FAULTS = frozenset({"VersionMismatch", "MustUnderstand", "DataEncodingUnknown"})
# WS-Security 1.0 fault codes (wsse namespace) and agencies' own "Client.Authentication" style.
SECURITY_FAULTS = frozenset(
    {
        "FailedAuthentication",
        "InvalidSecurityToken",
        "InvalidSecurity",
        "SecurityTokenUnavailable",
        "UnsupportedSecurityToken",
        "FailedCheck",
    }
)
CREDENTIALS_HINT = (
    " (check the credentials: username and password in the agency's adapter configuration)"
)
TRANSIENT_HTTP = frozenset({408, 425, 429})
# A DOCTYPE in the prolog (after an optional BOM, XML declaration, comments and PIs).
DOCTYPE = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE", re.S | re.I)
# An HTML page (`<!DOCTYPE html ...>` without an internal subset, or `<html`): what a proxy shows.
# It is never parsed (so an XHTML doctype's DTD is never fetched), only reported.
HTML_PAGE = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*"
    rb'(?:<!DOCTYPE\s+html(?:\s+PUBLIC\s+"[^"]*"(?:\s+"[^"]*")?)?\s*>|<html[\s>])',
    re.S | re.I,
)


class HostileAnswer(Exception):
    """The agency's answer declares a DTD: refused before any XML parser reads it."""


class MessageSchema(Schema):
    """Where a consumer's reply goes in the request of `message_operation`: element names, dotted
    for nested ones (like the `fields:` of a case), and where the answer says what it did."""

    agency_reference = fields.String(
        required=True, metadata={"doc": "element of the agency's own case id (e.g. DossierNummer)"}
    )
    text = fields.String(required=True, metadata={"doc": "element of the reply's text"})
    case_reference = fields.String(
        load_default=None, metadata={"doc": "element of our case reference (LK-...), if any"}
    )
    idempotency_key = fields.String(
        load_default=None,
        metadata={"doc": "element of the idempotency key; default: idempotency_key_parameter"},
    )
    attachments = fields.String(
        load_default=None,
        metadata={
            "doc": "dotted path of the repeated attachment element (e.g. Bijlagen.Bijlage); "
            "none: the agency takes no attachments with a reply"
        },
    )
    attachment_name = fields.String(
        load_default="filename", metadata={"doc": "attachment element: the file name"}
    )
    attachment_content = fields.String(
        load_default="content", metadata={"doc": "attachment element: the bytes (base64Binary)"}
    )
    attachment_type = fields.String(
        load_default=None, metadata={"doc": "attachment element: the content type, if any"}
    )
    reference = fields.String(
        load_default=None, metadata={"doc": "dotted path of the agency's message id in the answer"}
    )
    duplicate = fields.String(
        load_default=None, metadata={"doc": "dotted path of 'this was a repeat' in the answer"}
    )


class SoapConfig(HttpSettings):
    wsdl = fields.String(
        required=True,
        metadata={"doc": "WSDL file; relative paths from the working dir or the source checkout"},
    )
    endpoint = fields.Url(
        load_default=None,
        require_tld=False,
        metadata={"doc": "service URL; overrides the WSDL's soap:address"},
    )
    binding = fields.String(
        load_default=None, metadata={"doc": "binding name when the WSDL has several"}
    )
    submit_operation = fields.String(required=True)
    idempotency_key_parameter = fields.String(load_default="IdempotencyKey")
    reference_field = fields.String(
        load_default="reference", metadata={"doc": "dotted path of the agency's case id"}
    )
    duplicate_field = fields.String(
        load_default=None, metadata={"doc": "dotted path of 'this was a repeat' in the answer"}
    )
    status_operation = fields.String(load_default=None)
    status_mode = fields.String(
        load_default="changes", validate=validate.OneOf(["changes", "per_case"])
    )
    cursor_parameter = fields.String(load_default="since")
    initial_cursor = fields.String(load_default="0")
    page_size_parameter = fields.String(load_default=None)
    page_size = fields.Integer(load_default=200, validate=validate.Range(min=1))
    max_pages = fields.Integer(load_default=20, validate=validate.Range(min=1))
    changes = fields.Nested(ChangesSchema, load_default=lambda: ChangesSchema().load({}))
    reference_parameter = fields.String(load_default="reference")
    status = fields.Nested(StatusSchema, load_default=lambda: StatusSchema().load({}))
    ping_operation = fields.String(load_default=None)
    message_operation = fields.String(
        load_default=None,
        metadata={"doc": "carries a consumer's reply on an open case; none: an operator forwards"},
    )
    message = fields.Nested(MessageSchema, load_default=None)
    username = fields.String(load_default=None)
    password = fields.String(load_default=None, metadata={"secret": True})
    password_digest = fields.Boolean(
        load_default=False, metadata={"doc": "send PasswordDigest instead of PasswordText"}
    )

    @validates_schema
    def _message_elements(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("message_operation") and not data.get("message"):
            raise ValidationError(
                "name the elements of message_operation: message: {agency_reference: ..., "
                "text: ..., attachments: ...}",
                "message",
            )


class SoapAdapter(Adapter):
    kind = "soap"
    config_schema = SoapConfig
    declared_capabilities = frozenset({DELIVER, POLL, POLL_CHANGES, POLL_PER_ITEM, MESSAGES})

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.http = client_for(
            self.config,
        )
        self._last = threading.local()
        self._lock = threading.Lock()
        self._client: zeep.Client | None = None
        self._service: Any = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Polling only with a `status_operation` (in its `status_mode`), replies only with a
        `message_operation`: an agency whose WSDL lacks them is neither polled nor sent replies."""
        caps = {DELIVER}
        if self.config["status_operation"]:
            caps |= {
                POLL,
                POLL_CHANGES if self.config["status_mode"] == "changes" else POLL_PER_ITEM,
            }
        if self.config["message_operation"]:
            caps.add(MESSAGES)
        return frozenset(caps)

    # ---------------------------------------------------------------------------------- the WSDL

    def wsdl_path(self) -> Path:
        given = Path(self.config["wsdl"])
        candidates = [given] if given.is_absolute() else [Path.cwd() / given, SOURCE_ROOT / given]
        for path in candidates:
            if path.is_file():
                return path
        raise ConfigurationError(
            f"soap adapter: the WSDL {self.config['wsdl']!r} is not a file (looked at "
            + ", ".join(str(p) for p in dict.fromkeys(candidates))
            + "); give an absolute path or one relative to the repository root"
        )

    def _load(self) -> tuple[zeep.Client, Any]:
        """The zeep client and service proxy, built once (WSDL parsing is not cheap)."""
        with self._lock:
            if self._service is not None and self._client is not None:
                return self._client, self._service
            path = self.wsdl_path()
            transport = CappedTransport(self.http, self._inspect)
            settings = zeep.Settings(
                strict=True,
                forbid_dtd=True,
                forbid_entities=True,
                forbid_external=True,
                xml_huge_tree=False,
            )
            wsse = None
            if self.config["username"]:
                wsse = UsernameToken(
                    self.config["username"],
                    self.config["password"] or "",
                    use_digest=self.config["password_digest"],
                )
            try:
                client = zeep.Client(str(path), transport=transport, settings=settings, wsse=wsse)
                binding = self._binding(client)
            except ConfigurationError:
                raise
            except Exception as exc:
                raise ConfigurationError(
                    f"soap adapter: cannot read the WSDL {path}: {type(exc).__name__}: {_short(exc)}"
                ) from None
            address = self.config["endpoint"] or self._address(client, binding)
            if not address:
                raise ConfigurationError(
                    f"soap adapter: the WSDL {path} names no address for {binding.name.localname}; "
                    "set `endpoint` in the adapter configuration"
                )
            names = set(binding._operations)
            for key in (
                "submit_operation",
                "status_operation",
                "ping_operation",
                "message_operation",
            ):
                name = self.config[key]
                if name and name not in names:
                    raise ConfigurationError(
                        f"soap adapter: {key} {name!r} is not an operation of {path.name}; "
                        f"it offers: {', '.join(sorted(names))}"
                    )
            self._client = client
            self._service = client.create_service(binding.name, address)
            return client, self._service

    def _binding(self, client: zeep.Client) -> Any:
        bindings = client.wsdl.bindings
        wanted = self.config["binding"]
        if wanted:
            for binding in bindings.values():
                if wanted in (binding.name.text, binding.name.localname):
                    return binding
            known = ", ".join(b.name.localname for b in bindings.values())
            raise ConfigurationError(f"soap adapter: no binding {wanted!r} in the WSDL ({known})")
        for service in client.wsdl.services.values():
            for port in service.ports.values():
                return port.binding
        if bindings:
            return next(iter(bindings.values()))
        raise ConfigurationError("soap adapter: the WSDL defines no binding")

    @staticmethod
    def _address(client: zeep.Client, binding: Any) -> str | None:
        for service in client.wsdl.services.values():
            for port in service.ports.values():
                if port.binding is binding:
                    return port.binding_options.get("address")
        return None

    # ------------------------------------------------------------------------------- transport

    def _inspect(self, response: Answer) -> None:
        """Every HTTP answer, before zeep parses it: note the status, refuse a DTD outright.

        zeep (forbid_dtd, forbid_entities) and lxml (no entity resolution, no network) refuse
        these too, but libxml2 may fail first with a mere syntax error on an entity bomb; checking
        the bytes here makes the refusal explicit and independent of the parser's version."""
        self._last.status = response.status
        head = response.body[:4096]
        if HTML_PAGE.match(head):
            # A gateway's error or maintenance page, not an attack: retried later.
            raise TransientError(
                f"the agency's answer is not a readable SOAP envelope: HTTP {response.status} "
                f"with an HTML page (a gateway or maintenance page?): {response.text(200)!r}; "
                "retrying with the same idempotency key is safe",
                raw={"status": response.status, "body": response.text(2000)},
            )
        if DOCTYPE.match(head):
            raise HostileAnswer(f"HTTP {response.status}")

    def _call(self, operation: str, arguments: Mapping[str, Any]) -> Any:
        """Call one operation and return its answer as plain data; every failure classified."""
        client, service = self._load()
        try:
            # Serialising first separates "our payload does not fit the contract" (permanent)
            # from whatever happens once the request is on the wire.
            client.create_message(service, operation, **arguments)
        except (TypeError, zx.ValidationError, ValueError) as exc:
            raise PermanentError(
                f"{operation}: the request does not fit the agency's WSDL: {_short(exc)}"
                " (check the `fields:` of the agency's mapping file)"
            ) from None
        except Exception as exc:
            raise PermanentError(
                f"{operation}: cannot build the request: {type(exc).__name__}: {_short(exc)}"
            ) from None
        self._last.status = None
        try:
            answer = getattr(service, operation)(**arguments)
        except zx.Fault as exc:
            raise _fault_error(operation, exc, self._last.status) from None
        except TransientError as exc:  # from the HTTP client: deadline, connection
            raise TransientError(
                f"{operation}: {exc.detail}", retry_after=exc.retry_after, raw=exc.raw
            ) from None
        except PermanentError as exc:  # from the HTTP client: size cap, certificate
            raise PermanentError(f"{operation}: {exc.detail}", raw=exc.raw) from None
        except (
            HostileAnswer,
            zx.DTDForbidden,
            zx.EntitiesForbidden,
            zx.ExternalReferenceForbidden,
        ) as exc:
            raise PermanentError(
                f"{operation}: refused the agency's answer: it declares a DTD or XML entities "
                f"({type(exc).__name__}), as entity-expansion ('billion laughs') and external-"
                "entity (XXE) attacks do; nothing was expanded or fetched. SOAP forbids DTDs in "
                "messages: ask the agency to check its gateway before resending",
                raw={"error": type(exc).__name__},
            ) from None
        except zx.TransportError as exc:
            raise _transport_error(operation, exc) from None
        except (zx.XMLSyntaxError, zx.XMLParseError, zx.UnexpectedElementError) as exc:
            raise TransientError(
                f"{operation}: the agency's answer is not a readable SOAP envelope "
                f"({_short(exc)}); retrying with the same idempotency key is safe"
            ) from None
        except Exception as exc:
            raise TransientError(
                f"{operation}: unexpected {type(exc).__name__} reading the answer: {_short(exc)}"
            ) from None
        return serialize_object(answer, dict)

    # ------------------------------------------------------------------------------- interface

    def deliver(self, item: Outbound) -> Receipt:
        operation = self.config["submit_operation"]
        arguments = dict(item.payload)
        arguments[self.config["idempotency_key_parameter"]] = item.idempotency_key
        body = self._call(operation, arguments)
        reference = dig(body, self.config["reference_field"]) if isinstance(body, dict) else body
        if reference in (None, ""):
            raise TransientError(
                f"{operation}: the answer has no {self.config['reference_field']!r}: "
                f"{str(body)[:200]}",
                raw={"response": _jsonable(body)},
            )
        duplicate_field = self.config["duplicate_field"]
        duplicate = bool(dig(body, duplicate_field)) if duplicate_field else False
        return Receipt(
            agency_reference=str(reference),
            duplicate=duplicate,
            raw={
                "request": {"operation": operation, "idempotency_key": item.idempotency_key},
                "response": _jsonable(body),
            },
        )

    def send_message(self, item: OutboundMessage) -> Receipt:
        """Call `message_operation` with the reply on the agency's case, its attachments as
        base64 with their file names, and the idempotency key: a repeat is not a second message."""
        operation = self.config["message_operation"]
        if not operation:
            raise PermanentError(
                "this agency's SOAP configuration has no message_operation (its WSDL offers no "
                "way to answer on a case); an operator must forward the reply"
            )
        if item.attachments and not self.config["message"]["attachments"]:
            raise PermanentError(
                f"{operation} takes no attachments in this agency's configuration (message: "
                f"attachments); an operator must forward the reply with "
                f"{', '.join(a.filename for a in item.attachments)}"
            )
        body = self._call(operation, self._message_arguments(item))
        spec = self.config["message"]
        reference = dig(body, spec["reference"]) if spec["reference"] else None
        duplicate = bool(dig(body, spec["duplicate"])) if spec["duplicate"] else False
        return Receipt(
            agency_reference=str(reference)
            if reference not in (None, "")
            else item.agency_reference,
            duplicate=duplicate,
            raw={
                "request": {
                    "operation": operation,
                    "idempotency_key": item.idempotency_key,
                    "agency_reference": item.agency_reference,
                    "attachments": [a.filename for a in item.attachments],
                },
                "response": _jsonable(body),
            },
        )

    def _message_arguments(self, item: OutboundMessage) -> dict[str, Any]:
        """The request of `message_operation`, element names from the `message:` block."""
        spec = self.config["message"]
        arguments: dict[str, Any] = {}
        key = spec["idempotency_key"] or self.config["idempotency_key_parameter"]
        _put(arguments, key, item.idempotency_key)
        _put(arguments, spec["agency_reference"], item.agency_reference)
        if spec["case_reference"]:
            _put(arguments, spec["case_reference"], item.case_reference)
        _put(arguments, spec["text"], item.text)
        if item.attachments:
            files = []
            for attachment in item.attachments:
                one = {
                    spec["attachment_name"]: attachment.filename,
                    spec["attachment_content"]: attachment.data,  # zeep writes base64Binary
                }
                if spec["attachment_type"]:
                    one[spec["attachment_type"]] = attachment.content_type
                files.append(one)
            _put(arguments, spec["attachments"], files)
        return arguments

    def poll(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        if not self.config["status_operation"]:
            raise PermanentError("the soap adapter has no status_operation configured")
        if self.config["status_mode"] == "changes":
            return self._poll_changes(cursor)
        return self._poll_each(cursor, open_items)

    def _poll_changes(self, cursor: str | None) -> PollResult:
        operation = self.config["status_operation"]
        spec = self.config["changes"]
        position = cursor if cursor is not None else self.config["initial_cursor"]
        updates: list[StatusUpdate] = []
        problems: list[InboundProblem] = []
        for _ in range(self.config["max_pages"]):
            arguments: dict[str, Any] = {self.config["cursor_parameter"]: position}
            if self.config["page_size_parameter"]:
                arguments[self.config["page_size_parameter"]] = self.config["page_size"]
            body = self._call(operation, arguments)
            items = dig(body, spec["items"]) if isinstance(body, dict) else None
            if items is None:
                items = []
            if not isinstance(items, list):
                items = [items]
            for entry in items:
                try:
                    updates.append(
                        StatusUpdate(
                            agency_status=_required(dig(entry, spec["status"]), spec["status"]),
                            occurred_at=parse_time(dig(entry, spec["time"])),
                            agency_reference=opt_str(dig(entry, spec["reference"])),
                            case_reference=opt_str(dig(entry, spec["case_reference"])),
                            message=opt_str(dig(entry, spec["message"])),
                            update_id=opt_str(dig(entry, spec["id"])),
                        )
                    )
                except (TypeError, ValueError) as exc:
                    # One unreadable change neither blocks the feed nor disappears.
                    ident = dig(entry, spec["id"]) or dig(entry, spec["reference"]) or "?"
                    problems.append(
                        InboundProblem(
                            source=f"{operation} {spec['id']}={ident}",
                            reason=f"unreadable status change: {exc}",
                            excerpt=str(_jsonable(entry))[:1000],
                        )
                    )
            next_cursor = dig(body, spec["next_cursor"]) if isinstance(body, dict) else None
            if next_cursor is not None:
                position = str(next_cursor)
            if not (isinstance(body, dict) and dig(body, spec["has_more"])):
                break
        return PollResult(tuple(updates), position, tuple(problems))

    def _poll_each(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        operation = self.config["status_operation"]
        spec = self.config["status"]
        updates: list[StatusUpdate] = []
        problems: list[InboundProblem] = []
        for item in open_items:
            source = f"{operation} {item.agency_reference}"
            try:
                body = self._call(
                    operation, {self.config["reference_parameter"]: item.agency_reference}
                )
            except PermanentError as exc:
                if exc.raw.get("scope") != "request":
                    raise  # credentials, configuration: every case would fail the same way
                problems.append(InboundProblem(source, exc.detail))
                continue
            try:
                code = _required(dig(body, spec["status"]), spec["status"])
                if code == item.agency_status:
                    continue
                updates.append(
                    StatusUpdate(
                        agency_status=code,
                        occurred_at=parse_time(dig(body, spec["time"])),
                        agency_reference=item.agency_reference,
                        case_reference=item.case_reference,
                        message=opt_str(dig(body, spec["message"])),
                    )
                )
            except (TypeError, ValueError) as exc:
                problems.append(
                    InboundProblem(source, f"unreadable status: {exc}", str(_jsonable(body))[:1000])
                )
        return PollResult(tuple(updates), cursor, tuple(problems))

    def check(self) -> Health:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            if self.config["ping_operation"]:
                operation = self.config["ping_operation"]
                self._call(operation, {})
            elif self.config["status_operation"] and self.config["status_mode"] == "changes":
                operation = self.config["status_operation"]
                self._call(
                    operation, {self.config["cursor_parameter"]: self.config["initial_cursor"]}
                )
            else:
                self._load()
                return Health(True, "WSDL loaded; no ping_operation to call", elapsed())
        except (TransientError, PermanentError) as exc:
            return Health(False, exc.detail, elapsed())
        return Health(True, f"{operation} answered", elapsed())

    @classmethod
    def contract_checker(cls, contract_dir: Path, config: Mapping[str, Any]) -> ContractChecker:
        """Each payload must fit the input of the WSDL's submit operation, read from the file
        alone (no network): every element must exist (`Melder.Fax` when `Melder` has no `Fax`),
        every required element (minOccurs >= 1) must be filled, and every value must pass the
        XSD types and facets (enumerations, patterns, lengths, dates), which zeep does not check
        itself, so the request zeep builds is validated with the WSDL's schema too. With a
        `message_operation`, every element the `message:` block names must be one of its
        elements, and every element it requires must be one the block fills."""
        try:
            adapter = cls(config)
        except ConfigurationError as exc:
            return ContractChecker(
                problems=[
                    f"adapter: {exc.detail}. Fix: correct the adapter settings in the mapping"
                ]
            )
        try:
            client, service = adapter._load()
        except ConfigurationError as exc:
            return ContractChecker(problems=[f"adapter: {exc.detail}"])
        finally:
            adapter.close()
        wsdl = adapter.wsdl_path()
        operation = adapter.config["submit_operation"]
        body = adapter._binding(client)._operations[operation].input.body
        key_parameter = adapter.config["idempotency_key_parameter"]
        known = {name for name, _ in body.type.elements}
        if key_parameter not in known:
            return ContractChecker(
                problems=[
                    f"adapter.idempotency_key_parameter: {operation} in {wsdl.name} has no element "
                    f"{key_parameter!r} (it has {', '.join(sorted(known))}). Fix: name the element "
                    "that carries the idempotency key"
                ]
            )
        problems = []
        try:
            schema = _xml_schema(wsdl)
        except Exception as exc:
            schema = None
            problems.append(
                f"adapter.wsdl: the XSD in {wsdl.name} does not compile ({_short(exc)}), so values "
                "were not checked against it. Fix: correct the agency's WSDL"
            )
        key = f"LK-7F3K-9QX2.{contract_dir.name}.1"

        def check(payload: Mapping[str, Any]) -> list[str]:
            arguments = {**payload, key_parameter: key}
            found = _structure_problems(body.type, arguments, operation, wsdl.name, "")
            return found or _value_problems(
                client, service, operation, arguments, schema, wsdl.name
            )

        problems += _message_problems(adapter, client, service, contract_dir.name, wsdl.name)
        return ContractChecker(check, problems)

    def close(self) -> None:
        self.http.close()


class _Reply:
    """What zeep reads of an HTTP answer (the shape of a requests.Response it uses)."""

    encoding = None

    def __init__(self, answer: Answer):
        self.status_code = answer.status
        self.content = answer.body
        self.headers = answer.headers

    def close(self) -> None:
        pass


class CappedTransport(Transport):
    """zeep's transport over the agency's HttpClient: SOAP calls get the deadline and the cap.

    `inspect` sees every answer before zeep parses it (the DOCTYPE refusal)."""

    def __init__(self, http: HttpClient, inspect: Any):
        session = requests.Session()
        session.trust_env = False  # zeep's base class wants one; nothing is sent through it
        super().__init__(session=session, timeout=http.deadline_seconds)
        self._close_session = True
        self.http = http
        self.inspect = inspect

    def post(self, address: str, message: Any, headers: Any) -> Any:
        body = message.encode("utf-8") if isinstance(message, str) else message
        answer = self.http.request(
            "POST", address, path=_path_of(address), body=body, headers=dict(headers or {})
        )
        self.inspect(answer)
        return _Reply(answer)

    def get(self, address: str, params: Any, headers: Any) -> Any:
        answer = self.http.request(
            "GET", address, path=_path_of(address), params=params, headers=dict(headers or {})
        )
        self.inspect(answer)
        return _Reply(answer)

    def _load_remote_data(self, url: str) -> bytes:
        """A WSDL or XSD zeep needs: a file:// one from disk, an http(s):// one via the client."""
        if url.startswith("file://"):
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(url).path)).read_bytes()
        answer = self.http.request("GET", url)
        if not answer.ok:
            raise zx.TransportError(
                f"GET {url}: HTTP {answer.status}", status_code=answer.status, content=answer.body
            )
        return answer.body


def _path_of(address: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(address).path or "/"


# ---------------------------------------------------------------------------- contract check


def _message_problems(
    adapter: SoapAdapter, client: zeep.Client, service: Any, agency: str, wsdl: str
) -> list[str]:
    """The `message:` block against the input of `message_operation` (none configured: none)."""
    operation = adapter.config["message_operation"]
    if not operation:
        return []
    spec = adapter.config["message"]
    body = adapter._binding(client)._operations[operation].input.body
    named = {
        "idempotency_key": spec["idempotency_key"] or adapter.config["idempotency_key_parameter"],
        "agency_reference": spec["agency_reference"],
        "case_reference": spec["case_reference"],
        "text": spec["text"],
        "attachments": spec["attachments"],
    }
    out = []
    filled: set[str] = set()
    for key, path in named.items():
        if not path:
            continue
        element, problem = _element_at(body.type, path, operation)
        if problem:
            where = "adapter.idempotency_key_parameter" if key == "idempotency_key" else key
            out.append(
                f"adapter.message.{where}: {problem} in the agency's {wsdl}. Fix: name the "
                "element that carries it"
            )
            continue
        filled.add(path.split(".")[0])
        if key == "attachments":
            inner = dict(getattr(element.type, "elements", []))
            for part in ("attachment_name", "attachment_content", "attachment_type"):
                name = spec[part]
                if name and name not in inner:
                    out.append(
                        f"adapter.message.{part}: {path} in {operation} has no element {name!r} "
                        f"in the agency's {wsdl} (it has {', '.join(inner) or 'none'}). Fix: "
                        "name one of those"
                    )
            if element.max_occurs != "unbounded" and (element.max_occurs or 1) < 2:
                out.append(
                    f"adapter.message.attachments: {path} in {operation} is not repeated in the "
                    f"agency's {wsdl}; a reply may have several attachments. Fix: name the "
                    "repeated element (e.g. Bijlagen.Bijlage, not Bijlagen)"
                )
    if out:
        return out  # a misnamed element usually is the required one left empty
    for name, element in body.type.elements:
        if element.min_occurs >= 1 and name not in filled:
            out.append(
                f"adapter.message: the agency's {wsdl} requires {name} in {operation}, which the "
                "message: block does not fill. Fix: name it there (agency_reference, text, ...)"
            )
    if out:
        return out
    sample = OutboundMessage(
        idempotency_key=f"LK-7F3K-9QX2.{agency}.msg1",
        case_reference="LK-7F3K-9QX2",
        agency_id=agency,
        agency_reference="SAMPLE-1",
        text="Hierbij de gevraagde factuur.",
        attachments=(Attachment("factuur.pdf", "application/pdf", b"%PDF-1.4 sample"),)
        if spec["attachments"]
        else (),
    )
    try:
        client.create_message(service, operation, **adapter._message_arguments(sample))
    except (TypeError, ValueError, zx.Error) as exc:
        return [
            f"adapter.message: zeep cannot build {operation} from the message: block: "
            f"{_short(exc)}. Fix: name elements of the right types in the agency's {wsdl}"
        ]
    return []


def _element_at(xsd_type: Any, path: str, operation: str) -> tuple[Any, str | None]:
    """The element at a dotted path under a complex type, or why there is none."""
    element = None
    where = operation
    for part in path.split("."):
        elements = dict(getattr(xsd_type, "elements", []))
        element = elements.get(part)
        if element is None:
            return None, (
                f"{where} has no element {part!r} (it has {', '.join(elements) or 'none'})"
            )
        xsd_type, where = element.type, part
    return element, None


def _structure_problems(
    xsd_type: Any, value: Mapping[str, Any], operation: str, wsdl: str, path: str
) -> list[str]:
    """Unknown and missing elements of one (nested) payload, against a zeep complex type."""
    elements = dict(xsd_type.elements)
    where = f"{path[:-1]} in {operation}" if path else operation
    out = []
    for name, item in value.items():
        field = f"fields.{path}{name}"
        element = elements.get(name)
        if element is None:
            out.append(
                f"{field}: {where} has no element {name!r} in the agency's {wsdl} (it has "
                f"{', '.join(elements)}). Fix: rename the field to one of those, or remove it"
            )
            continue
        complex_type = hasattr(element.type, "elements")
        for one in item if isinstance(item, list) else [item]:
            if isinstance(one, Mapping) and complex_type:
                out += _structure_problems(element.type, one, operation, wsdl, f"{path}{name}.")
            elif isinstance(one, Mapping):
                out.append(
                    f"{field}: {name} is a simple value in the agency's {wsdl}, not a group of "
                    f"elements. Fix: map one value to {path}{name} instead of "
                    f"{', '.join(f'{path}{name}.{k}' for k in one)}"
                )
            elif complex_type:
                out.append(
                    f"{field}: {name} is a group of elements in the agency's {wsdl} "
                    f"({', '.join(n for n, _ in element.type.elements)}). Fix: map "
                    f"{path}{name}.<element> fields instead of one value"
                )
    for name, element in elements.items():
        if element.min_occurs >= 1 and value.get(name) in (None, "", [], {}):
            out.append(
                f"fields.{path}{name}: the agency's {wsdl} requires {path}{name} in {operation}, "
                "but the mapping leaves it empty {how_often}. Fix: map it in `fields:`, with "
                "default(...) when a case may not have it"
            )
    return out


def _value_problems(
    client: zeep.Client,
    service: Any,
    operation: str,
    arguments: Mapping[str, Any],
    schema: Any,
    wsdl: str,
) -> list[str]:
    """Build the request as zeep would send it; then validate it with the WSDL's XSD."""
    from lxml import etree

    try:
        envelope = client.create_message(service, operation, **arguments)
    except (TypeError, ValueError, zx.Error) as exc:
        return [
            f"fields: zeep cannot build {operation} from the mapped fields: {_short(exc)}. "
            "Fix: give each field a value of its type in the agency's " + wsdl
        ]
    if schema is None:
        return []
    body = envelope.find("{*}Body")
    request = body[0] if body is not None and len(body) else None
    if request is None or schema.validate(etree.ElementTree(copy.deepcopy(request))):
        return []
    out = []
    for error in schema.error_log:
        steps = [re.sub(r"^[^:]*:|\[\d+\]$", "", s) for s in error.path.split("/") if s][1:]
        field = ".".join(steps) or "(payload)"
        message = re.sub(r"^Element '[^']*': ", "", error.message).rstrip(".")
        out.append(
            f"fields.{field}: the agency's {wsdl} refuses the value: {message}. Fix: {_fix(message)}"
        )
    return out


def _fix(message: str) -> str:
    """What usually makes a value fit, by the kind of XSD complaint."""
    for clue, fix in (
        ("'enumeration'", "map(...) the value to one of those codes"),
        ("'maxLength'", "truncate(n) it to the allowed length"),
        ("'minLength'", "map a field that is never empty, or give it a default(...)"),
        ("'pattern'", "transform it to match the pattern (digits, upper, map(...))"),
        ("'xs:date'", "format it with date('%Y-%m-%d')"),
        ("'xs:dateTime'", "format it with datetime"),
        ("Inclusive'", "map a value within the allowed range"),
    ):
        if clue in message:
            return fix
    return "transform the value into the element's XSD type"


def _xml_schema(wsdl: Path) -> Any:
    """The WSDL's embedded XSD as an lxml XMLSchema (None when it has none). Schemas that import
    each other's namespaces are served to each other from memory; nothing is fetched."""
    from lxml import etree

    xs = "http://www.w3.org/2001/XMLSchema"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(wsdl), parser).getroot()
    schemas: dict[str, Any] = {}
    wsdl_ns = "http://schemas.xmlsoap.org/wsdl/"
    for found in root.iterfind(f"{{{wsdl_ns}}}types/{{{xs}}}schema"):
        nsmap = {k: v for k, v in {**root.nsmap, **found.nsmap}.items() if k}
        standalone = etree.Element(found.tag, dict(found.attrib), nsmap=nsmap)
        for child in found:
            standalone.append(copy.deepcopy(child))
        for imported in standalone.iterfind(f"{{{xs}}}import"):
            if imported.get("namespace") and not imported.get("schemaLocation"):
                imported.set("schemaLocation", "loket-wsdl:" + imported.get("namespace"))
        schemas[found.get("targetNamespace") or ""] = standalone
    if not schemas:
        return None

    class FromWsdl(etree.Resolver):
        def resolve(self, url, pubid, context):
            namespace = url.removeprefix("loket-wsdl:")
            if url.startswith("loket-wsdl:") and namespace in schemas:
                return self.resolve_string(etree.tostring(schemas[namespace]), context)
            return None

    schema_parser = etree.XMLParser(resolve_entities=False, no_network=True)
    schema_parser.resolvers.add(FromWsdl())
    main = etree.fromstring(etree.tostring(next(iter(schemas.values()))), schema_parser)
    if len(schemas) > 1:
        # One schema importing every namespace, so that any request element can be validated.
        main = etree.Element(f"{{{xs}}}schema", nsmap={"xs": xs})
        for namespace in schemas:
            main.append(
                etree.Element(
                    f"{{{xs}}}import", namespace=namespace, schemaLocation="loket-wsdl:" + namespace
                )
            )
        main = etree.fromstring(etree.tostring(main), schema_parser)
    return etree.XMLSchema(main)


# ------------------------------------------------------------------------------ classification


def _fault_error(
    operation: str, exc: zx.Fault, status: int | None
) -> TransientError | PermanentError:
    code = str(exc.code or "")
    if not code:
        # zeep's reading of an HTTP error whose body is XML but not a SOAP Fault (a proxy page).
        detail = exc.detail
        body = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail or "")
        return TransientError(
            f"{operation}: HTTP {status or '?'} without a SOAP fault: {body[:200]!r}",
            raw={"status": status, "body": body[:2000]},
        )
    local = code.rpartition(":")[2] or code  # soap11env:Client.Authentication -> Client.Auth...
    subcodes = [str(getattr(s, "localname", s)) for s in (exc.subcodes or [])]
    head = local.split(".")[0]
    named = ".".join([local, *subcodes])
    detail = f"{operation}: SOAP fault {named}: {exc.message}"
    raw = {"fault_code": code, "fault_string": str(exc.message)[:2000]}
    security = head in SECURITY_FAULTS or any(
        part in SECURITY_FAULTS or "auth" in part.lower()
        for part in [*local.split(".")[1:], *subcodes]
    )
    if security:
        return PermanentError(detail + CREDENTIALS_HINT, raw={**raw, "scope": "credentials"})
    if head in CLIENT_FAULTS:
        return PermanentError(detail, raw={**raw, "scope": "request"})
    if head in SERVER_FAULTS:
        return TransientError(detail, raw=raw)
    if head in SETUP_FAULTS:
        return PermanentError(
            detail + " (the agency does not accept our SOAP version or headers; check its WSDL)",
            raw={**raw, "scope": "configuration"},
        )
    return TransientError(detail + " (unrecognised fault code: treated as temporary)", raw=raw)


def _transport_error(operation: str, exc: zx.TransportError) -> TransientError | PermanentError:
    status = exc.status_code or 0
    body = exc.content.decode("utf-8", "replace") if isinstance(exc.content, bytes) else ""
    raw = {"status": status, "body": body[:2000]}
    if exc.content is not None and "invalid XML" in str(exc.message):
        return TransientError(
            f"{operation}: HTTP {status} with a malformed SOAP envelope (not well-formed XML: "
            f"{body[:200]!r}); retrying with the same idempotency key is safe",
            raw=raw,
        )
    detail = f"{operation}: HTTP {status}: {_short(exc)}"
    if status >= 500 or status in TRANSIENT_HTTP:
        return TransientError(detail, raw=raw)
    if status in (401, 403):
        return PermanentError(detail + CREDENTIALS_HINT, raw={**raw, "scope": "credentials"})
    return PermanentError(detail, raw={**raw, "scope": "configuration"})


# ------------------------------------------------------------------------------------- helpers


def _put(arguments: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted element path (`Bijlagen.Bijlage`) in zeep's nested-dict arguments."""
    *parents, last = path.split(".")
    for part in parents:
        arguments = arguments.setdefault(part, {})
    arguments[last] = value


def _required(value: Any, name: str) -> str:
    if value is None or value == "":
        raise ValueError(f"no {name!r}")
    return str(value)


def _jsonable(value: Any) -> Any:
    """zeep's answer as JSON-able data for the evidence log."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
