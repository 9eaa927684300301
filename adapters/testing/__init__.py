"""The conformance kit for adapter authors.

    from adapters.testing import AdapterConformance, Peer

Subclass `AdapterConformance` in a test module, supply the fixtures `adapter`, `broken_adapter`,
`peer` and `bad_config` (and `paged_adapter` if your adapter pages), and every conformance test
runs against your adapter; `require(adapter, capability)` skips your own tests the same way. The
pytest plugin (`adapters.testing.plugin`, registered through the `pytest11` entry point) adds the
marker and the report header.
"""

import pytest

# Readable assertion failures inside the suite, as in the author's own test modules.
pytest.register_assert_rewrite("adapters.testing.suite")

from adapters.testing.peer import FAULTS, Peer  # noqa: E402
from adapters.testing.suite import (  # noqa: E402
    PAGED_CHANGES,
    AdapterConformance,
    outbound,
    poll_until_quiet,
    require,
    require_peer,
)

__all__ = [
    "FAULTS",
    "PAGED_CHANGES",
    "AdapterConformance",
    "Peer",
    "outbound",
    "poll_until_quiet",
    "require",
    "require_peer",
]
