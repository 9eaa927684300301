"""`loket mappings validate`: check every agency file, collecting all errors, not just the first."""

from __future__ import annotations

from pathlib import Path

from mappings.engine import MappingError, load_agency


def validate_all(directory: Path) -> tuple[list[str], list[str]]:
    """Returns (errors, ids of the agencies that loaded)."""
    errors: list[str] = []
    loaded: list[str] = []
    files = sorted(Path(directory).glob("*.yaml"))
    if not files:
        errors.append(f"{directory}: no agency files (*.yaml). Fix: add one per agency.")
    for path in files:
        try:
            loaded.append(load_agency(path).id)
        except MappingError as exc:
            errors.append(str(exc))
    return errors, loaded
