"""Market signals for the inspection, and the consumer's rating of an answer.

A burst of reports about one trader (typed in several ways) raises one alert for the week, kept
in the evidence log and mailed to the inspection; only inspectors open the signals pages; the
consumer rates a resolved answer once and only that service sees the comment.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from hub import accounts, consumer, signals
from hub.config import MailSettings
from hub.models import Assignment, AuditEntry, Case, Party, Rating, TraderAlert
from hub.reference import new_reference
from tests.support.backoffice import PASSWORD, sign_in
from tests.support.cases import TELECOM, file
from tests.support.env import free_port


def _case(
    s, now, *, name, number=None, website=None, kind="report", domain="ecommerce.fake_webshop"
):
    reference = new_reference()
    c = Case(
        reference=reference,
        kind=kind,
        domain=domain,
        language="nl",
        description=f"Niets geleverd door {name}",
        consent_share=True,
        anonymous_to_trader=False,
        status="queued",
        token_hash="0" * 64,
        created_at=now,
        updated_at=now,
    )
    s.add(c)
    s.flush()
    s.add(Party(case_id=c.id, role="consumer", name="Jan Peeters", email="jan@example.be"))
    s.add(Party(case_id=c.id, role="trader", name=name, enterprise_number=number, website=website))
    return reference


VARIANTS = [
    {"name": "Fake Webshop BV", "number": "0123456749"},
    {"name": "fake webshop bv.", "website": "https://www.fake-webshop.example/checkout"},
    {"name": "Fake-Webshop", "number": "0123456749", "website": "fake-webshop.example"},
    {"name": "FAKE WEBSHOP"},
    {"name": "Fäke Webshop B.V.", "website": "http://fake-webshop.example"},
    {"name": "Fake Webshop BV", "number": "0123456749"},
]


@pytest.fixture
def burst(hub):
    """Two quiet months (one case a fortnight), then six reports in three days."""
    now = hub.clock.now()
    refs = []
    with hub.db.session() as s:
        for weeks in range(2, 9, 2):
            _case(s, now - timedelta(weeks=weeks), name="Fake Webshop BV", number="0123456749")
        for i, v in enumerate(VARIANTS):
            refs.append(_case(s, now - timedelta(hours=10 * i + 1), **v))
        # another trader, four reports this week: under the rule's minimum of five
        for i in range(4):
            _case(s, now - timedelta(hours=5 * i + 1), name="Quiet Shop SRL", number="0202239951")
    return refs


def test_name_variants_website_and_number_are_one_trader(hub, burst):
    traders = signals.traders(hub.db, hub.clock.now())
    fake = next(t for t in traders if t.key == "kbo:0123456749")
    assert fake.total == 10
    assert fake.domains == ("fake-webshop.example",)
    assert len(fake.names) == 5
    assert fake.this_week == {"ecommerce": 6}
    assert fake.spikes == ("ecommerce",)
    assert fake.trailing_mean["ecommerce"] == pytest.approx(4 / 8)
    quiet = next(t for t in traders if t.key == "kbo:0202239951")
    assert quiet.this_week == {"ecommerce": 4} and quiet.spikes == ()


def test_the_spike_rule():
    assert signals.is_spike(5, 0.0)
    assert signals.is_spike(6, 2.0)
    assert not signals.is_spike(4, 0.0)  # too few
    assert not signals.is_spike(8, 3.0)  # not three times the mean


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def test_a_burst_raises_one_alert_a_week_recorded_and_mailed(hub, burst):
    now = hub.clock.now()
    raised = signals.raise_alerts(hub.db, now, "inspectie@example.be")
    assert raised == ["kbo:0123456749"]
    assert signals.raise_alerts(hub.db, now + timedelta(hours=1), "inspectie@example.be") == []
    with hub.db.session(read_only=True) as s:
        alert = s.scalars(select(TraderAlert)).one()
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "market_signal.alert")
        ).one()
    assert (alert.trader_key, alert.week, alert.count, alert.state) == (
        "kbo:0123456749",
        signals.iso_week(now),
        6,
        "pending",
    )
    assert entry.agency_id == "economic-inspection"
    assert entry.data["trader"] == "kbo:0123456749" and entry.data["this_week"] == 6

    inbox = _Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        settings = MailSettings(host="127.0.0.1", port=port)
        assert signals.send_alerts(hub.db, settings, now) == 1
        assert signals.send_alerts(hub.db, settings, now) == 0
    finally:
        smtp.stop()
    assert [m.rcpt_tos for m in inbox.messages] == [["inspectie@example.be"]]
    body = inbox.messages[0].content.decode()
    assert "kbo:0123456749" in body and "Cases in the last 7 days: 6" in body


def test_a_failed_mail_is_kept_for_the_next_run(hub, burst):
    now = hub.clock.now()
    signals.raise_alerts(hub.db, now, "inspectie@example.be")
    dead = MailSettings(host="127.0.0.1", port=free_port(), timeout=1)  # nobody listens
    assert signals.send_alerts(hub.db, dead, now) == 0
    with hub.db.session(read_only=True) as s:
        alert = s.scalars(select(TraderAlert)).one()
    assert alert.state == "pending" and alert.attempts == 1 and alert.last_error


def test_only_inspectors_open_the_signals_pages(hub, client, burst):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    accounts.add(hub.db, "tom", "agency", TELECOM, hub.clock.now(), PASSWORD)
    accounts.add(hub.db, "ines", "inspector", None, hub.clock.now(), PASSWORD)
    pages = (
        "/admin/signals",
        "/admin/signals/traders.csv",
        "/admin/signals/traders/kbo:0123456749",
        f"/admin/signals/cases/{burst[0]}",
    )
    for path in pages:
        assert client.get(path).status_code == 302  # to the sign-in page
    for name in ("olga", "tom"):
        sign_in(client, name)
        for path in pages:
            assert client.get(path).status_code == 403, (name, path)
        client.post("/admin/logout", data={"csrf_token": _token(client)})
    sign_in(client, "ines")
    for path in pages:
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/").headers["Location"].endswith("/admin/signals")
    assert client.get("/admin/flows").status_code == 403
    page = client.get(f"/admin/signals/cases/{burst[0]}").get_data(as_text=True)
    for other in burst[1:]:
        assert f"/admin/signals/cases/{other}" in page
    listing = client.get("/admin/signals").get_data(as_text=True)
    assert 'data-trader="kbo:0123456749" class="spike"' in listing


def _token(client):
    import re

    page = client.get("/admin/signals").get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return m.group(1) if m else ""


def test_the_trader_list_csv_neutralises_formulas(hub, client):
    now = hub.clock.now()
    with hub.db.session() as s:
        _case(s, now - timedelta(hours=1), name='=HYPERLINK("http://evil")', website="evil.example")
    accounts.add(hub.db, "ines", "inspector", None, now, PASSWORD)
    sign_in(client, "ines")
    rows = list(
        csv.reader(io.StringIO(client.get("/admin/signals/traders.csv").get_data(as_text=True)))
    )
    evil = next(r for r in rows[1:] if r[0] == "web:evil.example")
    assert evil[1].startswith("'=HYPERLINK")


def test_an_inspector_account_names_no_agency():
    with pytest.raises(accounts.AccountError, match="leave out --agency"):
        accounts.create(None, "x", "inspector", TELECOM, None)  # type: ignore[arg-type]


def _resolve(hub, reference):
    with hub.db.session() as s:
        line = s.scalars(select(Assignment).join(Case).where(Case.reference == reference)).one()
        line.status, line.outcome = "resolved", "solved"
        return line.id


def test_the_consumer_rates_a_resolved_answer_once_and_the_service_reads_the_comment(hub, client):
    filed = file(hub)
    reference, token = filed.reference, filed.token
    line_id = _resolve(hub, reference)
    with pytest.raises(consumer.NotAllowed):
        consumer.rate(hub.db, reference, token, line_id, "maybe", None, hub.clock.now())
    consumer.rate(hub.db, reference, token, line_id, "partly", "Half refunded", hub.clock.now())
    with pytest.raises(consumer.NotAllowed, match="already"):
        consumer.rate(hub.db, reference, token, line_id, "yes", None, hub.clock.now())
    with pytest.raises(LookupError):
        consumer.rate(hub.db, reference, "wrong", line_id, "yes", None, hub.clock.now())
    with hub.db.session(read_only=True) as s:
        rating = s.scalars(select(Rating)).one()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "answer.rated")).one()
    assert (rating.answer, rating.comment, rating.agency_id) == ("partly", "Half refunded", TELECOM)
    assert "Half refunded" not in str(entry.data)  # the evidence keeps the answer, not the words

    accounts.add(hub.db, "tom", "agency", TELECOM, hub.clock.now(), PASSWORD)
    accounts.add(hub.db, "ella", "agency", "ombudsman-energy", hub.clock.now(), PASSWORD)
    sign_in(client, "tom")
    page = client.get("/admin/agency/ratings").get_data(as_text=True)
    assert "Half refunded" in page and reference in page
    client.post("/admin/logout", data={"csrf_token": _token_at(client, "/admin/agency/ratings")})
    sign_in(client, "ella")
    assert "Half refunded" not in client.get("/admin/agency/ratings").get_data(as_text=True)


def _token_at(client, path):
    import re

    return re.search(
        r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)
    ).group(1)


def test_the_tracking_page_asks_for_a_rating_and_takes_it(hub, client):
    filed = file(hub)
    reference, token = filed.reference, filed.token
    line_id = _resolve(hub, reference)
    client.get(f"/en/track/{reference}?k={token}")
    page = client.get(f"/en/track/{reference}").get_data(as_text=True)
    assert f'id="rating-{line_id}"' in page and 'name="answer" value="partly"' in page
    import re

    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post(
        f"/en/track/{reference}/rate/{line_id}",
        data={"csrf_token": csrf_token, "answer": "yes", "comment": "Thanks"},
    )
    assert answer.status_code == 303
    page = client.get(f"/en/track/{reference}").get_data(as_text=True)
    assert 'data-rated="yes"' in page and 'name="answer"' not in page


RATE_WORDS = {
    "nl": "Heeft dit antwoord uw probleem opgelost?",
    "fr": "Cette réponse a-t-elle résolu votre problème\u00a0?",
    "de": "Hat diese Antwort Ihr Problem gelöst?",
    "en": "Did this answer solve your problem?",
}


def test_the_resolution_mail_links_to_the_rating_in_the_consumers_language(hub):
    from hub import notify
    from hub.models import Notification

    filed = file(hub)
    settings = MailSettings(public_url="https://loket.example")
    with hub.db.session() as s:
        case = s.scalars(select(Case).where(Case.reference == filed.reference)).one()
        for lang, words in RATE_WORDS.items():
            data = {"agency_id": TELECOM, "status": "x", "to": "resolved", "message": ""}
            resolved = Notification(kind="status", language=lang, data=data)
            _subject, body = notify.render(resolved, case, settings)
            assert words in body
            assert f"https://loket.example/{lang}/track/{filed.reference}#rating" in body
            moving = Notification(kind="status", language=lang, data={**data, "to": "in_progress"})
            assert words not in notify.render(moving, case, settings)[1]
            _subject, batch = notify.render_batch([moving, resolved], case, settings)
            assert words in batch


def test_the_worker_rolls_up_publishes_and_raises_the_alert(hub, burst, tmp_path):
    from dataclasses import replace

    from hub import opendata, statistics
    from scheduler.worker import Worker

    h = replace(hub, settings=replace(hub.settings, var_dir=tmp_path))
    worker = Worker(h, "w1")
    assert {"statistics", "alerts"} <= {job.id for job in worker.build_scheduler().get_jobs()}
    assert worker.refresh_statistics() > 0
    assert opendata.available(tmp_path)
    assert statistics.figures(h.db, h.clock.now()).total_cases == 14
    with h.db.session(read_only=True) as s:
        assert s.scalars(select(TraderAlert.trader_key)).all() == ["kbo:0123456749"]
