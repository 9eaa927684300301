"""The SFTP agency simulator: its batch on a folder, its contract, and how `loket run` starts it."""

from __future__ import annotations

import os
import socket

from lxml import etree

from adapters.base import Outbound
from adapters.fileformats import write_case
from adapters.sftp import SftpAdapter
from adapters.simulators import LAUNCHERS, launch
from adapters.simulators.sftp_agency import PROFILES, AgencyBatch
from hub.clock import FrozenClock
from hub.config import ROOT
from mappings.engine import load_agency
from tests.conftest import free_port, wait_until

CONTRACT = ROOT / "contracts" / "agencies" / "economic-inspection"
MAPPING = ROOT / "mappings" / "agencies" / "economic-inspection.yaml"
LAYOUT = {
    "root": "statussen",
    "record": "status",
    "agency_reference": "dossier",
    "case_reference": "referentie_loket",
    "status": "code",
    "time": "tijdstip",
    "message": "toelichting",
}


def case_xml(reference: str, **extra) -> bytes:
    payload = {
        "referentie_loket": reference,
        "taal": "FR",
        "soort": "MELDING",
        "domein": "ecommerce.fake_webshop",
        "omschrijving": "Faux webshop",
        **extra,
    }
    return write_case(payload, "xml", root="melding")


def batch(tmp_path, clock) -> AgencyBatch:
    return AgencyBatch(
        tmp_path / "data",
        PROFILES["inspection"],
        fmt="xml",
        step_seconds=60,
        clock=clock.now,
        layout=LAYOUT,
        schema=CONTRACT / "case.xsd",
    )


def test_the_batch_numbers_cases_moves_them_on_and_writes_status_files_in_its_contract(tmp_path):
    clock = FrozenClock()
    agency = batch(tmp_path, clock)
    (agency.inbox / "LK-AAAA-BBBB.economic-inspection.1.xml").write_bytes(case_xml("LK-AAAA-BBBB"))
    (agency.inbox / ".LK-CCCC-DDDD.economic-inspection.1.xml.1234.part").write_bytes(b"<mel")
    first = agency.run_once()
    assert first.picked_up == ["LK-AAAA-BBBB.economic-inspection.1.xml"]  # not the dot-name
    clock.advance(seconds=120)
    second = agency.run_once()
    assert second.records == 2  # ANALYSIS and CLOSED_INTELLIGENCE, at their own times
    schema = etree.XMLSchema(etree.parse(str(CONTRACT / "status.xsd")))
    codes = []
    for name in (first.status_file, second.status_file):
        document = etree.parse(str(agency.outbox / name))
        assert schema.validate(document), schema.error_log
        codes += document.xpath("//code/text()")
    assert codes == ["REGISTERED", "ANALYSIS", "CLOSED_INTELLIGENCE"]
    assert document.xpath("//dossier/text()") == ["EI-2026-000001"] * 2
    assert not [n for n in os.listdir(agency.outbox) if n.startswith(".")]


def test_the_same_file_name_twice_makes_one_case_and_a_file_off_contract_is_rejected(tmp_path):
    clock = FrozenClock()
    agency = batch(tmp_path, clock)
    name = "LK-AAAA-BBBB.economic-inspection.1.xml"
    (agency.inbox / name).write_bytes(case_xml("LK-AAAA-BBBB"))
    agency.run_once()
    (agency.inbox / name).write_bytes(case_xml("LK-AAAA-BBBB"))
    (agency.inbox / "LK-EEEE-FFFF.x.1.xml").write_bytes(case_xml("LK-EEEE-FFFF", kleur="rood"))
    run = agency.run_once()
    assert run.replays == [name] and run.picked_up == []
    assert run.rejected == ["LK-EEEE-FFFF.x.1.xml"]
    assert "kleur" in (agency.rejected_dir / "LK-EEEE-FFFF.x.1.xml.reason.txt").read_text()
    assert agency.case_count() == 1


def test_the_agency_remembers_its_cases_across_a_restart(tmp_path):
    clock = FrozenClock()
    agency = batch(tmp_path, clock)
    (agency.inbox / "LK-AAAA-BBBB.e.1.xml").write_bytes(case_xml("LK-AAAA-BBBB"))
    agency.run_once()
    again = batch(tmp_path, clock)
    (again.inbox / "LK-AAAA-BBBB.e.1.xml").write_bytes(case_xml("LK-AAAA-BBBB"))
    (again.inbox / "LK-CCCC-DDDD.e.1.xml").write_bytes(case_xml("LK-CCCC-DDDD"))
    run = again.run_once()
    assert run.replays == ["LK-AAAA-BBBB.e.1.xml"]
    assert again.by_reference("LK-CCCC-DDDD").id == "EI-2026-000002"


def test_loket_run_starts_the_demo_agency_from_its_mapping_and_the_adapter_reaches_it(
    tmp_path, processes
):
    """No sshd needed: the demo server is asyncssh; its keys are made at first start."""
    assert LAUNCHERS["sftp"] == "adapters.simulators.sftp_agency"
    root = tmp_path / "sim"
    port = free_port()
    env = {
        "LOKET_ECONOMIC_INSPECTION_PORT": str(port),
        "LOKET_ECONOMIC_INSPECTION_PRIVATE_KEY": f"@file:{root}/client_ed25519_key",
        "LOKET_ECONOMIC_INSPECTION_HOST_KEY": f"@file:{root}/ssh_host_ed25519_key.pub",
    }
    mapping = load_agency(MAPPING, env)
    spec = {**mapping.extra["simulator"], "root": str(root), "step_seconds": 0.2}
    spec["contract"] = mapping.extra["contract"]
    how = launch("sftp", mapping.id, mapping.adapter_config, spec, ROOT)
    assert (how.host, how.port, how.env_hint) == (
        "127.0.0.1",
        port,
        "LOKET_ECONOMIC_INSPECTION_PORT",
    )
    assert "--schema" in how.command and str(CONTRACT / "case.xsd") in how.command
    processes.start("sftp-sim", how.command[1:], {})

    def listening():
        with socket.socket() as s:
            return s.connect_ex((how.host, how.port)) == 0

    wait_until(listening, 30, "the SFTP simulator to listen")
    adapter = SftpAdapter(mapping.adapter_config)
    assert adapter.check().ok
    payload = mapping.render(
        {
            "case": {
                "reference": "LK-AAAA-BBBB",
                "kind": "report",
                "language": "de",
                "domain": "ecommerce.fake_webshop",
                "description": "Falscher Webshop",
            },
            "trader": {"name": "Prijsbreker BV", "enterprise_number": "0403.170.701"},
        }
    )
    receipt = adapter.deliver(
        Outbound("LK-AAAA-BBBB.economic-inspection.1", "LK-AAAA-BBBB", "x", payload)
    )
    cursor: list[str | None] = [None]
    seen: list[str] = []

    def closed():
        result = adapter.poll(cursor[0], [])
        cursor[0] = result.cursor
        seen.extend(u.agency_status for u in result.updates)
        return "CLOSED_INTELLIGENCE" in seen

    wait_until(closed, 30, "the demo agency to close the case", interval=0.2)
    assert seen == ["REGISTERED", "ANALYSIS", "CLOSED_INTELLIGENCE"]
    assert (root / "data" / "inbox" / "archive" / receipt.agency_reference).exists()
