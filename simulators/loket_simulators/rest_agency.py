"""A REST agency simulator: a real HTTP server that behaves like an agency's own case system.

It has its own case ids (`OMB-2026-000042`), its own status codes, moves every case through its
flow one step each `step_seconds`, offers a changes-since feed, de-duplicates on the
`Idempotency-Key` header, and can validate what it receives against the agency's JSON Schema
(contracts/agencies/<id>/case.schema.json). `/_sim/...` lets tests count what arrived and inject
faults (errors, timeouts, garbage).

Each agency's profile (ids, codes, flow, the header its API key travels in) is data:
contracts/agencies/<id>/simulator.yaml with `kind: rest`. One process can play many agencies,
each on its own port with its own profile, API key and JSON Schema: `loket run` starts all REST
agencies that way (`launch_group`).

    loket-simulator rest --profile ombudsman-telecom --port 8101
    loket-simulator rest \
        --agency '{"id": "ombudsfin", "profile": "ombudsfin", "port": 8111, "api_key": "k"}' \
        --agency '{"id": "fsma", "profile": "fsma", "port": 8114, "schema": "contracts/...json"}'
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

from loket_simulators import WsgiSimulatorServer, serve_until_interrupted, start_all
from loket_simulators.profiles import Reader, load, named


@dataclass(frozen=True)
class Profile:
    """How one agency's system looks from outside."""

    name: str
    id_format: str  # formatted with n (sequence), year, yy
    flow: tuple[tuple[str, str], ...]  # (status code, note), first is the status on arrival
    prefix: str = "/api"
    key_header: str = "X-API-Key"  # the header its API key travels in
    # With ask_info, the case stops at this status after the second step until the consumer
    # replies through the hub (POST .../messages), then goes on.
    info: tuple[str, str] | None = None

    def with_info(self) -> Profile:
        if self.info is None:
            return self
        return replace(self, flow=(*self.flow[:2], self.info, *self.flow[2:]))


def read_profile(data: Reader) -> Profile:
    data.known({"name", "case_number", "statuses", "information_request", "path", "api_key_header"})
    return Profile(
        name=data.text("name"),
        id_format=data.case_number(),
        flow=data.statuses(),
        prefix=data.text("path", "/api"),
        key_header=data.text("api_key_header", "X-API-Key"),
        info=data.status("information_request"),
    )


@cache
def profiles() -> dict[str, Profile]:
    """Every REST agency's profile by agency id, from contracts/agencies/<id>/simulator.yaml."""
    return load("rest", read_profile)


def profile(name: str) -> Profile:
    return named("REST", profiles(), name)


@dataclass
class SimCase:
    id: str
    idempotency_key: str | None
    external_reference: str | None
    payload: dict[str, Any]
    created: datetime
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    # steps run from this moment and this step: the arrival, or the consumer's reply
    anchor_at: datetime | None = None
    anchor_step: int = 0


def _case_to(case: SimCase) -> dict[str, Any]:
    data = asdict(case)
    data["created"] = case.created.isoformat()
    data["anchor_at"] = case.anchor_at.isoformat() if case.anchor_at else None
    return data


def _case_from(data: dict[str, Any]) -> SimCase:
    anchor = data.get("anchor_at")
    return SimCase(
        **{
            **data,
            "created": datetime.fromisoformat(data["created"]),
            "anchor_at": datetime.fromisoformat(anchor) if anchor else None,
        }
    )


@dataclass
class Faults:
    mode: str = "none"  # none | error | timeout | garbage
    status: int = 503
    remaining: int | None = None  # number of requests affected; None = until cleared
    until: float | None = None  # monotonic deadline
    delay: float = 0.0  # timeout mode: how long to stall
    method: str | None = None  # only requests with this method (e.g. POST) are affected

    def active(self, method: str = "GET") -> bool:
        if self.mode == "none":
            return False
        if self.method and method != self.method:
            return False
        if self.until is not None and time.monotonic() > self.until:
            self.mode = "none"
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                self.mode = "none"
                return False
            self.remaining -= 1
        return True


class AgencySystem:
    """The simulated agency's state. Thread-safe; time comes from `clock` so tests are exact."""

    def __init__(
        self,
        profile: Profile,
        *,
        step_seconds: float = 5.0,
        api_key: str | None = None,
        schema: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        latency: float = 0.0,
    ):
        self.profile = profile
        self.step = timedelta(seconds=step_seconds)
        self.api_key = api_key
        self.schema = schema
        self.clock = clock
        self.latency = latency
        self.lock = threading.RLock()
        self.cases: dict[str, SimCase] = {}
        self.by_key: dict[str, str] = {}
        self.changes: list[dict[str, Any]] = []
        self.posts = 0  # POSTs that reached the case handler
        self.post_requests = 0  # every POST, including those answered by an injected fault
        self.in_flight = 0  # requests being served right now, and the most there ever were
        self.max_in_flight = 0
        self.replays = 0
        self.rejected = 0
        self.faults = Faults()
        self.state_file: Path | None = None
        self._dirty = False
        self._validator = None
        if schema is not None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(schema)

    # ---------------------------------------------------------------------------- kept state

    def keep_state_in(self, path: Path) -> None:
        """Keep the cases, their statuses and the feed in `path` (JSON), loading what is there:
        a restarted simulator continues where it stopped (case numbers, statuses, feed sequence).
        Every change is written atomically (a temporary file renamed over the old one)."""
        with self.lock:
            self.state_file = path
            if path.exists():
                data = json.loads(path.read_text())
                self.cases = {c["id"]: _case_from(c) for c in data.get("cases", [])}
                self.by_key = dict(data.get("by_key", {}))
                self.changes = list(data.get("changes", []))

    def reset(self) -> None:
        """Forget every case and the feed, as an agency restoring an empty backup would."""
        with self.lock:
            self.cases, self.by_key, self.changes = {}, {}, []
            self._save()

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {
            "cases": [_case_to(c) for c in self.cases.values()],
            "by_key": self.by_key,
            "changes": self.changes,
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _new_id(self) -> str:
        now = self.clock()
        n = len(self.cases) + 1
        return self.profile.id_format.format(n=n, year=now.year, yy=now.strftime("%y"))

    def _record(self, case: SimCase, at: datetime) -> None:
        code, note = self.profile.flow[case.step]
        change = {
            "seq": len(self.changes) + 1,
            "case_id": case.id,
            "external_reference": case.external_reference,
            "status": code,
            "at": at.isoformat(),
            "note": note,
        }
        self.changes.append(change)
        case.history.append(change)
        self._dirty = True

    def _flush(self) -> None:
        """Write the state if a change was recorded since the last write (under the lock)."""
        if self._dirty:
            self._dirty = False
            self._save()

    def advance(self) -> None:
        """Move every case through as many steps as the clock allows, recording in time order."""
        now = self.clock()
        due: list[tuple[datetime, str, int]] = []
        waits = {self.profile.info[0]} if self.profile.info else set()
        for case in self.cases.values():
            at_info = self.profile.flow[min(case.step, len(self.profile.flow) - 1)][0] in waits
            if at_info and case.anchor_step != case.step:
                continue  # waiting for the consumer's reply (a reply re-anchors at this step)
            anchor = case.anchor_at or case.created
            for step in range(case.step + 1, len(self.profile.flow)):
                at = anchor + self.step * (step - case.anchor_step)
                if at > now:
                    break
                due.append((at, case.id, step))
                if self.profile.flow[step][0] in waits:
                    break
        for at, case_id, step in sorted(due):
            case = self.cases[case_id]
            case.step = step
            self._record(case, at)
        self._flush()

    def step_case(self, case_id: str) -> str:
        """Move one case to its next status now (tests, demos); returns the new status code."""
        with self.lock:
            self.advance()
            case = self.cases[case_id]
            if case.step + 1 >= len(self.profile.flow):
                raise ValueError(f"case {case_id} is already at the end of its flow")
            case.step += 1
            self._record(case, self.clock())
            self._flush()
            return self.profile.flow[case.step][0]

    def add_message(
        self, case_id: str, key: str | None, message: dict[str, Any]
    ) -> tuple[int, bool]:
        """The consumer's reply, through the hub. A case waiting for it goes on from now."""
        with self.lock:
            self.advance()
            case = self.cases[case_id]
            for i, existing in enumerate(case.messages):
                if key and existing.get("key") == key:
                    return i + 1, True
            case.messages.append({**message, "key": key, "at": self.clock().isoformat()})
            if self.profile.info and self.profile.flow[case.step][0] == self.profile.info[0]:
                case.anchor_at, case.anchor_step = self.clock(), case.step
            self._save()
            return len(case.messages), False

    def set_status(self, case_id: str, code: str, note: str = "") -> None:
        """The agency's staff put a case in any status now (tests, demos): e.g. NOT_COMPETENT."""
        with self.lock:
            self.advance()
            case = self.cases[case_id]
            case.step = len(self.profile.flow)  # off the scripted flow from now on
            change = {
                "seq": len(self.changes) + 1,
                "case_id": case.id,
                "external_reference": case.external_reference,
                "status": code,
                "at": self.clock().isoformat(),
                "note": note,
            }
            self.changes.append(change)
            case.history.append(change)
            self._save()

    def submit(self, payload: Any, key: str | None, external: str | None) -> tuple[SimCase, bool]:
        with self.lock:
            self.posts += 1
            if key and key in self.by_key:
                self.replays += 1
                return self.cases[self.by_key[key]], True
            case = SimCase(self._new_id(), key, external, payload, self.clock())
            self.cases[case.id] = case
            if key:
                self.by_key[key] = case.id
            self._record(case, case.created)
            self._flush()
            return case, False

    def validate(self, payload: Any) -> list[str]:
        if self._validator is None:
            return []
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self._validator.iter_errors(payload)
        ]

    def changes_since(self, since: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        with self.lock:
            self.advance()
            page = [c for c in self.changes if c["seq"] > since][:limit]
            more = bool(page) and page[-1]["seq"] < len(self.changes)
            return page, more

    def feed_position(self, since: int) -> int:
        """The cursor an empty page answers with: `since`, or the feed's own head when the
        caller is ahead of it (the feed started over, as after a restore from a backup)."""
        with self.lock:
            return min(since, len(self.changes))

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "cases": len(self.cases),
                "posts": self.posts,
                "post_requests": self.post_requests,
                "replays": self.replays,
                "rejected": self.rejected,
                "changes": len(self.changes),
                "keys": sorted(self.by_key),
                "external_references": sorted(
                    c.external_reference for c in self.cases.values() if c.external_reference
                ),
            }


def create_app(system: AgencySystem) -> Flask:
    app = Flask(f"simulator-{system.profile.name}")
    p = system.profile.prefix

    def error(status: int, message: str) -> Response:
        resp = jsonify({"error": message})
        resp.status_code = status
        return resp

    @app.before_request
    def _gate():
        if request.path.startswith("/_sim/"):
            return None
        with system.lock:
            system.in_flight += 1
            system.max_in_flight = max(system.max_in_flight, system.in_flight)
        if system.latency:
            time.sleep(system.latency)
        with system.lock:
            system.in_flight -= 1
            if request.method == "POST":
                system.post_requests += 1
            active = system.faults.active(request.method)
            mode, status, delay = system.faults.mode, system.faults.status, system.faults.delay
        if active:
            if mode == "timeout":
                time.sleep(delay)
                return error(504, "gateway timeout (simulated)")
            if mode == "garbage":
                return Response(
                    "<html>Service temporarily unavailable</html>", 200, mimetype="application/json"
                )
            return error(status, "service unavailable (simulated)")
        if system.api_key and request.headers.get(system.profile.key_header) != system.api_key:
            return error(401, "missing or wrong API key")
        return None

    @app.post(f"{p}/cases")
    def submit():
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            with system.lock:
                system.rejected += 1
            return error(400, "body must be a JSON object")
        problems = system.validate(payload)
        if problems:
            with system.lock:
                system.rejected += 1
            resp = jsonify(
                {"error": "payload does not match our case schema", "problems": problems}
            )
            resp.status_code = 422
            return resp
        case, replay = system.submit(
            payload,
            request.headers.get("Idempotency-Key"),
            request.headers.get("X-Loket-Reference"),
        )
        body = {
            "id": case.id,
            "status": case.history[0]["status"],
            "received_at": case.created.isoformat(),
        }
        resp = jsonify(body)
        resp.status_code = 200 if replay else 201
        if replay:
            resp.headers["Idempotent-Replay"] = "true"
        return resp

    @app.get(f"{p}/cases/<path:case_id>")
    def show(case_id: str):
        with system.lock:
            system.advance()
            case = system.cases.get(case_id)
            if case is None:
                return error(404, "no such case")
            last = case.history[-1]
            return jsonify(
                {
                    "id": case.id,
                    "status": last["status"],
                    "updated_at": last["at"],
                    "note": last["note"],
                    "history": case.history,
                }
            )

    @app.post(f"{p}/cases/<path:case_id>/messages")
    def message(case_id: str):
        body = request.get_json(silent=True)
        if case_id not in system.cases:
            return error(404, "no such case")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return error(400, "a message needs a text")
        n, replay = system.add_message(
            case_id,
            request.headers.get("Idempotency-Key"),
            {
                "text": body["text"],
                "attachments": [
                    {
                        "filename": a.get("filename"),
                        "content_type": a.get("content_type"),
                        "size": len(a.get("data") or "") * 3 // 4,
                    }
                    for a in body.get("attachments") or []
                ],
            },
        )
        resp = jsonify({"id": f"{case_id}/m{n}"})
        resp.status_code = 200 if replay else 201
        if replay:
            resp.headers["Idempotent-Replay"] = "true"
        return resp

    @app.get(f"{p}/changes")
    def changes():
        try:
            since = int(request.args.get("since", "0"))
            limit = min(int(request.args.get("limit", "200")), 1000)
        except ValueError:
            return error(400, "since and limit must be integers")
        page, more = system.changes_since(since, limit)
        # An empty page answers with the feed's own position: a caller ahead of it (our feed
        # started over) learns that, as from a real agency system restored from a backup.
        nxt = page[-1]["seq"] if page else system.feed_position(since)
        return jsonify({"changes": page, "next": str(nxt), "has_more": more})

    @app.get(f"{p}/health")
    def health():
        return jsonify({"status": "ok", "system": system.profile.name})

    @app.get("/_sim/stats")
    def stats():
        return jsonify(system.stats())

    @app.get("/_sim/cases")
    def all_cases():
        with system.lock:
            return jsonify(
                [
                    {
                        "id": c.id,
                        "payload": c.payload,
                        "key": c.idempotency_key,
                        "external_reference": c.external_reference,
                        "messages": c.messages,
                    }
                    for c in system.cases.values()
                ]
            )

    @app.post("/_sim/cases/<path:case_id>/status")
    def force_status(case_id: str):
        spec = request.get_json(force=True) or {}
        if case_id not in system.cases:
            return error(404, "no such case")
        system.set_status(case_id, str(spec["status"]), str(spec.get("note", "")))
        return jsonify({"ok": True})

    @app.post("/_sim/faults")
    def faults():
        spec = request.get_json(force=True) or {}
        with system.lock:
            system.faults = Faults(
                mode=spec.get("mode", "none"),
                status=int(spec.get("status", 503)),
                remaining=spec.get("count"),
                method=spec.get("method"),
                until=time.monotonic() + float(spec["seconds"]) if spec.get("seconds") else None,
                delay=float(spec.get("delay", 30.0)),
            )
        return jsonify({"ok": True})

    return app


class SimulatorServer(WsgiSimulatorServer):
    """The simulator on a real socket in a background thread (used by `loket run` and tests)."""

    def __init__(self, system: AgencySystem, host: str = "127.0.0.1", port: int = 0):
        self.system = system
        super().__init__(create_app(system), system.profile.prefix, host, port)


def launch_group(agencies, root: Path):
    """For `loket run`: ONE process plays every REST agency, each on the port of its own
    base_url with its own profile, API key and JSON Schema (so twenty agencies are one process)."""
    from loket_simulators import group_launch

    def extra(agency) -> dict[str, Any]:
        contract = agency.spec.get("contract")
        return {
            "profile": agency.spec.get("profile") or agency.agency_id,
            "api_key": agency.adapter_config.get("api_key"),
            "schema": str(root / contract) if contract else None,
            "ask_info": bool(agency.spec.get("ask_info")),
        }

    return group_launch("rest", "REST", agencies, "base_url", extra)


def agency_spec(text: str) -> dict[str, Any]:
    """One `--agency` option: a JSON object with id, profile, port and optionally host,
    step_seconds, api_key, schema (a path to the agency's JSON Schema) and ask_info."""
    from loket_simulators import parse_agency_spec

    return parse_agency_spec(text, profile)


def serve_group(specs: list[dict[str, Any]], latency: float = 0.0) -> list[SimulatorServer]:
    """Every agency of `specs` on its own port, in this process. All sockets are bound before
    any is served, so a port that answers means every agency of the group is reachable."""

    def build(spec: dict[str, Any]) -> SimulatorServer:
        schema_path = spec.get("schema")
        played = profile(spec["profile"])
        system = AgencySystem(
            played.with_info() if spec.get("ask_info") else played,
            step_seconds=float(spec.get("step_seconds", 5)),
            api_key=spec.get("api_key"),
            schema=json.loads(Path(schema_path).read_text()) if schema_path else None,
            latency=latency,
        )
        if spec.get("state"):
            system.keep_state_in(Path(spec["state"]))
        return SimulatorServer(system, spec.get("host", "127.0.0.1"), int(spec["port"]))

    return start_all(build, specs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loket-simulator rest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", help="the agency to play (its id: ombudsman-telecom, ...)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between status moves")
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--schema", type=Path, default=None, help="JSON Schema the payload must match"
    )
    parser.add_argument(
        "--agency",
        type=agency_spec,
        action="append",
        default=[],
        metavar="JSON",
        help="play this agency (repeatable; with or instead of --profile): "
        '{"id", "profile", "port", "host", "step_seconds", "api_key", "schema", "ask_info", '
        '"state"} (state: a JSON file keeping the agency\'s cases across restarts)',
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument(
        "--ask-info",
        action="store_true",
        help="stop each case at the profile's information request until the consumer replies",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.profile and not args.agency:
        parser.error("give --profile (one agency) or --agency (one or more)")
    specs = list(args.agency)
    if args.profile:  # one agency from the options: a group of one
        try:
            profile(args.profile)
        except ValueError as exc:
            parser.error(str(exc))
        specs.append(
            {
                "id": args.profile,
                "profile": args.profile,
                "host": args.host,
                "port": args.port,
                "step_seconds": args.step_seconds,
                "api_key": args.api_key,
                "schema": str(args.schema) if args.schema else None,
                "ask_info": args.ask_info,
            }
        )
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serve_until_interrupted(
        serve_group(specs, args.latency),
        lambda spec, sim: f"REST agency simulator {spec['id']!r} on {sim.url}",
        specs,
    )
