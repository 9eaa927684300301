"""The conformance kit for adapter authors.

    from adapters.testing import AdapterConformance, Peer

Subclass `AdapterConformance` in a test module, supply the fixtures `adapter`, `broken_adapter`
and `peer`, and every conformance test runs against your adapter. The pytest plugin
(`adapters.testing.plugin`, registered through the `pytest11` entry point) adds the marker and the
report header.
"""

from adapters.testing.peer import FAULTS, Peer
from adapters.testing.suite import AdapterConformance, outbound, poll_until_quiet

__all__ = ["FAULTS", "AdapterConformance", "Peer", "outbound", "poll_until_quiet"]
