"""The mapping engine: one YAML file per agency says what leaves the hub and how status comes back.

A file is loaded and checked once (`load_agency`): its shape against the declared schema
(`contracts/agency-mapping.schema.json`, see mappings/schema.py), then what a schema cannot say
(canonical statuses, transforms, domains, durations, prechecks). Every problem is collected and
raised as one `MappingError`, each naming the file, the line, the key and the fix.

`AgencyMapping.render` turns a canonical case document into the agency's payload; only the
mapped fields leave the hub, which makes the file the data-minimisation rule as well.
`AgencyMapping.map_status` reads an agency's own status code as a canonical status.

Field expressions:  `agency_field: source | transform(args) | transform ...` where source is a
dotted path into the case document (`case.description`, `consumer.name`, `trader.address.city`)
or a quoted literal (`'LOKET'`).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mappings import AGENCIES_DIR, CONTRACTS_DIR
from mappings.names import NameForms, grammar_problems, spaced
from mappings.names import forms as name_forms
from mappings.problems import MappingError, Problem, guide
from mappings.schema import Lines, PathPart, dotted, read_yaml, schema_problems

LANGUAGES = ("nl", "fr", "de", "en")


class RenderError(ValueError):
    """A case cannot be rendered for an agency (e.g. a required value is missing)."""


# ---------------------------------------------------------------------------------------- statuses


@lru_cache(maxsize=2)
def canonical_statuses(path: Path = CONTRACTS_DIR / "statuses.yaml") -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


# -------------------------------------------------------------------------------------- transforms

Transform = Callable[..., Any]
TRANSFORMS: dict[str, Transform] = {}


def transform(name: str) -> Callable[[Transform], Transform]:
    def register(fn: Transform) -> Transform:
        TRANSFORMS[name] = fn
        return fn

    return register


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@transform("truncate")
def _truncate(value: Any, length: int, ellipsis: str = "") -> Any:
    if value is None:
        return None
    text = str(value)
    if len(text) <= length:
        return text
    return text[: max(0, length - len(ellipsis))] + ellipsis


# What an agency whose contract takes only full dates reads first in the description when the
# consumer knew only the month (its date field then holds the 1st: `date(fmt, 'first')`).
MONTH_ONLY_NOTE = {
    "nl": "[Datum van de feiten: alleen de maand is bekend ({month}); het datumveld vermeldt de "
    "eerste dag van die maand.]",
    "fr": "[Date des faits : seul le mois est connu ({month}) ; le champ de date indique le "
    "premier jour de ce mois.]",
    "de": "[Datum des Sachverhalts: nur der Monat ist bekannt ({month}); das Datumsfeld nennt den "
    "ersten Tag dieses Monats.]",
    "en": "[Date of the facts: only the month is known ({month}); the date field gives the first "
    "day of that month.]",
}


def description_dated(case: Mapping[str, Any], language: str) -> Any:
    """`case.description_dated`: the description, led by a note in the agency's working
    language when the incident date is known to the month only (see the guide's "Dates")."""
    description = case.get("description")
    when = case.get("incident_date")
    if case.get("incident_date_precision") != "month" or not when or description is None:
        return description
    year, month = str(when)[:4], str(when)[5:7]
    note = MONTH_ONLY_NOTE.get(language, MONTH_ONLY_NOTE["en"]).format(month=f"{month}/{year}")
    return f"{note}\n\n{description}"


# The directives of a day inside a format, with the separator that joins them to the rest, so a
# month-only date drops them: "%d/%m/%Y" -> "%m/%Y", "%Y-%m-%d" -> "%Y-%m".
_DAY = re.compile(r"%[daAjuw][^%A-Za-z0-9]*|[^%A-Za-z0-9]*%[daAjuw]")


@transform("date")
def _date(value: Any, fmt: str = "%Y-%m-%d", month: str = "month") -> Any:
    """A date in the agency's format. A month-only date (the reduced ISO form 2026-10, what the
    canonical case holds when the consumer knows only the month) keeps its precision: the day
    is left out of the format (the default), or, for a contract that takes only full dates,
    `date('%Y-%m-%d', 'first')` writes the 1st of the month; a mapping that uses it must
    also map `case.description_dated` or `case.incident_date_precision`, so the agency is told
    the day is not known (checked by `loket mappings validate`, mappings/agencies/README.md)."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value):
        first = date.fromisoformat(value + "-01")
        if month == "first":
            return first.strftime(fmt)
        if month != "month":
            raise ValueError(f"date(month=...) is 'month' or 'first', not {month!r}")
        return first.strftime(_DAY.sub("", fmt, count=1) or "%Y-%m")
    d = _as_date(value)
    return d.strftime(fmt) if d else None


@transform("datetime")
def _datetime(value: Any, fmt: str = "%Y-%m-%dT%H:%M:%S%z") -> Any:
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt.strftime(fmt)


@transform("upper")
def _upper(value: Any) -> Any:
    return None if value is None else str(value).upper()


@transform("lower")
def _lower(value: Any) -> Any:
    return None if value is None else str(value).lower()


@transform("digits")
def _digits(value: Any) -> Any:
    return None if value is None else re.sub(r"\D", "", str(value))


@transform("default")
def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None or value == "" else value


@transform("map")
def _map(value: Any, table: Mapping[str, Any], fallback: Any = None) -> Any:
    if value is None:
        return None
    return table.get(str(value), fallback if fallback is not None else value)


@transform("number")
def _number(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return float(Decimal(str(value)))
    except InvalidOperation:
        raise RenderError(f"{value!r} is not a number") from None


@transform("cents")
def _cents(value: Any) -> Any:
    if value is None or value == "":
        return None
    return int(Decimal(str(value)) * 100)


@transform("string")
def _string(value: Any) -> Any:
    return None if value is None else str(value)


@transform("yesno")
def _yesno(value: Any, yes: str = "yes", no: str = "no") -> Any:
    return None if value is None else (yes if value else no)


@transform("required")
def _required(value: Any) -> Any:
    if value is None or value == "":
        raise RenderError("a required value is missing")
    return value


# ------------------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class FieldRule:
    target: str  # agency field, dotted for nesting
    source: str | None  # dotted path into the case document
    literal: Any  # used when source is None
    steps: tuple[Step, ...]
    expression: str

    def evaluate(self, document: Mapping[str, Any]) -> Any:
        value = self.literal if self.source is None else resolve(document, self.source)
        for step in self.steps:
            try:
                value = TRANSFORMS[step.name](value, *step.args)
            except RenderError as exc:
                raise RenderError(f"{self.target} <- {self.expression}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise RenderError(f"{self.target} <- {self.expression}: {exc}") from None
        return value


PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
STEP = re.compile(r"^([a-z_]+)\s*(?:\((.*)\))?$", re.S)
DOCUMENT_ROOTS = ("case", "consumer", "trader", "assignment", "agency")


def resolve(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _split_pipes(expression: str) -> list[str]:
    """Split on `|` outside quotes and brackets."""
    parts, depth, quote, buf = [], 0, "", []
    for ch in expression:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf).strip())
    return parts


class Invalid(ValueError):
    """One problem found while reading one value; the loader adds file, line and key."""

    def __init__(self, problem: str, fix: str, section: str):
        super().__init__(problem)
        self.problem, self.fix, self.section = problem, fix, section


def parse_field(target: str, expression: Any) -> FieldRule:
    """`source | transform(args) | ...` for agency field `target`; raises Invalid."""
    if not isinstance(expression, str) or not expression.strip():
        raise Invalid(
            "the expression is empty or not text",
            "write `source | transform`, e.g. `case.description | truncate(4000)`",
            "fields",
        )
    head, *rest = _split_pipes(expression)
    source: str | None
    literal: Any = None
    if head[:1] in "'\"":
        try:
            literal = ast.literal_eval(head)
        except (ValueError, SyntaxError):
            raise Invalid(
                f"cannot read the literal {head}", "quote a literal like 'LOKET'", "sources"
            ) from None
        source = None
    else:
        if not PATH.match(head) or head.split(".")[0] not in DOCUMENT_ROOTS:
            raise Invalid(
                f"unknown source {head!r}",
                "start the path with one of "
                + ", ".join(DOCUMENT_ROOTS)
                + " (e.g. case.reference)",
                "sources",
            )
        source = head
    steps = []
    for raw in rest:
        m = STEP.match(raw)
        if not m:
            raise Invalid(
                f"cannot read the transform {raw!r}", "write name or name(arg, ...)", "transforms"
            )
        name, args_text = m.group(1), m.group(2)
        if name not in TRANSFORMS:
            close = difflib.get_close_matches(name, sorted(TRANSFORMS), n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise Invalid(
                f"unknown transform {name!r}",
                f"{hint}use one of: " + ", ".join(sorted(TRANSFORMS)),
                "transforms",
            )
        args: tuple[Any, ...] = ()
        if args_text and args_text.strip():
            try:
                parsed = ast.literal_eval(f"({args_text},)")
            except (ValueError, SyntaxError):
                raise Invalid(
                    f"cannot read the arguments of {name}({args_text})",
                    "give Python-style literals, e.g. truncate(4000) or date('%d/%m/%Y')",
                    "transforms",
                ) from None
            args = tuple(parsed)
        signature = inspect.signature(TRANSFORMS[name])
        try:
            signature.bind(None, *args)
        except TypeError:
            wanted = ", ".join(list(signature.parameters)[1:])
            raise Invalid(
                f"{name} does not take {len(args)} argument(s)",
                f"write {name}({wanted})" if wanted else f"write {name} without arguments",
                "transforms",
            ) from None
        steps.append(Step(name, args))
    return FieldRule(target, source, literal, tuple(steps), expression)


# --------------------------------------------------------------------------------------- durations

DURATION = re.compile(r"^\s*(\d+)\s*(business days?|days?|hours?|minutes?|seconds?)\s*$")


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # business_days | days | hours | minutes | seconds

    @property
    def seconds(self) -> float:
        per = {"days": 86400, "business_days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
        return self.amount * per[self.unit]


def parse_duration(text: Any) -> Duration:
    """'3 business days', '30 days', '5 minutes', ...; raises Invalid."""
    m = DURATION.match(str(text))
    if not m:
        raise Invalid(
            f"cannot read the duration {text!r}",
            "write e.g. '3 business days', '30 days', '5 minutes'",
            "durations",
        )
    unit = m.group(2).rstrip("s").replace(" ", "_") + "s"
    return Duration(int(m.group(1)), unit)


# ----------------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class StatusRule:
    status: str
    outcome: str | None = None
    # what the agency calls the code, per language (its staff read it in the hosted workspace)
    label: Mapping[str, str] = field(default_factory=dict)

    def name(self, code: str, language: str) -> str:
        """The code's name in `language` (else English, else the code itself)."""
        return self.label.get(language) or self.label.get("en") or code


# The reasons an agency may give when it asks the consumer for information: a closed list, so
# the consumer reads each in their own language (the hub's translations) next to the agency's
# own words. A mapping's `information_requests` picks some and names the status code to set.
INFORMATION_REASONS = (
    "disputed_bill",
    "customer_number",
    "contract",
    "proof_of_payment",
    "correspondence_with_trader",
    "proof_of_identity",
    "photos",
    "other",
)


@dataclass(frozen=True)
class Precheck:
    """An admissibility condition of an agency, asked before a case is sent to it.

    Either a yes/no question whose answer must be `expect` (`ask`), or a maximum age
    (`max_age_days`) counted from `age_from`: the incident, or the consumer's complaint to the
    trader (the telecom and energy ombudsmen count a year from that complaint). `reason` says why a case fails it, `advice` what to do first.
    """

    id: str
    applies_to: tuple[str, ...]
    ask: Mapping[str, str] | None
    max_age_days: int | None
    reason: Mapping[str, str]
    advice: Mapping[str, str]
    expect: bool = True  # the answer that passes; False for "is a court case pending?"
    age_from: str = "incident_date"  # or complaint_date: the consumer's complaint to the trader

    def text(self, field_: str, language: str) -> str:
        table = getattr(self, field_) or {}
        return spaced(table.get(language) or table.get("en", ""), language)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: wait uniform(0, min(cap, base * multiplier^(n-1)))."""

    max_attempts: int = 10
    base_seconds: float = 2.0
    multiplier: float = 2.0
    cap_seconds: float = 3600.0

    def delay(
        self, attempt: int, rng: random.Random | None = None, retry_after: float | None = None
    ) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * self.multiplier ** max(0, attempt - 1))
        chosen = (rng or _RNG).uniform(0, ceiling)
        if retry_after is not None:  # the agency said when; never sooner, never beyond the cap
            chosen = max(chosen, min(retry_after, self.cap_seconds))
        return chosen


@dataclass(frozen=True)
class BreakerPolicy:
    """Open after `failures` consecutive transient failures; probe again after `pause_seconds`."""

    failures: int = 5
    pause_seconds: float = 30.0


@dataclass(frozen=True)
class DeliveryPolicy:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    # Deliveries leased to this agency at once, across all workers (each claims its share).
    max_in_flight: int = 200
    # Requests one worker has open to this agency at once, where the adapter can; used only
    # when the agency answers slowly enough for overlapping to pay (a fast one is sent inline).
    concurrency: int = 4


_RNG = random.Random()


@dataclass(frozen=True)
class AgencyMapping:
    id: str
    names: Mapping[str, str]
    body: str
    kinds: tuple[str, ...]
    domains: tuple[str, ...]
    languages: tuple[str, ...]
    adapter_kind: str
    adapter_config: Mapping[str, Any]
    fields: tuple[FieldRule, ...]
    statuses: Mapping[str, StatusRule]
    acknowledge_within: Duration | None
    answer_within: Duration | None
    poll_every: Duration | None
    source: Path
    extra: Mapping[str, Any] = field(default_factory=dict)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    prechecks: tuple[Precheck, ...] = ()
    grammar: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # per language

    def name(self, language: str = "en") -> str:
        return self.names.get(language) or self.names["en"]

    def forms(self, language: str = "en") -> NameForms:
        """The name as sentences need it: with its article and contractions (`mappings.names`)."""
        lang = language if language in self.names else "en"
        return name_forms(self.name(lang), lang, self.grammar.get(lang))

    @property
    def connected(self) -> bool:
        """Whether the hub delivers to the body through an adapter. A body without an `adapter`
        block is a referral body: the consumer is told where to go, nothing is delivered."""
        return bool(self.adapter_kind)

    @property
    def referral(self) -> Mapping[str, Any]:
        """The `referral` block of a body not (yet) connected: what, url, form_url, letter."""
        return self.extra.get("referral") or {}

    def working_language(self, case_language: str) -> str:
        """The agency works in the consumer's language when it can, else in its first one."""
        return case_language if case_language in self.languages else self.languages[0]

    def render(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The agency's payload for one case: only mapped fields, empty values left out.

        `agency.language` is the language the agency handles this case in (its working
        language): the consumer's when the agency works in it, else the agency's first. A field
        that tells the agency which language to use maps that, not `case.language`, which may
        be one the agency's system refuses (an English report to a body working in nl/fr/de)."""
        case = document.get("case") or {}
        language = self.working_language(str(case.get("language") or ""))
        document = {
            **document,
            "case": {**case, "description_dated": description_dated(case, language)},
            "agency": {
                **(document.get("agency") or {}),
                "id": self.id,
                "language": language,
            },
        }
        payload: dict[str, Any] = {}
        for rule in self.fields:
            value = rule.evaluate(document)
            if value is None or value == "":
                continue
            node = payload
            *parents, leaf = rule.target.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return payload

    def map_status(self, agency_status: str) -> StatusRule | None:
        return self.statuses.get(agency_status)

    @property
    def information_requests(self) -> Mapping[str, str]:
        """reason (INFORMATION_REASONS) -> the agency's status code that asks for it."""
        return self.extra.get("information_requests") or {}


# -------------------------------------------------------------------------------------- loading

# ${VAR} or ${VAR:-default}; a default may itself hold ${OTHER:-...} (one level), e.g.
# "${LOKET_X_KEY:-@file:${LOKET_VAR_DIR:-var}/sim/x/key}".
ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-((?:[^${}]|\$(?!\{)|\$\{[^{}]*\})*))?\}")

Where = tuple[PathPart, ...]


def interpolate(
    value: Any, env: Mapping[str, str], missing: list[tuple[Where, str]], where: Where = ()
) -> Any:
    """Replace ${VAR} and ${VAR:-default} in strings, recursively; a variable that is not set
    and has no default is added to `missing` as (where, name) and left as written."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing, (*where, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return ENV_REF.sub(sub, default)
        missing.append((where, name))
        return m.group(0)

    return ENV_REF.sub(sub, value)


@lru_cache(maxsize=2)
def domain_codes(path: Path = CONTRACTS_DIR / "domains.yaml") -> tuple[str, ...]:
    """Every area.subarea code of the taxonomy."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return tuple(f"{a}.{s}" for a, spec in data["areas"].items() for s in spec["subareas"])


class _Reading:
    """One mapping file being read: where its keys are, and every problem found so far.

    The schema checks the shape first; the checks here read only values whose shape is right
    (`clean`), so one mistake is reported once, and everything else is still checked.
    """

    def __init__(self, path: Path, lines: Lines, data: dict[str, Any]):
        self.path, self.lines, self.data = path, lines, data
        self.problems: list[Problem] = schema_problems(data, path, self.lines)
        self._shape_keys = [p.key for p in self.problems]

    def add(self, where: Where, problem: str, fix: str, section: str) -> None:
        self.problems.append(
            Problem(
                str(self.path),
                self.lines.line(*where),
                dotted(where),
                problem,
                f"{fix} (see {guide(section)})",
            )
        )

    def invalid(self, where: Where, exc: Invalid) -> None:
        self.add(where, exc.problem, exc.fix, exc.section)

    def clean(self, *where: PathPart) -> bool:
        """True when the schema found nothing wrong at, above or below `where`."""
        key = dotted(where)
        for bad in self._shape_keys:
            if bad == key or bad == "(file)":
                return False
            for a, b in ((bad, key), (key, bad)):
                if a.startswith(b + ".") or a.startswith(b + "["):
                    return False
        return True

    def block(self, name: str) -> dict[str, Any]:
        """A top-level block that is a block; its entries may still have problems (`clean`)."""
        value = self.data.get(name)
        return value if isinstance(value, dict) and name not in self._shape_keys else {}

    # -------------------------------------------------------------------------------- the checks

    def check_id(self) -> None:
        agency_id = self.data.get("id")
        if self.clean("id") and agency_id != self.path.stem:
            self.add(
                ("id",),
                f"the id {agency_id!r} differs from the file name {self.path.name}",
                f"rename the file to {agency_id}.yaml or change the id",
                "id",
            )

    def check_domains(self, domains: tuple[str, ...]) -> None:
        codes = domain_codes()
        areas = sorted({c.split(".")[0] + ".*" for c in codes})
        for i, pattern in enumerate(domains):
            if any(fnmatchcase(code, pattern) for code in codes):
                continue
            close = difflib.get_close_matches(pattern, [*areas, *codes], n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            self.add(
                ("handles", "domains", i),
                f"the domain {pattern!r} matches no code in contracts/domains.yaml",
                f"{hint}use area.subarea codes from contracts/domains.yaml, or area.*",
                "handles",
            )

    def check_contract_path(self) -> None:
        contract = self.data.get("contract")
        if contract is None or not self.clean("contract"):
            return
        if not (CONTRACTS_DIR.parent / contract).exists():
            self.add(
                ("contract",),
                f"{contract} does not exist",
                "give the path of the agency's contract file or folder, from the project root",
                "contract",
            )

    def adapter_config(self, env: Mapping[str, str]) -> dict[str, Any]:
        adapter = self.block("adapter")
        missing: list[tuple[Where, str]] = []
        config = interpolate(
            {k: v for k, v in adapter.items() if k != "kind"}, env, missing, ("adapter",)
        )
        for where, name in missing:
            self.add(
                where,
                f"the environment variable {name} is not set",
                f"set {name}, or write ${{{name}:-default}} in the file",
                "environment-variables",
            )
        return config

    def fields(self) -> tuple[FieldRule, ...]:
        rules = []
        for target, expression in self.block("fields").items():
            if not self.clean("fields", target):
                continue
            try:
                rules.append(parse_field(str(target), expression))
            except Invalid as exc:
                self.invalid(("fields", target), exc)
        targets = [rule.target for rule in rules]
        for outer in targets:
            for inner in targets:
                if inner.startswith(outer + "."):
                    self.add(
                        ("fields", inner),
                        f"`{outer}` is mapped to a value and also holds `{inner}`",
                        f"map either `{outer}` or its parts, not both",
                        "fields",
                    )
        sources = {rule.source for rule in rules}
        for rule in rules:
            first = any(step.name == "date" and step.args[1:2] == ("first",) for step in rule.steps)
            if first and not sources & {"case.incident_date_precision", "case.description_dated"}:
                self.add(
                    ("fields", rule.target),
                    "a month-only date is written as the 1st of the month here, and nothing "
                    "tells the agency that the day is not known",
                    "map the description from `case.description_dated` (it then starts with a "
                    "note), or `case.incident_date_precision` to a field of the agency, or drop "
                    "'first' so the month is sent as a month",
                    "dates",
                )
        return tuple(rules)

    def statuses(self) -> dict[str, StatusRule]:
        vocabulary = canonical_statuses()
        known, outcomes = sorted(vocabulary["statuses"]), sorted(vocabulary["outcomes"])
        out: dict[str, StatusRule] = {}
        for code, target in self.block("statuses").items():
            if not self.clean("statuses", code):
                continue
            if isinstance(target, str):
                rule = StatusRule(target)
            else:
                rule = StatusRule(
                    target["status"], target.get("outcome"), dict(target.get("label") or {})
                )
            wrong = 0
            for word, value, allowed in (
                ("canonical status", rule.status, known),
                ("outcome", rule.outcome, outcomes),
            ):
                if value is None or value in allowed:
                    continue
                wrong += 1
                close = difflib.get_close_matches(value, allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                self.add(
                    ("statuses", code),
                    f"unknown {word} {value!r}",
                    f"{hint}use one of contracts/statuses.yaml: " + ", ".join(allowed),
                    "statuses",
                )
            if not wrong:
                out[str(code)] = rule
        return out

    def check_information_requests(self, statuses: Mapping[str, StatusRule]) -> None:
        """Each reason's code must be one of the agency's codes that means
        waiting_for_consumer: asking is setting that status."""
        for reason, code in self.block("information_requests").items():
            if not self.clean("information_requests", reason):
                continue
            rule = statuses.get(str(code))
            if rule is None or rule.status != "waiting_for_consumer":
                waiting = [c for c, r in statuses.items() if r.status == "waiting_for_consumer"]
                self.add(
                    ("information_requests", reason),
                    f"{code!r} is not one of the agency's codes meaning waiting_for_consumer",
                    "use one of " + (", ".join(waiting) or "(none: add such a code to statuses)"),
                    "information_requests",
                )

    def duration(self, block: str, key: str) -> Duration | None:
        raw = self.block(block).get(key)
        if raw is None or not self.clean(block, key):
            return None
        try:
            return parse_duration(raw)
        except Invalid as exc:
            self.invalid((block, key), exc)
            return None

    def delivery(self) -> DeliveryPolicy:
        raw = self.block("delivery") if self.clean("delivery") else {}

        def seconds(value: Any, where: Where) -> float:
            if not isinstance(value, str):
                return float(value)
            try:
                return parse_duration(value).seconds
            except Invalid as exc:
                self.invalid(where, exc)
                return 0.0

        retry_raw = raw.get("retry") or {}
        names = {"base": "base_seconds", "multiplier": "multiplier", "cap": "cap_seconds"}
        retry: dict[str, Any] = {
            names[k]: seconds(v, ("delivery", "retry", k))
            for k, v in retry_raw.items()
            if k in names
        }
        if "max_attempts" in retry_raw:
            retry["max_attempts"] = int(retry_raw["max_attempts"])
        breaker_raw = raw.get("breaker") or {}
        breaker = BreakerPolicy(
            failures=int(breaker_raw.get("failures", 5)),
            pause_seconds=seconds(breaker_raw.get("pause", 30.0), ("delivery", "breaker", "pause")),
        )
        return DeliveryPolicy(
            RetryPolicy(**retry),
            breaker,
            int(raw.get("max_in_flight", 200)),
            int(raw.get("concurrency", 4)),
        )

    def prechecks(self, kinds: tuple[str, ...]) -> tuple[Precheck, ...]:
        raw = self.data.get("prechecks")
        if not isinstance(raw, list):
            return ()
        out: list[Precheck] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not self.clean("prechecks", i):
                continue
            check_id = item["id"]
            if check_id in seen:
                self.add(
                    ("prechecks", i, "id"),
                    f"{check_id!r} is also the id of prechecks[{seen[check_id]}]",
                    "give each check its own id",
                    "prechecks",
                )
            seen.setdefault(check_id, i)
            applies = tuple(item.get("applies_to") or kinds)
            bad = [k for k in applies if k not in kinds]
            if bad and kinds:
                self.add(
                    ("prechecks", i, "applies_to"),
                    f"{', '.join(bad)}: not a kind this agency handles",
                    f"use some of {', '.join(kinds)} (handles.kinds)",
                    "prechecks",
                )
            if ("ask" in item) == ("max_age" in item):
                self.add(
                    ("prechecks", i),
                    "a check needs exactly one of `ask` or `max_age`",
                    "ask a yes/no question, or limit the incident's age (max_age: 1 year)",
                    "prechecks",
                )
            max_age = None
            m = re.match(r"^\s*(\d+)\s*(years?|days?)\s*$", str(item.get("max_age", "")))
            if m:
                max_age = int(m.group(1)) * (365 if m.group(2).startswith("year") else 1)
            out.append(
                Precheck(
                    check_id,
                    applies,
                    dict(item["ask"]) if "ask" in item else None,
                    max_age,
                    dict(item.get("reason") or {}),
                    dict(item["advice"]),
                    bool(item.get("expect", True)),
                    str(item.get("from") or "incident_date"),
                )
            )
        return tuple(out)

    def check_grammar(self) -> None:
        """What the schema cannot see in `grammar`: an article that does not fit the name."""
        if not (self.clean("grammar") and self.clean("names")):
            return
        grammar, names = self.data.get("grammar"), self.data.get("names")
        if not isinstance(grammar, dict) or not isinstance(names, dict):
            return
        for text in grammar_problems(names, grammar):
            lang, _, rest = text.partition(": ")
            problem, _, fix = rest.partition(" Fix: ")
            self.add(("grammar", lang, "article"), problem, fix.capitalize(), "grammar")

    def mapping(self, env: Mapping[str, str]) -> AgencyMapping | None:
        """Runs every check; the problems are in `problems`. The AgencyMapping built from what
        is right, or None when a problem is in `IDENTITY_BLOCKS`: so a misspelt `poll:` does not
        hide what the transport and contract checks would find."""
        self.check_id()
        handles = self.block("handles")
        kinds = tuple(handles.get("kinds") or ()) if self.clean("handles", "kinds") else ()
        domains = tuple(handles.get("domains") or ()) if self.clean("handles", "domains") else ()
        self.check_domains(domains)
        self.check_contract_path()
        adapter_config = self.adapter_config(env)
        rules = self.fields()
        statuses = self.statuses()
        self.check_information_requests(statuses)
        acknowledge = self.duration("sla", "acknowledge")
        answer = self.duration("sla", "answer")
        poll_every = self.duration("poll", "every")
        delivery = self.delivery()
        prechecks = self.prechecks(kinds)
        self.check_grammar()
        if blocks_with_problems(self.problems) & IDENTITY_BLOCKS:
            return None
        data = self.data
        return AgencyMapping(
            id=data["id"],
            names=dict(data["names"]) if self.clean("names") else {},
            grammar=(
                {k: dict(v) for k, v in data["grammar"].items()}
                if self.clean("grammar") and isinstance(data.get("grammar"), dict)
                else {}
            ),
            body=data["body"] if self.clean("body") else "",
            kinds=kinds,
            domains=domains,
            languages=tuple(data["languages"]),
            adapter_kind=str((data.get("adapter") or {}).get("kind") or ""),
            adapter_config=adapter_config,
            fields=rules,
            statuses=statuses,
            acknowledge_within=acknowledge,
            answer_within=answer,
            poll_every=poll_every,
            source=self.path,
            extra={k: data[k] for k in EXTRA_KEYS if k in data},
            delivery=delivery,
            prechecks=prechecks,
        )


# Blocks the engine does not read itself; `AgencyMapping.extra` carries them to their readers.
EXTRA_KEYS = ("contract", "simulator", "referral", "information_requests")
# Without these a mapping cannot be built at all.
IDENTITY_BLOCKS = frozenset({"(file)", "(yaml)", "id", "adapter", "languages", "handles"})
# What rendering and the contract checks read besides: a problem here makes them pointless.
CONTRACT_BLOCKS = frozenset({*IDENTITY_BLOCKS, "fields", "statuses"})


def blocks_with_problems(problems: Iterable[Problem]) -> set[str]:
    """The top-level blocks (`fields`, `poll`, ...) that the problems are in."""
    return {re.split(r"[.\[]", p.key, maxsplit=1)[0] for p in problems}


def check_agency(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[AgencyMapping | None, list[Problem]]:
    """Read and check one mapping file: (the mapping, every problem in file order).

    The mapping is None when the file cannot be read as one (a problem in `IDENTITY_BLOCKS`);
    otherwise it is given despite problems, without the fields and statuses that have one, for
    `loket mappings validate` to check it further. The hub uses `load_agency`, which accepts no
    problem at all.
    """
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [
            Problem(
                str(path),
                None,
                "(file)",
                f"cannot read the file: {exc.strerror}",
                "check the path and permissions",
            )
        ]
    try:
        data, lines = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [
            Problem(
                str(path),
                mark.line + 1 if mark else None,
                "(yaml)",
                f"not valid YAML: {problem}",
                "check indentation and quoting near that line; quote a value that contains `: `",
            )
        ]
    if not isinstance(data, dict):
        return None, [
            Problem(
                str(path),
                1,
                "(file)",
                "the file does not hold a block of `key: value` lines",
                f"start from the example in {guide('the-whole-file')}",
            )
        ]
    reading = _Reading(path, lines, data)
    mapping = reading.mapping(env)
    return mapping, sorted(reading.problems, key=lambda p: (p.line or 0, p.key))


def load_agency(path: str | Path, env: Mapping[str, str] | None = None) -> AgencyMapping:
    """Read and check one mapping file. Raises one MappingError listing every problem in it."""
    mapping, problems = check_agency(path, env)
    if problems or mapping is None:
        raise MappingError(problems)
    return mapping


def load_all(
    directory: str | Path = AGENCIES_DIR, env: Mapping[str, str] | None = None
) -> dict[str, AgencyMapping]:
    """Every `<id>.yaml` in `directory`, keyed by agency id. Raises one MappingError listing the
    problems of every file."""
    out: dict[str, AgencyMapping] = {}
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            mapping = load_agency(path, env)
        except MappingError as exc:
            problems.extend(exc.problems)
            continue
        out[mapping.id] = mapping
    if problems:
        raise MappingError(problems)
    return out
