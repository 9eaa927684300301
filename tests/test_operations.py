"""The service layer: the console and the CLI run the same commands, each command writes its
evidence in the same transaction as its change, and no ORM row leaves hub/ through a read model."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import accounts, audit, control, operations, queries
from hub.config import ROOT
from hub.models import AuditEntry, Base
from loket.cli import main as cli
from scheduler.worker import Worker
from tests.support.backoffice import PASSWORD, post, sign_in
from tests.support.cases import MEDIATION, TELECOM, assignment, fault, file

ADMIN_MAY_IMPORT_FROM_HUB = {"hub.operations", "hub.queries"}


class InjectedFailure(RuntimeError):
    pass


def evidence(hub, action: str) -> list[AuditEntry]:
    with hub.db.session(read_only=True) as s:
        return list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        )


def paused(hub, agency_id: str) -> bool:
    state = control.states(hub.db).get(agency_id)
    return bool(state and state.paused)


def pause_from_cli(hub, monkeypatch, reason: str):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    return CliRunner().invoke(
        cli, ["agencies", "pause", TELECOM, "--reason", reason, "--operator", "olga"]
    )


def pause_from_console(hub, client, reason: str):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    return post(client, f"/admin/agencies/{TELECOM}/pause", {"reason": reason})


@pytest.mark.parametrize("door", ["cli", "console"])
def test_a_pause_writes_one_evidence_entry_with_who_and_why(hub, client, monkeypatch, door):
    if door == "cli":
        answer = pause_from_cli(hub, monkeypatch, "maintenance window")
        assert answer.exit_code == 0, answer.output
        assert "paused by olga: maintenance window" in answer.output
    else:
        assert pause_from_console(hub, client, "maintenance window").status_code == 302
    assert paused(hub, TELECOM)
    [entry] = evidence(hub, "agency.paused")
    assert (entry.actor, entry.agency_id, entry.data) == (
        "operator:olga",
        TELECOM,
        {"reason": "maintenance window"},
    )


@pytest.mark.parametrize("door", ["cli", "console"])
def test_a_failure_after_a_pause_rolls_back_the_pause_and_its_evidence(
    hub, client, monkeypatch, door
):
    if door == "console":
        accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
        sign_in(client, "olga")
    monkeypatch.setattr(audit, "record", _failing(audit.record))
    if door == "cli":
        answer = pause_from_cli(hub, monkeypatch, "maintenance window")
        assert isinstance(answer.exception, InjectedFailure)
    else:
        answer = post(client, f"/admin/agencies/{TELECOM}/pause", {"reason": "maintenance window"})
        assert answer.status_code == 500  # "Nothing was stored half-way"
    assert not paused(hub, TELECOM)
    assert evidence(hub, "agency.paused") == []


def _failing(record):
    def record_then_fail(session, **kwargs):
        record(session, **kwargs)
        session.flush()  # the pause and its evidence both reached the database...
        raise InjectedFailure("...and then the transaction failed")

    return record_then_fail


def test_resume_is_on_the_evidence_log_from_the_cli_too(hub, monkeypatch):
    operations.pause_agency(hub, TELECOM, operator="olga", reason="maintenance")
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    answer = CliRunner().invoke(cli, ["agencies", "resume", TELECOM, "--operator", "bert"])
    assert answer.exit_code == 0, answer.output
    assert not paused(hub, TELECOM)
    [entry] = evidence(hub, "agency.resumed")
    assert (entry.actor, entry.agency_id) == ("operator:bert", TELECOM)


def test_a_staff_status_and_its_evidence_roll_back_together(hub, monkeypatch):
    reference = file(hub).reference
    Worker(hub, "w").dispatch_once()
    staff = accounts.Account(1, "tom", "agency", TELECOM)
    code = next(c for c, r in hub.directory[TELECOM].statuses.items() if r.status == "in_progress")
    before = assignment(hub, reference).status
    monkeypatch.setattr(audit, "record", _failing(audit.record))
    with pytest.raises(InjectedFailure):
        operations.record_staff_status(hub, staff, reference, code, "We are on it.")
    assert assignment(hub, reference).status == before != "in_progress"
    monkeypatch.undo()
    done = operations.record_staff_status(hub, staff, reference, code, "We are on it.")
    assert done.applied and assignment(hub, reference).status == "in_progress"
    [entry] = evidence(hub, "agency.status")  # the agency's actions, whichever door
    assert (entry.actor, entry.data["agency_status"]) == ("agency:tom", code)


def test_another_agencys_staff_cannot_move_a_case_they_do_not_have(hub):
    reference = file(hub).reference
    Worker(hub, "w").dispatch_once()
    other = accounts.Account(2, "mia", "agency", MEDIATION)
    code = next(iter(hub.directory[MEDIATION].statuses))
    with pytest.raises(operations.NotFound):
        operations.record_staff_status(hub, other, reference, code)
    assert queries.staff_case(hub, MEDIATION, reference) is None


def test_users_added_and_disabled_from_the_cli_are_on_the_evidence_log(hub, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "ann", "--role", "operator", "--operator", "root"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(cli, ["users", "disable", "ann", "--operator", "root"]).exit_code == 0
    assert [(e.actor, e.data) for e in evidence(hub, "user.added")] == [
        ("operator:root", {"name": "ann", "role": "operator"})
    ]
    assert [e.data for e in evidence(hub, "user.disabled")] == [{"name": "ann"}]
    assert [(u.name, u.disabled) for u in queries.users(hub)] == [("ann", True)]


def test_a_failed_command_changes_nothing_and_says_why(hub):
    with pytest.raises(operations.NotFound, match="known:"):
        operations.pause_agency(hub, "no-such-agency", operator="olga", reason="x")
    operations.add_user(hub, "ann", "operator", operator="root")
    with pytest.raises(operations.Refused, match="exists already"):
        operations.add_user(hub, "ann", "operator", operator="root")
    assert len(evidence(hub, "user.added")) == 1


def test_retry_now_brings_a_waiting_retry_forward_with_its_evidence(hub, sims, monkeypatch):
    reference = file(hub).reference
    fault(sims, TELECOM, mode="error", status=503, count=1)
    Worker(hub, "w").dispatch_once()
    [letter] = [d for d in _deliveries(hub) if d.state == "retry"]
    assert letter.next_attempt_at > hub.clock.now()
    file(hub)  # a fresh delivery: pending, not waiting for a retry
    [pending] = [d for d in _deliveries(hub) if d.state == "pending"]
    with pytest.raises(operations.Refused, match="not waiting for a retry"):
        operations.retry_now(hub, pending.id, operator="olga")
    with pytest.raises(operations.NotFound):
        operations.retry_now(hub, 999999, operator="olga")
    operations.retry_now(hub, letter.id, operator="olga")
    assert Worker(hub, "w").dispatch_once().delivered == 2
    assert assignment(hub, reference).status in ("sent", "received")
    [entry] = evidence(hub, "delivery.retry_now")
    assert entry.case_id is not None and entry.data == {"delivery": letter.id}


def _deliveries(hub):
    from hub.models import Delivery

    with hub.db.session(read_only=True) as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


# ------------------------------------------------------------------------------- read models


def _no_orm_rows(value, path="result"):
    assert not isinstance(value, Base), f"{path} is an ORM row ({type(value).__name__})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        assert value.__dataclass_params__.frozen, f"{path} ({type(value).__name__}) is not frozen"
        for f in dataclasses.fields(value):
            _no_orm_rows(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_orm_rows(v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            _no_orm_rows(v, f"{path}[{i}]")


def test_read_models_are_frozen_values_without_orm_rows(hub, sims):
    reference = file(hub).reference
    file(hub, domain="ecommerce.non_delivery", kind="mediation")
    fault(sims, MEDIATION, mode="error", status=422, count=1)
    Worker(hub, "w").dispatch_once()
    operations.pause_agency(hub, TELECOM, operator="olga", reason="x")
    operations.add_user(hub, "tom", "agency", operator="olga", agency_id=TELECOM)
    detail = queries.case_detail(hub, reference)
    assert detail is not None and detail.evidence_intact and detail.lines[0].agency_id == TELECOM
    for value in (
        detail,
        queries.agency_flows(hub),
        queries.attention(hub),
        queries.dead_letters(hub),
        queries.search_cases(hub, reference),
        queries.workspace(hub, TELECOM, include_closed=True),
        queries.staff_case(hub, TELECOM, reference),
        queries.flow_snapshot(hub),
        queries.users(hub),
    ):
        assert value
        _no_orm_rows(value)


# ----------------------------------------------------------------------------------- imports


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "hub":
                names += [f"hub.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return names


def test_admin_imports_nothing_of_hub_but_operations_and_queries():
    """DESIGN.md's rooms: the back office goes through the service layer only."""
    files = sorted((ROOT / "admin").rglob("*.py"))
    assert files
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in _imports(path)
        if ((name == "hub" or name.startswith("hub.")) and name not in ADMIN_MAY_IMPORT_FROM_HUB)
        or name.split(".")[0] in ("sqlalchemy", "flask_wtf", "flask_limiter", "adapters")
    }
    assert not wrong, "admin/ reaches past hub.operations and hub.queries: " + ", ".join(
        sorted(wrong)
    )


def test_the_cli_finds_a_case_and_refers_it_like_the_console(hub, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    reference = file(hub).reference
    Worker(hub, "w").dispatch_once()
    runner = CliRunner()
    found = runner.invoke(cli, ["cases", "search", reference.lower()])
    assert found.exit_code == 0 and reference in found.output and TELECOM in found.output
    unknown = runner.invoke(cli, ["cases", "search", "--status", "lost"])
    assert unknown.exit_code == 2 and "known:" in unknown.output
    referred = runner.invoke(
        cli, ["cases", "refer", reference, "--to", MEDIATION, "--operator", "olga"]
    )
    assert referred.exit_code == 0, referred.output
    assert f"{reference}: {TELECOM} -> {MEDIATION}" in referred.output
    [entry] = evidence(hub, "case.referred")
    assert (entry.actor, entry.agency_id) == ("operator:olga", MEDIATION)
    lines = {line.agency_id: line.status for line in queries.case_detail(hub, reference).lines}
    assert lines == {TELECOM: "referred", MEDIATION: "queued"}
    again = runner.invoke(cli, ["cases", "refer", reference, "--from", TELECOM])
    assert again.exit_code == 1 and f"no open line at {TELECOM}" in again.output
    missing = runner.invoke(cli, ["cases", "refer", "LK-0000-0000", "--to", MEDIATION])
    assert missing.exit_code == 2 and "is not a case reference" in missing.output


def test_agencies_status_reads_the_same_flow_as_the_console(hub, client, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    file(hub)
    operations.pause_agency(hub, TELECOM, operator="olga", reason="maintenance")
    answer = CliRunner().invoke(cli, ["agencies", "status"])
    assert answer.exit_code == 0, answer.output
    [row] = [line for line in answer.output.splitlines() if line.startswith(TELECOM)]
    assert row.split()[1:4] == ["closed", "yes", "1"]  # breaker, paused, pending
    assert "paused by olga: maintenance" in row
    [flow] = [f for f in queries.agency_flows(hub) if f.id == TELECOM]
    assert flow.paused and flow.counts == {"pending": 1}
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    page = client.get("/admin/flows").get_data(as_text=True)
    assert "by olga: maintenance" in page
