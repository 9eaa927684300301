"""The far-side mail corpus (tests/corpus/mail) filled in for one case, and CPython's own email
test messages, as bytes ready to put in a mailbox."""

from __future__ import annotations

import sysconfig
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "mail"
CPYTHON = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


def sample(name: str, *, case: str, agency: str, hub: str, date: datetime) -> bytes:
    """One corpus mail with its placeholders filled in; line endings as CRLF, as on the wire."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    for key, value in (("{case}", case), ("{agency}", agency), ("{hub}", hub)):
        text = text.replace(key, value)
    text = text.replace("{date}", format_datetime(date))
    return wire(text.encode("utf-8"))


def wire(raw: bytes) -> bytes:
    """A mail as SMTP carries it: every line ending CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def names() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.eml"))


def cpython_messages() -> list[Path]:
    """CPython's email test messages (empty where the installation lacks its test suite)."""
    return sorted(CPYTHON.glob("msg_*.txt"))
