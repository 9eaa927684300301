"""Uploads that attack the hub rather than inform an agency: zip bombs dressed as office
documents, scriptable images and polyglots, names that disguise their extension. Each goes in
through the consumer's own forms (the case form and the reply form) and is refused with a
message the consumer can act on, without costing the web worker more than a bounded amount of
memory."""

from __future__ import annotations

import re
import tracemalloc
import zipfile
from io import BytesIO

import pytest
from sqlalchemy import select

from hub import attachments
from hub.models import Attachment, Message
from tests.support.frontdesk import asked_for_information, count_cases, file_by_page, filed, text

MEMORY_BOUND = 40 * 1024 * 1024  # the bombs below unpack to 100-200 MB


def _bomb(members: dict[str, int], extra: dict[str, bytes] | None = None) -> bytes:
    """A small zip whose members unpack to the given numbers of zero bytes."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in (extra or {}).items():
            z.writestr(name, data)
        zeros = bytes(1024 * 1024)
        for name, size in members.items():
            with z.open(name, "w", force_zip64=True) as member:
                for _ in range(size // len(zeros)):
                    member.write(zeros)
    return out.getvalue()


@pytest.fixture(scope="module")
def odt_bomb() -> bytes:
    data = _bomb({"mimetype": 100 * 1024 * 1024}, {"content.xml": b"<office:document/>"})
    assert len(data) < 300 * 1024
    return data


@pytest.fixture(scope="module")
def docx_bomb() -> bytes:
    data = _bomb({"word/document.xml": 200 * 1024 * 1024})
    assert len(data) < 300 * 1024
    return data


def _peak(call):
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_zip_bomb_named_odt_or_docx_is_refused_on_the_case_form_within_a_memory_bound(
    client, hub, odt_bomb, docx_bomb
):
    for name, bomb in (("contrat.odt", odt_bomb), ("facture.docx", docx_bomb)):
        answer, peak = _peak(
            lambda name=name, bomb=bomb: file_by_page(client, "en", files=[(BytesIO(bomb), name)])
        )
        assert answer.status_code == 422, name
        assert f"{name} cannot be accepted: it unpacks to far more than a normal document" in (
            text(answer)
        )
        assert peak < MEMORY_BOUND, f"{name}: {peak / 1048576:.0f} MB"
    assert count_cases(hub) == 0


def test_a_zip_bomb_on_the_reply_form_is_refused_in_the_consumers_language(
    client, hub, sims, clock, docx_bomb
):
    reference, code = asked_for_information(client, hub, sims, clock)
    visitor = client.application.test_client()
    visitor.get(f"/nl/track/{reference}?k={code}")
    page = text(visitor.get(f"/nl/track/{reference}"))
    action = re.search(r'action="(/nl/track/[^"]+/reply/\d+)#error-summary"', page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused, peak = _peak(
        lambda: visitor.post(
            action,
            data={
                "csrf_token": token,
                "text": "Hierbij de factuur.",
                "files": [(BytesIO(docx_bomb), "factuur.docx")],
            },
            content_type="multipart/form-data",
        )
    )
    assert refused.status_code == 422
    assert "factuur.docx kan niet worden aanvaard: het pakt uit tot veel meer" in text(refused)
    assert peak < MEMORY_BOUND, f"{peak / 1048576:.0f} MB"
    with hub.db.session(read_only=True) as s:
        assert not s.scalars(select(Message).where(Message.author == "consumer")).all()


def test_a_real_office_document_still_passes_and_a_bomb_is_refused_by_its_ratio():
    docx = BytesIO()
    with zipfile.ZipFile(docx, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document>" + "<w:p/>" * 20000 + "</w:document>")
    assert attachments.check("brief.docx", docx.getvalue()).content_type.endswith(
        "wordprocessingml.document"
    )
    odt = BytesIO()
    with zipfile.ZipFile(odt, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", "<office:document/>")
    assert attachments.check("brief.odt", odt.getvalue()).content_type.endswith("text")
    # Under every absolute cap, but 2 MB of zeros packs to a few kB: the ratio refuses it.
    ratio_bomb = _bomb({"word/document.xml": 2 * 1024 * 1024})
    with pytest.raises(attachments.AttachmentRefused) as refused:
        attachments.check("brief.docx", ratio_bomb)
    assert refused.value.code == "archive" and "times its packed size" in refused.value.detail


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
    b"<script>fetch('/admin').then(r => r.text())</script></svg>\n"
)
POLYGLOT = (
    b"%PDF-1.4\n1 0 obj<<>>stream\n<html><body><script>alert(document.cookie)</script>"
    b"</body></html>\nendstream endobj\ntrailer<<>>\n%%EOF\n"
)


@pytest.mark.parametrize(
    ("name", "data"), [("logo.svg", SVG), ("logo.txt", SVG), ("factuur.pdf", POLYGLOT)]
)
def test_an_svg_with_script_or_a_pdf_html_polyglot_is_refused_not_forwarded(
    client, hub, name, data
):
    answer = file_by_page(client, "fr", files=[(BytesIO(data), name)])
    assert answer.status_code == 422
    assert f"{name} ne peut pas être accepté\u00a0: il contient du code de page web" in text(answer)
    assert count_cases(hub) == 0


def test_a_plain_pdf_and_text_still_pass_the_active_content_check():
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n"
    assert attachments.check("facture.pdf", pdf).content_type == "application/pdf"
    note = "Le vendeur a dit 3 < 5 et a <promis> un remboursement, déjà.".encode()
    assert attachments.check("note.txt", note).content_type == "text/plain"


@pytest.mark.parametrize(
    "disguise",
    [
        "\u202e",  # right-to-left override
        "\u202d\u200f",  # left-to-right override, right-to-left mark
        "\u2067\u2069",  # right-to-left isolate and its end
        "\u200b\ufeff",  # zero-width space, byte order mark
        "\x1b\x07",  # escape, bell
    ],
)
def test_file_names_lose_bidi_and_control_characters_that_disguise_an_extension(disguise):
    upload = attachments.check(f"invoice{disguise}fdp.exe", b"%PDF-1.4\n%%EOF\n")
    assert upload.filename == "invoicefdp.pdf"
    assert all(c.isprintable() for c in upload.filename)


def test_a_disguised_name_is_stored_clean_from_the_case_form(client, hub):
    filed(client, "en", files=[(BytesIO(b"%PDF-1.4\n%%EOF\n"), "invoice\u202efdp.exe")])
    with hub.db.session(read_only=True) as s:
        assert s.scalars(select(Attachment.filename)).all() == ["invoicefdp.pdf"]
