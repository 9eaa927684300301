"""The REST agency simulator plays an agency's own system faithfully enough to test against."""

from datetime import UTC, datetime

import requests
from loket_simulators.rest_agency import AgencySystem, SimulatorServer, profiles

from hub.clock import FrozenClock


def server(clock, **kwargs):
    return SimulatorServer(
        AgencySystem(
            profiles()["ombudsman-telecom"], step_seconds=10, api_key="k", clock=clock.now, **kwargs
        )
    ).start()


def post(srv, key, body=None, api_key="k"):
    return requests.post(
        f"{srv.url}/cases",
        json=body or {"x": 1},
        headers={"X-API-Key": api_key, "Idempotency-Key": key},
        timeout=5,
    )


def test_own_ids_idempotency_and_status_flow_over_time():
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    srv = server(clock)
    try:
        first = post(srv, "k1")
        again = post(srv, "k1")
        other = post(srv, "k2")
        assert first.status_code == 201 and first.json()["id"] == "OMB-2026-000001"
        assert again.status_code == 200 and again.json()["id"] == "OMB-2026-000001"
        assert again.headers["Idempotent-Replay"] == "true"
        assert other.json()["id"] == "OMB-2026-000002"
        stats = requests.get(srv.url.replace("/api", "/_sim/stats"), timeout=5).json()
        assert (stats["cases"], stats["posts"], stats["replays"]) == (2, 3, 1)

        clock.advance(seconds=25)  # two steps for both cases
        feed = requests.get(
            f"{srv.url}/changes", params={"since": 0}, headers={"X-API-Key": "k"}, timeout=5
        ).json()
        statuses = [(c["case_id"][-1], c["status"]) for c in feed["changes"]]
        assert statuses == [
            ("1", "NEW"),
            ("2", "NEW"),
            ("1", "ASSIGNED"),
            ("2", "ASSIGNED"),
            ("1", "MEDIATING"),
            ("2", "MEDIATING"),
        ]
        assert feed["next"] == "6" and feed["has_more"] is False
        later = requests.get(
            f"{srv.url}/changes", params={"since": 6}, headers={"X-API-Key": "k"}, timeout=5
        ).json()
        assert later["changes"] == [] and later["next"] == "6"
    finally:
        srv.stop()


def test_it_refuses_a_wrong_key_and_a_payload_outside_its_schema():
    clock = FrozenClock()
    schema = {
        "type": "object",
        "required": ["externalReference"],
        "properties": {"externalReference": {"type": "string"}},
    }
    srv = server(clock, schema=schema)
    try:
        assert post(srv, "k1", api_key="nope").status_code == 401
        refused = post(srv, "k1", body={"other": 1})
        assert refused.status_code == 422 and "externalReference" in str(refused.json()["problems"])
        assert post(srv, "k1", body={"externalReference": "LK"}).status_code == 201
    finally:
        srv.stop()


def test_injected_faults_last_for_the_asked_number_of_requests():
    srv = server(FrozenClock())
    try:
        requests.post(
            srv.url.replace("/api", "/_sim/faults"),
            json={"mode": "error", "status": 503, "count": 2},
            timeout=5,
        )
        assert [post(srv, f"k{i}").status_code for i in range(3)] == [503, 503, 201]
        requests.post(
            srv.url.replace("/api", "/_sim/faults"), json={"mode": "garbage", "count": 1}, timeout=5
        )
        garbage = post(srv, "k9")
        assert garbage.status_code == 200 and garbage.text.startswith("<html>")
    finally:
        srv.stop()
