"""After filing: the consumer answers an agency's question, withdraws, and gets mail."""

import email
import email.policy
import mailbox
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from loket_simulators.rest_agency import profiles
from sqlalchemy import select

from hub import attachments, consumer, lifecycle, notify
from hub.config import MailSettings
from hub.models import Assignment, Case, Delivery, DeliveryState, Notification
from scheduler.worker import Worker
from tests.support.cases import file, timeline
from tests.support.env import free_port

TELECOM = "ombudsman-telecom"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def asking(sims):
    """The telecom ombudsman asks the consumer for the disputed bill before it goes on."""
    system = sims.system(TELECOM)
    system.profile = profiles()["ombudsman-telecom"].with_info()
    return system


def line(hub, reference):
    with hub.db.session(read_only=True) as s:
        return s.scalars(select(Assignment).join(Case).where(Case.reference == reference)).one()


def test_the_consumer_answers_an_information_request_and_the_case_goes_on(hub, asking, clock):
    filed = file(hub)
    worker = Worker(hub, "w")
    worker.dispatch_once()
    for _ in range(3):
        worker.poll_agency(TELECOM)
        clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    a = line(hub, filed.reference)
    assert a.status == "waiting_for_consumer" and a.paused_at is not None
    due_before = a.answer_due_at

    upload = attachments.check("factuur oktober.pdf", PDF)
    consumer.reply(
        hub.db, filed.reference, filed.token, a.id, "Hierbij de factuur.", [upload], clock.now()
    )
    assert worker.dispatch_once().delivered == 1
    [case] = asking.cases.values()
    assert case.messages[0]["text"] == "Hierbij de factuur."
    assert [x["filename"] for x in case.messages[0]["attachments"]] == ["factuur oktober.pdf"]

    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    clock.advance(seconds=60)
    worker.poll_agency(TELECOM)
    a = line(hub, filed.reference)
    assert a.status == "resolved"
    assert a.answer_due_at > due_before  # the clock stood still while the agency waited
    messages = [e.message for e in timeline(hub, filed.reference)]
    assert any(m.startswith("You answered with 1 document(s)") for m in messages)
    assert any("Your message was forwarded" in m for m in messages)


def test_a_reply_to_a_closed_line_or_with_a_wrong_token_is_refused(hub, sims, clock):
    filed = file(hub)
    Worker(hub, "w").dispatch_once()
    a = line(hub, filed.reference)
    with pytest.raises(LookupError):
        consumer.reply(hub.db, filed.reference, "wrong", a.id, "hello", [], clock.now())
    consumer.withdraw(
        hub.db, filed.reference, filed.token, "Solved with the operator.", clock.now()
    )
    with pytest.raises(consumer.NotAllowed, match="closed"):
        consumer.reply(hub.db, filed.reference, filed.token, a.id, "hello", [], clock.now())


def test_withdrawing_tells_the_agencies_that_have_it_and_cancels_what_was_not_sent(
    hub, sims, clock
):
    sent = file(hub)
    Worker(hub, "w").dispatch_once()
    unsent = file(hub)
    consumer.withdraw(hub.db, sent.reference, sent.token, "Solved.", clock.now())
    consumer.withdraw(hub.db, unsent.reference, unsent.token, "", clock.now())
    Worker(hub, "w").dispatch_once()
    assert line(hub, sent.reference).status == "withdrawn"
    assert line(hub, unsent.reference).status == "withdrawn"
    [delivered] = sims.system(TELECOM).cases.values()  # the unsent case never went out
    assert delivered.external_reference == sent.reference
    assert delivered.messages[0]["text"] == "The consumer withdraws this case. Solved."
    with hub.db.session(read_only=True) as s:
        states = dict(
            s.execute(
                select(Case.reference, Delivery.state)
                .select_from(Case)
                .join(Assignment, Assignment.case_id == Case.id)
                .join(Delivery, Delivery.assignment_id == Assignment.id)
                .where(Delivery.kind == "case")
            ).all()
        )
    assert states[unsent.reference] == DeliveryState.CANCELLED


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00 this is a windows program", "type"),
        ("photo.jpg", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff", "type"),
        ("big.pdf", b"%PDF-" + b"0" * (attachments.MAX_FILE_BYTES + 1), "too_large"),
        ("empty.txt", b"", "empty"),
    ],
)
def test_files_are_judged_by_their_content_not_their_name(name, data, code):
    with pytest.raises(attachments.AttachmentRefused) as info:
        attachments.check(name, data)
    assert info.value.code == code


def test_an_accepted_file_gets_a_safe_name_with_the_extension_of_its_real_type():
    upload = attachments.check("../../etc/<evil>.exe.pdf", PDF)
    assert upload.filename == "evil.exe.pdf" and upload.content_type == "application/pdf"
    text = attachments.check("notes", b"Gekocht op 3 oktober.")
    assert (text.filename, text.content_type) == ("notes.txt", "text/plain")


@pytest.fixture
def mail_catcher(tmp_path):
    folder = tmp_path / "mail"
    controller = Controller(Mailbox(str(folder)), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, folder
    controller.stop()


def test_the_consumer_gets_mail_in_their_language_when_it_matters(hub, sims, clock, mail_catcher):
    controller, folder = mail_catcher
    hub.settings = replace(
        hub.settings, mail=MailSettings(port=controller.port, public_url="https://loket.example")
    )
    filed = file(hub)  # French
    worker = Worker(hub, "w")
    assert worker.send_notifications() == 1
    worker.dispatch_once()
    worker.poll_agency(TELECOM)  # received
    worker.poll_agency(TELECOM)
    assert worker.send_notifications() == 0  # held back a few minutes, for changes that follow
    clock.advance(minutes=lifecycle.batch_delay().total_seconds() / 60)
    assert worker.send_notifications() == 1
    assert worker.send_notifications() == 0
    box = mailbox.Maildir(
        str(folder),
        factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default),
    )
    mails = sorted(box, key=lambda m: "0" if "reçu" in m["Subject"] else "1")
    assert [m["To"] for m in mails] == ["anne@example.be"] * 2
    confirmation, received = mails
    assert confirmation["Subject"] == f"Votre dossier {filed.reference} a bien été reçu"
    body = confirmation.get_content()
    assert f"https://loket.example/fr/track/{filed.reference}?k={filed.token}" in body
    assert "Service de médiation pour les télécommunications" in body
    assert received["Subject"].endswith("Reçu par le service")
    with hub.db.session(read_only=True) as s:
        rows = list(s.scalars(select(Notification)))
    assert all(n.state == "sent" for n in rows)
    assert all(n.secret is None for n in rows)  # the token is not kept once mailed


def test_mail_that_cannot_go_out_is_retried_not_lost(hub, sims, clock):
    hub.settings = replace(hub.settings, mail=MailSettings(port=free_port()))  # nobody listens
    file(hub)
    assert Worker(hub, "w").send_notifications() == 0
    with hub.db.session(read_only=True) as s:
        [n] = s.scalars(select(Notification)).all()
    assert n.state == "retry" and n.attempts == 1 and "Connection" in n.last_error
    assert n.secret is not None  # still needed for the retry


def test_each_kind_of_mail_renders_in_every_language(hub, sims, clock):
    filed = file(hub)
    with hub.db.session() as s:
        case = s.scalars(select(Case).where(Case.reference == filed.reference)).one()
        for kind in notify.KINDS:
            for lang in ("nl", "fr", "de", "en"):
                n = Notification(
                    kind=kind,
                    language=lang,
                    secret="tok",
                    data={
                        "agency_id": TELECOM,
                        "from_agency_id": TELECOM,
                        "status": "x",
                        "message": "m",
                        "due": "2026-12-01",
                        "agencies": [{"agency_id": TELECOM}],
                    },
                )
                subject, body = notify.render(n, case, MailSettings())
                assert filed.reference in subject + body and "{{" not in body
