"""The public statistics page in a real browser, in each language: every chart is an SVG image
with a name, followed by a table of the same figures, and axe-core finds no violation at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub import statistics
from hub.db import Database
from tests.support import statsdata
from tests.support.browser import AXE, new_page, shot

pytestmark = pytest.mark.e2e

TITLES = {
    "nl": "Statistieken",
    "fr": "Statistiques",
    "de": "Statistiken",
    "en": "Statistics",
}


@pytest.fixture(scope="module")
def figures(stack):
    db = Database(stack.database_url)
    try:
        now = datetime.now(UTC)
        statsdata.generate(db, 3000, now, days=330, traders=60)
        statistics.rollup(db, now, full=True)
    finally:
        db.dispose()


@pytest.mark.parametrize("lang", ["nl", "fr", "de", "en"])
def test_the_statistics_page_has_charts_with_their_tables_and_no_axe_violation(
    browser, stack, figures, lang
):
    page = new_page(browser, stack, f"{lang}-BE")
    try:
        answer = page.goto(f"/{lang}/statistics", timeout=90000)  # charts drawn at first view
        assert answer.status == 200
        assert answer.headers["cache-control"].startswith("public")
        assert page.locator("html").get_attribute("lang") == lang
        assert page.locator("h1").inner_text() == TITLES[lang]
        sections = page.locator("section.stat")
        assert sections.count() == 7
        for i in range(sections.count()):
            section = sections.nth(i)
            chart = section.locator("svg[role=img]")
            assert chart.count() == 1
            labelled_by = (chart.get_attribute("aria-labelledby") or "").split()
            assert len(labelled_by) == 2 and chart.locator("title").count() == 1
            table = section.locator("table.stats-table")
            assert table.locator("tbody tr").count() >= 1
            assert section.locator("a[href$='.csv']").count() == 1
        # the figures have values (the generated cases), not only "fewer than 10"
        assert page.locator("table[data-table=kinds] tbody td").first.inner_text().isdigit()
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']}))
                .violations.map(v => ({id: v.id, impact: v.impact,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
        )
        assert violations == [], json.dumps(violations, indent=1)
        shot(page, f"statistics-{lang}")
    finally:
        page.close()
