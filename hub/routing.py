"""Routing: who gets a case, and whether each of them can take it.

mappings/routing.yaml has two ordered lists of rules:
- `handle`: the first matching rule names the competent body, decided from the problem itself
  (domain, facts, region), never from where the trader sits: the sector ombudsman, the
  competent inspection or regulator, the Consumer Mediation Service for a Belgian trader, ECC
  Belgium only where no Belgian body is competent. The consumer sees its `reason` and `basis`.
- `inform`: every matching rule ADDS bodies: an inspection that must hear of a fake webshop,
  ECC Belgium where the consumer also needs help against a trader in another EU country. An
  addition never removes the competent body.

A rule may depend on facts the consumer answers (`facts: {departs_from_belgium: true}`, asked
with the texts of the file's `facts` section) and on the consumer's region (`region`, from the
postal code). A rule whose facts are not answered yet stops routing with the question.
Every rule cites its legal or statutory basis (`basis`).

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
CONDITIONS = ("kind", "domain", "language", "trader_country", "region", "facts")
REGIONS = ("flanders", "wallonia", "brussels", "german")
POSTCODE_FIELD = "consumer.address.postcode"
COMPLAINT_DATE_FIELD = "complaint_date"

# The nine municipalities of the German-speaking Community (Eupen, Kelmis, Lontzen, Raeren,
# Amel, Büllingen, Burg-Reuland, Bütgenbach, Sankt Vith), by postal code.
GERMAN_POSTCODES = frozenset(
    {4700, 4701, 4710, 4711, 4720, 4721, 4728, 4730, 4731, 4750, 4760, 4761, 4770, 4771}
    | {4780, 4782, 4783, 4784, 4790, 4791}
)


def region_of(postcode: str | None) -> str | None:
    """The region whose bodies are competent for a consumer living at `postcode` (bpost's
    numbering): 1000-1299 Brussels, 1300-1499 and 4000-7999 Wallonia, 1500-3999 and 8000-9999
    Flanders, and the German-speaking Community's own codes. None for no or a foreign code."""
    digits = (postcode or "").strip().removeprefix("B-").removeprefix("BE-").strip()
    if len(digits) != 4 or not digits.isdigit():
        return None
    n = int(digits)
    if n in GERMAN_POSTCODES:
        return "german"
    if 1000 <= n <= 1299:
        return "brussels"
    if 1300 <= n <= 1499 or 4000 <= n <= 7999:
        return "wallonia"
    if 1500 <= n <= 3999 or 8000 <= n <= 9999:
        return "flanders"
    return None


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
    postcode: str | None = None
    complaint_date: date | None = None  # when the consumer complained to the trader

    @property
    def region(self) -> str | None:
        return region_of(self.postcode)


@dataclass(frozen=True)
class Recipient:
    agency_id: str
    reason: str
    rule: str
    stage: str = "handle"  # handle | inform | referral | operator
    basis: str = ""
    connected: bool = True  # False: a referral body; the consumer goes there, nothing is sent


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
    field: str  # answers.<id>, incident_date, complaint_date or consumer.address.postcode
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
    basis: str = ""
    facts: Mapping[str, bool] = field(default_factory=dict)
    stage: str = ""  # an `inform` rule whose bodies answer the consumer says `stage: handle`

    def matches(self, s: Situation) -> bool:
        """Whether the rule applies; an unanswered fact or an unknown region counts as no (see
        `undecided` for what is still to ask)."""
        return self.matches_known(s) and not self.undecided(s) and self.facts_hold(s)

    def facts_hold(self, s: Situation) -> bool:
        return all(s.answers.get(f) == v for f, v in self.facts.items())

    def undecided(self, s: Situation) -> list[str]:
        """What the rule needs to know that the situation does not say: fact ids, or the
        postcode field for a regional rule."""
        out = [f for f in self.facts if s.answers.get(f) is None]
        if "region" in self.when and s.region is None:
            out.append(POSTCODE_FIELD)
        return out

    def matches_known(self, s: Situation) -> bool:
        """The conditions the situation can answer, ignoring unanswered facts and region."""
        for condition, values in self.when.items():
            if condition == "region":
                if s.region is not None and s.region not in values:
                    return False
                continue
            if condition == "facts":
                continue
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


def _parse_rules(
    raw: object, stage: str, path: Path, known: set[str], questions: Mapping[str, object]
) -> tuple[Rule, ...]:
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
                f"file in mappings/agencies/, connected or referral ({', '.join(sorted(known))})."
            )
        basis = str(item.get("basis") or "").strip()
        if not basis:
            raise RoutingError(
                f"{where}: no `basis`. Fix: cite the law and article, or the body's own rules, "
                "that make these bodies competent."
            )
        facts = when.get("facts") or {}
        if not isinstance(facts, dict) or any(not isinstance(v, bool) for v in facts.values()):
            raise RoutingError(f"{where}: facts: write {{fact_id: true|false}}.")
        unasked = [f for f in facts if f not in questions]
        if unasked:
            raise RoutingError(
                f"{where}: facts {unasked} have no question. Fix: add them under `facts:` "
                "with the question in nl, fr, de and en."
            )
        regions = _tuple(when.get("region"))
        if any(r not in REGIONS for r in regions):
            raise RoutingError(f"{where}: region: use {', '.join(REGIONS)}.")
        reason = item.get("reason") or ""
        if isinstance(reason, str):
            reason = {lang: reason for lang in LANGUAGES}
        elif any(lang not in reason for lang in LANGUAGES):
            raise RoutingError(f"{where}: reason: give it in nl, fr, de and en.")
        conditions = {k: _tuple(v) for k, v in when.items() if k != "facts"}
        rule_stage = str(item.get("stage") or "")
        if rule_stage not in ("", "handle", "inform"):
            raise RoutingError(f"{where}: stage: use handle or inform.")
        rules.append(Rule(name, conditions, to, dict(reason), basis, dict(facts), rule_stage))
    return tuple(rules)


def _parse_facts(raw: object, path: Path) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RoutingError(f"{path}: facts: not a mapping. Fix: fact_id: {{nl: ..., fr: ...}}.")
    out = {}
    for fact, texts in raw.items():
        if not isinstance(texts, dict) or any(lang not in texts for lang in LANGUAGES):
            raise RoutingError(f"{path}: facts.{fact}: give the question in nl, fr, de and en.")
        out[str(fact)] = {str(k): str(v) for k, v in texts.items()}
    return out


class Router:
    def __init__(
        self,
        handle: Iterable[Rule],
        inform: Iterable[Rule] = (),
        agencies: Mapping[str, AgencyMapping] | None = None,
        facts: Mapping[str, Mapping[str, str]] | None = None,
    ):
        self.handle = tuple(handle)
        self.inform = tuple(inform)
        self.agencies = dict(agencies or {})
        self.facts = dict(facts or {})

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
        unknown = set(data) - {"handle", "inform", "facts"}
        if unknown:
            raise RoutingError(
                f"{path}: unknown section {sorted(unknown)}. Fix: use facts, handle and inform."
            )
        facts = _parse_facts(data.get("facts"), path)
        handle = _parse_rules(data.get("handle"), "handle", path, known, facts)
        inform = _parse_rules(data.get("inform"), "inform", path, known, facts)
        if not handle:
            raise RoutingError(
                f"{path}: no `handle` rules. Fix: add at least one rule under `handle:`."
            )
        return cls(handle, inform, mappings, facts)

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
            if not rule.matches_known(s):
                continue
            open_ = rule.undecided(s)
            if open_:  # cannot say who is competent before the consumer answers
                if not skip_missing:
                    missing.extend(self._ask(open_, s.language))
                break
            if not rule.facts_hold(s):
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
            if not rule.matches_known(s):
                continue
            open_ = rule.undecided(s)
            if open_ and not skip_missing:
                missing.extend(m for m in self._ask(open_, s.language) if m not in missing)
                continue
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
            recipients.append(
                Recipient(
                    agency_id,
                    rule.reason_in(s.language),
                    rule.name,
                    rule.stage or stage,
                    rule.basis,
                    mapping.connected if mapping else True,
                )
            )

    def _ask(self, open_: list[str], language: str) -> list[Missing]:
        out = []
        for item in open_:
            if item == POSTCODE_FIELD:
                out.append(Missing("", "postcode", POSTCODE_FIELD, _POSTCODE_QUESTION[language]))
            else:
                texts = self.facts.get(item, {})
                out.append(
                    Missing("", item, f"answers.{item}", texts.get(language) or texts.get("en", ""))
                )
        return out

    def questions(self, s: Situation) -> list[Missing]:
        """Every question routing and the bodies for this situation could ask: the facts that
        decide competence first, then each possible body's pre-checks. Facts already answered
        in `s.answers` are kept and close the questions they make moot (a flight that left from
        Belgium needs no question about other airports)."""
        # the trader's country is not known before the form: ask what any of them would need
        countries = [s.trader_country] if s.trader_country else [None, "FR", "US"]
        # nor, before the postcode is given, the region: one postcode of each region
        postcodes = [s.postcode] if s.postcode else [None, "1000", "2000", "5000", "4700"]
        given = {f: v for f, v in s.answers.items() if f in self.facts}
        facts: list[str] = list(given)  # what was answered stays asked, with its answer
        for country in countries:
            blank = Situation(s.kind, s.domain, s.language, country, {}, None, s.today, s.postcode)
            for rule in self.rules:
                if not rule.matches_known(blank) or any(
                    given.get(f, v) != v for f, v in rule.facts.items()
                ):
                    continue
                # one step at a time: a fact is asked once the rule's other facts are answered
                for f in rule.facts:
                    if f not in facts and all(o == f or o in given for o in rule.facts):
                        facts.append(f)
        seen: dict[str, Missing] = {}
        for m in self._ask(facts, s.language):
            seen.setdefault(m.check, m)
        open_ = [f for f in facts if f not in given][:6]
        for country in countries:
            for postcode in postcodes:
                for combo in range(2 ** len(open_)):
                    answers = {**given, **{f: bool(combo >> i & 1) for i, f in enumerate(open_)}}
                    situation = Situation(
                        s.kind, s.domain, s.language, country, answers, None, s.today, postcode
                    )
                    for m in self.route(situation).missing:
                        if m.check in self.facts and m.check not in facts:
                            continue  # a later step: asked once the earlier facts are answered
                        seen.setdefault(m.check, m)
        return list(seen.values())


_POSTCODE_QUESTION = {
    "nl": "Wat is uw postcode? (de bevoegde instantie hangt af van uw gewest)",
    "fr": "Quel est votre code postal\u00a0? (l'organisme compétent dépend de votre région)",
    "de": "Wie lautet Ihre Postleitzahl? (die zuständige Stelle hängt von Ihrer Region ab)",
    "en": "What is your postal code? (the competent body depends on your region)",
}


def evaluate(check: Precheck, s: Situation) -> bool | None:
    """True: passes; False: fails; None: not answerable yet (missing answer or date)."""
    if check.ask is not None:
        answer = s.answers.get(check.id)
        return None if answer is None else bool(answer) == check.expect
    if check.max_age_days is not None:
        since = s.complaint_date if check.age_from == COMPLAINT_DATE_FIELD else s.incident_date
        if since is None:
            return None
        if s.today is None:
            raise ValueError(
                "Situation.today is needed to judge the incident date: pass the date of the hub's clock"
            )
        return (s.today - since).days <= check.max_age_days
    return True


def _field_of(check: Precheck) -> str:
    return f"answers.{check.id}" if check.ask is not None else check.age_from


def _question(check: Precheck, language: str) -> str:
    if check.ask is not None:
        return check.text("ask", language)
    if check.age_from == COMPLAINT_DATE_FIELD:
        return {
            "nl": "Wanneer heeft u schriftelijk geklaagd bij de onderneming? (datum van uw klacht)",
            "fr": "Quand avez-vous adressé votre plainte écrite à l'entreprise\u00a0? (date de votre plainte)",
            "de": "Wann haben Sie sich schriftlich bei dem Unternehmen beschwert? (Datum Ihrer Beschwerde)",
            "en": "When did you complain to the company in writing? (the date of your complaint)",
        }[language if language in LANGUAGES else "en"]
    return {
        "nl": "Wanneer gebeurde het? (de datum van het incident)",
        "fr": "Quand cela s'est-il passé\u00a0? (la date de l'incident)",
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
        if not check.expect:
            prefix = {
                "nl": "U antwoordde ja op",
                "fr": "Vous avez répondu oui à",
                "de": "Sie haben mit Ja geantwortet auf",
                "en": "You answered yes to",
            }
        colon = "\u00a0:" if language == "fr" else ":"
        return f"{prefix.get(language, prefix['en'])}{colon} {check.text('ask', language)}"
    days = check.max_age_days
    if check.age_from == COMPLAINT_DATE_FIELD:
        return {
            "nl": f"Uw klacht bij de onderneming is meer dan {days} dagen oud.",
            "fr": f"Votre plainte auprès de l'entreprise date de plus de {days} jours.",
            "de": f"Ihre Beschwerde bei dem Unternehmen liegt mehr als {days} Tage zurück.",
            "en": f"Your complaint to the company is more than {days} days old.",
        }.get(language, f"Your complaint to the company is more than {days} days old.")
    return {
        "nl": f"Het incident is ouder dan {days} dagen.",
        "fr": f"L'incident date de plus de {days} jours.",
        "de": f"Der Vorfall liegt mehr als {days} Tage zurück.",
        "en": f"The incident is more than {days} days old.",
    }.get(language, f"The incident is more than {days} days old.")
