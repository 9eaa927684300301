"""The hub's HTTP API, version 1 (contracts/openapi.yaml)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, json, jsonify, request
from marshmallow import ValidationError
from sqlalchemy import select

from hub import intake, lifecycle, taxonomy
from hub import reference as references
from hub.models import Assignment, Case, StatusEvent
from hub.problems import Problem, field_error
from hub.schemas import CaseInSchema, field_for_path
from hub.services import Hub

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_case_schema = CaseInSchema()


def hub() -> Hub:
    return current_app.extensions["loket"]


def _flatten(messages: Any, path: list[str]) -> list[tuple[list[str], str]]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out.extend(_flatten(value, [*path, str(key)]))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(path, " ".join(messages))]
    if isinstance(messages, list):
        out = []
        for i, value in enumerate(messages):
            out.extend(_flatten(value, [*path, str(i)]))
        return out
    return [(path, str(messages))]


def validation_problem(exc: ValidationError) -> Problem:
    errors = []
    for path, detail in _flatten(exc.messages, []):
        field = field_for_path(_case_schema, path)
        if detail == "Unknown field.":
            parent = field_for_path(_case_schema, path[:-1]) if len(path) > 1 else None
            allowed = sorted(parent.schema.fields if parent is not None else _case_schema.fields)  # type: ignore[union-attr]
            fix = f"Remove it; the fields allowed here are: {', '.join(allowed)}."
        else:
            fix = (
                field.metadata.get("fix") if field is not None else None
            ) or "See contracts/case.schema.json."
        errors.append(field_error(path, detail, fix))
    errors.sort(key=lambda e: e["pointer"])
    names = ", ".join(e["field"] for e in errors)
    return Problem(
        422,
        "validation",
        f"{len(errors)} field(s) need fixing: {names}. Nothing was stored.",
        errors=errors,
    )


def _json_body() -> Any:
    mimetype = request.mimetype
    if mimetype != "application/json" and not (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        raise Problem(
            415,
            "unsupported-media-type",
            f"The body was sent as {mimetype or 'no content type'!r}; send JSON with "
            "Content-Type: application/json.",
        )
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Problem(
            400, "malformed-json", f"The body is not UTF-8 (byte {exc.start}). Send UTF-8 JSON."
        ) from None
    except ValueError as exc:
        detail = str(exc)
        raise Problem(
            400,
            "malformed-json",
            f"The body is not valid JSON: {detail}. Fix the JSON and send it again.",
        ) from None


@bp.post("/cases")
def file_case():
    body = _json_body()
    if not isinstance(body, dict):
        raise Problem(
            422,
            "validation",
            "The body must be a JSON object describing the case.",
            errors=[
                field_error(
                    [],
                    f"Got a JSON {type(body).__name__}.",
                    'Send an object such as {"kind": "complaint", ...}.',
                )
            ],
        )
    try:
        data = _case_schema.load(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    h = hub()
    lang = data["language"]
    try:
        filed = intake.file_case(
            h.db, data, router=h.router, directory=h.directory, clock=h.clock, random=h.random
        )
    except intake.NeedsAnswers as exc:
        raise Problem(
            422,
            "needs-answers",
            f"{len(exc.missing)} question(s) must be answered before the case can be sent. "
            "Nothing was stored.",
            errors=[
                field_error(
                    m.field.split("."),
                    f"Asked by {h.directory[m.agency_id].name(lang)}.",
                    m.question,
                )
                for m in exc.missing
            ],
        ) from None
    except intake.NotAdmissible as exc:
        raise Problem(
            422,
            "not-admissible",
            "The agencies for this problem cannot take the case yet; each refusal says what to "
            "do first. Nothing was stored.",
            extra={"refusals": [_refusal(r, h, lang) for r in exc.refusals]},
        ) from None
    status_url = f"{request.url_root.rstrip('/')}/api/v1/cases/{filed.reference}"
    response = jsonify(
        {
            "reference": filed.reference,
            "tracking_token": filed.token,
            "status": filed.status,
            "status_url": status_url,
            "agencies": [
                {
                    "agency": r.agency_id,
                    "name": h.directory[r.agency_id].name(data["language"]),
                    "why": r.reason,
                }
                for r in filed.recipients
            ],
            "not_sent": [_refusal(r, h, lang) for r in filed.not_sent],
            "note": "Keep the tracking token: it is shown only once. Send it as "
            "'Authorization: Bearer <token>' to read the status.",
        }
    )
    response.status_code = 201
    response.headers["Location"] = status_url
    response.headers["Cache-Control"] = "no-store"
    return response


def _refusal(r, h: Hub, lang: str) -> dict[str, str]:
    return {
        "agency": r.agency_id,
        "name": h.directory[r.agency_id].name(lang),
        "check": r.check,
        "reason": r.reason,
        "advice": r.advice,
    }


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


NOT_FOUND_DETAIL = (
    "No case with this reference opens with the given token. Check the reference "
    "and send the tracking token as 'Authorization: Bearer <token>'."
)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@bp.get("/cases/<reference>")
def case_status(reference: str):
    """A status page that is read far more often than cases change: three indexed Core queries
    on one connection (the case, its lines, its timeline), no ORM."""
    h = hub()
    normalised = references.normalise(reference)
    token = _bearer()
    body = None
    if normalised:
        cases, lines, events = Case.__table__, Assignment.__table__, StatusEvent.__table__
        with h.db.engine.connect() as conn:
            case = conn.execute(select(cases).where(cases.c.reference == normalised)).first()
            if case is not None and intake.token_matches(token, case.token_hash):
                body = _status_body(
                    case,
                    conn.execute(
                        select(lines).where(lines.c.case_id == case.id).order_by(lines.c.id)
                    ).all(),
                    conn.execute(
                        select(events).where(events.c.case_id == case.id).order_by(events.c.id)
                    ).all(),
                    h,
                )
            elif case is None:
                intake.token_matches(token, "0" * 64)  # same work as a wrong token
    else:
        intake.token_matches(token, "0" * 64)  # same work as a wrong token: no timing oracle
    if body is None:
        raise Problem(404, "not-found", NOT_FOUND_DETAIL)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _agency_of(assignments: dict[int, Any], assignment_id: int | None) -> str | None:
    a = assignments.get(assignment_id) if assignment_id else None
    return a.agency_id if a else None


def _status_body(case: Any, assignments: list[Any], events: list[Any], h: Hub) -> dict[str, Any]:
    """The consumer's view of a case, from rows (or ORM objects: the same attributes)."""
    now = h.clock.now()
    lang = case.language
    agencies_by_assignment: dict[int, Any] = {a.id: a for a in assignments}
    lines = []
    for a in assignments:
        mapping = h.directory.agencies.get(a.agency_id)
        past_due = lifecycle.is_past_due(a, now)
        lines.append(
            {
                "agency": a.agency_id,
                "name": mapping.name(lang) if mapping else a.agency_id,
                "status": lifecycle.consumer_sees(a.status),
                "agency_status": a.agency_status,
                "agency_reference": a.agency_reference,
                "acknowledge_by": _iso(a.acknowledge_due_at),
                "answer_by": _iso(a.answer_due_at),
                "past_due": past_due,
                "outcome": a.outcome,
                "why": a.reason,
                "clock_paused": a.paused_at is not None,
                "referred_from": _agency_of(agencies_by_assignment, a.referred_from_id),
            }
        )
    timeline = []
    for e in events:
        a = agencies_by_assignment.get(e.assignment_id) if e.assignment_id else None
        timeline.append(
            {
                "at": _iso(e.occurred_at),
                "actor": e.actor,
                "agency": a.agency_id if a else None,
                "from": lifecycle.consumer_sees(e.from_status) if e.from_status else None,
                "to": lifecycle.consumer_sees(e.to_status) if e.to_status else None,
                "message": e.message,
            }
        )
    open_dues = [
        a.answer_due_at
        for a in assignments
        if a.answer_due_at and not lifecycle.is_terminal(a.status)
    ]
    return {
        "reference": case.reference,
        "kind": case.kind,
        "domain": case.domain,
        "language": case.language,
        "status": case.status,
        "filed_at": _iso(case.created_at),
        "updated_at": _iso(case.updated_at),
        "expected_answer_by": _iso(max(open_dues)) if open_dues else None,
        "past_due": any(line["past_due"] for line in lines),
        "agencies": lines,
        "timeline": timeline,
    }


@bp.get("/domains")
def domains():
    lang = request.args.get("lang", "en")
    return jsonify({"domains": [d.public(lang) for d in taxonomy.subareas()]})


@bp.get("/prechecks")
def prechecks():
    """The questions the agencies for a situation ask before a case can be sent to them."""
    from hub.routing import Situation

    args = request.args
    kind, domain, lang = args.get("kind"), args.get("domain"), args.get("lang", "en")
    errors = []
    if kind not in ("question", "complaint", "report", "mediation"):
        errors.append(
            field_error(
                ["kind"], "Missing or unknown.", "One of: question, complaint, report, mediation."
            )
        )
    if domain not in taxonomy.domain_codes():
        errors.append(
            field_error(
                ["domain"],
                "Missing or unknown.",
                "A code from GET /api/v1/domains, e.g. telecom.billing.",
            )
        )
    if lang not in ("nl", "fr", "de", "en"):
        errors.append(field_error(["lang"], "Unknown language.", "One of: nl, fr, de, en."))
    if errors:
        raise Problem(422, "validation", "The query needs a valid kind and domain.", errors=errors)
    h = hub()
    situation = Situation(str(kind), str(domain), lang, args.get("trader_country"))
    return jsonify(
        {
            "questions": [
                {
                    "check": m.check,
                    "field": m.field,
                    "question": m.question,
                    "agency": m.agency_id,
                    "name": h.directory[m.agency_id].name(lang),
                }
                for m in h.router.questions(situation)
            ]
        }
    )
