"""Six agencies joined as data: the Ombudsman for the Postal Sector, the Ombudsman for Notaries,
the Ombudsman for Lawyers and the Construction Disputes Committee by email; FOD Financiën (CSV)
and the Central Reporting Point for Products (JSON) by SFTP.

Each loads and fits its own contract; each takes a case end to end: the worker delivers it to
the agency's simulator over real servers (aiosmtpd and Dovecot, OpenSSH) and the agency's own
statuses, references and times come back. One process plays every email agency, one every SFTP
agency, each keeping its own mailbox or user, numbers and codes. The routing rules for these
agencies belong in mappings/routing.yaml; until they are there these tests route with ROUTING
below, the proposal for it. Database tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from loket_simulators import SimulatedAgency, launch_all
from loket_simulators.email_agency import (
    EmailGroupSimulator,
    MailAgencySpec,
    dovecot_binary,
    read_contract,
)
from loket_simulators.email_agency import (
    profiles as mail_profiles,
)
from loket_simulators.sftp_agency import AgencyBatch
from loket_simulators.sftp_agency import profiles as file_profiles
from sqlalchemy import func, select

from adapters.base import Outbound
from adapters.email import EmailAdapter
from adapters.filecontracts import CsvLayout, load_checker
from adapters.fileformats import read_case, read_records, write_case
from adapters.sftp import SftpAdapter
from hub.clock import FrozenClock
from hub.config import ROOT, Settings
from hub.intake import NeedsAnswers, NotAdmissible
from hub.mapping_check import check_contract
from hub.models import InboundProblem, UnmatchedUpdate
from hub.routing import Router
from hub.services import Hub
from mappings import AGENCIES_DIR, CONTRACTS_DIR
from mappings.engine import load_agency, load_all
from mappings.samples import sample_documents
from scheduler.worker import Worker
from tests.support.cases import assignment, distinct_statuses, file, timeline
from tests.support.env import env_prefix, free_port, peer_missing, wait_until
from tests.support.peers_sftp import start_sshd

EMAIL_AGENCIES = (
    "ombudsman-post",
    "ombudsman-notaries",
    "ombudsman-lawyers",
    "construction-disputes",
)
SFTP_AGENCIES = ("fod-financien", "dangerous-products")
AGENCIES = EMAIL_AGENCIES + SFTP_AGENCIES

# Proposed rules for mappings/routing.yaml (handle stage), before residual-mediation.
YES = {"answers": {"contacted_trader": True, "court_case_pending": False}}


@pytest.fixture
def routing():
    return ROOT / "mappings" / "routing.yaml"  # the real rules route to these agencies


def make_hub(db, clock, routing) -> Hub:
    """Built after the fixtures have pointed the mapping files at the test's servers."""
    return Hub.from_settings(
        Settings(database_url=db.url, routing_file=routing), db=db, clock=clock
    )


# ------------------------------------------------------------------------------------ as data


@pytest.mark.parametrize("agency_id", AGENCIES)
def test_the_agency_loads_and_fits_its_own_contract(agency_id):
    mapping = load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env={})
    assert check_contract(mapping) == []
    assert set(mapping.names) == {"nl", "fr", "de", "en"}
    assert mapping.extra["simulator"]["kind"] == mapping.adapter_kind
    first_line = (AGENCIES_DIR / f"{agency_id}.yaml").read_text().splitlines()[0]
    assert first_line.startswith("#") and "illustrative until the" in first_line
    if mapping.body in ("ombudsman", "dispute_committee"):
        assert [(c.id, c.applies_to, c.expect) for c in mapping.prechecks] == [
            ("contacted_trader", ("complaint", "mediation"), True),
            ("court_case_pending", ("complaint", "mediation"), False),
        ]
        assert "not_competent" in {rule.status for rule in mapping.statuses.values()}
    else:
        assert mapping.prechecks == ()
        assert "closed_no_individual_follow_up" in {r.status for r in mapping.statuses.values()}


def test_only_what_each_agency_needs_leaves_the_hub():
    agencies = load_all(AGENCIES_DIR, env={})
    full = sample_documents(agencies["fod-financien"])[0][1]
    for agency_id in SFTP_AGENCIES:  # inspections: the trader and the facts, not the phone
        flat = json.dumps(agencies[agency_id].render(full), ensure_ascii=False)
        assert full["consumer"]["phone"] not in flat and full["consumer"]["name"] not in flat
    for agency_id in EMAIL_AGENCIES:  # mediators: the consumer's contact details
        flat = json.dumps(agencies[agency_id].render(full), ensure_ascii=False)
        assert full["consumer"]["email"] in flat and full["consumer"]["phone"] in flat


def test_an_ombudsman_asks_whether_the_trader_was_contacted_and_advises_when_not(routing):
    hub = Hub.from_settings(Settings(database_url="sqlite://", routing_file=routing))
    from hub import intake
    from hub.schemas import CaseInSchema
    from tests.support.cases import CASE

    def route(**changes):
        data = CaseInSchema().load({**CASE, "domain": "legal.notary", **changes})
        return intake.situation_of(data, datetime(2026, 11, 2).date())

    decision = hub.router.route(route(answers={}))
    assert [(m.agency_id, m.check) for m in decision.missing] == [
        ("ombudsman-notaries", "contacted_trader"),
        ("ombudsman-notaries", "court_case_pending"),
    ]
    assert (
        decision.missing[0].question
        == "Avez-vous d'abord adressé votre plainte par écrit au notaire lui-même\u00a0?"
    )
    refused = hub.router.route(
        route(answers={"contacted_trader": False, "court_case_pending": False})
    )
    [refusal] = refused.refusals
    assert refused.recipients == () and refusal.advice.startswith("Écrivez d'abord au notaire")
    # a question needs no complaint to the notary first
    assert [r.agency_id for r in hub.router.route(route(kind="question")).recipients] == [
        "ombudsman-notaries"
    ]
    with pytest.raises(NeedsAnswers):
        file(hub, domain="post.delivery", answers={})
    with pytest.raises(NotAdmissible):
        file(
            hub,
            domain="post.delivery",
            answers={"contacted_trader": False, "court_case_pending": False},
        )
    hub.close()


def test_routing_rules_reach_each_agency_for_its_domains(routing):
    router = Router.from_file(routing, load_all(AGENCIES_DIR, env={}))
    from hub.routing import Situation

    expected = {
        ("complaint", "post.parcel_lost"): "ombudsman-post",
        ("mediation", "legal.notary"): "ombudsman-notaries",
        ("question", "legal.lawyer"): "ombudsman-lawyers",
        ("complaint", "construction.architect"): "construction-disputes",
        ("report", "tax.no_receipt"): "fod-financien",
        ("question", "tax.no_receipt"): "fod-financien",
        ("report", "product_safety.recall"): "dangerous-products",
    }
    for (kind, domain), agency_id in expected.items():
        s = Situation(
            kind, domain, "nl", "BE", {"contacted_trader": True, "court_case_pending": False}
        )
        assert [r.agency_id for r in router.route(s).recipients] == [agency_id], (kind, domain)


# ------------------------------------------------------------------------------ email agencies

EMAIL_CASES = {
    "ombudsman-post": {
        "case": {"domain": "post.parcel_lost", "kind": "complaint"},
        "reference": "POST/26/0001",
        "codes": ["RECU", "EN_COURS", "CLOTURE_ACCORD"],
        "end": ("resolved", "solved"),
    },
    "ombudsman-notaries": {
        "case": {"domain": "legal.notary", "kind": "mediation"},
        "reference": "NOT-2026-00001",
        "codes": ["NIEUW", "ONDERZOEK", "MINNELIJK_OPGELOST"],
        "end": ("resolved", "solved"),
    },
    "ombudsman-lawyers": {
        "case": {"domain": "legal.lawyer", "kind": "complaint"},
        "reference": "OA/2026/0001",
        "codes": ["100", "200", "300"],
        "end": ("resolved", "solved"),
    },
    "construction-disputes": {
        "case": {"domain": "construction.works", "kind": "mediation", "language": "nl"},
        "reference": "GCB-2026-0001",
        "codes": ["AANVRAAG_ONTVANGEN", "DESKUNDIGE_AANGESTELD", "UITSPRAAK_DEELS_GEGROND"],
        "end": ("resolved", "partly_solved"),
    },
}
_worlds = itertools.count(1)


@pytest.fixture
def mail_world(dovecot_server, clock, monkeypatch):
    """The four email agencies in one group (one SMTP server routing by recipient) and the hub's
    mailboxes in the session's Dovecot, one IMAP user per agency; the mapping files read the
    test's ports and users from the environment."""
    n = next(_worlds)
    smtp_port = free_port()
    for agency_id in EMAIL_AGENCIES:
        p = env_prefix(agency_id)
        monkeypatch.setenv(f"{p}_SMTP_PORT", str(smtp_port))
        monkeypatch.setenv(f"{p}_IMAP_PORT", str(dovecot_server.port))
        monkeypatch.setenv(f"{p}_IMAP_USER", f"{agency_id}-{n}")
    specs = []
    for agency_id in EMAIL_AGENCIES:
        mapping = load_agency(AGENCIES_DIR / f"{agency_id}.yaml")
        spec = {**mapping.extra["simulator"], "contract": mapping.extra["contract"]}
        specs.append(
            MailAgencySpec.from_mapping(
                agency_id, mapping.adapter_config, {**spec, "step_seconds": 60}, ROOT
            )
        )
    mailboxes = {
        s.hub_address: dovecot_server.add_user(s.imap_user, s.imap_password) for s in specs
    }
    world = EmailGroupSimulator(specs, mailboxes=mailboxes, clock=clock.now).start()
    yield world
    world.stop()


def test_each_email_agency_takes_its_case_by_mail_and_answers_in_its_own_words(
    db, mail_world, clock, routing
):
    hub = make_hub(db, clock, routing)
    filed = {a: file(hub, **YES, **c["case"]) for a, c in EMAIL_CASES.items()}
    assert {a: [r.agency_id for r in f.recipients] for a, f in filed.items()} == {
        a: [a] for a in EMAIL_CASES
    }
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == len(EMAIL_CASES)
    for agency_id, f in filed.items():
        [case] = mail_world.agencies[agency_id].cases.values()  # its own mailbox, only its case
        assert case.case_reference == f.reference
        required = read_contract(CONTRACTS_DIR / "agencies" / agency_id)
        assert required and all(case.fields.get(name) for name in required)
        assert assignment(hub, f.reference).status == "sent"

    for agency_id in EMAIL_CASES:
        worker.poll_agency(agency_id)
    for _ in range(2):
        clock.advance(seconds=60)
        for agency in mail_world.agencies.values():
            agency.advance()  # the agencies' clocks tick: their next status mails go out
        for agency_id in EMAIL_CASES:
            worker.poll_agency(agency_id)

    for agency_id, expected in EMAIL_CASES.items():
        reference = filed[agency_id].reference
        a = assignment(hub, reference)
        assert (a.status, a.outcome) == expected["end"], agency_id
        assert a.agency_reference == expected["reference"]  # its own number replaced ours
        events = timeline(hub, reference)
        said = [e for e in events if e.actor == "agency"]
        assert [e.agency_status for e in said] == expected["codes"]
        assert distinct_statuses(events)[:3] == ["queued", "sent", "received"]
        assert not any("> " in (e.message or "") for e in said)  # quoted history dropped
    with hub.db.session(read_only=True) as s:  # no agency read another agency's replies
        assert s.scalar(select(func.count()).select_from(UnmatchedUpdate)) == 0
        assert s.scalar(select(func.count()).select_from(InboundProblem)) == 0
    hub.directory.close()


# ------------------------------------------------------------------------------- SFTP agencies

STEP = 3600  # each agency's batch moves a case one status per hour here


def sftp_agency(tmp_path, clock, monkeypatch, agency_id):
    """OpenSSH serving the agency's folder, its batch with the agency's profile, format, layout
    and case contract; the agency's mapping file points at it."""
    mapping = load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env={})
    c = mapping.adapter_config
    contract = CONTRACTS_DIR / "agencies" / agency_id
    server = start_sshd(
        tmp_path / agency_id,
        fmt=c["format"],
        clock=clock,
        layout=dict(c["status"]),
        schema=contract / {"csv": "case.layout.yaml", "json": "case.schema.json"}[c["format"]],
        step_seconds=STEP,
        profile=mapping.id,
        delimiter=c.get("csv_delimiter", ";"),
    )
    for key, value in server.env(agency_id).items():
        monkeypatch.setenv(key, value)
    return server


@pytest.fixture
def finance(tmp_path, clock, monkeypatch):
    server = sftp_agency(tmp_path, clock, monkeypatch, "fod-financien")
    yield server
    server.stop()


@pytest.fixture
def products(tmp_path, clock, monkeypatch):
    server = sftp_agency(tmp_path, clock, monkeypatch, "dangerous-products")
    yield server
    server.stop()


TRADER = {
    "name": "Snack Centrum BV",
    "enterprise_number": "0403.170.701",
    "address": {"street": "Markt 1", "postcode": "9000", "city": "Gent", "country": "BE"},
}


def test_fod_financien_takes_csv_reports_and_questions_and_answers_in_its_own_csv(
    db, finance, clock, routing
):
    hub = make_hub(db, clock, routing)
    report = file(
        hub,
        kind="report",
        domain="tax.no_receipt",
        language="nl",
        description="Het restaurant weigert een kasticket of een factuur te geven.",
        trader=TRADER,
    )
    question = file(hub, kind="question", domain="tax.no_receipt", language="de", trader=TRADER)
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 2
    name = f"{report.reference}.fod-financien.1.csv"
    case_file = read_case((finance.inbox / name).read_bytes(), "csv")
    assert case_file["TYPE"] == "M" and case_file["TAAL"] == "N"
    assert case_file["RUBRIEK"] == "GEEN_KASTICKET" and case_file["HANDELAAR_KBO"] == "0403170701"
    assert case_file["BEDRAG_CENT"] == "4999" and case_file["DATUM_FEIT"] == "15/10/2026"
    assert "MELDER_NAAM" not in case_file and "Dubois" not in (finance.inbox / name).read_text()

    run = finance.batch.run_once()  # the agency's batch checks each file against its layout
    assert (
        sorted(run.picked_up) == sorted([name, f"{question.reference}.fod-financien.1.csv"])
        and run.rejected == []
    )
    picked_up_at = clock.now()
    worker.poll_agency("fod-financien")
    a = assignment(hub, report.reference)
    assert a.status == "received" and a.agency_reference.startswith("FIN-26-")
    [received] = [e for e in timeline(hub, report.reference) if e.agency_status == "ONTV"]
    # the CSV time is Belgian local time to the second; read back it is the batch's moment
    assert as_utc(received.occurred_at) == picked_up_at.replace(microsecond=0)

    for _ in range(2):
        clock.advance(seconds=STEP)
        finance.batch.run_once()
        worker.poll_agency("fod-financien")
    a = assignment(hub, report.reference)
    assert (a.status, a.agency_status) == ("closed_no_individual_follow_up", "AFG_INFO")
    q = assignment(hub, question.reference)
    assert (q.status, q.outcome, q.agency_status) == ("resolved", "advice_given", "ANTW")
    assert distinct_statuses(timeline(hub, report.reference)) == [
        "queued",
        "sent",
        "received",
        "in_progress",
        "closed_no_individual_follow_up",
    ]
    hub.directory.close()


def test_the_product_reporting_point_takes_a_json_report_and_closes_it_as_market_surveillance(
    db, products, clock, routing
):
    hub = make_hub(db, clock, routing)
    filed = file(
        hub,
        kind="report",
        domain="product_safety.dangerous_product",
        language="de",
        description="Das Ladegerät wurde sehr heiß und hat geschmort.",
        trader={**TRADER, "website": "https://lader.example"},
    )
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 1
    name = f"{filed.reference}.dangerous-products.1.json"
    payload = json.loads((products.inbox / name).read_bytes())
    assert payload["reportType"] == "REPORT" and payload["language"] == "de"
    assert payload["seller"] == {
        "name": "Snack Centrum BV",
        "enterpriseNumber": "0403170701",
        "website": "https://lader.example",
        "country": "BE",
    }
    assert payload["reporter"] == {"email": "anne@example.be"}
    assert products.batch.run_once().rejected == []
    worker.poll_agency("dangerous-products")
    assert assignment(hub, filed.reference).agency_reference == "CMP-2026-00001"
    for _ in range(2):
        clock.advance(seconds=STEP)
        products.batch.run_once()
        worker.poll_agency("dangerous-products")
    a = assignment(hub, filed.reference)
    assert (a.status, a.agency_status) == (
        "closed_no_individual_follow_up",
        "CLOSED_MARKET_SURVEILLANCE",
    )
    assert [e.agency_status for e in timeline(hub, filed.reference) if e.actor == "agency"] == [
        "NEW",
        "TRIAGE",
        "CLOSED_MARKET_SURVEILLANCE",
    ]
    hub.directory.close()


# ------------------------------------------------------------------------ the agencies' batches


def batch_for(agency_id, tmp_path, clock) -> tuple[AgencyBatch, dict]:
    mapping = load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env={})
    c = mapping.adapter_config
    contract = CONTRACTS_DIR / "agencies" / agency_id
    batch = AgencyBatch(
        tmp_path / "data",
        file_profiles()[mapping.id],
        fmt=c["format"],
        step_seconds=60,
        clock=clock.now,
        layout=dict(c["status"]),
        delimiter=c.get("csv_delimiter", ";"),
        schema=contract / {"csv": "case.layout.yaml", "json": "case.schema.json"}[c["format"]],
    )
    return batch, {"mapping": mapping, "config": c, "contract": contract}


def as_utc(moment: datetime) -> datetime:
    """SQLite gives naive UTC times back, PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def put_case(batch, mapping, config, kind: str, reference: str, drop: str | None = None) -> str:
    document = sample_documents(mapping)[0][1]
    document["case"].update(kind=kind, reference=reference)
    payload = mapping.render(document)
    if drop:
        payload.pop(drop)
    name = f"{reference}.{mapping.id}.1.{config['format']}"
    data = write_case(payload, config["format"], delimiter=config.get("csv_delimiter", ";"))
    (batch.inbox / name).write_bytes(data)
    return name


def test_fod_financiens_batch_writes_status_files_in_its_csv_layout(tmp_path):
    clock = FrozenClock()
    batch, m = batch_for("fod-financien", tmp_path, clock)
    put_case(batch, m["mapping"], m["config"], "report", "LK-AAAA-BBBB")
    put_case(batch, m["mapping"], m["config"], "question", "LK-CCCC-DDDD")
    rejected = put_case(batch, m["mapping"], m["config"], "report", "LK-EEEE-FFFF", drop="TYPE")
    first = batch.run_once()
    assert first.rejected == [rejected]
    assert "TYPE" in (batch.rejected_dir / f"{rejected}.reason.txt").read_text()
    clock.advance(seconds=120)
    second = batch.run_once()
    layout = CsvLayout.load(m["contract"] / "status.layout.yaml")
    rows = []
    for name in (first.status_file, second.status_file):
        data = (batch.outbox / name).read_bytes()
        assert layout.check(data) == []
        rows += read_records(data, "csv")
    assert [(r["LOKET_REF"], r["STATUS"]) for r in rows] == [
        ("LK-AAAA-BBBB", "ONTV"),
        ("LK-CCCC-DDDD", "ONTV"),
        ("LK-AAAA-BBBB", "ANAL"),
        ("LK-CCCC-DDDD", "ANTW"),  # a question is answered, in one step
        ("LK-AAAA-BBBB", "AFG_INFO"),
    ]
    brussels = clock.now().astimezone(ZoneInfo("Europe/Brussels"))
    assert rows[-1]["TIJDSTIP"] == brussels.strftime("%d/%m/%Y %H:%M:%S")


def test_the_product_reporting_points_batch_writes_status_files_in_its_json_schema(tmp_path):
    clock = FrozenClock()
    batch, m = batch_for("dangerous-products", tmp_path, clock)
    put_case(batch, m["mapping"], m["config"], "question", "LK-AAAA-BBBB")
    rejected = put_case(batch, m["mapping"], m["config"], "report", "LK-CCCC-DDDD", drop="reporter")
    first = batch.run_once()
    assert first.rejected == [rejected]
    assert "reporter" in (batch.rejected_dir / f"{rejected}.reason.txt").read_text()
    clock.advance(seconds=60)
    second = batch.run_once()
    check = load_checker(m["contract"] / "status.schema.json", "json")
    codes = []
    for name in (first.status_file, second.status_file):
        data = (batch.outbox / name).read_bytes()
        assert check(data) == []
        codes += [u["statusCode"] for u in json.loads(data)["updates"]]
    assert codes == ["NEW", "ANSWERED"]


# --------------------------------------------------------------- one process for many agencies


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _sample_outbound(mapping, n: int) -> Outbound:
    reference = f"LK-{n:04d}-AAAA"
    document = sample_documents(mapping)[0][1]
    document["case"]["reference"] = reference
    return Outbound(
        f"{reference}.{mapping.id}.1",
        reference,
        mapping.id,
        mapping.render(document),
        mapping.languages[0],
    )


def _poll_until(adapter, last_code: str, seen: list[str]):
    cursor: list[str | None] = [None]

    def done():
        result = adapter.poll(cursor[0], [])
        cursor[0] = result.cursor
        assert result.problems == ()
        seen.extend(u.agency_status for u in result.updates)
        return last_code in seen

    return done


@pytest.mark.e2e
def test_one_process_plays_every_email_agency_each_with_its_own_mailbox(processes):
    if dovecot_binary() is None:
        peer_missing("dovecot not installed: apt-get install dovecot-imapd")
    smtp_port, imap_port = free_port(), free_port()
    env = {}
    ids = ("ombudsman-energy", *EMAIL_AGENCIES)
    for agency_id in ids:
        env[env_prefix(agency_id) + "_SMTP_PORT"] = str(smtp_port)
        env[env_prefix(agency_id) + "_IMAP_PORT"] = str(imap_port)
    mappings = {a: load_agency(AGENCIES_DIR / f"{a}.yaml", env) for a in ids}
    group = [
        SimulatedAgency(
            a,
            m.adapter_config,
            {**m.extra["simulator"], "contract": m.extra["contract"], "step_seconds": 0.3},
        )
        for a, m in mappings.items()
    ]
    [how] = launch_all("email", group, ROOT)
    assert how.agencies == ids and (how.host, how.port) == ("127.0.0.1", smtp_port)
    assert [port for _, port, _ in how.also_listens] == [imap_port]
    proc = processes.start("mail-group", how.command[1:], {})
    wait_until(lambda: _listening(how.host, how.port) or proc.poll() is not None, 30, "the group")
    assert proc.poll() is None, processes.log("mail-group")

    for n, (agency_id, mapping) in enumerate(mappings.items(), start=1):
        adapter = EmailAdapter(mapping.adapter_config)
        assert adapter.check().ok, adapter.check().message
        adapter.deliver(_sample_outbound(mapping, n))
        flow = [code for code, _ in mail_profiles()[mapping.id].flow]
        seen: list[str] = []
        wait_until(_poll_until(adapter, flow[-1], seen), 30, f"{agency_id}'s statuses")
        assert seen == flow  # its own codes only: no other agency's replies in its mailbox
        adapter.close()


@pytest.mark.e2e
def test_one_process_plays_every_sftp_agency_each_with_its_own_user_and_folder(processes, tmp_path):
    port = free_port()
    ids = ("economic-inspection", *SFTP_AGENCIES)
    env = {}
    for agency_id in ids:
        p = env_prefix(agency_id)
        env[f"{p}_PORT"] = str(port)
        env[f"{p}_PRIVATE_KEY"] = f"@file:{tmp_path / agency_id / 'client_ed25519_key'}"
        env[f"{p}_HOST_KEY"] = f"@file:{tmp_path / 'sftp' / 'ssh_host_ed25519_key.pub'}"
    mappings = {a: load_agency(AGENCIES_DIR / f"{a}.yaml", env) for a in ids}
    group = [
        SimulatedAgency(
            a,
            m.adapter_config,
            {
                **m.extra["simulator"],
                "contract": m.extra["contract"],
                "root": str(tmp_path / a),
                "step_seconds": 0.3,
            },
        )
        for a, m in mappings.items()
    ]
    [how] = launch_all("sftp", group, ROOT)
    assert how.agencies == ids and how.also_listens == ()
    assert "LOKET_FOD_FINANCIEN_PORT" in how.env_hint
    proc = processes.start("sftp-group", how.command[1:], {})
    wait_until(lambda: _listening(how.host, how.port) or proc.poll() is not None, 30, "the group")
    assert proc.poll() is None, processes.log("sftp-group")

    for n, (agency_id, mapping) in enumerate(mappings.items(), start=1):
        adapter = SftpAdapter(mapping.adapter_config)
        assert adapter.check().ok, adapter.check().message
        receipt = adapter.deliver(_sample_outbound(mapping, n))
        flow = [code for code, _ in file_profiles()[mapping.id].flow]
        seen: list[str] = []
        wait_until(_poll_until(adapter, flow[-1], seen), 30, f"{agency_id}'s statuses")
        assert seen == flow
        archived = os.listdir(tmp_path / agency_id / "data" / "inbox" / "archive")
        assert archived == [receipt.agency_reference]  # its own folder holds its own case only
    # one agency's key does not open another agency's account
    fin = dict(mappings["fod-financien"].adapter_config)
    fin["private_key"] = mappings["dangerous-products"].adapter_config["private_key"]
    health = SftpAdapter(fin).check()
    assert not health.ok and "refused the login" in health.message


def test_a_group_that_would_mix_agencies_replies_is_refused_before_it_starts():
    from loket_simulators.email_agency import group_problems

    mappings = [load_agency(AGENCIES_DIR / f"{a}.yaml", env={}) for a in EMAIL_AGENCIES[:2]]
    specs = [
        MailAgencySpec.from_mapping(
            m.id, {**m.adapter_config, "imap_username": "loket"}, m.extra["simulator"], ROOT
        )
        for m in mappings
    ]
    [problem] = group_problems(specs)
    assert problem == (
        "ombudsman-notaries and ombudsman-post both read the hub's IMAP user 'loket', so each "
        "would read the other's replies: give each agency its own imap_username"
    )


def test_times_round_trip_through_the_csv_layout():
    """A status time in FOD Financiën's format is read back as the same instant."""
    mapping = load_agency(AGENCIES_DIR / "fod-financien.yaml", env={})
    adapter = SftpAdapter(
        {**mapping.adapter_config, "private_key": "x", "host_key": "@file:/nonexistent"}
    )
    at = datetime(2026, 7, 1, 10, 30, tzinfo=UTC)  # summer time: 12:30 in Brussels
    assert adapter._time("01/07/2026 12:30:00") == at


def test_sftp_agencies_that_cannot_share_one_server_are_refused_before_it_starts():
    from loket_simulators.sftp_agency import SftpAgencySpec, group_problems

    def spec(agency_id, **changes):
        m = load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env={})
        return SftpAgencySpec.from_mapping(
            agency_id, {**m.adapter_config, **changes}, m.extra["simulator"], ROOT
        )

    assert group_problems([spec(a) for a in ("economic-inspection", *SFTP_AGENCIES)]) == []
    problems = group_problems(
        [
            spec("fod-financien"),
            spec("dangerous-products", username="loket-fin", host_key="@file:other.pub"),
        ]
    )
    assert problems == [
        f"dangerous-products and fod-financien share the server 127.0.0.1:8104 but pin "
        f"different host keys ({ROOT / 'other'}.pub, {ROOT / 'var/sim/sftp/ssh_host_ed25519_key'}"
        ".pub): one server has one key, so point both host_key settings at the same file",
        "dangerous-products and fod-financien both log in to 127.0.0.1:8104 as 'loket-fin': "
        "give each agency its own username there",
    ]
