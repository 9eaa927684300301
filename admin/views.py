"""The back office's blueprint, its access rules and sign-in.

Every page needs a signed-in account; every POST carries a CSRF token, checked with the CSRF
extension the app factory set up (`current_app.extensions["csrf"]`). The sign-in view is rate
limited per address by the app factory too (`SIGNIN_ENDPOINT`, `signin_limit`, `signin_failed`
say how), so the back office depends on no other blueprint. Pages talk to the domain only through
`hub.operations` (commands) and `hub.queries` (frozen read models).
"""

from __future__ import annotations

import functools

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from hub import operations, queries

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

SIGNIN_ENDPOINT = "admin.login"
RESET_REQUEST_ENDPOINT = "admin.forgot"
# Pages open without an account: sign-in, the reset link, the language switch.
OPEN_ENDPOINTS = frozenset(
    {SIGNIN_ENDPOINT, "admin.static", "admin.forgot", "admin.reset", "admin.language"}
)
LANGUAGES = ("nl", "fr", "de", "en")
LANGUAGE_NAMES = {"nl": "Nederlands", "fr": "Français", "de": "Deutsch", "en": "English"}
LANG_COOKIE = "loket_admin_lang"
SIGNIN_LIMIT = "LOKET_SIGNIN_LIMIT"
DEFAULT_SIGNIN_LIMIT = "10 per 15 minutes"


def signin_limit() -> str:
    """Failed sign-ins allowed per address (LOKET_SIGNIN_LIMIT, app config or settings)."""
    return current_app.config.get(SIGNIN_LIMIT) or hub().settings.signin_limit


def signin_failed(response: Response) -> bool:
    """Only failed sign-ins count against the limit."""
    return response.status_code == 401


def hub():
    """The hub's services, set up by the app factory; passed as is to operations and queries."""
    return current_app.extensions["loket"]


def operator_name() -> str:
    return g.account.name


# ------------------------------------------------------------------------------------- access


@bp.before_request
def _guard():
    if request.method == "POST":
        current_app.extensions["csrf"].protect()
    g.account = None
    user_id = session.get("admin_user")
    if user_id is not None:
        g.account = queries.account(hub(), user_id, session.get("admin_version"))
    g.lang = _language()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if g.account is None:
        return redirect(url_for(SIGNIN_ENDPOINT, next=request.path))
    return None


def _language() -> str:
    """The account's chosen language, else this browser's choice (cookie), else the best match
    of Accept-Language, else English."""
    chosen = g.account.language if g.account is not None else None
    if chosen in LANGUAGES:
        return chosen
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES) or "en"


@bp.app_context_processor
def _languages():
    return {"admin_languages": list(LANGUAGE_NAMES.items())}


# Where the consumer's name of a status would mislead staff: an undeliverable line shows to
# the consumer as being forwarded, and a line waiting for the consumer says "your answer".
STAFF_STATUS = {
    "undeliverable": _l("Could not be delivered"),
    "waiting_for_consumer": _l("Waiting for the consumer's answer"),
}


def _with_code(name: str, code: str) -> Markup:
    return Markup('{} <span class="muted">{}</span>').format(name, code)


@bp.context_processor
def _names():
    """`body_name(agency_id)` and `status_name(code)` in the back office's tables: the body's or the
    status's name in the page's language, with its id or code beside it (what the CLI, the logs
    and the mapping files call it)."""

    def body(agency_id: str | None, *, with_id: bool = True) -> Markup | str:
        if not agency_id:
            return ""
        name = queries.agency_name(hub(), agency_id, getattr(g, "lang", "en"))
        if name is None or name == agency_id:
            return agency_id
        return _with_code(name, agency_id) if with_id else name

    def status(code: str | None) -> Markup | str:
        """A canonical status by its name in the page's language, its code beside it (the
        code is what the CLI, the API and the filters use)."""
        if not code:
            return ""
        staff = STAFF_STATUS.get(code)
        name = str(staff) if staff else queries.status_label(code, getattr(g, "lang", "en"))
        return code if name is None else _with_code(name, code)

    return {"body_name": body, "status_name": status}


@bp.get("/language/<lang>")
def language(lang: str):
    """The header's language switch: remembered for the account, and in a cookie for the
    sign-in pages of this browser."""
    if lang not in LANGUAGES:
        abort(404)
    if g.account is not None:
        operations.set_language(hub(), g.account, lang)
    target = request.args.get("next") or ""
    if not target.startswith("/admin") or target.startswith("//"):
        target = url_for("admin.home")
    response = redirect(target)
    response.set_cookie(
        LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True, path="/admin"
    )
    return response


@bp.after_request
def _headers(response):
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def operators_only(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not g.account.is_operator:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def agency_staff_only(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.account.role != "agency":
            abort(403)
        return view(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------------------------ sign-in


@bp.errorhandler(429)
def _too_many(_error):
    return render_template(
        "admin/login.html",
        error=_("Too many failed sign-ins from this address; wait a quarter of an hour."),
    ), 429


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        result = operations.sign_in(
            hub(),
            request.form.get("name", ""),
            request.form.get("password", ""),
            request.form.get("code", ""),
            address=request.remote_addr or "",
        )
        account = result.account
        if account is not None:
            session.clear()
            session["admin_user"] = account.id
            session["admin_version"] = account.session_version
            target = request.args.get("next") or ""
            if not target.startswith("/admin") or target.startswith("//"):
                target = url_for("admin.home")
            return redirect(target)
        error = (
            _("Type the code your authenticator app shows now.")
            if result.needs_code
            else _("Unknown name or wrong password.")
        )
    return render_template("admin/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    """Signing out ends the account's sessions on the server, not only this cookie: a copy taken
    before (or the same account's other browsers) gets the sign-in page."""
    if g.account is not None:
        operations.sign_out(hub(), g.account.id, name=g.account.name)
    session.clear()
    return redirect(url_for(SIGNIN_ENDPOINT))


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    """Ask for a reset link. The answer is the same whether the name exists or not."""
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:64]
        if name:
            operations.request_password_reset(hub(), name)
        return render_template("admin/forgot.html", sent=True)
    return render_template("admin/forgot.html", sent=False)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("again", ""):
            error = _("The two passwords differ; type the same one twice.")
        else:
            try:
                operations.reset_password(hub(), token, password)
            except operations.Refused:
                if not operations.password_reset_valid(hub(), token):
                    return render_template("admin/reset.html", expired=True), 410
                error = _("Choose a password of at least 10 characters.")
            else:
                session.clear()
                flash(_("Your new password is set. Sign in with it."))
                return redirect(url_for(SIGNIN_ENDPOINT))
    elif not operations.password_reset_valid(hub(), token):
        return render_template("admin/reset.html", expired=True), 410
    return render_template("admin/reset.html", expired=False, error=error), (400 if error else 200)


@bp.route("/security", methods=["GET", "POST"])
def security():
    """The account's second factor: enrol (the secret is shown once, as an otpauth:// URI and in
    letters, and confirmed with a code) or switch it off (with a current code)."""
    account = g.account
    if request.method == "POST":
        action = request.form.get("action")
        code = request.form.get("code", "")
        try:
            if action == "enable":
                secret = session.pop("totp_pending", None)
                if not secret:
                    flash(_("Start again: the secret was shown once and has expired."))
                    return redirect(url_for("admin.security"))
                operations.enrol_totp(hub(), account, secret, code)
                flash(_("The second factor is on: sign-in now also asks for a code."))
            elif action == "disable":
                operations.drop_totp(hub(), account, code)
                flash(_("The second factor is off."))
            else:
                abort(400)
        except operations.Refused:
            flash(_("That code does not match; type the code your app shows now."))
        return redirect(url_for("admin.security"))
    secret = uri = None
    if not account.totp:
        # the same secret until it is confirmed (a reload must not break the app's entry)
        secret = session.get("totp_pending") or operations.new_totp_secret()
        session["totp_pending"] = secret
        uri = operations.totp_uri(secret, account.name)
    return render_template("admin/security.html", secret=secret, uri=uri)


@bp.get("/")
def home():
    if g.account.role == "agency":
        return redirect(url_for("admin.workspace"))
    if g.account.role == "inspector":
        return redirect(url_for("admin.signals"))
    return redirect(url_for("admin.flows"))
