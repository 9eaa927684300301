"""Finds adapters by kind: the entry-point group `loket.adapters`, plus `register()` for tests.

A third-party transport is a package that declares

    [project.entry-points."loket.adapters"]
    fax = "loket_fax:FaxAdapter"

and is then usable from any mapping file as `adapter: {kind: fax, ...}`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from adapters.base import Adapter

GROUP = "loket.adapters"
_registered: dict[str, type[Adapter]] = {}


class UnknownAdapter(LookupError):
    pass


def register(kind: str, cls: type[Adapter]) -> None:
    """Make `cls` available as `kind` at run time (tests, embedded use)."""
    _registered[kind] = cls


def unregister(kind: str) -> None:
    _registered.pop(kind, None)


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def known_kinds() -> list[str]:
    return sorted(set(_registered) | set(_entry_points()))


def get(kind: str) -> type[Adapter]:
    if kind in _registered:
        return _registered[kind]
    eps = _entry_points()
    if kind in eps:
        cls = eps[kind].load()
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise UnknownAdapter(
                f"entry point {kind!r} in group {GROUP} gives {cls!r}, which is not an Adapter"
            )
        return cls
    known = known_kinds()
    close = difflib.get_close_matches(kind, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownAdapter(
        f"No such adapter kind {kind!r}.{hint} Known kinds: {', '.join(known) or '(none)'}."
    )


def create(kind: str, config: Mapping[str, Any]) -> Adapter:
    return get(kind)(config)
