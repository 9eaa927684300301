"""Real protocol servers that play an agency's own system, for the demo, tests and integrators.

`loket run` starts one simulator per agency whose mapping file has a `simulator:` block. The
block's `kind` names a module in LAUNCHERS; that module's `launch()` turns the agency's adapter
configuration into the command that serves it, so ports and credentials are configured once, in
the mapping file.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
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
    """How `loket run` starts one simulator and knows it is up."""

    command: list[str]  # argv; sys.executable first
    host: str  # a TCP port that accepts connections once the simulator is ready
    port: int
    url: str  # shown in the banner
    env_hint: str  # the environment variable that moves it to another port


def launch(
    kind: str,
    agency_id: str,
    adapter_config: Mapping[str, Any],
    spec: Mapping[str, Any],
    root: Path,
) -> Launch:
    if kind not in LAUNCHERS:
        known = ", ".join(sorted(LAUNCHERS))
        raise ValueError(f"no simulator of kind {kind!r} (known: {known})")
    module = importlib.import_module(LAUNCHERS[kind])
    return module.launch(agency_id, adapter_config, spec, root)


def env_var(agency_id: str, suffix: str) -> str:
    """LOKET_<AGENCY_ID>_<SUFFIX>: the naming convention of per-agency settings."""
    return "LOKET_" + agency_id.upper().replace("-", "_") + "_" + suffix
