"""The agency API (`/api/v1/agency/...`, contracts/openapi.yaml, tag "Agency API").

For a body that wants to pull its cases and push its statuses itself instead of being polled.
OAuth 2.0 client credentials (RFC 6749 §4.4) with Authlib: `POST /api/v1/agency/oauth/token`
gives a short-lived bearer token to the agency's client (hub/agencyclients.py); every other call
carries it and sees only that agency's assignments. Another agency's case answers 404 after the
same lookup as an unknown one; a forged, expired or revoked token answers 401. Every error is an
RFC 9457 problem naming the field and the fix (the token endpoint's also carry OAuth's `error`).

The actions are hub/agencyside.py's, the same the hosted workspace uses: they go through the
inbound path of polled updates (idempotent by `update_id`, ordered, on the evidence log).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Blueprint, Flask, Response, current_app, g, json, jsonify, request

from hub import agencyclients, agencyside, ratelimits
from hub import attachments as files
from hub.problems import MEDIA_TYPE, Problem, field_error
from hub.services import Hub

PREFIX = "/api/v1/agency"
bp = Blueprint("agencyapi", __name__, url_prefix=PREFIX)
SCOPE = "agency"


def hub() -> Hub:
    return current_app.extensions["loket"]


# ------------------------------------------------------------------------------ OAuth 2.0 server


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _Tokens(BearerTokenValidator):
    def authenticate_token(self, token_string: str):
        return agencyclients.token(hub(), token_string)


class _Protector(ResourceProtector):
    def raise_error_response(self, error):
        """401 as a problem (RFC 9457) with OAuth's error code and the WWW-Authenticate
        header RFC 6750 asks for."""
        detail = {
            "missing_authorization": "No bearer token: send Authorization: Bearer <token>.",
            "unsupported_token_type": "Send the token as Authorization: Bearer <token>.",
            "invalid_token": "The token is unknown, expired or revoked: get a new one at "
            f"{PREFIX}/oauth/token.",
        }.get(error.error, error.description or error.error)
        raise Problem(
            401,
            "unauthorized",
            detail,
            errors=[
                field_error(["Authorization"], detail, "Get a token with your client credentials.")
            ],
            extra={"error": error.error},
            headers={"WWW-Authenticate": f'Bearer realm="loket-agency", error="{error.error}"'},
        )


require_token = _Protector()
require_token.register_token_validator(_Tokens())


def init_app(app: Flask) -> None:
    """The token endpoint's server (one per app) and the blueprint."""
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN", {"client_credentials": agencyclients.TOKEN_SECONDS}
    )
    server = AuthorizationServer()
    server.init_app(
        app,
        query_client=lambda client_id: agencyclients.client(app.extensions["loket"], client_id),
        save_token=lambda token, req: agencyclients.save_token(
            app.extensions["loket"], token, req.client
        ),
    )
    server.register_grant(_ClientCredentials)
    app.extensions["loket.oauth"] = server
    app.register_blueprint(bp)


@bp.errorhandler(ratelimits.Exhausted)
def _exhausted(exc: ratelimits.Exhausted):
    if request.endpoint == "agencyapi.issue_token":
        detail = (
            f"Too many token requests from your address; try again in {exc.retry_after} "
            "seconds. A token lasts five minutes: keep it and use it for every call until it "
            "expires, instead of asking for one per call."
        )
    else:
        detail = (
            f"Too many calls from your client; try again in {exc.retry_after} seconds. Nothing "
            "was changed by this call. Page through lists with `cursor` rather than asking again."
        )
    return Problem(
        429, "too-many-requests", detail, headers={"Retry-After": str(exc.retry_after)}
    ).response()


@bp.post("/oauth/token")
def issue_token():
    ratelimits.counters().take(
        current_app.config[ratelimits.AGENCY_TOKEN_LIMIT],
        "agency-token",
        ratelimits.client_address(),
    )
    response = current_app.extensions["loket.oauth"].create_token_response()
    response.headers["Cache-Control"] = "no-store"
    if response.status_code < 400:
        return response
    body = json.loads(response.get_data(as_text=True) or "{}")
    code = body.get("error", "invalid_request")
    field = {"invalid_client": "client_id", "unsupported_grant_type": "grant_type"}.get(
        code, "grant_type" if "grant_type" in (body.get("error_description") or "") else "body"
    )
    fix = {
        "invalid_client": "Send the client id and secret `loket agency-client create` printed "
        "(HTTP Basic, or client_id and client_secret in the form).",
        "unsupported_grant_type": "Send grant_type=client_credentials.",
    }.get(code, "Send grant_type=client_credentials as application/x-www-form-urlencoded.")
    detail = body.get("error_description") or code
    problem = Problem(
        401 if code == "invalid_client" else response.status_code,
        "unauthorized" if code == "invalid_client" else "validation",
        detail,
        errors=[field_error([field], detail, fix)],
        extra={"error": code, "error_description": detail},
        headers={k: v for k, v in response.headers.items() if k == "WWW-Authenticate"},
    )
    out = problem.response()
    out.headers["Cache-Control"] = "no-store"
    return out


@bp.before_request
def _authenticate():
    if request.endpoint == "agencyapi.issue_token":
        return None
    try:
        token = require_token.acquire_token([SCOPE])
    except OAuth2Error as error:
        require_token.raise_error_response(error)
    # per client, after the token is checked: a forged token cannot use up an agency's calls
    ratelimits.counters().take(
        current_app.config[ratelimits.AGENCY_API_LIMIT], "agency-api", token.client_id
    )
    g.agency_actor = agencyside.AgencyActor(token.agency_id, f"api:{token.client_id}")
    return None


def _actor() -> agencyside.AgencyActor:
    return g.agency_actor


# -------------------------------------------------------------------------------------- helpers


def _invalid(exc: agencyside.Invalid) -> Problem:
    return Problem(
        422,
        "validation",
        f"{exc.field}: {exc.detail} Nothing was changed.",
        errors=[field_error(exc.field.split("."), exc.detail, exc.fix)],
    )


def _not_found(reference: str) -> Problem:
    return Problem(
        404,
        "not-found",
        f"Your agency has no case {reference!r}. List yours at {PREFIX}/assignments.",
    )


def _body(allowed: dict[str, bool]) -> dict[str, Any]:
    """The JSON object of a request, its fields checked: `allowed` maps each field to whether
    it is required. Unknown fields are refused by name."""
    if not request.is_json:
        raise Problem(
            415, "unsupported-media-type", "Send the body as JSON (Content-Type: application/json)."
        )
    try:
        body = json.loads(request.get_data(as_text=True) or "null")
    except ValueError as exc:
        raise Problem(400, "malformed-json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(
            422,
            "validation",
            "The body must be a JSON object.",
            errors=[field_error([], "Not an object.", "Send {...} with the fields documented.")],
        )
    errors = []
    for name in sorted(body):
        if name not in allowed:
            errors.append(
                field_error([name], "Unknown field.", f"Remove it; allowed: {', '.join(allowed)}.")
            )
        elif body[name] is not None and not isinstance(body[name], str):
            errors.append(field_error([name], "Not a string.", "Send it as a JSON string."))
    for name, required in allowed.items():
        if required and not (isinstance(body.get(name), str) and body[name].strip()):
            errors.append(field_error([name], "Missing.", f"Give `{name}`."))
    if errors:
        raise Problem(
            422,
            "validation",
            f"{len(errors)} field(s) need fixing: "
            + ", ".join(e["field"] for e in errors)
            + ". Nothing was changed.",
            errors=errors,
        )
    return body


def _when(value: str | None, name: str = "occurred_at") -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Problem(
            422,
            "validation",
            f"{name} is not a time with a zone.",
            errors=[
                field_error(
                    [name], "Not an ISO 8601 time with a zone.", "Write e.g. 2026-12-04T10:00:00Z."
                )
            ],
        )
    return parsed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _result(result: agencyside.ActionResult) -> Response:
    return jsonify(
        {
            "reference": result.reference,
            "agency_reference": result.agency_reference,
            "status": result.status,
            "agency_status": result.agency_status,
            "outcome": result.outcome,
            "update_id": result.update_id,
        }
    )


def _act(reference: str, action, *args, **kwargs) -> Response:
    try:
        return _result(action(hub(), _actor(), reference, *args, **kwargs))
    except agencyside.NotFound:
        raise _not_found(reference) from None
    except agencyside.Invalid as exc:
        raise _invalid(exc) from None


# ------------------------------------------------------------------------------------ endpoints


@bp.get("/assignments")
def list_assignments():
    args = request.args
    unknown = sorted(set(args) - {"status", "kind", "changed_since", "cursor", "limit"})
    if unknown:
        raise Problem(
            422,
            "validation",
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            errors=[
                field_error(
                    [u], "Unknown parameter.", "Use status, kind, changed_since, cursor or limit."
                )
                for u in unknown
            ],
        )
    limit = args.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= agencyside.PAGE_LIMIT:
        raise Problem(
            422,
            "validation",
            "limit must be a number from 1 to 100.",
            errors=[field_error(["limit"], "Not a number from 1 to 100.", "Give e.g. limit=50.")],
        )
    try:
        page = agencyside.list_assignments(
            hub(),
            _actor().agency_id,
            status=args.get("status") or None,
            kind=args.get("kind") or None,
            changed_since=_when(args.get("changed_since"), "changed_since"),
            cursor=args.get("cursor") or None,
            limit=int(limit),
        )
    except agencyside.Invalid as exc:
        raise _invalid(exc) from None
    return jsonify(
        {
            "items": [
                {
                    "reference": r.reference,
                    "kind": r.kind,
                    "domain": r.domain,
                    "language": r.language,
                    "status": r.status,
                    "agency_status": r.agency_status,
                    "agency_reference": r.agency_reference,
                    "acknowledge_due_at": _iso(r.acknowledge_due_at),
                    "answer_due_at": _iso(r.answer_due_at),
                    "past_due": r.past_due,
                    "created_at": _iso(r.created_at),
                    "updated_at": _iso(r.updated_at),
                    "url": f"{PREFIX}/assignments/{r.reference}",
                }
                for r in page.items
            ],
            "next_cursor": page.next_cursor,
        }
    )


@bp.get("/bodies")
def bodies():
    """The bodies a case can be referred to (`refer_to` of not-competent), named in nl/fr/de/en."""
    directory = hub().directory
    return jsonify(
        {
            "items": [
                {"id": i, "names": dict(directory[i].names), "connected": directory[i].connected}
                for i in directory.ids()
                if i != _actor().agency_id
            ]
        }
    )


def _document(reference: str, d: agencyside.Document) -> dict[str, Any]:
    return {
        "id": d.id,
        "filename": d.filename,
        "content_type": d.content_type,
        "size": d.size,
        "sha256": d.sha256,
        "created_at": _iso(d.created_at),
        "from": d.origin,
        "url": f"{PREFIX}/assignments/{reference}/documents/{d.id}",
    }


@bp.get("/assignments/<reference>")
def read_assignment(reference: str):
    try:
        c = agencyside.read_case(hub(), _actor().agency_id, reference)
    except agencyside.NotFound:
        raise _not_found(reference) from None
    mapping = hub().directory[c.agency_id]
    return jsonify(
        {
            "reference": c.reference,
            "kind": c.kind,
            "domain": c.domain,
            "language": c.language,
            "created_at": _iso(c.created_at),
            "status": c.status,
            "agency_status": c.agency_status,
            "agency_reference": None if c.agency_reference_provisional else c.agency_reference,
            "outcome": c.outcome,
            "acknowledge_due_at": _iso(c.acknowledge_due_at),
            "answer_due_at": _iso(c.answer_due_at),
            "past_due": c.past_due,
            "updated_at": _iso(c.updated_at),
            "case": c.payload,
            "documents": [_document(c.reference, d) for d in c.documents],
            "timeline": [
                {
                    "at": _iso(e.at),
                    "actor": e.actor,
                    "from": e.from_status,
                    "to": e.to_status,
                    "agency_status": e.agency_status,
                    "message": e.message,
                    "reason": e.reason,
                }
                for e in c.timeline
            ],
            "messages": [
                {
                    "at": _iso(n.at),
                    "direction": n.direction,
                    "text": n.text,
                    "documents": list(n.documents),
                }
                for n in c.notes
            ],
            "codes": {code: rule.status for code, rule in mapping.statuses.items()},
            "information_reasons": list(mapping.information_requests),
        }
    )


@bp.post("/assignments/<reference>/acknowledge")
def acknowledge(reference: str):
    body = _body(
        {
            "agency_reference": True,
            "code": False,
            "message": False,
            "update_id": False,
            "occurred_at": False,
        }
    )
    return _act(
        reference,
        agencyside.acknowledge,
        body["agency_reference"],
        code=body.get("code"),
        message=body.get("message"),
        update_id=body.get("update_id"),
        occurred_at=_when(body.get("occurred_at")),
    )


@bp.post("/assignments/<reference>/status")
def set_status(reference: str):
    body = _body({"code": True, "message": False, "update_id": False, "occurred_at": False})
    return _act(
        reference,
        agencyside.set_status,
        body["code"],
        message=body.get("message"),
        update_id=body.get("update_id"),
        occurred_at=_when(body.get("occurred_at")),
    )


@bp.post("/assignments/<reference>/messages")
def post_message(reference: str):
    body = _body({"text": True, "update_id": False, "occurred_at": False})
    return _act(
        reference,
        agencyside.post_message,
        body["text"],
        update_id=body.get("update_id"),
        occurred_at=_when(body.get("occurred_at")),
    )


@bp.post("/assignments/<reference>/information-requests")
def request_information(reference: str):
    body = _body({"reason": True, "text": False, "update_id": False, "occurred_at": False})
    return _act(
        reference,
        agencyside.request_information,
        body["reason"],
        body.get("text"),
        update_id=body.get("update_id"),
        occurred_at=_when(body.get("occurred_at")),
    )


@bp.post("/assignments/<reference>/not-competent")
def not_competent(reference: str):
    body = _body({"refer_to": False, "message": False, "update_id": False, "occurred_at": False})
    return _act(
        reference,
        agencyside.not_competent,
        refer_to=body.get("refer_to") or None,
        message=body.get("message"),
        update_id=body.get("update_id"),
        occurred_at=_when(body.get("occurred_at")),
    )


@bp.get("/assignments/<reference>/documents")
def list_documents(reference: str):
    try:
        c = agencyside.read_case(hub(), _actor().agency_id, reference)
    except agencyside.NotFound:
        raise _not_found(reference) from None
    return jsonify({"items": [_document(c.reference, d) for d in c.documents]})


@bp.get("/assignments/<reference>/documents/<int:document_id>")
def download_document(reference: str, document_id: int):
    try:
        d, data = agencyside.document(hub(), _actor().agency_id, reference, document_id)
    except agencyside.NotFound:
        raise _not_found(reference) from None
    response = Response(data, mimetype=d.content_type)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(d.filename)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/assignments/<reference>/documents")
def upload_document(reference: str):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Problem(
            422,
            "validation",
            "file: no file. Nothing was changed.",
            errors=[
                field_error(
                    ["file"],
                    "No file.",
                    "Send multipart/form-data with the document in `file` (and `text`, `update_id`).",
                )
            ],
        )
    try:
        checked = files.check(upload.filename, upload.read())
    except files.AttachmentRefused as exc:
        raise Problem(
            422,
            "validation",
            f"file: {exc.detail} Nothing was changed.",
            errors=[field_error(["file"], exc.detail, f"Send a {files.ALLOWED_LIST} file.")],
        ) from None
    return _act(
        reference,
        agencyside.add_document,
        checked,
        request.form.get("text"),
        update_id=request.form.get("update_id"),
    )


__all__ = ["MEDIA_TYPE", "bp", "init_app"]
