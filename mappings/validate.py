"""The checks of a loaded mapping against its agency's contract that need no transport.

- contracts/agencies/<id>/statuses.yaml lists the agency's own status codes: each must be mapped,
  and each mapped code must exist there;
- sample cases (every kind the agency handles or the routing sends it, in every language, with
  all optional fields and with none) render without error; the payloads are returned for the
  adapter's own contract check.

The transport's part (its configuration, its `check_contract` against a JSON Schema, WSDL, file
layout or mail template) needs `adapters.registry`, which this room may not import: it lives in
`hub/mapping_check.py`, which `loket mappings validate` runs. Every problem names the file, the
line, the key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from mappings import CONTRACTS_DIR
from mappings.engine import AgencyMapping, RenderError
from mappings.problems import Problem, guide
from mappings.samples import sample_documents
from mappings.schema import Lines, PathPart, dotted


def contract_dir(mapping: AgencyMapping) -> Path:
    return CONTRACTS_DIR / "agencies" / mapping.id


class Reporter:
    """Problems about one loaded mapping, placed on the lines of its file."""

    def __init__(self, mapping: AgencyMapping):
        self.mapping, self.file = mapping, str(mapping.source)
        try:
            self.lines = Lines.of(mapping.source.read_text(encoding="utf-8"))
        except OSError:
            self.lines = Lines(None)

    def __call__(
        self, where: tuple[PathPart, ...], problem: str, fix: str, section: str
    ) -> Problem:
        return Problem(
            self.file,
            self.lines.line(*where) if where else None,
            dotted(where) if where else "contract",
            problem,
            f"{fix} (see {guide(section)})",
        )

    def where(self, text: str) -> tuple[PathPart, ...]:
        """Where a transport's contract problem (`fields.<agency field>: ...` or
        `adapter.<setting>: ...`) is in the file: for a field, the mapped field itself, the first
        one inside it, or the one holding it."""
        named = text.split(":", 1)[0]
        block, _, rest = named.partition(".")
        if block == "adapter" and rest:
            return ("adapter", *rest.split("."))
        if block != "fields" or not rest:
            return ()
        targets = [rule.target for rule in self.mapping.fields]
        for target in targets:
            if target == rest or target.startswith(rest + "."):
                return ("fields", target)
        holders = [t for t in targets if rest.startswith(t + ".")]
        return ("fields", max(holders, key=len)) if holders else ("fields",)


def check_statuses(mapping: AgencyMapping) -> list[Problem]:
    report = Reporter(mapping)
    path = contract_dir(mapping) / "statuses.yaml"
    if not path.exists():
        return [
            report(
                ("statuses",),
                f"the agency's contract has no {path.relative_to(CONTRACTS_DIR.parent)}",
                "list the agency's own status codes there (codes: [...])",
                "the-agencys-contract",
            )
        ]
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    codes = [str(c) for c in data.get("codes") or []]
    problems = [
        report(
            ("statuses", code),  # not in the file: the line is the block's
            f"the agency sends {code} but the mapping does not read it",
            f"map {code} to a canonical status",
            "statuses",
        )
        for code in codes
        if code not in mapping.statuses
    ]
    problems += [
        report(
            ("statuses", code),
            f"the agency's contract has no such code ({path.name} lists {', '.join(codes)})",
            "remove it or correct the contract",
            "statuses",
        )
        for code in mapping.statuses
        if code not in codes
    ]
    return problems


class Sample(NamedTuple):
    """One sample case rendered for the agency."""

    label: str  # "a full report about ecommerce.fake_webshop in en"
    language: str  # the consumer's
    payload: Mapping[str, Any]


def render_samples(
    mapping: AgencyMapping, kinds: Mapping[str, str] | None = None
) -> tuple[list[Sample], list[Problem]]:
    """Each sample case rendered (see `sample_documents` for `kinds`), and a
    problem for each sample that cannot render."""
    report = Reporter(mapping)
    payloads: list[Sample] = []
    problems: list[Problem] = []
    for label, document in sample_documents(mapping, kinds):
        try:
            payloads.append(Sample(label, document["case"]["language"], mapping.render(document)))
        except RenderError as exc:
            target = str(exc).split(" <- ", 1)[0]
            where: tuple[PathPart, ...] = ("fields", target) if " <- " in str(exc) else ("fields",)
            problems.append(
                report(
                    where,
                    f"cannot render {label}: {exc}",
                    "give the field a default(...) or make it optional in the agency's contract",
                    "fields",
                )
            )
    return payloads, problems


def check_mapping(
    mapping: AgencyMapping, kinds: Mapping[str, str] | None = None
) -> tuple[list[Sample], list[Problem]]:
    """The transport-free checks against the agency's contract folder: (rendered sample
    cases, problems). The caller holds the payloads against the adapter's own
    contract check. A referral body has no contract: nothing is sent to it."""
    if not mapping.connected:
        return [], []
    folder = contract_dir(mapping)
    if not folder.is_dir():
        report = Reporter(mapping)
        return [], [
            report(
                ("contract",) if "contract" in mapping.extra else (),
                f"no folder {folder.relative_to(CONTRACTS_DIR.parent)}",
                "put the agency's contract (schema, WSDL, file layout or mail template) there",
                "the-agencys-contract",
            )
        ]
    payloads, problems = render_samples(mapping, kinds)
    return payloads, [*check_statuses(mapping), *problems]
