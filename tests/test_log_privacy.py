"""No personal data and no secret in any log line, over the whole flow.

The web app runs as `loket serve` would run it (gunicorn, its access log, the app's own log on
stderr); the worker and the simulated agencies run in this process, every logger captured at
DEBUG (the root logger and werkzeug's request log of the simulators). Two consumers file, one
through the pages (with a document) and one through the JSON API; the worker delivers; the
agency asks for information and the status comes back; the consumer answers on the tracking
page, reads it and the API; a stranger guesses. Then every line is searched for the private
codes, names, email addresses, phone numbers, and the agencies' API keys and the app's secrets.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime

import pytest
import requests
from loket_simulators.rest_agency import profiles

from scheduler.worker import Worker
from tests.support.cases import CASE, TELECOM
from tests.support.env import API_KEYS, free_port, wait_http
from tests.support.frontdesk import FORM, PDF, case_form, hidden_fields

PAGE_PERSON = {
    "consumer_name": "Griet Vandenbroucke",
    "consumer_email": "griet.vdb@voorbeeld.be",
    "consumer_phone": "+32 471 23 45 67",
}
API_PERSON = {
    "name": "Florentin Maréchal",
    "email": "f.marechal@exemple.be",
    "phone": "0478 98 76 54",
}
METRICS_TOKEN = "metrics-Rk8vQ2nZ5wLp"
SECRET_KEY = "flask-secret-Hj3kL9mN2pQ7"


def _variants(phone: str) -> set[str]:
    digits = re.sub(r"\D", "", phone)
    return {phone, digits, digits[-9:]}


@pytest.fixture
def web(processes, tmp_path, hub, sims):
    """`loket serve` on the test's database (its SQLite file, or its PostgreSQL database)."""
    port = free_port()
    env = {
        "LOKET_DATABASE_URL": hub.db.url,
        "LOKET_VAR_DIR": str(tmp_path / "var"),
        "LOKET_METRICS_TOKEN": METRICS_TOKEN,
        "LOKET_SECRET_KEY": SECRET_KEY,
        "LOKET_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **sims.env(),
    }
    processes.start("web", ["-m", "loket.cli", "serve", "--port", str(port), "--workers", "1"], env)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    return base


def _token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=10).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_whole_flow_logs_no_code_name_email_phone_or_secret(
    web, processes, hub, sims, clock, caplog
):
    caplog.set_level(logging.DEBUG)  # the root logger: worker, adapters, hub, simulators
    # werkzeug's own level too: a simulator's main() run earlier in this process sets it to WARNING
    caplog.set_level(logging.DEBUG, logger="werkzeug")
    sims.system(TELECOM).profile = profiles()[TELECOM].with_info()
    # 1. through the pages, with a document
    consumer = requests.Session()
    form = FORM.format(lang="fr")
    answers = "?a_contacted_trader=yes&a_court_case_pending=no&a_trader_is_business=yes"
    review = consumer.post(  # the form, then "check your answers", whose Send files the case
        web + form,
        data={
            "csrf_token": _token(consumer, web + form + answers),
            **case_form("fr", **PAGE_PERSON),
            "step": "review",
        },
        timeout=30,
    )
    assert 'name="step" value="send"' in review.text, review.text[:1000]
    filed = consumer.post(
        web + form,
        data=hidden_fields(review.text),
        files={"attachments": ("facture.pdf", io.BytesIO(PDF), "application/pdf")},
        allow_redirects=True,
        timeout=30,
    )
    assert filed.status_code == 200, filed.text[:1000]
    page_ref = filed.url.rsplit("/", 1)[1]
    page_code = re.search(r'\?k=([^"&]+)"', filed.text).group(1)
    # 2. through the JSON API
    api_case = {**CASE, "consumer": API_PERSON}
    created = requests.post(web + "/api/v1/cases", json=api_case, timeout=30)
    assert created.status_code == 201, created.text
    api_ref, api_code = created.json()["reference"], created.json()["tracking_token"]
    # 3. delivered; the agency asks for information; the status comes back. The web process
    # filed on the real clock: the test's clock (the worker's and simulators') catches up first.
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds() + 1)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    for _ in range(4):
        worker.poll_agency(TELECOM)
        clock.advance(seconds=60)
    # 4. the consumer opens the link, reads the case, answers with a document
    opened = consumer.get(f"{web}/fr/track/{page_ref}?k={page_code}", timeout=10)
    assert opened.status_code == 200
    track = consumer.get(f"{web}/fr/track/{page_ref}", timeout=10)
    assert f"Votre dossier {page_ref}" in track.text
    action = re.search(rf'action="(/fr/track/{page_ref}/reply/\d+)(?:#[\w-]+)?"', track.text)
    assert action, "the agency's information request reached the tracking page"
    replied = consumer.post(
        web + action.group(1),
        data={
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', track.text).group(1),
            "text": f"Voici la facture. {PAGE_PERSON['consumer_name']}",
        },
        files={"files": ("bijlage.pdf", io.BytesIO(PDF), "application/pdf")},
        timeout=30,
    )
    assert replied.status_code == 200 and "Votre réponse a été envoyée" in replied.text
    worker.dispatch_once()  # the answer goes to the agency
    worker.poll_agency(TELECOM)
    # 5. the API reader, a stranger guessing, the metrics scraper
    status = requests.get(
        f"{web}/api/v1/cases/{api_ref}", headers={"Authorization": f"Bearer {api_code}"}, timeout=10
    )
    assert status.status_code == 200
    requests.get(f"{web}/fr/track/{api_ref}?k=not-{api_code[:8]}", timeout=10)
    requests.get(f"{web}/en/track/{page_ref}?k={api_code}", timeout=10)  # a real code, wrong case
    requests.get(f"{web}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)

    lines = processes.log("web").splitlines()
    here = web.split("//", 1)[1]
    for record in caplog.records:
        if record.name.startswith("urllib3") and here in record.getMessage():
            continue  # this test's own HTTP client talking to the web app, not Loket's log
        lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
        if record.exc_info and record.exc_info[1] is not None:
            lines.append(repr(record.exc_info[1]))
    assert any(f"/fr/track/{page_ref}" in line for line in lines), "the access log was captured"
    assert any("werkzeug" in line for line in lines), "the simulators' request log was captured"
    secrets = {
        "tracking code (page)": {page_code},
        "tracking code (API)": {api_code},
        "name": {PAGE_PERSON["consumer_name"], API_PERSON["name"], "Vandenbroucke", "Maréchal"},
        "email": {PAGE_PERSON["consumer_email"], API_PERSON["email"]},
        "phone": _variants(PAGE_PERSON["consumer_phone"]) | _variants(API_PERSON["phone"]),
        "agency API key": set(API_KEYS.values()),
        "metrics token": {METRICS_TOKEN},
        "secret key": {SECRET_KEY},
    }
    found = [
        (what, line[:200])
        for what, values in secrets.items()
        for value in values
        for line in lines
        if value.lower() in line.lower()
    ]
    assert not found, found
