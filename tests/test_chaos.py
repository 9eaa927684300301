"""Chaos run on PostgreSQL: 2,000 cases over 4 agencies, three workers killed with SIGKILL at
seeded random points of the drain and restarted, an agency answering 503 for a stretch and another
timing out for a stretch. At the end every case is at its agency exactly once, every status the
agencies produced is on the timelines, and nothing is left leased.

While the workers are being killed the test also measures what an agency notices: deliveries per
second during the kill phase, and the longest stretch any one agency went without a delivery while
it had work due and a live worker existed (a dead worker's claims must not hold an agency up for
long). Both are printed (`pytest -s`) and the stretch is asserted."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
import yaml
from sqlalchemy import case, func, select

from hub import intake
from hub.config import ROOT, Settings
from hub.models import Assignment, Delivery, DeliveryState, StatusEvent
from hub.schemas import CaseInSchema
from hub.services import Hub
from mappings import AGENCIES_DIR
from tests.support.cases import CASE
from tests.support.env import free_port, wait_http, wait_until

# Its stall bound is a time on this machine: `make test` runs it alone, after the parallel run,
# so the other tests' load is not what it measures.
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

AGENCIES = {
    "chaos-a": "telecom.billing",
    "chaos-b": "telecom.contract",
    "chaos-c": "telecom.coverage",
    "chaos-d": "energy.billing",
}
N_CASES = 2000
MAX_IN_FLIGHT = 25
FLOW = ["NEW", "ASSIGNED", "MEDIATING", "CLOSED_AGREEMENT"]


def write_agencies(tmp_path, ports):
    folder = tmp_path / "agencies"
    folder.mkdir()
    template = yaml.safe_load((AGENCIES_DIR / "ombudsman-telecom.yaml").read_text())
    for agency_id, port in ports.items():
        spec = dict(template, id=agency_id)
        spec.pop("simulator")
        spec.pop("prechecks", None)
        spec["adapter"] = dict(
            template["adapter"],
            base_url=f"http://127.0.0.1:{port}/api",
            api_key="chaos-key",
            read_timeout=1.0,
            connect_timeout=1.0,
        )
        spec["delivery"] = {
            "retry": {"max_attempts": 100, "base": 0.2, "cap": 2},
            "breaker": {"failures": 5, "pause": 1},
            "max_in_flight": MAX_IN_FLIGHT,
        }
        (folder / f"{agency_id}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    routing = {
        "handle": [
            {
                "name": agency_id,
                "when": {"domain": domain},
                "to": [agency_id],
                "reason": "chaos",
                "basis": "the chaos test",
            }
            for agency_id, domain in AGENCIES.items()
        ]
    }
    routing["handle"].append(
        {"name": "rest", "to": ["chaos-a"], "reason": "chaos", "basis": "the chaos test"}
    )
    (tmp_path / "routing.yaml").write_text(yaml.safe_dump(routing))
    return folder, tmp_path / "routing.yaml"


MAX_KILLS = 12
MAX_STALL_SECONDS = 10.0
SAMPLE_SECONDS = 0.25


@dataclass
class StallWatch:
    """Samples each agency's delivered and waiting deliveries every SAMPLE_SECONDS. A stall is
    the time since an agency's last delivery, counted only while it has work a live worker could
    take (`per_agency`: due, or a lease that ran out, with room in the agency's allowance) and at
    least one worker process is alive; `longest` keeps the worst stall per agency and when it
    ended."""

    count: Callable[[], dict[str, tuple[int, int]]]  # {agency_id: (done, due)}
    alive: Callable[[], bool]
    longest: dict[str, tuple[float, float]] = field(default_factory=dict)
    done: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, anchors: dict[str, float], last: dict[str, int]) -> None:
        now = time.monotonic()
        counts = self.count()
        live = self.alive()
        self.done.append((now, sum(d for d, _ in counts.values())))
        for agency_id, (done, due) in counts.items():
            if done != last.get(agency_id) or not due or not live:
                anchors[agency_id], last[agency_id] = now, done
            stall = now - anchors.setdefault(agency_id, now)
            if stall > self.longest.get(agency_id, (0.0, 0.0))[0]:
                self.longest[agency_id] = (stall, now)

    def run(self, stop: threading.Event) -> None:
        anchors: dict[str, float] = {}
        last: dict[str, int] = {}
        while not stop.wait(SAMPLE_SECONDS):
            self.sample(anchors, last)

    def worst(self) -> tuple[str, float, float]:
        agency_id, (stall, at) = max(self.longest.items(), key=lambda kv: kv[1][0])
        return agency_id, stall, at

    def done_by(self, moment: float) -> int:
        """Deliveries done by `moment`, from the last sample taken at or before it."""
        return max((n for t, n in self.done if t <= moment), default=0)


def wait_for_progress(count, target: int, what: str, stall: float = 90, ceiling: float = 900):
    """Wait until count() reaches target; fail when it has not moved for `stall` seconds (stuck,
    not slow) or after `ceiling`, saying how far it got."""
    started = last_move = time.monotonic()
    seen = count()
    while seen < target:
        now = time.monotonic()
        if now - last_move > stall or now - started > ceiling:
            raise AssertionError(
                f"{what}: {seen} of {target} after {now - started:.0f}s, "
                f"no progress for {now - last_move:.0f}s"
            )
        time.sleep(0.5)
        current = count()
        if current != seen:
            seen, last_move = current, time.monotonic()
    assert seen == target, f"{what}: {seen}, more than {target}"


def test_chaos_nothing_lost_nothing_twice(processes, pg_server_url, tmp_path, monkeypatch):
    from tests.support.env import _truncate_all

    _truncate_all(pg_server_url)
    rng = random.Random(20261127)
    ports = {agency_id: free_port() for agency_id in AGENCIES}
    folder, routing = write_agencies(tmp_path, ports)
    for agency_id, port in ports.items():
        processes.start(
            f"sim-{agency_id}",
            [
                "-m",
                "loket_simulators",
                "rest",
                "--profile",
                "ombudsman-telecom",
                "--port",
                str(port),
                "--step-seconds",
                "1",
                "--api-key",
                "chaos-key",
                "--schema",
                str(ROOT / "contracts/agencies/ombudsman-telecom/case.schema.json"),
            ],
            {},
        )
    for port in ports.values():
        wait_http(f"http://127.0.0.1:{port}/api/health")

    env = {
        "LOKET_DATABASE_URL": pg_server_url,
        "LOKET_AGENCIES_DIR": str(folder),
        "LOKET_ROUTING_FILE": str(routing),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    hub = Hub.from_settings(Settings.from_env())
    expected: dict[str, set[str]] = {a: set() for a in AGENCIES}
    domains = list(AGENCIES.values())
    for i in range(N_CASES):
        data = CaseInSchema().load({**CASE, "domain": domains[i % 4]})
        filed = intake.file_case(
            hub.db,
            data,
            router=hub.router,
            directory=hub.directory,
            clock=hub.clock,
            random=hub.random,
        )
        agency = filed.recipients[0].agency_id
        expected[agency].add(f"{filed.reference}.{agency}.1")

    t0 = time.monotonic()
    print(f"filed {N_CASES} cases")
    # the shipped delivery lease: how long a killed worker's claims hold an agency up is what the
    # stall figure below measures, so the test does not shorten it
    worker_env = {
        **env,
        "LOKET_DISPATCH_SECONDS": "0.2",
        "LOKET_POLL_SECONDS": "0.5",
        "LOKET_POLL_LEASE_SECONDS": "5",
    }
    workers = ["worker-0", "worker-1", "worker-2"]
    for name in workers:
        processes.start(name, ["-m", "loket.cli", "worker"], worker_env)

    def per_agency() -> dict[str, tuple[int, int]]:
        """Per agency: deliveries done, and deliveries a live worker could take now (due, or
        leased by a worker whose lease ran out) while the agency's in-flight allowance has room.
        A lease a live worker keeps renewing is work in hand; a killed worker's lease runs out
        within LOKET_LEASE_SECONDS and from then on counts as waiting."""
        now = hub.clock.now()
        due = (
            Delivery.state.in_([DeliveryState.PENDING, DeliveryState.RETRY])
            & (Delivery.next_attempt_at <= now)
        ) | ((Delivery.state == DeliveryState.LEASED) & (Delivery.lease_expires_at <= now))
        held = (Delivery.state == DeliveryState.LEASED) & (Delivery.lease_expires_at > now)
        with hub.db.session(read_only=True) as s:
            rows = s.execute(
                select(
                    Delivery.agency_id,
                    func.count(case((Delivery.state == DeliveryState.DONE, 1))),
                    func.count(case((due, 1))),
                    func.count(case((held, 1))),
                ).group_by(Delivery.agency_id)
            ).all()
        return {
            agency_id: (done, waiting if held_now < MAX_IN_FLIGHT else 0)
            for agency_id, done, waiting, held_now in rows
        }

    watch = StallWatch(per_agency, lambda: any(processes.procs[n].poll() is None for n in workers))
    watching = threading.Event()
    watcher = threading.Thread(target=watch.run, args=(watching,), daemon=True)
    watcher.start()

    def sim(agency_id, path, **kw):
        return requests.request(
            kw.pop("method", "GET"), f"http://127.0.0.1:{ports[agency_id]}{path}", timeout=10, **kw
        ).json()

    def delivered():
        with hub.db.session(read_only=True) as s:
            return s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.state == DeliveryState.DONE)
            )

    wait_until(lambda: delivered() >= 100, 60, "the first deliveries")
    sim(
        "chaos-a",
        "/_sim/faults",
        method="POST",
        json={"mode": "error", "status": 503, "seconds": 3},
    )
    sim(
        "chaos-b", "/_sim/faults", method="POST", json={"mode": "timeout", "delay": 2, "seconds": 3}
    )

    kills = []
    stop = threading.Event()

    # The kills are planned up front from the seed: each at a point of the drain's progress, so a
    # slow or loaded machine sees the same kills at the same stage, and at least 1-3 s after the
    # previous one, at most MAX_KILLS: a worker restarted every second or two on a loaded machine
    # spends its life importing, and the run would measure start-up, not recovery.
    plan = [
        (threshold, rng.choice(workers), rng.uniform(1.0, 3.0))
        for threshold in sorted(rng.sample(range(150, 1500), MAX_KILLS))
    ]

    def chaos():
        for threshold, name, gap in plan:
            if stop.wait(gap):
                return
            while delivered() < threshold:
                if stop.wait(0.2):
                    return
            processes.kill(name, signal.SIGKILL)
            kills.append((name, time.monotonic()))
            processes.start(name, ["-m", "loket.cli", "worker"], worker_env)

    killer = threading.Thread(target=chaos, daemon=True)
    killer.start()
    try:
        wait_for_progress(delivered, N_CASES, "every delivery to be done")
        drained = time.monotonic()
    finally:
        stop.set()
        killer.join(timeout=30)
        watching.set()
        watcher.join(timeout=30)
    assert len(kills) >= 3, f"chaos killed only {len(kills)} workers; the run was too quick"

    # what the agencies noticed while workers were being killed
    phase_start, phase_end = kills[0][1], min(kills[-1][1], drained)
    in_phase = watch.done_by(phase_end) - watch.done_by(phase_start)
    rate = in_phase / (phase_end - phase_start) if phase_end > phase_start else 0.0
    agency_id, stall, at = watch.worst()
    figures = (
        f"kill phase: {len(kills)} SIGKILLs over {phase_end - phase_start:.1f}s, {in_phase} "
        f"deliveries, {rate:.1f} deliveries/s (whole drain {N_CASES / (drained - t0):.1f}/s); "
        f"longest stretch without a delivery while work was due and a worker lived: "
        f"{stall:.1f}s at {agency_id}, ending {at - t0:.1f}s after the workers started (kills "
        f"{phase_start - t0:.1f}-{kills[-1][1] - t0:.1f}s) "
        f"(per agency: "
        + ", ".join(f"{a} {s_:.1f}s" for a, (s_, _) in sorted(watch.longest.items()))
        + ")"
    )
    print(figures)

    # every case at its agency exactly once
    for agency_id, keys in expected.items():
        stats = sim(agency_id, "/_sim/stats")
        assert stats["cases"] == len(keys), (agency_id, stats["cases"], len(keys))
        assert set(stats["keys"]) == keys
    # every status the agencies produced reaches the timelines (the flow ends after 3 s)
    print(f"delivered after {time.monotonic() - t0:.1f}s with {len(kills)} kills")

    def produced() -> set[tuple[str, str, str]]:
        out = set()
        for agency_id in AGENCIES:
            since, more = 0, True
            while more:
                page = sim(
                    agency_id,
                    "/api/changes",
                    params={"since": since, "limit": 1000},
                    headers={"X-API-Key": "chaos-key"},
                )
                out.update((agency_id, c["case_id"], c["status"]) for c in page["changes"])
                since, more = int(page["next"]), page["has_more"]
        return out

    def on_timelines() -> set[tuple[str, str]]:
        with hub.db.session(read_only=True) as s:
            return set(
                s.execute(
                    select(
                        Assignment.agency_id, Assignment.agency_reference, StatusEvent.agency_status
                    )
                    .join(StatusEvent, StatusEvent.assignment_id == Assignment.id)
                    .where(StatusEvent.actor == "agency")
                ).all()
            )

    def all_resolved():
        made = produced()
        return len(made) == N_CASES * len(FLOW) and made <= on_timelines()

    wait_until(all_resolved, 120, "every produced status on the timelines", interval=1.0)
    print(f"all statuses on the timelines after {time.monotonic() - t0:.1f}s")
    with hub.db.session(read_only=True) as s:
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
        assert states == {DeliveryState.DONE: N_CASES}
        assert (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.lease_expires_at.is_not(None))
            )
            == 0
        )
        statuses = dict(
            s.execute(select(Assignment.status, func.count()).group_by(Assignment.status)).all()
        )
        assert statuses == {"resolved": N_CASES}
        # no status applied twice: one agency event per (assignment, agency status)
        dupes = s.execute(
            select(StatusEvent.assignment_id, StatusEvent.agency_status, func.count())
            .where(StatusEvent.actor == "agency")
            .group_by(StatusEvent.assignment_id, StatusEvent.agency_status)
            .having(func.count() > 1)
        ).all()
        assert dupes == []
    hub.close()
    # last, so that a slow recovery does not hide whether anything was lost or sent twice
    assert stall <= MAX_STALL_SECONDS, figures
