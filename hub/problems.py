"""RFC 9457 problem details: the one error shape of the hub's HTTP API.

    {"type": "/problems/validation", "title": "...", "status": 422, "detail": "...",
     "instance": "/api/v1/cases",
     "errors": [{"field": "consumer.email", "pointer": "#/consumer/email",
                 "detail": "Not a valid email address.", "fix": "Give an address like ..."}]}

`type` is a path on the hub itself, which serves a page explaining the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Response, json, request

MEDIA_TYPE = "application/problem+json"

# slug -> (title, explanation served at /problems/<slug>)
TYPES: dict[str, tuple[str, str]] = {
    "validation": (
        "The request has invalid fields",
        "One or more fields are missing or wrong. Each entry of `errors` names the field (as a "
        "JSON Pointer) and says how to fix it. Nothing was stored.",
    ),
    "needs-answers": (
        "Questions to answer first",
        "The agencies this case would go to ask admissibility questions first. Each entry of "
        "`errors` names the answer field and gives the question as the fix. Nothing was stored.",
    ),
    "not-admissible": (
        "The case cannot be sent yet",
        "Every agency for this problem refuses the case for now. Each entry of `refusals` says "
        "why and what to do first (for example: complain to the trader in writing). Nothing was "
        "stored.",
    ),
    "malformed-json": (
        "The body is not valid JSON",
        "The body could not be parsed as JSON. `detail` gives the position of the first error.",
    ),
    "unsupported-media-type": (
        "Unsupported content type",
        "Send the body as JSON with the header Content-Type: application/json.",
    ),
    "too-large": (
        "The request body is too large",
        "The body is larger than the hub accepts. Shorten the text; send documents as attachments.",
    ),
    "not-found": (
        "Not found",
        "There is no resource here, or the credentials do not open it. A case is found with its "
        "reference and the tracking token given when it was filed (Authorization: Bearer ...).",
    ),
    "too-many-requests": (
        "Too many requests",
        "This address or agency client sent more requests of this kind than the hub takes in "
        "the period (cases filed, wrong tracking tokens, agency API calls or token requests). "
        "Wait the number of seconds in the Retry-After header and try again. Nothing was "
        "stored.",
    ),
    "unauthorized": (
        "Not authorised",
        "The agency API needs a valid bearer token: get one at /api/v1/agency/oauth/token with "
        "your client id and secret (OAuth 2.0 client credentials). A token expires after a few "
        "minutes; a revoked client's tokens stop working at once.",
    ),
    "method-not-allowed": ("Method not allowed", "This resource does not accept that method."),
    "http-error": ("HTTP error", "The request could not be served; see `detail`."),
    "server-error": (
        "Internal error",
        "Something failed inside the hub. Nothing half-done was kept; it is safe to retry.",
    ),
}


@dataclass
class Problem(Exception):
    status: int
    slug: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        title = TYPES.get(self.slug, TYPES["http-error"])[0]
        out: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": title,
            "status": self.status,
            "detail": self.detail,
            "instance": request.path if request else None,
        }
        if self.errors:
            out["errors"] = self.errors
        out.update(self.extra)
        return out

    def response(self) -> Response:
        return Response(
            json.dumps(self.body(), ensure_ascii=False),
            status=self.status,
            mimetype=MEDIA_TYPE,
            headers=self.headers,
        )


def field_error(path: list[str], detail: str, fix: str) -> dict[str, str]:
    return {
        "field": ".".join(path) or "(body)",
        "pointer": "#/" + "/".join(path),
        "detail": detail,
        "fix": fix,
    }
