"""A case is held against the agency's own contract before it leaves: a payload off the contract
is never sent, it becomes a dead letter at the first attempt with the contract's own message on
the operator's console, and `loket mappings validate` catches the same mapping beforehand, in
every language and for every kind of case the routing can send. On SQLite and PostgreSQL, against
the REST simulator and a real OpenSSH server."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import outbox
from hub.config import Settings
from hub.mapping_check import validate_all
from hub.models import Delivery, DeliveryState
from hub.services import Hub
from loket.cli import main as cli
from mappings import AGENCIES_DIR
from scheduler.worker import Worker
from tests.support.cases import INSPECTION, TELECOM, assignment, file, timeline

# What the Economic Inspection's mapping said when the English report went out as `taal: EN`.
OLD_TAAL = ("taal: agency.language | upper", "taal: case.language | upper")


def agencies_with(tmp_path, agency_id: str, old: str, new: str):
    """A copy of every agency file (the routing names them all), one of them changed."""
    folder = tmp_path / "agencies"
    shutil.copytree(AGENCIES_DIR, folder)
    path = folder / f"{agency_id}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def hub_on(db, clock, folder=None) -> Hub:
    settings = Settings(database_url=db.url)
    if folder is not None:
        settings = Settings(database_url=db.url, agencies_dir=folder)
    return Hub.from_settings(settings, db=db, clock=clock)


def the_delivery(hub) -> Delivery:
    with hub.db.session(read_only=True) as s:
        return s.scalars(select(Delivery)).one()


def test_a_rest_payload_off_the_agencys_schema_is_a_dead_letter_and_never_sent(
    tmp_path, db, sims, clock
):
    folder = agencies_with(
        tmp_path, TELECOM, "language: case.language | upper", "language: case.language"
    )
    hub = hub_on(db, clock, folder)
    try:
        filed = file(hub)
        stats = Worker(hub, "w1").dispatch_once()
    finally:
        hub.directory.close()
    assert (stats.delivered, stats.dead, stats.retried) == (0, 1, 0)
    sim = sims.system(TELECOM)
    assert sim.post_requests == 0 and sim.cases == {}  # the agency received nothing
    d = the_delivery(hub)
    assert (d.state, d.attempts, d.last_error_kind) == (DeliveryState.DEAD, 1, "permanent")
    assert d.last_error.startswith("not sent: the payload does not fit the agency's contract: ")
    assert "fields.language: 'fr' is not one of ['NL', 'FR', 'DE', 'EN']" in d.last_error
    assert "(the agency's case.schema.json)" in d.last_error
    assert d.payload is None  # not kept: a resend renders the case anew
    assert assignment(hub, filed.reference).status == "undeliverable"
    assert "sent" not in [e.to_status for e in timeline(hub, filed.reference)]

    # The mapping is fixed; an operator resends; the case now fits and arrives.
    fixed = hub_on(db, clock)
    try:
        outbox.resend(fixed.db, now=clock.now(), operator="op", agency_id=TELECOM)
        assert Worker(fixed, "w1").dispatch_once().delivered == 1
    finally:
        fixed.directory.close()
    [received] = sim.cases.values()
    assert received.payload["language"] == "FR"
    assert assignment(fixed, filed.reference).status == "sent"


def test_an_sftp_case_file_off_the_agencys_xsd_is_a_dead_letter_and_never_written(
    tmp_path,
    db,
    sims,
    clock,
    inspection,
):
    """The incident: an English report to the Economic Inspection with the old `taal` field."""
    hub = hub_on(db, clock, agencies_with(tmp_path, INSPECTION, *OLD_TAAL))
    try:
        filed = file(
            hub,
            kind="report",
            domain="ecommerce.fake_webshop",
            language="en",
            description="The webshop cheapdeals.example took my money and never delivered.",
            trader={"name": "Cheap Deals BV", "website": "https://cheapdeals.example"},
        )
        stats = Worker(hub, "w1").dispatch_once()
    finally:
        hub.directory.close()
    assert (stats.delivered, stats.dead) == (0, 1)
    written = [name for _, _, names in os.walk(inspection.inbox) for name in names]
    assert written == []  # no case file in any folder, not even a temporary one
    d = the_delivery(hub)
    assert (d.state, d.attempts) == (DeliveryState.DEAD, 1)
    assert (
        "fields.taal: [facet 'enumeration'] The value 'EN' is not an element of the set "
        "{'NL', 'FR', 'DE'} (the agency's case.xsd)" in d.last_error
    )
    a = assignment(hub, filed.reference)
    assert a.status == "undeliverable" and a.agency_reference is None


def test_validate_names_the_language_and_the_contracts_message_of_the_old_inspection_field(
    tmp_path,
):
    folder = agencies_with(tmp_path, INSPECTION, *OLD_TAAL)
    result = CliRunner().invoke(
        cli, ["mappings", "validate"], env={"LOKET_AGENCIES_DIR": str(folder)}
    )
    assert result.exit_code != 0
    [error] = [line for line in result.output.splitlines() if line.startswith("ERROR ")]
    assert re.search(rf"{INSPECTION}\.yaml:\d+: contract: fields\.taal: ", error)
    assert (
        "[facet 'enumeration'] The value 'EN' is not an element of the set {'NL', 'FR', 'DE'} "
        "(the agency's case.xsd)" in error
    )
    assert "(only in en), e.g. a full report about ecommerce." in error
    assert "Fix: transform taal so the value fits" in error


def test_validate_passes_the_fixed_inspection_mapping(tmp_path):
    folder = agencies_with(tmp_path, INSPECTION, "taal:", "taal:")
    result = CliRunner().invoke(
        cli, ["mappings", "validate"], env={"LOKET_AGENCIES_DIR": str(folder)}
    )
    assert result.exit_code == 0, result.output
    assert "39 agency mapping(s) and the routing rules are valid" in result.output


def test_every_mapping_fits_its_contract_in_every_language_and_every_routed_kind():
    """The shipped files, with samples in nl, fr, de and en for every kind the agency handles
    or the routing sends it (the inspection is informed of complaints and mediation requests)."""
    from hub.mapping_check import load_router, routed_kinds
    from mappings.engine import load_agency

    errors, loaded = validate_all(AGENCIES_DIR, AGENCIES_DIR.parent / "routing.yaml")
    assert (
        errors == [] and len(loaded) == 39
    )  # 21 connected bodies (one in the workspace), 18 referral
    router = load_router(AGENCIES_DIR.parent / "routing.yaml", AGENCIES_DIR)
    mapping = load_agency(AGENCIES_DIR / f"{INSPECTION}.yaml", env={})
    assert set(routed_kinds(mapping, router)) == {"report", "complaint", "mediation"}


@pytest.mark.parametrize("kind", ["rest", "sftp"])
def test_the_contract_is_compiled_once_per_agency(kind, monkeypatch, tmp_path):
    """The check sits on the delivery hot path: the directory builds it once and keeps it."""
    from adapters import registry
    from hub.agencies import Directory

    agency = {"rest": TELECOM, "sftp": INSPECTION}[kind]
    directory = Directory.load(AGENCIES_DIR, env={})
    transport = registry.get(kind)
    built = []
    original = transport.contract_checker.__func__

    def counting(cls, contract_dir, config):
        built.append(contract_dir.name)
        return original(cls, contract_dir, config)

    monkeypatch.setattr(transport, "contract_checker", classmethod(counting))
    first = directory.contract_checker(agency)
    assert directory.contract_checker(agency) is first
    assert built == [agency]


def test_an_adapter_that_only_overrides_check_contract_still_guards_the_send_path(tmp_path):
    """Third-party transports written before `contract_checker` keep their check on both
    sides: validate and send."""
    from adapters.base import Adapter

    class Fax(Adapter):
        kind = "fax"

        @classmethod
        def check_contract(cls, contract_dir, config, payloads):
            return [
                f"fields.pages: {p['pages']} pages, at most 3" for p in payloads if p["pages"] > 3
            ]

    checker = Fax.contract_checker(tmp_path, {})
    assert checker({"pages": 2}) == []
    assert checker({"pages": 9}) == ["fields.pages: 9 pages, at most 3"]
    assert Fax.check_contract(tmp_path, {}, [{"pages": 9}]) == ["fields.pages: 9 pages, at most 3"]
