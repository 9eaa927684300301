"""The operator console: flow health, what needs attention, dead letters, cases."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin.views import bp, hub, operator_name, operators_only
from hub import operations, queries

# ---------------------------------------------------------------------------------- agencies


@bp.get("/flows")
@operators_only
def flows():
    """Flow health per agency: breaker, pause, queue, oldest waiting, last poll."""
    return render_template("admin/flows.html", flows=queries.agency_flows(hub(), g.lang))


@bp.post("/agencies/<agency_id>/pause")
@operators_only
def pause(agency_id: str):
    reason = request.form.get("reason", "").strip() or _("paused from the console")
    try:
        operations.pause_agency(hub(), agency_id, operator=operator_name(), reason=reason)
    except operations.NotFound:
        abort(404)
    flash(_("%(agency_id)s paused: its cases wait, nothing is lost.", agency_id=agency_id))
    return redirect(url_for("admin.flows"))


@bp.post("/agencies/<agency_id>/resume")
@operators_only
def resume(agency_id: str):
    try:
        operations.resume_agency(hub(), agency_id, operator=operator_name())
    except operations.NotFound:
        abort(404)
    flash(_("%(agency_id)s resumed.", agency_id=agency_id))
    return redirect(url_for("admin.flows"))


@bp.post("/agencies/<agency_id>/check")
@operators_only
def check(agency_id: str):
    try:
        result = operations.check_agency(hub(), agency_id, operator=operator_name())
    except operations.NotFound:
        abort(404)
    if result.ok:
        flash(_("%(agency_id)s: OK: %(message)s", agency_id=agency_id, message=result.message))
    else:
        flash(_("%(agency_id)s: FAILED: %(message)s", agency_id=agency_id, message=result.message))
    return redirect(url_for("admin.flows"))


# --------------------------------------------------------------------------- needs attention


@bp.get("/attention")
@operators_only
def attention():
    """What is stuck or late, each with what can be done about it."""
    return render_template("admin/attention.html", items=queries.attention(hub()))


@bp.post("/problems/<int:problem_id>/resolve")
@operators_only
def resolve_problem(problem_id: int):
    try:
        operations.resolve_problem(hub(), problem_id, operator=operator_name())
    except operations.NotFound:
        abort(404)
    flash(_("Marked as handled."))
    return redirect(url_for("admin.attention"))


@bp.post("/unmatched/<int:update_id>/resolve")
@operators_only
def resolve_unmatched(update_id: int):
    try:
        operations.resolve_unmatched(hub(), update_id, operator=operator_name())
    except operations.NotFound:
        abort(404)
    flash(_("Marked as handled."))
    return redirect(url_for("admin.attention"))


@bp.post("/deliveries/<int:delivery_id>/retry-now")
@operators_only
def retry_now(delivery_id: int):
    """Bring a delivery waiting for its next retry forward to now; back to the page it was
    pressed on (the attention page, or the case's page)."""
    back = request.form.get("back", "")
    try:
        operations.retry_now(hub(), delivery_id, operator=operator_name())
    except operations.NotFound:
        abort(404)
    except operations.Refused:
        flash(_("Not retried: this delivery is no longer waiting for a retry."))
    else:
        flash(_("Delivery %(id)s will be tried again at the next dispatch.", id=delivery_id))
    reference = request.form.get("reference", "")
    if back == "case" and reference:
        return redirect(url_for("admin.case", reference=reference))
    return redirect(url_for("admin.attention"))


# ------------------------------------------------------------------------------ dead letters


@bp.get("/dead-letters")
@operators_only
def dead_letters():
    agency = request.args.get("agency") or None
    return render_template(
        "admin/dead_letters.html",
        letters=queries.dead_letters(hub(), agency),
        agency=agency,
        agencies=queries.agency_ids(hub()),
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
    try:
        result = operations.resend_dead_letters(
            hub(), operator=operator_name(), delivery_ids=ids, agency_id=None if ids else agency
        )
    except operations.CommandError:
        flash(_("Choose the letters to resend, or an agency."))
        return redirect(url_for("admin.dead_letters"))
    if result.skipped:
        flash(
            _(
                "%(resent)s resent with their original idempotency keys; %(skipped)s skipped: "
                "%(why)s",
                resent=len(result.resent),
                skipped=len(result.skipped),
                why="; ".join(f"{i}: {why}" for i, why in result.skipped),
            )
        )
    else:
        flash(
            _("%(resent)s resent with their original idempotency keys.", resent=len(result.resent))
        )
    return redirect(url_for("admin.dead_letters", agency=agency or ""))


# ------------------------------------------------------------------------------------- cases


@bp.get("/cases")
@operators_only
def cases():
    q = request.args.get("q", "")
    agency = request.args.get("agency") or None
    status = request.args.get("status") or None
    return render_template(
        "admin/cases.html",
        hits=queries.search_cases(hub(), q, agency=agency, status=status),
        q=q,
        agency=agency,
        status=status,
        agencies=queries.agency_ids(hub()),
        statuses=queries.statuses(),
    )


@bp.get("/cases/<reference>")
@operators_only
def case(reference: str):
    detail = queries.case_detail(hub(), reference)
    if detail is None:
        abort(404)
    return render_template(
        "admin/case.html",
        case=detail,
        agencies=queries.agency_ids(hub()),
        names=queries.agency_names(hub(), g.lang),
    )


@bp.post("/cases/<reference>/refer")
@operators_only
def refer(reference: str):
    from_line = request.form.get("from_line")
    try:
        done = operations.refer_case(
            hub(),
            reference,
            operator=operator_name(),
            from_line=int(from_line) if from_line and from_line.isdigit() else None,
            to_agency=request.form.get("to") or None,
            reason=request.form.get("reason"),
        )
    except operations.CommandError as exc:
        flash(_("Not referred: %(why)s", why=exc))
    else:
        flash(
            _("Referred to %(agency_id)s.", agency_id=done.to_agency)
            if done.to_agency
            else _("Routing found no other competent agency: choose one.")
        )
    return redirect(url_for("admin.case", reference=reference))


# ------------------------------------------------------------------------------ personal data


@bp.get("/privacy")
@operators_only
def privacy():
    """Consumers' requests to erase their data, each due within 30 days of the request."""
    everything = request.args.get("all") == "1"
    return render_template(
        "admin/privacy.html",
        requests=queries.privacy_requests(hub(), pending_only=not everything),
        now=hub().clock.now(),
        everything=everything,
    )


@bp.post("/privacy/<reference>/erase")
@operators_only
def erase(reference: str):
    try:
        done = operations.erase_personal_data(hub(), reference, operator=operator_name())
    except operations.CommandError as exc:
        flash(str(exc))
        return redirect(url_for("admin.privacy"))
    flash(
        _(
            "Erased the personal data of %(ref)s: %(rows)d rows, %(files)d attachments; "
            "statuses and statistics kept.",
            ref=done.reference,
            rows=done.rows,
            files=done.attachments,
        )
    )
    return redirect(url_for("admin.privacy"))


# ------------------------------------------------------------------------------------ accounts


@bp.get("/users")
@operators_only
def users():
    return render_template("admin/users.html", users=queries.users(hub()))


@bp.post("/users/<name>/reset")
@operators_only
def send_reset(name: str):
    if operations.request_password_reset(hub(), name, by=operator_name()):
        flash(_("A reset link was mailed to %(name)s.", name=name))
    else:
        flash(
            _(
                "No link was mailed to %(name)s: the account is disabled or has no mail "
                "address, it has three open links already, or the mail server refused.",
                name=name,
            )
        )
    return redirect(url_for("admin.users"))
