"""Back-office pages: /admin (operators) and /admin/agency (one agency's staff)."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime

from flask import (
    Blueprint,
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
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from adapters.base import AdapterError, StatusUpdate
from hub import accounts, audit, control, inbound, lifecycle, outbox, referral
from hub import reference as references
from hub.canonical import case_document
from hub.frontdesk import csrf, limiter
from hub.models import (
    Assignment,
    AuditEntry,
    Case,
    Delivery,
    InboundProblem,
    Message,
    Notification,
    PollCursor,
    UnmatchedUpdate,
)
from hub.search import search
from hub.services import Hub

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


SIGNIN_LIMIT = "LOKET_SIGNIN_LIMIT"
DEFAULT_SIGNIN_LIMIT = "10 per 15 minutes"


def _signin_limit() -> str:
    return current_app.config.get(SIGNIN_LIMIT) or hub().settings.signin_limit


def hub() -> Hub:
    return current_app.extensions["loket"]


def now() -> datetime:
    return hub().clock.now()


# ------------------------------------------------------------------------------------- access


@bp.before_request
def _guard():
    if request.method == "POST":
        csrf.protect()
    g.account = None
    user_id = session.get("admin_user")
    if user_id is not None:
        g.account = accounts.get(hub().db, user_id)
    if request.endpoint in ("admin.login", "admin.static"):
        return None
    if g.account is None:
        return redirect(url_for("admin.login", next=request.path))
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


@bp.errorhandler(429)
def _too_many(_error):
    return render_template(
        "admin/login.html",
        error="Too many failed sign-ins from this address; wait a quarter of an hour.",
    ), 429


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_signin_limit, methods=["POST"], deduct_when=lambda r: r.status_code == 401)
def login():
    error = None
    if request.method == "POST":
        account = accounts.authenticate(
            hub().db, request.form.get("name", ""), request.form.get("password", "")
        )
        if account is not None:
            session.clear()
            session["admin_user"] = account.id
            target = request.args.get("next") or ""
            if not target.startswith("/admin") or target.startswith("//"):
                target = url_for("admin.home")
            return redirect(target)
        error = "Unknown name or wrong password."
    return render_template("admin/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.pop("admin_user", None)
    return redirect(url_for("admin.login"))


@bp.get("/")
def home():
    if g.account.role == "agency":
        return redirect(url_for("admin.workspace"))
    return redirect(url_for("admin.flows"))


# -------------------------------------------------------------------------------- operators


@bp.get("/flows")
@operators_only
def flows():
    """Flow health per agency: breaker, pause, queue, oldest waiting, last poll."""
    h = hub()
    states = control.states(h.db)
    with h.db.session(read_only=True) as s:
        counts = outbox.counts_by_agency(s)
        oldest = dict(
            s.execute(
                select(Delivery.agency_id, func.min(Delivery.created_at))
                .where(Delivery.state.in_(("pending", "retry", "leased")))
                .group_by(Delivery.agency_id)
            ).all()
        )
        polls = {p.agency_id: p for p in s.scalars(select(PollCursor))}
    rows = []
    for agency_id in h.directory.ids():
        mapping = h.directory[agency_id]
        c = counts.get(agency_id, {})
        poll = polls.get(agency_id)
        waiting_since = oldest.get(agency_id)
        rows.append(
            {
                "id": agency_id,
                "name": mapping.name("en"),
                "kind": mapping.adapter_kind,
                "state": states.get(agency_id),
                "counts": c,
                "waiting": (now() - waiting_since).total_seconds() if waiting_since else None,
                "last_poll": poll.last_success_at if poll else None,
                "poll_error": poll.last_error if poll else None,
            }
        )
    return render_template("admin/flows.html", rows=rows, now=now())


@bp.post("/agencies/<agency_id>/pause")
@operators_only
def pause(agency_id: str):
    _known(agency_id)
    reason = request.form.get("reason", "").strip() or "paused from the console"
    control.pause(hub().db, agency_id, by=g.account.name, reason=reason, now=now())
    _evidence("agency.paused", agency_id, {"reason": reason})
    flash(f"{agency_id} paused: its cases wait, nothing is lost.")
    return redirect(url_for("admin.flows"))


@bp.post("/agencies/<agency_id>/resume")
@operators_only
def resume(agency_id: str):
    _known(agency_id)
    control.resume(hub().db, agency_id, now=now())
    _evidence("agency.resumed", agency_id, {})
    flash(f"{agency_id} resumed.")
    return redirect(url_for("admin.flows"))


@bp.post("/agencies/<agency_id>/check")
@operators_only
def check(agency_id: str):
    _known(agency_id)
    try:
        health = hub().directory.adapter(agency_id).check()
        flash(f"{agency_id}: {'OK' if health.ok else 'FAILED'}: {health.message}")
    except AdapterError as exc:
        flash(f"{agency_id}: FAILED: {exc.detail}")
    return redirect(url_for("admin.flows"))


@bp.get("/attention")
@operators_only
def attention():
    """What is stuck or late, each with what can be done about it."""
    h = hub()
    terminal = [st for st in lifecycle.statuses() if lifecycle.is_terminal(st)]
    with h.db.session(read_only=True) as s:
        late = s.execute(
            select(
                Case.reference,
                Assignment.agency_id,
                Assignment.status,
                Assignment.answer_due_at,
                Assignment.past_due_at,
            )
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.past_due_at.is_not(None), Assignment.status.not_in(terminal))
            .order_by(Assignment.past_due_at)
            .limit(200)
        ).all()
        undeliverable = s.execute(
            select(Case.reference, Assignment.agency_id, Assignment.updated_at)
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.status == "undeliverable")
            .order_by(Assignment.updated_at)
            .limit(200)
        ).all()
        children = select(Assignment.referred_from_id).where(
            Assignment.referred_from_id.is_not(None)
        )
        not_competent = s.execute(
            select(Case.reference, Assignment.agency_id, Assignment.updated_at)
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.status == "not_competent", Assignment.id.not_in(children))
            .limit(200)
        ).all()
        unrouted = s.execute(
            select(Case.reference, Case.kind, Case.domain, Case.created_at)
            .where(~Case.id.in_(select(Assignment.case_id)))
            .order_by(Case.created_at)
            .limit(200)
        ).all()
        unmatched = list(
            s.scalars(
                select(UnmatchedUpdate)
                .where(UnmatchedUpdate.resolved_at.is_(None))
                .order_by(UnmatchedUpdate.received_at)
                .limit(200)
            )
        )
        problems = list(
            s.scalars(
                select(InboundProblem)
                .where(InboundProblem.resolved_at.is_(None))
                .order_by(InboundProblem.received_at)
                .limit(200)
            )
        )
        mail = s.execute(
            select(
                Case.reference, Notification.kind, Notification.to_address, Notification.last_error
            )
            .join(Case, Case.id == Notification.case_id)
            .where(Notification.state == "dead")
            .limit(200)
        ).all()
    return render_template(
        "admin/attention.html",
        late=late,
        undeliverable=undeliverable,
        not_competent=not_competent,
        unrouted=unrouted,
        unmatched=unmatched,
        problems=problems,
        mail=mail,
    )


@bp.post("/problems/<int:problem_id>/resolve")
@operators_only
def resolve_problem(problem_id: int):
    with hub().db.session() as s:
        row = s.get(InboundProblem, problem_id) or abort(404)
        row.resolved_at = now()
    _evidence("problem.resolved", None, {"problem": problem_id})
    flash("Marked as handled.")
    return redirect(url_for("admin.attention"))


@bp.post("/unmatched/<int:update_id>/resolve")
@operators_only
def resolve_unmatched(update_id: int):
    with hub().db.session() as s:
        row = s.get(UnmatchedUpdate, update_id) or abort(404)
        row.resolved_at = now()
    _evidence("unmatched.resolved", None, {"update": update_id})
    flash("Marked as handled.")
    return redirect(url_for("admin.attention"))


@bp.get("/dead-letters")
@operators_only
def dead_letters():
    agency = request.args.get("agency") or None
    letters = outbox.dead_letters(hub().db, agency)
    return render_template(
        "admin/dead_letters.html", letters=letters, agency=agency, agencies=hub().directory.ids()
    )


@bp.post("/dead-letters/resend")
@operators_only
def resend():
    agency = request.form.get("agency") or None
    ids = (
        []
        if request.form.get("all") and agency
        else [int(x) for x in request.form.getlist("delivery_id") if x.isdigit()]
    )
    if not ids and not agency:
        flash("Choose the letters to resend, or an agency.")
        return redirect(url_for("admin.dead_letters"))
    result = outbox.resend(
        hub().db,
        now=now(),
        operator=g.account.name,
        delivery_ids=ids or None,
        agency_id=None if ids else agency,
    )
    flash(
        f"{len(result.resent)} resent with their original idempotency keys"
        + (
            f"; {len(result.skipped)} skipped: "
            + "; ".join(f"{i}: {why}" for i, why in result.skipped)
            if result.skipped
            else "."
        )
    )
    return redirect(url_for("admin.dead_letters", agency=agency or ""))


@bp.get("/cases")
@operators_only
def cases():
    q = request.args.get("q", "")
    agency = request.args.get("agency") or None
    status = request.args.get("status") or None
    hits = search(hub().db, q, agency=agency, status=status)
    return render_template(
        "admin/cases.html",
        hits=hits,
        q=q,
        agency=agency,
        status=status,
        agencies=hub().directory.ids(),
        statuses=lifecycle.statuses(),
    )


@bp.get("/cases/<reference>")
@operators_only
def case(reference: str):
    h = hub()
    with h.db.session(read_only=True) as s:
        c = _load_case(s, reference)
        evidence = list(
            s.scalars(select(AuditEntry).where(AuditEntry.case_id == c.id).order_by(AuditEntry.id))
        )
        intact = audit.verify(s, c.id)
        messages = list(
            s.scalars(
                select(Message)
                .where(Message.case_id == c.id)
                .options(selectinload(Message.attachments))
                .order_by(Message.id)
            )
        )
        previews = {}
        for a in c.assignments:
            try:
                previews[a.id] = json.dumps(
                    h.directory[a.agency_id].render(case_document(c, a)),
                    indent=2,
                    ensure_ascii=False,
                    default=str,
                )
            except Exception as exc:  # a preview must not break the page
                previews[a.id] = f"cannot render: {exc}"
    return render_template(
        "admin/case.html",
        case=c,
        evidence=evidence,
        intact=intact,
        messages=messages,
        previews=previews,
        now=now(),
        lifecycle=lifecycle,
        agencies=h.directory.ids(),
        names={a: h.directory[a].name("en") for a in h.directory.ids()},
    )


@bp.post("/cases/<reference>/refer")
@operators_only
def refer(reference: str):
    h = hub()
    to_agency = request.form.get("to") or None
    from_line = request.form.get("from_line")
    reason = request.form.get("reason", "").strip() or None
    try:
        done = referral.refer(
            h.db,
            router=h.router,
            directory=h.directory,
            now=now(),
            actor=f"operator:{g.account.name}",
            assignment_id=int(from_line) if from_line and from_line.isdigit() else None,
            case_reference=references.normalise(reference) or reference,
            to_agency=to_agency,
            reason=reason,
        )
    except referral.ReferralError as exc:
        flash(f"Not referred: {exc}")
    else:
        flash(
            f"Referred to {done.to_agency}."
            if done.to_agency
            else "Routing found no other competent agency: choose one."
        )
    return redirect(url_for("admin.case", reference=reference))


# ------------------------------------------------------------------------ agency workspace


@bp.get("/agency")
@agency_staff_only
def workspace():
    agency_id = g.account.agency_id
    terminal = [st for st in lifecycle.statuses() if lifecycle.is_terminal(st)]
    show_closed = request.args.get("closed") == "1"
    with hub().db.session(read_only=True) as s:
        query = (
            select(
                Case.reference,
                Case.kind,
                Case.domain,
                Case.created_at,
                Assignment.status,
                Assignment.agency_status,
                Assignment.agency_reference,
                Assignment.answer_due_at,
                Assignment.past_due_at,
            )
            .join(Case, Case.id == Assignment.case_id)
            .where(Assignment.agency_id == agency_id)
            .order_by(Assignment.answer_due_at.is_(None), Assignment.answer_due_at)
            .limit(500)
        )
        if not show_closed:
            query = query.where(Assignment.status.not_in(terminal))
        lines = s.execute(query).all()
    return render_template(
        "admin/workspace.html",
        lines=lines,
        agency=hub().directory[agency_id],
        show_closed=show_closed,
        now=now(),
    )


@bp.route("/agency/cases/<reference>", methods=["GET", "POST"])
@agency_staff_only
def workspace_case(reference: str):
    h = hub()
    agency_id = g.account.agency_id
    mapping = h.directory[agency_id]
    with h.db.session(read_only=True) as s:
        c = _load_case(s, reference)
        line = next((a for a in reversed(c.assignments) if a.agency_id == agency_id), None)
        if line is None:
            abort(404)  # another agency's case: as if it did not exist
        events = [e for e in c.events if e.assignment_id == line.id]
        consumer = c.party("consumer")
        trader = c.party("trader")
        payload = json.dumps(
            h.directory[agency_id].render(case_document(c, line)),
            indent=2,
            ensure_ascii=False,
            default=str,
        )
    if request.method == "POST":
        code = request.form.get("status", "")
        message = request.form.get("message", "").strip()[:4000] or None
        if code not in mapping.statuses:
            flash("Choose one of your agency's status codes.")
        elif line.agency_reference is None:
            flash("The case has not reached your system yet; wait for it to be delivered.")
        else:
            stats = inbound.apply_updates(
                h.db,
                mapping,
                (
                    StatusUpdate(
                        agency_status=code,
                        occurred_at=now(),
                        agency_reference=line.agency_reference,
                        case_reference=c.reference,
                        message=message,
                        update_id=f"backoffice-{uuid.uuid4().hex}",
                    ),
                ),
                now(),
            )
            _evidence(
                "status.backoffice",
                agency_id,
                {"case": c.reference, "status": code, "outcome": stats.counts},
                case_id=c.id,
            )
            flash(
                f"Status {code} recorded."
                if stats.counts.get("applied")
                else f"Status {code} kept on the timeline but not applied ({stats.counts})."
            )
        return redirect(url_for("admin.workspace_case", reference=reference))
    return render_template(
        "admin/workspace_case.html",
        case=c,
        line=line,
        events=events,
        consumer=consumer,
        trader=trader,
        payload=payload,
        mapping=mapping,
        lifecycle=lifecycle,
        now=now(),
    )


# -------------------------------------------------------------------------------- helpers


def _known(agency_id: str) -> None:
    if agency_id not in hub().directory:
        abort(404)


def _load_case(s, reference: str) -> Case:
    normalised = references.normalise(reference)
    c = (
        s.scalars(
            select(Case)
            .where(Case.reference == (normalised or ""))
            .options(
                selectinload(Case.assignments),
                selectinload(Case.events),
                selectinload(Case.parties),
            )
        ).first()
        if normalised
        else None
    )
    if c is None:
        abort(404)
    return c


def _evidence(action: str, agency_id: str | None, data: dict, case_id: int | None = None) -> None:
    with hub().db.session() as s:
        audit.record(
            s,
            at=now(),
            actor=f"operator:{g.account.name}"
            if g.account.is_operator
            else f"agency:{g.account.name}",
            action=action,
            case_id=case_id,
            agency_id=agency_id,
            data=data,
        )
