"""The SFTP agency simulator: its batch on a folder, its contract, and how `loket run` starts it."""

from __future__ import annotations

import json
import os
import socket

from loket_simulators import kinds, launch
from loket_simulators.sftp_agency import AgencyBatch, profiles
from lxml import etree

from adapters.base import Outbound
from adapters.fileformats import write_case, write_message
from adapters.sftp import SftpAdapter
from hub.clock import FrozenClock
from hub.config import ROOT
from mappings.engine import load_agency
from tests.support.env import free_port, wait_until

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
        profiles()["economic-inspection"],
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


def message(reference: str, text: str = "Hierbij de factuur.", attachments=(), fmt="xml", **kw):
    record = {
        "case_reference": reference,
        "agency_reference": "",
        "text": text,
        "language": "nl",
        "attachments": list(attachments),
        **kw,
    }
    return write_message(record, fmt)


def put_message(agency: AgencyBatch, name: str, data: bytes, files: dict[str, bytes] | None = None):
    if files:
        folder = agency.inbox / f"{name}.attachments"
        folder.mkdir()
        for file, content in files.items():
            (folder / file).write_bytes(content)
    (agency.inbox / name).write_bytes(data)


def test_a_message_is_attached_to_its_case_once_and_archived_with_its_attachments(tmp_path):
    """A message file is not judged against the case contract (case.xsd) and is no case."""
    clock = FrozenClock()
    agency = batch(tmp_path, clock)
    (agency.inbox / "LK-AAAA-BBBB.ei.1.xml").write_bytes(case_xml("LK-AAAA-BBBB"))
    name = "LK-AAAA-BBBB.ei.msg1.xml"
    put_message(agency, name, message("LK-AAAA-BBBB", attachments=["f.pdf"]), {"f.pdf": b"%PDF"})
    assert agency.case_count() == 1
    run = agency.run_once()
    assert run.picked_up == ["LK-AAAA-BBBB.ei.1.xml"] and run.messages == [name]
    assert run.rejected == []
    assert agency.messages_for("EI-2026-000001") == [("Hierbij de factuur.", ["f.pdf"])]
    assert (agency.archive / name).exists()
    assert (agency.archive / f"{name}.attachments" / "f.pdf").read_bytes() == b"%PDF"
    assert sorted(os.listdir(agency.inbox)) == ["archive", "rejected"]
    # the same file name again (a repeat): archived, no second message
    put_message(agency, name, message("LK-AAAA-BBBB", attachments=["f.pdf"]), {"f.pdf": b"%PDF"})
    later = "LK-AAAA-BBBB.ei.msg2.xml"
    put_message(agency, later, message("LK-AAAA-BBBB", "Nog een vraag?"))
    run = agency.run_once()
    assert run.replays == [name] and run.messages == [later]
    assert agency.messages_for("LK-AAAA-BBBB") == [
        ("Hierbij de factuur.", ["f.pdf"]),
        ("Nog een vraag?", []),
    ]
    # remembered across a restart
    again = batch(tmp_path, clock)
    assert again.messages_for("LK-AAAA-BBBB.ei.1.xml") == agency.messages_for("LK-AAAA-BBBB")
    put_message(again, later, message("LK-AAAA-BBBB", "Nog een vraag?"))
    assert again.run_once().replays == [later]
    assert again.case_count() == 1


def test_a_message_for_an_unknown_case_or_off_contract_is_rejected_with_its_reason(tmp_path):
    clock = FrozenClock()
    agency = batch(tmp_path, clock)
    (agency.inbox / "LK-AAAA-BBBB.ei.1.xml").write_bytes(case_xml("LK-AAAA-BBBB"))
    agency.run_once()
    unknown = "LK-ZZZZ-ZZZZ.ei.msg1.xml"
    put_message(agency, unknown, message("LK-ZZZZ-ZZZZ", attachments=["a.pdf"]), {"a.pdf": b"x"})
    missing = "LK-AAAA-BBBB.ei.msg2.xml"
    put_message(agency, missing, message("LK-AAAA-BBBB", attachments=["gone.pdf"]))
    hostile = "LK-AAAA-BBBB.ei.msg3.xml"
    put_message(agency, hostile, message("LK-AAAA-BBBB", attachments=["../../etc/passwd"]))
    nameless = "LK-AAAA-BBBB.ei.msg4.xml"
    put_message(agency, nameless, message(""))
    run = agency.run_once()
    assert sorted(run.rejected) == sorted([unknown, missing, hostile, nameless])
    assert run.messages == []
    reasons = {n: (agency.rejected_dir / f"{n}.reason.txt").read_text() for n in run.rejected}
    assert "no case 'LK-ZZZZ-ZZZZ'" in reasons[unknown]
    assert "'gone.pdf' is missing" in reasons[missing]
    assert "path separator" in reasons[hostile]
    assert "names no case" in reasons[nameless]
    assert (agency.rejected_dir / f"{unknown}.attachments" / "a.pdf").exists()
    assert agency.messages_for("LK-AAAA-BBBB") == []
    assert agency.case_count() == 1


def test_a_csv_agency_takes_a_message_beside_its_case_layout(tmp_path):
    """FOD Financiën's case files are checked against case.layout.yaml; messages are not."""
    clock = FrozenClock()
    layout = ROOT / "contracts" / "agencies" / "fod-financien" / "case.layout.yaml"
    agency = AgencyBatch(
        tmp_path / "data", profiles()["fod-financien"], fmt="csv", clock=clock.now, schema=layout
    )
    case = {
        "LOKET_REF": "LK-AAAA-BBBB",
        "TYPE": "M",
        "TAAL": "N",
        "RUBRIEK": "ANDERE",
        "OMSCHRIJVING": "Geen kasticket; toch betaald",
    }
    (agency.inbox / "LK-AAAA-BBBB.fin.1.csv").write_bytes(write_case(case, "csv"))
    name = "LK-AAAA-BBBB.fin.msg1.csv"
    text = 'Het "ticket"; zie bijlage\nGroeten'
    put_message(agency, name, message("LK-AAAA-BBBB", text, ["t.jpg"], "csv"), {"t.jpg": b"j"})
    run = agency.run_once()
    assert run.rejected == [] and run.messages == [name]
    assert agency.messages_for("LK-AAAA-BBBB") == [(text, ["t.jpg"])]


def test_loket_run_starts_the_demo_agency_from_its_mapping_and_the_adapter_reaches_it(
    tmp_path, processes
):
    """No sshd needed: the demo server is asyncssh; its keys are made at first start."""
    assert kinds()["sftp"].value == "loket_simulators.sftp_agency"
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
    [agency] = json.loads(how.command[how.command.index("--group") + 1])
    assert agency["schema"] == str(CONTRACT / "case.xsd")
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
