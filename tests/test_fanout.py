"""One honest status for a case with several services (docs/statuses.md).

A complaint about a fake webshop goes to the Consumer Mediation Service (the REST simulator) and,
as market intelligence, to the Economic Inspection (a real sshd playing its SFTP folders): the
mediation's answer is the case's answer, the inspection's line says it only informs. Each line's
change reaches the consumer by mail, several within minutes in one mail; a late service is mailed
once; after the consumer answered a service, the page says the service acts, no longer the
consumer. SQLite and PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import html
import mailbox
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from babel.support import Translations
from loket_simulators.rest_agency import profiles
from sqlalchemy import select

from hub import lifecycle
from hub.config import MailSettings
from hub.i18n import TRANSLATIONS
from hub.models import Assignment, Case, Notification
from scheduler.worker import Worker
from tests.support.cases import COMPLAINT, INSPECTION, MEDIATION, file
from tests.support.env import free_port


@pytest.fixture
def hub(inspection_hub):
    return inspection_hub


TELECOM = "ombudsman-telecom"


@pytest.fixture
def mail(hub, tmp_path):
    """A real SMTP server (aiosmtpd) that keeps every consumer mail; the hub sends to it."""
    folder = tmp_path / "mail"
    controller = Controller(Mailbox(str(folder)), hostname="127.0.0.1", port=free_port())
    controller.start()
    hub.settings = replace(
        hub.settings, mail=MailSettings(port=controller.port, public_url="https://loket.example")
    )
    yield folder
    controller.stop()


def mails(folder) -> list[email.message.EmailMessage]:
    """Every mail the server received (sort them yourself: several share one Date)."""
    box = mailbox.Maildir(
        str(folder),
        factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default),
    )
    return list(box)


def page(client, reference: str, lang: str = "en") -> str:
    return html.unescape(client.get(f"/{lang}/track/{reference}").get_data(as_text=True))


def wait_out_the_batch(clock) -> None:
    clock.advance(seconds=lifecycle.batch_delay().total_seconds())


def test_the_mediation_resolves_and_the_case_shows_its_answer_though_the_inspection_never_does(
    client,
    hub,
    inspection,
    clock,
    mail,
):
    filed = client.post("/api/v1/cases", json=COMPLAINT).get_json()  # Dutch
    reference, token = filed["reference"], filed["tracking_token"]
    assert client.get(f"/en/track/{reference}?k={token}").status_code == 200
    worker = Worker(hub, "w")
    worker.dispatch_once()
    for _ in range(3):  # received, in progress, resolved: one step a minute
        worker.poll_agency(MEDIATION)
        clock.advance(seconds=60)
    worker.poll_agency(MEDIATION)

    body = client.get(
        f"/api/v1/cases/{reference}", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    lines = {line["agency"]: line for line in body["agencies"]}
    assert lines[INSPECTION]["status"] == "sent"  # it never answers individually
    assert lines[INSPECTION]["answers_consumer"] is False
    assert (lines[MEDIATION]["status"], lines[MEDIATION]["outcome"]) == ("resolved", "solved")
    assert lines[MEDIATION]["answers_consumer"] is True
    # the case is what the mediation says; the inspection's answer date is not the case's
    assert body["status"] == "resolved"
    assert body["expected_answer_by"] is None
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Case.status)).one() == "resolved"  # stored by the same rule

    shown = page(client, reference)
    assert 'class="status-now" data-status="resolved"' in shown
    assert "Consumer Mediation Service: Solved" in shown  # the mediation's outcome
    assert "Expected answer by" not in shown
    inspection_row = re.search(
        rf'<li class="line line-sent" data-agency="{INSPECTION}">.*?</li>', shown, re.S
    )
    assert "It is informed so that it can act against the company" in inspection_row.group(0)
    assert "it does not answer you individually" in inspection_row.group(0)
    assert "No individual answer" in inspection_row.group(0)
    # the same in the consumer's language: resolved, the mediation's outcome, the inspection
    # informed (the Dutch of each text, from the catalog: not the English source)
    dutch = Translations.load(str(TRANSLATIONS), ["nl"])
    shown = page(client, reference, "nl")
    assert 'class="status-now" data-status="resolved"' in shown
    assert (
        f'<p class="status-now" data-status="resolved">{lifecycle.label("resolved", "nl")}</p>'
        in shown
    )
    outcome = re.search(rf'<p class="outcome" data-agency="{MEDIATION}">(.*?)</p>', shown)
    assert lifecycle.outcome_label("solved", "nl") in outcome.group(1)
    inspection_row = re.search(
        rf'<li class="line line-sent" data-agency="{INSPECTION}">.*?</li>', shown, re.S
    ).group(0)
    informed = dutch.gettext(
        "It is informed so that it can act against the company; it does not answer you "
        "individually."
    )
    assert (
        informed
        != "It is informed so that it can act against the company; it does not answer you individually."
    )
    assert informed in inspection_row
    assert dutch.gettext("No individual answer") in inspection_row

    wait_out_the_batch(clock)
    worker.send_notifications()
    confirmation, news = sorted(mails(mail), key=lambda m: "Nieuws" in m["Subject"])
    assert confirmation["Subject"] == f"Uw dossier {reference} is ontvangen"
    # received, in progress and resolved came within minutes: one mail, in Dutch, lists them
    assert news["Subject"] == f"Nieuws over uw dossier {reference}"
    text = news.get_content()
    assert "Consumentenombudsdienst: Afgehandeld (Opgelost)" in text  # with the outcome
    assert "Minnelijke schikking bereikt" in text  # the mediation's own words
    assert (
        text.index("Ontvangen door de dienst")
        < text.index("In behandeling")
        < text.index("Afgehandeld")
    )


def test_line_changes_within_minutes_make_one_mail_and_later_ones_another(hub, clock, mail):
    filed = file(hub)  # French, the telecom ombudsman
    worker = Worker(hub, "w")
    worker.send_notifications()  # the confirmation
    worker.dispatch_once()
    worker.poll_agency(TELECOM)  # received
    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)  # in progress
    assert worker.send_notifications() == 0  # the first change waits for others to join it
    wait_out_the_batch(clock)
    assert worker.send_notifications() == 1
    assert worker.send_notifications() == 0
    clock.advance(minutes=30)
    worker.poll_agency(TELECOM)  # the mediation step
    wait_out_the_batch(clock)
    assert worker.send_notifications() == 1

    _, both, later = sorted(mails(mail), key=lambda m: ("Du nouveau" in m["Subject"], m["Date"]))
    assert both["Subject"] == f"Du nouveau dans votre dossier {filed.reference}"
    listed = both.get_content()
    assert "Reçu par le service" in listed and "En cours de traitement" in listed
    assert later["Subject"].startswith(f"Du nouveau dans votre dossier {filed.reference}")
    assert "Reçu par le service" not in later.get_content()  # each change is told once
    with hub.db.session(read_only=True) as s:
        assert {n.state for n in s.scalars(select(Notification))} == {"sent"}


def test_a_late_service_mails_the_consumer_once_and_a_late_inspection_does_not(
    client,
    hub,
    inspection,
    clock,
    mail,
):
    filed = client.post("/api/v1/cases", json=COMPLAINT).get_json()
    worker = Worker(hub, "w")
    worker.dispatch_once()
    worker.poll_agency(MEDIATION)  # the mediation acknowledges; the inspection never does
    wait_out_the_batch(clock)
    assert worker.send_notifications() == 2  # the confirmation and "received"
    with hub.db.session(read_only=True) as s:
        due = {a.agency_id: a.answer_due_at for a in s.scalars(select(Assignment))}
    assert due[INSPECTION] < due[MEDIATION]

    clock.current = due[INSPECTION] + (due[MEDIATION] - due[INSPECTION]) / 2
    assert worker.watch_slas() >= 1  # the inspection is late: operators see it
    assert worker.send_notifications() == 0  # it owes the consumer no answer: no mail

    clock.current = due[MEDIATION] + (due[MEDIATION] - due[INSPECTION])
    assert worker.watch_slas() == 1  # the mediation is late now
    assert worker.watch_slas() == 0
    assert worker.send_notifications() == 1
    assert worker.send_notifications() == 0
    [late] = [m for m in mails(mail) if "vertraging" in m["Subject"]]
    assert late["Subject"] == f"Uw dossier {filed['reference']} loopt vertraging op"
    day = lifecycle.local_date(due[MEDIATION], "nl")
    assert f"De Consumentenombudsdienst had uiterlijk op {day} moeten antwoorden" in (
        late.get_content()
    )


@pytest.fixture
def asking(sims):
    """The telecom ombudsman asks the consumer for the disputed bill before it goes on."""
    system = sims.system(TELECOM)
    system.profile = profiles()["ombudsman-telecom"].with_info()
    return system


def test_after_the_consumer_answers_the_page_says_the_service_acts_not_the_consumer(
    client,
    hub,
    asking,
    clock,
):
    filed = file(hub)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    for _ in range(3):
        worker.poll_agency(TELECOM)
        clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    with hub.db.session(read_only=True) as s:
        line = s.scalars(select(Assignment)).one()
    assert line.status == "waiting_for_consumer"
    reply_by = lifecycle.reply_by(line.status, line.paused_at)
    assert reply_by == line.paused_at + timedelta(days=14)
    day = lifecycle.local_date(reply_by, "en")

    assert client.get(f"/en/track/{filed.reference}?k={filed.token}").status_code == 200
    waiting = page(client, filed.reference)
    # who must act by when: the consumer, by the reply-by date; not the service's answer date
    assert 'data-status="waiting_for_consumer"' in waiting
    assert f"Your answer is needed by {day}." in waiting
    assert "Expected answer by" not in waiting
    assert 'data-acts="consumer"' in waiting and f"Please answer by {day}." in waiting
    action = re.search(r'action="(/en/track/[^"]+/reply/\d+)(?:#[\w-]+)?"', waiting).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', waiting).group(1)
    api = client.get(
        f"/api/v1/cases/{filed.reference}", headers={"Authorization": f"Bearer {filed.token}"}
    ).get_json()
    assert api["reply_by"] is not None and api["agencies"][0]["reply_by"] == api["reply_by"]

    sent = client.post(action, data={"csrf_token": token, "text": "Here is the bill."})
    assert sent.status_code == 303
    answered = page(client, filed.reference)
    assert "Your answer was sent." in answered  # the notice
    # and nothing contradicts it: no reply form, no "waiting for your answer", no reply-by date
    assert "/reply/" not in answered
    panel = re.search(r'<section class="status-panel.*?</section>', answered, re.S).group(0)
    assert "Waiting for your answer" not in panel and "answer below" not in panel
    assert "Your answer is needed by" not in answered and "your answer is needed" not in answered
    assert (
        "Being handled"
        in re.search(r'<li class="line line-in_progress".*?</li>', answered, re.S)[0]
    )
    assert 'data-status="in_progress"' in answered
    assert 'data-acts="service"' in answered
    assert "has your answer and is handling your case" in answered
    api = client.get(
        f"/api/v1/cases/{filed.reference}", headers={"Authorization": f"Bearer {filed.token}"}
    ).get_json()
    assert api["status"] == "in_progress" and api["agencies"][0]["answer_sent"] is True
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Case.status)).one() == "in_progress"
        # the agency's own status is untouched: only the agency speaks for the agency
        assert s.scalars(select(Assignment.status)).one() == "waiting_for_consumer"

    # the service asks again: the consumer must act again
    with hub.db.session() as s:
        a = s.scalars(select(Assignment)).one()
        lifecycle.move(
            s,
            a,
            "waiting_for_consumer",
            actor="agency",
            at=clock.now(),
            now=clock.now(),
            message="Also the contract, please.",
            kind="agency_status",
        )
        lifecycle.refresh_case(a.case, clock.now())
    again = page(client, filed.reference)
    assert 'data-status="waiting_for_consumer"' in again and "/reply/" in again
