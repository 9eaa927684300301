"""The root page (language choice for the front desk), health and metrics endpoints.

/metrics names every agency with its queue depth, dead letters and breakers: it is served only
to a scraper that sends `Authorization: Bearer <LOKET_METRICS_TOKEN>`. Without a token
configured it does not exist (404); the worker's own counters stay on its 127.0.0.1 listener.

The front desk itself (hub/frontdesk) is wired in by the app factory (loket/app.py).
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from hub import i18n
from hub.problems import Problem

bp = Blueprint("web", __name__, template_folder="templates")


@bp.get("/")
def index():
    """First visit: the language the visitor chose before, or their browser's; otherwise the
    four languages to choose from."""
    lang = i18n.preferred(request)
    if lang:
        response = redirect(f"/{lang}/", 302)
        response.headers["Vary"] = "Accept-Language, Cookie"
        return response
    response = Response(render_template("frontdesk/choose.html", names=i18n.NAMES))
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@lru_cache(maxsize=1)
def _schema_head() -> str:
    from alembic.script import ScriptDirectory

    from hub.db import MIGRATIONS_DIR, alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or str(
        MIGRATIONS_DIR
    )


@bp.get("/readyz")
def readyz():
    """Readiness: the database answers and its schema is at the latest migration."""
    hub = current_app.extensions["loket"]
    try:
        with hub.db.session(read_only=True) as s:
            version = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any database failure means not ready
        raise Problem(
            503,
            "http-error",
            f"The database does not answer: {type(exc).__name__}. "
            "Check LOKET_DATABASE_URL and that the database is up.",
        ) from None
    head = _schema_head()
    if version != head:
        raise Problem(
            503,
            "http-error",
            f"The database schema is at {version}, the code needs {head}. Run `loket db upgrade`.",
        )
    return jsonify({"status": "ready", "schema": version})


@bp.get("/metrics")
def metrics():
    token = current_app.config.get("LOKET_METRICS_TOKEN")
    if not token:
        raise Problem(404, "not-found", "There is no resource here.")
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        refused = Problem(
            401,
            "http-error",
            "Send the metrics token as `Authorization: Bearer <LOKET_METRICS_TOKEN>`.",
        ).response()
        refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    registry = current_app.extensions["loket.metrics"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
