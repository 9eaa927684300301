"""Nothing lost, nothing twice: retries, breakers, pause, back-pressure, dead letters, poll leases."""

import dataclasses
import random
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import control, operations, outbox
from hub.models import Assignment, Case, Delivery, DeliveryState
from loket.cli import main as cli
from mappings import AGENCIES_DIR
from mappings.engine import (
    BreakerPolicy,
    DeliveryPolicy,
    MappingError,
    RetryPolicy,
    load_agency,
)
from scheduler.worker import Worker
from tests.support.cases import MEDIATION_CASE, fault, file

TELECOM, MEDIATION = "ombudsman-telecom", "consumer-mediation"


def deliveries(hub, agency_id):
    with hub.db.session(read_only=True) as s:
        return list(
            s.scalars(select(Delivery).where(Delivery.agency_id == agency_id).order_by(Delivery.id))
        )


def set_policy(hub, agency_id, **changes):
    mapping = hub.directory.agencies[agency_id]
    hub.directory.agencies[agency_id] = dataclasses.replace(
        mapping, delivery=dataclasses.replace(mapping.delivery, **changes)
    )


# ---------------------------------------------------------------------------------- retry policy


def test_backoff_uses_full_jitter_under_a_growing_capped_ceiling():
    policy = RetryPolicy(max_attempts=8, base_seconds=2, multiplier=3, cap_seconds=60)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 2), (2, 6), (3, 18), (4, 54), (5, 60), (8, 60)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # the whole range is used, not a fixed delay
    assert policy.delay(1, rng, retry_after=45) >= 45  # the agency's Retry-After is honoured
    assert policy.delay(1, rng, retry_after=3600) <= 60  # but never beyond the cap


def test_delivery_policy_is_read_from_the_mapping_file(tmp_path):
    text = (AGENCIES_DIR / "ombudsman-telecom.yaml").read_text() + (
        "delivery:\n  retry: {max_attempts: 4, base: 5 seconds, multiplier: 3, cap: 10 minutes}\n"
        "  breaker: {failures: 2, pause: 1 minutes}\n  max_in_flight: 3\n"
    )
    path = tmp_path / "ombudsman-telecom.yaml"
    path.write_text(text)
    policy = load_agency(path, env={}).delivery
    assert policy == DeliveryPolicy(RetryPolicy(4, 5.0, 3.0, 600.0), BreakerPolicy(2, 60.0), 3)
    assert load_agency(AGENCIES_DIR / "ombudsman-telecom.yaml", env={}).delivery == DeliveryPolicy()
    path.write_text(text.replace("max_attempts: 4", "max_attempts: -1"))
    with pytest.raises(MappingError, match=r"delivery\.retry\.max_attempts"):
        load_agency(path, env={})
    path.write_text(text.replace("breaker: {failures: 2", "breaker: {fails: 2"))
    with pytest.raises(MappingError, match="did you mean `failures`"):
        load_agency(path, env={})


def test_transient_failures_retry_until_the_rounds_attempts_are_used_then_dead_letter(
    hub, sims, clock
):
    set_policy(
        hub,
        TELECOM,
        retry=RetryPolicy(max_attempts=3, base_seconds=1, cap_seconds=1),
        breaker=BreakerPolicy(failures=100),
    )
    filed = file(hub)
    fault(sims, TELECOM, mode="error", status=503)
    worker = Worker(hub, "w")
    for _ in range(3):
        worker.dispatch_once()
        clock.advance(seconds=2)
    [d] = deliveries(hub, TELECOM)
    assert (d.state, d.attempts, d.last_error_kind) == (DeliveryState.DEAD, 3, "transient")
    with hub.db.session(read_only=True) as s:
        a = s.scalars(select(Assignment).join(Case).where(Case.reference == filed.reference)).one()
        assert a.status == "undeliverable"
        assert "failed 3 times" in a.case.events[-1].message


# ------------------------------------------------------------------------------- circuit breaker


def test_a_down_agency_opens_its_breaker_and_does_not_slow_the_others(hub, sims, clock):
    """Compared by counts: the healthy agency's deliveries per round are those of a healthy run."""
    # one delivery in flight at a time, so the attempts counted below are exact
    set_policy(hub, MEDIATION, breaker=BreakerPolicy(failures=3, pause_seconds=30), concurrency=1)
    for _ in range(6):
        file(hub)
        file(hub, **MEDIATION_CASE)
    fault(sims, MEDIATION, mode="error", status=503)  # down for the whole run
    worker = Worker(hub, "w")
    telecom_done_per_round = []
    for _ in range(20):
        worker.dispatch_once()
        telecom_done_per_round.append(
            sum(d.state == DeliveryState.DONE for d in deliveries(hub, TELECOM))
        )
        clock.advance(seconds=5)
    assert telecom_done_per_round == [6] * 20  # all six in the first round, as without the outage
    state = control.states(hub.db)[MEDIATION]
    assert state.breaker == "open" and "503" in state.last_error
    attempts = sum(d.attempts for d in deliveries(hub, MEDIATION))
    # 3 failures open it; then one probe per 30 s pause over 100 s: 3 probes at most
    assert 3 <= attempts <= 3 + 3, attempts
    assert sims.system(MEDIATION).post_requests == attempts  # waiting cost the agency nothing
    assert all(d.state != DeliveryState.DEAD for d in deliveries(hub, MEDIATION))


def test_after_the_pause_one_probe_goes_out_and_success_closes_the_breaker(hub, sims, clock):
    set_policy(hub, MEDIATION, breaker=BreakerPolicy(failures=2, pause_seconds=30))
    for _ in range(4):
        file(hub, **MEDIATION_CASE)
    fault(sims, MEDIATION, mode="error", status=503)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    assert control.states(hub.db)[MEDIATION].breaker == "open"
    posts = sims.system(MEDIATION).post_requests
    clock.advance(seconds=10)
    worker.dispatch_once()
    assert sims.system(MEDIATION).post_requests == posts  # still pausing
    fault(sims, MEDIATION, mode="none")  # the agency is back
    clock.advance(seconds=60)
    assert (
        outbox.claim(
            hub.db,
            worker_id="probe",
            now=clock.now(),
            lease_seconds=60,
            limit=50,
            agency_id=MEDIATION,
        ).__len__()
        == 1
    )  # half-open: exactly one probe
    assert (
        outbox.claim(
            hub.db,
            worker_id="other",
            now=clock.now(),
            lease_seconds=60,
            limit=50,
            agency_id=MEDIATION,
        )
        == []
    )  # while the probe is in flight, nothing else
    clock.advance(seconds=61)  # the prober died; its lease and the probe slot expire
    worker.dispatch_once()
    assert control.states(hub.db)[MEDIATION].breaker == "closed"
    worker.dispatch_once()
    assert all(d.state == DeliveryState.DONE for d in deliveries(hub, MEDIATION))
    assert len(sims.system(MEDIATION).cases) == 4


def test_an_operator_can_pause_and_resume_an_agency(hub, sims, clock):
    file(hub)
    operations.pause_agency(hub, TELECOM, operator="ops-anne", reason="agency maintenance window")
    assert Worker(hub, "w").dispatch_once().delivered == 0
    assert deliveries(hub, TELECOM)[0].attempts == 0  # waiting burns no attempt
    state = control.states(hub.db)[TELECOM]
    assert (state.paused, state.paused_by, state.paused_reason) == (
        True,
        "ops-anne",
        "agency maintenance window",
    )
    operations.resume_agency(hub, TELECOM, operator="ops-anne")
    assert Worker(hub, "w").dispatch_once().delivered == 1


# ------------------------------------------------------------------------------- back-pressure


def test_in_flight_deliveries_per_agency_are_capped_across_workers(hub, sims, clock):
    set_policy(hub, TELECOM, max_in_flight=2)
    for _ in range(5):
        file(hub)
    file(hub, **MEDIATION_CASE)
    first = outbox.claim(
        hub.db,
        worker_id="a",
        now=clock.now(),
        lease_seconds=60,
        limit=50,
        agency_id=TELECOM,
        policy=hub.directory[TELECOM].delivery,
    )
    second = outbox.claim(
        hub.db,
        worker_id="b",
        now=clock.now(),
        lease_seconds=60,
        limit=50,
        agency_id=TELECOM,
        policy=hub.directory[TELECOM].delivery,
    )
    other = outbox.claim(
        hub.db, worker_id="b", now=clock.now(), lease_seconds=60, limit=50, agency_id=MEDIATION
    )
    assert (len(first), len(second), len(other)) == (2, 0, 1)


# ---------------------------------------------------------------------------------- dead letters


def test_a_permanent_error_dead_letters_at_once_and_a_resend_after_the_fix_delivers_once(
    hub, sims, clock
):
    file(hub)
    fault(sims, TELECOM, mode="error", status=422, count=1)
    worker = Worker(hub, "w")
    assert worker.dispatch_once().dead == 1
    [letter] = outbox.dead_letters(hub.db)
    assert (letter.agency_id, letter.attempts, letter.last_error_kind) == (TELECOM, 1, "permanent")
    assert letter.payload["externalReference"] == letter.case_reference  # original payload kept
    assert [a.outcome for a in letter.attempt_log] == ["permanent"]
    result = outbox.resend(
        hub.db, now=clock.now(), operator="ops", delivery_ids=[letter.delivery_id]
    )
    assert result.resent == (letter.delivery_id,)
    assert worker.dispatch_once().delivered == 1
    [d] = deliveries(hub, TELECOM)
    assert (d.state, d.idempotency_key, d.resends) == (
        DeliveryState.DONE,
        letter.idempotency_key,
        1,
    )
    assert len(sims.system(TELECOM).cases) == 1


def test_a_resend_that_fails_again_updates_the_error_and_keeps_the_key(hub, sims, clock):
    file(hub)
    fault(sims, TELECOM, mode="error", status=422, count=1)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    [before] = outbox.dead_letters(hub.db)
    outbox.resend(hub.db, now=clock.now(), operator="ops", agency_id=TELECOM)
    fault(sims, TELECOM, mode="error", status=400, count=1)
    worker.dispatch_once()
    [after] = outbox.dead_letters(hub.db)
    assert after.idempotency_key == before.idempotency_key and after.attempts == 2
    assert "HTTP 400" in after.last_error and "HTTP 422" in before.last_error


def test_two_concurrent_resends_of_the_same_letter_deliver_once(hub, sims, clock):
    file(hub)
    fault(sims, TELECOM, mode="error", status=422, count=1)
    Worker(hub, "w").dispatch_once()
    [letter] = outbox.dead_letters(hub.db)
    barrier = threading.Barrier(2)
    results = []

    def operator(name):
        barrier.wait()
        results.append(
            outbox.resend(hub.db, now=clock.now(), operator=name, delivery_ids=[letter.delivery_id])
        )

    threads = [threading.Thread(target=operator, args=(n,)) for n in ("anne", "bert")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.resent) for r in results) == [0, 1]
    [skipped] = [r for r in results if not r.resent]
    assert "not a dead letter" in skipped.skipped[0][1]
    Worker(hub, "w1").dispatch_once()
    Worker(hub, "w2").dispatch_once()
    assert len(sims.system(TELECOM).cases) == 1 and sims.system(TELECOM).post_requests == 2


def test_dead_letters_cli_lists_and_resends(hub, sims, clock, monkeypatch):
    monkeypatch.setenv("LOKET_DATABASE_URL", hub.db.url)
    file(hub)
    fault(sims, TELECOM, mode="error", status=422, count=1)
    Worker(hub, "w").dispatch_once()
    runner = CliRunner()
    listed = runner.invoke(cli, ["dead-letters", "list"])
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if TELECOM in line]
    delivery_id = row.split()[0]
    assert "[permanent]" in row and "HTTP 422" in row
    assert runner.invoke(cli, ["dead-letters", "resend"]).exit_code == 2  # says what to name
    resent = runner.invoke(cli, ["dead-letters", "resend", delivery_id, "--operator", "ops"])
    assert resent.exit_code == 0 and f"resent {delivery_id}" in resent.output
    again = runner.invoke(cli, ["dead-letters", "resend", delivery_id])
    assert again.exit_code == 1 and "not a dead letter" in again.output
    assert runner.invoke(cli, ["dead-letters", "list"]).output.strip() == "no dead letters"


# ---------------------------------------------------------------------------------- poll leases


def test_only_one_worker_polls_an_agency_at_a_time(hub, sims, clock):
    from hub import inbound

    assert inbound.lease_poll(hub.db, TELECOM, "a", clock.now(), 60)
    assert not inbound.lease_poll(hub.db, TELECOM, "b", clock.now(), 60)
    assert Worker(hub, "b").poll_agency(TELECOM) is None  # skipped, not run twice
    inbound.release_poll(hub.db, TELECOM, "a")
    assert Worker(hub, "b").poll_agency(TELECOM) is not None
    # a lease left by a worker that died expires
    assert inbound.lease_poll(hub.db, TELECOM, "dead-worker", clock.now(), 60)
    clock.advance(seconds=61)
    assert inbound.lease_poll(hub.db, TELECOM, "c", clock.now(), 60)


def test_a_failed_poll_keeps_its_cursor(hub, sims, clock):
    from hub.models import PollCursor

    file(hub)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    worker.poll_agency(TELECOM)
    with hub.db.session(read_only=True) as s:
        cursor = s.get(PollCursor, TELECOM).cursor
    fault(sims, TELECOM, mode="error", status=500, count=1)
    assert worker.poll_agency(TELECOM) is None
    with hub.db.session(read_only=True) as s:
        row = s.get(PollCursor, TELECOM)
        assert row.cursor == cursor and "HTTP 500" in row.last_error


# ------------------------------------------------------------------------------ health, metrics


def test_metrics_show_queue_depth_dead_letters_breakers_and_poll_lag(hub, sims, clock, client):
    file(hub)
    file(hub, **MEDIATION_CASE)
    fault(sims, MEDIATION, mode="error", status=422, count=1)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    worker.poll_agency(TELECOM)
    clock.advance(seconds=42)
    client.application.config["LOKET_METRICS_TOKEN"] = "scrape-me"
    body = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).get_data(
        as_text=True
    )
    assert f'loket_queue_depth{{agency="{MEDIATION}",state="dead"}} 1.0' in body
    assert f'loket_queue_depth{{agency="{TELECOM}",state="done"}} 1.0' in body
    assert f'loket_poll_lag_seconds{{agency="{TELECOM}"}} 42.0' in body
    assert f'loket_queue_oldest_age_seconds{{agency="{MEDIATION}"}} 42.0' in body
    assert f'loket_breaker_open{{agency="{TELECOM}"}} 0.0' in body


def test_readyz_checks_the_database_and_its_schema(client, hub):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    with hub.db.session() as s:
        from sqlalchemy import text

        s.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    stale = client.get("/readyz")
    assert stale.status_code == 503 and "loket db upgrade" in stale.get_json()["detail"]
    with hub.db.session() as s:
        from sqlalchemy import text

        s.execute(
            text("UPDATE alembic_version SET version_num = :v"), {"v": ready.get_json()["schema"]}
        )


def test_a_lane_keeps_several_deliveries_in_flight_to_a_slow_agency(hub, sims, clock):
    """An agency answering in 50 ms would get 20 cases a second one at a time."""
    set_policy(hub, TELECOM, concurrency=4)
    sims.system(TELECOM).latency = 0.05
    for _ in range(8):
        file(hub)
    assert Worker(hub, "w").dispatch_once().delivered == 8
    assert sims.system(TELECOM).max_in_flight == 4
    assert len(sims.system(TELECOM).cases) == 8
    set_policy(hub, MEDIATION, concurrency=1)
    sims.system(MEDIATION).latency = 0.05
    for _ in range(3):
        file(hub, **MEDIATION_CASE)
    Worker(hub, "w").dispatch_once()
    assert sims.system(MEDIATION).max_in_flight == 1
