"""Routing: ordered rules in mappings/routing.yaml turn a case into a recipient list.

The first rule whose conditions all match wins and names one or more agencies, with the reason
shown to the consumer ("who will handle it and why").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml


class RoutingError(ValueError):
    pass


@dataclass(frozen=True)
class Recipient:
    agency_id: str
    reason: str
    rule: str


@dataclass(frozen=True)
class Rule:
    name: str
    kinds: tuple[str, ...]
    domains: tuple[str, ...]
    languages: tuple[str, ...]
    to: tuple[str, ...]
    reason: str

    def matches(self, kind: str, domain: str, language: str) -> bool:
        return (
            (not self.kinds or kind in self.kinds)
            and (not self.domains or any(fnmatchcase(domain, p) for p in self.domains))
            and (not self.languages or language in self.languages)
        )


def _tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)  # type: ignore[union-attr]


class Router:
    def __init__(self, rules: Iterable[Rule]):
        self.rules = tuple(rules)

    @classmethod
    def from_file(cls, path: Path, agency_ids: Iterable[str]) -> Router:
        known = set(agency_ids)
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        rules = []
        for i, raw in enumerate(data.get("rules") or []):
            name = raw.get("name") or f"rule {i + 1}"
            when = raw.get("when") or {}
            unknown_keys = set(when) - {"kind", "domain", "language"}
            if unknown_keys:
                raise RoutingError(
                    f"{path}: rules[{i}] ({name}): unknown condition {sorted(unknown_keys)}. "
                    "Fix: use kind, domain or language."
                )
            to = _tuple(raw.get("to"))
            missing = [a for a in to if a not in known]
            if not to or missing:
                raise RoutingError(
                    f"{path}: rules[{i}] ({name}): unknown agency {missing or '(none)'}. "
                    f"Fix: name agencies that have a file in mappings/agencies/ ({', '.join(sorted(known))})."
                )
            rules.append(
                Rule(
                    name,
                    _tuple(when.get("kind")),
                    _tuple(when.get("domain")),
                    _tuple(when.get("language")),
                    to,
                    str(raw.get("reason") or ""),
                )
            )
        if not rules:
            raise RoutingError(f"{path}: no rules. Fix: add at least one rule under `rules:`.")
        return cls(rules)

    def route(self, kind: str, domain: str, language: str) -> list[Recipient]:
        for rule in self.rules:
            if rule.matches(kind, domain, language):
                return [Recipient(agency, rule.reason, rule.name) for agency in rule.to]
        return []
