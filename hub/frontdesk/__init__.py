"""The consumer's front desk: server-rendered pages in nl/fr/de/en that work without JavaScript.

Problem first: area -> sub-area -> the consumer's rights and the actions that fit -> who would
handle it and why, with the agencies' pre-checks asked as plain questions -> one form ->
confirmation -> one tracking page across every agency. The language is the first part of every
URL (`/fr/...`); the case is filed in the language of the page it was filed from.

`init_app` wires what the pages need into the app once: translations (Flask-Babel), CSRF tokens
(Flask-WTF, checked on this blueprint's forms only: the JSON API authenticates otherwise),
per-address rate limits (Flask-Limiter, in-memory: per process), and security headers.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from flask import Flask, g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from hub import i18n
from hub.config import VAR_DIR

csrf = CSRFProtect()
limiter = Limiter(
    key_func=get_remote_address,
    storage_uri="memory://",
    default_limits=[],
    headers_enabled=False,
    strategy="moving-window",
)

# The front desk's own limits (per client address). Filing counts successful filings only;
# tracking counts failed guesses of a reference and its private code only.
FILING_LIMIT = "LOKET_FILING_LIMIT"
TRACKING_LIMIT = "LOKET_TRACKING_LIMIT"
DEFAULT_FILING_LIMIT = "10 per hour"
DEFAULT_TRACKING_LIMIT = "20 per hour"
# The largest form body the front desk reads (files included). Above the per-file and total caps
# of hub/attachments.py so that a too-large file gets its message next to the field with
# everything typed kept; a body beyond this gets a page that says so instead.
UPLOAD_BODY_LIMIT = 64 * 1024 * 1024


def secret_key(env: dict[str, str] | None = None, var_dir: Path = VAR_DIR) -> str:
    """LOKET_SECRET_KEY, else a random key kept in var/secret_key: every web process on this
    machine (gunicorn workers) must sign forms with the same key."""
    env = dict(os.environ if env is None else env)
    if env.get("LOKET_SECRET_KEY"):
        return env["LOKET_SECRET_KEY"]
    path = var_dir / "secret_key"
    if not path.exists():
        import secrets

        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = var_dir / f".secret_key.{os.getpid()}"
        tmp.write_text(secrets.token_hex(32))
        os.chmod(tmp, 0o600)
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
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key()
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked by the front desk only
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # a long complaint may take hours
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    hub = app.extensions["loket"]
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=hub.settings.mail.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(days=1),
    )
    app.config.setdefault(FILING_LIMIT, os.environ.get(FILING_LIMIT, DEFAULT_FILING_LIMIT))
    app.config.setdefault(TRACKING_LIMIT, os.environ.get(TRACKING_LIMIT, DEFAULT_TRACKING_LIMIT))
    Babel(
        app,
        locale_selector=_locale,
        timezone_selector=lambda: "Europe/Brussels",
        default_translation_directories=str(i18n.TRANSLATIONS),
    )
    csrf.init_app(app)
    limiter.init_app(app)
    from hub.frontdesk import views

    app.register_blueprint(views.bp)
