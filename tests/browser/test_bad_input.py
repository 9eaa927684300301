"""Bad input through the real browser: each gets a clear message in the consumer's language
next to the field, keeps what was typed, and stores nothing harmful."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from hub.db import Database
from hub.models import Attachment, Case, Party
from tests.support.browser import check_axe, go_on_to_check, on_check_page, shot

pytestmark = pytest.mark.e2e

FORM = "/fr/problem/telecom/billing/complaint/form?a_contacted_trader=yes&a_court_case_pending=no"
SCRIPT = '<script>window.__xss = 1</script>"><img src=x onerror="window.__xss=2">'


def good_form(page, **override) -> dict[str, str]:
    values = {
        "#consumer_name": "Luc Martin",
        "#consumer_email": "luc.martin@example.be",
        "#consumer_phone": "+32 2 123 45 67",
        "#trader_name": "Telco SA",
        "#trader_enterprise_number": "0403.170.701",
        "#trader_website": "www.telco.example",
        "#description": "Facture d'octobre : deux fois l'abonnement.",
        "#incident_date": "15",
        "#incident_date-month": "10",
        "#incident_date-year": "2026",
        "#complaint_date": "20",
        "#complaint_date-month": "10",
        "#complaint_date-year": "2026",
        "#amount": "49,99",
        **override,
    }
    for selector, value in values.items():
        page.fill(selector, value)
    page.check("#consent_share")
    return values


def send(page):
    """'Continue' on the form, and 'Send' on "check your answers" when the form was accepted;
    the files are added on the form's second page (`files`)."""
    go_on_to_check(page)
    if on_check_page(page):
        page.get_by_role("button", name="Envoyer mon dossier").click()
        page.wait_for_load_state()


def send_with(page, files) -> None:
    go_on_to_check(page)
    assert on_check_page(page)
    page.set_input_files("#attachments", files)
    page.get_by_role("button", name="Envoyer mon dossier").click()
    page.wait_for_load_state()


def error_for(page, field: str) -> str:
    return page.locator(f"#{field}-error").inner_text().strip()


def kept(page, values: dict[str, str]) -> None:
    for selector, value in values.items():
        assert page.input_value(selector) == value, selector


def test_script_tags_in_every_field_are_kept_as_plain_text_and_never_run(page_fr, stack):
    page = page_fr
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(FORM)
    fields = [
        "#consumer_name",
        "#consumer_email",
        "#consumer_phone",
        "#trader_name",
        "#trader_enterprise_number",
        "#trader_website",
        "#description",
        "#amount",
    ]
    values = good_form(page, **{f: SCRIPT for f in fields}, **{"#incident_date-year": SCRIPT})
    before = stack.case_count()
    send(page)
    assert page.evaluate("() => window.__xss") is None and not dialogs
    for field in (
        "consumer_email",
        "consumer_phone",
        "trader_enterprise_number",
        "trader_website",
        "amount",
        "incident_date",
    ):
        assert page.locator(f"#{field}-error").count() == 1, field  # said next to the field
    assert "Cette adresse e-mail n'est pas valable" in error_for(page, "consumer_email")
    kept(page, values)  # everything typed is still there, as text
    assert page.locator("script:not([src])").count() == 0
    check_axe(page, "form with script tags (fr)")
    shot(page, "bad-script-tags")
    assert stack.case_count() == before

    good_form(
        page,
        **{"#consumer_name": SCRIPT, "#trader_name": SCRIPT, "#description": "Facture : " + SCRIPT},
    )
    send(page)
    page.wait_for_url(re.compile(r"/fr/filed/LK-"))
    reference = page.locator("#reference").inner_text().strip()
    page.goto(f"/fr/track/{reference}")
    assert page.evaluate("() => window.__xss") is None and not dialogs
    db = Database(stack.database_url)
    with db.session(read_only=True) as s:
        case = s.scalars(select(Case).where(Case.reference == reference)).one()
        names = {p.role: p.name for p in s.scalars(select(Party).where(Party.case_id == case.id))}
        assert case.description == "Facture : " + SCRIPT  # stored as the text it is
        assert names == {"consumer": SCRIPT, "trader": SCRIPT}
    db.dispose()
    html = requests.get(f"{stack.web}/fr/", timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self'" in html  # and the pages forbid inline script besides


def test_a_50_mb_upload_is_refused_next_to_the_field_with_everything_typed_kept(
    page_fr, stack, tmp_path
):
    big = tmp_path / "scan.pdf"
    with open(big, "wb") as fh:
        fh.write(b"%PDF-1.4\n")
        fh.truncate(50 * 1024 * 1024)
    page = page_fr
    page.goto(FORM)
    good_form(page)
    before = stack.case_count()
    send_with(page, str(big))
    message = error_for(page, "attachments")
    assert "scan.pdf est trop volumineux\u00a0: au maximum 10 Mo par fichier" in message
    assert "ajoutez à nouveau vos fichiers" in page.inner_text("#attachments-again")
    assert on_check_page(page)  # still on "check your answers", everything entered kept
    assert "Luc Martin" in page.inner_text("main") and "49,99" in page.inner_text("main")
    shot(page, "bad-50-mb")
    assert stack.case_count() == before


def test_an_exe_renamed_pdf_is_refused_and_never_stored(page_fr, stack):
    page = page_fr
    page.goto(FORM)
    good_form(page)
    program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64 + b"PE\x00\x00"
    before = stack.case_count()
    send_with(page, [{"name": "facture.pdf", "mimeType": "application/pdf", "buffer": program}])
    message = error_for(page, "attachments")
    assert "facture.pdf ne peut pas être accepté" in message
    assert "nous vérifions ce que contient le fichier" in message
    assert on_check_page(page) and "Luc Martin" in page.inner_text("main")
    assert stack.case_count() == before
    db = Database(stack.database_url)
    with db.session(read_only=True) as s:
        assert all(a.data[:2] != b"MZ" for a in s.scalars(select(Attachment)))
    db.dispose()


def test_a_wrong_enterprise_number_is_explained_next_to_the_field(page_fr, stack):
    page = page_fr
    page.goto(FORM)
    values = good_form(page, **{"#trader_enterprise_number": "0403.170.702"})
    before = stack.case_count()
    send(page)
    assert page.locator(".error-message").count() == 1
    message = error_for(page, "trader_enterprise_number")
    assert "Ce numéro d'entreprise n'est pas valable" in message
    assert page.get_attribute("#trader_enterprise_number", "aria-invalid") == "true"
    assert "trader_enterprise_number-error" in page.get_attribute(
        "#trader_enterprise_number", "aria-describedby"
    )
    kept(page, values)
    assert stack.case_count() == before


def test_a_forged_csrf_token_is_refused_with_a_clear_page_and_nothing_stored(page_fr, stack):
    page = page_fr
    page.goto(FORM)
    good_form(page)
    page.evaluate("() => { document.querySelector('[name=csrf_token]').value = 'forged'; }")
    before = stack.case_count()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        send(page)
    assert answer.value.status == 400
    assert page.locator("h1").inner_text() == "Votre formulaire n'a pas pu être accepté"
    assert "Rien n'a été enregistré" in page.inner_text("main")
    check_axe(page, "forged CSRF token (fr)")
    # and without the browser: a post from elsewhere, without the session or the token
    bare = requests.post(
        f"{stack.web}{FORM.split('?')[0]}",
        data={
            "a_contacted_trader": "yes",
            "a_court_case_pending": "no",
            "consumer_name": "x",
            "consent_share": "yes",
        },
        timeout=10,
    )
    assert bare.status_code == 400 and "text/html" in bare.headers["Content-Type"]
    assert stack.case_count() == before
