"""The one case form: read what the consumer typed, say what is wrong next to each field in
their language, and build the canonical case (hub/schemas.py CaseInSchema) from it.

The checks here repeat the schema's rules in the consumer's words; the schema is still the last
gate (`to_case`), so the front desk cannot file anything the JSON API would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
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

DATE_PARTS = ("day", "month", "year")
# The dates are GOV.UK date inputs: three boxes each, named `<field>-day`, `<field>-month`,
# `<field>-year`; the day box carries the field's own id, so `#incident_date` reaches it.
DATE_FIELDS = ("incident_date", "complaint_date")
TEXT_FIELDS = (
    "consumer_name",
    "consumer_email",
    "consumer_phone",
    "trader_name",
    "trader_enterprise_number",
    "trader_website",
    "trader_country",
    "description",
    *(f"{name}-{part}" for name in DATE_FIELDS for part in DATE_PARTS),
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
    # the input an error's summary link leads to, where it is not the field's own id (a date's
    # month or year box)
    targets: dict[str, str] = field(default_factory=dict)
    dates: dict[str, PartialDate] = field(default_factory=dict)
    uploads: list[attachments.Upload] = field(default_factory=list)
    files_given: int = 0


@dataclass(frozen=True)
class PartialDate:
    """A date as the consumer knows it: a day, or only a month ("about October 2026")."""

    value: date  # the day; for a month-only date the 1st of that month
    precision: str  # "day" or "month"

    def iso(self) -> str:
        """ISO 8601 at the precision given: 2026-10-15, or the reduced form 2026-10."""
        return self.value.isoformat() if self.precision == "day" else self.value.isoformat()[:7]


def read(form: MultiDict, files: MultiDict | None = None) -> Filled:
    # Invisible control characters (pasted from a PDF, say) are dropped, not refused: the
    # consumer cannot see them to remove them. The JSON API refuses them (hub/schemas.py).
    values = {name: clean_text(form.get(name) or "").strip() for name in TEXT_FIELDS}
    values["description"] = clean_text(form.get("description") or "", multiline=True).strip()
    given = [f for f in (files.getlist("attachments") if files else []) if f and f.filename]
    return Filled(
        values=values,
        consent_share=form.get("consent_share") == "yes",
        anonymous=form.get("anonymous") == "yes",
        files_given=len(given),
    )


def _month_number(text: str, month_names: dict[str, int]) -> int | None:
    if text.isdigit():
        return int(text)
    return month_names.get(text.lower().rstrip("."))


def read_date(
    filled: Filled,
    name: str,
    today: date,
    *,
    month_enough: bool,
    month_names: dict[str, int] | None = None,
) -> str | None:
    """Check the three boxes of a GOV.UK date input; on success put the date in
    `filled.dates[name]` and return None, else return the message (and point the summary link
    at the first wrong box). `month_enough`: a month and a year are a valid answer."""
    v = filled.values
    day, month, year = (v[f"{name}-{part}"] for part in DATE_PARTS)
    first = f"{name}-month"
    if not year:
        if day and not month:
            filled.targets[name] = first
            return _("The date must include a month and a year.")
        filled.targets[name] = f"{name}-year"
        return _("The date must include a year.")
    if not month:
        filled.targets[name] = first
        if day:
            return _("The date must include a month.")
        if month_enough:
            return _(
                "A year alone is not enough: enter at least the month and the year, for example "
                "10 2026."
            )
        return _("The date must include a day and a month.")
    if not day and not month_enough:
        filled.targets[name] = name
        return _("The date must include a day.")
    number = _month_number(month, month_names or {})
    if number is None or not 1 <= number <= 12:
        filled.targets[name] = first
        return _("The month must be a number from 1 to 12.")
    if not (year.isdigit() and len(year) == 4) or int(year) < 1000:
        filled.targets[name] = f"{name}-year"
        return _("Enter the year in four digits, for example 2026.")
    if day:
        if not day.isdigit():
            filled.targets[name] = name
            return _("The day must be a number, for example 15.")
        try:
            found = PartialDate(date(int(year), number, int(day)), "day")
        except ValueError:
            filled.targets[name] = name
            return _("This day does not exist in that month. Check the day.")
        if found.value > today:
            return _("This date is in the future.")
    else:
        found = PartialDate(date(int(year), number, 1), "month")
        if found.value > today.replace(day=1):
            filled.targets[name] = first
            return _("This date is in the future.")
    filled.dates[name] = found
    return None


def website(text: str) -> str:
    """What people type (www.shop.be) as the full address the schema wants."""
    if text and not re.match(r"^https?://", text, re.IGNORECASE):
        return "https://" + text
    return text


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
    today: date,
    *,
    needs_complaint_date: bool = False,
    month_names: dict[str, int] | None = None,
) -> None:
    """Fill `filled.errors` (field -> message in the consumer's language) and `filled.dates`.
    `needs_complaint_date`: a body counts its time limit from the complaint to the trader.
    `month_names`: the page language's month names (lower case) to their numbers, so that
    "oktober" or "oct" in the month box is understood. The files are read on the last step
    (`read_files`), never here."""
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
    for name, needed, month_enough, missing in (
        (
            "incident_date",
            kind in NEEDS_DATE,
            True,
            _("Enter when it happened: the month and the year are enough."),
        ),
        (
            "complaint_date",
            needs_complaint_date,
            False,
            _("Enter the date of your written complaint to the company."),
        ),
    ):
        if any(v[f"{name}-{part}"] for part in DATE_PARTS):
            wrong = read_date(
                filled, name, today, month_enough=month_enough, month_names=month_names
            )
            if wrong:
                errors[name] = wrong
        elif needed:
            errors[name] = missing
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
    incident = filled.dates.get("incident_date")
    if incident:
        body["incident_date"] = incident.value.isoformat()
        if incident.precision != "day":
            body["incident_date_precision"] = incident.precision
    complained = filled.dates.get("complaint_date")
    if complained:
        body["complaint_date"] = complained.value.isoformat()
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
            "incident_date_precision": "incident_date",
            "consumer": f"consumer_{sub}",
            "trader": f"trader_{sub}" if sub != "address" else "trader_country",
            "consent": "consent_share",
        }.get(first, first)
        raise ValueError(
            name if name in (*TEXT_FIELDS, *DATE_FIELDS, "consent_share") else "description"
        ) from None
