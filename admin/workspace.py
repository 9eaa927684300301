"""The agency workspace: one agency's staff follow their own lines and record statuses in their
own codes. Another agency's case answers 404, as if it did not exist."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from admin.views import agency_staff_only, bp, hub
from hub import operations, queries


@bp.get("/agency")
@agency_staff_only
def workspace():
    show_closed = request.args.get("closed") == "1"
    return render_template(
        "admin/workspace.html",
        ws=queries.workspace(hub(), g.account.agency_id, include_closed=show_closed),
        show_closed=show_closed,
    )


@bp.route("/agency/cases/<reference>", methods=["GET", "POST"])
@agency_staff_only
def workspace_case(reference: str):
    if request.method == "POST":
        try:
            done = operations.record_staff_status(
                hub(),
                g.account,
                reference,
                request.form.get("status", ""),
                request.form.get("message"),
            )
        except operations.NotFound:
            abort(404)
        except operations.Refused as exc:
            flash(str(exc))
        else:
            flash(
                f"Status {done.code} recorded."
                if done.applied
                else f"Status {done.code} kept on the timeline but not applied ({done.outcome})."
            )
        return redirect(url_for("admin.workspace_case", reference=reference))
    view = queries.staff_case(hub(), g.account.agency_id, reference)
    if view is None:
        abort(404)
    return render_template("admin/workspace_case.html", case=view, line=view.line)
