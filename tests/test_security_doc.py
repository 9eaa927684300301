"""docs/security.md names a test for each attack; every name it gives must be a test that exists
(`file.py::test_name`, and `::test_name` for another test of the file named just before)."""

from __future__ import annotations

import re

from hub.config import ROOT


def test_every_test_named_in_the_security_doc_exists():
    doc = (ROOT / "docs" / "security.md").read_text()
    named: list[tuple[str, str]] = []
    current = None
    for m in re.finditer(r"`(?:(test_\w+\.py))?::(test_\w+)`", doc):
        current = m.group(1) or current
        assert current, f"`::{m.group(2)}` comes before any file is named"
        named.append((current, m.group(2)))
    assert len(named) > 30
    missing = [
        f"{file}::{test}"
        for file, test in named
        if not re.search(rf"^def {test}\(", (ROOT / "tests" / file).read_text(), re.M)
    ]
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
