"""Nine agencies joined as data: six on REST, three on SOAP.

Each one loads, fits its own contract, and plays its own system in the simulator: a case filed
for it (its pre-checks answered yes) is delivered by the worker, gets the agency's own reference,
comes back `received` and follows the agency's flow to its end. The simulators of each transport
play all their agencies in ONE process, each on its own port with its own credentials. Routing
rules for these agencies are the lead's; these tests route explicitly.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import loket_simulators as simulators
import pytest
import requests
import yaml
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles
from loket_simulators.soap_agency import (
    SoapAgencySystem,
    SoapSimulatorServer,
    normalise_wsdl,
    soap_service,
)
from lxml import etree

from adapters.soap import SoapAdapter
from hub import intake
from hub.config import ROOT, Settings
from hub.mapping_check import check_contract
from hub.routing import Router, Rule
from hub.schemas import CaseInSchema
from hub.services import Hub
from mappings.engine import AgencyMapping, load_agency
from scheduler.worker import Worker
from tests.support.cases import CASE, assignment, distinct_statuses, timeline
from tests.support.env import free_port, wait_until

AGENCIES_DIR = ROOT / "mappings" / "agencies"
YES = {"contacted_trader": True, "court_case_pending": False, "trader_is_business": True}
PHONE = "+32 470 98 76 54"


@dataclass(frozen=True)
class Joined:
    """One agency as the lead will route it, and a case that exercises its flow."""

    transport: str
    body: str
    kinds: tuple[str, ...]
    domains: tuple[str, ...]
    case: dict[str, Any]
    reference: str  # the agency's own case id, as a regex
    statuses: tuple[str, ...]  # the canonical statuses the simulated flow goes through
    outcome: str | None
    prechecks: tuple[str, ...] = ()
    receives_phone: bool = True  # data minimisation: regulators and inspections do not
    extra: dict[str, Any] = field(default_factory=dict)


TO_RESOLVED = ("queued", "sent", "received", "in_progress", "resolved")
TO_CLOSED = ("queued", "sent", "received", "in_progress", "closed_no_individual_follow_up")
OMBUDSMAN_KINDS = ("question", "complaint", "mediation")

JOINED: dict[str, Joined] = {
    "ombudsman-rail": Joined(
        "rest",
        "ombudsman",
        OMBUDSMAN_KINDS,
        ("transport.rail_*",),
        {"kind": "complaint", "domain": "transport.rail_delay", "language": "nl"},
        r"OTR-2026-\d{5}",
        TO_RESOLVED,
        "solved",
        ("contacted_trader", "court_case_pending"),
    ),
    "ombudsfin": Joined(
        "rest",
        "ombudsman",
        OMBUDSMAN_KINDS,
        ("finance.banking", "finance.credit", "finance.investment"),
        {"kind": "mediation", "domain": "finance.credit", "language": "fr"},
        r"OF/2026/\d{4}",
        ("queued", "sent", "received", "in_progress", "waiting_for_consumer", *TO_RESOLVED[3:]),
        "solved",
        ("contacted_trader", "court_case_pending"),
    ),
    "travel-disputes": Joined(
        "rest",
        "dispute_committee",
        OMBUDSMAN_KINDS,
        ("travel.*",),
        {"kind": "complaint", "domain": "travel.package", "language": "nl"},
        r"GCR-26-\d{4}",
        TO_RESOLVED,
        "partly_solved",
        ("contacted_trader", "within_one_year", "court_case_pending"),
    ),
    "ecc-belgium": Joined(
        "rest",
        "network",
        OMBUDSMAN_KINDS,
        ("*",),
        {
            "kind": "complaint",
            "domain": "ecommerce.non_delivery",
            "language": "en",
            "trader": {
                "name": "Versand GmbH",
                "website": "https://versand.example.de",
                "address": {"city": "Köln", "country": "DE"},
            },
        },
        r"ECCBE-2026-\d{6}",
        TO_RESOLVED,
        "solved",
        ("contacted_trader", "court_case_pending", "trader_is_business"),
        receives_phone=False,
    ),
    "fsma": Joined(
        "rest",
        "regulator",
        ("report", "question"),
        ("finance.investment_fraud", "finance.investment"),
        {
            "kind": "report",
            "domain": "finance.investment_fraud",
            "language": "fr",
            "trader": {"name": "CryptoGain Ltd", "website": "https://cryptogain.example"},
        },
        r"FSMA-SIG-2026-\d{5}",
        TO_CLOSED,
        None,
        receives_phone=False,
    ),
    "fod-mobility": Joined(
        "rest",
        "regulator",
        ("question", "complaint"),
        ("transport.flight_*", "transport.baggage"),
        {"kind": "complaint", "domain": "transport.flight_cancelled", "language": "de"},
        r"PAX-2026-\d{6}",
        TO_RESOLVED,
        "solved",
        ("contacted_trader",),
    ),
    "ombudsman-insurance": Joined(
        "soap",
        "ombudsman",
        OMBUDSMAN_KINDS,
        ("insurance.*",),
        {"kind": "complaint", "domain": "insurance.claim", "language": "fr"},
        r"2026/OA/\d{5}",
        TO_RESOLVED,
        "solved",
        ("contacted_trader", "court_case_pending"),
    ),
    "fagg": Joined(
        "soap",
        "regulator",
        ("report", "question"),
        ("health.medicine_side_effect", "health.medical_device", "health.illegal_medicine"),
        {"kind": "report", "domain": "health.medicine_side_effect", "language": "nl"},
        r"BE-FAMHP-2026-\d{6}",
        TO_CLOSED,
        None,
        receives_phone=False,
    ),
    "fod-health": Joined(
        "soap",
        "inspection",
        ("report", "complaint", "question"),
        ("health.cosmetics",),
        {"kind": "report", "domain": "health.cosmetics", "language": "de"},
        r"VG-2026-\d{5}",
        TO_RESOLVED,
        "solved",
        receives_phone=False,
    ),
}
REST = [a for a, j in JOINED.items() if j.transport == "rest"]
SOAP = [a for a, j in JOINED.items() if j.transport == "soap"]


def mapping(agency_id: str, env: dict[str, str] | None = None) -> AgencyMapping:
    return load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env=env or {})


def flow_of(agency_id: str) -> tuple[tuple[str, str], ...]:
    if JOINED[agency_id].transport == "rest":
        return profiles()[agency_id].flow
    return soap_service(agency_id).profile.flow


def env_name(agency_id: str, suffix: str) -> str:
    return simulators.env_var(agency_id, suffix)


# ------------------------------------------------------------------------------- the files


@pytest.mark.parametrize("agency_id", JOINED)
def test_the_agency_file_says_who_it_is_what_it_handles_and_fits_its_contract(agency_id):
    m = mapping(agency_id)
    joined = JOINED[agency_id]
    assert (m.adapter_kind, m.body, m.kinds, m.domains) == (
        joined.transport,
        joined.body,
        joined.kinds,
        joined.domains,
    )
    assert set(m.names) == {"nl", "fr", "de", "en"}
    assert tuple(p.id for p in m.prechecks) == joined.prechecks
    lines = (AGENCIES_DIR / f"{agency_id}.yaml").read_text(encoding="utf-8").splitlines()
    comments = lines[: lines.index(f"id: {agency_id}")]
    assert comments and all(line.startswith("# ") for line in comments)
    assert "illustrative until" in " ".join(line[2:] for line in comments)
    assert check_contract(m) == []


@pytest.mark.parametrize("agency_id", JOINED)
def test_every_code_of_the_simulated_flow_is_in_the_contract_and_the_flow_ends_closed(agency_id):
    m = mapping(agency_id)
    contract = ROOT / "contracts" / "agencies" / agency_id / "statuses.yaml"
    codes = set(yaml.safe_load(contract.read_text())["codes"])
    flow = [code for code, _ in flow_of(agency_id)]
    assert set(flow) <= codes
    canonical = [m.map_status(code).status for code in flow]
    assert canonical[0] == "received"
    assert canonical[-1] in ("resolved", "closed_no_individual_follow_up")
    assert len(set(canonical)) >= 3
    assert any(rule.status == "not_competent" for rule in m.statuses.values())


@pytest.mark.parametrize("agency_id", SOAP)
def test_the_simulator_serves_exactly_the_wsdl_kept_as_the_agencys_contract(agency_id):
    spec = soap_service(agency_id)
    server = SoapSimulatorServer(SoapAgencySystem(spec)).start()
    try:
        live = requests.get(server.url + "?wsdl", timeout=5)
    finally:
        server.stop()
    assert live.status_code == 200
    saved = (ROOT / spec.contract).read_bytes()
    assert mapping(agency_id).adapter_config["wsdl"] == spec.contract
    assert normalise_wsdl(live.content, agency=spec) == saved, (
        f"the simulator's WSDL and {spec.contract} differ. If the change is intended, "
        f"regenerate it: loket-simulator soap --profile {spec.key} "
        f"--write-wsdl {spec.contract}"
    )


def test_each_soap_agency_has_its_own_namespace_and_element_names():
    seen: dict[str, set[str]] = {}
    for agency_id in ["favv", *SOAP]:
        m = mapping(agency_id)
        root = etree.parse(str(ROOT / m.adapter_config["wsdl"])).getroot()
        namespace = root.get("targetNamespace")
        assert namespace not in seen
        seen[namespace] = {
            m.adapter_config["submit_operation"],
            m.adapter_config["idempotency_key_parameter"],
            m.adapter_config["reference_field"],
        }
    names = list(seen.values())
    assert all(a.isdisjoint(b) for i, a in enumerate(names) for b in names[i + 1 :])


# ------------------------------------------------------------- filed, delivered, followed


@pytest.fixture
def simulated(request, clock, monkeypatch) -> Iterator[Any]:
    """The agency's simulator on loopback with the test's clock; the environment points its
    mapping at it, with credentials of this test."""
    agency_id = request.param
    if JOINED[agency_id].transport == "rest":
        schema = json.loads(
            (ROOT / "contracts" / "agencies" / agency_id / "case.schema.json").read_text()
        )
        server: Any = SimulatorServer(
            AgencySystem(
                profiles()[agency_id],
                step_seconds=60,
                api_key=f"test-key-{agency_id}",
                schema=schema,
                clock=clock.now,
            )
        ).start()
        monkeypatch.setenv(env_name(agency_id, "KEY"), f"test-key-{agency_id}")
    else:
        server = SoapSimulatorServer(
            SoapAgencySystem(
                agency_id,
                step_seconds=60,
                username=f"hub-{agency_id}",
                password=f"pw-{agency_id}",
                clock=clock.now,
            )
        ).start()
        monkeypatch.setenv(env_name(agency_id, "USERNAME"), f"hub-{agency_id}")
        monkeypatch.setenv(env_name(agency_id, "PASSWORD"), f"pw-{agency_id}")
    monkeypatch.setenv(env_name(agency_id, "URL"), server.url)
    yield agency_id, server
    server.stop()


@pytest.fixture
def joined_hub(simulated, db, clock) -> Iterator[Hub]:
    """A hub built after the simulator is up, so the agency's mapping reads its URL and keys."""
    h = Hub.from_settings(Settings(database_url=db.url), db=db, clock=clock)
    yield h
    h.close()


def file_for(hub: Hub, agency_id: str) -> intake.Filed:
    """File the agency's example case, routed to it alone (its routing rule is not written yet)."""
    joined = JOINED[agency_id]
    consumer = {**CASE["consumer"], "phone": PHONE}
    answers = {check: YES[check] for check in joined.prechecks if check in YES}
    data = CaseInSchema().load({**CASE, "consumer": consumer, "answers": answers, **joined.case})
    rule = Rule("test", {}, (agency_id,), {"en": f"{agency_id} handles it (test)."})
    router = Router([rule], agencies=hub.directory.agencies)
    return intake.file_case(
        hub.db, data, router=router, directory=hub.directory, clock=hub.clock, random=hub.random
    )


@pytest.mark.parametrize("simulated", list(JOINED), indirect=True)
def test_a_case_reaches_the_agency_comes_back_received_and_follows_its_flow(
    simulated, joined_hub, clock
):
    agency_id, server = simulated
    joined = JOINED[agency_id]
    filed = file_for(joined_hub, agency_id)
    assert [r.agency_id for r in filed.recipients] == [agency_id]
    worker = Worker(joined_hub, "w1")
    assert worker.dispatch_once().delivered == 1

    a = assignment(joined_hub, filed.reference)
    assert a.status == "sent"
    assert re.fullmatch(joined.reference, a.agency_reference), a.agency_reference
    [sim_case] = server.system.cases.values()
    assert sim_case.id == a.agency_reference
    assert sim_case.idempotency_key == f"{filed.reference}.{agency_id}.1"
    assert sim_case.external_reference == filed.reference
    assert (PHONE in json.dumps(sim_case.payload)) is joined.receives_phone

    flow = [code for code, _ in flow_of(agency_id)]
    worker.poll_agency(agency_id)
    a = assignment(joined_hub, filed.reference)
    assert (a.status, a.agency_status) == ("received", flow[0])

    for _ in flow[1:]:
        clock.advance(seconds=60)
        worker.poll_agency(agency_id)
    a = assignment(joined_hub, filed.reference)
    assert (a.agency_status, a.outcome) == (flow[-1], joined.outcome)
    events = timeline(joined_hub, filed.reference)
    assert tuple(distinct_statuses(events)) == joined.statuses
    assert [e.agency_status for e in events if e.actor == "agency"] == flow


# ------------------------------------------------------------ one process per transport


def _moved(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def group(kind: str) -> list[simulators.SimulatedAgency]:
    """Every agency of `kind` with a simulator block, each on a free port of its own."""
    agencies, env = [], {}
    for path in sorted(AGENCIES_DIR.glob("*.yaml")):
        m = load_agency(path, env={})
        if m.extra.get("simulator", {}).get("kind") != kind:
            continue
        key = "base_url" if kind == "rest" else "endpoint"
        env[env_name(m.id, "URL")] = _moved(m.adapter_config[key], free_port())
        m = load_agency(path, env=env)
        spec = {**m.extra["simulator"], "contract": m.extra.get("contract")}
        agencies.append(simulators.SimulatedAgency(m.id, m.adapter_config, spec))
    return agencies


def test_loket_run_plays_all_rest_agencies_in_one_process_each_with_its_own_key(processes):
    agencies = group("rest")
    assert set(REST) | {"ombudsman-telecom", "consumer-mediation"} <= {
        a.agency_id for a in agencies
    }
    [how] = simulators.launch_all("rest", agencies, ROOT)
    assert how.command[0] == sys.executable
    assert how.agencies == tuple(a.agency_id for a in agencies)
    assert len(how.also_listens) == len(agencies) - 1
    assert [url for _, url in how.agency_urls] == [a.adapter_config["base_url"] for a in agencies]
    processes.start("rest-group", how.command[1:], {})

    def health(agency: simulators.SimulatedAgency, key: str | None) -> int:
        header = profiles()[agency.agency_id].key_header
        return requests.get(
            agency.adapter_config["base_url"] + "/health", headers={header: key or ""}, timeout=2
        ).status_code

    for agency in agencies:
        own = agency.adapter_config["api_key"]
        wait_until(lambda a=agency, k=own: health(a, k) == 200, 30, f"{agency.agency_id}")
    telecom = next(a for a in agencies if a.agency_id == "ombudsman-telecom")
    for agency in agencies:
        if agency is not telecom:
            assert health(agency, telecom.adapter_config["api_key"]) == 401, agency.agency_id
    first = requests.post(
        agencies[0].adapter_config["base_url"] + "/cases",
        json={},
        headers={
            profiles()[agencies[0].agency_id].key_header: agencies[0].adapter_config["api_key"]
        },
        timeout=2,
    )
    assert first.status_code == 422  # the agency's own JSON Schema is checked in the group too


def test_loket_run_plays_all_soap_agencies_in_one_process_each_with_its_own_credentials(
    processes,
):
    agencies = group("soap")
    assert {"favv", *SOAP} <= {a.agency_id for a in agencies}
    [how] = simulators.launch_all("soap", agencies, ROOT)
    assert how.agencies == tuple(a.agency_id for a in agencies)
    assert len(how.also_listens) == len(agencies) - 1
    processes.start("soap-group", how.command[1:], {})
    adapters = [SoapAdapter(a.adapter_config) for a in agencies]
    try:
        for agency, adapter in zip(agencies, adapters, strict=True):
            health = wait_until(
                lambda ad=adapter: ad.check().ok and ad.check(), 30, agency.agency_id
            )
            ping = agency.adapter_config["ping_operation"]
            assert health.message == f"{ping} answered"
        favv = next(a for a in agencies if a.agency_id == "favv")
        for agency in agencies:
            if agency is favv:
                continue
            borrowed = SoapAdapter(
                {**agency.adapter_config, "password": favv.adapter_config["password"]}
            )
            try:
                assert not borrowed.check().ok, agency.agency_id
            finally:
                borrowed.close()
    finally:
        for adapter in adapters:
            adapter.close()


def test_two_agencies_on_one_port_are_refused_naming_the_setting_to_change():
    agencies = group("soap")
    clash = [
        agencies[0],
        simulators.SimulatedAgency(
            agencies[1].agency_id,
            {**agencies[1].adapter_config, "endpoint": agencies[0].adapter_config["endpoint"]},
            agencies[1].spec,
        ),
    ]
    with pytest.raises(ValueError, match=env_name(agencies[1].agency_id, "URL")):
        simulators.launch_all("soap", clash, ROOT)
