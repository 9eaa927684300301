"""The agency directory: mapping files loaded once, adapters and contract checkers built on
first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from adapters import registry
from adapters.base import Adapter, AdapterError, ContractChecker
from mappings.engine import AgencyMapping, load_all
from mappings.validate import contract_dir

log = logging.getLogger("loket.agencies")


class Directory:
    def __init__(self, agencies: Mapping[str, AgencyMapping]):
        self.agencies = dict(agencies)
        self._adapters: dict[str, Adapter] = {}
        self._checkers: dict[str, ContractChecker] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path, env: Mapping[str, str] | None = None) -> Directory:
        return cls(load_all(directory, env))

    def __contains__(self, agency_id: str) -> bool:
        return agency_id in self.agencies

    def __getitem__(self, agency_id: str) -> AgencyMapping:
        return self.agencies[agency_id]

    def ids(self) -> list[str]:
        return sorted(self.agencies)

    def adapter(self, agency_id: str) -> Adapter:
        with self._lock:
            if agency_id not in self._adapters:
                mapping = self.agencies[agency_id]
                if not mapping.connected:
                    raise registry.UnknownAdapter(
                        f"{agency_id} is a referral body (no adapter block): nothing is delivered"
                    )
                self._adapters[agency_id] = registry.create(
                    mapping.adapter_kind, mapping.adapter_config
                )
            return self._adapters[agency_id]

    def contract_checker(self, agency_id: str) -> ContractChecker:
        """The agency's own contract (contracts/agencies/<id>/), compiled once per process by
        its transport: what every case payload is held against before it leaves. Problems with
        the contract itself are `loket mappings validate`'s to report; here they are logged
        once and hold no case back."""
        checker = self._checkers.get(agency_id)
        if checker is not None:
            return checker
        mapping = self.agencies[agency_id]
        try:  # outside the lock: compiling a WSDL takes a while, other lanes go on
            transport = registry.get(mapping.adapter_kind)
            checker = transport.contract_checker(contract_dir(mapping), mapping.adapter_config)
        except registry.UnknownAdapter:
            checker = ContractChecker()  # building the adapter says so, on every delivery
        except Exception as exc:
            log.exception("cannot read the contract of %s", agency_id)
            checker = ContractChecker(problems=[f"cannot read the contract: {exc}"])
        with self._lock:
            if agency_id not in self._checkers:
                self._checkers[agency_id] = checker
                for problem in checker.problems:
                    log.warning("contract of %s: %s", agency_id, problem)
            return self._checkers[agency_id]

    def capabilities(self, agency_id: str) -> frozenset[str] | None:
        """What the agency's configured adapter does (`Adapter.capabilities`): what the worker,
        `loket agencies` and the console go by. None when its configuration builds no adapter
        (the error then shows wherever the adapter is used). A referral body has none: empty."""
        if not self.agencies[agency_id].connected:
            return frozenset()
        try:
            return self.adapter(agency_id).capabilities
        except (AdapterError, registry.UnknownAdapter):
            return None

    def close(self) -> None:
        with self._lock:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()
