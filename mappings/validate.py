"""`loket mappings validate`: every agency file, checked alone and against its agency's contract.

For each agency:
- the file loads (engine.load_agency: keys, transforms, canonical statuses, durations);
- contracts/agencies/<id>/statuses.yaml lists the agency's own status codes: each must be mapped,
  and each mapped code must exist there;
- sample cases (every kind the agency handles, with all optional fields and with none) render
  without error, and the adapter's `check_contract` finds the payloads fit the agency's contract
  (its JSON Schema, WSDL types, file layout or mail template).
All errors are collected, each naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from adapters import registry
from mappings import CONTRACTS_DIR
from mappings.engine import AgencyMapping, MappingError, RenderError, load_agency
from mappings.samples import sample_documents


def contract_dir(mapping: AgencyMapping) -> Path:
    return CONTRACTS_DIR / "agencies" / mapping.id


def check_statuses(mapping: AgencyMapping) -> list[str]:
    path = contract_dir(mapping) / "statuses.yaml"
    if not path.exists():
        return [
            f"{mapping.source}: statuses: the agency's contract has no {path.relative_to(CONTRACTS_DIR.parent)}. "
            "Fix: list the agency's own status codes there (codes: [...])."
        ]
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    codes = [str(c) for c in data.get("codes") or []]
    errors = []
    for code in codes:
        if code not in mapping.statuses:
            errors.append(
                f"{mapping.source}: statuses.{code}: the agency sends {code} but the "
                "mapping does not read it. Fix: map it to a canonical status."
            )
    for code in mapping.statuses:
        if code not in codes:
            errors.append(
                f"{mapping.source}: statuses.{code}: the agency's contract has no such "
                f"code ({path.name} lists {', '.join(codes)}). Fix: remove it or correct "
                "the contract."
            )
    return errors


def check_contract(mapping: AgencyMapping) -> list[str]:
    folder = contract_dir(mapping)
    if not folder.is_dir():
        return [
            f"{mapping.source}: contract: no folder {folder.relative_to(CONTRACTS_DIR.parent)}. "
            "Fix: put the agency's contract (schema, WSDL, file layout or mail template) there."
        ]
    errors = check_statuses(mapping)
    payloads = []
    for label, document in sample_documents(mapping):
        try:
            payloads.append(mapping.render(document))
        except RenderError as exc:
            errors.append(
                f"{mapping.source}: fields: cannot render {label}: {exc}. Fix: give the "
                "field a default(...) or make it optional in the agency's contract."
            )
    try:
        adapter = registry.get(mapping.adapter_kind)
    except registry.UnknownAdapter as exc:
        return [*errors, f"{mapping.source}: adapter.kind: {exc}"]
    for problem in adapter.check_contract(folder, mapping.adapter_config, payloads):
        errors.append(f"{mapping.source}: contract: {problem}")
    return errors


def validate_all(directory: Path) -> tuple[list[str], list[str]]:
    """Returns (errors, ids of the agencies that loaded)."""
    errors: list[str] = []
    loaded: list[str] = []
    files = sorted(Path(directory).glob("*.yaml"))
    if not files:
        errors.append(f"{directory}: no agency files (*.yaml). Fix: add one per agency.")
    for path in files:
        try:
            mapping = load_agency(path)
        except MappingError as exc:
            errors.append(str(exc))
            continue
        loaded.append(mapping.id)
        errors.extend(check_contract(mapping))
    return errors, loaded
