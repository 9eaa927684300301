"""The domain taxonomy from contracts/domains.yaml (problem areas and sub-areas)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hub.config import CONTRACTS_DIR

DOMAINS_FILE = CONTRACTS_DIR / "domains.yaml"


@dataclass(frozen=True)
class Subarea:
    code: str  # area.subarea
    area_label: dict[str, str]
    label: dict[str, str]
    explain: dict[str, str]
    options: tuple[str, ...]  # case kinds the front desk offers

    def public(self, lang: str) -> dict[str, Any]:
        return {
            "code": self.code,
            "area": self.area_label.get(lang, self.area_label["en"]),
            "label": self.label.get(lang, self.label["en"]),
            "explain": self.explain.get(lang, self.explain.get("en")),
            "options": list(self.options),
        }


@lru_cache(maxsize=4)
def load(path: Path = DOMAINS_FILE) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@lru_cache(maxsize=4)
def subareas(path: Path = DOMAINS_FILE) -> tuple[Subarea, ...]:
    out = []
    for area, spec in load(path)["areas"].items():
        for sub, sub_spec in spec["subareas"].items():
            out.append(
                Subarea(
                    code=f"{area}.{sub}",
                    area_label=spec["label"],
                    label=sub_spec["label"],
                    explain=sub_spec.get("explain") or {},
                    options=tuple(sub_spec.get("options") or ()),
                )
            )
    return tuple(out)


def domain_codes(path: Path = DOMAINS_FILE) -> frozenset[str]:
    return frozenset(s.code for s in subareas(path))


def get(code: str) -> Subarea | None:
    return next((s for s in subareas() if s.code == code), None)


def contract_rules(path: Path = DOMAINS_FILE) -> dict[str, Any]:
    """What contracts/case.schema.json says about `domain` and `kind`, derived from this file:
    the domain codes as an enum, and per set of offered kinds the domains that offer only those
    (an if/then each). tests/test_contracts.py fails when the contract differs; `loket contracts
    sync` writes it."""
    by_options: dict[tuple[str, ...], list[str]] = {}
    for sub in subareas(path):
        if sub.options:
            by_options.setdefault(tuple(sorted(sub.options)), []).append(sub.code)
    return {
        "domain_enum": sorted(domain_codes(path)),
        "allOf": [
            {
                "if": {"required": ["domain"], "properties": {"domain": {"enum": sorted(codes)}}},
                "then": {"properties": {"kind": {"enum": list(options)}}},
            }
            for options, codes in sorted(by_options.items())
        ],
    }
