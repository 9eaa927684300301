"""The front desk's pages. Every route starts with the language (`/<lang>/...`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from babel import Locale
from babel.units import format_unit
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
from flask_babel import format_currency, format_date, format_time
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hub import (
    caseview,
    consumer,
    gdpr,
    i18n,
    intake,
    letters,
    lifecycle,
    ratelimits,
    taxonomy,
    trust,
)
from hub import reference as references
from hub.frontdesk import (
    FILING_LIMIT,
    UPLOAD_BODY_LIMIT,
    csrf,
    form,
    limiter,
    texts,
)
from hub.routing import COMPLAINT_DATE_FIELD, POSTCODE_FIELD, Situation, region_of
from hub.services import Hub
from mappings.names import spaced

LANG = "<any(nl, fr, de, en):lang>"
bp = Blueprint("frontdesk", __name__, url_prefix=f"/{LANG}")
CASE_COOKIE = "loket_case_{reference}"
CASE_COOKIE_DAYS = 400
# The confirmation page reads the code from a cookie of its own path, for this long.
FILED_COOKIE_SECONDS = 3600


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
    # A page shared caches may keep (the statistics) sets no cookie: a cache would hand it on.
    public = response.headers.get("Cache-Control", "").startswith("public")
    if response.mimetype == "text/html" and not public:
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
        "case_types": texts.CASE_TYPES,
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


@bp.errorhandler(ratelimits.Exhausted)
def _exhausted(exc: ratelimits.Exhausted) -> Response:
    response = _too_many(None)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(429)
def _too_many(_exc: HTTPException | None) -> Response:
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


# -------------------------------------------------------------------------------- trust pages


def _identity() -> dict[str, Any]:
    i = trust.IDENTITY
    return {
        **i,
        "controller": _t(i["controller"]),
        "address": _t(i["address"]),
        "dpa": {**i["dpa"], "name": _t(i["dpa"]["name"]), "address": _t(i["dpa"]["address"])},
    }


def _duration(p: trust.Period) -> str:
    return format_unit(p.amount, f"duration-{p.unit}", length="long", locale=g.lang)


def _trust(page: str, title: str, **context: Any) -> Response:
    """A trust page: its text is written per language (a notice reads as a whole, not as
    sentences put together), its facts come from the context."""
    return _page(
        "trust/page.html",
        title=title,
        content=f"frontdesk/trust/{page}.{g.lang}.html",
        identity=_identity(),
        **context,
    )


@bp.get("/privacy")
def privacy():
    """The privacy notice: the recipients are the bodies of the mappings, the retention the
    configured periods (hub/trust.py)."""
    d = hub().directory
    bodies = sorted(
        ({"name": d[i].name(g.lang), "connected": d[i].connected} for i in d.ids()),
        key=lambda b: b["name"].casefold(),
    )
    kept = trust.retention()
    return _trust(
        "privacy",
        _("Privacy notice"),
        connected=[b["name"] for b in bodies if b["connected"]],
        referral=[b["name"] for b in bodies if not b["connected"]],
        retention={
            "closed": [
                (str(texts.KIND_PLURALS[k]), _duration(p))
                for k, p in kept.closed.items()
                if k in texts.KIND_PLURALS
            ],
            "withdrawn": _duration(kept.by_status["withdrawn"])
            if "withdrawn" in kept.by_status
            else None,
            "inactive": _duration(kept.inactive),
        },
    )


def cookies_set() -> list[dict[str, str]]:
    """The cookies the front desk sets, named as the code names them, with what they are for
    and how long they live."""
    return [
        {
            "name": current_app.config["SESSION_COOKIE_NAME"],
            "purpose": _(
                "Keeps the security code of the forms (protection against forged forms, CSRF) "
                "and, right after filing, your reference for the confirmation page."
            ),
            # the front desk never makes its session permanent: a browser-session cookie
            "duration": _("Until you close your browser."),
        },
        {
            "name": i18n.LANG_COOKIE,
            "purpose": _("Remembers the language you chose."),
            "duration": format_unit(365, "duration-day", length="long", locale=g.lang),
        },
        {
            "name": CASE_COOKIE.format(reference="LK-…"),
            "purpose": _(
                "Holds the private code of a case you filed or opened on this device, so that "
                "its page opens without the link. It is sent only to the pages of that case."
            ),
            "duration": format_unit(CASE_COOKIE_DAYS, "duration-day", length="long", locale=g.lang),
        },
    ]


@bp.get("/cookies")
def cookies():
    return _trust("cookies", _("Cookies"), cookies=cookies_set())


@bp.get("/accessibility")
def accessibility():
    return _trust(
        "accessibility",
        _("Accessibility statement"),
        audit=trust.AUDIT,
        audit_date=format_date(date.fromisoformat(trust.AUDIT["date"]), format="long"),
    )


@bp.get("/contact")
def contact():
    return _trust("contact", _("Contact"))


# ------------------------------------------------------------------------------- guided start


def _areas() -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for sub in taxonomy.subareas():
        area = sub.code.split(".", 1)[0]
        entry = out.setdefault(area, {"code": area, "label": _t(sub.area_label), "subareas": []})
        entry["subareas"].append(sub)
    return list(out.values())


def _t(texts_by_lang: dict[str, str]) -> str:
    return spaced(texts_by_lang.get(g.lang) or texts_by_lang.get("en", ""), g.lang)


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
    return _page(
        "subarea.html",
        sub=s,
        area=area,
        name=sub,
        t=_t,
        kinds=texts.KINDS,
        same_service=_same_service(s),
    )


def _same_service(s: taxonomy.Subarea):
    """The body a complaint and a request for mediation both go to, when they do (telecom: the
    ombudsman takes both), so the page can say the choice does not matter."""
    if not {"complaint", "mediation"} <= set(s.options):
        return None
    handlers = {
        kind: [r.agency_id for r in _recipients(s, kind).recipients if r.stage == "handle"]
        for kind in ("complaint", "mediation")
    }
    if handlers["complaint"] and handlers["complaint"] == handlers["mediation"]:
        return hub().directory[handlers["complaint"][0]].forms(g.lang)
    return None


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
        "forms": mapping.forms(g.lang),
        "why": why,
        "basis": basis,
        "will": _will(stage, mapping.body),
        **texts.working_languages(mapping.languages, g.lang),
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


def _blanks() -> dict[str, str]:
    """The slots of the model letters as blanks to fill in, in the page's language."""
    return {
        "consumer_name": _("[your name]"),
        "consumer_address": _("[your address]"),
        "customer_number": _("[your customer number]"),
        "date": _("[place and date]"),
        "trader_name": _("[name of the company]"),
        "trader_address": _("[address of the company]"),
        "purchase_date": _("[date of the purchase or order]"),
        "what_happened": _("[what happened, with dates and amounts]"),
        "what_you_ask": _("[what you ask: a refund, a repair, a corrected bill, ...]"),
        "order_date": _("[date of the order]"),
        "order_number": _("[order number]"),
        "product": _("[what you ordered]"),
        "amount": _("[amount paid]"),
        "delivery_date": _("[promised delivery date]"),
        "bill_number": _("[number of the bill]"),
        "bill_date": _("[date of the bill]"),
        "what_is_wrong": _("[what is wrong on the bill]"),
        "disputed_amount": _("[disputed amount]"),
        "travel_date": _("[date of the journey]"),
        "journey": _("[station of departure] to [station of arrival]"),
        "train_number": _("[train number]"),
        "ticket": _("[your ticket or pass, and its number]"),
        "delay": _("[delay at arrival, in minutes]"),
        "costs": _("[costs the delay caused, with amounts, or: none]"),
    }


def _letter(letter_id: str, deadline: str) -> letters.Letter:
    return letters.render(letter_id, g.lang, deadline, _blanks())


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
    # a service asks the consumer to complain to the company first: the letter for this
    # problem, with the longest of those services' deadlines
    first = [r.agency_id for r in refusals if r.check == "contacted_trader"]
    letter = _letter(letters.letter_for(s.code), letters.deadline_for(first)) if first else None
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


@bp.get("/letter/<letter_id>/<deadline>.txt")
def letter(letter_id: str, deadline: str):
    if not letters.known(letter_id, deadline):
        abort(404)
    response = make_response(_letter(letter_id, deadline).text())
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
        "date_parts": form.DATE_PARTS,
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
    if request.form.get("change"):
        # back from "check your answers": the form again, everything kept, no errors shown
        return _page("form.html", filled=filled, **context)
    form.check(
        filled,
        kind,
        hub().clock.now().date(),
        needs_complaint_date=COMPLAINT_DATE_FIELD in needs,
        month_names=_month_names(),
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
    context["summary"] = _summary(filled, context)
    if request.form.get("step") != "send":
        # the case is filed only from the "check your answers" page
        return _page("check.html", filled=filled, **context)
    filled.uploads = form.read_files(request.files, filled.errors, "attachments")
    if filled.errors:
        return _page("check.html", 422, filled=filled, **context)
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
            confirm=ratelimits.confirmation_allowed,
        )
    except intake.NeedsAnswers:
        return redirect(url_for(".kind", area=area, sub=sub, kind=kind), 303)
    except intake.NotAdmissible as exc:
        return _advice(s, kind, exc.refusals)
    # The session (signed, not encrypted, sent to every page) never holds the code: only the
    # case's own path-scoped cookies do (`_remember_case`).
    session["filed"] = {
        "reference": filed.reference,
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
    _remember_case(response, filed.reference, filed.token, filed_page=True)
    return response


def _month_names() -> dict[str, int]:
    """The page language's month names, wide and abbreviated, lower case -> 1..12."""
    months = Locale.parse(f"{g.lang}_BE").months["format"]
    return {
        str(name).lower().rstrip("."): number
        for width in ("wide", "abbreviated")
        for number, name in months[width].items()
    }


def _shown_date(found: form.PartialDate | None) -> str:
    if found is None:
        return ""
    if found.precision == "month":
        return format_date(found.value, format="MMMM y")
    return format_date(found.value, format="long")


def _summary(filled: form.Filled, context: dict[str, Any]) -> list[dict[str, str]]:
    """The "check your answers" rows: what the consumer entered, each with the field its
    "Change" button goes back to."""
    v = filled.values
    countries = dict(context["countries"])
    rows = [
        ("consumer_name", _("Your name"), v["consumer_name"]),
        ("consumer_email", _("Your email address"), v["consumer_email"]),
        ("consumer_phone", _("Your phone number"), v["consumer_phone"]),
        ("trader_name", _("Name of the company"), v["trader_name"]),
        ("trader_enterprise_number", _("Enterprise number"), v["trader_enterprise_number"]),
        ("trader_website", _("Website of the company"), v["trader_website"]),
        (
            "trader_country",
            _("Country where the company is established"),
            countries.get(v["trader_country"], v["trader_country"]),
        ),
        ("description", _("Describe what happened"), v["description"]),
        ("incident_date", _("When did it happen?"), _shown_date(filled.dates.get("incident_date"))),
    ]
    if context["needs_complaint_date"]:
        rows.append(
            (
                "complaint_date",
                _("When did you complain to the company in writing?"),
                _shown_date(filled.dates.get("complaint_date")),
            )
        )
    amount = form.parse_amount(v["amount"]) if v["amount"] else None
    rows.append(
        (
            "amount",
            _("How much is at stake, in euros?"),
            format_currency(amount, "EUR") if amount is not None else "",
        )
    )
    rows.append(("consent_share", _("Your consent"), _("Yes") if filled.consent_share else ""))
    if context["anonymous_allowed"]:
        rows.append(
            (
                "anonymous",
                _("Keep my name from the company"),
                _("Yes") if filled.anonymous else _("No"),
            )
        )
    return [{"field": f, "label": label, "value": value} for f, label, value in rows]


# ------------------------------------------------------------------------------- confirmation


def _due(value: datetime | None) -> str | None:
    return format_date(value, format="long") if value else None


def _when(at: datetime) -> str:
    """When something happened, as a consumer needs it: the date; the time only for today."""
    if format_date(at, format="short") == format_date(hub().clock.now(), format="short"):
        return format_time(at, format="short")
    return format_date(at, format="long")


def _lines(view: caseview.CaseView) -> list[dict[str, Any]]:
    """The view's lines as the pages show them (names, labels and dates in the page's language)."""
    return [
        {
            "id": line.id,
            "agency_id": line.agency_id,
            "name": line.name(g.lang),
            "forms": line.forms(g.lang),
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
    token = request.cookies.get(_cookie_name(reference))
    if held.get("reference") != reference or not token:
        abort(404)
    view = caseview.for_consumer(hub(), reference, token, documents=True)
    if view is None:
        abort(404)
    link = f"{request.url_root.rstrip('/')}" + url_for(".track", reference=reference, k=token)
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


def _remember_case(
    response: Response, reference: str, token: str, *, filed_page: bool = False
) -> None:
    """The private code in an HttpOnly, SameSite=Strict cookie scoped to this case's pages (one
    per language prefix), so the address bar, history and referrers never hold it, and no other
    page (nor the general session cookie) carries it. Right after filing, the confirmation page
    of this case gets one too, for an hour."""
    secure = request.is_secure or hub().settings.mail.public_url.startswith("https://")
    paths = [(f"/{lang}/track/{reference}", CASE_COOKIE_DAYS * 86400) for lang in i18n.LANGUAGES]
    if filed_page:  # in every language: the page's language switcher keeps it
        paths += [(f"/{lang}/filed/{reference}", FILED_COOKIE_SECONDS) for lang in i18n.LANGUAGES]
    for path, max_age in paths:
        response.set_cookie(
            _cookie_name(reference),
            token,
            max_age=max_age,
            path=path,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )


def _forget_case(response: Response, reference: str) -> None:
    for lang in i18n.LANGUAGES:
        response.delete_cookie(_cookie_name(reference), path=f"/{lang}/track/{reference}")


@bp.route("/track", methods=["GET", "POST"])
def open_case():
    """Open a case with its reference and private code (the link's `k`), e.g. on a new device."""
    if request.method == "GET":
        return _page("open.html", reference=request.args.get("reference", ""), error=None)
    ratelimits.guard_codes()
    typed = (request.form.get("reference") or "").strip()
    code = (request.form.get("code") or "").strip()
    if "k=" in code:  # they pasted the whole link
        code = code.split("k=", 1)[1].split("&", 1)[0]
    normalised = references.normalise(typed) or typed
    with hub().db.session(read_only=True) as s:
        found = consumer.find_case(s, normalised, code) is not None
    if not found:
        ratelimits.wrong_code(normalised)
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
def track(reference: str):
    h = hub()
    k = request.args.get("k")
    if k is not None or _token(reference):
        ratelimits.guard_codes()
    if k is not None:
        with h.db.session(read_only=True) as s:
            ok = consumer.find_case(s, reference, k) is not None
        if not ok:
            ratelimits.wrong_code(reference)
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
            ratelimits.wrong_code(reference)  # a wrong code in the cookie counts like any other
            _forget_case(response, reference)
        return response
    lines = _lines(view)
    forms = {line.id: line.forms(g.lang) for line in view.lines}
    timeline = []
    said = []
    for e in view.timeline:
        if e.kind == "agency_note":
            continue  # the operators' business: an automatic reply, an unknown or late code
        line = view.line(e.line_id)
        label = (
            lifecycle.label(e.consumer_to, g.lang)
            if (e.consumer_to and e.kind in ("agency_status", None))
            else ""
        )
        agency_said = e.message if e.actor == "agency" and e.message else None
        reference_in_text = (
            line.shown_reference if line and e.kind in ("delivered", "agency_reference") else None
        )
        entry = {
            "at": _when(e.at),
            "iso": e.at.isoformat(timespec="seconds"),
            "text": _ref_unbroken(
                texts.event_text(
                    e.kind, forms.get(line.id) if line else None, label, reference_in_text
                ),
                reference_in_text,
            ),
            # what the service asks for, in the consumer's language (the hub's words) ...
            "asks_for": texts.information_request(e.reason, None)
            if e.actor == "agency" and e.reason
            else None,
            # ... and the service's own words, never shown as the hub's: labelled, in their language
            "agency_said": agency_said,
            "said_lang": i18n.text_language(agency_said),
        }
        timeline.append(entry)
        if entry["agency_said"] or entry["asks_for"]:
            said.append(
                {"agency": forms.get(line.id, "") if line else "", "line_id": e.line_id, **entry}
            )
    messages = [
        {
            "agency": forms.get(m.line_id or 0, ""),
            "text": m.text,
            "at": _when(m.at),
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
        agency_files=[
            {"id": f.id, "name": f.name, "agency": forms.get(m.line_id or 0, "")}
            for m in view.messages
            if m.direction == "from_agency"
            for f in m.files
        ],
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
        **_rating_context(reference, token, view.lines, lines),
    )


def _rating_labels() -> dict[str, str]:
    return {"yes": _("Yes"), "partly": _("Partly"), "no": _("No")}


def _rating_context(reference: str, token: str, view_lines, lines) -> dict[str, Any]:
    """The resolved lines that answer the consumer, each with its rating if given."""
    rated = consumer.ratings(hub().db, reference, token)
    return {
        "rating_labels": _rating_labels(),
        "rate_lines": [
            {**shown, "rated": rated.get(line.id)}
            for line, shown in zip(view_lines, lines, strict=True)
            if line.consumer_status == "resolved" and line.answers_consumer
        ],
    }


@bp.post("/track/<reference>/rate/<int:line>")
def rate(reference: str, line: int):
    token, away = _case_or_open(reference)
    if away:
        return away
    h = hub()
    answer = request.form.get("answer") or ""
    if answer not in _rating_labels():
        flash(_("Choose yes, partly or no, then send your answer."))
        return redirect(url_for(".track", reference=reference, _anchor=f"rating-{line}"), 303)
    try:
        consumer.rate(
            h.db, reference, token or "", line, answer, request.form.get("comment"), h.clock.now()
        )
    except LookupError:
        return redirect(url_for(".track", reference=reference), 303)
    except consumer.NotAllowed:
        flash(_("This answer cannot be rated (it is not final yet, or you rated it already)."))
        return redirect(url_for(".track", reference=reference), 303)
    flash(_("Thank you for your answer."))
    return redirect(url_for(".track", reference=reference, _anchor=f"rating-{line}"), 303)


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
    ratelimits.guard_codes()
    return token, None


def _wrong_code(reference: str) -> Response:
    ratelimits.wrong_code(reference)
    return redirect(url_for(".track", reference=reference), 303)


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
    except consumer.WrongCode:
        return _wrong_code(reference)
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
                return _wrong_code(reference)
        return _page("withdraw.html", reference=reference)
    reason = (request.form.get("reason") or "").strip()[:1000]
    try:
        consumer.withdraw(h.db, reference, token or "", reason, h.clock.now())
    except consumer.WrongCode:
        return _wrong_code(reference)
    except consumer.NotAllowed:
        flash(_("This case is already closed."))
        return redirect(url_for(".track", reference=reference), 303)
    flash(_("You withdrew your case. The services that had it are told."))
    return redirect(url_for(".track", reference=reference), 303)


@bp.get("/track/<reference>/files/<int:file_id>")
def download(reference: str, file_id: int):
    """A file of the case, only ever as a download, with the type found when it was checked."""
    token = _token(reference)
    if not token:
        abort(404)
    ratelimits.guard_codes()
    h = hub()
    try:
        found = consumer.attachment(h.db, reference, token or "", file_id)
    except consumer.WrongCode:
        ratelimits.wrong_code(reference)
        abort(404)
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


# ------------------------------------------------------------------------------ personal data


def _privacy_page(reference: str, token: str, status: int = 200, error: str | None = None):
    view = gdpr.for_consumer(hub().db, reference, token)
    if view is None:
        return _wrong_code(reference)
    return _page(
        "privacy.html",
        status,
        reference=view.reference,
        erased_on=format_date(view.erased_at, format="long") if view.erased_at else None,
        keep_until=format_date(view.erase_after, format="long")
        if view.closed and view.erase_after
        else None,
        asked_on=format_date(view.pending.requested_at, format="long") if view.pending else None,
        due_on=format_date(view.pending.due_at, format="long") if view.pending else None,
        deadline_days=gdpr.ERASURE_DEADLINE.days,
        problem=error,
        notices=get_flashed_messages(),
    )


@bp.get("/track/<reference>/privacy")
def case_privacy(reference: str):
    """The consumer's personal data: download it, or ask for it to be erased."""
    token, away = _case_or_open(reference)
    if away:
        return away
    return _privacy_page(reference, token or "")


@bp.post("/track/<reference>/privacy/export")
def privacy_export(reference: str):
    """Everything held about the case, as a zip, served at once to the holder of its code."""
    token, away = _case_or_open(reference)
    if away:
        return away
    h = hub()
    raw = gdpr.consumer_export(h.db, reference, token or "", h.clock.now())
    if raw is None:
        return _wrong_code(reference)
    response = Response(raw, mimetype="application/zip")
    response.headers["Content-Disposition"] = (
        f"attachment; filename={quote(reference)}-personal-data.zip"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/track/<reference>/privacy/erase")
def privacy_erase(reference: str):
    """The consumer confirms they want their data erased; an operator does it in time."""
    token, away = _case_or_open(reference)
    if away:
        return away
    if request.form.get("confirm") != "yes":
        return _privacy_page(
            reference,
            token or "",
            422,
            _("Tick the box to confirm that you want your personal data erased."),
        )
    h = hub()
    try:
        asked = gdpr.consumer_requests_erasure(h.db, reference, token or "", h.clock.now())
    except gdpr.PrivacyError:
        return redirect(url_for(".case_privacy", reference=reference), 303)
    if asked is None:
        return _wrong_code(reference)
    flash(
        _(
            "We received your request. Your personal data will be erased by %(date)s at the "
            "latest.",
            date=format_date(asked.due_at, format="long"),
        )
    )
    return redirect(url_for(".case_privacy", reference=reference), 303)
