"""Email adapter: cases go out by SMTP to the agency's shared mailbox; replies come back by IMAP.

Many agencies have no API, only a mailbox. This adapter makes that mailbox a reliable channel.

deliver: one mail per case, rendered in the agency's working language from a template
(`templates/email/case.<lang>.txt`), attachments as MIME parts, the case reference in the subject
so replies thread. Templates are Jinja2, not string.Template: payloads are nested and their
optional fields are left out when empty, which wants `if` and loops; Jinja2 comes with Flask. The Message-ID is derived from the idempotency key
(`<{key}@{message_id_domain}>`), so a repeat delivery carries the same Message-ID and the agency
(or its mail filter) recognises it. The agency's own reference is not known until it replies, so
the Receipt's `agency_reference` is our case reference, marked `provisional`; replies are matched
on it.

send_message: a consumer's reply on an open case (usually to the agency's information request) as
a mail in the same thread: subject `Re: [{case_reference}] <Reply from the consumer>` (with the
agency's own reference once known), In-Reply-To/References the case mail's Message-ID, the body
from `templates/email/message.<lang>.txt` with the consumer's text between two rules of dashes,
the consumer's documents as MIME parts, and the headers `X-Loket-Kind: message`,
`X-Loket-Reference` and `X-Loket-Agency-Reference` so the agency's mail filter can file it on the
case. Its Message-ID is derived from the message's idempotency key, like a case mail's: a repeat
carries the same Message-ID and the agency recognises it.

poll: reads the hub's mailbox (`imap_folder`), one StatusUpdate per agency reply, matched to the
case by the reference in the subject or in In-Reply-To/References, status read with
`status_pattern` (or `status_keywords`), de-duplicated by Message-ID. See `EmailAdapter.poll` for
why processed mail is moved only on the *next* poll.

The module is `adapters.email`; it and its neighbours import the standard library's `email`
package absolutely (`from email.message import ...`), which resolves to the standard library
because `adapters/` itself is never on sys.path.

SMTP errors are classified once, here: 4xx replies, lost connections and timeouts are transient;
5xx replies, refused logins and a server that lacks STARTTLS/AUTH are permanent.
"""

from __future__ import annotations

import hashlib
import imaplib
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from email import policy
from email.errors import (
    CloseBoundaryNotFoundDefect,
    MissingHeaderBodySeparatorDefect,
    MultipartInvariantViolationDefect,
    NoBoundaryInMultipartDefect,
    StartBoundaryNotFoundDefect,
)
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from adapters import mailtriage
from adapters.base import (
    ATTACHMENTS,
    DELIVER,
    MESSAGES,
    POLL,
    POLL_CHANGES,
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
    Refusal,
    StatusUpdate,
    TransientError,
)

BUILTIN_TEMPLATES = Path(__file__).parent / "templates" / "email"
CASE_REFERENCE = r"LK-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}"
DEFAULT_STATUS_PATTERN = r"^[ \t]*Status[ \t]*:[ \t]*(?P<status>[A-Za-z][A-Za-z0-9_]*)"
DEFAULT_SUBJECTS = {
    "nl": "[{case_reference}] Nieuw dossier via het Consumentenloket",
    "fr": "[{case_reference}] Nouveau dossier via le Guichet des consommateurs",
    "de": "[{case_reference}] Neue Akte über den Verbraucherschalter",
    "en": "[{case_reference}] New case from the consumer front desk",
}
# The subject of a consumer's reply to the agency: (title, how the agency's own reference is named).
MESSAGE_SUBJECTS = {
    "nl": ("Antwoord van de consument", "uw dossier"),
    "fr": ("Réponse du consommateur", "votre dossier"),
    "de": ("Antwort des Verbrauchers", "Ihre Akte"),
    "en": ("Reply from the consumer", "your case"),
}
# A message key `<case>.<agency>.msg<id>` names the case mail `<case>.<agency>.1` it follows.
MESSAGE_KEY = re.compile(r"^(?P<base>.+)\.msg[^.]*$")
# A reply whose MIME structure is broken in one of these ways is not guessed at: operators look.
STRUCTURAL_DEFECTS = (
    StartBoundaryNotFoundDefect,
    CloseBoundaryNotFoundDefect,
    MultipartInvariantViolationDefect,
    NoBoundaryInMultipartDefect,
    MissingHeaderBodySeparatorDefect,
)
MAX_MESSAGE_TEXT = 4000


# ------------------------------------------------------------------------------------- config


class SubjectTemplate(fields.Field):
    """One template, or one per language (`{nl: ..., fr: ...}`); each names {case_reference}."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        templates = {"*": value} if isinstance(value, str) else value
        if not isinstance(templates, dict) or not templates:
            raise ValidationError("give a text, or a mapping of language to text")
        for lang, text in templates.items():
            if not isinstance(text, str) or "{case_reference}" not in text:
                raise ValidationError(
                    f"the subject for {lang!r} must contain {{case_reference}}, so replies thread"
                )
        return dict(templates)


def _regex(group: str | None) -> Callable[[str], None]:
    def check(value: str) -> None:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValidationError(f"not a valid regular expression: {exc}") from None
        if group and group not in compiled.groupindex:
            raise ValidationError(f"the expression needs a named group (?P<{group}>...)")

    return check


class EmailConfig(Schema):
    # SMTP: how cases go out
    smtp_host = fields.String(required=True)
    smtp_port = fields.Integer(load_default=587, validate=validate.Range(min=1, max=65535))
    smtp_ssl = fields.Boolean(load_default=False, metadata={"doc": "implicit TLS (port 465)"})
    smtp_starttls = fields.Boolean(load_default=True)
    smtp_username = fields.String(load_default=None)
    smtp_password = fields.String(load_default=None, metadata={"secret": True})
    from_address = fields.Email(required=True, metadata={"doc": "the hub's mailbox"})
    to_address = fields.Email(required=True, metadata={"doc": "the agency's mailbox"})
    message_id_domain = fields.String(load_default="loket.invalid")
    subject_template = SubjectTemplate(load_default=lambda: dict(DEFAULT_SUBJECTS))
    template_dir = fields.String(load_default=None, metadata={"doc": "else the built-in ones"})
    template_name = fields.String(load_default="case")
    message_template_name = fields.String(
        load_default="message", metadata={"doc": "the consumer's replies to the agency"}
    )
    # IMAP: how replies come back
    imap_host = fields.String(required=True)
    imap_port = fields.Integer(load_default=993, validate=validate.Range(min=1, max=65535))
    imap_ssl = fields.Boolean(load_default=True)
    imap_username = fields.String(required=True)
    imap_password = fields.String(required=True, metadata={"secret": True})
    imap_folder = fields.String(load_default="INBOX")
    processed_folder = fields.String(load_default="Processed")
    max_messages = fields.Integer(load_default=200, validate=validate.Range(min=1))
    # Reading a reply
    status_pattern = fields.String(load_default=None, validate=_regex("status"))
    status_keywords = fields.Dict(
        keys=fields.String(), values=fields.String(), load_default=None
    )  # phrase in the reply -> the agency's status code
    reference_pattern = fields.String(load_default=None, validate=_regex("reference"))
    case_reference_pattern = fields.String(load_default=CASE_REFERENCE, validate=_regex(None))
    allowed_senders = fields.List(
        fields.String(validate=validate.Length(min=3)),
        load_default=None,
        metadata={
            "doc": "addresses or domains (`@agency.be`) whose mail may set a status; "
            "default: the domain of to_address. Mail from anyone else is an operator problem."
        },
    )
    # Transport: seconds to wait for each server's answer
    smtp_timeout = fields.Float(load_default=30.0, validate=validate.Range(min=0.01))
    imap_timeout = fields.Float(load_default=30.0, validate=validate.Range(min=0.01))
    verify_tls = fields.Boolean(load_default=True)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("smtp_ssl") and data.get("smtp_starttls"):
            raise ValidationError(
                "choose smtp_ssl (implicit TLS) or smtp_starttls, not both", "smtp_starttls"
            )
        if data.get("smtp_password") and not data.get("smtp_username"):
            raise ValidationError("a password needs smtp_username", "smtp_username")
        if data.get("status_pattern") is None and not data.get("status_keywords"):
            data["status_pattern"] = DEFAULT_STATUS_PATTERN


# ------------------------------------------------------------------------------------- cursor


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    """`"<uidvalidity>:<last uid returned>"`, or None when there is none or it is unreadable."""
    if not cursor:
        return None
    validity, _, last = cursor.partition(":")
    if validity.isdigit() and last.isdigit():
        return int(validity), int(last)
    return None


# ------------------------------------------------------------------------------------ adapter


class EmailAdapter(Adapter):
    kind = "email"
    config_schema = EmailConfig
    declared_capabilities = frozenset({DELIVER, POLL, POLL_CHANGES, ATTACHMENTS, MESSAGES})

    def __init__(
        self, config: Mapping[str, Any], *, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(config)
        self.clock = clock or (lambda: datetime.now(UTC))
        c = self.config
        self.status_re = re.compile(c["status_pattern"], re.M) if c["status_pattern"] else None
        self.reference_re = (
            re.compile(c["reference_pattern"], re.M | re.I) if c["reference_pattern"] else None
        )
        self.case_re = re.compile(c["case_reference_pattern"])
        self.allowed_senders = tuple(
            c["allowed_senders"] or ("@" + c["to_address"].rsplit("@", 1)[1],)
        )
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(
                [p for p in (c["template_dir"], str(BUILTIN_TEMPLATES)) if p]
            ),
            undefined=jinja2.ChainableUndefined,
            autoescape=False,  # plain text mail
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # ------------------------------------------------------------------------------ composing

    def message_id(self, idempotency_key: str) -> str:
        """The same key always gives the same Message-ID: how the agency spots a repeat."""
        local = re.sub(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]", "_", idempotency_key)
        return f"<{local}@{self.config['message_id_domain']}>"

    def compose(self, item: Outbound) -> EmailMessage:
        """The case mail for `item` (public so integrators can preview what the agency gets)."""
        return self._mail(item, self._subject(item), self._body(item), {})

    def compose_message(self, item: OutboundMessage) -> EmailMessage:
        """The mail carrying a consumer's reply on a case the agency already has: in the case's
        thread (subject, In-Reply-To), in the agency's language, with the consumer's documents."""
        headers = {"X-Loket-Kind": "message"}
        case_mail = self.case_message_id(item)
        if case_mail:
            headers["In-Reply-To"] = headers["References"] = case_mail
        if _own_reference(item):
            headers["X-Loket-Agency-Reference"] = item.agency_reference
        return self._mail(item, self._message_subject(item), self._message_body(item), headers)

    def _mail(
        self, item: Outbound | OutboundMessage, subject: str, body: str, headers: dict[str, str]
    ) -> EmailMessage:
        """A mail to the agency: its Message-ID from the idempotency key, the references in
        X-Loket-* headers, `headers` on top, the body in the item's language, its documents."""
        c = self.config
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = c["from_address"]
        msg["To"] = c["to_address"]
        msg["Subject"] = subject
        msg["Date"] = format_datetime(self.clock())
        msg["Message-ID"] = self.message_id(item.idempotency_key)
        msg["Reply-To"] = c["from_address"]
        msg["X-Loket-Reference"] = item.case_reference
        msg["X-Loket-Idempotency-Key"] = item.idempotency_key
        for name, value in headers.items():
            msg[name] = value
        msg.set_content(body, subtype="plain", charset="utf-8")
        msg["Content-Language"] = item.language  # after set_content, which resets Content-*
        _attach(msg, item.attachments)
        _language(msg, item.language)
        return msg

    def case_message_id(self, item: OutboundMessage) -> str | None:
        """The Message-ID of the case mail a message follows, when its key names it: the hub
        keys a message `<case>.<agency>.msg<id>` and the case mail `<case>.<agency>.1`."""
        m = MESSAGE_KEY.match(item.idempotency_key)
        return self.message_id(f"{m.group('base')}.1") if m else None

    def _message_subject(self, item: OutboundMessage) -> str:
        title, theirs = MESSAGE_SUBJECTS.get(item.language) or MESSAGE_SUBJECTS["en"]
        subject = f"Re: [{item.case_reference}] {title}"
        if _own_reference(item):
            subject += f" ({theirs} {item.agency_reference})"
        return " ".join(subject.split())

    def _subject(self, item: Outbound) -> str:
        templates = self.config["subject_template"]
        template = (
            templates.get(item.language)
            or templates.get("*")
            or templates.get("en")
            or next(iter(templates.values()))
        )
        values = _Blank(
            {k: v for k, v in item.payload.items() if isinstance(v, str | int | float)},
            case_reference=item.case_reference,
            agency_id=item.agency_id,
        )
        return " ".join(template.format_map(values).split())

    def _body(self, item: Outbound) -> str:
        short, long = _flatten(item.payload)
        return self._render(
            self.config["template_name"],
            item,
            payload=item.payload,
            fields=short,
            texts=long,
        )

    def _message_body(self, item: OutboundMessage) -> str:
        return self._render(
            self.config["message_template_name"],
            item,
            text=item.text.replace("\r\n", "\n").strip(),
            agency_reference=item.agency_reference if _own_reference(item) else None,
        )

    def _render(self, name: str, item: Outbound | OutboundMessage, **values: Any) -> str:
        """Template `name` in the item's language (else English) with `values`, the references,
        the language and the documents' names, types and sizes, under the reply marker line
        (whatever the template): the agency writes above it, and nothing below it is read."""
        candidates = [f"{name}.{item.language}.txt", f"{name}.en.txt"]
        try:
            template = self.templates.select_template(candidates)
        except jinja2.TemplateNotFound:
            raise PermanentError(
                f"no mail template {' or '.join(candidates)} in "
                f"{self.config['template_dir'] or BUILTIN_TEMPLATES}"
            ) from None
        marker = mailtriage.REPLY_MARKERS.get(item.language, mailtriage.REPLY_MARKERS["en"])
        try:
            return f"{marker}\n\n" + template.render(
                case_reference=item.case_reference,
                agency_id=item.agency_id,
                language=item.language,
                attachments=[
                    {"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
                    for a in item.attachments
                ],
                **values,
            )
        except jinja2.TemplateError as exc:
            raise PermanentError(f"the mail template {template.name} fails: {exc}") from None

    # ----------------------------------------------------------------------------------- SMTP

    @contextmanager
    def _smtp(self) -> Iterator[smtplib.SMTP]:
        c = self.config
        context = self._tls_context()
        smtp: smtplib.SMTP
        if c["smtp_ssl"]:
            smtp = smtplib.SMTP_SSL(
                c["smtp_host"], c["smtp_port"], timeout=c["smtp_timeout"], context=context
            )
        else:
            smtp = smtplib.SMTP(c["smtp_host"], c["smtp_port"], timeout=c["smtp_timeout"])
        try:
            smtp.ehlo()
            if c["smtp_starttls"]:
                smtp.starttls(context=context)
                smtp.ehlo()
            if c["smtp_username"]:
                smtp.login(c["smtp_username"], c["smtp_password"] or "")
            yield smtp
            # the mail is accepted once DATA got its 250; QUIT is a courtesy
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        finally:
            smtp.close()

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.config["verify_tls"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _send(self, msg: EmailMessage, attachments: Sequence[Attachment]) -> dict[str, Any]:
        """Send one mail to the agency; what the Receipt's `raw` says about it."""
        where = f"SMTP {self.config['smtp_host']}:{self.config['smtp_port']}"
        try:
            with self._smtp() as smtp:
                refused = smtp.send_message(
                    msg, from_addr=self.config["from_address"], to_addrs=[self.config["to_address"]]
                )
        except Exception as exc:
            raise smtp_error(where, exc) from None
        return {
            "message_id": msg["Message-ID"],
            "to": self.config["to_address"],
            "subject": msg["Subject"],
            "attachments": [a.filename for a in attachments],
            "refused": {k: [v[0], _text(v[1])] for k, v in refused.items()},
        }

    def deliver(self, item: Outbound) -> Receipt:
        return Receipt(
            agency_reference=item.case_reference,
            raw=self._send(self.compose(item), item.attachments),
            provisional=True,  # our reference, until the agency's reply gives its own
        )

    def send_message(self, item: OutboundMessage) -> Receipt:
        """A consumer's reply as a mail in the case's thread. A repeat (same idempotency key)
        carries the same Message-ID, which is how the agency recognises it, as for case mails."""
        raw = self._send(self.compose_message(item), item.attachments)
        return Receipt(agency_reference=item.agency_reference or item.case_reference, raw=raw)

    # ----------------------------------------------------------------------------------- IMAP

    @contextmanager
    def _imap(self) -> Iterator[imaplib.IMAP4]:
        c = self.config
        imap: imaplib.IMAP4
        if c["imap_ssl"]:
            imap = imaplib.IMAP4_SSL(
                c["imap_host"],
                c["imap_port"],
                ssl_context=self._tls_context(),
                timeout=c["imap_timeout"],
            )
        else:
            imap = imaplib.IMAP4(c["imap_host"], c["imap_port"], timeout=c["imap_timeout"])
        try:
            try:
                imap.login(c["imap_username"], c["imap_password"])
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                reason = _text(exc.args[0] if exc.args else exc)
                where = f"IMAP {c['imap_host']}:{c['imap_port']}"
                if "[UNAVAILABLE]" in reason.upper():  # RFC 5530: the server's trouble, not ours
                    raise TransientError(f"{where} cannot log in now ({reason})") from None
                raise PermanentError(
                    f"{where} refused the login of {c['imap_username']!r} ({reason}): "
                    "check imap_username and imap_password"
                ) from None
            yield imap
        finally:
            with suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def _select(self, imap: imaplib.IMAP4, readonly: bool = False) -> tuple[int, int]:
        """Select the hub's folder; returns (UIDVALIDITY, number of messages)."""
        folder = self.config["imap_folder"]
        typ, data = imap.select(_quote(folder), readonly=readonly)
        if typ != "OK":
            raise PermanentError(
                f"IMAP folder {folder!r} cannot be opened ({_text(data)}): check imap_folder"
            )
        _, validity = imap.response("UIDVALIDITY")
        # Without UIDVALIDITY (not seen in practice) 0 makes every cursor foreign: read all again.
        value = validity[0] if validity and validity[0] else b"0"
        return int(value), int(data[0] or 0)

    def poll(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        """Read the agency's replies in the hub's mailbox.

        Marking mail as processed is the last step of a two-step handshake through the cursor.
        This poll returns what it read and a cursor naming the highest UID it returned; the hub
        saves that cursor in the same transaction as the statuses. Only the *next* poll, handed
        that committed cursor, moves those messages to `processed_folder`. So a hub that crashes
        between reading and committing still has the mail in the folder and reads it again
        (harmless: statuses are saved idempotently by update_id = Message-ID); moving right
        after reading could lose a status forever.

        Moving (rather than a \\Seen flag or a keyword) keeps the watched folder small, so each
        poll reads only what is new, and a person who opens the shared mailbox cannot make the
        hub skip a reply by reading it. Replies that cannot be read are returned as
        InboundProblems, flagged \\Flagged and moved with the rest: never dropped.
        """
        state = parse_cursor(cursor)
        where = f"IMAP {self.config['imap_host']}:{self.config['imap_port']}"
        try:
            with self._imap() as imap:
                validity, _ = self._select(imap)
                if state and state[0] == validity and state[1] > 0:
                    self._move_processed(imap, state[1])
                uids = self._search(imap, "ALL")[: self.config["max_messages"]]
                updates: list[StatusUpdate] = []
                problems: list[InboundProblem] = []
                flagged: list[int] = []
                refusals: list[Refusal] = []
                for uid in uids:
                    raw = self._fetch(imap, uid)
                    if raw is None:
                        continue  # expunged meanwhile by someone else
                    # Every mail is returned, repeats included: the hub counts a repeat (same
                    # Message-ID and content) as a duplicate; nothing vanishes unrecorded here.
                    read = self.read_reply(raw, f"uid {validity}/{uid}")
                    if isinstance(read, InboundProblem):
                        problems.append(read)
                        flagged.append(uid)
                    elif isinstance(read, Refusal):
                        refusals.append(read)
                    else:
                        updates.append(read)
                if flagged:
                    imap.uid("STORE", _uid_set(flagged), "+FLAGS.SILENT", "(\\Flagged)")
        except (PermanentError, TransientError):
            raise
        except Exception as exc:
            raise imap_error(where, exc) from None
        last = uids[-1] if uids else (state[1] if state and state[0] == validity else 0)
        return PollResult(tuple(updates), f"{validity}:{last}", tuple(problems), tuple(refusals))

    def _key_of(self, message_id: str | None) -> str | None:
        """The idempotency key a Message-ID of ours was made from (see message_id), or None
        for a Message-ID the hub did not write."""
        m = re.fullmatch(r"<([^@<>\s]+)@([^@<>\s]+)>", (message_id or "").strip())
        if not m or m.group(2) != self.config["message_id_domain"]:
            return None
        return m.group(1)

    def _search(self, imap: imaplib.IMAP4, *criteria: str) -> list[int]:
        typ, data = imap.uid("SEARCH", *criteria)
        if typ != "OK":
            raise TransientError(f"IMAP UID SEARCH failed: {_text(data)}")
        return sorted(int(x) for x in (data[0] or b"").split())

    def _fetch(self, imap: imaplib.IMAP4, uid: int) -> bytes | None:
        typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if typ != "OK":
            raise TransientError(f"IMAP UID FETCH {uid} failed: {_text(data)}")
        for part in data:
            if isinstance(part, tuple) and len(part) == 2:
                return bytes(part[1])
        return None

    def _move_processed(self, imap: imaplib.IMAP4, last_uid: int) -> None:
        """Move what earlier polls returned (UID <= last_uid; the hub committed it)."""
        uids = self._search(imap, f"UID 1:{last_uid}")
        uids = [u for u in uids if u <= last_uid]  # servers differ on sets past the top UID
        if not uids:
            return
        target = _quote(self.config["processed_folder"])
        caps = _capabilities(imap)
        uid_set = _uid_set(uids)
        for attempt in (1, 2):
            if "MOVE" in caps:
                typ, data = imap.uid("MOVE", uid_set, target)
            else:
                typ, data = imap.uid("COPY", uid_set, target)
            if typ == "OK":
                break
            if attempt == 1 and b"TRYCREATE" in b" ".join(_as_bytes(d) for d in data):
                imap.create(target)
                continue
            raise TransientError(
                f"IMAP cannot move processed mail to {self.config['processed_folder']!r}: "
                f"{_text(data)}"
            )
        if "MOVE" not in caps:
            imap.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)")
            if "UIDPLUS" in caps:
                imap.uid("EXPUNGE", uid_set)
            else:
                imap.expunge()

    # ------------------------------------------------------------------------------- reading

    def read_reply(self, raw: bytes, source: str) -> StatusUpdate | InboundProblem | Refusal:
        """One reply as a StatusUpdate, or an InboundProblem saying why it cannot be one.

        Who wrote it is judged before any status is read (adapters.mailtriage): a permanent
        delivery report about a mail the hub sent is a Refusal of that delivery (its Message-ID
        names the idempotency key); another report, or mail from outside `allowed_senders`, is
        a problem for operators; an automatic
        reply (out of office) is a note on the case's timeline, never a status. The status is
        read only from the text above the reply marker, without quoted lines, so words the
        consumer wrote in the case mail can never become a status. The update's id is the
        Message-ID plus a digest of what the sender wrote (From, Date, Subject, text; not the
        Received lines a second delivery adds): the same mail read again is a duplicate, a
        different mail under a Message-ID already seen is not.

        Never raises: an unreadable reply must neither block the others nor be lost.
        `source` names the mail when it has no Message-ID.
        """
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
        excerpt = raw[:1000].decode("utf-8", "replace")
        message_id = None
        try:
            msg = BytesParser(policy=policy.default).parsebytes(raw)
            message_id = _header(msg, "Message-ID")
            ident = message_id or digest
            broken = [
                type(d).__name__ for d in _all_defects(msg) if isinstance(d, STRUCTURAL_DEFECTS)
            ]
            if broken:
                return InboundProblem(ident, f"broken MIME ({', '.join(broken)})", excerpt)
            report = mailtriage.delivery_report(msg)
            key = self._key_of(report.original_message_id) if report else None
            if report is not None and report.permanent and key:
                return Refusal(ident, f"the mail server refused it: {report.diagnostic}", None, key)
            if report is not None:
                about = f" about {report.original_message_id}" if report.original_message_id else ""
                kind = "permanent" if report.permanent else "temporary"
                return InboundProblem(
                    ident,
                    f"delivery report ({kind} failure{about}): {report.diagnostic}; "
                    "no status was read",
                    excerpt,
                )
            if not mailtriage.sender_allowed(msg, self.allowed_senders):
                return InboundProblem(
                    ident,
                    f"sender {_header(msg, 'From') or '(none)'} is not on the agency's list "
                    f"({', '.join(self.allowed_senders)}); no status was read",
                    excerpt,
                )
            subject = _header(msg, "Subject") or ""
            text = _plain_text(msg)
            if text is None:
                return InboundProblem(ident, "no readable text part", excerpt)
            reply = mailtriage.agency_text(text)
            case_reference = self._case_reference(msg, subject)
            agency_reference = self._agency_reference(reply, subject)
            automatic = mailtriage.automatic_reason(msg)
            status = None if automatic else self.read_status(reply)
            if case_reference is None and agency_reference is None:
                return InboundProblem(ident, "no case reference", f"{subject}\n{reply}"[:1000])
            if automatic is None and status is None:
                return InboundProblem(
                    ident, "no readable status line in the reply", f"{subject}\n{reply}"[:1000]
                )
            return StatusUpdate(
                agency_status=status or "",
                occurred_at=self._date(msg),
                case_reference=case_reference,
                agency_reference=agency_reference,
                message=self._consumer_text(reply)[:MAX_MESSAGE_TEXT] or None,
                update_id=_content_id(msg, message_id, text) if message_id else digest,
                automatic=automatic,
            )
        except Exception as exc:  # the stdlib parser is lenient; this is the last safety net
            return InboundProblem(
                message_id or digest or source, f"unreadable mail: {type(exc).__name__}", excerpt
            )

    def _consumer_text(self, reply: str) -> str:
        """The reply as the consumer may read it: the status and reference lines (meant for the
        hub) left out."""
        lines = [
            line
            for line in reply.split("\n")
            if not (self.status_re and self.status_re.search(line))
            and not (self.reference_re and self.reference_re.search(line))
        ]
        return "\n".join(lines).strip()

    def read_status(self, text: str) -> str | None:
        if self.status_re is not None:
            m = self.status_re.search(text)
            if m:
                return m.group("status").upper()
        for phrase, code in (self.config["status_keywords"] or {}).items():
            if phrase.casefold() in text.casefold():
                return code
        return None

    def _case_reference(self, msg: EmailMessage, subject: str) -> str | None:
        for text in (subject, _header(msg, "In-Reply-To"), _header(msg, "References")):
            m = self.case_re.search(text or "")
            if m:
                return m.group(0)
        return None

    def _agency_reference(self, reply: str, subject: str) -> str | None:
        if self.reference_re is None:
            return None
        m = self.reference_re.search(reply) or self.reference_re.search(subject)
        return m.group("reference").strip() if m else None

    def _date(self, msg: EmailMessage) -> datetime:
        try:
            header = msg["Date"]
            value = getattr(header, "datetime", None)
        except Exception:
            value = None
        if not isinstance(value, datetime):
            return self.clock()
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    # ------------------------------------------------------------------------------ contract

    @classmethod
    def contract_checker(cls, contract_dir: Path, config: Mapping[str, Any]) -> ContractChecker:
        """The agency's `email.yaml` against what this configuration sends and reads:
        - every field in `case_mail.required_fields` is in each payload, every value that
          `case_mail.values` lists the codes of is one of them, and the mail template
          (each language the subject is configured for) renders it as a `field: value` line,
          which is how the agency's staff and filters find it; a field the contract does not
          list (required or optional) is flagged too: it would leave the hub unasked;
        - `status_mail.example`, a status mail as the agency writes it, is read by the
          configured status and reference patterns;
        - `status_mail.codes`, when listed, are the codes of the agency's statuses.yaml.
        """
        import yaml

        path = contract_dir / "email.yaml"
        if not path.exists():
            return ContractChecker(
                problems=[
                    f"no email.yaml in {contract_dir.name}/: put the agency's email contract "
                    "there (case_mail.required_fields: what each case mail must carry; see "
                    "contracts/agencies/ombudsman-energy/email.yaml)"
                ]
            )
        try:
            contract = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            adapter = cls(config)
        except yaml.YAMLError as exc:
            return ContractChecker(
                problems=[
                    f"{path.name} is not valid YAML: {exc}. Fix: correct the agency's contract"
                ]
            )
        except PermanentError as exc:
            return ContractChecker(problems=[f"adapter: {exc.detail}"])
        case_mail = contract.get("case_mail") or {}
        required = [str(f) for f in case_mail.get("required_fields") or ()]
        known = {*required, *(str(f) for f in case_mail.get("optional_fields") or ())}
        allowed = {
            str(k): [str(v) for v in vs or ()] for k, vs in (case_mail.get("values") or {}).items()
        }
        subjects = adapter.config["subject_template"]
        languages = [lang for lang in subjects if lang != "*"] or ["en"]

        def check(payload: Mapping[str, Any]) -> list[str]:
            problems: list[str] = []
            add = problems.append
            short, long = _flatten(payload)
            present = {name for name, _ in (*short, *long)}
            for name in required:
                if name not in present:
                    add(
                        f"fields.{name}: the agency's {path.name} requires it in every case mail "
                        f"and this case has none. Fix: map {name} in fields (with default(...) if "
                        "a case may lack it)"
                    )
            for name in sorted(present - known if known else set()):
                add(
                    f"fields.{name}: not in the agency's {path.name} (required_fields or "
                    f"optional_fields). Fix: remove it from fields, or add it to the contract "
                    "once the agency confirms it"
                )
            for name, value in short:
                if allowed.get(name) and value not in allowed[name]:
                    add(
                        f"fields.{name}: {value!r} is not one of {', '.join(allowed[name])} (the "
                        f"agency's {path.name}, case_mail.values). Fix: map(...) {name} to one "
                        "of those"
                    )
            reference = str(payload.get("reference") or "LK-7F3K-9QX2")
            for language in languages:
                item = Outbound(f"{reference}.check.1", reference, "check", payload, language)
                try:
                    body = adapter._body(item)
                    subject = adapter._subject(item)
                except PermanentError as exc:
                    add(f"template: {exc.detail}. Fix: correct the template or template_dir")
                    continue
                if not adapter.case_re.search(subject):
                    add(
                        f"adapter.subject_template.{language}: the subject {subject!r} does not "
                        "carry the case reference. Fix: keep {case_reference} in it"
                    )
                for name in required:
                    if name in present and not re.search(
                        rf"^{re.escape(name)}:", body, re.MULTILINE
                    ):
                        add(
                            f"fields.{name}: the mail template for {language} does not write "
                            f"it as a `{name}:` line. Fix: list the fields in the template"
                        )
            return problems

        problems: list[str] = []

        def add(text: str) -> None:
            if text not in problems:
                problems.append(text)

        status_mail = contract.get("status_mail") or {}
        example = status_mail.get("example")
        if example:
            text = mailtriage.agency_text(str(example))
            code = adapter.read_status(text)
            codes = [str(c) for c in status_mail.get("codes") or ()]
            if code is None or (codes and code not in codes):
                add(
                    f"adapter.status_pattern: reads {code!r} from the status mail example in "
                    f"{path.name}. Fix: make status_pattern (or status_keywords) match how "
                    "the agency writes its status line"
                )
            if adapter.reference_re is not None and not adapter.reference_re.search(text):
                add(
                    "adapter.reference_pattern: finds no reference in the status mail example "
                    f"in {path.name}. Fix: make it match how the agency writes its own number"
                )
        mail_codes = status_mail.get("codes")
        statuses_file = contract_dir / "statuses.yaml"
        if mail_codes and statuses_file.exists():
            listed = (yaml.safe_load(statuses_file.read_text(encoding="utf-8")) or {}).get("codes")
            if sorted(map(str, mail_codes)) != sorted(map(str, listed or ())):
                add(
                    f"{path.name}: status_mail.codes and statuses.yaml list different codes. "
                    "Fix: keep the two lists of the agency's codes the same"
                )
        return ContractChecker(check, problems)

    # ---------------------------------------------------------------------------------- check

    def check(self) -> Health:
        """Log in on both sides; the message names the side that failed and why."""
        started = time.perf_counter()
        c = self.config
        smtp_where = f"SMTP {c['smtp_host']}:{c['smtp_port']}"
        imap_where = f"IMAP {c['imap_host']}:{c['imap_port']}"
        parts, ok = [], True
        try:
            with self._smtp() as smtp:
                smtp.noop()
            parts.append(f"{smtp_where} ok")
        except Exception as exc:
            ok = False
            parts.append(f"SMTP failed: {smtp_error(smtp_where, exc).detail}")
        try:
            with self._imap() as imap:
                _, count = self._select(imap, readonly=True)
            parts.append(f"{imap_where} ok ({c['imap_folder']}: {count} mail)")
        except Exception as exc:
            ok = False
            parts.append(f"IMAP failed: {imap_error(imap_where, exc).detail}")
        return Health(ok, "; ".join(parts), (time.perf_counter() - started) * 1000)


# ------------------------------------------------------------------------------ classification


def smtp_error(where: str, exc: BaseException) -> PermanentError | TransientError:
    """One place that says which SMTP failures are worth retrying."""
    if isinstance(exc, PermanentError | TransientError):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentError(
            f"{where} refused the login ({exc.smtp_code} {_text(exc.smtp_error)}): "
            "check smtp_username and smtp_password"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = f"{where} refused the recipient: " + "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
        )
        if codes and all(400 <= code < 500 for code in codes):
            return TransientError(detail)
        return PermanentError(detail + " (check to_address)")
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:
            return TransientError(detail)
        return PermanentError(detail)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(
            f"{where}: {exc} (check smtp_starttls / smtp_username against what the server offers)"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"{where}: the TLS certificate is not trusted ({exc.verify_message})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientError(f"{where} closed the connection ({exc or 'no reason given'})")
    if isinstance(exc, TimeoutError):
        return TransientError(f"{where} did not answer in time")
    if isinstance(exc, OSError | smtplib.SMTPException):
        return TransientError(f"{where}: cannot send ({type(exc).__name__}: {exc})")
    return TransientError(f"{where}: unexpected {type(exc).__name__}: {exc}")


def imap_error(where: str, exc: BaseException) -> PermanentError | TransientError:
    if isinstance(exc, PermanentError | TransientError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"{where}: the TLS certificate is not trusted ({exc.verify_message})")
    if isinstance(exc, TimeoutError):
        return TransientError(f"{where} did not answer in time")
    if isinstance(exc, imaplib.IMAP4.abort | OSError):
        return TransientError(f"{where}: connection lost ({type(exc).__name__}: {exc})")
    return TransientError(f"{where}: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------ helpers


class _Blank(dict):
    """format_map values where a missing key is empty rather than an error."""

    def __init__(self, values: Mapping[str, Any], **more: Any) -> None:
        super().__init__(values, **more)

    def __missing__(self, key: str) -> str:
        return ""


def _own_reference(item: OutboundMessage) -> bool:
    """Whether the message knows the agency's own reference (before its first reply the hub
    knows the case by ours)."""
    return bool(item.agency_reference) and item.agency_reference != item.case_reference


def _attach(msg: EmailMessage, attachments: Sequence[Attachment]) -> None:
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )


def _language(msg: EmailMessage, language: str) -> None:
    """Content-Language on the mail itself: adding an attachment moves the Content-* headers
    into the text part, where a filter reading the mail's headers does not look."""
    if msg["Content-Language"] is None:
        msg["Content-Language"] = language


def _flatten(payload: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(short `key: value` lines, long texts) with dotted keys for nested values."""
    short: list[tuple[str, str]] = []
    long: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
            return
        if value is None:
            return
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        if isinstance(value, bool):
            value = "yes" if value else "no"
        text = str(value)
        (long if "\n" in text or len(text) > 200 else short).append((prefix, text))

    walk("", payload)
    return short, long


def _content_id(msg: EmailMessage, message_id: str, text: str) -> str:
    """`<Message-ID> #<digest of what the sender wrote>`, short enough for any column."""
    basis = "\0".join(
        [message_id, *(_header(msg, h) or "" for h in ("From", "Date", "Subject")), text]
    )
    return f"{message_id[:140]} #{hashlib.sha256(basis.encode()).hexdigest()[:16]}"


def _plain_text(msg: EmailMessage) -> str | None:
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is None:
        if msg.is_multipart() or msg.get_content_maintype() != "text":
            return None
        body = msg
    content = body.get_content()
    if not isinstance(content, str):
        return None
    if body.get_content_subtype() == "html":
        content = re.sub(r"(?is)<(script|style).*?</\1>", "", content)
        content = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content)
        content = re.sub(r"<[^>]+>", "", content)
    return content


def _all_defects(msg: EmailMessage) -> list[Any]:
    return [d for part in msg.walk() for d in part.defects]


def _header(msg: EmailMessage, name: str) -> str | None:
    value = msg.get(name)
    return " ".join(str(value).split()) if value else None


def _capabilities(imap: imaplib.IMAP4) -> set[str]:
    typ, data = imap.capability()
    if typ != "OK" or not data:
        return set()
    return {c.upper() for c in _text(data[0]).split()}


def _uid_set(uids: Sequence[int]) -> str:
    """Compact UID set: 1,2,3,7 -> 1:3,7."""
    ranges: list[str] = []
    start = prev = None
    for uid in sorted(uids):
        if start is None:
            start = prev = uid
        elif uid == prev + 1:  # type: ignore[operator]
            prev = uid
        else:
            ranges.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = uid
    if start is not None:
        ranges.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(ranges)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple):
        return b" ".join(_as_bytes(v) for v in value)
    return str(value).encode()


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value if v is not None)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


__all__ = ["EmailAdapter", "EmailConfig", "parse_cursor"]
