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
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

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
    if request.endpoint in (SIGNIN_ENDPOINT, "admin.static"):
        return None
    if g.account is None:
        return redirect(url_for(SIGNIN_ENDPOINT, next=request.path))
    return None


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
        error="Too many failed sign-ins from this address; wait a quarter of an hour.",
    ), 429


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        account = queries.authenticate(
            hub(), request.form.get("name", ""), request.form.get("password", "")
        )
        if account is not None:
            session.clear()
            session["admin_user"] = account.id
            session["admin_version"] = account.session_version
            target = request.args.get("next") or ""
            if not target.startswith("/admin") or target.startswith("//"):
                target = url_for("admin.home")
            return redirect(target)
        error = "Unknown name or wrong password."
    return render_template("admin/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    """Signing out ends the account's sessions on the server, not only this cookie: a copy taken
    before (or the same account's other browsers) gets the sign-in page."""
    if g.account is not None:
        operations.sign_out(hub(), g.account.id)
    session.clear()
    return redirect(url_for(SIGNIN_ENDPOINT))


@bp.get("/")
def home():
    if g.account.role == "agency":
        return redirect(url_for("admin.workspace"))
    if g.account.role == "inspector":
        return redirect(url_for("admin.signals"))
    return redirect(url_for("admin.flows"))
