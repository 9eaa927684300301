"""Each concept is written one way: the bulk/Core writers and the ORM writers store the same rows.

Intake files a case in one statement per table (any database) or in ONE statement (PostgreSQL);
a referral adds a line with `add_assignment` (ORM). Receipts are recorded one at a time through
the ORM helpers (`outbox.complete`) or a group at a time in Core (`outbox.complete_many`, the
worker's path). Here the same case goes through every path and the rows are compared field by
field, leaving out only what must differ (ids, the case's reference and token, the keys and
hashes that contain them).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from adapters.base import PollResult, Receipt, StatusUpdate
from hub import audit, inbound, intake, lifecycle, outbox
from hub.models import (
    Assignment,
    AuditEntry,
    Case,
    Delivery,
    DeliveryState,
    Notification,
    Party,
    StatusEvent,
    UnmatchedUpdate,
)
from hub.reference import new_reference
from hub.routing import Router
from hub.schemas import CaseInSchema
from tests.support.cases import CASE

# a complaint about a fake webshop: handled by the Consumer Mediation Service, and the
# Economic Inspection is informed (two lines, two deliveries)
FAN_OUT = {
    **CASE,
    "domain": "ecommerce.fake_webshop",
    "trader": {"name": "Shop BV", "address": {"country": "BE"}},
}
IDS = {"id", "case_id", "assignment_id"}


def rows(s, model, case_id: int, *, leave_out=()) -> list[dict[str, Any]]:
    """The case's rows of one table in insertion order, as dicts without ids."""
    table = model.__table__
    if model is Delivery:
        query = select(table).join(Assignment).where(Assignment.case_id == case_id)
    else:
        query = select(table).where(table.c.case_id == case_id)
    return [
        {k: v for k, v in r._mapping.items() if k not in IDS and k not in leave_out}
        for r in s.execute(query.order_by(table.c.id))
    ]


def filed_rows(db, case_id: int, reference: str) -> dict[str, Any]:
    with db.session(read_only=True) as s:
        case = s.get(Case, case_id)
        out = {
            "case": {
                c.name: getattr(case, c.key)
                for c in Case.__table__.columns
                if c.name not in ("id", "reference", "token_hash")
            },
            "parties": rows(s, Party, case_id),
            "lines": rows(s, Assignment, case_id),
            "deliveries": rows(s, Delivery, case_id),
            "events": rows(s, StatusEvent, case_id),
            "evidence": _evidence(s, case_id, reference),
            "mail": rows(s, Notification, case_id, leave_out={"secret"}),
        }
        for d in out["deliveries"]:
            assert d.pop("idempotency_key") == f"{reference}.{d['agency_id']}.1"
        assert audit.verify(s, case_id)
    return out


def _evidence(s, case_id: int, reference: str) -> list[dict[str, Any]]:
    """The case's evidence rows without what differs from case to case: the reference (in the
    filing entry, so its hash) and the keys made from it."""
    evidence = rows(s, AuditEntry, case_id, leave_out={"hash", "prev_hash"})
    for e in evidence:
        assert e.pop("data_sha256") == audit.data_digest(e["data"])  # made from the reference too
        data = e["data"] or {}
        if e["action"] == "case.filed":
            assert data.pop("reference") == reference
        if e["action"] == "delivery.receipt":
            key = data["idempotency_key"]
            assert key.startswith(f"{reference}.")
            data["idempotency_key"] = key.removeprefix(f"{reference}.")
        if e["action"].startswith("status."):
            data["update"] = "the update's key"
    return evidence


# How intake can write a case: one statement (PostgreSQL), one statement per table (SQLite: on
# the driver's cursor), and the per-table statements through SQLAlchemy Core.
WAYS = {"one": {"one_statement": True}, "tables": {"one_statement": False}}
WAYS["core"] = {"one_statement": False, "driver": False}


def store(hub, data: dict, token: str, *, one_statement: bool | str) -> tuple[int, str]:
    way = (
        WAYS[one_statement] if isinstance(one_statement, str) else {"one_statement": one_statement}
    )
    now = hub.clock.now()
    decision = hub.router.route(intake.situation_of(data, now.date()))
    assert not decision.missing, decision
    reference = new_reference(hub.random)
    with hub.db.engine.begin() as conn:
        case_id = intake._store(
            conn,
            data,
            reference,
            token,
            decision.recipients,
            hub.directory,
            now,
            **way,
        )
    return case_id, reference


def paths(db) -> list[bool | str]:
    """The ways this database can write a case (WAYS): per table everywhere (False), the single
    statement (data-modifying CTEs) on PostgreSQL (True), and on SQLite, whose per-table
    statements go to the driver, the same through Core ("core")."""
    return [False, True] if db.dialect == "postgresql" else [False, "core"]


UNROUTED = {**CASE, "kind": "question", "domain": "general.other"}


@pytest.mark.parametrize(
    ("case", "lines"), [(CASE, 1), (FAN_OUT, 2), (UNROUTED, 0)], ids=["one", "fan-out", "none"]
)
def test_intake_paths_store_the_same_rows(hub, case, lines):
    if case is UNROUTED:  # only the cross-border rule: nothing matches, operators route it
        hub.router = Router(hub.router.handle[:1], (), hub.router.agencies)
    data = CaseInSchema().load(case)
    stored = {}
    for one_statement in paths(hub.db):
        case_id, reference = store(hub, data, "token-1", one_statement=one_statement)
        stored[one_statement] = filed_rows(hub.db, case_id, reference)
    first = stored[False]
    assert len(first["lines"]) == lines
    assert [d["state"] for d in first["deliveries"]] == [DeliveryState.PENDING] * lines
    assert [e["kind"] for e in first["events"]] == (["routed"] * lines or ["needs_routing"])
    assert first["mail"] and first["evidence"][0]["action"] == "case.filed"
    for other in stored.values():
        assert other == first


# a scam reported: the police (a referral body, outside Loket) and the Economic Inspection
# (connected): two lines, one delivery
MIXED = {**CASE, "kind": "report", "domain": "scam.fraud", "answers": {}}


def test_a_referral_bodys_line_is_referred_with_no_delivery_on_every_path(hub):
    data = CaseInSchema().load(MIXED)
    stored = {}
    for one_statement in paths(hub.db):
        case_id, reference = store(hub, data, "token-1", one_statement=one_statement)
        stored[one_statement] = filed_rows(hub.db, case_id, reference)
    first = stored[False]
    assert [(line["agency_id"], line["status"]) for line in first["lines"]] == [
        ("police", "referred"),
        ("economic-inspection", "queued"),
    ]
    assert [d["agency_id"] for d in first["deliveries"]] == ["economic-inspection"]
    assert [e["kind"] for e in first["events"]] == ["referred_outside", "routed"]
    assert first["lines"][0]["answer_due_at"] is None and first["lines"][0]["basis"]
    # the police line answers the consumer (elsewhere); the inspection only informs
    assert first["case"]["status"] == "referred"
    for other in stored.values():
        assert other == first


def test_the_worker_never_tries_to_deliver_to_a_referral_body(hub):
    from scheduler.worker import Worker

    phishing = {**CASE, "kind": "report", "domain": "scam.phishing"}
    data = CaseInSchema().load({**phishing, "answers": {"gave_codes_or_paid": True}})
    case_id, _ = store(hub, data, "token-1", one_statement=False)
    stats = Worker(hub, "w1").dispatch_once()
    assert stats.delivered == 0
    with hub.db.session(read_only=True) as s:
        assert rows(s, Delivery, case_id) == []
        assert {a.status for a in s.scalars(select(Assignment))} == {"referred"}


def test_add_assignment_writes_what_intake_writes_for_a_line(hub):
    """A referral's new line (ORM) and intake's line (Core, every path) for the same agency
    agree, but for the idempotency key's counter."""
    for one_statement in paths(hub.db):
        _add_a_line_like_intakes(hub, one_statement)


def _add_a_line_like_intakes(hub, one_statement: bool) -> None:
    data = CaseInSchema().load(CASE)
    case_id, reference = store(hub, data, "token-1", one_statement=one_statement)
    with hub.db.session() as s:
        case = s.get(Case, case_id)
        [line] = case.assignments
        intake.add_assignment(
            s,
            case,
            hub.directory[line.agency_id],
            reason=line.reason,
            stage=line.stage,
            now=hub.clock.now(),
            basis=line.basis,
        )
    with hub.db.session(read_only=True) as s:
        lines = rows(s, Assignment, case_id)
        deliveries = rows(s, Delivery, case_id)
        events = rows(s, StatusEvent, case_id)
    assert lines[0] == lines[1]
    keys = [d.pop("idempotency_key") for d in deliveries]
    assert keys == [f"{reference}.{line.agency_id}.1", f"{reference}.{line.agency_id}.2"]
    assert deliveries[0] == deliveries[1]
    assert events[0] == events[1] and events[0]["kind"] == "routed"


# ------------------------------------------------------------------------------------- receipts


def receipt_rows(db, case_id: int, reference: str) -> dict[str, Any]:
    with db.session(read_only=True) as s:
        evidence = _evidence(s, case_id, reference)
        assert audit.verify(s, case_id), "the evidence chain must verify"
        case = s.get(Case, case_id)
        out = {
            "case": (case.status, case.updated_at),
            "lines": rows(s, Assignment, case_id),
            "deliveries": rows(s, Delivery, case_id, leave_out={"idempotency_key"}),
            "events": rows(s, StatusEvent, case_id),
            "evidence": evidence,
            "mail": rows(s, Notification, case_id, leave_out={"secret"}),
        }
    return out


def file_twice(hub, case: dict) -> list[tuple[int, str]]:
    data = CaseInSchema().load(case)
    out = []
    for _ in range(2):
        filed = intake.file_case(
            hub.db,
            data,
            router=hub.router,
            directory=hub.directory,
            clock=hub.clock,
            random=hub.random,
        )
        with hub.db.session(read_only=True) as s:
            out.append(
                (
                    s.scalar(select(Case.id).where(Case.reference == filed.reference)),
                    filed.reference,
                )
            )
    return out


def claimed_by_case(hub, agency_id: str) -> dict[str, outbox.Claimed]:
    return {
        c.case_reference: c
        for c in outbox.claim(
            hub.db,
            worker_id="w1",
            now=hub.clock.now(),
            lease_seconds=60,
            limit=10,
            agency_id=agency_id,
        )
    }


def receipt(n: int = 1) -> Receipt:
    return Receipt(f"AG-{n}", duplicate=False, raw={"status": 201, "body": {"id": f"AG-{n}"}})


def record_both_ways(hub, cases, agency_id: str, n: int = 1) -> None:
    """The first case's receipt through the ORM path, the second's through the bulk path."""
    claimed = claimed_by_case(hub, agency_id)
    (_, one), (_, bulk) = cases
    mapping = hub.directory[agency_id]
    now = hub.clock.now()
    assert outbox.complete(hub.db, claimed[one], receipt(n), {"p": 1}, now, mapping)
    assert outbox.complete_many(hub.db, [(claimed[bulk], receipt(n), {"p": 1})], now, mapping) == 1


@pytest.mark.parametrize("case", [CASE, FAN_OUT], ids=["one-line", "fan-out"])
def test_receipt_paths_record_the_same_rows(hub, case):
    cases = file_twice(hub, case)
    with hub.db.session(read_only=True) as s:
        agencies = [a.agency_id for a in s.get(Case, cases[0][0]).assignments]
    for n, agency_id in enumerate(agencies, start=1):
        hub.clock.advance(minutes=n)
        record_both_ways(hub, cases, agency_id, n)
    one, bulk = (receipt_rows(hub.db, cid, ref) for cid, ref in cases)
    assert {line["status"] for line in one["lines"]} == {lifecycle.SENT}
    assert [d["state"] for d in one["deliveries"]] == [DeliveryState.DONE] * len(agencies)
    assert [e["action"] for e in one["evidence"]].count("delivery.receipt") == len(agencies)
    assert one == bulk


def test_receipt_paths_agree_on_a_repeat_and_on_telling_the_consumer(hub):
    """A line that is past `sent` only gets a note; a case whose status moves to one the
    consumer cares about queues the same mail either way."""
    cases = file_twice(hub, FAN_OUT)
    mediation, inspection = "consumer-mediation", "economic-inspection"
    with hub.db.session() as s:
        # the mediation's line already moved on (its receipt is a repeat): the note path; the
        # case's status is stale, so recomputing it tells the consumer (the mail path). (The
        # mediation, not the inspection: a line that only informs an inspection never holds the
        # case's status, docs/statuses.md.)
        s.execute(
            update(Assignment)
            .where(
                Assignment.case_id.in_([cid for cid, _ in cases]),
                Assignment.agency_id == mediation,
            )
            .values(status="waiting_for_consumer")
        )
    hub.clock.advance(minutes=1)
    record_both_ways(hub, cases, mediation)
    record_both_ways(hub, cases, inspection, 2)
    one, bulk = (receipt_rows(hub.db, cid, ref) for cid, ref in cases)
    assert one["case"][0] == "waiting_for_consumer"
    assert [m["kind"] for m in one["mail"]] == ["filed", "waiting"]
    notes = [e for e in one["events"] if e["kind"] == "delivered"]
    assert [(e["from_status"], e["to_status"]) for e in notes] == [
        (None, None),
        (lifecycle.QUEUED, lifecycle.SENT),
    ]
    assert one == bulk


def test_receipt_paths_agree_when_the_agency_spoke_first(hub):
    """A status the agency sent before its receipt was recorded waits (parked); either path
    applies it right after the receipt, with the same timeline, evidence and case status."""
    cases = file_twice(hub, CASE)
    telecom = "ombudsman-telecom"
    mapping = hub.directory[telecom]
    keys = {}
    for _, reference in cases:
        early = StatusUpdate(
            "INFO_REQUESTED", hub.clock.now(), case_reference=reference, message="Send the bill."
        )
        keys[reference] = early.key()
        stats = inbound.apply_poll(hub.db, mapping, PollResult((early,), "1"), hub.clock.now())
        assert stats.counts == {"unmatched": 1}
    hub.clock.advance(minutes=1)
    record_both_ways(hub, cases, telecom)
    one, bulk = (receipt_rows(hub.db, cid, ref) for cid, ref in cases)
    for (_, reference), recorded in zip(cases, (one, bulk), strict=True):
        for e in recorded["events"]:
            if e["dedupe_key"] == keys[reference]:
                e["dedupe_key"] = "the parked update's key"
    assert one["case"][0] == "waiting_for_consumer"
    assert [m["kind"] for m in one["mail"]] == ["filed", "waiting"]
    assert [e["kind"] for e in one["events"]][-2:] == ["delivered", "agency_status"]
    assert one == bulk
    with hub.db.session(read_only=True) as s:
        assert all(u.resolved_at is not None for u in s.scalars(select(UnmatchedUpdate)))


def test_a_receipt_whose_line_a_poll_holds_waits_for_a_later_group_and_the_rest_go_in(hub):
    """The recorder does not wait behind a poll that holds a line: that receipt is handed back
    untouched (`busy`), the others are recorded, and the held one goes in once the line is free."""
    if hub.db.dialect != "postgresql":
        pytest.skip(
            "SQLite has one writer at a time: no line can be held while a group is recorded"
        )
    cases = file_twice(hub, CASE)
    telecom = "ombudsman-telecom"
    mapping = hub.directory[telecom]
    claimed = claimed_by_case(hub, telecom)
    (_, held_ref), (_, free_ref) = cases
    held, free = claimed[held_ref], claimed[free_ref]
    group = [(held, receipt(1), {"p": 1}), (free, receipt(2), {"p": 2})]
    with hub.db.engine.connect() as poll:  # a poll in the middle of applying to the first line
        poll.execute(
            select(Assignment.id).where(Assignment.id == held.assignment_id).with_for_update()
        )
        busy: list = []
        assert outbox.complete_many(hub.db, group, hub.clock.now(), mapping, busy) == 1
        assert [item[0].delivery_id for item in busy] == [held.delivery_id]
        poll.rollback()
    with hub.db.session(read_only=True) as s:
        states = {d.id: d.state for d in s.scalars(select(Delivery))}
    assert states[free.delivery_id] == DeliveryState.DONE
    assert states[held.delivery_id] == DeliveryState.LEASED  # untouched, still this worker's
    assert outbox.complete_many(hub.db, busy, hub.clock.now(), mapping, []) == 1
    with hub.db.session(read_only=True) as s:
        assert s.get(Delivery, held.delivery_id).state == DeliveryState.DONE


class _Repeating:
    """Draws LK-ABCD-EFG?, then LK-HJKM-NPQ?, then others: two of these collide at first."""

    def __init__(self) -> None:
        self.draws = iter(["ABCDEFG", "HJKMNPQ"] + ["RSTVWXY"] * 10)
        self.tokens = 0

    def symbols(self, alphabet: str, k: int) -> str:
        return next(self.draws)

    def token(self) -> str:
        self.tokens += 1
        return f"token-{id(self)}-{self.tokens}"


def test_a_reference_drawn_twice_is_drawn_again_not_lost(hub):
    """The second filing draws a reference the first one has: the database refuses it (its
    unique index; on SQLite the driver's error, raised as SQLAlchemy's), and intake draws again
    instead of failing the consumer's filing."""
    data = CaseInSchema().load(CASE)
    first, second = (
        intake.file_case(
            hub.db,
            data,
            router=hub.router,
            directory=hub.directory,
            clock=hub.clock,
            random=source,
        )
        for source in (_Repeating(), _Repeating())
    )
    assert first.reference == "LK-ABCD-EFG" + first.reference[-1]
    assert second.reference != first.reference
    assert second.reference.startswith("LK-HJKM-NPQ")
    with hub.db.session(read_only=True) as s:
        assert sorted(s.scalars(select(Case.reference))) == sorted(
            [first.reference, second.reference]
        )
