"""loket-spool proves itself with Loket's conformance kit, as any adapter package would: a peer
for its far side (the agency's spool folders), the fixtures, and every test inherited.

It carries no replies, no attachments and polls no case by case, and its peer injects no faults:
those tests skip, each naming the capability.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from loket_spool import SpoolAdapter

from adapters.testing import AdapterConformance, Peer


class SpoolPeer(Peer):
    """The agency at the other end of the spool: it reads the inbox and appends statuses."""

    def __init__(self, inbox: Path, outbox: Path):
        self.inbox, self.outbox = inbox, outbox
        self.statuses: dict[str, int] = {}

    def case_count(self) -> int:
        return len(list(self.inbox.glob("*.json")))

    def payload(self, case_reference):
        return {"ref": case_reference}

    def advance(self, agency_reference: str) -> str:
        step = self.statuses.get(agency_reference, 0) + 1
        self.statuses[agency_reference] = step
        code = f"STEP_{step}"
        line = {"ref": agency_reference, "status": code, "at": datetime.now(UTC).isoformat()}
        with open(self.outbox / "status.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
        return code


class TestSpoolAdapterConformance(AdapterConformance):
    @pytest.fixture
    def folders(self, tmp_path):
        inbox, outbox = tmp_path / "in", tmp_path / "out"
        inbox.mkdir()
        outbox.mkdir()
        return inbox, outbox

    @pytest.fixture
    def adapter(self, folders):
        return SpoolAdapter({"inbox": str(folders[0]), "outbox": str(folders[1]), "token": "t0p"})

    @pytest.fixture
    def broken_adapter(self, tmp_path):
        missing = str(tmp_path / "missing")
        return SpoolAdapter({"inbox": missing, "outbox": missing})

    @pytest.fixture
    def peer(self, folders):
        return SpoolPeer(*folders)

    @pytest.fixture
    def bad_config(self, folders):
        return {"inbox": str(folders[0]), "token": "t0ps3cret", "max_lines": 0}

    @pytest.fixture
    def paged_adapter(self, folders):
        return SpoolAdapter({"inbox": str(folders[0]), "outbox": str(folders[1]), "max_lines": 2})
