"""The mapping engine: one YAML file per agency says what leaves the hub and how status comes back.

A file is loaded and checked once (`load_agency`); errors name the file, the key, the line and the
fix. `AgencyMapping.render` turns a canonical case document into the agency's payload; only the
mapped fields leave the hub, which makes the file the data-minimisation rule as well.
`AgencyMapping.map_status` reads an agency's own status code as a canonical status.

Field expressions:  `agency_field: source | transform(args) | transform ...` where source is a
dotted path into the case document (`case.description`, `consumer.name`, `trader.address.city`)
or a quoted literal (`'LOKET'`).
"""

from __future__ import annotations

import ast
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mappings import AGENCIES_DIR, CONTRACTS_DIR

LANGUAGES = ("nl", "fr", "de", "en")
BODIES = ("ombudsman", "inspection", "regulator", "mediation", "dispute_committee", "network")


class MappingError(ValueError):
    """A mapping file is wrong. str() gives `file:line: key: problem. Fix: ...`."""

    def __init__(self, file: str | Path, key: str, problem: str, fix: str, line: int | None = None):
        self.file, self.key, self.problem, self.fix, self.line = str(file), key, problem, fix, line
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {key}: {problem}. Fix: {fix}")


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


@transform("date")
def _date(value: Any, fmt: str = "%Y-%m-%d") -> Any:
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


def parse_field(target: str, expression: Any, file: Path, line: int | None) -> FieldRule:
    key = f"fields.{target}"
    if not isinstance(expression, str) or not expression.strip():
        raise MappingError(
            file,
            key,
            "the expression is empty or not text",
            "write `source | transform`, e.g. `case.description | truncate(4000)`",
            line,
        )
    head, *rest = _split_pipes(expression)
    source: str | None
    literal: Any = None
    if head[:1] in "'\"":
        try:
            literal = ast.literal_eval(head)
        except (ValueError, SyntaxError):
            raise MappingError(
                file, key, f"cannot read the literal {head}", "quote a literal like 'LOKET'", line
            ) from None
        source = None
    else:
        if not PATH.match(head) or head.split(".")[0] not in DOCUMENT_ROOTS:
            raise MappingError(
                file,
                key,
                f"unknown source {head!r}",
                "start the path with one of "
                + ", ".join(DOCUMENT_ROOTS)
                + " (e.g. case.reference)",
                line,
            )
        source = head
    steps = []
    for raw in rest:
        m = STEP.match(raw)
        if not m:
            raise MappingError(
                file,
                key,
                f"cannot read the transform {raw!r}",
                "write name or name(arg, ...)",
                line,
            )
        name, args_text = m.group(1), m.group(2)
        if name not in TRANSFORMS:
            raise MappingError(
                file,
                key,
                f"unknown transform {name!r}",
                "use one of: " + ", ".join(sorted(TRANSFORMS)),
                line,
            )
        args: tuple[Any, ...] = ()
        if args_text and args_text.strip():
            try:
                parsed = ast.literal_eval(f"({args_text},)")
            except (ValueError, SyntaxError):
                raise MappingError(
                    file,
                    key,
                    f"cannot read the arguments of {name}({args_text})",
                    "give Python-style literals, e.g. truncate(4000) or date('%d/%m/%Y')",
                    line,
                ) from None
            args = tuple(parsed)
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


def parse_duration(text: Any, file: Path, key: str, line: int | None) -> Duration:
    m = DURATION.match(str(text))
    if not m:
        raise MappingError(
            file,
            key,
            f"cannot read the duration {text!r}",
            "write e.g. '3 business days', '30 days', '5 minutes'",
            line,
        )
    unit = m.group(2).rstrip("s").replace(" ", "_") + "s"
    return Duration(int(m.group(1)), unit)


# ----------------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class StatusRule:
    status: str
    outcome: str | None = None


@dataclass(frozen=True)
class Precheck:
    """An admissibility condition of an agency, asked before a case is sent to it.

    Either a question the consumer must answer yes to (`ask`), or a maximum age of the incident
    (`max_age_days`). `reason` says why a case fails it, `advice` what to do first.
    """

    id: str
    applies_to: tuple[str, ...]
    ask: Mapping[str, str] | None
    max_age_days: int | None
    reason: Mapping[str, str]
    advice: Mapping[str, str]

    def text(self, field_: str, language: str) -> str:
        table = getattr(self, field_) or {}
        return table.get(language) or table.get("en", "")


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
    max_in_flight: int = 20  # leased deliveries to this agency at once, across all workers
    concurrency: int = (
        4  # deliveries one worker keeps in flight to this agency (if the adapter can)
    )


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

    def name(self, language: str = "en") -> str:
        return self.names.get(language) or self.names["en"]

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
        document = {
            **document,
            "agency": {
                **(document.get("agency") or {}),
                "id": self.id,
                "language": self.working_language(str(case.get("language") or "")),
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


# -------------------------------------------------------------------------------------- loading

# ${VAR} or ${VAR:-default}; a default may itself hold ${OTHER:-...} (one level), e.g.
# "${LOKET_X_KEY:-@file:${LOKET_VAR_DIR:-var}/sim/x/key}".
ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-((?:[^${}]|\$(?!\{)|\$\{[^{}]*\})*))?\}")


def interpolate(value: Any, env: Mapping[str, str], file: Path, key: str) -> Any:
    """Replace ${VAR} and ${VAR:-default} in strings, recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, file, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return ENV_REF.sub(sub, default)
        raise MappingError(
            file,
            key,
            f"the environment variable {name} is not set",
            f"set {name}, or write ${{{name}:-default}} in the file",
        )

    return ENV_REF.sub(sub, value)


class _Lines:
    """Line numbers of keys in a YAML file, for error messages."""

    def __init__(self, text: str):
        try:
            self.root = yaml.compose(text)
        except yaml.YAMLError:
            self.root = None

    def line(self, *path: str) -> int | None:
        node, found = self.root, None
        for part in path:
            if not isinstance(node, yaml.MappingNode):
                return found
            for k, v in node.value:
                if k.value == part:
                    found, node = k.start_mark.line + 1, v
                    break
            else:
                return found
        return found


REQUIRED_KEYS = (
    "id",
    "names",
    "body",
    "handles",
    "languages",
    "adapter",
    "fields",
    "statuses",
    "sla",
)


def load_agency(path: str | Path, env: Mapping[str, str] | None = None) -> AgencyMapping:
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(
            path,
            "(file)",
            f"cannot read the file: {exc.strerror}",
            "check the path and permissions",
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise MappingError(
            path,
            "(yaml)",
            f"not valid YAML: {problem}",
            "check indentation and quoting near that line",
            line,
        ) from None
    lines = _Lines(text)
    if not isinstance(data, dict):
        raise MappingError(
            path,
            "(file)",
            "the file does not hold a mapping",
            "start from mappings/agencies/README.md's example",
        )
    for key in REQUIRED_KEYS:
        if key not in data:
            raise MappingError(
                path, key, "this key is missing", f"add `{key}:` (see mappings/agencies/README.md)"
            )

    agency_id = data["id"]
    if not isinstance(agency_id, str) or not re.match(r"^[a-z][a-z0-9-]{1,62}$", agency_id):
        raise MappingError(
            path,
            "id",
            f"{agency_id!r} is not a valid agency id",
            "use lower case letters, digits and dashes",
            lines.line("id"),
        )
    if path.stem != agency_id:
        raise MappingError(
            path,
            "id",
            f"the id {agency_id!r} differs from the file name",
            f"rename the file to {agency_id}.yaml or change the id",
            lines.line("id"),
        )

    names = data["names"]
    if not isinstance(names, dict) or any(not names.get(lang) for lang in LANGUAGES):
        missing = [lang for lang in LANGUAGES if not isinstance(names, dict) or not names.get(lang)]
        raise MappingError(
            path,
            "names",
            f"names missing for {', '.join(missing)}",
            "give the agency's name in nl, fr, de and en",
            lines.line("names"),
        )

    body = data["body"]
    if body not in BODIES:
        raise MappingError(
            path,
            "body",
            f"unknown kind of body {body!r}",
            "use one of: " + ", ".join(BODIES),
            lines.line("body"),
        )

    handles = data["handles"] or {}
    kinds = tuple(handles.get("kinds") or ())
    domains = tuple(handles.get("domains") or ())
    bad_kinds = [k for k in kinds if k not in ("question", "complaint", "report", "mediation")]
    if not kinds or bad_kinds:
        raise MappingError(
            path,
            "handles.kinds",
            f"unknown or no case kinds {bad_kinds}",
            "list some of: question, complaint, report, mediation",
            lines.line("handles", "kinds"),
        )

    languages = tuple(data["languages"] or ())
    if not languages or any(lang not in LANGUAGES for lang in languages):
        raise MappingError(
            path,
            "languages",
            f"bad working languages {languages}",
            "list some of: nl, fr, de, en",
            lines.line("languages"),
        )

    adapter = data["adapter"]
    if not isinstance(adapter, dict) or not adapter.get("kind"):
        raise MappingError(
            path,
            "adapter.kind",
            "the adapter kind is missing",
            "say which transport: rest, soap, email or sftp",
            lines.line("adapter"),
        )
    adapter_config = interpolate(
        {k: v for k, v in adapter.items() if k != "kind"}, env, path, "adapter"
    )

    raw_fields = data["fields"]
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise MappingError(
            path,
            "fields",
            "no fields are mapped",
            "map at least the case reference, e.g. `Reference: case.reference`",
            lines.line("fields"),
        )
    rules = tuple(
        parse_field(str(target), expr, path, lines.line("fields", str(target)))
        for target, expr in raw_fields.items()
    )

    vocabulary = canonical_statuses()
    known = set(vocabulary["statuses"])
    outcomes = set(vocabulary["outcomes"])
    statuses: dict[str, StatusRule] = {}
    if not isinstance(data["statuses"], dict) or not data["statuses"]:
        raise MappingError(
            path,
            "statuses",
            "no status codes are mapped",
            "map each of the agency's codes to a canonical status",
            lines.line("statuses"),
        )
    for code, target in data["statuses"].items():
        key, line = f"statuses.{code}", lines.line("statuses", str(code))
        rule = StatusRule(target) if isinstance(target, str) else StatusRule(**(target or {}))
        if rule.status not in known:
            raise MappingError(
                path,
                key,
                f"unknown canonical status {rule.status!r}",
                "use one of contracts/statuses.yaml: " + ", ".join(sorted(known)),
                line,
            )
        if rule.outcome is not None and rule.outcome not in outcomes:
            raise MappingError(
                path,
                key,
                f"unknown outcome {rule.outcome!r}",
                "use one of: " + ", ".join(sorted(outcomes)),
                line,
            )
        statuses[str(code)] = rule

    sla = data["sla"] or {}
    ack = (
        parse_duration(
            sla["acknowledge"], path, "sla.acknowledge", lines.line("sla", "acknowledge")
        )
        if sla.get("acknowledge")
        else None
    )
    answer = (
        parse_duration(sla["answer"], path, "sla.answer", lines.line("sla", "answer"))
        if sla.get("answer")
        else None
    )
    poll = data.get("poll") or {}
    poll_every = (
        parse_duration(poll["every"], path, "poll.every", lines.line("poll", "every"))
        if poll.get("every")
        else None
    )

    delivery = parse_delivery(data.get("delivery"), path, lines)
    prechecks = parse_prechecks(data.get("prechecks"), kinds, path, lines)
    known_keys = {*REQUIRED_KEYS, "poll", "delivery", "prechecks"}
    extra = {k: v for k, v in data.items() if k not in known_keys}
    return AgencyMapping(
        id=agency_id,
        names=dict(names),
        body=body,
        kinds=kinds,
        domains=domains,
        languages=languages,
        adapter_kind=str(adapter["kind"]),
        adapter_config=adapter_config,
        fields=rules,
        statuses=statuses,
        acknowledge_within=ack,
        answer_within=answer,
        poll_every=poll_every,
        source=path,
        extra=extra,
        delivery=delivery,
        prechecks=prechecks,
    )


def _four_languages(value: Any, path: Path, key: str, line: int | None) -> dict[str, str]:
    if not isinstance(value, dict) or any(not value.get(lang) for lang in LANGUAGES):
        missing = [lang for lang in LANGUAGES if not isinstance(value, dict) or not value.get(lang)]
        raise MappingError(
            path,
            key,
            f"text missing in {', '.join(missing)}",
            "write it in nl, fr, de and en",
            line,
        )
    return {lang: str(value[lang]) for lang in LANGUAGES}


def parse_prechecks(
    raw: Any, kinds: tuple[str, ...], path: Path, lines: _Lines
) -> tuple[Precheck, ...]:
    """The `prechecks:` list: admissibility conditions the front desk asks before sending."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MappingError(
            path,
            "prechecks",
            "not a list",
            "write a list of checks, each with id, ask or max_age, and advice",
            lines.line("prechecks"),
        )
    out, seen = [], set()
    for i, item in enumerate(raw):
        key = f"prechecks[{i}]"
        line = lines.line("prechecks")
        if not isinstance(item, dict) or not re.match(
            r"^[a-z][a-z0-9_]{1,40}$", str(item.get("id", ""))
        ):
            raise MappingError(
                path,
                f"{key}.id",
                "missing or not a lower_case id",
                "give each check an id like contacted_trader",
                line,
            )
        check_id = item["id"]
        if check_id in seen:
            raise MappingError(
                path, f"{key}.id", f"{check_id!r} appears twice", "give each check its own id", line
            )
        seen.add(check_id)
        unknown = set(item) - {"id", "applies_to", "ask", "max_age", "reason", "advice"}
        if unknown:
            raise MappingError(
                path,
                f"{key}.{sorted(unknown)[0]}",
                "unknown setting",
                "use id, applies_to, ask or max_age, reason, advice",
                line,
            )
        applies = tuple(item.get("applies_to") or kinds)
        bad = [k for k in applies if k not in kinds]
        if bad:
            raise MappingError(
                path,
                f"{key}.applies_to",
                f"kinds {bad} are not handled by this agency",
                f"use some of {list(kinds)}",
                line,
            )
        if ("ask" in item) == ("max_age" in item):
            raise MappingError(
                path,
                key,
                "a check needs exactly one of `ask` or `max_age`",
                "ask a yes/no question, or limit the incident's age (max_age: 1 year)",
                line,
            )
        ask = _four_languages(item["ask"], path, f"{key}.ask", line) if "ask" in item else None
        max_age = None
        if "max_age" in item:
            m = re.match(r"^\s*(\d+)\s*(years?|days?)\s*$", str(item["max_age"]))
            if not m:
                raise MappingError(
                    path,
                    f"{key}.max_age",
                    f"cannot read {item['max_age']!r}",
                    "write e.g. max_age: 1 year, or max_age: 90 days",
                    line,
                )
            max_age = int(m.group(1)) * (365 if m.group(2).startswith("year") else 1)
        reason = (
            _four_languages(item["reason"], path, f"{key}.reason", line) if "reason" in item else {}
        )
        advice = _four_languages(item.get("advice"), path, f"{key}.advice", line)
        out.append(Precheck(check_id, applies, ask, max_age, reason, advice))
    return tuple(out)


def parse_delivery(raw: Any, path: Path, lines: _Lines) -> DeliveryPolicy:
    """The `delivery:` block: retry, breaker and back-pressure settings, each with a default."""
    if raw is None:
        return DeliveryPolicy()
    if not isinstance(raw, dict):
        raise MappingError(
            path,
            "delivery",
            "not a mapping",
            "write e.g. delivery: {retry: {max_attempts: 10}}",
            lines.line("delivery"),
        )
    unknown = set(raw) - {"retry", "breaker", "max_in_flight", "concurrency"}
    if unknown:
        raise MappingError(
            path,
            f"delivery.{sorted(unknown)[0]}",
            "unknown setting",
            "use retry, breaker, max_in_flight or concurrency",
            lines.line("delivery"),
        )

    def number(section: str, key: str, value: Any, minimum: float) -> float:
        where = f"delivery.{section}.{key}" if section else f"delivery.{key}"
        if isinstance(value, str):
            return parse_duration(value, path, where, lines.line("delivery", section, key)).seconds
        if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
            raise MappingError(
                path,
                where,
                f"{value!r} is not a number >= {minimum}",
                "give a number (or a duration like '30 seconds')",
                lines.line("delivery", section, key),
            )
        return float(value)

    retry_raw = raw.get("retry") or {}
    names = {
        "max_attempts": "max_attempts",
        "base": "base_seconds",
        "multiplier": "multiplier",
        "cap": "cap_seconds",
    }
    bad = set(retry_raw) - set(names)
    if bad:
        raise MappingError(
            path,
            f"delivery.retry.{sorted(bad)[0]}",
            "unknown setting",
            "use max_attempts, base, multiplier or cap",
            lines.line("delivery", "retry"),
        )
    retry_values: dict[str, Any] = {
        names[k]: number("retry", k, v, 1 if k in ("max_attempts", "multiplier") else 0)
        for k, v in retry_raw.items()
    }
    if "max_attempts" in retry_values:
        retry_values["max_attempts"] = int(retry_values["max_attempts"])
    breaker_raw = raw.get("breaker") or {}
    bad = set(breaker_raw) - {"failures", "pause"}
    if bad:
        raise MappingError(
            path,
            f"delivery.breaker.{sorted(bad)[0]}",
            "unknown setting",
            "use failures or pause",
            lines.line("delivery", "breaker"),
        )
    breaker = BreakerPolicy(
        failures=int(number("breaker", "failures", breaker_raw.get("failures", 5), 1)),
        pause_seconds=number("breaker", "pause", breaker_raw.get("pause", 30.0), 0),
    )
    max_in_flight = int(number("", "max_in_flight", raw.get("max_in_flight", 20), 1))
    concurrency = int(number("", "concurrency", raw.get("concurrency", 4), 1))
    return DeliveryPolicy(RetryPolicy(**retry_values), breaker, max_in_flight, concurrency)


def load_all(
    directory: str | Path = AGENCIES_DIR, env: Mapping[str, str] | None = None
) -> dict[str, AgencyMapping]:
    """Every `<id>.yaml` in `directory`, keyed by agency id."""
    out: dict[str, AgencyMapping] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        mapping = load_agency(path, env)
        out[mapping.id] = mapping
    return out
