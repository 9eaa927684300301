"""One view of a case (hub/caseview.py) behind the API, the front desk's tracking page and
`loket cases show`: a complaint about a fake webshop fans out to the Consumer Mediation Service
(REST) and informs the Economic Inspection (SFTP, which knows the case only by its file name until
its batch numbers it). SQLite and PostgreSQL, a real sshd and the REST simulator."""

from __future__ import annotations

import html
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from click.testing import CliRunner
from sqlalchemy import update

from hub import caseview
from hub.models import Assignment
from loket.cli import main as cli
from scheduler.worker import Worker
from tests.support.cases import COMPLAINT, INSPECTION, MEDIATION


@pytest.fixture
def hub(inspection_hub):
    return inspection_hub


NO_ANSWER = "No individual answer"


def file_and_open(client) -> tuple[str, str]:
    filed = client.post("/api/v1/cases", json=COMPLAINT).get_json()
    reference, token = filed["reference"], filed["tracking_token"]
    assert client.get(f"/en/track/{reference}?k={token}").status_code == 200  # sets the cookie
    return reference, token


def api_lines(client, reference: str, token: str) -> tuple[dict, list[tuple]]:
    body = client.get(
        f"/api/v1/cases/{reference}", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    day = _day(body["expected_answer_by"])
    lines = [
        (
            line["agency"],
            line["status"],
            None if line["agency_reference_provisional"] else line["agency_reference"],
            line["agency_reference"] if line["agency_reference_provisional"] else None,
            _day(line["answer_by"]),
        )
        for line in body["agencies"]
    ]
    return {"status": body["status"], "expected": day}, lines


def _day(iso: str | None) -> str | None:
    """The day in Brussels, as the page and the CLI name it."""
    if iso is None:
        return None
    return datetime.fromisoformat(iso).astimezone(ZoneInfo("Europe/Brussels")).date().isoformat()


def page_lines(client, reference: str) -> tuple[dict, list[tuple]]:
    """The tracking page's cards, read back into the API's terms."""
    page = html.unescape(client.get(f"/en/track/{reference}").get_data(as_text=True))
    status = re.search(r'class="status-now" data-status="([a-z_]+)"', page).group(1)
    expected = re.search(r"Expected answer by (.+?)\.</p>", page)
    lines = [
        (agency, line_status, None if ref == "—" else re.sub(r"<[^>]+>", "", ref), None, due)
        for line_status, agency, due, ref in re.findall(
            r'<li class="line line-([a-z_]+)" data-agency="([a-z-]+)">.*?'
            r'<dd data-fact="expected">(.*?)</dd>.*?<dd data-fact="reference">(.*?)</dd>',
            page,
            flags=re.S,
        )
    ]
    return {"status": status, "expected": expected.group(1) if expected else None}, lines


def cli_lines(hub, reference: str) -> tuple[dict, list[tuple]]:
    result = CliRunner().invoke(cli, ["cases", "show", reference], obj=hub)
    assert result.exit_code == 0, result.output
    head, *rest = result.output.splitlines()
    expected = re.search(r"expected answer by (\S+)", head)
    lines = []
    for row in rest:
        m = re.match(
            r"\s+#\d+\s+(\S+)\s+(\S+)\s+(\S+)( \(provisional\))?\s+(?:answer by (\S+))?", row
        )
        if m is None:
            break  # the timeline follows
        agency, status, ref, provisional, due = m.groups()
        ref = None if ref == "-" else ref
        lines.append(
            (agency, status, None if provisional else ref, ref if provisional else None, due)
        )
    return {
        "status": re.search(r"status (\S+)", head).group(1),
        "expected": expected and expected.group(1),
    }, lines


def long_date(day: str | None) -> str | None:
    return format_date(datetime.fromisoformat(day), format="long", locale="en_BE") if day else None


def test_the_api_the_tracking_page_and_the_cli_show_the_same_lines(
    client,
    hub,
    inspection,
):
    reference, token = file_and_open(client)
    Worker(hub, "w").dispatch_once()

    api_case, api = api_lines(client, reference, token)
    page_case, page = page_lines(client, reference)
    cli_case, shown = cli_lines(hub, reference)

    name = f"{reference}.{INSPECTION}.1.xml"
    assert [line[0] for line in api] == [MEDIATION, INSPECTION]
    [mediation, informed] = api
    assert informed[1:4] == ("sent", None, name)  # flagged: the file name is a stand-in
    assert mediation[2] is not None  # the mediation service numbered the case on receipt
    assert shown == api  # the CLI names the same lines, references and answer days
    # the page: the same lines and statuses, the agency's own reference, no stand-in; the line
    # that only informs the inspection promises no answer date to the consumer
    assert page == [
        (agency, status, ref, None, long_date(due) if agency != INSPECTION else NO_ANSWER)
        for agency, status, ref, _, due in api
    ]
    assert api_case["status"] == page_case["status"] == cli_case["status"]
    # the expected answer comes from the mediation service, the one that answers the consumer
    assert api_case["expected"] == mediation[4] == cli_case["expected"]
    assert page_case["expected"] == long_date(mediation[4])

    inspection.batch.run_once()  # the inspection's batch numbers the file
    Worker(hub, "w").poll_agency(INSPECTION)
    numbered = (INSPECTION, "received", "EI-2026-000001", None)
    assert api_lines(client, reference, token)[1][1][:4] == numbered
    assert cli_lines(hub, reference)[1][1][:4] == numbered
    assert page_lines(client, reference)[1][1][:4] == numbered
    page = html.unescape(client.get(f"/en/track/{reference}").get_data(as_text=True))
    assert name not in page  # not even on the timeline


def test_a_line_that_only_informs_never_holds_the_expected_answer_date(
    client,
    hub,
    inspection,
):
    reference, token = file_and_open(client)
    with hub.db.session() as s:
        s.execute(
            update(Assignment)
            .where(Assignment.agency_id == MEDIATION)
            .values(status="resolved", outcome="solved")
        )
    view = caseview.for_consumer(hub, reference, token)
    assert [line.agency_id for line in view.open_lines] == [INSPECTION]
    assert view.open_lines[0].answer_by is not None
    assert view.expected_answer_by is None
    assert caseview.for_consumer(hub, reference, "wrong") is None
    assert caseview.for_operator(hub, reference) is not None
