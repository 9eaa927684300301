"""The hub's HTTP API, version 1 (contracts/openapi.yaml)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, json, jsonify, request
from marshmallow import ValidationError

from hub import caseview, intake, ratelimits, taxonomy
from hub.problems import Problem, field_error
from hub.schemas import CaseInSchema, field_for_path
from hub.services import Hub

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_case_schema = CaseInSchema()


def hub() -> Hub:
    return current_app.extensions["loket"]


def _schema(h: Hub) -> CaseInSchema:
    """The case schema of this app, judging dates by its hub's clock (built once per app)."""
    schema = current_app.extensions.get("loket.case_schema")
    if schema is None:
        schema = current_app.extensions["loket.case_schema"] = CaseInSchema(clock=h.clock)
    return schema


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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB]")


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
        body = json.loads(raw.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(raw):
            # `\ud800` alone decodes to half a character no database or agency can store.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        return body
    except UnicodeEncodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            f"The body holds a lone UTF-16 surrogate (\\u{ord(exc.object[exc.start]):04x}), which "
            "is half of a character. Escape characters outside the BMP as a pair, or send them "
            "as UTF-8.",
        ) from None
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


@bp.errorhandler(ratelimits.Exhausted)
def _exhausted(exc: ratelimits.Exhausted):
    response = Problem(
        429,
        "too-many-requests",
        f"Too many requests from your address; try again in {exc.retry_after} seconds. "
        "Nothing was stored.",
    ).response()
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.post("/cases")
def file_case():
    ratelimits.counters().check(
        current_app.config[ratelimits.API_FILING_LIMIT], "api-filing", ratelimits.client_address()
    )
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
    h = hub()
    try:
        data = _schema(h).load(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    lang = data["language"]
    try:
        filed = intake.file_case(
            h.db,
            data,
            router=h.router,
            directory=h.directory,
            clock=h.clock,
            random=h.random,
            confirm=ratelimits.confirmation_allowed,
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
                    f"Asked by {h.directory[m.agency_id].name(lang)}."
                    if m.agency_id
                    else "Decides which bodies are competent.",
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
    ratelimits.counters().hit(
        current_app.config[ratelimits.API_FILING_LIMIT], "api-filing", ratelimits.client_address()
    )
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
                    "basis": r.basis,
                    **_referral(h.directory[r.agency_id], lang),
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


def _referral(mapping, lang: str) -> dict[str, Any]:
    """For a referral body (not connected): what it does and how to reach it; nothing was sent
    to it, the consumer goes there."""
    if mapping.connected:
        return {}
    r = mapping.referral
    out = {
        "referral": {
            "what": (r.get("what") or {}).get(lang) or (r.get("what") or {}).get("en", ""),
            "url": r.get("url"),
        }
    }
    for key in ("form_url", "email", "phone"):
        if r.get(key):
            out["referral"][key] = r[key]
    return out


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
    """The token holder's view of the case (hub/caseview.py), as JSON. A wrong token counts
    against the address like a wrong code on the front desk (hub/ratelimits.py)."""
    token = _bearer()
    if token:
        ratelimits.guard_codes()
    view = caseview.for_consumer(hub(), reference, token)
    if view is None:
        if token:
            ratelimits.wrong_code(reference)
        raise Problem(404, "not-found", NOT_FOUND_DETAIL)
    response = jsonify(_status_body(view))
    response.headers["Cache-Control"] = "no-store"
    return response


def _status_body(view: caseview.CaseView) -> dict[str, Any]:
    """The CaseStatus of contracts/openapi.yaml."""
    lang = view.language
    return {
        "reference": view.reference,
        "kind": view.kind,
        "domain": view.domain,
        "language": lang,
        "status": view.status,
        "filed_at": _iso(view.created_at),
        "updated_at": _iso(view.updated_at),
        "expected_answer_by": _iso(view.expected_answer_by),
        "past_due": view.past_due,
        "reply_by": _iso(view.reply_by),
        "agencies": [
            {
                "agency": line.agency_id,
                "name": line.name(lang),
                "status": line.consumer_status,
                "agency_status": line.agency_status,
                "agency_reference": line.agency_reference,
                "agency_reference_provisional": line.reference_provisional,
                "acknowledge_by": _iso(line.acknowledge_by),
                "answer_by": _iso(line.answer_by),
                "past_due": line.past_due,
                "outcome": line.outcome,
                "why": line.reason,
                "basis": line.basis,
                **(_referral(hub().directory[line.agency_id], lang) if line.referral else {}),
                "clock_paused": line.clock_paused,
                "referred_from": line.referred_from,
                "answers_consumer": line.answers_consumer,
                "answer_sent": line.answered and not line.terminal,
                "reply_by": _iso(line.reply_by),
            }
            for line in view.lines
        ],
        "timeline": [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "agency": e.agency_id,
                "from": e.consumer_from,
                "to": e.consumer_to,
                "message": e.message,
            }
            for e in view.timeline
        ],
    }


@bp.get("/domains")
def domains():
    lang = request.args.get("lang", "en")
    if lang not in ("nl", "fr", "de", "en"):
        raise Problem(
            422,
            "validation",
            "The query names a language the hub does not speak.",
            errors=[
                field_error(["lang"], f"Unknown language {lang!r}.", "One of: nl, fr, de, en.")
            ],
        )
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
    situation = Situation(
        str(kind),
        str(domain),
        lang,
        args.get("trader_country"),
        postcode=args.get("postcode") or None,
    )
    return jsonify(
        {
            "questions": [
                {
                    "check": m.check,
                    "field": m.field,
                    "question": m.question,
                    "agency": m.agency_id,
                    "name": h.directory[m.agency_id].name(lang) if m.agency_id else "",
                }
                for m in h.router.questions(situation)
            ]
        }
    )
