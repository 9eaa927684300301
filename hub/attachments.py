"""Files from consumers: an allow-list checked on the content, not the name; size caps; safe names.

A file is accepted only when its bytes are one of the allowed types (a `.exe` renamed `.pdf` is
refused: its content is not a PDF). It is stored with the type found, under a cleaned name with
the extension of that type, and is always served as a download with `nosniff`.
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
        try:
            with zipfile.ZipFile(BytesIO(data)) as z:
                names = set(z.namelist())
                if "word/document.xml" in names:
                    return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                if (
                    "mimetype" in names
                    and z.read("mimetype") == b"application/vnd.oasis.opendocument.text"
                ):
                    return "application/vnd.oasis.opendocument.text"
        except (zipfile.BadZipFile, KeyError, OSError):
            return None
        return None
    if data and b"\x00" not in data[:8192]:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


def clean_name(filename: str, content_type: str) -> str:
    """A name safe to show and to offer as a download: no path, no control characters, the
    extension of the type actually found."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKC", name)
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
    content_type = sniff(data)
    if content_type is None:
        raise AttachmentRefused(
            "type",
            f"{filename} is not a {ALLOWED_LIST} file (its content was checked, not "
            "just its name).",
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
