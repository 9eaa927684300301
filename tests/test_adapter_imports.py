"""No transport module imports another transport's module: what REST and SOAP share lives in a
neutral module (adapters/wire.py), so one transport can change without breaking another."""

import ast
from importlib.metadata import entry_points

from adapters import registry
from hub.config import ROOT


def imported_modules(path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_built_in_transport_imports_another():
    transports = {
        ep.value.split(":")[0]
        for ep in entry_points(group=registry.GROUP)
        if ep.value.startswith("adapters.")
    }
    assert transports == {
        "adapters.rest",
        "adapters.soap",
        "adapters.email",
        "adapters.sftp",
        "adapters.webhook",
        "adapters.workspace",
    }
    for module in sorted(transports):
        path = ROOT / (module.replace(".", "/") + ".py")
        others = {
            m
            for m in imported_modules(path)
            for t in transports - {module}
            if m == t or m.startswith(t + ".")
        }
        assert not others, (
            f"{module} imports {sorted(others)}: move what they share to adapters/wire.py"
        )
