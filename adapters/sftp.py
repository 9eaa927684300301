"""SFTP adapter (paramiko): for agencies whose system is a folder that a batch reads.

The contract with the agency (documented in README.md, "SFTP agencies"):

- deliver: the case is written to `inbox_dir` under a temporary dot-name (`.<name>.<random>.part`)
  and renamed into place (`posix-rename` where the server offers it), so the agency's batch never
  sees a half-written file under a real name; it must ignore names that start with a dot. The
  file name comes from the idempotency key (`LK-7F3K-9QX2.economic-inspection.1.xml`), so a
  repeat delivery finds the file already in `inbox_dir`, or in `archive_dir` where the agency's
  batch moves what it picked up, and answers `duplicate=True` without writing anything. The
  agency numbers the case later; until then the Receipt's agency reference is the file name,
  marked `provisional`.
- send_message (a consumer's reply on a case): a message file in `inbox_dir`, named from the
  idempotency key like a case file (`LK-7F3K-9QX2.economic-inspection.msg12.xml`), in the same
  format: one record with kind "message", case_reference, agency_reference, text, language and
  attachments (file names; see `adapters.fileformats.write_message`). Each attachment is a file
  of its own in the folder `<message file>.attachments/` beside it, under a safe name
  (`attachment_names`; a consumer's name is never a path), written before the record; every file
  goes under a dot-name first and is renamed into place. A repeat finds the record in
  `inbox_dir` or `archive_dir` and writes nothing (`duplicate=True`), as for cases.
- poll: every regular file in `outbox_dir` is a status file (same format family) of one or more
  records naming the agency's own reference and/or our case reference, a status code and a time.
  A file is moved to `processed_dir` only on the poll AFTER the one that returned its updates:
  the cursor carries the names read, and the hub saves that cursor in the same transaction as the
  updates. A crash anywhere in between re-reads the file (harmless: the update ids repeat and the
  hub de-duplicates them) and never loses it. A file that cannot be read is reported as an
  InboundProblem and, one poll later in the same way, moved to `failed_dir` with a
  `<name>.reason.txt` beside it; the other files of the poll are read as usual.
- A name that comes from the server is never trusted as a path: see `unsafe_name_reason`.
- Host keys are pinned: `host_key` is the server's public key; anything else is refused.

`host_key` and `private_key` take the key text itself or `@file:PATH` (read at each connection,
relative to the working directory), so a mapping file can point at a key that a simulator
generates at first start.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import json
import posixpath
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import paramiko
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from adapters.base import (
    DELIVER,
    MESSAGES,
    POLL,
    POLL_CHANGES,
    Adapter,
    AdapterError,
    ContractChecker,
    Health,
    InboundProblem,
    OpenItem,
    Outbound,
    OutboundMessage,
    PermanentError,
    PollResult,
    Receipt,
    Refusal,
    StatusUpdate,
    TransientError,
    dig,
)
from adapters.fileformats import (
    EXTENSIONS,
    FORMATS,
    FormatError,
    read_records,
    write_case,
    write_message,
)

FILE_PREFIX = "@file:"
SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 120  # Assignment.agency_reference holds 128 characters
REASON_SUFFIX = ".reason.txt"  # beside a file the agency refused: why
MAX_REASON_BYTES = 4000


# ----------------------------------------------------------------------------------- file names


def unsafe_name_reason(name: str) -> str | None:
    """Why a file name from the server must not be used to build a path, or None if it is safe.

    A name is one path component: not empty, not `.` or `..`, no `..` anywhere, no `/` or `\\`,
    no control characters, at most 255 characters. Names failing this are never joined to a
    folder, neither on the server nor locally: they are reported and left where they are.
    """
    if not isinstance(name, str) or not name:
        return "empty name"
    if len(name) > 255:
        return "longer than 255 characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains control characters"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if name == ".":
        return "is '.'"
    return None


def printable(name: str) -> str:
    """A name as safe text for messages and the operators' console (escapes, shortened)."""
    text = name.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= 200 else text[:200] + "..."


def case_file_name(idempotency_key: str, extension: str, prefix: str = "") -> str:
    """The case file's name: the idempotency key when it is already a safe name, else a
    sanitised form plus a hash of the key, so two different keys never share a file."""
    if SAFE_KEY.match(idempotency_key) and ".." not in idempotency_key:
        stem = idempotency_key
    else:
        cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", idempotency_key).strip("_") or "case"
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
        stem = f"{cleaned[:80]}-{digest}"
    name = f"{prefix}{stem}.{extension}"
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
        name = (
            f"{prefix}{stem[: MAX_NAME - len(prefix) - len(extension) - 13]}-{digest}.{extension}"
        )
    return name


def attachments_folder(message_file: str) -> str:
    """The folder beside a message file that holds its attachments."""
    return f"{message_file}.attachments"


def attachment_names(filenames: Sequence[str]) -> list[str]:
    """Safe, distinct local names for a message's attachments, in order.

    A consumer's file name is never used as a path: only its last component counts, every
    character outside letters, digits, `.`, `_`, `-` and space becomes `_`, runs of dots
    collapse (no `..`), leading dots go (no hidden files), an empty result becomes
    `attachment-N` and a long one is shortened keeping the extension. Names that collide get
    `-2`, `-3`, ... before the extension.
    """
    out: list[str] = []
    for index, original in enumerate(filenames, start=1):
        base = posixpath.basename(str(original).replace("\\", "/"))
        cleaned = re.sub(r"[^\w. -]+", "_", base)
        cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(" .")
        if not cleaned.strip("_"):
            cleaned = f"attachment-{index}"
        stem, dot, ext = cleaned.rpartition(".")
        if not dot or not stem or len(ext) > 10:
            stem, ext = cleaned, ""
        stem = stem[:100]
        candidate, n = f"{stem}.{ext}" if ext else stem, 1
        while candidate in out:
            n += 1
            candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
        if unsafe_name_reason(candidate) or candidate.startswith("."):
            candidate = f"attachment-{index}"  # not expected; never a doubtful name
        out.append(candidate)
    return out


# ---------------------------------------------------------------------------------------- keys


def read_setting_text(value: str, what: str) -> str:
    """The text of a key setting: the value itself, or the file named by `@file:PATH`."""
    if not value.startswith(FILE_PREFIX):
        return value
    path = Path(value[len(FILE_PREFIX) :]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PermanentError(
            f"cannot read {what} from {path}: {exc.strerror or exc}. Fix the path in the adapter "
            "configuration (a relative path is relative to the working directory); for the demo "
            "agency, `loket run` generates it at first start"
        ) from None


def parse_public_key(text: str) -> paramiko.PKey:
    """A public key from an OpenSSH `.pub` line or a known_hosts line ("[host]:port type b64")."""
    tokens = text.split()
    for i, token in enumerate(tokens[:-1]):
        if token.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                blob = base64.b64decode(tokens[i + 1], validate=True)
                return paramiko.PKey.from_type_string(token, blob)
            except (binascii.Error, ValueError, paramiko.SSHException) as exc:
                raise ValueError(f"the {token} key data cannot be read: {exc}") from None
    raise ValueError(
        "no public key found; give the server's key as `ssh-ed25519 AAAA...` "
        "(its .pub file or a line of `ssh-keyscan`)"
    )


def parse_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise PermanentError(
                "the private key is encrypted: set private_key_passphrase"
            ) from None
        except (paramiko.SSHException, ValueError, IndexError):
            continue
    raise PermanentError(
        "private_key is not an OpenSSH or PEM private key (ed25519, ecdsa or rsa)"
    ) from None


class _HostKeyRejected(paramiko.SSHException):
    def __init__(self, offered: paramiko.PKey):
        super().__init__("host key not pinned")
        self.offered = offered


class _PinnedOnly(paramiko.RejectPolicy):
    """RejectPolicy that says which key the server offered (for the re-pinning message)."""

    def missing_host_key(self, client, hostname, key):
        raise _HostKeyRejected(key)


# -------------------------------------------------------------------------------------- config


class StatusLayout(Schema):
    """Where the fields of a status record live (dotted paths for nested XML/JSON)."""

    root = fields.String(load_default="statuses", metadata={"doc": "JSON key / XML root"})
    record = fields.String(load_default="status", metadata={"doc": "XML element per record"})
    agency_reference = fields.String(load_default="agency_reference")
    case_reference = fields.String(load_default="case_reference")
    status = fields.String(load_default="status")
    time = fields.String(load_default="time")
    message = fields.String(load_default="message")
    id = fields.String(load_default=None, metadata={"doc": "the agency's own event id, if any"})
    time_format = fields.String(load_default=None, metadata={"doc": "strptime; ISO 8601 if empty"})
    timezone = fields.String(load_default="Europe/Brussels", metadata={"doc": "for naive times"})

    @validates_schema
    def _zone(self, data, **_):
        try:
            ZoneInfo(data["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown time zone {data['timezone']!r}", "timezone") from None


class SftpConfig(Schema):
    host = fields.String(required=True)
    port = fields.Integer(load_default=22, validate=validate.Range(min=1, max=65535))
    username = fields.String(required=True)
    password = fields.String(load_default=None, metadata={"secret": True})
    private_key = fields.String(
        load_default=None,
        metadata={"secret": True, "doc": "OpenSSH/PEM private key text, or @file:PATH"},
    )
    private_key_passphrase = fields.String(load_default=None, metadata={"secret": True})
    host_key = fields.String(
        required=True,
        metadata={"doc": "the server's public host key (`ssh-ed25519 AAAA...`) or @file:PATH"},
    )
    inbox_dir = fields.String(required=True, metadata={"doc": "where the agency reads cases"})
    archive_dir = fields.String(load_default=None, metadata={"doc": "default <inbox>/archive"})
    outbox_dir = fields.String(required=True, metadata={"doc": "where it drops status files"})
    processed_dir = fields.String(load_default=None, metadata={"doc": "default <outbox>/processed"})
    failed_dir = fields.String(load_default=None, metadata={"doc": "default <outbox>/failed"})
    rejected_dir = fields.String(
        load_default=None,
        metadata={
            "doc": "where the agency moves case files it refuses, each with <name>.reason.txt; "
            "read at every poll (the delivery becomes a dead letter with that reason)"
        },
    )
    rejected_read_dir = fields.String(
        load_default=None, metadata={"doc": "default <rejected>/read: refusals already recorded"}
    )
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))
    file_prefix = fields.String(load_default="", validate=validate.Regexp(r"^[A-Za-z0-9_-]*$"))
    xml_root = fields.String(load_default="case", validate=validate.Regexp(r"^[A-Za-z_][\w.-]*$"))
    csv_delimiter = fields.String(load_default=";", validate=validate.Length(equal=1))
    status = fields.Nested(StatusLayout, load_default=lambda: StatusLayout().load({}))
    connect_timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.01))
    timeout = fields.Float(load_default=30.0, validate=validate.Range(min=0.01))
    max_files = fields.Integer(load_default=200, validate=validate.Range(min=1))
    max_file_bytes = fields.Integer(load_default=5_000_000, validate=validate.Range(min=1))

    @validates_schema
    def _credentials(self, data, **_):
        if not data.get("password") and not data.get("private_key"):
            raise ValidationError("give a password or a private_key", "private_key")
        host_key = data.get("host_key") or ""
        if not host_key.startswith(FILE_PREFIX):
            try:
                parse_public_key(host_key)
            except ValueError as exc:
                raise ValidationError(str(exc), "host_key") from None


# --------------------------------------------------------------------------------------- cursor


@dataclass
class _Cursor:
    """What the previous poll read: files to move now that the hub has saved their updates."""

    read: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, list[float]] = field(default_factory=dict)  # files in rejected_dir

    @classmethod
    def decode(cls, text: str | None) -> _Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(
                dict(data.get("read") or {}),
                dict(data.get("failed") or {}),
                dict(data.get("refused") or {}),
            )
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor only means re-reading, which is harmless

    def encode(self) -> str | None:
        if not self.read and not self.failed and not self.refused:
            return None
        data: dict[str, Any] = {"v": 1, "read": self.read, "failed": self.failed}
        if self.refused:
            data["refused"] = self.refused
        return json.dumps(data, sort_keys=True)


# -------------------------------------------------------------------------------------- adapter


class SftpAdapter(Adapter):
    kind = "sftp"
    config_schema = SftpConfig
    declared_capabilities = frozenset({DELIVER, POLL, POLL_CHANGES, MESSAGES})

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        c = self.config
        c["archive_dir"] = c["archive_dir"] or posixpath.join(c["inbox_dir"], "archive")
        c["processed_dir"] = c["processed_dir"] or posixpath.join(c["outbox_dir"], "processed")
        c["failed_dir"] = c["failed_dir"] or posixpath.join(c["outbox_dir"], "failed")
        if c["rejected_dir"]:
            c["rejected_read_dir"] = c["rejected_read_dir"] or posixpath.join(
                c["rejected_dir"], "read"
            )
        self.where = f"{c['username']}@{c['host']}:{c['port']}"

    # ---------------------------------------------------------------------------- connection

    def _pinned_key(self) -> paramiko.PKey:
        text = read_setting_text(self.config["host_key"], "the pinned host key")
        try:
            return parse_public_key(text)
        except ValueError as exc:
            raise PermanentError(f"host_key: {exc}") from None

    def _client_key(self) -> paramiko.PKey | None:
        if not self.config["private_key"]:
            return None
        text = read_setting_text(self.config["private_key"], "the private key")
        return parse_private_key(text, self.config["private_key_passphrase"])

    @contextmanager
    def _sftp(self, what: str) -> Iterator[paramiko.SFTPClient]:
        """A connected SFTP session; every transport error leaves as Transient/PermanentError."""
        c = self.config
        pinned = self._pinned_key()
        pkey = self._client_key()
        client = paramiko.SSHClient()
        for entry in {c["host"] if c["port"] == 22 else f"[{c['host']}]:{c['port']}"}:
            client.get_host_keys().add(entry, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_PinnedOnly())
        timeout = c["connect_timeout"]
        try:
            try:
                client.connect(
                    c["host"],
                    c["port"],
                    username=c["username"],
                    password=c["password"],
                    pkey=pkey,
                    timeout=timeout,
                    banner_timeout=timeout,
                    auth_timeout=timeout,
                    channel_timeout=timeout,
                    allow_agent=False,
                    look_for_keys=False,
                )
            except paramiko.BadHostKeyException as exc:
                raise self._host_key_changed(exc.key, pinned) from None
            except _HostKeyRejected as exc:
                raise self._host_key_changed(exc.offered, pinned) from None
            except paramiko.AuthenticationException as exc:
                raise PermanentError(
                    f"{what}: {self.where} refused the login ({exc}); check the private key or "
                    "password and the username in the adapter configuration"
                ) from None
            except TimeoutError:
                raise TransientError(f"{what}: {self.where} did not answer in time") from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                transport = client.get_transport()
                if transport is not None and not getattr(transport, "remote_version", None):
                    raise TransientError(
                        f"{what}: {self.where} accepted the connection but no SSH greeting "
                        f"came within {timeout:g} s ({_short(exc)})"
                    ) from None
                raise TransientError(
                    f"{what}: cannot connect to {self.where} ({_short(exc)})"
                ) from None
            try:
                sftp = client.open_sftp()
                sftp.get_channel().settimeout(c["timeout"])  # type: ignore[union-attr]
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransientError(
                    f"{what}: {self.where} would not start SFTP ({_short(exc)})"
                ) from None
            try:
                yield sftp
            except AdapterError:
                raise
            except Exception as exc:
                raise self._classify(exc, what) from None
            finally:
                sftp.close()
        finally:
            client.close()

    def _host_key_changed(self, offered: paramiko.PKey, pinned: paramiko.PKey) -> PermanentError:
        return PermanentError(
            f"the host key of {self.config['host']}:{self.config['port']} changed: it offered "
            f"{offered.get_name()} {offered.fingerprint}, but {pinned.get_name()} "
            f"{pinned.fingerprint} is pinned. Nothing was sent. If the agency confirms it "
            "replaced its key (check the fingerprint with them by phone), re-pin it: set host_key "
            "in the agency's adapter configuration to the new public key line (e.g. from "
            f"`ssh-keyscan -p {self.config['port']} {self.config['host']}`); otherwise someone "
            "may be intercepting the connection"
        )

    def _classify(self, exc: Exception, what: str) -> AdapterError:
        """SFTP errors: refusals an operator must fix are permanent; the rest are retried.

        Permission denied means the account may not do this (the agency must change rights) and
        a missing folder means the configuration is wrong. Anything else (a generic SFTP failure,
        which is how OpenSSH reports a full disk or quota, a dropped connection, a timeout) is
        likely to pass, so the same file is tried again later.
        """
        code = getattr(exc, "errno", None)
        if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
            return PermanentError(
                f"{what}: permission denied on {self.where} ({_short(exc)}); the agency must let "
                "this account write its inbox and move files in its outbox"
            )
        if isinstance(exc, FileNotFoundError) or code == errno.ENOENT:
            return PermanentError(
                f"{what}: a folder does not exist on {self.where} ({_short(exc)}); check "
                "inbox_dir, outbox_dir, archive_dir, processed_dir and failed_dir"
            )
        if isinstance(exc, TimeoutError):
            return TransientError(f"{what}: {self.where} did not answer in time")
        return TransientError(
            f"{what}: SFTP failure on {self.where} ({type(exc).__name__}: {_short(exc)}); "
            "for example a full disk at the agency; tried again later"
        )

    # ------------------------------------------------------------------------------- deliver

    def file_name(self, item: Outbound | OutboundMessage) -> str:
        return case_file_name(
            item.idempotency_key, EXTENSIONS[self.config["format"]], self.config["file_prefix"]
        )

    def deliver(self, item: Outbound) -> Receipt:
        c = self.config
        name = self.file_name(item)
        try:
            data = write_case(
                item.payload, c["format"], root=c["xml_root"], delimiter=c["csv_delimiter"]
            )
        except FormatError as exc:
            raise PermanentError(f"cannot write the case as {c['format']}: {exc}") from None
        return self._write_once("deliver", name, data, item.idempotency_key)

    # ------------------------------------------------------------------------------ messages

    def send_message(self, item: OutboundMessage) -> Receipt:
        """A consumer's reply as a message file in the inbox (see the module doc): its
        attachments first, each a file in `<name>.attachments/`, then the record, each under a
        dot-name renamed into place. The name comes from the idempotency key, so a repeat finds
        the record in the inbox or the archive and writes nothing."""
        c = self.config
        name = self.file_name(item)
        files = attachment_names([a.filename for a in item.attachments])
        record = {
            "kind": "message",
            "case_reference": item.case_reference,
            "agency_reference": item.agency_reference,
            "text": item.text,
            "language": item.language,
            "attachments": files,
        }
        try:
            data = write_message(record, c["format"], delimiter=c["csv_delimiter"])
        except FormatError as exc:
            raise PermanentError(f"cannot write the message as {c['format']}: {exc}") from None
        documents = [(f, a.data) for f, a in zip(files, item.attachments, strict=True)]
        return self._write_once("send message", name, data, item.idempotency_key, documents)

    def _write_once(
        self,
        action: str,
        name: str,
        data: bytes,
        key: str,
        documents: list[tuple[str, bytes]] | None = None,
    ) -> Receipt:
        """Put `name` into the inbox (its `documents` first, in `<name>.attachments/`), unless
        the inbox or the archive already has it: then it is a repeat and nothing is written."""
        c = self.config
        final = posixpath.join(c["inbox_dir"], name)
        folder = posixpath.join(c["inbox_dir"], attachments_folder(name))
        request: dict[str, Any] = {
            "file": final,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if documents is not None:
            request["attachments"] = [posixpath.join(folder, f) for f, _ in documents]
        request["idempotency_key"] = key
        raw: dict[str, Any] = {"request": request}
        with self._sftp(f"{action} {name} to {c['inbox_dir']}") as sftp:
            for where in (final, posixpath.join(c["archive_dir"], name)):
                if _exists(sftp, where):
                    found = {**raw, "found": where}
                    return Receipt(name, duplicate=True, raw=found, provisional=True)
            if documents:
                _ensure_dir(sftp, folder)
                for file, content in documents:
                    _put(sftp, folder, file, content)
            _put(sftp, c["inbox_dir"], name, data)
        return Receipt(name, duplicate=False, raw=raw, provisional=True)

    # ---------------------------------------------------------------------------------- poll

    def poll(self, cursor: str | None, open_items: Sequence[OpenItem]) -> PollResult:
        c = self.config
        previous = _Cursor.decode(cursor)
        updates: list[StatusUpdate] = []
        problems: list[InboundProblem] = []
        nxt = _Cursor()
        with self._sftp("poll") as sftp:
            for folder in (c["processed_dir"], c["failed_dir"]):
                _ensure_dir(sftp, folder)
            pending = self._settle(sftp, previous, problems)
            nxt.read.update(pending.read)
            nxt.failed.update(pending.failed)
            entries = sorted(sftp.listdir_attr(c["outbox_dir"]), key=lambda a: a.filename)
            budget = c["max_files"]
            for attr in entries:
                name = attr.filename
                if name in (".", ".."):
                    continue
                reason = unsafe_name_reason(name)
                if reason:
                    problems.append(
                        InboundProblem(
                            f"{c['outbox_dir']}/{printable(name)}",
                            f"unsafe file name ({reason}); left in place, not read",
                        )
                    )
                    continue
                if name.startswith(".") or name in nxt.read or name in nxt.failed:
                    continue  # a dot-name is still being written by the agency
                mode = attr.st_mode or 0
                if stat.S_ISDIR(mode):
                    continue
                if not stat.S_ISREG(mode):
                    problems.append(
                        InboundProblem(name, "not a regular file (a link?); left in place")
                    )
                    continue
                if budget == 0:
                    break  # the rest waits for the next poll
                budget -= 1
                stamp = [attr.st_size or 0, attr.st_mtime or 0]
                self._read_one(sftp, name, stamp, updates, problems, nxt)
            refusals = self._refusals(sftp, previous, nxt, problems) if c["rejected_dir"] else []
        return PollResult(tuple(updates), nxt.encode(), tuple(problems), tuple(refusals))

    def _refusals(
        self,
        sftp: paramiko.SFTPClient,
        previous: _Cursor,
        nxt: _Cursor,
        problems: list[InboundProblem],
    ) -> list[Refusal]:
        """The case files the agency refused: each file in `rejected_dir` with its reason file.
        Those the previous poll reported (the hub has saved them) move to rejected_read_dir
        first, so each refusal is reported until it is recorded, and then never again."""
        c = self.config
        rejected, done = c["rejected_dir"], c["rejected_read_dir"]
        _ensure_dir(sftp, done)
        for name, stamp in previous.refused.items():
            if unsafe_name_reason(name) or name.startswith("."):
                continue
            try:
                current = sftp.stat(posixpath.join(rejected, name))
                if [current.st_size or 0, current.st_mtime or 0] != list(stamp):
                    continue  # replaced meanwhile: reported again below
                target = _free_name(sftp, done, name)
                for suffix in (REASON_SUFFIX, ""):
                    if suffix and not _exists(sftp, posixpath.join(rejected, name + suffix)):
                        continue
                    _rename(
                        sftp,
                        posixpath.join(rejected, name + suffix),
                        posixpath.join(done, target + suffix),
                    )
            except FileNotFoundError:
                continue
            except (OSError, paramiko.SSHException) as exc:
                problems.append(
                    InboundProblem(name, f"cannot move a recorded refusal to {done}: {_short(exc)}")
                )
                nxt.refused[name] = list(stamp)
        refusals = []
        for attr in sorted(sftp.listdir_attr(rejected), key=lambda a: a.filename):
            name = attr.filename
            if (
                name.startswith(".")
                or name.endswith(REASON_SUFFIX)
                or name in nxt.refused
                or unsafe_name_reason(name)
                or not stat.S_ISREG(attr.st_mode or 0)
            ):
                continue
            try:
                with sftp.open(posixpath.join(rejected, name + REASON_SUFFIX), "rb") as fh:
                    reason = fh.read(MAX_REASON_BYTES).decode("utf-8", "replace").strip()
            except FileNotFoundError:
                reason = ""
            refusals.append(
                Refusal(
                    source=f"{rejected}/{name}",
                    reason=" ".join(reason.split())[:1000] or "no reason given",
                    agency_reference=name,
                )
            )
            nxt.refused[name] = [attr.st_size or 0, attr.st_mtime or 0]
        return refusals

    def _read_one(
        self,
        sftp: paramiko.SFTPClient,
        name: str,
        stamp: list[float],
        updates: list[StatusUpdate],
        problems: list[InboundProblem],
        nxt: _Cursor,
    ) -> None:
        c = self.config
        path = posixpath.join(c["outbox_dir"], name)
        if stamp[0] > c["max_file_bytes"]:
            reason = f"larger than max_file_bytes ({stamp[0]} > {c['max_file_bytes']} bytes)"
            problems.append(InboundProblem(name, reason))
            nxt.failed[name] = {"stamp": stamp, "reason": reason}
            return
        with sftp.open(path, "rb") as fh:
            data = fh.read(c["max_file_bytes"] + 1)
        digest = hashlib.sha256(data).hexdigest()[:12]
        try:
            found = self._parse(data)
        except (FormatError, ValueError) as exc:
            reason = f"unreadable status file: {exc}"
            excerpt = data[:500].decode("utf-8", "replace")
            problems.append(InboundProblem(f"{name} ({digest})", reason, excerpt))
            nxt.failed[name] = {"stamp": stamp, "reason": reason}
            return
        updates.extend(found)
        nxt.read[name] = stamp

    def _parse(self, data: bytes) -> list[StatusUpdate]:
        c, layout = self.config, self.config["status"]
        records = read_records(
            data,
            c["format"],
            root=layout["root"],
            record=layout["record"],
            delimiter=c["csv_delimiter"],
        )
        out = []
        for index, record in enumerate(records, start=1):
            where = f"record {index}"
            code = _opt_str(dig(record, layout["status"]))
            if not code:
                raise FormatError(f"{where}: no status code in {layout['status']!r}")
            agency_ref = _opt_str(dig(record, layout["agency_reference"]))
            case_ref = _opt_str(dig(record, layout["case_reference"]))
            if not agency_ref and not case_ref:
                raise FormatError(
                    f"{where}: names no case (neither {layout['agency_reference']!r} "
                    f"nor {layout['case_reference']!r})"
                )
            raw_time = dig(record, layout["time"])
            try:
                occurred = self._time(raw_time)
            except (TypeError, ValueError):
                raise FormatError(
                    f"{where}: unknown date {raw_time!r} in {layout['time']!r}"
                ) from None
            own_id = _opt_str(dig(record, layout["id"])) if layout["id"] else None
            out.append(
                StatusUpdate(
                    agency_status=code,
                    occurred_at=occurred,
                    agency_reference=agency_ref,
                    case_reference=case_ref,
                    message=_opt_str(dig(record, layout["message"])),
                    # Without the agency's own event id, the hub identifies the update by its
                    # content (StatusUpdate.key): the same record in a second file, or the
                    # same file dropped again, is a duplicate, whatever the file is called.
                    update_id=own_id,
                )
            )
        return out

    def _time(self, value: Any) -> datetime:
        layout = self.config["status"]
        if not isinstance(value, str) or not value.strip():
            raise ValueError("no time")
        text = value.strip()
        if layout["time_format"]:
            dt = datetime.strptime(text, layout["time_format"])
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=ZoneInfo(layout["timezone"]))
        return dt.astimezone(UTC)

    def _settle(
        self, sftp: paramiko.SFTPClient, previous: _Cursor, problems: list[InboundProblem]
    ) -> _Cursor:
        """Move the files the previous poll read (their updates are saved now): read ones to
        processed/, unreadable ones to failed/ with the reason. Returns those that could not be
        moved, to try again next time (they are not read again meanwhile)."""
        c = self.config
        pending = _Cursor()
        moves = [(n, s, None) for n, s in previous.read.items()] + [
            (n, e.get("stamp"), str(e.get("reason", ""))) for n, e in previous.failed.items()
        ]
        for name, stamp, reason in moves:
            if unsafe_name_reason(name) or name.startswith("."):
                continue  # not a name this adapter wrote into a cursor
            source = posixpath.join(c["outbox_dir"], name)
            try:
                current = sftp.stat(source)
            except FileNotFoundError:
                continue  # already moved
            if [current.st_size or 0, current.st_mtime or 0] != list(stamp or []):
                continue  # changed since it was read: it is read again
            target_dir = c["processed_dir"] if reason is None else c["failed_dir"]
            try:
                target = _free_name(sftp, target_dir, name)
                if reason is not None:
                    with sftp.open(posixpath.join(target_dir, f"{target}.reason.txt"), "w") as fh:
                        fh.write(f"{name}: {reason}\n".encode())
                _rename(sftp, source, posixpath.join(target_dir, target))
            except (OSError, paramiko.SSHException) as exc:
                problems.append(
                    InboundProblem(
                        name,
                        f"cannot move it to {target_dir} ({_short(exc)}); it stays in the "
                        "outbox and is not read again while it is unchanged",
                    )
                )
                if reason is None:
                    pending.read[name] = list(stamp or [])
                else:
                    pending.failed[name] = {"stamp": stamp, "reason": reason}
        return pending

    # ------------------------------------------------------------------------------ contract

    @classmethod
    def contract_checker(cls, contract_dir: Path, config: Mapping[str, Any]) -> ContractChecker:
        """Each payload, written as the case file the agency gets (the configured format),
        must fit the agency's layout: `case.xsd` (XML), `case.schema.json` (JSON) or
        `case.layout.yaml` (CSV), see adapters/filecontracts.py."""
        from adapters.filecontracts import CASE_CONTRACTS, ContractError, CsvLayout, load_checker

        try:
            c = cls.config_schema().load(dict(config))
        except ValidationError as exc:
            return ContractChecker(
                problems=[
                    f"adapter.{key}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                    for key, msgs in sorted(exc.messages_dict.items())
                ]
            )
        fmt = c["format"]
        path = contract_dir / CASE_CONTRACTS[fmt]
        kind = {"xml": "XSD", "json": "JSON Schema", "csv": "CSV layout"}[fmt]
        if not path.exists():
            return ContractChecker(
                problems=[
                    f"no {path.name} in {contract_dir.name}/: the adapter writes {fmt.upper()} "
                    f"case files, so put the agency's {kind} of a case file there (or change "
                    "format)"
                ]
            )
        try:
            checker = load_checker(path, fmt)
            if fmt == "csv" and CsvLayout.load(path).delimiter != c["csv_delimiter"]:
                wanted = CsvLayout.load(path).delimiter
                return ContractChecker(
                    problems=[
                        f"adapter.csv_delimiter: {c['csv_delimiter']!r}, but the agency's "
                        f"{path.name} says {wanted!r}. Fix: set csv_delimiter to {wanted!r}"
                    ]
                )
        except ContractError as exc:
            return ContractChecker(problems=[f"{exc}. Fix: correct the agency's contract file"])

        def check(payload: Mapping[str, Any]) -> list[str]:
            try:
                data = write_case(payload, fmt, root=c["xml_root"], delimiter=c["csv_delimiter"])
            except FormatError as exc:
                return [f"fields: cannot write the case as {fmt}: {exc}. Fix: rename the field"]
            return [
                (f"fields.{p.field}" if p.field else "the case file")
                + f": {p.message} (the agency's {path.name})"
                + (f". Fix: {p.fix}" if p.fix else "")
                for p in checker(data)
            ]

        return ContractChecker(check)

    # --------------------------------------------------------------------------------- check

    def check(self) -> Health:
        started = time.perf_counter()
        c = self.config
        try:
            with self._sftp("check") as sftp:
                for key in ("inbox_dir", "outbox_dir"):
                    try:
                        mode = sftp.stat(c[key]).st_mode or 0
                    except FileNotFoundError:
                        raise PermanentError(
                            f"check: {key} {c[key]!r} does not exist on {self.where}"
                        ) from None
                    if not stat.S_ISDIR(mode):
                        raise PermanentError(f"check: {key} {c[key]!r} is not a folder")
        except AdapterError as exc:
            return Health(False, exc.detail, (time.perf_counter() - started) * 1000)
        return Health(
            True,
            f"connected to {self.where} with the pinned host key; inbox and outbox are there",
            (time.perf_counter() - started) * 1000,
        )


# --------------------------------------------------------------------------------- SFTP helpers


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _put(sftp: paramiko.SFTPClient, folder: str, name: str, data: bytes) -> None:
    """Write `folder/name` under a temporary dot-name and rename it into place, so the final
    name only ever appears complete."""
    temp = posixpath.join(folder, f".{name}.{secrets.token_hex(4)}.part")
    try:
        with sftp.open(temp, "wb") as fh:
            fh.set_pipelined(True)
            fh.write(data)
        written = sftp.stat(temp).st_size
        if written != len(data):
            raise OSError(f"wrote {written} of {len(data)} bytes")
        _rename(sftp, temp, posixpath.join(folder, name))
    except BaseException:
        with suppress(Exception):  # best effort: dot-names are ignored by contract
            sftp.remove(temp)
        raise


def _ensure_dir(sftp: paramiko.SFTPClient, path: str) -> None:
    if not _exists(sftp, path):
        try:
            sftp.mkdir(path)
        except OSError:
            if not _exists(sftp, path):  # lost a race with another poller: fine
                raise


def _rename(sftp: paramiko.SFTPClient, source: str, target: str) -> None:
    """Atomic replace where the server offers posix-rename, else the plain SFTP rename."""
    try:
        sftp.posix_rename(source, target)
    except OSError as exc:
        if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.ENOENT):
            raise
        sftp.rename(source, target)


def _free_name(sftp: paramiko.SFTPClient, folder: str, name: str) -> str:
    """`name`, or `name.N` when the agency reused a file name already in `folder`."""
    candidate, n = name, 1
    while _exists(sftp, posixpath.join(folder, candidate)):
        n += 1
        candidate = f"{name}.{n}"
    return candidate


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
