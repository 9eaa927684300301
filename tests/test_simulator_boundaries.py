"""The simulators are a room of their own (DESIGN.md, "Rooms"): only the composition root, tests
and benchmarks use them, and they use nothing of the hub but `adapters.base`. A simulator that
borrowed the adapter's code would agree with the adapter's bugs instead of catching them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ROOT

SIMULATORS = ROOT / "simulators" / "loket_simulators"
HUB_ROOMS = ("hub", "adapters", "mappings", "scheduler", "admin")
HUB_PACKAGES = ("loket", *HUB_ROOMS)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_no_room_of_the_hub_imports_the_simulators():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for room in HUB_ROOMS
        for path in sorted((ROOT / room).rglob("*.py"))
        for name in imports(path)
        if name.split(".")[0] == "loket_simulators"
    ]
    assert offenders == []


def test_the_simulators_use_adapters_base_at_most():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(SIMULATORS.rglob("*.py"))
        for name in imports(path)
        if name.split(".")[0] in HUB_PACKAGES and name not in ("adapters", "adapters.base")
    ]
    assert offenders == []


def test_the_hub_does_not_depend_on_the_simulators_servers():
    import tomllib

    hub = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    sims = tomllib.loads((ROOT / "simulators" / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower() for dep in hub}
    assert names.isdisjoint({"spyne", "asyncssh", "aiosmtpd", "pymap"})
    assert {"spyne", "asyncssh", "aiosmtpd", "pymap"} <= {
        dep.split(">")[0].strip().lower() for dep in sims["dependencies"]
    }
    assert set(sims["entry-points"]["loket.simulators"]) == {
        "rest",
        "soap",
        "email",
        "sftp",
        "webhook",
    }


@pytest.mark.parametrize("kind", ["rest", "soap", "email", "sftp", "webhook"])
def test_one_launcher_plays_every_kind(kind):
    out = subprocess.run(
        [sys.executable, "-m", "loket_simulators", kind, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert f"loket-simulator {kind}" in out.stdout


def test_an_unknown_kind_names_the_known_ones():
    out = subprocess.run(
        [sys.executable, "-m", "loket_simulators", "ftp"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode != 0
    assert "no simulator of kind 'ftp'" in out.stderr and "rest, sftp, soap" in out.stderr
