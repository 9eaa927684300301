"""Hostile status files through the real SFTP peer (OpenSSH sshd) and the worker.

Each sample is dropped in the Economic Inspection's outbox on its own and polled; the table
says the one outcome it must end in, and the next poll must not read it again. A bad file goes
to failed/ with its reason and never stalls the good ones; the other agencies' polls go on.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.worker import Worker
from tests.support.cases import INSPECTION, assignment, file

AGENCY = INSPECTION


@pytest.fixture
def hub(inspection_hub):
    return inspection_hub


def _status(case: str, code: str, when: str, note: str = "") -> str:
    return (
        f"<status><referentie_loket>{case}</referentie_loket><code>{code}</code>"
        f"<tijdstip>{when}</tijdstip><toelichting>{note}</toelichting></status>"
    )


def _file(*records: str, declaration: str = '<?xml version="1.0" encoding="UTF-8"?>') -> str:
    return f"{declaration}\n<statussen>{''.join(records)}</statussen>\n"


def test_every_status_file_ends_in_its_one_outcome(hub, inspection, clock):
    filed = file(
        hub,
        kind="report",
        domain="ecommerce.fake_webshop",
        language="nl",
        description="De webshop levert niet.",
        trader={"name": "Prijsbreker BV", "website": "https://prijsbreker.example"},
    )
    worker = Worker(hub, "w1")
    assert worker.dispatch_once().delivered == 1
    case = filed.reference

    def at(minutes: int) -> str:
        return (clock.now() + timedelta(minutes=minutes)).isoformat()

    good = _file(_status(case, "REGISTERED", at(1), "Ontvangen."))
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE s [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        f"<statussen>{_status(case, 'ANALYSIS', at(2), '&b;')}</statussen>"
    )
    utf16_doctype = (
        '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE s [<!ENTITY x SYSTEM '
        f'"file:///etc/passwd">]>\n<statussen>{_status(case, "ANALYSIS", at(2), "&x;")}'
        "</statussen>"
    ).encode("utf-16")
    deep = "<statussen><status>" + "<a>" * 5000 + "x" + "</a>" * 5000 + "</status></statussen>"
    samples: list[tuple[str, bytes, str]] = [
        ("01-good.xml", good.encode(), "applied"),
        ("02-same-records-again.xml", good.encode(), "duplicate"),
        (
            "03-bom-crlf.xml",
            b"\xef\xbb\xbf"
            + _file(_status(case, "ANALYSIS", at(3), "In analyse.")).replace("\n", "\r\n").encode(),
            "applied",
        ),
        (
            "04-utf16.xml",
            _file(
                _status(case, "INVESTIGATION", at(4), "Onderzoek loopt."),
                declaration='<?xml version="1.0" encoding="UTF-16"?>',
            ).encode("utf-16"),
            "applied",
        ),
        ("05-entity-bomb.xml", bomb.encode(), "problem"),
        ("06-utf16-doctype.xml", utf16_doctype, "problem"),
        ("07-deep.xml", deep.encode(), "problem"),
        ("08-partial.xml", good.encode()[: len(good) // 2], "problem"),
        ("09-html.xml", b"<!doctype html><html><body>Service Unavailable</body></html>", "problem"),
        ("10-huge.xml", b"<statussen>" + b" " * 20_000_000 + b"</statussen>", "problem"),
        ("11-long-code.xml", _file(_status(case, "X" * 70, at(5))).encode(), "problem"),
        ("12-unknown-code.xml", _file(_status(case, "ARCHIVED", at(6))).encode(), "unknown"),
        (
            "13-unknown-case.xml",
            _file(_status("LK-0000-0000", "ANALYSIS", at(7))).encode(),
            "unmatched",
        ),
        (
            "14-future.xml",
            _file(_status(case, "INVESTIGATION", "2100-01-01T09:00:00")).encode(),
            "applied",
        ),
    ]
    got = {}
    for name, data, _ in samples:
        (inspection.outbox / name).write_bytes(data)
        got[name] = worker.poll_agency(AGENCY).counts
        again = worker.poll_agency(AGENCY).counts  # moves the file; reads nothing twice
        assert again == {}, f"{name} was read again: {again}"
        clock.advance(seconds=60)
    wrong = {n: got[n] for n, _, want in samples if got[n] != {want: 1}}
    assert wrong == {}, f"outcomes that differ from the table: {wrong}"
    assert sum(sum(c.values()) for c in got.values()) == len(samples)

    failed = sorted(p.name for p in (inspection.outbox / "failed").iterdir())
    bad = [n for n, _, want in samples if want == "problem" and n != "11-long-code.xml"]
    assert [n for n in failed if not n.endswith(".reason.txt")] == bad
    assert all(f"{n}.reason.txt" in failed for n in bad)
    a = assignment(hub, filed.reference)
    assert (a.status, a.agency_status) == ("in_progress", "INVESTIGATION")
    # The other agencies' polls go on: the REST agency still takes and reports a case.
    other = file(hub)
    worker.dispatch_once()
    worker.poll_agency("ombudsman-telecom")
    assert assignment(hub, other.reference).status == "received"
