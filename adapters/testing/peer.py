"""What the conformance kit needs to know about the far side: the `peer` fixture."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

# Peer capabilities (what the test can make the far side do)
FAULTS = "faults"  # fail_next("transient" | "permanent" | "timeout")
MESSAGES = "messages"  # messages(agency_reference): what the agency received as replies
ATTACHMENTS = "attachments"  # attachments(agency_reference): the documents a case arrived with


class Peer(ABC):
    """The agency system an adapter talks to, as a test sees it.

    An adapter author implements this for their transport's test server (a real protocol server
    on loopback, never a mock) and returns it from the `peer` fixture.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def case_count(self) -> int:
        """How many distinct cases the agency system holds."""

    @abstractmethod
    def payload(self, case_reference: str) -> Mapping[str, Any]:
        """A payload this agency accepts for a new case with our `case_reference`."""

    @abstractmethod
    def advance(self, agency_reference: str) -> str:
        """Make the agency move this case to its next status now; return the new status code."""

    def fail_next(self, kind: str) -> None:
        """Make the next request fail: 'transient', 'permanent' or 'timeout' (capability FAULTS)."""
        raise NotImplementedError

    def messages(self, agency_reference: str) -> list[tuple[str, list[str]]]:
        """The replies the agency received on a case: (text, attachment file names) in order
        (capability MESSAGES)."""
        raise NotImplementedError

    def attachments(self, agency_reference: str) -> list[tuple[str, bytes]]:
        """The documents the agency received with a case: (file name, bytes) in order
        (capability ATTACHMENTS)."""
        raise NotImplementedError
