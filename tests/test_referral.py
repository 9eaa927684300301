"""Referral: the hub moves a case an agency is not competent for, with its history."""

from datetime import timedelta

import requests
from sqlalchemy import select

from hub import referral
from hub.models import Assignment, Case
from scheduler.worker import Worker
from tests.support.cases import file, timeline

TELECOM, MEDIATION = "ombudsman-telecom", "consumer-mediation"


def lines(hub, reference):
    with hub.db.session(read_only=True) as s:
        return list(
            s.scalars(
                select(Assignment)
                .join(Case)
                .where(Case.reference == reference)
                .order_by(Assignment.id)
            )
        )


def test_not_competent_goes_on_to_the_next_competent_agency_with_its_history(hub, sims, clock):
    filed = file(hub)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    worker.poll_agency(TELECOM)
    telecom = sims.servers[TELECOM]
    [case_id] = sims.system(TELECOM).cases
    requests.post(
        telecom.url.replace("/api", f"/_sim/cases/{case_id}/status"),
        timeout=5,
        json={"status": "NOT_COMPETENT", "note": "Dit is een internetdienst, geen telecom."},
    )
    clock.advance(seconds=1)
    worker.poll_agency(TELECOM)
    assert worker.refer_not_competent() == 1
    assert worker.refer_not_competent() == 0  # once is enough
    worker.dispatch_once()
    old, new = lines(hub, filed.reference)
    assert (old.agency_id, old.status) == (TELECOM, "referred")
    assert (new.agency_id, new.status, new.stage, new.referred_from_id) == (
        MEDIATION,
        "sent",
        "referral",
        old.id,
    )
    # the new agency received the case with what happened before
    [received] = sims.system(MEDIATION).cases.values()
    assert "NOT_COMPETENT" in received.payload["voorgeschiedenis"]
    assert "geen telecom" in received.payload["voorgeschiedenis"]
    assert received.payload["dossier_ref"] == filed.reference  # the same case, not typed again
    # the consumer's timeline shows both agencies, in order
    events = timeline(hub, filed.reference)
    agencies = [e.assignment_id for e in events if e.assignment_id]
    assert agencies.index(new.id) > agencies.index(old.id)
    assert any(
        e.to_status == "referred" and "Médiation pour le Consommateur" in e.message for e in events
    )  # in the consumer's language


def test_with_nobody_else_competent_the_case_waits_for_operators_and_says_so_once(hub, sims, clock):
    filed = file(hub, domain="general.other", kind="question")  # residual rule: mediation only
    worker = Worker(hub, "w")
    worker.dispatch_once()
    [case_id] = sims.system(MEDIATION).cases
    mediation = sims.servers[MEDIATION]
    requests.post(
        mediation.url.replace("/api", f"/_sim/cases/{case_id}/status"),
        json={"status": "NIET_BEVOEGD"},
        timeout=5,
    )
    clock.advance(seconds=1)
    worker.poll_agency(MEDIATION)
    worker.refer_not_competent()
    worker.refer_not_competent()
    [only] = lines(hub, filed.reference)
    assert only.status == "not_competent"
    notes = [e for e in timeline(hub, filed.reference) if e.dedupe_key == referral.NO_TARGET]
    assert len(notes) == 1 and "an operator will route" in notes[0].message


def test_an_operator_refers_an_open_line_to_a_named_agency(hub, sims, clock):
    filed = file(hub)
    Worker(hub, "w").dispatch_once()
    done = referral.refer(
        hub.db,
        router=hub.router,
        directory=hub.directory,
        now=clock.now(),
        actor="operator:anne",
        assignment_id=lines(hub, filed.reference)[0].id,
        to_agency=MEDIATION,
        reason="Dispute about a webshop, not telecom.",
    )
    assert (done.from_agency, done.to_agency) == (TELECOM, MEDIATION)
    old, new = lines(hub, filed.reference)
    assert old.status == "referred" and new.reason == "Dispute about a webshop, not telecom."
    events = timeline(hub, filed.reference)
    assert any(e.actor == "operator:anne" and e.to_status == "referred" for e in events)


def test_referral_to_an_unknown_agency_says_which_exist(hub, sims, clock):
    filed = file(hub)
    import pytest

    with pytest.raises(referral.ReferralError, match="known: "):
        referral.refer(
            hub.db,
            router=hub.router,
            directory=hub.directory,
            now=clock.now(),
            actor="operator:x",
            case_reference=filed.reference,
            to_agency="nobody",
        )


def test_a_late_answer_is_marked_past_due_once_on_the_timeline(hub, sims, clock):
    filed = file(hub)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    worker.poll_agency(TELECOM)  # received: the acknowledgement is in
    clock.advance(days=29)
    assert worker.watch_slas() == 0  # the telecom ombudsman answers within 30 days
    clock.advance(days=2)
    assert worker.watch_slas() == 1
    [a] = lines(hub, filed.reference)
    assert a.past_due_at == clock.now()
    [late] = [e for e in timeline(hub, filed.reference) if (e.message or "").startswith("Past due")]
    assert "answer" in late.message
    assert worker.watch_slas() == 0  # once


def test_the_past_due_watch_marks_an_unacknowledged_case(hub, sims, clock):
    filed = file(hub)
    sims.system(TELECOM).faults.mode = "error"  # the agency is unreachable: never acknowledged
    sims.system(TELECOM).faults.status = 503
    worker = Worker(hub, "w")
    clock.advance(days=10)
    assert worker.watch_slas() == 1
    [a] = lines(hub, filed.reference)
    assert a.past_due_at == clock.now()
    [late] = [e for e in timeline(hub, filed.reference) if (e.message or "").startswith("Past due")]
    assert "acknowledgement" in late.message
    assert worker.watch_slas() == 0
    assert clock.now() - timedelta(days=10) < a.acknowledge_due_at


def test_a_case_no_rule_matches_lands_with_operators_who_route_it(hub, sims, clock):
    from hub.routing import Router

    hub.router = Router(hub.router.handle[:1], (), hub.router.agencies)  # only cross-border
    filed = file(hub, domain="general.other", kind="question")
    assert filed.recipients == ()
    with hub.db.session(read_only=True) as s:
        case = s.scalars(select(Case).where(Case.reference == filed.reference)).one()
        assert case.status == "queued" and case.events[-1].kind == "needs_routing"
    done = referral.refer(
        hub.db,
        router=hub.router,
        directory=hub.directory,
        now=clock.now(),
        actor="operator:anne",
        case_reference=filed.reference,
        to_agency=MEDIATION,
    )
    assert (done.from_agency, done.to_agency) == (None, MEDIATION)
    [a] = lines(hub, filed.reference)
    assert (a.agency_id, a.stage, a.reason) == (MEDIATION, "operator", "Routed by an operator.")
    Worker(hub, "w").dispatch_once()
    assert len(sims.system(MEDIATION).cases) == 1
