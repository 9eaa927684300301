"""The Flask app factory: `create_app(settings)`; no import-time side effects.

The one place that wires the rooms together: the hub's API and pages, the front desk, the back
office, and the extensions they share, set up once: the CSRF check (`app.extensions["csrf"]`,
used by the front desk and the back office alike) and the per-address rate limiter (applied here
to the back office's sign-in, so the back office depends on no other room but the hub's
operations and queries)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import hub as hub_package
from hub.config import Settings
from hub.problems import TYPES, Problem
from hub.services import Hub
from loket.jsonprovider import OrjsonProvider

log = logging.getLogger(__name__)
HUB_STATIC = Path(hub_package.__file__).parent / "static"


def create_app(settings: Settings | None = None, *, hub: Hub | None = None) -> Flask:
    settings = settings or (hub.settings if hub else Settings.from_env())
    hub = hub or Hub.from_settings(settings)
    # the front desk's stylesheet and script live in hub/static (the app factory moved to loket/,
    # whose own static folder does not exist: every page was served without its stylesheet)
    app = Flask(__name__, static_folder=str(HUB_STATIC))
    app.json = OrjsonProvider(app)  # the same answers as Flask's, faster (loket/jsonprovider.py)
    if settings.trusted_proxies:
        # Behind N reverse proxies the client is the N-th address from the right of
        # X-Forwarded-For; without the setting the header is ignored (anyone can send it).
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["LOKET_METRICS_TOKEN"] = settings.metrics_token
    app.extensions["loket"] = hub
    from hub.metrics import web_registry

    app.extensions["loket.metrics"] = web_registry(hub)

    import admin
    from hub import agencyapi, frontdesk, ratelimits
    from hub.api import bp as api_bp
    from hub.web import bp as web_bp

    ratelimits.init_app(app, settings)  # the counters, in LOKET_RATELIMIT_STORAGE
    app.register_blueprint(api_bp)
    agencyapi.init_app(app)  # the agency API and its OAuth 2.0 token endpoint
    app.register_blueprint(web_bp)
    frontdesk.init_app(app)  # sets up CSRF (app.extensions["csrf"]) and the rate limiter
    app.register_blueprint(admin.bp)
    _limit_sign_in(app, frontdesk.limiter)
    _register_problem_handlers(app, settings)
    return app


def _limit_sign_in(app: Flask, limiter) -> None:
    """Failed back-office sign-ins are limited per address (LOKET_SIGNIN_LIMIT), counted by the
    app's one rate limiter."""
    import admin

    view = app.view_functions[admin.SIGNIN_ENDPOINT]
    app.view_functions[admin.SIGNIN_ENDPOINT] = limiter.limit(
        admin.signin_limit, methods=["POST"], deduct_when=admin.signin_failed
    )(view)
    # Every request for a reset link counts: each may send a mail.
    forgot = app.view_functions[admin.RESET_REQUEST_ENDPOINT]
    app.view_functions[admin.RESET_REQUEST_ENDPOINT] = limiter.limit(
        admin.signin_limit, methods=["POST"]
    )(forgot)


def _register_problem_handlers(app: Flask, settings: Settings) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return exc.response()

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        limit = settings.max_body_bytes
        size = request.content_length
        got = f"{size:,} bytes" if size else "more than that"
        return Problem(
            413,
            "too-large",
            f"The body is {got}; the hub accepts at most {limit:,} bytes. The description may hold "
            "at most 10,000 characters; send documents as attachments.",
            errors=[
                {
                    "field": "description",
                    "pointer": "#/description",
                    "detail": "The request is too large.",
                    "fix": "Shorten the description to at most 10,000 characters.",
                }
            ],
        ).response()

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed", 415: "unsupported-media-type"}.get(
            exc.code or 500, "http-error"
        )
        response = Problem(exc.code or 500, slug, exc.description or exc.name).response()
        # Keep the exception's own headers (Allow on a 405, as RFC 9110 requires; WWW-Authenticate
        # on a 401), but not its text/html Content-Type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return Problem(
            500,
            "server-error",
            "The hub failed to serve this request. Nothing was "
            "stored half-way; try again, and tell the operators if it persists.",
        ).response()

    @app.get("/problems/<slug>")
    def _problem_type(slug: str):
        if slug not in TYPES:
            raise Problem(404, "not-found", f"There is no problem type {slug!r}.")
        title, text = TYPES[slug]
        return jsonify({"type": f"/problems/{slug}", "title": title, "description": text})
