"""Routing: who gets a case, and whether each of them can take it.

mappings/routing.yaml has two ordered lists of rules:
- `handle`: the first matching rule names who answers the consumer (the sector ombudsman, the
  Consumer Mediation Service, ECC Belgium for a trader abroad, the competent inspection for a
  report). The consumer sees its `reason`.
- `inform`: every matching rule adds agencies that act on the problem itself (an inspection that
  must hear of a fake webshop even when a mediator handles the consumer's complaint): fan-out.

Each recipient's admissibility pre-checks (from its mapping file) are applied: a failed check
refuses that agency with the reason and what to do first; a check without an answer yet is
reported as missing, so the front desk can ask. A case no rule matches goes to operators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from mappings.engine import LANGUAGES, AgencyMapping, Precheck

# EU and EEA countries other than Belgium: a trader there is "cross-border" (ECC Belgium).
EU_EEA = frozenset(
    [
        "AT",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)
CONDITIONS = ("kind", "domain", "language", "trader_country")


class RoutingError(ValueError):
    pass


@dataclass(frozen=True)
class Situation:
    """What routing looks at: the consumer's answers and the facts of the case."""

    kind: str
    domain: str
    language: str
    trader_country: str | None = None
    answers: Mapping[str, bool] = field(default_factory=dict)
    incident_date: date | None = None
    today: date | None = None


@dataclass(frozen=True)
class Recipient:
    agency_id: str
    reason: str
    rule: str
    stage: str = "handle"  # handle | inform | referral | operator


@dataclass(frozen=True)
class Refusal:
    """An agency that cannot take the case yet: why, and what the consumer should do first."""

    agency_id: str
    check: str
    reason: str
    advice: str


@dataclass(frozen=True)
class Missing:
    """A pre-check that needs an answer (or a fact) before the case can be sent."""

    agency_id: str
    check: str
    field: str  # answers.<id> or incident_date
    question: str


@dataclass(frozen=True)
class Decision:
    recipients: tuple[Recipient, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    missing: tuple[Missing, ...] = ()

    @property
    def needs_operator(self) -> bool:
        return not self.recipients and not self.refusals and not self.missing


def _country_class(country: str | None) -> set[str]:
    if not country:
        return {"BE"}  # unknown: assume a Belgian trader, the common case
    country = country.upper()
    classes = {country}
    if country == "BE":
        classes.add("BE")
    elif country in EU_EEA:
        classes.add("EU")
    else:
        classes.add("non-EU")
    return classes


@dataclass(frozen=True)
class Rule:
    name: str
    when: Mapping[str, tuple[str, ...]]
    to: tuple[str, ...]
    reason: Mapping[str, str]

    def matches(self, s: Situation) -> bool:
        for condition, values in self.when.items():
            if condition == "kind" and s.kind not in values:
                return False
            if condition == "language" and s.language not in values:
                return False
            if condition == "domain" and not any(fnmatchcase(s.domain, p) for p in values):
                return False
            if condition == "trader_country" and not (
                _country_class(s.trader_country) & set(values)
            ):
                return False
        return True

    def reason_in(self, language: str) -> str:
        return self.reason.get(language) or self.reason.get("en", "")


def _tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)  # type: ignore[union-attr]


def _parse_rules(raw: object, stage: str, path: Path, known: set[str]) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RoutingError(f"{path}: {stage}: not a list. Fix: write a list of rules.")
    rules = []
    for i, item in enumerate(raw):
        name = (item or {}).get("name") or f"rule {i + 1}"
        where = f"{path}: {stage}[{i}] ({name})"
        when = item.get("when") or {}
        unknown = set(when) - set(CONDITIONS)
        if unknown:
            raise RoutingError(
                f"{where}: unknown condition {sorted(unknown)}. Fix: use {', '.join(CONDITIONS)}."
            )
        to = _tuple(item.get("to"))
        missing = [a for a in to if a not in known]
        if not to or missing:
            raise RoutingError(
                f"{where}: unknown agency {missing or '(none)'}. Fix: name agencies that have a "
                f"file in mappings/agencies/ ({', '.join(sorted(known))})."
            )
        reason = item.get("reason") or ""
        if isinstance(reason, str):
            reason = {lang: reason for lang in LANGUAGES}
        elif any(lang not in reason for lang in LANGUAGES):
            raise RoutingError(f"{where}: reason: give it in nl, fr, de and en.")
        rules.append(Rule(name, {k: _tuple(v) for k, v in when.items()}, to, dict(reason)))
    return tuple(rules)


class Router:
    def __init__(
        self,
        handle: Iterable[Rule],
        inform: Iterable[Rule] = (),
        agencies: Mapping[str, AgencyMapping] | None = None,
    ):
        self.handle = tuple(handle)
        self.inform = tuple(inform)
        self.agencies = dict(agencies or {})

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.handle + self.inform

    @classmethod
    def from_file(cls, path: Path, agencies: Mapping[str, AgencyMapping] | Iterable[str]) -> Router:
        mappings = agencies if isinstance(agencies, Mapping) else {}
        known = set(agencies)
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise RoutingError(
                f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}). "
                "Fix: check indentation and quoting near that line."
            ) from None
        except OSError as exc:
            raise RoutingError(f"{path}: cannot read the routing file ({exc.strerror}).") from None
        unknown = set(data) - {"handle", "inform"}
        if unknown:
            raise RoutingError(
                f"{path}: unknown section {sorted(unknown)}. Fix: use handle and inform."
            )
        handle = _parse_rules(data.get("handle"), "handle", path, known)
        inform = _parse_rules(data.get("inform"), "inform", path, known)
        if not handle:
            raise RoutingError(
                f"{path}: no `handle` rules. Fix: add at least one rule under `handle:`."
            )
        return cls(handle, inform, mappings)

    # ------------------------------------------------------------------------------- deciding

    def route(
        self, s: Situation, exclude: Iterable[str] = (), *, skip_missing: bool = False
    ) -> Decision:
        """Who gets the case. `exclude` skips agencies that already had it (a referral then falls
        through to the next matching rule); `skip_missing` treats unanswered checks as passed."""
        excluded = set(exclude)
        recipients: list[Recipient] = []
        refusals: list[Refusal] = []
        missing: list[Missing] = []
        for rule in self.handle:
            if not rule.matches(s):
                continue
            targets = [a for a in rule.to if a not in excluded]
            if not targets:
                continue  # everyone here already had it: the next matching rule (referral)
            for agency_id in targets:
                self._admit(
                    agency_id, rule, "handle", s, recipients, refusals, missing, skip_missing
                )
            break
        for rule in self.inform:
            if rule.matches(s):
                for agency_id in rule.to:
                    if agency_id in excluded or any(r.agency_id == agency_id for r in recipients):
                        continue
                    self._admit(
                        agency_id, rule, "inform", s, recipients, refusals, missing, skip_missing
                    )
        return Decision(tuple(recipients), tuple(refusals), tuple(missing))

    def _admit(
        self,
        agency_id: str,
        rule: Rule,
        stage: str,
        s: Situation,
        recipients: list,
        refusals: list,
        missing: list,
        skip_missing: bool,
    ) -> None:
        mapping = self.agencies.get(agency_id)
        failed = False
        for check in mapping.prechecks if mapping else ():
            if s.kind not in check.applies_to:
                continue
            verdict = evaluate(check, s)
            if verdict is None:
                if not skip_missing:
                    missing.append(
                        Missing(agency_id, check.id, _field_of(check), _question(check, s.language))
                    )
                    failed = True
            elif verdict is False:
                refusals.append(
                    Refusal(
                        agency_id,
                        check.id,
                        _reason(check, s.language),
                        check.text("advice", s.language),
                    )
                )
                failed = True
        if not failed:
            recipients.append(Recipient(agency_id, rule.reason_in(s.language), rule.name, stage))

    def questions(self, s: Situation) -> list[Missing]:
        """Every pre-check the agencies for this situation would ask, answered or not."""
        decision = self.route(
            Situation(s.kind, s.domain, s.language, s.trader_country, {}, None, s.today)
        )
        seen: dict[str, Missing] = {}
        for m in decision.missing:
            seen.setdefault(m.check, m)
        return list(seen.values())


def evaluate(check: Precheck, s: Situation) -> bool | None:
    """True: passes; False: fails; None: not answerable yet (missing answer or date)."""
    if check.ask is not None:
        answer = s.answers.get(check.id)
        return None if answer is None else bool(answer)
    if check.max_age_days is not None:
        if s.incident_date is None:
            return None
        if s.today is None:
            raise ValueError(
                "Situation.today is needed to judge the incident date: pass the date of the hub's clock"
            )
        return (s.today - s.incident_date).days <= check.max_age_days
    return True


def _field_of(check: Precheck) -> str:
    return f"answers.{check.id}" if check.ask is not None else "incident_date"


def _question(check: Precheck, language: str) -> str:
    if check.ask is not None:
        return check.text("ask", language)
    return {
        "nl": "Wanneer gebeurde het? (de datum van het incident)",
        "fr": "Quand cela s'est-il passé ? (la date de l'incident)",
        "de": "Wann ist es passiert? (das Datum des Vorfalls)",
        "en": "When did it happen? (the date of the incident)",
    }[language if language in LANGUAGES else "en"]


def _reason(check: Precheck, language: str) -> str:
    if check.reason:
        return check.text("reason", language)
    if check.ask is not None:
        prefix = {
            "nl": "U antwoordde nee op",
            "fr": "Vous avez répondu non à",
            "de": "Sie haben mit Nein geantwortet auf",
            "en": "You answered no to",
        }
        return f"{prefix.get(language, prefix['en'])}: {check.text('ask', language)}"
    days = check.max_age_days
    return {
        "nl": f"Het incident is ouder dan {days} dagen.",
        "fr": f"L'incident date de plus de {days} jours.",
        "de": f"Der Vorfall liegt mehr als {days} Tage zurück.",
        "en": f"The incident is more than {days} days old.",
    }.get(language, f"The incident is more than {days} days old.")
