"""The public statistics page (`/<lang>/statistics`): no sign-in, cacheable, read from rollups.

Every chart is followed by a table of the same figures and a CSV and JSON download of that
table. Counts under `statistics.K` are shown as "fewer than 10" (and drawn as no bar); a share
or median needs at least K lines. The case-level open data (hub/opendata.py) is downloaded from
here too, as the files `loket stats rollup` / housekeeping last wrote.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, g, render_template, send_file
from flask_babel import gettext as _

from hub import charts, lifecycle, opendata, statistics, taxonomy
from hub.frontdesk.views import bp, hub

CACHE = "public, max-age=300"


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    desc: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Any, ...]], ...]  # (row header, cells); None = fewer than K
    svg: str


def _kind_names() -> dict[str, str]:
    return {
        "question": _("Questions"),
        "complaint": _("Complaints"),
        "report": _("Reports"),
        "mediation": _("Requests for mediation"),
    }


def _area_name(area: str) -> str:
    spec = taxonomy.load()["areas"].get(area)
    return spec["label"].get(g.lang, spec["label"]["en"]) if spec else area


def _agency_name(agency_id: str) -> str:
    directory = hub().directory
    return directory[agency_id].name(g.lang) if agency_id in directory else agency_id


def _outcome_name(value: str) -> str:
    if value in lifecycle.statuses():
        return lifecycle.label(value, g.lang)
    return lifecycle.outcome_label(value, g.lang) or value


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole >= statistics.K else None


def _tables(f: statistics.Figures) -> list[Table]:
    shown = statistics.shown
    tables = []

    areas = sorted(f.areas_by_month, key=lambda a: -sum(f.areas_by_month[a].values()))
    t = _("Cases per problem area and month")
    d = _("Cases filed in each of the last %(n)d months, per problem area.", n=len(f.months))
    series = [(_area_name(a), [f.areas_by_month[a][m] for m in f.months]) for a in areas]
    tables.append(
        Table(
            "areas",
            t,
            d,
            (_("Problem area"), *f.months),
            tuple(
                (_area_name(a), tuple(shown(f.areas_by_month[a][m]) for m in f.months))
                for a in areas
            ),
            charts.stacked(
                "chart-areas",
                t,
                d,
                f.months,
                [(n, [v if v >= statistics.K else 0 for v in vs]) for n, vs in series],
            ),
        )
    )

    names = _kind_names()
    t, d = _("Cases per kind"), _("Cases filed in the period, per kind of request.")
    kinds = [k for k in names if k in f.kinds] + [k for k in f.kinds if k not in names]
    values = [shown(f.kinds.get(k, 0)) for k in kinds]
    labels = [names.get(k, k) for k in kinds]
    tables.append(
        Table(
            "kinds",
            t,
            d,
            (_("Kind"), _("Cases")),
            tuple((lab, (v,)) for lab, v in zip(labels, values, strict=True)),
            charts.bars("chart-kinds", t, d, labels, values),
        )
    )

    services = f.services
    t = _("Cases per service")
    d = _("Cases each service received in the period (a case can go to several services).")
    labels = [_agency_name(s.agency_id) for s in services]
    tables.append(
        Table(
            "services",
            t,
            d,
            (
                _("Service"),
                _("Cases"),
                _("Answered"),
                _("Answered on time (%)"),
                _("Median days to first answer"),
            ),
            tuple(
                (
                    lab,
                    (
                        shown(s.lines),
                        shown(s.answered),
                        _pct(s.on_time, s.answered),
                        s.median_days,
                    ),
                )
                for lab, s in zip(labels, services, strict=True)
            ),
            charts.bars("chart-services", t, d, labels, [shown(s.lines) for s in services]),
        )
    )
    t = _("Share answered on time, per service")
    d = _(
        "Of the cases a service answered in the period, the share it answered before its "
        "deadline. Shown for services with at least %(k)d answers.",
        k=statistics.K,
    )
    tables.append(
        Table(
            "on-time",
            t,
            d,
            (_("Service"), _("Answered on time (%)")),
            tuple(
                (lab, (_pct(s.on_time, s.answered),))
                for lab, s in zip(labels, services, strict=True)
            ),
            charts.bars(
                "chart-on-time",
                t,
                d,
                labels,
                [_pct(s.on_time, s.answered) for s in services],
                percent=True,
            ),
        )
    )
    t = _("Median time to first answer, per service")
    d = _(
        "Half of the cases had a first answer within this many days. Shown for services with "
        "at least %(k)d answers.",
        k=statistics.K,
    )
    tables.append(
        Table(
            "answer-time",
            t,
            d,
            (_("Service"), _("Median days to first answer")),
            tuple((lab, (s.median_days,)) for lab, s in zip(labels, services, strict=True)),
            charts.bars("chart-answer-time", t, d, labels, [s.median_days for s in services]),
        )
    )

    t, d = _("Outcomes"), _("How the cases that ended in the period ended.")
    outcomes = list(f.outcomes)
    labels = [_outcome_name(o) for o in outcomes]
    values = [shown(f.outcomes[o]) for o in outcomes]
    tables.append(
        Table(
            "outcomes",
            t,
            d,
            (_("Outcome"), _("Cases")),
            tuple((lab, (v,)) for lab, v in zip(labels, values, strict=True)),
            charts.bars("chart-outcomes", t, d, labels, values),
        )
    )

    t = _("Did the answer solve the problem?")
    d = _("What consumers answered after a service closed their case.")
    answers = {"yes": _("Yes"), "partly": _("Partly"), "no": _("No")}
    values = [shown(f.ratings.get(a, 0)) for a in answers]
    tables.append(
        Table(
            "satisfaction",
            t,
            d,
            (_("Answer"), _("Consumers")),
            tuple((lab, (v,)) for lab, v in zip(answers.values(), values, strict=True)),
            charts.bars("chart-satisfaction", t, d, list(answers.values()), values),
        )
    )
    return tables


_rendered: dict[tuple[str, str], list[Table]] = {}
_pages: dict[tuple[str, str, bool], str] = {}
_lock = threading.Lock()


def _cached_tables() -> tuple[statistics.Figures, list[Table]]:
    """The tables with their charts, drawn once per figures version and language."""
    f = statistics.figures(hub().db, hub().clock.now())
    key = (f.version, g.lang)
    with _lock:
        hit = _rendered.get(key)
    if hit is None:
        hit = _tables(f)
        with _lock:
            if len(_rendered) > 16:
                _rendered.clear()
                _pages.clear()
            _rendered[key] = hit
    return f, hit


def _public(response: Response) -> Response:
    response.headers["Cache-Control"] = CACHE
    response.headers["Vary"] = "Accept-Encoding"
    return response


@bp.get("/statistics")
def statistics_page():
    """The same for every visitor until the next rollup run: rendered once per language (the
    page carries no form and nothing personal), then served from memory."""
    f, tables = _cached_tables()
    open_data = opendata.available(hub().settings.var_dir)
    key = (f.version, g.lang, open_data)
    with _lock:
        html = _pages.get(key)
    if html is None:
        html = render_template(
            "frontdesk/statistics.html",
            tables=tables,
            figures=f,
            k=statistics.K,
            first_month=f.months[0],
            last_month=f.months[-1],
            computed_at=f.computed_at,
            open_data=open_data,
        )
        with _lock:
            _pages[key] = html
    return _public(Response(html, mimetype="text/html"))


def _table(table_id: str) -> Table:
    _f, tables = _cached_tables()
    found = next((t for t in tables if t.id == table_id), None)
    if found is None:
        abort(404)
    return found


@bp.get("/statistics/<table_id>.csv")
def statistics_csv(table_id: str):
    t = _table(table_id)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(t.columns)
    for head, cells in t.rows:
        w.writerow([head, *("" if c is None else c for c in cells)])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{table_id}.csv"'
    return _public(response)


@bp.get("/statistics/<table_id>.json")
def statistics_json(table_id: str):
    t = _table(table_id)
    body = {
        "title": t.title,
        "description": t.desc,
        "columns": list(t.columns),
        "rows": [[head, *cells] for head, cells in t.rows],
        "note": f"null: fewer than {statistics.K}",
    }
    response = Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")
    return _public(response)


@bp.get("/statistics/open-data/<name>")
def statistics_open_data(name: str):
    path = opendata.file(hub().settings.var_dir, name)
    if path is None:
        abort(404)
    return _public(send_file(path, as_attachment=True, download_name=name, max_age=300))
