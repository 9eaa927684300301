"""The one case form: read what the consumer typed, say what is wrong next to each field in
their language, and build the canonical case (hub/schemas.py CaseInSchema) from it.

The checks here repeat the schema's rules in the consumer's words; the schema is still the last
gate (`to_case`), so the front desk cannot file anything the JSON API would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from marshmallow import ValidationError, validate
from werkzeug.datastructures import MultiDict

from hub import attachments
from hub.clock import Clock
from hub.schemas import (
    DESCRIPTION_MAX,
    DESCRIPTION_MIN,
    MAX_AMOUNT,
    PHONE,
    CaseInSchema,
    clean_text,
    enterprise_digits,
    enterprise_number_ok,
)

TEXT_FIELDS = (
    "consumer_name",
    "consumer_email",
    "consumer_phone",
    "trader_name",
    "trader_enterprise_number",
    "trader_website",
    "trader_country",
    "description",
    "incident_date",
    "complaint_date",
    "postcode",
    "amount",
)
NEEDS_TRADER = ("complaint", "mediation", "report")
NEEDS_DATE = ("complaint", "mediation")
TYPES = ", ".join(ext.lstrip(".").upper() for ext, _label in attachments.ALLOWED.values())
_email = validate.Email()
_url = validate.URL(schemes={"http", "https"}, require_tld=True)


@dataclass
class Filled:
    """What the consumer typed (kept on an error) and what is wrong with it."""

    values: dict[str, str]
    consent_share: bool = False
    anonymous: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    uploads: list[attachments.Upload] = field(default_factory=list)
    files_given: int = 0


def read(form: MultiDict, files: MultiDict) -> Filled:
    # Invisible control characters (pasted from a PDF, say) are dropped, not refused: the
    # consumer cannot see them to remove them. The JSON API refuses them (hub/schemas.py).
    values = {name: clean_text(form.get(name) or "").strip() for name in TEXT_FIELDS}
    values["description"] = clean_text(form.get("description") or "", multiline=True).strip()
    given = [f for f in files.getlist("attachments") if f and f.filename]
    return Filled(
        values=values,
        consent_share=form.get("consent_share") == "yes",
        anonymous=form.get("anonymous") == "yes",
        files_given=len(given),
    )


def website(text: str) -> str:
    """What people type (www.shop.be) as the full address the schema wants."""
    if text and not re.match(r"^https?://", text, re.IGNORECASE):
        return "https://" + text
    return text


def parse_date(text: str) -> date | None:
    """YYYY-MM-DD (what a date field sends) or DD/MM/YYYY, DD-MM-YYYY, DD.MM.YYYY (typed)."""
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_amount(text: str) -> Decimal | None:
    """Euros as Belgians write them: 49,99 or 49.99 or 1.234,56 or € 1 234,56."""
    raw = re.sub(r"[\s€]|EUR", "", text, flags=re.IGNORECASE)
    if "," in raw:
        raw = raw.replace(".", "").replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def check(
    filled: Filled,
    kind: str,
    files: MultiDict,
    today: date,
    *,
    needs_complaint_date: bool = False,
) -> None:
    """Fill `filled.errors` (field -> message in the consumer's language) and the uploads.
    `needs_complaint_date`: a body counts its time limit from the complaint to the trader."""
    v, errors = filled.values, filled.errors
    if not v["consumer_name"]:
        errors["consumer_name"] = _("Enter your name.")
    elif len(v["consumer_name"]) > 200:
        errors["consumer_name"] = _("Your name can be at most 200 characters long.")
    if not v["consumer_email"]:
        errors["consumer_email"] = _("Enter your email address: we send the updates there.")
    else:
        try:
            _email(v["consumer_email"])
        except ValidationError:
            errors["consumer_email"] = _(
                "This is not a valid email address. Write it like name@example.be."
            )
    if v["consumer_phone"] and not PHONE.match(v["consumer_phone"]):
        errors["consumer_phone"] = _(
            "This is not a phone number. Use digits, for example +32 2 123 45 67, or leave it empty."
        )
    if kind in NEEDS_TRADER and not v["trader_name"]:
        errors["trader_name"] = _("Enter the name of the company.")
    elif len(v["trader_name"]) > 200:
        errors["trader_name"] = _("The company name can be at most 200 characters long.")
    number = v["trader_enterprise_number"]
    if number and not enterprise_number_ok(number):
        errors["trader_enterprise_number"] = _(
            "This enterprise number is not valid: its check digits do not match. Copy it from an "
            "invoice or the company's website (10 digits, for example 0403.170.701), or leave it "
            "empty."
        )
    site = website(v["trader_website"])
    if site:
        try:
            _url(site)
            if len(site) > 500:
                raise ValidationError("long")
        except ValidationError:
            errors["trader_website"] = _(
                "This is not a web address. Write it like www.shop.be, or leave it empty."
            )
    if v["trader_country"] and not re.fullmatch(r"[A-Z]{2}", v["trader_country"]):
        errors["trader_country"] = _("Choose a country from the list.")
    n = len(v["description"])
    if n < DESCRIPTION_MIN:
        errors["description"] = _(
            "Describe what happened in at least %(n)d characters.", n=DESCRIPTION_MIN
        )
    elif n > DESCRIPTION_MAX:
        errors["description"] = _(
            "Your description is %(got)d characters long; at most %(n)d. Put long texts in an "
            "attachment.",
            got=n,
            n=DESCRIPTION_MAX,
        )
    when = v["incident_date"]
    if when:
        day = parse_date(when)
        if day is None:
            errors["incident_date"] = _("This is not a date. Write it like 31/10/2026.")
        elif day > today:
            errors["incident_date"] = _("This date is in the future.")
    elif kind in NEEDS_DATE:
        errors["incident_date"] = _("Enter the date it happened (roughly is fine).")
    complained = v.get("complaint_date", "")
    if complained:
        day = parse_date(complained)
        if day is None:
            errors["complaint_date"] = _("This is not a date. Write it like 31/10/2026.")
        elif day > today:
            errors["complaint_date"] = _("This date is in the future.")
    elif needs_complaint_date:
        errors["complaint_date"] = _("Enter the date of your written complaint to the company.")
    if v["amount"]:
        amount = parse_amount(v["amount"])
        if amount is None or amount < 0 or amount > MAX_AMOUNT:
            errors["amount"] = _("Enter an amount in euros, for example 49,99, or leave it empty.")
        elif amount != amount.quantize(Decimal("0.01")):
            errors["amount"] = _("Use at most two decimals, for example 49,99.")
    if not filled.consent_share:
        errors["consent_share"] = _(
            "Without your consent we cannot send your case to the services. Tick the box to go on."
        )
    filled.uploads = read_files(files, errors, "attachments")


def read_files(files: MultiDict, errors: dict[str, str], name: str) -> list[attachments.Upload]:
    given = [f for f in files.getlist(name) if f and f.filename]
    try:
        if len(given) > attachments.MAX_FILES:
            raise attachments.AttachmentRefused("too_many", "")
        uploads = attachments.check_all([(f.filename or "file", f.read()) for f in given])
    except attachments.AttachmentRefused as exc:
        errors[name] = file_error(exc)
        return []
    return uploads


def file_error(exc: attachments.AttachmentRefused) -> str:
    """The refusal of a file in the consumer's language."""
    name = exc.filename
    per_file = attachments.MAX_FILE_BYTES // 1048576
    if exc.code == "too_large":
        return _(
            "%(name)s is too large: at most %(mb)d MB per file. Make it smaller (a photo or a "
            "scan at a lower resolution) and add it again.",
            name=name,
            mb=per_file,
        )
    if exc.code == "type":
        return _(
            "%(name)s cannot be accepted: we take %(types)s files only, and we check what the "
            "file contains, not just its name. Save it as PDF or as a photo and add it again.",
            name=name,
            types=TYPES,
        )
    if exc.code == "archive":
        return _(
            "%(name)s cannot be accepted: it unpacks to far more than a normal document does. "
            "Save it again, or as PDF, and add it again.",
            name=name,
        )
    if exc.code == "active":
        return _(
            "%(name)s cannot be accepted: it contains web page code, such as a script or an SVG "
            "image, which we do not forward. Save it as PDF or as a photo and add it again.",
            name=name,
        )
    if exc.code == "empty":
        return _("%(name)s is empty. Choose the right file.", name=name)
    if exc.code == "too_many":
        return _("Add at most %(n)d files.", n=attachments.MAX_FILES)
    return _(
        "Your files are too large together: at most %(mb)d MB in all.",
        mb=attachments.MAX_TOTAL_BYTES // 1048576,
    )


def to_case(
    filled: Filled,
    *,
    kind: str,
    domain: str,
    language: str,
    answers: dict[str, bool],
    anonymous_allowed: bool,
    clock: Clock,
    postcode: str | None = None,
) -> dict[str, Any]:
    """The canonical case, loaded through CaseInSchema. Raises ValueError(field) if the schema
    still refuses something (it names the form field)."""
    v = filled.values
    body: dict[str, Any] = {
        "kind": kind,
        "domain": domain,
        "language": language,
        "description": v["description"],
        "consumer": {"name": v["consumer_name"], "email": v["consumer_email"]},
        "consent": {
            "share_with_agencies": filled.consent_share,
            "anonymous_to_trader": bool(filled.anonymous and anonymous_allowed),
        },
    }
    if v["consumer_phone"]:
        body["consumer"]["phone"] = v["consumer_phone"]
    if postcode:
        body["consumer"]["address"] = {"postcode": postcode}
    if v["incident_date"]:
        body["incident_date"] = parse_date(v["incident_date"]).isoformat()  # type: ignore[union-attr]
    if v.get("complaint_date"):
        body["complaint_date"] = parse_date(v["complaint_date"]).isoformat()  # type: ignore[union-attr]
    if v["amount"]:
        body["amount"] = str(parse_amount(v["amount"]))
        body["currency"] = "EUR"
    if v["trader_name"]:
        trader: dict[str, Any] = {"name": v["trader_name"]}
        if v["trader_enterprise_number"]:
            digits = enterprise_digits(v["trader_enterprise_number"])
            trader["enterprise_number"] = f"{digits[:4]}.{digits[4:7]}.{digits[7:]}"
        if v["trader_website"]:
            trader["website"] = website(v["trader_website"])
        if v["trader_country"]:
            trader["address"] = {"country": v["trader_country"]}
        body["trader"] = trader
    if answers:
        body["answers"] = answers
    try:
        return CaseInSchema(clock=clock).load(body)
    except ValidationError as exc:
        first = next(iter(exc.messages))
        nested = exc.messages[first]
        sub = next(iter(nested)) if isinstance(nested, dict) else ""
        name = {
            "consumer": f"consumer_{sub}",
            "trader": f"trader_{sub}" if sub != "address" else "trader_country",
            "consent": "consent_share",
        }.get(first, first)
        raise ValueError(
            name if name in (*TEXT_FIELDS, "consent_share") else "description"
        ) from None
