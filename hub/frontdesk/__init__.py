"""The consumer's front desk: server-rendered pages in nl/fr/de/en that work without JavaScript.

Problem first: area -> sub-area -> the consumer's rights and the actions that fit -> who would
handle it and why, with the agencies' pre-checks asked as plain questions -> one form ->
confirmation -> one tracking page across every agency. The language is the first part of every
URL (`/fr/...`); the case is filed in the language of the page it was filed from.

`init_app` wires what the pages need into the app once: translations (Flask-Babel), CSRF tokens
(Flask-WTF, checked on this blueprint's forms only: the JSON API authenticates otherwise),
per-address rate limits (Flask-Limiter, in LOKET_RATELIMIT_STORAGE: memory:// per process, or a
shared store such as Redis), and security headers. Wrong tracking codes are counted by
hub/ratelimits.py, in the same store.
"""

from __future__ import annotations

import os
from datetime import timedelta

from flask import Flask, g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from hub import i18n, ratelimits
from hub.config import Settings

csrf = CSRFProtect()
limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[],
    headers_enabled=False,
    strategy="moving-window",
)


@limiter.request_filter
def _counted_elsewhere() -> bool:
    """The JSON APIs (/api/...) count their own attempts, per key and address
    (hub/ratelimits.py); the page limiter skips them before looking up any limit."""
    return request.path.startswith("/api/")


# The app config keys of the front desk's own limits per client address (from Settings: filing
# counts successful filings only; tracking counts wrong codes, see hub/ratelimits.py).
FILING_LIMIT = "LOKET_FILING_LIMIT"
TRACKING_LIMIT = ratelimits.TRACKING_LIMIT
# The largest form body the front desk reads (files included). Above the per-file and total caps
# of hub/attachments.py so that a too-large file gets its message next to the field with
# everything typed kept; a body beyond this gets a page that says so instead.
UPLOAD_BODY_LIMIT = 64 * 1024 * 1024


def secret_key(settings: Settings) -> str:
    """The configured key, else a random key kept in <var_dir>/secret_key: every web process on
    this machine (gunicorn workers) must sign forms with the same key."""
    if settings.secret_key:
        return settings.secret_key
    var_dir = settings.var_dir
    path = var_dir / "secret_key"
    if not path.exists():
        import secrets

        if not var_dir.exists():
            var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = var_dir / f".secret_key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: the first process wins, the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _locale() -> str:
    lang = getattr(g, "lang", None) or (request.view_args or {}).get("lang")
    if lang not in i18n.LANGUAGES:
        lang = i18n.preferred(request) or "en"
    return f"{lang}_BE"


def init_app(app: Flask) -> None:
    i18n.compile_catalogs()
    hub = app.extensions["loket"]
    settings = hub.settings
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(settings)
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked by the front desk only
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # a long complaint may take hours
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.mail.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(days=1),
    )
    app.config.setdefault(FILING_LIMIT, settings.filing_limit)
    app.config.setdefault(TRACKING_LIMIT, settings.tracking_limit)
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.ratelimit_storage)
    Babel(
        app,
        locale_selector=_locale,
        timezone_selector=lambda: "Europe/Brussels",
        default_translation_directories=str(i18n.TRANSLATIONS),
    )
    csrf.init_app(app)
    limiter.init_app(app)
    app.jinja_env.filters["named"] = i18n.named
    app.jinja_env.filters["and_list"] = i18n.and_list
    app.jinja_env.filters["uncap"] = i18n.uncap
    from hub.frontdesk import statistics, views  # statistics adds its routes to views.bp

    del statistics
    app.register_blueprint(views.bp)
