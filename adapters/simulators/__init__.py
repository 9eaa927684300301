"""Real protocol servers that play an agency's own system, for the demo, tests and integrators.

`loket run` starts one simulator per agency whose mapping file has a `simulator:` block. The
block's `kind` names a module in LAUNCHERS; that module's `launch()` turns the agency's adapter
configuration into the command that serves it, so ports and credentials are configured once, in
the mapping file.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

LAUNCHERS: dict[str, str] = {
    "rest": "adapters.simulators.rest_agency",
    "sftp": "adapters.simulators.sftp_agency",
    "soap": "adapters.simulators.soap_agency",
    "email": "adapters.simulators.email_agency",
}


@dataclass(frozen=True)
class Launch:
    """How `loket run` starts one simulator process and knows it is up."""

    command: list[str]  # argv; sys.executable first
    host: str  # a TCP port that accepts connections once the simulator is ready
    port: int
    url: str  # shown in the banner
    env_hint: str  # the environment variable that moves it to another port
    agencies: tuple[str, ...] = ()  # the agencies this process plays (one, or all of a group)
    also_listens: tuple[tuple[str, int, str], ...] = ()  # other (host, port, env var) it binds
    agency_urls: tuple[tuple[str, str], ...] = ()  # (agency, url) for the banner, one per agency


@dataclass(frozen=True)
class SimulatedAgency:
    agency_id: str
    adapter_config: Mapping[str, Any]
    spec: Mapping[str, Any]  # the mapping's `simulator:` block


def launch(
    kind: str,
    agency_id: str,
    adapter_config: Mapping[str, Any],
    spec: Mapping[str, Any],
    root: Path,
) -> Launch:
    module = _module(kind)
    return module.launch(agency_id, adapter_config, spec, root)


def launch_all(kind: str, agencies: list[SimulatedAgency], root: Path) -> list[Launch]:
    """The processes that play every agency of one kind. A simulator module that can host many
    agencies in one process offers `launch_group(agencies, root) -> Launch`; otherwise each agency
    gets its own process through `launch(...)`."""
    module = _module(kind)
    if hasattr(module, "launch_group") and agencies:
        return [module.launch_group(agencies, root)]
    out = []
    for a in agencies:
        one = module.launch(a.agency_id, a.adapter_config, a.spec, root)
        out.append(one if one.agencies else replace(one, agencies=(a.agency_id,)))
    return out


def _module(kind: str):
    if kind not in LAUNCHERS:
        known = ", ".join(sorted(LAUNCHERS))
        raise ValueError(f"no simulator of kind {kind!r} (known: {known})")
    return importlib.import_module(LAUNCHERS[kind])


def env_var(agency_id: str, suffix: str) -> str:
    """LOKET_<AGENCY_ID>_<SUFFIX>: the naming convention of per-agency settings."""
    return "LOKET_" + agency_id.upper().replace("-", "_") + "_" + suffix
