"""The domain taxonomy from contracts/domains.yaml (problem areas and sub-areas)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from hub.config import CONTRACTS_DIR

DOMAINS_FILE = CONTRACTS_DIR / "domains.yaml"


@lru_cache(maxsize=4)
def load(path: Path = DOMAINS_FILE) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def domain_codes(path: Path = DOMAINS_FILE) -> frozenset[str]:
    areas = load(path)["areas"]
    return frozenset(f"{area}.{sub}" for area, spec in areas.items() for sub in spec["subareas"])
