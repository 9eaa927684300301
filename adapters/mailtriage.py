"""Who wrote an inbound mail, and which part of it the agency wrote: decided before any status.

A mailbox receives more than the agency's replies: out-of-office answers (which often quote the
case mail, with the consumer's own words in it), bounces from mail servers, newsletters, and mail
from anybody who learnt the address. Only a human reply from the agency may change a status, and
only from the text the agency itself wrote. This module is pure (a parsed message in, a verdict
out) so that every transport reading mail, and the tests, judge mail the same way.

- `automatic_reason`: RFC 3834 (`Auto-Submitted` other than `no`), the de-facto headers of
  common servers (`X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply|bulk|junk|list`,
  `X-Auto-Response-Suppress` is *not* one: it is set on human mail by Exchange), and
  out-of-office subjects in nl, fr, de and en.
- `delivery_report`: an RFC 3464 delivery status notification (`multipart/report;
  report-type=delivery-status`) or a mailer daemon's bounce, with the failed recipients, the
  diagnostic, whether it is permanent (status 5.x.x or action `failed`), and the Message-ID of
  the mail that bounced, so the hub can fail that delivery instead of reading a status.
- `sender_allowed`: the From address against the agency's allow-list (addresses, or domains
  written `@example.be` / `example.be`; subdomains of a listed domain are not included).
- `agency_text`: the reply's own text: everything above the reply marker line that every case
  mail carries (`##- ... -##`), without quoted lines, quote headers or the signature. The
  consumer's description, quoted in the case mail below the marker, can never become a status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

# The line every case mail carries above its content: the agency writes above it.
REPLY_MARKERS = {
    "nl": "##- Typ uw antwoord boven deze lijn -##",
    "fr": "##- Veuillez écrire votre réponse au-dessus de cette ligne -##",
    "de": "##- Bitte schreiben Sie Ihre Antwort oberhalb dieser Zeile -##",
    "en": "##- Please type your reply above this line -##",
}
MARKER_LINE = re.compile(r"^[\s>]*##-.*-##\s*$")
# Where a reply's quoted history starts (nl, fr, de, en mail clients).
QUOTE_HEADER = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Oorspronkelijk bericht|Message d'origine|"
    r"Ursprüngliche Nachricht)\s*-{2,}|"
    r"(?:On|Op|Le|Am)\s.{0,200}(?:wrote|schreef|a écrit|schrieb)(?:\s.{0,200})?\s*:)\s*$",
    re.IGNORECASE,
)
# Outlook's header block when it quotes without `>`: "From: ..." / "Van: ..." / "De : ..." / "Von: ...".
OUTLOOK_QUOTE = re.compile(r"^\s*(?:From|Van|De|Von)\s?:\s.*@", re.IGNORECASE)
AUTOMATIC_SUBJECT = re.compile(
    r"\b(?:out of (?:the )?office|automatic reply|auto[- ]?reply|autoreply|away from the office|"
    r"afwezig|afwezigheid|automatisch antwoord|automatisch bericht|niet aanwezig|"
    r"absent|absence|réponse automatique|message automatique|hors du bureau|"
    r"abwesenheitsnotiz|abwesenheit|abwesend|automatische antwort|außer haus|ausser haus|nicht im büro)\b",
    re.IGNORECASE,
)
BULK_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk", "list"})
MAILER_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon)@", re.IGNORECASE)
BOUNCE_SUBJECT = re.compile(
    r"\b(?:undeliverable|undelivered mail|delivery status notification|"
    r"mail delivery (?:failed|failure|subsystem)|returned mail|non remis|onbestelbaar|"
    r"unzustellbar)\b",
    re.IGNORECASE,
)
STATUS_CODE = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True)
class DeliveryReport:
    """A mail server's report that a mail did not (or not yet) reach its recipient."""

    permanent: bool
    recipients: tuple[str, ...]
    diagnostic: str
    original_message_id: str | None


def automatic_reason(msg: Message) -> str | None:
    """Why this mail was written by a machine, or None for a mail a person wrote."""
    submitted = _h(msg, "Auto-Submitted")
    if submitted and submitted.split(";")[0].strip().lower() != "no":
        return f"Auto-Submitted: {submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if _h(msg, name):
            return f"{name} header"
    precedence = (_h(msg, "Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    if _h(msg, "List-Id") or _h(msg, "List-Unsubscribe"):
        return "mailing-list mail"
    subject = _h(msg, "Subject") or ""
    if AUTOMATIC_SUBJECT.search(subject):
        return f"out-of-office subject ({subject[:80]})"
    return None


def delivery_report(msg: Message) -> DeliveryReport | None:
    """The delivery failure this mail reports, or None when it is not a bounce."""
    report_type = msg.get_param("report-type")
    report = msg.get_content_type() == "multipart/report" and (
        isinstance(report_type, str) and report_type.lower() == "delivery-status"
    )
    sender = parseaddr(_h(msg, "From") or "")[1]
    bounce = report or (
        bool(MAILER_DAEMON.match(sender)) and bool(BOUNCE_SUBJECT.search(_h(msg, "Subject") or ""))
    )
    if not bounce:
        return None
    recipients: list[str] = []
    actions: list[str] = []
    statuses: list[str] = []
    diagnostic = ""
    original: str | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for fields in _status_groups(part):
                if "final-recipient" in fields:
                    recipients.append(fields["final-recipient"].split(";")[-1].strip())
                if "action" in fields:
                    actions.append(fields["action"].lower())
                if "status" in fields:
                    statuses.append(fields["status"])
                if "diagnostic-code" in fields and not diagnostic:
                    diagnostic = fields["diagnostic-code"].split(";", 1)[-1].strip()
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _original_message_id(part)
    if not statuses:  # a daemon's plain-text bounce: read the status code from its text
        text = _text_of(msg)
        statuses = [m.group(0) for m in STATUS_CODE.finditer(text)]
        diagnostic = diagnostic or " ".join(text.split())[:300]
        if original is None:
            m = re.search(r"^Message-ID:\s*(<[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
            original = m.group(1) if m else None
    transient_only = bool(statuses) and all(s.startswith("4") for s in statuses)
    permanent = (
        "failed" in actions
        or any(s.startswith("5") for s in statuses)
        or (not actions and not transient_only)
    )
    if actions and all(a in ("delivered", "relayed", "expanded") for a in actions):
        return None  # a success notice is no failure
    return DeliveryReport(
        permanent=permanent,
        recipients=tuple(dict.fromkeys(recipients)),
        diagnostic=diagnostic[:500] or "the mail server reports the mail as undeliverable",
        original_message_id=original,
    )


def sender_allowed(msg: Message, allowed: Iterable[str]) -> bool:
    """Whether every From address is on the allow-list (an empty list allows nobody: the
    caller decides what an unconfigured list means). `Sender`/`Reply-To` do not count: they
    are as easy to forge as From and say nothing more."""
    rules = [a.strip().lower() for a in allowed if a and a.strip()]
    addresses = [a.lower() for _, a in getaddresses([_h(msg, "From") or ""]) if "@" in a]
    if not rules or not addresses:
        return False
    for address in addresses:
        domain = address.rsplit("@", 1)[1]
        if not any(address == r or domain == r.lstrip("@") for r in rules):
            return False
    return True


def agency_text(text: str) -> str:
    """What the agency wrote: above the reply marker; quoted lines, quote headers and the
    signature dropped."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if MARKER_LINE.match(line) or QUOTE_HEADER.match(line) or OUTLOOK_QUOTE.match(line):
            break
        if line.rstrip() in ("--", "-- "):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


# ------------------------------------------------------------------------------------ helpers


def _h(msg: Message, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse is as good as absent
        return None
    return " ".join(str(value).split()) if value else None


def _status_groups(part: Message) -> list[dict[str, str]]:
    """The field groups of a message/delivery-status part (per-message, then per-recipient)."""
    groups: list[dict[str, str]] = []
    payload = part.get_payload()
    if isinstance(payload, list):  # the stdlib parses each group as a header block
        for block in payload:
            if isinstance(block, Message):
                groups.append({k.lower(): " ".join(str(v).split()) for k, v in block.items()})
        return groups
    text = payload if isinstance(payload, str) else ""
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if ":" in line and not line[:1].isspace():
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if fields:
            groups.append(fields)
    return groups


def _original_message_id(part: Message) -> str | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
        if isinstance(inner, Message):
            return _h(inner, "Message-ID")
    text = payload if isinstance(payload, str) else ""
    m = re.search(r"^Message-ID:\s*(<[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
    return m.group(1) if m else None


def _text_of(msg: Message) -> str:
    if isinstance(msg, EmailMessage):
        body = msg.get_body(preferencelist=("plain",))
        if body is not None:
            try:
                content = body.get_content()
                return content if isinstance(content, str) else ""
            except Exception:
                return ""
    payload = msg.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
