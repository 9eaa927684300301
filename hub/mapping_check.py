"""`loket mappings validate`: every agency file, checked alone, against its transport and against
its agency's contract, with every problem collected.

For each file in the agencies folder:
- it loads (`mappings.engine.load_agency`: the declared schema, then canonical statuses,
  transforms, domains, durations, prechecks);
- its agency's status codes and sample payloads fit the contract folder (`mappings.validate`);
- its `adapter:` block names a known transport (`adapters.registry`, "did you mean ...?") whose
  configuration schema accepts the settings, and the transport's `check_contract` finds the sample
  payloads fit the agency's contract (its JSON Schema, WSDL types, file layout or mail template).

This part lives in `hub/` because it needs `adapters.registry`, which `mappings/` may not import.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters import registry
from adapters.base import how_often
from hub.routing import Router, RoutingError
from hub.schemas import KINDS
from mappings.engine import CONTRACT_BLOCKS, AgencyMapping, blocks_with_problems, check_agency
from mappings.problems import Problem, guide
from mappings.samples import first_domain
from mappings.validate import Reporter, Sample, check_mapping, contract_dir


def _messages(errors: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Marshmallow's nested error dict as (key path, message) pairs."""
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            yield from _messages(value, (*where, str(key)))
    elif isinstance(errors, list | tuple):
        for message in errors:
            yield from _messages(message, where)
    else:
        yield where, str(errors)


def check_adapter(
    mapping: AgencyMapping, samples: Sequence[Sample] = (), contract: bool = True
) -> list[Problem]:
    """The `adapter:` block against its transport: the kind, the settings and (with `contract`)
    the transport's check of the sample payloads against the agency's contract, the same
    compiled check the worker holds every case against before it leaves. A problem only some
    samples have says which: how many, in which languages, and one of them."""
    report = Reporter(mapping)
    if not mapping.connected:
        return []  # a referral body: nothing is delivered, so no transport to check
    try:
        adapter = registry.get(mapping.adapter_kind)
    except registry.UnknownAdapter as exc:
        return [report(("adapter", "kind"), str(exc).rstrip("."), "name a known kind", "adapter")]
    schema = adapter.config_schema()
    known = sorted((f.data_key or name) for name, f in schema.fields.items() if not f.dump_only)
    problems = []
    for where, message in _messages(schema.validate(dict(mapping.adapter_config))):
        hint = ""
        if message == "Unknown field." and where:
            close = difflib.get_close_matches(where[-1], known, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
        problems.append(
            report(
                ("adapter", *where),
                f"{mapping.adapter_kind} adapter setting: {message.rstrip('.')}",
                f"{hint}the {mapping.adapter_kind} settings are {', '.join(known)}"
                " (docs/transports.md)",
                "adapter",
            )
        )
    if problems or not contract:
        return problems
    checker = adapter.contract_checker(contract_dir(mapping), mapping.adapter_config)
    payloads = [sample.payload for sample in samples]
    texts = []
    for text, where in checker.findings(payloads).items():
        if "{how_often}" in text:
            text = text.replace("{how_often}", how_often(len(where), len(samples)))
        elif len(where) < len(samples):
            languages = dict.fromkeys(samples[n].language for n in where)
            only = (
                f" (only in {', '.join(languages)})"
                if set(languages) < {sample.language for sample in samples}
                else ""
            )
            problem, _, fix = text.partition(". Fix: ")
            text = (
                f"{problem}; {how_often(len(where), len(samples))}{only}, e.g. "
                f"{samples[where[0]].label}" + (f". Fix: {fix}" if fix else "")
            )
        texts.append(text)
    for text in [*texts, *(t for t in checker.problems if t not in texts)]:
        problem, _, fix = text.partition(". Fix: ")
        located = report.where(text)
        problems.append(
            Problem(
                report.file,
                report.lines.line(*located) if located else None,
                "contract",
                problem,
                fix or f"make the mapping fit the contract (see {guide('the-agencys-contract')})",
            )
        )
    return problems


def routed_kinds(mapping: AgencyMapping, router: Router | None) -> dict[str, str]:
    """Each case kind the routing rules (`handle`, `inform`, and so referrals) can send the
    agency, with a domain such a case has: what its sample cases must cover, beyond the kinds
    the agency says it handles."""
    out: dict[str, str] = {}
    for rule in router.rules if router else ():
        if mapping.id not in rule.to:
            continue
        domain = (
            first_domain(rule.when.get("domain") or mapping.domains)
            or first_domain(mapping.domains)
            or "general.other"
        )
        for kind in rule.when.get("kind") or KINDS:
            out.setdefault(kind, domain)
    return out


def check_contract(mapping: AgencyMapping, router: Router | None = None) -> list[Problem]:
    """Everything `loket mappings validate` checks of a loaded mapping beyond loading it: sample
    cases of every kind the agency handles or `router` sends it, in every language."""
    samples, problems = check_mapping(mapping, routed_kinds(mapping, router))
    if problems and not samples:
        return problems
    return [*problems, *check_adapter(mapping, samples)]


def load_router(routing_file: Path, directory: Path) -> Router | None:
    """The routing rules, to learn what each agency can be sent; None when they cannot be read
    (`loket mappings validate` reports that on its own)."""
    if not routing_file.exists():
        return None
    try:
        return Router.from_file(routing_file, [path.stem for path in directory.glob("*.yaml")])
    except RoutingError:
        return None


def validate_all(
    directory: Path, routing_file: Path | None = None
) -> tuple[list[Problem], list[str]]:
    """(every problem in every file, the ids of the agencies that have a file). The routing
    file (by default `routing.yaml` beside the folder) says which case kinds each agency can
    be sent: its sample cases cover them.

    A file whose problems leave its fields, statuses and adapter readable is still held
    against its transport and contract, and the routing rules may name an agency whose file has
    problems, so one run shows everything there is to fix and nothing twice.
    """
    problems: list[Problem] = []
    loaded: list[str] = []
    directory = Path(directory)
    router = load_router(routing_file or directory.parent / "routing.yaml", directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        problems.append(
            Problem(
                str(directory),
                None,
                "(folder)",
                "no agency files (*.yaml)",
                f"add one per agency (see {guide('how-to-add-an-agency')})",
            )
        )
    for path in files:
        mapping, found = check_agency(path)
        loaded.append(mapping.id if mapping else path.stem)
        if mapping is not None:
            if blocks_with_problems(found) & CONTRACT_BLOCKS:  # its payloads would mislead
                more = check_adapter(mapping, contract=False)
            else:
                more = check_contract(mapping, router)
            found += [p for p in more if p not in found]
        problems.extend(sorted(found, key=lambda p: p.line or 0))
    return problems, loaded
