"""The front desk's pages. Every route starts with the language (`/<lang>/...`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from babel import Locale
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date, format_datetime
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hub import caseview, consumer, i18n, intake, lifecycle, taxonomy
from hub import reference as references
from hub.config import CONTRACTS_DIR
from hub.frontdesk import (
    FILING_LIMIT,
    TRACKING_LIMIT,
    UPLOAD_BODY_LIMIT,
    csrf,
    form,
    limiter,
    texts,
)
from hub.routing import COMPLAINT_DATE_FIELD, POSTCODE_FIELD, Situation, region_of
from hub.services import Hub

LANG = "<any(nl, fr, de, en):lang>"
bp = Blueprint("frontdesk", __name__, url_prefix=f"/{LANG}")
CASE_COOKIE = "loket_case_{reference}"
CASE_COOKIE_DAYS = 400


def hub() -> Hub:
    return current_app.extensions["loket"]


# ------------------------------------------------------------------------------------ plumbing


@bp.url_value_preprocessor
def _pull_lang(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.lang = (values or {}).pop("lang", None) or "en"


@bp.url_defaults
def _push_lang(_endpoint: str, values: dict[str, Any]) -> None:
    values.setdefault("lang", getattr(g, "lang", "en"))


@bp.before_request
def _guard() -> None:
    if request.method == "POST":
        request.max_content_length = UPLOAD_BODY_LIMIT
        csrf.protect()


@bp.after_request
def _headers(response: Response) -> Response:
    h = response.headers
    h.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    )
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if "track" in (request.endpoint or "") or "filed" in (request.endpoint or ""):
        h["Cache-Control"] = "no-store"
    if response.mimetype == "text/html":
        response.set_cookie(
            i18n.LANG_COOKIE, g.lang, max_age=365 * 86400, samesite="Lax", httponly=True
        )
    return response


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    lang = getattr(g, "lang", None)
    return {
        "lang": lang,
        "languages": i18n.LANGUAGES,
        "language_names": i18n.NAMES,
        "switch_url": _switch_url,
    }


def _switch_url(other: str) -> str:
    """This page in another language (a GET of the same address; a form starts again)."""
    if request.endpoint and request.endpoint.startswith("frontdesk.") and request.method == "GET":
        args = {**(request.view_args or {}), **request.args.to_dict(), "lang": other}
        args.pop("k", None)
        return url_for(request.endpoint, **args)
    return url_for("frontdesk.start", lang=other)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(f"frontdesk/{template}", **context), status)
    return response


def _error(status: int, title: str, text: str, **extra: Any) -> Response:
    return _page("error.html", status, title=title, text=text, **extra)


@bp.errorhandler(CSRFError)
def _csrf_failed(_exc: CSRFError) -> Response:
    return _error(
        400,
        _("Your form could not be accepted"),
        _(
            "For your security, each form carries a code that proves it was sent from this "
            "site, and this one was missing or wrong (or the page was open for very long). "
            "Nothing was stored. Go back, reload the page and send the form again."
        ),
    )


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Response:
    return _error(
        413,
        _("Your files are too large"),
        _(
            "What you sent is larger than %(total)d MB. We accept at most %(per_file)d MB per "
            "file and %(all)d MB in all. Nothing was stored. Go back with your browser's Back "
            "button (what you typed is usually still there), and add smaller or fewer files.",
            total=UPLOAD_BODY_LIMIT // 1048576,
            per_file=form.attachments.MAX_FILE_BYTES // 1048576,
            all=form.attachments.MAX_TOTAL_BYTES // 1048576,
        ),
    )


@bp.errorhandler(429)
def _too_many(_exc: HTTPException) -> Response:
    return _error(
        429,
        _("Too many attempts"),
        _(
            "We received too many attempts from your connection in a short time. Wait an hour "
            "and try again. If you lost your private link, use the link in the email we sent "
            "you when you filed the case."
        ),
    )


@bp.errorhandler(404)
def _not_found(_exc: HTTPException) -> Response:
    return _error(
        404,
        _("Page not found"),
        _("This page does not exist (any more). Start again from the home page."),
    )


@bp.route("/<path:_rest>")
def not_found(_rest: str):
    abort(404)


# ------------------------------------------------------------------------------- guided start


def _areas() -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for sub in taxonomy.subareas():
        area = sub.code.split(".", 1)[0]
        entry = out.setdefault(area, {"code": area, "label": _t(sub.area_label), "subareas": []})
        entry["subareas"].append(sub)
    return list(out.values())


def _t(texts_by_lang: dict[str, str]) -> str:
    return texts_by_lang.get(g.lang) or texts_by_lang.get("en", "")


def _subarea(area: str, sub: str) -> taxonomy.Subarea:
    found = taxonomy.get(f"{area}.{sub}")
    if found is None:
        abort(404)
    return found


@bp.get("/")
def start():
    return _page("start.html", areas=_areas())


@bp.get("/problem/<area>/")
def area(area: str):
    found = next((a for a in _areas() if a["code"] == area), None)
    if found is None:
        abort(404)
    return _page("area.html", area=found, t=_t)


@bp.get("/problem/<area>/<sub>/")
def subarea(area: str, sub: str):
    s = _subarea(area, sub)
    return _page("subarea.html", sub=s, area=area, name=sub, t=_t, kinds=texts.KINDS)


def _offered(s: taxonomy.Subarea, kind: str) -> None:
    if kind not in s.options:
        abort(404)


def _recipients(
    s: taxonomy.Subarea,
    kind: str,
    answers: dict[str, bool] | None = None,
    postcode: str | None = None,
):
    today = hub().clock.now().date()
    situation = Situation(kind, s.code, g.lang, None, answers or {}, None, today, postcode)
    return hub().router.route(situation, skip_missing=True)


def _agency_view(agency_id: str, why: str, stage: str, basis: str = "") -> dict[str, Any]:
    mapping = hub().directory[agency_id]
    return {
        "id": agency_id,
        "name": mapping.name(g.lang),
        "why": why,
        "basis": basis,
        "will": _will(stage, mapping.body),
        **_referral_view(mapping),
    }


def _referral_view(mapping) -> dict[str, Any]:
    """A referral body (not connected): what it does and where the consumer reaches it."""
    if mapping is None or mapping.connected:
        return {}
    r = mapping.referral
    what = r.get("what") or {}
    return {
        "referral": {
            "what": what.get(g.lang) or what.get("en", ""),
            "url": r.get("url"),
            "form_url": r.get("form_url"),
            "email": r.get("email"),
            "phone": r.get("phone"),
        }
    }


def _needs(s: taxonomy.Subarea, kind: str) -> set[str]:
    """The facts besides yes/no answers that routing or a body needs for this problem: the
    postcode (regional competence) and the date of the complaint to the trader."""
    return {
        m.field
        for m in hub().router.questions(Situation(kind, s.code, g.lang, None, {}, None))
        if not m.field.startswith("answers.")
    }


def _postcode_arg() -> str | None:
    value = (request.values.get("postcode") or "").strip()
    return value or None


def _will(stage: str, body: str | None) -> str:
    """What the agency will do with the case, in the page's language."""
    if stage == "inform":
        return str(texts.INFORMED_WILL)
    return str(texts.BODY_WILL.get(body or "", ""))


def _questions(s: taxonomy.Subarea, kind: str, answers: dict[str, bool] | None = None):
    """The yes/no questions for this problem, given the answers so far: an answer to a fact
    (did the flight leave from Belgium?) may close or open others."""
    situation = Situation(kind, s.code, g.lang, None, answers or {}, None)
    return [m for m in hub().router.questions(situation) if m.field.startswith("answers.")]


def _answered(s: taxonomy.Subarea, kind: str) -> tuple[list, dict[str, bool]]:
    """The questions to ask and the yes/no answers the request gives to them."""
    answers: dict[str, bool] = {}
    questions: list = []
    for _round in range(4):  # each round may open the questions a fact leads to
        questions = _questions(s, kind, answers)
        found = {
            q.check: request.values[f"a_{q.check}"] == "yes"
            for q in questions
            if request.values.get(f"a_{q.check}") in ("yes", "no")
        }
        if found == answers:
            break
        answers = found
    return questions, answers


@bp.get("/problem/<area>/<sub>/<kind>/")
def kind(area: str, sub: str, kind: str):
    s = _subarea(area, sub)
    _offered(s, kind)
    decision = _recipients(s, kind)
    return _page(
        "kind.html",
        sub=s,
        area=area,
        name=sub,
        kind=kind,
        t=_t,
        kinds=texts.KINDS,
        agencies=[
            _agency_view(r.agency_id, r.reason, r.stage, r.basis) for r in decision.recipients
        ],
        questions=_questions(s, kind),
        needs_postcode=POSTCODE_FIELD in _needs(s, kind),
        postcode="",
        answers={},
        errors={},
    )


@bp.get("/problem/<area>/<sub>/<kind>/check")
def check(area: str, sub: str, kind: str):
    """The pre-check answers: go on to the form, or say what to do first."""
    s = _subarea(area, sub)
    _offered(s, kind)
    questions, answers = _answered(s, kind)
    asked = set(request.args.getlist("asked"))
    pending = [q.check for q in questions if q.check not in answers]
    # a question an answer just opened (the flight did not leave from Belgium: from where?) is
    # asked, not an error
    errors = {c: _("Choose yes or no.") for c in pending if c in asked or not asked}
    needs_postcode = POSTCODE_FIELD in _needs(s, kind)
    postcode = _postcode_arg()
    if needs_postcode and region_of(postcode) is None:
        errors["postcode"] = _("Enter a Belgian postal code of four digits, for example 5000.")
    if errors or pending:
        decision = _recipients(s, kind, answers, postcode)
        return _page(
            "kind.html",
            422 if errors else 200,
            sub=s,
            area=area,
            name=sub,
            kind=kind,
            t=_t,
            kinds=texts.KINDS,
            agencies=[
                _agency_view(r.agency_id, r.reason, r.stage, r.basis) for r in decision.recipients
            ],
            questions=questions,
            needs_postcode=needs_postcode,
            postcode=postcode or "",
            answers={k: ("yes" if v else "no") for k, v in answers.items()},
            errors=errors,
        )
    decision = _recipients(s, kind, answers, postcode)
    if decision.refusals and not decision.recipients:
        return _advice(s, kind, decision.refusals)
    query = {f"a_{k}": ("yes" if v else "no") for k, v in answers.items()}
    if needs_postcode and postcode:
        query["postcode"] = postcode
    return redirect(url_for(".case_form", area=area, sub=sub, kind=kind, **query), 303)


def _letter() -> str:
    path = CONTRACTS_DIR / "letters" / f"complaint-to-trader.{g.lang}.md"
    text = path.read_text(encoding="utf-8").replace("**", "")
    blanks = {
        "trader_name": _("[name of the company]"),
        "consumer_name": _("[your name]"),
        "date_of_purchase": _("[date]"),
        "what_happened": _("[what happened, with dates and amounts]"),
        "what_you_ask": _("[what you ask: a refund, a repair, a corrected bill, ...]"),
        "deadline_days": "10",
    }
    for key, value in blanks.items():
        text = text.replace("{" + key + "}", value)
    return text


def _advice(s: taxonomy.Subarea, kind: str, refusals, status: int = 200) -> Response:
    items = [
        {
            "agency": hub().directory[r.agency_id].name(g.lang),
            "reason": r.reason,
            "advice": r.advice,
            "check": r.check,
        }
        for r in refusals
    ]
    letter = _letter() if any(r.check == "contacted_trader" for r in refusals) else None
    return _page(
        "advice.html",
        status,
        sub=s,
        kind=kind,
        t=_t,
        refusals=items,
        letter=letter,
        area=s.code.split(".")[0],
        name=s.code.split(".")[1],
    )


@bp.get("/letter/complaint-to-the-company.txt")
def letter():
    response = make_response(_letter())
    response.mimetype = "text/plain"
    name = _("letter-to-the-company") + ".txt"
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return response


# ----------------------------------------------------------------------------------- the form


def _anonymous_allowed(recipients) -> bool:
    """The agencies all take a case the trader must not learn the consumer's name from (their
    mapping carries `case.anonymous_to_trader` to them)."""
    if not recipients:
        return False
    return all(
        any(f.source == "case.anonymous_to_trader" for f in hub().directory[r.agency_id].fields)
        for r in recipients
    )


def _country_choices() -> list[tuple[str, str]]:
    from hub.routing import EU_EEA

    names = Locale.parse(f"{g.lang}_BE").territories
    eu = sorted(((c, names.get(c, c)) for c in EU_EEA), key=lambda x: x[1])
    return [("BE", names.get("BE", "BE")), *eu]


def _form_answers(s: taxonomy.Subarea, kind: str) -> dict[str, bool] | None:
    questions, answers = _answered(s, kind)
    return answers if all(q.check in answers for q in questions) else None


@bp.route("/problem/<area>/<sub>/<kind>/form", methods=["GET", "POST"])
@limiter.shared_limit(
    lambda: current_app.config[FILING_LIMIT],
    scope="filing",
    methods=["POST"],
    deduct_when=lambda r: r.status_code == 303,
)
def case_form(area: str, sub: str, kind: str):
    s = _subarea(area, sub)
    _offered(s, kind)
    answers = _form_answers(s, kind)
    needs = _needs(s, kind)
    postcode = _postcode_arg() if POSTCODE_FIELD in needs else None
    if answers is None or (POSTCODE_FIELD in needs and region_of(postcode) is None):
        return redirect(url_for(".kind", area=area, sub=sub, kind=kind), 303)  # ask them first
    decision = _recipients(s, kind, answers, postcode)
    if decision.refusals and not decision.recipients:
        return _advice(s, kind, decision.refusals)
    agencies = [_agency_view(r.agency_id, r.reason, r.stage, r.basis) for r in decision.recipients]
    anonymous_allowed = _anonymous_allowed(decision.recipients)
    context = {
        "sub": s,
        "area": area,
        "name": sub,
        "kind": kind,
        "t": _t,
        "kinds": texts.KINDS,
        "agencies": agencies,
        "answers": {k: ("yes" if v else "no") for k, v in answers.items()},
        "anonymous_allowed": anonymous_allowed,
        "countries": _country_choices(),
        "language_in_own_words": Locale.parse(g.lang).get_display_name(g.lang),
        "needs_trader": kind in form.NEEDS_TRADER,
        "needs_date": kind in form.NEEDS_DATE,
        "needs_complaint_date": COMPLAINT_DATE_FIELD in needs,
        "postcode": postcode or "",
        "limits": {
            "per_file": form.attachments.MAX_FILE_BYTES,
            "files": form.attachments.MAX_FILES,
            "mb": form.attachments.MAX_FILE_BYTES // 1048576,
            "types": form.TYPES,
        },
    }
    if request.method == "GET":
        filled = form.Filled(values={name: "" for name in form.TEXT_FIELDS})
        filled.values["trader_country"] = "BE"
        return _page("form.html", filled=filled, **context)
    filled = form.read(request.form, request.files)
    form.check(
        filled,
        kind,
        request.files,
        hub().clock.now().date(),
        needs_complaint_date=COMPLAINT_DATE_FIELD in needs,
    )
    data = None
    if not filled.errors:
        try:
            data = form.to_case(
                filled,
                kind=kind,
                domain=s.code,
                language=g.lang,
                answers=answers,
                anonymous_allowed=anonymous_allowed,
                clock=hub().clock,
                postcode=postcode,
            )
        except ValueError as exc:
            filled.errors[str(exc)] = _("Check this field.")
    if data is None:
        return _page("form.html", 422, filled=filled, **context)
    h = hub()
    try:
        filed = intake.file_case(
            h.db,
            data,
            router=h.router,
            directory=h.directory,
            clock=h.clock,
            random=h.random,
            uploads=filled.uploads,
        )
    except intake.NeedsAnswers:
        return redirect(url_for(".kind", area=area, sub=sub, kind=kind), 303)
    except intake.NotAdmissible as exc:
        return _advice(s, kind, exc.refusals)
    session["filed"] = {
        "reference": filed.reference,
        "token": filed.token,
        "not_sent": [
            {
                "agency": h.directory[r.agency_id].name(g.lang),
                "reason": r.reason,
                "advice": r.advice,
            }
            for r in filed.not_sent
        ],
    }
    response = redirect(url_for(".filed", reference=filed.reference), 303)
    _remember_case(response, filed.reference, filed.token)
    return response


# ------------------------------------------------------------------------------- confirmation


def _due(value: datetime | None) -> str | None:
    return format_date(value, format="long") if value else None


def _lines(view: caseview.CaseView) -> list[dict[str, Any]]:
    """The view's lines as the pages show them (names, labels and dates in the page's language)."""
    return [
        {
            "id": line.id,
            "agency_id": line.agency_id,
            "name": line.name(g.lang),
            "status": line.consumer_status,
            "status_label": lifecycle.label(line.consumer_status, g.lang),
            "reference": line.shown_reference,
            "why": line.reason,
            "basis": line.basis,
            **_referral_view(hub().directory.agencies.get(line.agency_id)),
            "will": _will(line.stage, line.body) if line.names else "",
            "acknowledge_by": _due(line.acknowledge_by),
            "answer_by": _due(line.answer_by),
            "past_due": line.past_due,
            "paused": line.clock_paused,
            "terminal": line.terminal,
            "waiting": line.needs_answer,
            "answered": line.answered and not line.terminal,
            "answers": line.answers_consumer,
            "reply_by": _due(line.reply_by),
            "outcome": line.outcome,
            "outcome_label": lifecycle.outcome_label(line.outcome, g.lang),
        }
        for line in view.lines
    ]


@bp.get("/filed/<reference>")
def filed(reference: str):
    held = session.get("filed") or {}
    if held.get("reference") != reference:
        abort(404)
    view = caseview.for_consumer(hub(), reference, held.get("token"), documents=True)
    if view is None:
        abort(404)
    link = f"{request.url_root.rstrip('/')}" + url_for(
        ".track", reference=reference, k=held["token"]
    )
    return _page(
        "filed.html",
        reference=reference,
        link=link,
        lines=_lines(view),
        email=view.consumer_email or "",
        kind=view.kind,
        kinds=texts.KINDS,
        not_sent=held.get("not_sent") or [],
    )


# ----------------------------------------------------------------------------------- tracking


def _cookie_name(reference: str) -> str:
    return CASE_COOKIE.format(reference=reference)


def _remember_case(response: Response, reference: str, token: str) -> None:
    """The private code in an HttpOnly, SameSite=Strict cookie scoped to this case's pages (one
    per language prefix), so the address bar, history and referrers never hold it."""
    secure = request.is_secure or hub().settings.mail.public_url.startswith("https://")
    for lang in i18n.LANGUAGES:
        response.set_cookie(
            _cookie_name(reference),
            token,
            max_age=CASE_COOKIE_DAYS * 86400,
            path=f"/{lang}/track/{reference}",
            httponly=True,
            samesite="Strict",
            secure=secure,
        )


def _forget_case(response: Response, reference: str) -> None:
    for lang in i18n.LANGUAGES:
        response.delete_cookie(_cookie_name(reference), path=f"/{lang}/track/{reference}")


def _failed_guess(r: Response) -> bool:
    return r.status_code == 404


tracking_limit = limiter.shared_limit(
    lambda: current_app.config[TRACKING_LIMIT], scope="tracking", deduct_when=_failed_guess
)


@bp.route("/track", methods=["GET", "POST"])
@tracking_limit
def open_case():
    """Open a case with its reference and private code (the link's `k`), e.g. on a new device."""
    if request.method == "GET":
        return _page("open.html", reference=request.args.get("reference", ""), error=None)
    typed = (request.form.get("reference") or "").strip()
    code = (request.form.get("code") or "").strip()
    if "k=" in code:  # they pasted the whole link
        code = code.split("k=", 1)[1].split("&", 1)[0]
    normalised = references.normalise(typed) or typed
    with hub().db.session(read_only=True) as s:
        found = consumer.find_case(s, normalised, code) is not None
    if not found:
        return _page(
            "open.html",
            404,
            reference=typed,
            error=_(
                "No case opens with this reference and code. Check both in the email we sent "
                "you when you filed the case."
            ),
        )
    response = redirect(url_for(".track", reference=normalised), 303)
    _remember_case(response, normalised, code)
    return response


def _token(reference: str) -> str | None:
    return request.cookies.get(_cookie_name(reference))


@bp.get("/track/<reference>")
@tracking_limit
def track(reference: str):
    h = hub()
    k = request.args.get("k")
    if k is not None:
        with h.db.session(read_only=True) as s:
            ok = consumer.find_case(s, reference, k) is not None
        if not ok:
            return _page(
                "open.html",
                404,
                reference=reference,
                error=_(
                    "This link does not open a case. Copy the whole link from the email, or "
                    "enter the reference and the private code below."
                ),
            )
        # A page, not a redirect: a link followed from a webmail is a cross-site navigation,
        # and a SameSite=Strict cookie set on it would not travel on a redirect it started.
        response = _page("opening.html", target=url_for(".track", reference=reference))
        _remember_case(response, reference, k)
        return response
    return _tracking_page(reference)


def _tracking_page(reference: str, status: int = 200, **extra: Any) -> Response:
    token = _token(reference)
    view = caseview.for_consumer(hub(), reference, token, documents=True) if token else None
    if view is None:
        response = _page("open.html", reference=reference, error=None)
        if token:
            _forget_case(response, reference)
        return response
    lines = _lines(view)
    names = {line.id: shown["name"] for line, shown in zip(view.lines, lines, strict=True)}
    timeline = []
    said = []
    for e in view.timeline:
        line = view.line(e.line_id)
        label = (
            lifecycle.label(e.consumer_to, g.lang)
            if (e.consumer_to and e.kind in ("agency_status", "agency_note", None))
            else ""
        )
        reference_in_text = (
            line.shown_reference if line and e.kind in ("delivered", "agency_reference") else None
        )
        entry = {
            "at": format_datetime(e.at, format="medium"),
            "iso": e.at.isoformat(timespec="seconds"),
            "text": _ref_unbroken(
                texts.event_text(
                    e.kind, names.get(line.id, "") if line else "", label, reference_in_text
                ),
                reference_in_text,
            ),
            "agency_said": e.message if e.actor == "agency" and e.message else None,
        }
        timeline.append(entry)
        if entry["agency_said"]:
            said.append({"agency": names.get(line.id, "") if line else "", **entry})
    messages = [
        {
            "agency": names.get(m.line_id or 0, ""),
            "text": m.text,
            "at": format_datetime(m.at, format="medium"),
            "files": [{"id": f.id, "name": f.name, "size": f.size} for f in m.files],
            "mine": m.author == "consumer",
        }
        for m in view.messages
        if m.author == "consumer" and not m.text.startswith("The consumer withdraws")
    ]
    return _page(
        "track.html",
        status,
        reference=reference,
        status_code=view.status,
        status_label=lifecycle.label(view.status, g.lang),
        next_step=_next_step(view),
        reply_by=_due(view.reply_by),
        acting=[
            shown["name"]
            for line, shown in zip(view.lines, lines, strict=True)
            if line.answered and not line.terminal
        ],
        lines=lines,
        timeline=list(reversed(timeline)),
        said=list(reversed(said)),
        messages=messages,
        files=[{"id": f.id, "name": f.name, "size": f.size} for f in view.files],
        kind=view.kind,
        kinds=texts.KINDS,
        filed_at=format_date(view.created_at, format="long"),
        can_withdraw=view.can_withdraw,
        expected=_due(view.expected_answer_by),
        past_due=view.past_due,
        notices=get_flashed_messages(),
        reply_errors=extra.get("reply_errors", {}),
        reply_text=extra.get("reply_text", ""),
        reply_to=extra.get("reply_to"),
    )


def _ref_unbroken(text: str, reference: str | None) -> Markup:
    """The sentence, escaped, with the agency's reference in it kept on one line (.ref)."""
    shown = escape(text)
    if not reference:
        return shown
    ref = escape(reference)
    return Markup(str(shown).replace(str(ref), f'<span class="ref">{ref}</span>'))


def _next_step(view: caseview.CaseView) -> str:
    """What the consumer should do now: answer while a service waits for them (the page shows
    by when); once they have answered, nothing until the service asks again."""
    if view.waiting_lines:
        return texts.NEXT_STEP["waiting_for_consumer"]
    if view.answered_lines and view.status == "in_progress":
        return texts.ANSWER_SENT
    return texts.NEXT_STEP.get(view.status, "")


def _case_or_open(reference: str):
    token = _token(reference)
    if not token:
        return None, redirect(url_for(".track", reference=reference), 303)
    return token, None


@bp.post("/track/<reference>/reply/<int:line>")
def reply(reference: str, line: int):
    token, away = _case_or_open(reference)
    if away:
        return away
    errors: dict[str, str] = {}
    text = (request.form.get("text") or "").strip()
    uploads = form.read_files(request.files, errors, "files")
    if not errors and not text and not uploads:
        errors["text"] = _("Write an answer or add a document.")
    if len(text) > 10000:
        errors["text"] = _("Your answer can be at most 10000 characters long.")
    if errors:
        return _tracking_page(reference, 422, reply_errors=errors, reply_text=text, reply_to=line)
    h = hub()
    try:
        consumer.reply(h.db, reference, token or "", line, text, uploads, h.clock.now())
    except LookupError:
        return redirect(url_for(".track", reference=reference), 303)
    except consumer.NotAllowed:
        flash(_("This service's part of the case is closed; it takes no more answers."))
        return redirect(url_for(".track", reference=reference), 303)
    flash(_("Your answer was sent. The service continues with your case."))
    return redirect(url_for(".track", reference=reference, _anchor="status"), 303)


@bp.route("/track/<reference>/withdraw", methods=["GET", "POST"])
def withdraw(reference: str):
    token, away = _case_or_open(reference)
    if away:
        return away
    h = hub()
    if request.method == "GET":
        with h.db.session(read_only=True) as s:
            if consumer.find_case(s, reference, token) is None:
                return redirect(url_for(".track", reference=reference), 303)
        return _page("withdraw.html", reference=reference)
    reason = (request.form.get("reason") or "").strip()[:1000]
    try:
        consumer.withdraw(h.db, reference, token or "", reason, h.clock.now())
    except LookupError:
        return redirect(url_for(".track", reference=reference), 303)
    except consumer.NotAllowed:
        flash(_("This case is already closed."))
        return redirect(url_for(".track", reference=reference), 303)
    flash(_("You withdrew your case. The services that had it are told."))
    return redirect(url_for(".track", reference=reference), 303)


@bp.get("/track/<reference>/files/<int:file_id>")
def download(reference: str, file_id: int):
    """A file of the case, only ever as a download, with the type found when it was checked."""
    token = _token(reference)
    h = hub()
    try:
        found = consumer.attachment(h.db, reference, token or "", file_id)
    except LookupError:
        abort(404)
    if found.content_type not in form.attachments.ALLOWED:
        abort(404)
    response = Response(found.data, mimetype=found.content_type)
    response.headers["Content-Disposition"] = (
        f"attachment; filename*=UTF-8''{quote(found.filename)}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "no-store"
    return response
