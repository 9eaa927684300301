"""Market signals for the Economic Inspection (role `inspector`), and each agency's ratings.

Inspectors see cases grouped by trader (hub/signals.py explains the grouping and the spike
rule), each trader's trend per problem area, the alerts sent, the trader list as CSV, and each
case with links to the others about the same trader. No other role opens these pages (403).
Agency staff see how consumers rated their own answers, comments included, read-only.
"""

from __future__ import annotations

import csv
import functools
import io

from flask import Response, abort, g, render_template

from admin.views import agency_staff_only, bp, hub
from hub import queries


def inspectors_only(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.account.role != "inspector":
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _cell(value) -> str:
    """The one CSV rule (adapters/base.py csv_cell): a cell a spreadsheet would run as a formula
    is written as text (a leading apostrophe)."""
    return queries.csv_cell("" if value is None else str(value))


@bp.get("/signals")
@inspectors_only
def signals():
    traders, alerts = queries.market_signals(hub())
    return render_template(
        "admin/signals.html", traders=traders, alerts=alerts, now=hub().clock.now()
    )


@bp.get("/signals/traders.csv")
@inspectors_only
def signals_csv():
    traders, _alerts = queries.market_signals(hub())
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(
        [
            "trader_key",
            "name",
            "name_variants",
            "enterprise_numbers",
            "websites",
            "cases_26_weeks",
            "cases_7_days",
            "spike_areas",
        ]
    )
    for t in traders:
        w.writerow(
            [
                _cell(v)
                for v in (
                    t.key,
                    t.name,
                    " | ".join(t.names),
                    " ".join(t.numbers),
                    " ".join(t.domains),
                    t.total,
                    sum(t.this_week.values()),
                    " ".join(t.spikes),
                )
            ]
        )
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="traders.csv"'
    return response


@bp.get("/signals/traders/<path:key>")
@inspectors_only
def signals_trader(key: str):
    t = queries.trader(hub(), key)
    if t is None:
        abort(404)
    now = hub().clock.now()
    areas = sorted({c.area for c in t.cases})
    trend = {a: _weekly(t, a, now) for a in areas}
    return render_template("admin/signals_trader.html", t=t, trend=trend, now=now)


def _weekly(t, area: str, now, weeks: int = 9) -> list[int]:
    out = [0] * weeks
    for c in t.cases:
        if c.area != area:
            continue
        age = (now - c.created_at).days // 7
        if 0 <= age < weeks:
            out[weeks - 1 - age] += 1
    return out


@bp.get("/signals/cases/<reference>")
@inspectors_only
def signals_case(reference: str):
    report, trader = queries.report(hub(), reference)
    if report is None:
        abort(404)
    others = [c for c in trader.cases if c.reference != report.reference] if trader else []
    return render_template("admin/signals_case.html", r=report, t=trader, others=others)


@bp.get("/agency/ratings")
@agency_staff_only
def agency_ratings():
    return render_template(
        "admin/ratings.html", view=queries.agency_ratings(hub(), g.account.agency_id)
    )
