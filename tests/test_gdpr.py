"""Personal data by construction: after `loket gdpr erase` no table and no file holds the
consumer's name, email, phone, description or files, while statuses, agency references and the
statistics stay and the evidence log still verifies; retention housekeeping erases only cases
past their period; the export holds everything. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import LargeBinary, MetaData, select

from adapters.base import StatusUpdate
from hub import attachments, audit, evidence, gdpr, inbound, intake
from hub.models import Assignment, AuditEntry, Case, Party
from hub.reference import new_reference
from hub.schemas import CaseInSchema
from loket.cli import main as cli
from scheduler.worker import Worker
from tests.support.cases import CASE, TELECOM

NAME = "Zyxwq Quaternion"
EMAIL = "zyxwq.quaternion@example.be"
PHONE = "+32 470 98 76 54"
DESCRIPTION = "Mijn factuur van oktober telt ongevraagde roamingkosten op: xylophone-marmalade."
FILE_BYTES = (
    b"%PDF-1.4\n% private-scan-of-an-invoice-7c1e9\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
)
BYSTANDER = "Een ander probleem van een andere consument, met niets gemeen."
SECRETS = [NAME, EMAIL, PHONE, DESCRIPTION, "xylophone-marmalade"]


@pytest.fixture
def var(hub, tmp_path) -> Path:
    """The hub's var dir: on SQLite the database is in it (tests/conftest.py puts it in tmp_path)."""
    hub.settings = replace(hub.settings, var_dir=tmp_path, evidence_dir=tmp_path / "evidence")
    return tmp_path


def file(hub, uploads=True, **changes):
    data = CaseInSchema().load(
        {
            **CASE,
            "description": DESCRIPTION,
            "consumer": {"name": NAME, "email": EMAIL, "phone": PHONE},
            **changes,
        }
    )
    return intake.file_case(
        hub.db,
        data,
        router=hub.router,
        directory=hub.directory,
        clock=hub.clock,
        random=hub.random,
        uploads=[attachments.check("invoice.pdf", FILE_BYTES)] if uploads else [],
    )


def line(hub, reference) -> Assignment:
    with hub.db.session(read_only=True) as s:
        return s.scalars(select(Assignment).join(Case).where(Case.reference == reference)).one()


def agency_says(hub, reference, clock, *codes):
    a = line(hub, reference)
    for code in codes:
        clock.advance(seconds=60)
        inbound.apply_updates(
            hub.db,
            hub.directory.agencies[TELECOM],
            (
                StatusUpdate(
                    code,
                    clock.now(),
                    agency_reference=a.agency_reference,
                    message=f"Dear {NAME}, about {EMAIL}: we read '{DESCRIPTION}'.",
                ),
            ),
            clock.now(),
        )


@pytest.fixture
def lived(hub, var, clock):
    """A case with everything a case collects: sent to the agency (payload, receipt), two
    statuses whose text names the consumer, mails, an attachment; plus a bystander case."""
    filed = file(hub)
    other = file(
        hub,
        uploads=False,
        description=BYSTANDER,
        consumer={"name": "Bea Bystander", "email": "bea@example.be"},
    )
    Worker(hub, "w1").dispatch_once()
    agency_says(hub, filed.reference, clock, "ASSIGNED", "CLOSED_AGREEMENT")
    clock.advance(seconds=60)
    evidence.checkpoint(hub.db, evidence.KeyStore.from_settings(hub.settings), clock.now())
    return filed, other


def cli_env(hub) -> dict[str, str]:
    return {
        "LOKET_DATABASE_URL": hub.db.url,
        "LOKET_VAR_DIR": str(hub.settings.var_dir),
        "LOKET_EVIDENCE_DIR": str(hub.settings.evidence_dir),
    }


def run(hub, *args, input=None):
    return CliRunner().invoke(cli, list(args), env=cli_env(hub), input=input)


def every_value(hub):
    """(table, column, value) of every non-empty value of every column of every table."""
    meta = MetaData()
    meta.reflect(hub.db.engine)
    with hub.db.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                for column, value in zip(table.columns, row, strict=True):
                    if value is not None:
                        yield table.name, column, value


def holding(hub, needles: list[str], blobs: list[bytes]) -> list[str]:
    found = []
    for table, column, value in every_value(hub):
        if isinstance(column.type, LargeBinary) or isinstance(value, bytes | memoryview):
            raw = bytes(value)
            hit = [b for b in blobs if b in raw] + [n for n in needles if n.encode() in raw]
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            hit = [n for n in needles if n in text or json.dumps(n)[1:-1] in text]
        if hit:
            found.append(f"{table}.{column.name} holds {hit[0]!r}")
    return found


def files_holding(var: Path, needles: list[str], blobs: list[bytes]) -> list[str]:
    found = []
    for path in var.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            for n in [*(n.encode() for n in needles), *blobs]:
                if n in raw:
                    found.append(f"{path.relative_to(var)} holds {n[:30]!r}")
    return found


def test_before_erasure_the_scan_finds_the_consumer_everywhere(hub, lived, var):
    """The scans can fail: before erasure they find the data where erasure must reach."""
    if hub.db.dialect == "sqlite":
        assert files_holding(var, [NAME], [FILE_BYTES])
    where = holding(hub, SECRETS, [FILE_BYTES])
    tables = {w.split(".")[0] for w in where}
    assert {"parties", "cases", "attachments", "deliveries", "status_events", "notifications"} <= (
        tables
    ), where


def test_export_holds_everything_about_the_case(hub, lived, tmp_path_factory):
    filed, _ = lived
    out = tmp_path_factory.mktemp("out") / "export.zip"
    answer = run(hub, "gdpr", "export", filed.reference, "-o", str(out))
    assert answer.exit_code == 0, answer.output
    assert out.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(out) as z:
        doc = json.loads(z.read("personal-data.json"))
        [attached] = doc["attachments"]
        assert z.read(f"attachments/{attached['file']}") == FILE_BYTES
    assert doc["case"]["reference"] == filed.reference
    assert doc["case"]["description"] == DESCRIPTION
    consumer = next(p for p in doc["parties"] if p["role"] == "consumer")
    assert (consumer["name"], consumer["email"], consumer["phone"]) == (NAME, EMAIL, PHONE)
    assert any(NAME in (e["message"] or "") for e in doc["timeline"])
    assert doc["mails"] and doc["mails"][0]["to_address"] == EMAIL
    assert doc["sent_to_agencies"][0]["payload"] is not None
    assert "token_hash" not in doc["case"]
    again = run(hub, "gdpr", "export", filed.reference, "-o", str(out))
    assert again.exit_code == 2 and "exists" in again.output
    unknown = run(hub, "gdpr", "export", new_reference(), "-o", str(out.with_name("x.zip")))
    assert unknown.exit_code == 2 and "no case" in unknown.output


def test_after_erasure_nothing_holds_the_consumers_data_and_the_log_verifies(hub, lived, var):
    filed, other = lived
    before = line(hub, filed.reference)
    refused = run(hub, "gdpr", "erase", filed.reference, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert holding(hub, [NAME], [])  # nothing was erased without the confirmation

    answer = run(hub, "gdpr", "erase", filed.reference, "--yes", "--operator", "olga")
    assert answer.exit_code == 0, answer.output

    assert holding(hub, SECRETS, [FILE_BYTES]) == []
    assert files_holding(var, SECRETS, [FILE_BYTES]) == []
    with hub.db.session(read_only=True) as s:
        case = s.scalars(select(Case).where(Case.reference == filed.reference)).one()
        assert (case.kind, case.domain, case.status) == ("complaint", "telecom.billing", "resolved")
        assert case.created_at.month == 11 and case.erased_at is not None
        trader = s.scalars(
            select(Party).where(Party.case_id == case.id, Party.role == "trader")
        ).one()
        assert trader.enterprise_number == "0403170701"
        kept = s.scalars(
            select(Case).where(Case.reference == other.reference)
        ).one()  # the bystander's case is untouched
        assert kept.description == BYSTANDER and kept.erased_at is None
        erased = s.scalars(
            select(AuditEntry).where(
                AuditEntry.case_id == case.id, AuditEntry.action == "gdpr.erased"
            )
        ).one()
        assert erased.actor == "operator:olga" and erased.data["erased"]["attachments"] == 1
    after = line(hub, filed.reference)
    assert (after.status, after.outcome, after.agency_reference) == (
        "resolved",
        "solved",
        before.agency_reference,
    )
    assert (after.answer_due_at, after.status_at) == (before.answer_due_at, before.status_at)

    verified = run(hub, "evidence", "verify")
    assert verified.exit_code == 0, verified.output
    assert run(hub, "evidence", "checkpoint").exit_code == 0
    verified = run(hub, "evidence", "verify")
    assert verified.exit_code == 0 and "intact" in verified.output, verified.output

    bundle = var / "bundle.json"
    exported = run(hub, "evidence", "export", filed.reference, "-o", str(bundle))
    assert exported.exit_code == 0, exported.output
    assert run(hub, "evidence", "check", str(bundle)).exit_code == 0
    bundle.unlink()

    twice = run(hub, "gdpr", "erase", filed.reference, "--yes")
    assert twice.exit_code == 2 and "already erased" in twice.output


def test_data_emptied_by_hand_is_named_by_verify(hub, lived):
    """Only an erasure may empty an entry's data: emptied without one, verify says so."""
    filed, _ = lived
    with hub.db.session() as s:
        e = s.scalars(
            select(AuditEntry)
            .join(Case)
            .where(Case.reference == filed.reference, AuditEntry.action == "delivery.receipt")
        ).one()
        assert e.data_sha256 == audit.data_digest(e.data)
        e.data = None
    answer = run(hub, "evidence", "verify")
    assert answer.exit_code == 1
    assert "delivery.receipt" in answer.output and "no erasure on record" in answer.output


def test_housekeeping_erases_only_cases_past_retention(hub, var, clock):
    retention = gdpr.retention_periods()
    closed = file(hub)  # a complaint: 2 years after it closes
    open_ = file(hub)  # never closes: 5 years after its last activity
    withdrawn = file(hub)  # withdrawn: 1 year
    Worker(hub, "w1").dispatch_once()
    agency_says(hub, closed.reference, clock, "CLOSED_AGREEMENT")
    from hub import consumer

    consumer.withdraw(hub.db, withdrawn.reference, withdrawn.token, "", clock.now())
    closed_at = line(hub, closed.reference).status_at

    clock.advance(days=366)
    assert [d.reference for d in gdpr.housekeeping(hub.db, clock.now())] == [withdrawn.reference]
    with hub.db.session(read_only=True) as s:
        assert s.scalar(select(Case.erased_at).where(Case.reference == closed.reference)) is None

    due = retention.period("complaint", "resolved").after(closed_at)
    assert gdpr.housekeeping(hub.db, due - timedelta(seconds=1)) == []
    assert [d.reference for d in gdpr.housekeeping(hub.db, due)] == [closed.reference]
    assert gdpr.housekeeping(hub.db, due) == []  # done once

    with hub.db.session(read_only=True) as s:
        still = s.scalars(select(Case).where(Case.reference == open_.reference)).one()
        assert still.description == DESCRIPTION and still.erased_at is None
        gone = s.scalars(select(Case).where(Case.reference == closed.reference)).one()
        assert gone.description == "" and gone.status == "resolved"
    last_activity = still.updated_at
    at_five_years = retention.inactive.after(last_activity)
    assert gdpr.housekeeping(hub.db, at_five_years - timedelta(days=1)) == []
    assert [d.reference for d in gdpr.housekeeping(hub.db, at_five_years)] == [open_.reference]
    answer = run(hub, "gdpr", "housekeeping")  # today (real time): nothing more is due yet
    assert answer.exit_code == 0 and "0 case(s)" in answer.output, answer.output
    assert run(hub, "evidence", "verify").exit_code == 0


def test_retention_file_is_checked_on_load(tmp_path):
    shown = CliRunner().invoke(cli, ["gdpr", "retention"])
    assert shown.exit_code == 0 and "report       5 years after the case is closed" in shown.output
    good = gdpr.load_retention()
    assert good.closed["question"] == gdpr.Period(1, "year")
    assert good.by_status["withdrawn"].text == "1 year"
    bad = tmp_path / "retention.yaml"
    bad.write_text("closed: {question: 1 year}\ninactive: 5 years\n")
    with pytest.raises(gdpr.RetentionError, match="closed: give a period for each kind"):
        gdpr.load_retention(bad)
    bad.write_text(
        "closed: {question: soon, complaint: 1 year, report: 1 year, mediation: 1 year}\n"
        "inactive: 5 years\n"
    )
    with pytest.raises(gdpr.RetentionError, match=r"closed.question: 'soon' is not a duration"):
        gdpr.load_retention(bad)
    bad.write_text(
        "closed: {question: 1 year, complaint: 1 year, report: 1 year, mediation: 1 year}\n"
        "by_status: {in_progress: 1 year}\ninactive: 5 years\n"
    )
    with pytest.raises(gdpr.RetentionError, match="by_status: keys must be closing statuses"):
        gdpr.load_retention(bad)


def test_periods_count_calendar_months_and_years():
    from datetime import UTC, datetime

    at = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert gdpr.Period(1, "year").after(at) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert gdpr.Period(2, "month").after(at) == datetime(2024, 4, 29, 12, 0, tzinfo=UTC)
    assert gdpr.Period(30, "day").after(at) == datetime(2024, 3, 30, 12, 0, tzinfo=UTC)


def test_the_export_zip_is_read_back_in_memory(hub, lived):
    filed, _ = lived
    raw = gdpr.export_case(hub.db, filed.reference, hub.clock.now(), actor="consumer")
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        names = z.namelist()
    assert names[0] == "personal-data.json" and names[1].startswith("attachments/")
    with hub.db.session(read_only=True) as s:
        actions = s.scalars(
            select(AuditEntry.action).join(Case).where(Case.reference == filed.reference)
        ).all()
    assert actions[-1] == "gdpr.exported"


def test_the_worker_erases_past_retention_on_its_schedule(hub, var, clock):
    withdrawn = file(hub)
    from hub import consumer

    consumer.withdraw(hub.db, withdrawn.reference, withdrawn.token, "", clock.now())
    worker = Worker(hub, "w1")
    assert "retention" in {job.id for job in worker.build_scheduler().get_jobs()}
    assert worker.erase_past_retention() == 0
    clock.advance(days=367)
    assert worker.erase_past_retention() == 1
    assert holding(hub, SECRETS, [FILE_BYTES]) == []


def test_an_entry_older_than_data_digests_still_verifies_and_keeps_its_data(hub, lived):
    """Entries written before migration 0014 hashed their data itself: they verify as before,
    and erasure leaves their data (emptying it would break the chain) and says how many."""
    filed, _ = lived
    with hub.db.session() as s:
        case = s.scalars(select(Case).where(Case.reference == filed.reference)).one()
        head = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.case_id == case.id)
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).one()
        at = head.at + timedelta(seconds=1)
        data = {"reason": f"old free text naming {NAME}"}
        s.add(
            AuditEntry(
                at=at,
                actor="consumer",
                action="case.withdrawn",
                case_id=case.id,
                data=data,
                data_sha256=None,
                prev_hash=head.hash,
                hash=audit.legacy_digest(head.hash, at, "consumer", "case.withdrawn", None, data),
            )
        )
    assert run(hub, "evidence", "verify").exit_code == 0
    answer = run(hub, "gdpr", "erase", filed.reference, "--yes")
    assert answer.exit_code == 0 and "1 evidence entries older than migration 0014" in answer.output
    assert holding(hub, SECRETS, [FILE_BYTES]) == [f"audit_entries.data holds {NAME!r}"]
    assert run(hub, "evidence", "verify").exit_code == 0
