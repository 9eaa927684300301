"""What `loket serve` writes to its access log: the path of each request, never the query.
The private code of a case travels as `?k=` in the link the consumer receives; an access log is
read by far more people than the case."""

from __future__ import annotations

import shutil

import requests

from loket.accesslog import without_query
from tests.support.env import free_port, wait_http, wait_until

SECRET = "Zq7pW3kT9vXbN2mR"


def test_the_access_log_of_loket_serve_keeps_paths_and_drops_the_private_code(
    processes, tmp_path, sqlite_template
):
    db_path = tmp_path / "web.db"
    shutil.copy(sqlite_template, db_path)
    port = free_port()
    processes.start(
        "web",
        ["-m", "loket.cli", "serve", "--port", str(port), "--workers", "1"],
        {"LOKET_DATABASE_URL": f"sqlite:///{db_path}"},
    )
    web = f"http://127.0.0.1:{port}"
    wait_http(web + "/healthz")
    requests.get(
        f"{web}/en/track/LK-7F3K-9QX2?k={SECRET}",
        headers={"Referer": f"{web}/en/track/LK-7F3K-9QX2?k={SECRET}&lang=en"},
        allow_redirects=False,
        timeout=10,
    )

    def logged() -> str | None:
        text = processes.log("web")
        return text if "/en/track/LK-7F3K-9QX2" in text else None

    log = wait_until(
        logged,
        10,
        "the request in the access log",
        interval=0.1,
    )
    assert "GET /en/track/LK-7F3K-9QX2?… HTTP/1.1" in log
    assert SECRET not in log and "k=" not in log


def test_query_strings_leave_request_lines_and_referrers():
    assert without_query("GET /en/track/LK-1?k=abc HTTP/1.1") == "GET /en/track/LK-1?… HTTP/1.1"
    assert without_query("https://loket.example/nl/track/LK-1?k=abc") == (
        "https://loket.example/nl/track/LK-1?…"
    )
    assert without_query("GET /healthz HTTP/1.1") == "GET /healthz HTTP/1.1"
    assert without_query("-") == "-"
