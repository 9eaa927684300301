"""Agency profiles as data: what each agency's own system looks like from outside.

A profile is `contracts/agencies/<agency id>/simulator.yaml`, next to the agency's contract:

    kind: rest                      # rest | soap | email | sftp: which simulator plays it
    name: Ombudsman for Telecommunications (simulated)
    case_number: "OMB-{year}-{n:06d}"   # its own case ids: n (sequence), year, yy
    statuses:                       # its flow, in order; the first is the status on arrival
      - {code: NEW, note: Klacht ontvangen}
      ...

plus what the kind needs (see each simulator's `Profile.from_data`). Loading checks every file
and a mistake names the file, the key and the fix, before any server starts. Where the contracts
are: $LOKET_CONTRACTS_DIR, else the `contracts/` folder of the repository this package lives in,
else `contracts/` under the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

FILE = "simulator.yaml"
KINDS = ("rest", "soap", "email", "sftp")
P = TypeVar("P")


class ProfileError(ValueError):
    """A simulator.yaml that cannot be used; the message names the file, the key and the fix."""


def contracts_dir() -> Path:
    """The folder that holds agencies/<id>/simulator.yaml."""
    configured = os.environ.get("LOKET_CONTRACTS_DIR")
    if configured:
        return Path(configured)
    for candidate in (Path(__file__).resolve().parents[2] / "contracts", Path.cwd() / "contracts"):
        if (candidate / "agencies").is_dir():
            return candidate
    raise ProfileError(
        "cannot find the agencies' contracts (contracts/agencies/<id>/simulator.yaml): run from "
        "the repository's root or set LOKET_CONTRACTS_DIR"
    )


class Reader:
    """Typed access to one profile's keys; each error names the file and the key."""

    def __init__(self, path: Path, data: Mapping[str, Any]):
        self.path, self.data = path, data

    def fail(self, key: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.path}: {key}: {problem}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(
                key, "give a text" + ("" if default is None else f" (default {default!r})")
            )
        return value

    def optional(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, "give a text, or leave the key out")
        return value

    def case_number(self, key: str = "case_number") -> str:
        value = self.text(key)
        try:
            value.format(n=1, year=2026, yy="26")
        except (KeyError, IndexError, ValueError) as exc:
            raise self.fail(
                key,
                f"{exc!s}: a format with n (sequence), year and yy, e.g. 'OMB-{{year}}-{{n:06d}}'",
            ) from None
        return value

    def statuses(self, key: str = "statuses", note: Callable[[Any], Any] | None = None) -> tuple:
        """A flow: a list of {code, note}; `note` checks and converts each note."""
        raw = self.data.get(key)
        if not isinstance(raw, list) or not raw:
            raise self.fail(key, "give the agency's statuses in order: a list of {code, note}")
        out = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("code"), str | int):
                raise self.fail(f"{key}[{i}]", "give a mapping with a code and a note")
            value = entry.get("note", "")
            out.append((str(entry["code"]), note(value) if note else str(value)))
        return tuple(out)

    def status(self, key: str) -> tuple[str, str] | None:
        raw = self.data.get(key)
        if raw is None:
            return None
        if not isinstance(raw, Mapping) or not isinstance(raw.get("code"), str):
            raise self.fail(key, "give a mapping with a code and a note")
        return str(raw["code"]), str(raw.get("note", ""))

    def known(self, keys: set[str]) -> None:
        unknown = sorted(set(self.data) - keys - {"kind"})
        if unknown:
            raise self.fail(unknown[0], f"unknown key (known: {', '.join(sorted(keys))})")


@cache
def _raw(folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    out = {}
    for path in sorted((folder / "agencies").glob(f"*/{FILE}")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ProfileError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: give a mapping (kind, name, case_number, statuses, ...)")
        if data.get("kind") not in KINDS:
            raise ProfileError(f"{path}: kind: give one of {', '.join(KINDS)}")
        out[path.parent.name] = (path, data)
    return out


def load(kind: str, build: Callable[[Reader], P], folder: Path | None = None) -> dict[str, P]:
    """Every agency profile of `kind`, by agency id, each built (and checked) by `build`."""
    raw = _raw(folder or contracts_dir())
    return {
        agency: build(Reader(path, data))
        for agency, (path, data) in raw.items()
        if data["kind"] == kind
    }


def named(kind: str, known: Mapping[str, P], name: str) -> P:
    """The profile of agency `name` among a kind's `known` ones, or a ValueError saying which
    exist and where a profile lives."""
    if name not in known:
        raise ValueError(
            f"no {kind} simulator profile {name!r} (known: {', '.join(sorted(known))}); a "
            f"profile is contracts/agencies/<agency id>/{FILE} with kind: {kind.lower()}"
        )
    return known[name]
