"""End to end with real processes on loopback: simulators, web (gunicorn) and worker.

These run on SQLite and on PostgreSQL. They wait on real processes with deadlines (never a fixed
sleep) and stop every process by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import select

from hub import intake
from hub.config import ROOT, Settings
from hub.db import Database
from hub.models import Assignment, Delivery, DeliveryState, InboundProblem
from hub.schemas import CaseInSchema
from hub.services import Hub
from mappings import AGENCIES_DIR
from mappings.engine import load_agency, load_all
from tests.support.cases import CASE
from tests.support.env import API_KEYS, SIM_PROFILES, env_prefix, free_port, wait_http, wait_until

pytestmark = pytest.mark.e2e


def start_simulators(processes, step_seconds: float, latency: float = 0.0) -> dict[str, str]:
    env = {}
    for agency_id, profile in SIM_PROFILES.items():
        port = free_port()
        args = [
            "-m",
            "loket_simulators",
            "rest",
            "--profile",
            profile,
            "--port",
            str(port),
            "--step-seconds",
            str(step_seconds),
            "--api-key",
            API_KEYS[agency_id],
            "--schema",
            str(ROOT / "contracts" / "agencies" / agency_id / "case.schema.json"),
            "--latency",
            str(latency),
        ]
        processes.start(f"sim-{agency_id}", args, {})
        url = f"http://127.0.0.1:{port}/api"
        env[env_prefix(agency_id) + "_URL"] = url
        env[env_prefix(agency_id) + "_KEY"] = API_KEYS[agency_id]
    for url in env.values():
        if url.startswith("http"):
            wait_http(url + "/health")
    return env


def sim_stats(env, agency_id="ombudsman-telecom"):
    base = env[env_prefix(agency_id) + "_URL"].removesuffix("/api")
    return requests.get(f"{base}/_sim/stats", timeout=5).json()


def start_web(processes, env) -> str:
    port = free_port()
    processes.start("web", ["-m", "loket.cli", "serve", "--port", str(port), "--workers", "1"], env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return url


WORKER_ENV = {"LOKET_POLL_SECONDS": "0.3", "LOKET_DISPATCH_SECONDS": "0.2"}


def test_a_case_goes_queued_sent_received_in_progress_resolved(processes, database_url):
    env = {**start_simulators(processes, step_seconds=1.0), "LOKET_DATABASE_URL": database_url}
    web = start_web(processes, env)
    processes.start("worker", ["-m", "loket.cli", "worker"], {**env, **WORKER_ENV})

    filed = requests.post(f"{web}/api/v1/cases", json=CASE, timeout=10)
    assert filed.status_code == 201, filed.text
    body = filed.json()
    auth = {"Authorization": f"Bearer {body['tracking_token']}"}
    seen: list[str] = []

    def resolved():
        status = requests.get(body["status_url"], headers=auth, timeout=5).json()
        if not seen or seen[-1] != status["status"]:
            seen.append(status["status"])
        return status if status["status"] == "resolved" else None

    final = wait_until(resolved, 60, "the case to be resolved", interval=0.1)
    moves = []
    for event in final["timeline"]:
        if event["to"] and (not moves or moves[-1] != event["to"]):
            moves.append(event["to"])
    assert moves == ["queued", "sent", "received", "in_progress", "resolved"]
    [line] = final["agencies"]
    assert line["agency_reference"].startswith("OMB-") and line["outcome"] == "solved"
    assert seen[0] in ("queued", "sent", "received") and seen[-1] == "resolved"
    assert sim_stats(env)["cases"] == 1


def test_bad_input_never_takes_the_server_down(processes, tmp_path, sqlite_template):
    import shutil

    db_path = tmp_path / "web.db"
    shutil.copy(sqlite_template, db_path)
    env = {"LOKET_DATABASE_URL": f"sqlite:///{db_path}"}
    web = start_web(processes, env)
    url = f"{web}/api/v1/cases"
    bad = [
        ({"data": b'{"kind": ', "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": {k: v for k, v in CASE.items() if k != "consumer"}}, 422),
        ({"json": {**CASE, "domain": "nowhere.nothing"}}, 422),
        (
            {
                "data": json.dumps({**CASE, "description": "x" * (5 * 1024 * 1024)}),
                "headers": {"Content-Type": "application/json"},
            },
            413,
        ),
        ({"data": json.dumps(CASE), "headers": {"Content-Type": "text/plain"}}, 415),
        ({"data": b"\xff\xfe\x00garbage", "headers": {"Content-Type": "application/json"}}, 400),
    ]
    for kwargs, status in bad:
        resp = requests.post(url, timeout=10, **kwargs)
        assert resp.status_code == status, (kwargs.get("json"), resp.text[:300])
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.json()["status"] == status
    assert requests.post(url, json=CASE, timeout=10).status_code == 201
    db = Database(env["LOKET_DATABASE_URL"])
    with db.session(read_only=True) as s:
        assert len(s.scalars(select(Assignment)).all()) == 1  # only the good case is stored
    db.dispose()


def test_a_worker_killed_mid_run_loses_no_delivery_and_duplicates_no_case(
    processes, database_url, monkeypatch
):
    n = 40
    env = {
        **start_simulators(processes, step_seconds=3600, latency=0.05),
        "LOKET_DATABASE_URL": database_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    hub = Hub.from_settings(Settings(database_url=database_url))
    references = []
    for _ in range(n):
        filed = intake.file_case(
            hub.db,
            CaseInSchema().load(CASE),
            router=hub.router,
            directory=hub.directory,
            clock=hub.clock,
            random=hub.random,
        )
        references.append(filed.reference)

    worker_env = {**env, **WORKER_ENV, "LOKET_LEASE_SECONDS": "2"}
    processes.start("worker-1", ["-m", "loket.cli", "worker"], worker_env)
    wait_until(lambda: sim_stats(env)["posts"] >= 5, 30, "the first deliveries")
    processes.kill("worker-1", signal.SIGKILL)
    at_kill = sim_stats(env)
    assert at_kill["cases"] < n, "the worker finished before it could be killed; raise n or latency"

    processes.start("worker-2", ["-m", "loket.cli", "worker"], worker_env)

    def all_done():
        with hub.db.session(read_only=True) as s:
            states = s.scalars(select(Delivery.state)).all()
        return all(state == DeliveryState.DONE for state in states)

    wait_until(all_done, 60, "every delivery to be done after the restart")
    stats = sim_stats(env)
    assert stats["cases"] == n, stats
    expected_keys = {f"{ref}.ombudsman-telecom.1" for ref in references}
    assert set(stats["keys"]) == expected_keys
    with hub.db.session(read_only=True) as s:
        rows = s.execute(
            select(Delivery.state, Delivery.lease_expires_at, Assignment.agency_reference).join(
                Assignment
            )
        ).all()
    assert all(state == DeliveryState.DONE and lease is None and ref for state, lease, ref in rows)
    assert len({ref for _, _, ref in rows}) == n  # one agency case per hub case
    hub.close()


def loket_run_env(tmp_path) -> tuple[dict[str, str], dict[str, int]]:
    """The environment of a `loket run` on free loopback ports, its state under tmp_path/var;
    and every port it will listen on, by name."""
    web_port = free_port()
    sim_ports = {agency_id: free_port() for agency_id in SIM_PROFILES}
    mail_ports = {"SMTP_PORT": free_port(), "IMAP_PORT": free_port()}  # every email agency
    sftp_port = free_port()  # every SFTP agency: one asyncssh server, one user each
    consumer_mail_port = free_port()  # the mail catcher for consumers' mail
    simulated = {
        agency_id: (mapping.extra.get("simulator") or {}).get("kind")
        for agency_id, mapping in load_all(AGENCIES_DIR, env={}).items()
    }
    env = {
        "LOKET_WEB_PORT": str(web_port),
        "LOKET_SMTP_PORT": str(consumer_mail_port),
        "LOKET_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        # the run's state (consumer mail, SFTP folders and keys) stays out of the checkout's
        # var/, where a later `make run` would meet this run's status files
        "LOKET_VAR_DIR": str(tmp_path / "var"),
        **{env_prefix(a) + "_URL": f"http://127.0.0.1:{p}/api" for a, p in sim_ports.items()},
        **{
            env_prefix(a) + f"_{k}": str(p)
            for a, kind in simulated.items()
            if kind == "email"
            for k, p in mail_ports.items()
        },
        **{env_prefix(a) + "_PORT": str(sftp_port) for a, k in simulated.items() if k == "sftp"},
    }
    sim_ports["favv"] = free_port()  # FAVV's SOAP simulator
    env["LOKET_FAVV_URL"] = f"http://127.0.0.1:{sim_ports['favv']}/meldpunt"
    # every other REST or SOAP agency with a simulator (ombudsman-rail, ombudsfin, ...,
    # fod-health): a free port each, on the path of its default URL
    for path in sorted((ROOT / "mappings" / "agencies").glob("*.yaml")):
        agency = load_agency(path, env={})
        url = agency.adapter_config.get("base_url") or agency.adapter_config.get("endpoint")
        name = env_prefix(agency.id) + "_URL"
        if agency.extra.get("simulator") and url and name not in env:
            sim_ports[agency.id] = free_port()
            moved = urlsplit(url)._replace(netloc=f"127.0.0.1:{sim_ports[agency.id]}")
            env[name] = urlunsplit(moved)
    ports = {
        "web": web_port,
        **{f"simulator {a}": p for a, p in sim_ports.items()},
        **{f"email {k}": p for k, p in mail_ports.items()},
        "sftp": sftp_port,
        "consumer mail": consumer_mail_port,
    }
    return env, ports


class LoketRunExited(Exception):
    """`loket run` ended before printing its banner; the message holds its output."""


def start_loket_run(tmp_path, env: dict[str, str], log_name: str = "run.log"):
    """`loket run` with `env`, its output in tmp_path/log_name; returns once its banner shows."""
    log = open(tmp_path / log_name, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "loket.cli", "run"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def banner() -> bool:
        if "Loket is running" in (tmp_path / log_name).read_text():
            return True
        if proc.poll() is not None:  # it gave up: say why rather than wait out the minute
            raise LoketRunExited(
                f"`loket run` exited with {proc.returncode} before its banner:\n"
                + (tmp_path / log_name).read_text()[-3000:]
            )
        return False

    try:
        try:
            wait_until(banner, 60, "the banner of `loket run`", raise_on=(LoketRunExited,))
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- its output ---\n{(tmp_path / log_name).read_text()[-3000:]}"
            ) from None
    except BaseException:
        stop_loket_run(proc, log)
        raise
    return proc, log


def stop_loket_run(proc: subprocess.Popen, log) -> int:
    """Ctrl-C, as a person would; the exit code."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    finally:
        log.close()


def test_loket_run_starts_everything_files_the_readme_example_and_stops_cleanly(tmp_path):
    env, ports = loket_run_env(tmp_path)
    web_port, consumer_mail_port = ports["web"], ports["consumer mail"]
    proc, log = start_loket_run(tmp_path, env)
    try:
        banner = (tmp_path / "run.log").read_text()
        web = f"http://127.0.0.1:{web_port}"
        assert f"{web}/" in banner and "contracts/examples/case.json" in banner
        assert f"front desk      {web}/" in banner
        assert f"consumer mail   smtp://127.0.0.1:{consumer_mail_port}" in banner
        assert requests.get(f"{web}/fr/", timeout=10).status_code == 200
        example = json.loads((ROOT / "contracts" / "examples" / "case.json").read_text())
        # one case per transport: the README example (REST), food (SOAP), energy (email),
        # a fake webshop report (SFTP); each must come back with the agency's own status
        cases = {
            "ombudsman-telecom": (example, "OMB-"),
            "favv": ({**example, "kind": "report", "domain": "food.poisoning"}, "FAVV-"),
            "ombudsman-energy": ({**example, "domain": "energy.billing"}, "OE/"),
            "economic-inspection": (
                {
                    **example,
                    "kind": "report",
                    "domain": "ecommerce.fake_webshop",
                    "trader": {**example["trader"], "website": "https://prijsbreker.example"},
                },
                "EI-",
            ),
        }
        filed = {}
        for agency_id, (body, _) in cases.items():
            answer = requests.post(f"{web}/api/v1/cases", json=body, timeout=10)
            assert answer.status_code == 201, answer.text
            filed[agency_id] = answer.json()
            assert [a["agency"] for a in filed[agency_id]["agencies"]] == [agency_id]

        def came_back(agency_id):
            def check():
                f = filed[agency_id]
                status = requests.get(
                    f["status_url"],
                    timeout=5,
                    headers={"Authorization": f"Bearer {f['tracking_token']}"},
                ).json()
                [line] = status["agencies"]
                agency_said = [e for e in status["timeline"] if e["actor"] == "agency"]
                return (
                    line["status"]
                    in (
                        "received",
                        "in_progress",
                        "waiting_for_consumer",  # the demo's telecom ombudsman asks for a bill
                        "resolved",
                        "closed_no_individual_follow_up",
                    )
                    and (line["agency_reference"] or "").startswith(cases[agency_id][1])
                    and agency_said
                )

            return check

        for agency_id in cases:
            wait_until(came_back(agency_id), 60, f"{agency_id}'s own status and reference")
    finally:
        code = stop_loket_run(proc, log)
    assert code == 0, (tmp_path / "run.log").read_text()[-2000:]
    assert "all processes stopped" in (tmp_path / "run.log").read_text()
    # the SFTP agency's folder and the consumer's mail are where LOKET_VAR_DIR said
    assert list((tmp_path / "var/sim/economic-inspection/data/inbox/archive").glob("LK-*.xml"))
    assert list((tmp_path / "var/mail/Maildir/new").iterdir())
    import socket

    for port in ports.values():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after Ctrl-C"


def test_loket_run_twice_on_one_var_directory_continues_where_it_stopped(tmp_path):
    """The demo stopped and started again: the agencies keep their cases and feeds under var/,
    so the README example filed in the second run gets a number of its own and moves on."""
    env, _ = loket_run_env(tmp_path)
    web = f"http://127.0.0.1:{env['LOKET_WEB_PORT']}"
    example = json.loads((ROOT / "contracts" / "examples" / "case.json").read_text())

    def file_and_wait_in_progress() -> str:
        answer = requests.post(f"{web}/api/v1/cases", json=example, timeout=10)
        assert answer.status_code == 201, answer.text
        filed = answer.json()

        def in_progress():
            status = requests.get(
                filed["status_url"],
                timeout=5,
                headers={"Authorization": f"Bearer {filed['tracking_token']}"},
            ).json()
            [line] = status["agencies"]
            return (
                line["status"] in ("in_progress", "waiting_for_consumer")
                and line["agency_reference"]
            )

        return wait_until(in_progress, 60, "the README example in progress")

    references = []
    for run in ("first.log", "second.log"):
        proc, log = start_loket_run(tmp_path, env, run)
        try:
            references.append(file_and_wait_in_progress())
        finally:
            code = stop_loket_run(proc, log)
        assert code == 0, (tmp_path / run).read_text()[-2000:]
    assert references[0] != references[1], references  # the agency did not number anew
    assert (tmp_path / "var" / "simulators" / "ombudsman-telecom.json").exists()
    db = Database(env["LOKET_DATABASE_URL"])
    try:
        with db.session(read_only=True) as s:
            alerts = s.scalars(
                select(InboundProblem.reason).where(InboundProblem.agency_id == "ombudsman-telecom")
            ).all()
    finally:
        db.dispose()
    assert alerts == []  # nothing went backwards: nothing to tell operators


def test_dead_letters_resent_by_two_operators_at_once_deliver_once(
    processes, database_url, monkeypatch
):
    """Real processes: a worker, a simulator refusing once, and two `loket dead-letters resend`."""
    env = {**start_simulators(processes, step_seconds=3600), "LOKET_DATABASE_URL": database_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    telecom = env[env_prefix("ombudsman-telecom") + "_URL"].removesuffix("/api")
    requests.post(
        f"{telecom}/_sim/faults",
        json={"mode": "error", "status": 422, "count": 1, "method": "POST"},
        timeout=5,
    ).raise_for_status()
    hub = Hub.from_settings(Settings(database_url=database_url))
    intake.file_case(
        hub.db,
        CaseInSchema().load(CASE),
        router=hub.router,
        directory=hub.directory,
        clock=hub.clock,
        random=hub.random,
    )
    processes.start("worker", ["-m", "loket.cli", "worker"], {**env, **WORKER_ENV})

    def dead():
        with hub.db.session(read_only=True) as s:
            return s.scalars(select(Delivery).where(Delivery.state == DeliveryState.DEAD)).first()

    letter = wait_until(dead, 30, "the refused delivery to be dead-lettered")
    assert sim_stats(env)["cases"] == 0
    resends = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loket.cli",
                "dead-letters",
                "resend",
                str(letter.id),
                "--operator",
                name,
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("anne", "bert")
    ]
    outputs = [p.communicate(timeout=60)[0] for p in resends]
    assert sorted(p.returncode for p in resends) == [0, 1], outputs
    assert sum(f"resent {letter.id}" in out for out in outputs) == 1
    assert sum("not a dead letter" in out for out in outputs) == 1

    def delivered():
        with hub.db.session(read_only=True) as s:
            return s.get(Delivery, letter.id).state == DeliveryState.DONE

    wait_until(delivered, 30, "the resent letter to be delivered")
    stats = sim_stats(env)
    assert stats["cases"] == 1 and stats["keys"] == [letter.idempotency_key]
    hub.close()


def test_a_case_the_first_agency_is_not_competent_for_ends_up_at_the_next_with_its_history(
    processes, database_url
):
    env = {**start_simulators(processes, step_seconds=3600), "LOKET_DATABASE_URL": database_url}
    web = start_web(processes, env)
    processes.start(
        "worker",
        ["-m", "loket.cli", "worker"],
        {**env, **WORKER_ENV, "LOKET_HOUSEKEEPING_SECONDS": "0.3"},
    )
    body = requests.post(f"{web}/api/v1/cases", json=CASE, timeout=10).json()
    auth = {"Authorization": f"Bearer {body['tracking_token']}"}

    def status():
        return requests.get(body["status_url"], headers=auth, timeout=5).json()

    first = wait_until(
        lambda: status()["agencies"][0]["agency_reference"], 30, "the telecom receipt"
    )
    telecom = env[env_prefix("ombudsman-telecom") + "_URL"].removesuffix("/api")
    requests.post(
        f"{telecom}/_sim/cases/{first}/status",
        timeout=5,
        json={"status": "NOT_COMPETENT", "note": "Geen telecomdienst."},
    ).raise_for_status()

    def at_the_mediation_service():
        s = status()
        lines = {line["agency"]: line for line in s["agencies"]}
        ok = lines.get("ombudsman-telecom", {}).get("status") == "referred" and lines.get(
            "consumer-mediation", {}
        ).get("agency_reference")
        return s if ok else None

    final = wait_until(
        at_the_mediation_service, 30, "the referral to the Consumer Mediation Service"
    )
    mediation = {line["agency"]: line for line in final["agencies"]}["consumer-mediation"]
    assert mediation["referred_from"] == "ombudsman-telecom"
    on_timeline = [e["agency"] for e in final["timeline"] if e["agency"]]
    assert "ombudsman-telecom" in on_timeline and "consumer-mediation" in on_timeline
    assert on_timeline.index("consumer-mediation") > on_timeline.index("ombudsman-telecom")
    base = env[env_prefix("consumer-mediation") + "_URL"].removesuffix("/api")
    [received] = requests.get(f"{base}/_sim/cases", timeout=5).json()
    assert "Geen telecomdienst." in received["payload"]["voorgeschiedenis"]
    assert received["external_reference"] == body["reference"]
