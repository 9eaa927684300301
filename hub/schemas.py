"""Marshmallow schemas for what enters the hub. They must agree with contracts/case.schema.json.

Every field carries `metadata["fix"]`: the sentence an error response gives the caller to repair
the value. tests/test_contracts.py checks these schemas against the published JSON Schema.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from hub import taxonomy
from hub.clock import Clock, SystemClock

KINDS = ("question", "complaint", "report", "mediation")
LANGUAGES = ("nl", "fr", "de", "en")
DESCRIPTION_MIN, DESCRIPTION_MAX = 10, 10000
PHONE = re.compile(r"^\+?[0-9 ./()-]{6,25}$")
ENTERPRISE = re.compile(r"^(BE)?\s?[01][0-9]{3}[. ]?[0-9]{3}[. ]?[0-9]{3}$")
MAX_AMOUNT = Decimal("10000000")
# The earliest date the hub takes: agencies' systems refuse years before 1000, and no consumer
# case is about something that happened before 1900. The contract says the same with a pattern.
EARLIEST_DATE = date(1900, 1, 1)
# Characters no agency system takes and no person types: C0 and C1 controls, DEL, lone
# surrogates and the two non-characters U+FFFE/U+FFFF. The description may hold line breaks
# and tabs; one-line fields may not.
ONE_LINE = "^[^\\x00-\\x1f\\x7f-\\x9f\\ufffe\\uffff]*$"
MULTI_LINE = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ufffe\\uffff]*$"


def enterprise_digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def enterprise_number_ok(value: str) -> bool:
    """Belgian enterprise number (KBO/BCE): 10 digits, check = 97 - (first eight mod 97)."""
    if not ENTERPRISE.match(value.strip()):
        return False
    digits = enterprise_digits(value)
    return 97 - int(digits[:8]) % 97 == int(digits[8:])


class PlainText(validate.Regexp):
    """Refuses the characters in ONE_LINE/MULTI_LINE, naming the first one and where it is.
    A Regexp, so tests/test_contracts.py compares its pattern with the contract's."""

    def __init__(self, *, multiline: bool = False) -> None:
        super().__init__(MULTI_LINE if multiline else ONE_LINE)
        self.multiline = multiline

    def __call__(self, value: Any) -> Any:
        # fullmatch: re's `$` would also match before a final line break.
        if isinstance(value, str) and self.regex.fullmatch(value) is None:
            bad = next(i for i, c in enumerate(value) if not self.regex.fullmatch(c))
            raise ValidationError(
                f"Contains the control character U+{ord(value[bad]):04X} at position {bad + 1}."
            )
        return value


def text_fix(what: str, *, multiline: bool = False) -> str:
    """The repair sentence of a text field, with the rule on invisible characters."""
    allowed = "line breaks and tabs are fine" if multiline else "on one line"
    return f"{what} Plain text, {allowed}, without control characters (U+0000 to U+001F, U+007F to U+009F)."


def clean_text(value: str, *, multiline: bool = False) -> str:
    """What a browser form sends, without the invisible characters PlainText refuses: a person
    cannot see them to remove them, so the front desk drops them (line breaks in one-line
    fields become spaces) instead of refusing the form."""
    if not multiline:
        value = re.sub(r"[\t\r\n]+", " ", value)
    pattern = MULTI_LINE if multiline else ONE_LINE
    keep = re.compile(pattern)
    return "".join(c for c in value if keep.fullmatch(c))


class NotBefore(validate.Validator):
    """A date on or after `earliest` (the contract's pattern says the same)."""

    def __init__(self, earliest: date) -> None:
        self.earliest = earliest

    def __call__(self, value: date) -> date:
        if value < self.earliest:
            raise ValidationError(
                f"{value.isoformat()} is before {self.earliest.isoformat()}, which no case can be about."
            )
        return value


class Strict(Schema):
    class Meta:
        unknown = RAISE


class AddressSchema(Strict):
    street = fields.String(
        validate=[validate.Length(max=200), PlainText()],
        metadata={"fix": text_fix("At most 200 characters.")},
    )
    postcode = fields.String(
        validate=[validate.Length(max=20), PlainText()],
        metadata={"fix": text_fix("At most 20 characters.")},
    )
    city = fields.String(
        validate=[validate.Length(max=100), PlainText()],
        metadata={"fix": text_fix("At most 100 characters.")},
    )
    country = fields.String(
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Not an ISO 3166 country code."),
        metadata={"fix": "Use the two capital letters of ISO 3166-1, e.g. BE, NL, FR."},
    )


class ConsumerSchema(Strict):
    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=200), PlainText()],
        metadata={"fix": text_fix("Give the consumer's name, 1 to 200 characters.")},
    )
    email = fields.Email(
        required=True,
        validate=validate.Length(max=254),
        metadata={"fix": "Give an email address like name@example.be; updates are sent there."},
    )
    phone = fields.String(
        validate=validate.Regexp(PHONE, error="Not a phone number."),
        metadata={"fix": "Digits with an optional leading +, e.g. +32 2 123 45 67."},
    )
    address = fields.Nested(
        AddressSchema, metadata={"fix": "An object with street, postcode, city, country."}
    )


class TraderSchema(Strict):
    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=200), PlainText()],
        metadata={
            "fix": text_fix(
                "Give the company's name as the consumer knows it, 1 to 200 characters."
            )
        },
    )
    enterprise_number = fields.String(
        metadata={
            "fix": "Give the 10-digit Belgian enterprise number (e.g. 0403.170.701) or leave it out."
        }
    )
    website = fields.Url(
        validate=validate.Length(max=500),
        metadata={"fix": "Give a full address such as https://shop.example.be."},
    )
    address = fields.Nested(
        AddressSchema, metadata={"fix": "An object with street, postcode, city, country."}
    )

    @validates("enterprise_number")
    def _enterprise(self, value: str, **_: object) -> None:
        if not enterprise_number_ok(value):
            raise ValidationError("Not a valid Belgian enterprise number (the mod-97 check fails).")


class ConsentSchema(Strict):
    share_with_agencies = fields.Boolean(
        required=True,
        validate=validate.Equal(True, error="Loket can only forward a case with this consent."),
        metadata={
            "fix": "Set to true once the consumer agrees to share the case with the agencies."
        },
    )
    anonymous_to_trader = fields.Boolean(
        metadata={"fix": "true or false: whether the trader may learn the consumer's identity."}
    )


class CaseInSchema(Strict):
    """The canonical case as filed (contracts/case.schema.json). "The future" is judged by
    `clock` (the hub's; the system clock when none is given)."""

    def __init__(self, *args: Any, clock: Clock | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: Clock = clock or SystemClock()

    kind = fields.String(
        required=True,
        validate=validate.OneOf(KINDS),
        metadata={"fix": "One of: " + ", ".join(KINDS) + "."},
    )
    domain = fields.String(
        required=True,
        metadata={"fix": "A code from GET /api/v1/domains, e.g. telecom.billing."},
    )
    language = fields.String(
        required=True,
        validate=validate.OneOf(LANGUAGES),
        metadata={"fix": "One of: " + ", ".join(LANGUAGES) + "."},
    )
    description = fields.String(
        required=True,
        validate=[
            validate.Length(min=DESCRIPTION_MIN, max=DESCRIPTION_MAX),
            PlainText(multiline=True),
        ],
        metadata={
            "fix": text_fix(
                f"Describe what happened in {DESCRIPTION_MIN} to {DESCRIPTION_MAX} characters;"
                " send documents as attachments.",
                multiline=True,
            )
        },
    )
    incident_date = fields.Date(
        validate=NotBefore(EARLIEST_DATE),
        metadata={"fix": "A date in ISO form, YYYY-MM-DD, from 1900 on and not in the future."},
    )
    incident_date_precision = fields.String(
        validate=validate.OneOf(("day", "month")),
        metadata={
            "fix": 'How exactly the consumer knows the incident date: "day" (the default) or '
            '"month" (only the month is known; send incident_date as the 1st of that month).'
        },
    )
    complaint_date = fields.Date(
        validate=NotBefore(EARLIEST_DATE),
        metadata={
            "fix": "The date of your written complaint to the trader, YYYY-MM-DD, from 1900 on"
            " and not in the future."
        },
    )
    amount = fields.Decimal(
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"fix": "A number of euros with at most two decimals, e.g. 49.99."},
    )
    currency = fields.String(
        validate=validate.Regexp(r"^[A-Z]{3}$", error="Not an ISO 4217 currency code."),
        metadata={"fix": "Three capital letters, e.g. EUR."},
    )
    consumer = fields.Nested(
        ConsumerSchema, required=True, metadata={"fix": "An object with at least name and email."}
    )
    trader = fields.Nested(
        TraderSchema, metadata={"fix": "An object with at least the trader's name."}
    )
    consent = fields.Nested(
        ConsentSchema,
        required=True,
        metadata={"fix": 'An object: {"share_with_agencies": true}.'},
    )
    answers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{1,40}$")),
        values=fields.Boolean(),
        metadata={
            "fix": 'Answers to the pre-checks by id, e.g. {"contacted_trader": true}; '
            "GET /api/v1/prechecks lists the questions."
        },
    )

    @validates("domain")
    def _domain(self, value: str, **_: object) -> None:
        if value not in taxonomy.domain_codes():
            raise ValidationError(f"Unknown domain {value!r}.")

    @validates_schema
    def _kind_offered(self, data: dict, **_: object) -> None:
        subarea = taxonomy.get(data.get("domain", ""))
        if subarea is not None and subarea.options and data.get("kind") not in subarea.options:
            raise ValidationError(
                f"For {subarea.code} the front desk offers: {', '.join(subarea.options)}.",
                field_name="kind",
            )

    @validates("incident_date", "complaint_date")
    def _not_future(self, value: date, **_: object) -> None:
        if value > self.clock.now().date():
            raise ValidationError("The incident date is in the future.")

    @validates_schema
    def _month_is_first(self, data: dict, **_: object) -> None:
        when = data.get("incident_date")
        if data.get("incident_date_precision") == "month" and (when is None or when.day != 1):
            raise ValidationError(
                "With precision month, incident_date is the 1st of that month, e.g. 2026-10-01.",
                field_name="incident_date",
            )

    @validates("amount")
    def _cents(self, value: Decimal, **_: object) -> None:
        if value != value.quantize(Decimal("0.01")):
            raise ValidationError("More than two decimals.")


def field_for_path(schema: Schema, path: list[str]) -> fields.Field | None:
    """The marshmallow field at a dotted error path, to read its `fix` metadata."""
    field: fields.Field | None = None
    current: Schema | None = schema
    for part in path:
        if current is None or part not in current.fields:
            return None
        field = current.fields[part]
        current = field.schema if isinstance(field, fields.Nested) else None
    return field
