"""Files from consumers: an allow-list checked on the content, not the name; size caps; safe names.

A file is accepted only when its bytes are one of the allowed types (a `.exe` renamed `.pdf` is
refused: its content is not a PDF). It is stored with the type found, under a cleaned name with
the extension of that type, and is always served as a download with `nosniff`. An office file
is a zip: each of its parts is streamed through a size cap and an expansion-ratio limit before
anything else is read, so a small zip bomb is refused without being inflated. Markup a browser
or viewer would run (an SVG or HTML page sent as text, a PDF that is also an HTML page) is refused;
names lose the invisible characters (bidi overrides, zero-width marks) that disguise an extension.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from io import BytesIO

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_FILES = 5
MAX_TOTAL_BYTES = 20 * 1024 * 1024

# An office document is a zip: what it unpacks to is bounded before anything else looks inside,
# so a small upload cannot make the web worker inflate hundreds of megabytes (a zip bomb).
MAX_ARCHIVE_MEMBERS = 2000
MAX_MEMBER_BYTES = 25 * 1024 * 1024
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
MAX_EXPANSION_RATIO = 100
RATIO_FREE_BYTES = 1024 * 1024  # small members (XML of spaces) may compress better than that
_CHUNK = 64 * 1024

# type -> (extension, what the consumer is told)
ALLOWED = {
    "application/pdf": (".pdf", "PDF"),
    "image/png": (".png", "PNG image"),
    "image/jpeg": (".jpg", "JPEG photo"),
    "text/plain": (".txt", "text file"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        ".docx",
        "Word document",
    ),
    "application/vnd.oasis.opendocument.text": (".odt", "OpenDocument text"),
}
ALLOWED_LIST = "PDF, PNG, JPEG, TXT, DOCX or ODT"


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class AttachmentRefused(ValueError):
    """A file that cannot be accepted. `code` is stable (for translations), `detail` readable."""

    def __init__(self, code: str, detail: str, filename: str = ""):
        super().__init__(detail)
        self.code, self.detail, self.filename = code, detail, filename


def sniff(data: bytes) -> str | None:
    """The allowed type these bytes are, or None."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"PK\x03\x04"):
        return _sniff_office(data)
    if data and b"\x00" not in data[:8192]:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


class ArchiveTooLarge(Exception):
    """The zip unpacks to more than the caps allow; `detail` says which member and why."""


def _sniff_office(data: bytes) -> str | None:
    """DOCX or ODT, after every member has been streamed through the caps; raises
    ArchiveTooLarge for a zip bomb, returns None for anything else that is not one of them."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as z:
            members = z.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise ArchiveTooLarge(f"it holds more than {MAX_ARCHIVE_MEMBERS} parts")
            unpacked = 0
            mimetype = b""
            for info in members:
                if info.is_dir():
                    continue
                # The declared sizes are checked first, then the bytes actually inflated: a
                # crafted header may lie about them.
                _bounded(info.filename, info.file_size, info.compress_size, unpacked)
                size = 0
                with z.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        size += len(chunk)
                        _bounded(info.filename, size, info.compress_size, unpacked)
                        if info.filename == "mimetype" and len(mimetype) < 128:
                            mimetype += chunk[: 128 - len(mimetype)]
                unpacked += size
            names = {info.filename for info in members}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError, ValueError):
        return None
    except NotImplementedError:  # a compression method zipfile does not read
        return None
    if "word/document.xml" in names:
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if mimetype == b"application/vnd.oasis.opendocument.text":
        return "application/vnd.oasis.opendocument.text"
    return None


def _bounded(name: str, size: int, compressed: int, unpacked_before: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ArchiveTooLarge(f"its part {name} unpacks to more than {MAX_MEMBER_BYTES} bytes")
    if unpacked_before + size > MAX_UNPACKED_BYTES:
        raise ArchiveTooLarge(f"it unpacks to more than {MAX_UNPACKED_BYTES} bytes")
    if size > RATIO_FREE_BYTES and size > MAX_EXPANSION_RATIO * max(compressed, 1):
        raise ArchiveTooLarge(
            f"its part {name} unpacks to more than {MAX_EXPANSION_RATIO} times its packed size"
        )


# Markup a browser or a viewer would run: an SVG or HTML page sent as "text", or a PDF that is
# also an HTML page (a polyglot). Office zips are not scanned raw: their parts are compressed.
_ACTIVE = re.compile(
    rb"<\s*(?:script|svg|html|iframe|object|embed|body|head|meta|foreignobject|!doctype|\?xml)\b",
    re.IGNORECASE,
)
# Characters that change how a name is shown without being seen: controls, bidi overrides
# and isolates (U+202E turns "cod\u202Efdp.exe" into "codexe.pdf"), zero-width marks.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def active_content(data: bytes, content_type: str) -> bool:
    """Whether these bytes carry markup that a browser or viewer may run."""
    return not content_type.startswith("application/vnd.") and bool(_ACTIVE.search(data))


def clean_name(filename: str, content_type: str) -> str:
    """A name safe to show and to offer as a download: no path, no control characters, the
    extension of the type actually found."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in _INVISIBLE)
    name = re.sub(r"[\x00-\x1f\x7f<>:\"|?*]", "", name).strip(" .") or "file"
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem[:150] + ALLOWED[content_type][0]


def check(filename: str, data: bytes) -> Upload:
    if len(data) == 0:
        raise AttachmentRefused("empty", f"{filename} is empty.", filename)
    if len(data) > MAX_FILE_BYTES:
        raise AttachmentRefused(
            "too_large",
            f"{filename} is {len(data) / 1048576:.1f} MB; at most "
            f"{MAX_FILE_BYTES // 1048576} MB per file.",
            filename,
        )
    try:
        content_type = sniff(data)
    except ArchiveTooLarge as exc:
        raise AttachmentRefused(
            "archive",
            f"{filename} cannot be accepted: {exc}, which a normal document does not. "
            "Save it again (or as PDF) and add it again.",
            filename,
        ) from exc
    if content_type is None:
        raise AttachmentRefused(
            "type",
            f"{filename} is not a {ALLOWED_LIST} file (its content was checked, not "
            "just its name).",
            filename,
        )
    if active_content(data, content_type):
        raise AttachmentRefused(
            "active",
            f"{filename} cannot be accepted: it contains web page code (such as a script or an "
            "SVG image), which is not forwarded. Save it as PDF or as a photo and add it again.",
            filename,
        )
    return Upload(clean_name(filename, content_type), content_type, data)


def check_all(files: list[tuple[str, bytes]]) -> list[Upload]:
    if len(files) > MAX_FILES:
        raise AttachmentRefused("too_many", f"At most {MAX_FILES} files.")
    uploads = [check(name, data) for name, data in files]
    if sum(len(u.data) for u in uploads) > MAX_TOTAL_BYTES:
        raise AttachmentRefused("total", f"At most {MAX_TOTAL_BYTES // 1048576} MB in all.")
    return uploads
