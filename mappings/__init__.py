"""Declarative mappings: canonical case -> agency payload, agency status -> canonical status."""

from pathlib import Path

MAPPINGS_DIR = Path(__file__).resolve().parent
AGENCIES_DIR = MAPPINGS_DIR / "agencies"
ROUTING_FILE = MAPPINGS_DIR / "routing.yaml"
CONTRACTS_DIR = MAPPINGS_DIR.parent / "contracts"
