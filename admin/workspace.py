"""The hosted workspace: one agency's staff work their cases in the browser.

For a body with no case system (`adapter: {kind: workspace}`) this is its system: cases land in
its inbox, staff acknowledge them with the body's reference, ask the consumer for information
(a reason from the body's list, which the consumer reads in their language, and free text),
write to the consumer, close with an outcome, answer "not competent" or refer, and exchange
documents. A body connected through an adapter uses the same pages to follow its cases. Every
action is hub/agencyside.py's, the agency API's too, through the inbound path of polled
updates. Another agency's case answers 404, as if it did not exist.
"""

from __future__ import annotations

import csv
import io
from urllib.parse import quote

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import format_date, format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from admin.views import agency_staff_only, bp, hub
from hub import operations, queries

KINDS = {
    "question": _l("Question"),
    "complaint": _l("Complaint"),
    "mediation": _l("Mediation request"),
    "report": _l("Report"),
}
STATUSES = {
    "queued": _l("Waiting to be sent"),
    "sent": _l("New: to acknowledge"),
    "received": _l("Acknowledged"),
    "in_progress": _l("In progress"),
    "waiting_for_consumer": _l("Waiting for the consumer"),
    "resolved": _l("Closed"),
    "not_competent": _l("Not competent"),
    "referred": _l("Referred"),
    "closed_no_individual_follow_up": _l("Closed, no individual follow-up"),
    "withdrawn": _l("Withdrawn by the consumer"),
    "undeliverable": _l("Not delivered"),
}
LANGUAGES = {"nl": _l("Dutch"), "fr": _l("French"), "de": _l("German"), "en": _l("English")}
REASONS = {
    "disputed_bill": _l("A copy of the disputed bill"),
    "customer_number": _l("The customer number"),
    "contract": _l("A copy of the contract"),
    "proof_of_payment": _l("Proof of payment"),
    "correspondence_with_trader": _l("Letters or e-mails with the company"),
    "proof_of_identity": _l("Proof of identity"),
    "photos": _l("Photos of the problem"),
    "other": _l("Other information"),
}
SUMMARY = {
    "consumer.name": _l("Name"),
    "consumer.email": _l("E-mail"),
    "consumer.phone": _l("Telephone"),
    "consumer.address.postcode": _l("Postcode"),
    "consumer.address.city": _l("City"),
    "trader.name": _l("Company"),
    "trader.enterprise_number": _l("Enterprise number"),
    "trader.website": _l("Website"),
    "case.incident_date": _l("Date of the facts"),
}
OUTCOMES = {
    "solved": _l("solved"),
    "partly_solved": _l("partly solved"),
    "not_solved": _l("not solved"),
    "advice_given": _l("advice given"),
    "unfounded": _l("unfounded"),
    "inadmissible": _l("inadmissible"),
}


def _lang() -> str:
    locale = get_locale()
    return locale.language if locale is not None else "en"


def _date(value) -> str:
    return format_date(value, format="medium") if value else ""


def _filters() -> dict[str, str]:
    args = request.args
    return {
        k: args.get(k, "").strip()
        for k in ("status", "kind", "language", "q", "closed")
        if args.get(k, "").strip()
    }


def _workspace(filters: dict[str, str]):
    status = filters.get("status")
    return queries.workspace(
        hub(),
        g.account.agency_id,
        include_closed=filters.get("closed") == "1",
        status=status if status in STATUSES else None,
        kind=filters.get("kind") if filters.get("kind") in KINDS else None,
        language=filters.get("language") if filters.get("language") in LANGUAGES else None,
        text=filters.get("q"),
    )


def _code_names(codes) -> dict[str, str]:
    return {c.code: c.name(_lang()) for c in codes}


@bp.get("/agency")
@agency_staff_only
def workspace():
    filters = _filters()
    ws = _workspace(filters)
    return render_template(
        "admin/workspace.html",
        ws=ws,
        name=ws.names.get(_lang()) or ws.agency_name,
        filters=filters,
        show_closed=filters.get("closed") == "1",
        kinds=KINDS,
        statuses=STATUSES,
        languages=LANGUAGES,
        code_names=_code_names(ws.codes),
        date=_date,
        now=hub().clock.now(),
    )


@bp.get("/agency/export.csv")
@agency_staff_only
def workspace_export():
    """The list as filtered, as CSV; no cell a spreadsheet would run as a formula."""
    ws = _workspace(_filters())
    names = _code_names(ws.codes)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            _("Case"),
            _("Your reference"),
            _("Kind"),
            _("Domain"),
            _("Language of the consumer"),
            _("Status"),
            _("Your status"),
            _("Acknowledge by"),
            _("Answer due"),
            _("Past due"),
            _("Filed"),
        ]
    )
    for line in ws.lines:
        writer.writerow(
            [
                queries.csv_cell(v)
                for v in (
                    line.reference,
                    "" if line.provisional else (line.agency_reference or ""),
                    str(KINDS.get(line.kind, line.kind)),
                    line.domain,
                    line.language,
                    str(STATUSES.get(line.status, line.status)),
                    names.get(line.agency_status or "", line.agency_status or ""),
                    line.acknowledge_due_at.date().isoformat() if line.acknowledge_due_at else "",
                    line.answer_due_at.date().isoformat() if line.answer_due_at else "",
                    _("yes") if line.past_due_at else "",
                    line.created_at.date().isoformat(),
                )
            ]
        )
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{g.account.agency_id}-cases.csv"'
    )
    return response


def _case_or_404(reference: str):
    view = queries.agency_case(hub(), g.account.agency_id, reference)
    if view is None:
        abort(404)
    return view


@bp.get("/agency/cases/<reference>")
@agency_staff_only
def workspace_case(reference: str):
    view = _case_or_404(reference)
    ws_codes = queries.status_codes(hub(), g.account.agency_id)
    names = _code_names(ws_codes)
    acknowledged = bool(view.agency_reference) and not view.agency_reference_provisional
    return render_template(
        "admin/workspace_case.html",
        case=view,
        acknowledged=acknowledged,
        delivered=view.agency_reference is not None,
        codes=ws_codes,
        code_names=names,
        closing=[c for c in ws_codes if c.status == "resolved"],
        progress=[c for c in ws_codes if c.status in ("received", "in_progress")],
        reasons={r: REASONS.get(r, r) for r in queries.information_reasons(hub(), view.agency_id)},
        targets=queries.referral_targets(hub(), view.agency_id, _lang()),
        kinds=KINDS,
        statuses=STATUSES,
        languages=LANGUAGES,
        outcomes=OUTCOMES,
        summary=[(SUMMARY[k], view.summary[k]) for k in SUMMARY if k in view.summary],
        date=_date,
        when=lambda v: format_datetime(v, format="short") if v else "",
    )


def _done(result, success: str) -> None:
    if result.outcome == "applied":
        flash(success)
    elif result.outcome == "duplicate":
        flash(_("This was already recorded."))
    else:
        flash(_("Kept on the timeline but not applied (%(why)s).", why=result.outcome))


def _act(reference: str, action: str, success: str, *args, **kwargs):
    try:
        result = operations.agency_action(hub(), g.account, action, reference, *args, **kwargs)
    except operations.NotFound:
        abort(404)
    except operations.Refused as exc:
        flash(str(exc))
    else:
        _done(result, success)
    return redirect(url_for("admin.workspace_case", reference=reference))


@bp.post("/agency/cases/<reference>")
@agency_staff_only
def workspace_status(reference: str):
    code = request.form.get("status", "")
    return _act(
        reference,
        "status",
        _("Status %(code)s recorded.", code=code),
        code,
        message=request.form.get("message"),
    )


@bp.post("/agency/cases/<reference>/acknowledge")
@agency_staff_only
def workspace_acknowledge(reference: str):
    return _act(
        reference,
        "acknowledge",
        _("Acknowledged. The consumer sees your reference."),
        request.form.get("agency_reference", ""),
        message=request.form.get("message"),
    )


@bp.post("/agency/cases/<reference>/information")
@agency_staff_only
def workspace_information(reference: str):
    return _act(
        reference,
        "information",
        _("Your question was sent to the consumer."),
        request.form.get("reason", ""),
        request.form.get("text"),
    )


@bp.post("/agency/cases/<reference>/message")
@agency_staff_only
def workspace_message(reference: str):
    return _act(
        reference, "message", _("Your message was sent to the consumer."), request.form.get("text")
    )


@bp.post("/agency/cases/<reference>/close")
@agency_staff_only
def workspace_close(reference: str):
    code = request.form.get("status", "")
    return _act(
        reference,
        "status",
        _("The case is closed."),
        code,
        message=request.form.get("message"),
        allowed=("resolved",),
    )


@bp.post("/agency/cases/<reference>/not-competent")
@agency_staff_only
def workspace_not_competent(reference: str):
    return _act(
        reference,
        "not_competent",
        _("Recorded as not competent; the case goes to the competent body."),
        refer_to=request.form.get("refer_to") or None,
        message=request.form.get("message"),
    )


@bp.post("/agency/cases/<reference>/documents")
@agency_staff_only
def workspace_upload(reference: str):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a file to send."))
        return redirect(url_for("admin.workspace_case", reference=reference))
    try:
        [checked] = operations.check_all([(upload.filename, upload.read())])
    except operations.AttachmentRefused as exc:
        flash(exc.detail)
        return redirect(url_for("admin.workspace_case", reference=reference))
    return _act(
        reference,
        "document",
        _("The document was sent to the consumer."),
        checked,
        request.form.get("text"),
    )


@bp.get("/agency/cases/<reference>/documents/<int:document_id>")
@agency_staff_only
def workspace_document(reference: str, document_id: int):
    found = queries.agency_document(hub(), g.account.agency_id, reference, document_id)
    if found is None:
        abort(404)
    doc, data = found
    response = Response(data, mimetype=doc.content_type)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(doc.filename)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
