"""The evidence log a third party can verify: one global sequence, signed checkpoints, proofs.

Writers append entries to `audit_entries` as before (hub/audit.py), chained per case and with no
global lock. A checkpoint (the worker's housekeeping, `loket evidence checkpoint`) is the one
sequencer: under a lock it numbers the entries not yet numbered (`seq` 1, 2, 3, ... without
gaps), computes the RFC 6962 Merkle tree head over entries 1..size (leaf = H(0x00 || entry
hash), node = H(0x01 || left || right)) and signs it with an Ed25519 key that lives in a file
outside the database (`<var_dir>/evidence/keys/`, or `LOKET_EVIDENCE_KEY`). The public keys, with
the time each was valid, are in a small keyring file (`<var_dir>/evidence/keyring.json`); a
rotated key stays there so older checkpoints still verify.

Each checkpoint row also keeps the entry hashes it added and the tree's right edge (so the next
checkpoint costs what it adds, not the log's size): the signed root authenticates them, so
`verify` can name the exact entry that was altered, removed, inserted or moved, and truncation
shows as fewer entries than a checkpoint signed. What the log cannot see: a change to entries not
yet under a checkpoint beyond what the per-case chains show (checkpoints often keep that window
short), and a checkpoint row deleted together with the entries it covers (publish the latest
checkpoint elsewhere to close that; `checkpoint` prints it).

`check_bundle` needs no database: one case's entries, their inclusion proofs, the checkpoint and
the public keyring, in one canonical JSON file (`export_case`).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from hub import audit
from hub.config import Settings
from hub.db import Database
from hub.models import AuditEntry, Case, EvidenceCheckpoint

BUNDLE_FORMAT = "loket-evidence-bundle/1"
NOTE_HEADER = "loket evidence checkpoint v1"
# Any fixed number: the PostgreSQL advisory lock that makes one checkpoint at a time.
_LOCK = 0x4C4F4B4554


class EvidenceError(Exception):
    """The log, a key or a bundle is not what it should be; the message says what and why."""


# ------------------------------------------------------------------------------ Merkle (RFC 6962)


def leaf_hash(entry_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The perfect subtrees on the right edge of a growing tree: append is O(1) amortised and
    `root()` is the RFC 6962 tree head of everything appended so far."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        node, n = leaf, self.size
        while n & 1:
            node = node_hash(self._stack.pop(), node)
            n >>= 1
        self._stack.append(node)
        self.size += 1

    def state(self) -> bytes:
        """The right edge, one 32-byte hash per set bit of the size: enough to go on appending."""
        return b"".join(self._stack)

    @classmethod
    def restore(cls, size: int, state: bytes) -> Frontier:
        f = cls()
        f.size, f._stack = size, [state[i : i + 32] for i in range(0, len(state), 32)]
        if len(f._stack) != size.bit_count() or len(state) % 32:
            raise EvidenceError(f"the checkpoint of size {size} has a malformed tree edge")
        return f

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    f = Frontier()
    for leaf in leaves:
        f.append(leaf)
    return f.root()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """The tree level by level; an odd node at the end of a level goes up unchanged, which gives
    the same tree as RFC 6962's split at the largest power of two."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        up = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            up.append(below[-1])
        levels.append(up)
    return levels


def _proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    """The audit path of leaf `index` (RFC 6962 section 2.1.1), bottom up."""
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return path


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does `leaf` sit at `index` of the tree of `size` with `root`?"""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


# ------------------------------------------------------------------------------------------ keys


def key_id(public: bytes) -> str:
    """A key's name: the first 16 hex digits of the SHA-256 of its raw public key."""
    return hashlib.sha256(public).hexdigest()[:16]


def _time(text_: str) -> datetime:
    return datetime.fromisoformat(text_)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    public: bytes
    valid_from: datetime
    valid_to: datetime | None = None  # None: the current signing key

    def valid_at(self, at: datetime) -> bool:
        """Both ends included: times are whole seconds, and a checkpoint signed in the second
        its key was rotated stays valid."""
        return self.valid_from <= at and (self.valid_to is None or at <= self.valid_to)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public).decode(),
            "valid_from": _stamp(self.valid_from),
            "valid_to": _stamp(self.valid_to) if self.valid_to else None,
        }


@dataclass(frozen=True)
class Keyring:
    """The public keys that sign checkpoints, each with the time it was valid."""

    keys: tuple[PublicKey, ...] = ()

    @classmethod
    def from_json(cls, doc: Any, source: str = "keyring") -> Keyring:
        try:
            keys = tuple(
                PublicKey(
                    k["key_id"],
                    base64.b64decode(k["public_key"], validate=True),
                    _time(k["valid_from"]),
                    _time(k["valid_to"]) if k["valid_to"] else None,
                )
                for k in doc["keys"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EvidenceError(f"{source} is not a keyring ({exc!r})") from None
        for k in keys:
            if len(k.public) != 32 or key_id(k.public) != k.key_id:
                raise EvidenceError(f"{source}: key {k.key_id} does not match its public key")
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            return cls.from_json(json.loads(path.read_text()), str(path))
        except FileNotFoundError:
            raise EvidenceError(
                f"no evidence keyring at {path}: make a checkpoint first "
                "(`loket evidence checkpoint`) or set LOKET_EVIDENCE_DIR"
            ) from None
        except json.JSONDecodeError as exc:
            raise EvidenceError(f"{path} is not JSON: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"keys": [k.to_json() for k in self.keys]}

    def current(self) -> PublicKey | None:
        return next((k for k in reversed(self.keys) if k.valid_to is None), None)

    def signer_of(self, kid: str, at: datetime) -> PublicKey:
        key = next((k for k in self.keys if k.key_id == kid), None)
        if key is None:
            raise EvidenceError(f"key {kid} is not in the keyring")
        if not key.valid_at(at):
            raise EvidenceError(f"key {kid} was not valid at {_stamp(at)}")
        return key


def _write_atomically(path: Path, content: str) -> None:
    """Replace `path` with `content` in one rename, from a temporary file of this writer's own
    (readable by all, as the public files it writes are meant to be copied)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(content)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class KeyStore:
    """Where the keys live: `dir/keyring.json` (public) and `dir/keys/<key id>.pem` (private,
    mode 0600), or the private key at `key_file` (a mounted secret) when set."""

    dir: Path
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        return cls(settings.evidence_dir or settings.var_dir / "evidence", settings.evidence_key)

    @property
    def keyring_path(self) -> Path:
        return self.dir / "keyring.json"

    @property
    def published_path(self) -> Path:
        """The latest signed checkpoint, kept outside the database too: a log cut back together
        with its checkpoint rows still falls short of it. Copy it anywhere you like."""
        return self.dir / "checkpoint.json"

    def publish(self, cp: Checkpoint) -> None:
        """Write `cp` as the published checkpoint, unless a larger one is out already. Two
        sequencers (threads or processes) publish one at a time, each from a file of its own:
        with one shared temporary name, the second one's rename found the file gone, and an
        older checkpoint could land after a newer one."""
        with self._locked():
            current = self.published()
            if current is not None and current.size > cp.size:
                return
            _write_atomically(self.published_path, json.dumps(cp.to_json(), indent=2) + "\n")

    def published(self) -> Checkpoint | None:
        try:
            doc = json.loads(self.published_path.read_text())
            return Checkpoint(
                doc["size"], doc["root"], _time(doc["at"]), doc["key_id"], doc["signature"]
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(f"{self.published_path} is not a checkpoint ({exc!r})") from None

    def keyring(self) -> Keyring:
        return Keyring.load(self.keyring_path)

    def _save(self, ring: Keyring) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.keyring_path, json.dumps(ring.to_json(), indent=2) + "\n")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time makes or rotates keys (two first checkpoints at once would
        otherwise each make a key)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def rotate(self, now: datetime) -> PublicKey:
        """A new signing key from `now`; the current one stays in the keyring, valid until now."""
        with self._locked():
            return self._rotate(now)

    def _rotate(self, now: datetime) -> PublicKey:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        new = PublicKey(key_id(public), public, now.replace(microsecond=0))
        keys_dir = self.dir / "keys"
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = keys_dir / f"{new.key_id}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        ring = Keyring.load(self.keyring_path) if self.keyring_path.exists() else Keyring()
        old = tuple(
            PublicKey(k.key_id, k.public, k.valid_from, k.valid_to or new.valid_from)
            for k in ring.keys
        )
        self._save(Keyring((*old, new)))
        return new

    def signer(self, now: datetime) -> tuple[str, Ed25519PrivateKey]:
        """The current key's id and private key; the first call makes one."""
        if not self.keyring_path.exists() and self.key_file is None:
            with self._locked():
                if not self.keyring_path.exists():
                    self._rotate(now)
        ring = self.keyring()
        key = ring.current()
        if key is None:
            raise EvidenceError(
                f"{self.keyring_path} has no current key: run `loket evidence rotate-key`"
            )
        path = self.key_file or self.dir / "keys" / f"{key.key_id}.pem"
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise EvidenceError(f"the signing key {path} is missing") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise EvidenceError(f"{path} is not an Ed25519 private key")
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if key_id(public) != key.key_id:
            raise EvidenceError(
                f"{path} is key {key_id(public)}, but the keyring's current key is {key.key_id}"
            )
        return key.key_id, private


# ------------------------------------------------------------------------------------ checkpoints


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: str  # hex
    at: datetime
    key_id: str
    signature: str  # base64

    def note(self) -> bytes:
        """The bytes signed: a fixed header and every field, one a line."""
        return (
            f"{NOTE_HEADER}\n{self.size}\n{self.root}\n{_stamp(self.at)}\n{self.key_id}\n".encode()
        )

    def check_signature(self, ring: Keyring) -> None:
        key = ring.signer_of(self.key_id, self.at)
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(
                base64.b64decode(self.signature, validate=True), self.note()
            )
        except (InvalidSignature, ValueError):
            raise EvidenceError(
                f"the checkpoint of size {self.size} is not signed by key {self.key_id}"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": self.root,
            "at": _stamp(self.at),
            "key_id": self.key_id,
            "signature": self.signature,
        }


def _checkpoint(row: EvidenceCheckpoint) -> Checkpoint:
    return Checkpoint(row.size, row.root, row.at, row.key_id, row.signature)


def _lock(s: Session) -> None:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    # SQLite: a write transaction is BEGIN IMMEDIATE (hub/db.py), one writer at a time already.


def _trusted_leaves(rows: Sequence[EvidenceCheckpoint], ring: Keyring | None) -> list[bytes]:
    """The entry hashes the checkpoints hold, each checkpoint's signature and root checked."""
    hashes: list[bytes] = []
    frontier = Frontier()
    for row in rows:
        cp = _checkpoint(row)
        if ring is not None:
            cp.check_signature(ring)
        blob = bytes(row.leaves)
        if len(blob) != 32 * (cp.size - len(hashes)):
            raise EvidenceError(f"the checkpoint of size {cp.size} holds a wrong number of leaves")
        for i in range(0, len(blob), 32):
            hashes.append(blob[i : i + 32])
            frontier.append(leaf_hash(blob[i : i + 32]))
        if frontier.root().hex() != cp.root:
            raise EvidenceError(
                f"the checkpoint of size {cp.size} no longer matches its signed root: "
                "the checkpoint table was altered"
            )
    return hashes


def checkpoint(db: Database, store: KeyStore, now: datetime) -> Checkpoint | None:
    """Number the entries written since the last checkpoint and sign the new tree head; None
    when there is nothing new. Safe to run from several workers at once (one waits)."""
    kid, private = store.signer(now)
    with db.session() as s:
        _lock(s)
        last = s.scalars(
            select(EvidenceCheckpoint).order_by(EvidenceCheckpoint.size.desc()).limit(1)
        ).first()
        size = last.size if last else 0
        frontier = Frontier.restore(size, bytes(last.frontier)) if last else Frontier()
        if last and frontier.root().hex() != last.root:
            raise EvidenceError(
                f"the checkpoint of size {size} no longer matches its signed root: "
                "run `loket evidence verify`"
            )
        top = s.scalar(select(func.max(AuditEntry.seq))) or 0
        if top != size:
            raise EvidenceError(
                f"entries are numbered up to {top} but the last checkpoint has {size}: "
                "run `loket evidence verify`"
            )
        t = AuditEntry.__table__
        new = s.execute(select(t.c.id, t.c.hash).where(t.c.seq.is_(None)).order_by(t.c.id)).all()
        if not new:
            return None
        s.execute(
            update(t).where(t.c.id == bindparam("b_id")).values(seq=bindparam("b_seq")),
            [{"b_id": id_, "b_seq": size + i + 1} for i, (id_, _) in enumerate(new)],
            execution_options={"synchronize_session": False},
        )
        hashes = [_raw(h) for _, h in new]
        bad = next((id_ for (id_, _), h in zip(new, hashes, strict=True) if len(h) != 32), None)
        if bad is not None:
            raise EvidenceError(f"entry id {bad} has a malformed hash: run `loket evidence verify`")
        added = b"".join(hashes)
        for h in hashes:
            frontier.append(leaf_hash(h))
        at = now.replace(microsecond=0)
        unsigned = Checkpoint(frontier.size, frontier.root().hex(), at, kid, "")
        signature = base64.b64encode(private.sign(unsigned.note())).decode()
        cp = Checkpoint(unsigned.size, unsigned.root, at, kid, signature)
        s.add(
            EvidenceCheckpoint(
                size=cp.size,
                root=cp.root,
                at=at,
                key_id=kid,
                signature=signature,
                leaves=added,
                frontier=frontier.state(),
            )
        )
    store.publish(cp)
    return cp


def checkpoint_due(db: Database, now: datetime, *, every: timedelta, entries: int) -> bool:
    """True when `entries` entries wait for a checkpoint, or any wait and the last one is older
    than `every`."""
    with db.session(read_only=True) as s:
        waiting = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))
        )
        if not waiting:
            return False
        last = s.scalar(select(func.max(EvidenceCheckpoint.at)))
    return waiting >= entries or last is None or now - last >= every


# ----------------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Finding:
    position: float  # the entry's place in the log (its seq; unnumbered entries after the rest)
    message: str


@dataclass(frozen=True)
class Report:
    entries: int
    checkpoint: Checkpoint | None
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


@dataclass(frozen=True)
class _Entry:
    """An entry as the checks need it: its content is hashed when read (`intact`) and kept only
    for an export, so walking millions of entries holds no JSON."""

    id: int
    seq: int | None
    case_id: int | None
    at: datetime
    actor: str
    action: str
    agency_id: str | None
    prev_hash: str | None
    hash: str
    intact: bool
    data: Any = None
    data_sha256: str | None = None
    erased: bool = False  # its data was erased (hub/gdpr.py), its digest kept

    def name(self, refs: dict[int, str]) -> str:
        where = f"case {refs.get(self.case_id, self.case_id)}" if self.case_id else "no case"
        number = f"#{self.seq}" if self.seq is not None else "(not yet numbered)"
        return f"entry {number} (id {self.id}, {self.action}, {where}, {_stamp(self.at)})"


_COLUMNS = ("id", "seq", "case_id", "at", "actor", "action", "agency_id", "prev_hash", "hash")


def _entries(s: Session, *conditions, with_data: bool = False) -> list[_Entry]:
    t = AuditEntry.__table__
    query = select(*(t.c[name] for name in _COLUMNS), t.c.data, t.c.data_sha256).where(*conditions)
    out = []
    for row in s.execute(query.order_by(t.c.id).execution_options(yield_per=2000)):
        e = row._mapping
        ok = audit.intact(
            e["hash"],
            e["prev_hash"],
            e["at"],
            e["actor"],
            e["action"],
            e["agency_id"],
            e["data"],
            e["data_sha256"],
        )
        out.append(
            _Entry(
                *(e[name] for name in _COLUMNS),
                intact=ok,
                data=e["data"] if with_data else None,
                data_sha256=e["data_sha256"] if with_data else None,
                erased=audit.is_erased(e["data"], e["data_sha256"]),
            )
        )
    return out


def _chain(entries: Sequence[_Entry], refs: dict[int, str], position: Callable[[_Entry], float]):
    """Findings of the per-case chains (entries in id order) and of each entry's own hash."""
    heads: dict[int, str] = {}
    for e in entries:
        if not e.intact:
            yield Finding(
                position(e), f"{e.name(refs)} was altered: its content no longer matches its hash"
            )
            continue
        expected = heads.get(e.case_id) if e.case_id is not None else None
        if e.prev_hash != expected:
            what = "removed or reordered" if e.prev_hash else "removed"
            yield Finding(
                position(e),
                f"{e.name(refs)} does not follow the case's previous entry: an entry before it "
                f"was {what}, or it was inserted",
            )
        if e.case_id is not None:
            heads[e.case_id] = e.hash
    yield from _unexplained_erasures(entries, refs, position)


ERASED = "gdpr.erased"  # the entry an erasure leaves on the case's chain (hub/gdpr.py)


def _unexplained_erasures(
    entries: Sequence[_Entry], refs: dict[int, str], position: Callable[[_Entry], float]
):
    """Entries whose data was emptied with no erasure recorded after them (on their case's
    chain; for an entry without a case, on any): data removed by hand, not by an erasure."""
    waiting: dict[int | None, list[_Entry]] = {}
    for e in entries:
        if e.action == ERASED and e.intact:
            waiting.pop(e.case_id, None)
            waiting.pop(None, None)
        elif e.erased:
            waiting.setdefault(e.case_id, []).append(e)
    for e in sorted((e for es in waiting.values() for e in es), key=lambda e: e.id):
        yield Finding(
            position(e), f"{e.name(refs)} lost its data with no erasure on record after it"
        )


def _raw(hex_hash: str) -> bytes:
    """A stored hash as bytes; b"" when someone wrote something that is not hex there."""
    try:
        return bytes.fromhex(hex_hash)
    except (TypeError, ValueError):
        return b""


def _against_checkpoints(
    entries: Sequence[_Entry], trusted: Sequence[bytes], refs: dict[int, str]
) -> list[Finding]:
    by_seq = {e.seq: e for e in entries if e.seq is not None}
    unnumbered = {_raw(e.hash): e for e in entries if e.seq is None}
    where = {h: i + 1 for i, h in enumerate(trusted)}
    found = []
    for p, h in enumerate(trusted, start=1):
        e = by_seq.get(p)
        if e is None:
            moved = unnumbered.get(h)
            found.append(
                Finding(
                    p,
                    f"entry #{p} was removed"
                    + (
                        f" from the sequence (its row is now unnumbered, id {moved.id})"
                        if moved
                        else ""
                    ),
                )
            )
        elif _raw(e.hash) != h:
            if not e.intact:
                found.append(
                    Finding(
                        p, f"{e.name(refs)} was altered: its content no longer matches its hash"
                    )
                )
            elif _raw(e.hash) in where:
                found.append(
                    Finding(
                        p,
                        f"{e.name(refs)} was reordered: the checkpoint has it at "
                        f"#{where[_raw(e.hash)]}",
                    )
                )
            elif (nxt := by_seq.get(p + 1)) is not None and _raw(nxt.hash) == h:
                found.append(
                    Finding(
                        p, f"{e.name(refs)} was inserted: the checkpoint has another entry at #{p}"
                    )
                )
            else:
                found.append(
                    Finding(
                        p,
                        f"{e.name(refs)} was rewritten (its hashes recomputed): the checkpoint "
                        "signed another entry there",
                    )
                )
    for e in entries:
        if e.seq is not None and e.seq > len(trusted):
            found.append(
                Finding(e.seq, f"{e.name(refs)} was inserted: no checkpoint covers #{e.seq}")
            )
    top = max(by_seq, default=0)
    if top < len(trusted):
        found.insert(
            0,
            Finding(
                top + 1,
                f"the log is truncated: the last checkpoint signed {len(trusted)} entries, the "
                f"log ends at #{top} (#{top + 1} is the first missing)",
            ),
        )
    return found


def verify(db: Database, ring: Keyring | None, published: Checkpoint | None = None) -> Report:
    """Walk the whole log: every entry's hash, every case's chain, the numbering against the
    signed checkpoints (and against `published`, a checkpoint kept outside the database).
    Findings are in log order; the first is the first entry that changed."""
    with db.session(read_only=True) as s:
        rows = s.scalars(select(EvidenceCheckpoint).order_by(EvidenceCheckpoint.size)).all()
        last = _checkpoint(rows[-1]) if rows else None
        try:
            trusted = _trusted_leaves(rows, ring) if rows else []
            _against_published(rows, published, ring)
        except EvidenceError as exc:
            return Report(0, last, (Finding(0, str(exc)),))
        entries = _entries(s)
        refs = dict(s.execute(select(Case.id, Case.reference)).all())
    size = len(trusted)
    unnumbered = sorted(e.id for e in entries if e.seq is None)
    order = {i: n for n, i in enumerate(unnumbered)}

    def position(e: _Entry) -> float:
        return e.seq if e.seq is not None else size + 1 + order[e.id]

    findings = _against_checkpoints(entries, trusted, refs) + list(_chain(entries, refs, position))
    findings.sort(key=lambda f: f.position)
    return Report(len(entries), last, tuple(dict.fromkeys(findings)))


def _against_published(
    rows: Sequence[EvidenceCheckpoint], published: Checkpoint | None, ring: Keyring | None
) -> None:
    if published is None:
        return
    if ring is not None:
        published.check_signature(ring)
    same = next((r for r in rows if r.size == published.size), None)
    if same is None and published.size > (rows[-1].size if rows else 0):
        raise EvidenceError(
            f"the log is truncated: the published checkpoint signed {published.size} entries, "
            f"the database's checkpoints end at {rows[-1].size if rows else 0}"
        )
    if same is not None and same.root != published.root:
        raise EvidenceError(
            f"the checkpoint of size {published.size} differs from the published one: "
            "the checkpoint table was rewritten"
        )


@dataclass(frozen=True)
class CaseCheck:
    ok: bool
    problem: str | None
    checkpointed: int  # how many of the case's entries a signed checkpoint covers


def verify_case(s: Session, case_id: int, ring: Keyring | None) -> CaseCheck:
    """The case page's check: the case's chain, and each numbered entry against the signed
    checkpoint that covers it (signatures checked when the keyring is at hand). Cheap enough
    for every view; `verify` is the whole log's."""
    entries = _entries(s, AuditEntry.case_id == case_id)
    refs = {case_id: s.scalar(select(Case.reference).where(Case.id == case_id)) or str(case_id)}
    first = next(iter(_chain(entries, refs, lambda e: 0)), None)
    if first is not None:
        return CaseCheck(False, first.message, 0)
    numbered = [e for e in entries if e.seq is not None]
    if not numbered:
        return CaseCheck(True, None, 0)
    low = min(e.seq for e in numbered if e.seq is not None)
    rows = s.scalars(
        select(EvidenceCheckpoint)
        .where(EvidenceCheckpoint.size >= low)
        .order_by(EvidenceCheckpoint.size)
    ).all()
    start = (
        s.scalar(select(func.max(EvidenceCheckpoint.size)).where(EvidenceCheckpoint.size < low))
        or 0
    )
    leaves: dict[int, bytes] = {}
    for row in rows:
        if ring is not None:
            try:
                _checkpoint(row).check_signature(ring)
            except EvidenceError as exc:
                return CaseCheck(False, str(exc), 0)
        blob = bytes(row.leaves)
        for i in range(0, len(blob), 32):
            leaves[start + i // 32 + 1] = blob[i : i + 32]
        start = row.size
    for e in numbered:
        if e.seq is None or leaves.get(e.seq) != _raw(e.hash):
            return CaseCheck(False, f"{e.name(refs)} is not the entry the checkpoint signed", 0)
    return CaseCheck(True, None, len(numbered))


# ----------------------------------------------------------------------------------------- bundles


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def export_case(db: Database, store: KeyStore, reference: str, now: datetime) -> bytes:
    """One case's entries with their inclusion proofs, the checkpoint they are proved against
    and the public keyring: a canonical JSON file `check_bundle` verifies offline. Entries not
    yet under a checkpoint get one first."""
    with db.session(read_only=True) as s:
        case_id = s.scalar(select(Case.id).where(Case.reference == reference))
        if case_id is None:
            raise EvidenceError(f"no case {reference}")
        waiting = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.case_id == case_id, AuditEntry.seq.is_(None))
        )
    if waiting:
        checkpoint(db, store, now)
    ring = store.keyring()
    with db.session(read_only=True) as s:
        rows = s.scalars(select(EvidenceCheckpoint).order_by(EvidenceCheckpoint.size)).all()
        trusted = _trusted_leaves(rows, ring)
        entries = _entries(s, AuditEntry.case_id == case_id, with_data=True)
    if not rows:
        raise EvidenceError(f"case {reference} has no evidence entries")
    levels = _levels([leaf_hash(h) for h in trusted])
    out = []
    for e in entries:
        assert e.seq is not None
        if e.seq > len(trusted) or trusted[e.seq - 1] != _raw(e.hash):
            raise EvidenceError(f"{e.name({})} is not the entry the checkpoint signed: run verify")
        out.append(
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "agency_id": e.agency_id,
                "data": e.data,
                "data_sha256": e.data_sha256,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
                "proof": [p.hex() for p in _proof(levels, e.seq - 1)],
            }
        )
    bundle = {
        "format": BUNDLE_FORMAT,
        "case": reference,
        "checkpoint": _checkpoint(rows[-1]).to_json(),
        "entries": out,
        "keyring": ring.to_json(),
    }
    return _canonical(bundle)


_ENTRY_KEYS = {
    "seq",
    "at",
    "actor",
    "action",
    "agency_id",
    "data",
    "data_sha256",
    "prev_hash",
    "hash",
    "proof",
}


def check_bundle(raw: bytes, ring: Keyring | None = None) -> str:
    """Verify a bundle with nothing but its bytes and a public keyring (`ring`; None: the
    keyring inside the bundle, which proves integrity but not who signed). Returns a summary;
    raises EvidenceError naming the first thing wrong."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"not a bundle: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise EvidenceError(f"not a bundle: its format is not {BUNDLE_FORMAT}")
    if _canonical(doc) != raw:
        raise EvidenceError("the bundle is not in canonical form: it was changed after export")
    if set(doc) != {"format", "case", "checkpoint", "entries", "keyring"}:
        raise EvidenceError("the bundle has missing or extra parts")
    inside = Keyring.from_json(doc["keyring"], "the bundle's keyring")
    if inside.to_json() != doc["keyring"]:
        raise EvidenceError("the bundle's keyring is malformed")
    if ring is not None and inside != ring:
        raise EvidenceError("the bundle's keyring is not the keyring given")
    try:
        return _check_entries(doc, ring or inside)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvidenceError(f"the bundle is malformed ({exc!r})") from None


def _check_entries(doc: dict[str, Any], ring: Keyring) -> str:
    c = doc["checkpoint"]
    try:
        cp = Checkpoint(int(c["size"]), c["root"], _time(c["at"]), c["key_id"], c["signature"])
    except (KeyError, TypeError, ValueError):
        raise EvidenceError("the bundle's checkpoint is malformed") from None
    if (
        cp.to_json() != c
        or base64.b64encode(base64.b64decode(cp.signature)).decode() != cp.signature
    ):
        raise EvidenceError("the bundle's checkpoint is malformed")
    cp.check_signature(ring)
    root = bytes.fromhex(cp.root)
    prev, last_seq, filed = None, 0, None
    for n, e in enumerate(doc["entries"], start=1):
        if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
            raise EvidenceError(f"entry {n} of the bundle is malformed")
        at = _time(e["at"])
        if at.isoformat() != e["at"] or not isinstance(e["seq"], int) or e["seq"] <= last_seq:
            raise EvidenceError(f"entry {n} of the bundle is malformed")
        if e["prev_hash"] != prev:
            raise EvidenceError(
                f"entry #{e['seq']} does not follow the one before it in the bundle"
            )
        if not isinstance(e["data_sha256"], str | None) or not audit.intact(
            e["hash"],
            prev,
            at,
            e["actor"],
            e["action"],
            e["agency_id"],
            e["data"],
            e["data_sha256"],
        ):
            raise EvidenceError(f"entry #{e['seq']} ({e['action']}) does not match its hash")
        proof = [bytes.fromhex(p) for p in e["proof"]]
        if [p.hex() for p in proof] != e["proof"] or not verify_inclusion(
            e["seq"] - 1, cp.size, leaf_hash(bytes.fromhex(e["hash"])), proof, root
        ):
            raise EvidenceError(f"entry #{e['seq']} ({e['action']}) is not in the signed log")
        if n == 1:
            filed = e
        prev, last_seq = e["hash"], e["seq"]
    if filed is None:
        raise EvidenceError("the bundle has no entries")
    named = (filed["data"] or {}).get("reference") if isinstance(filed["data"], dict) else None
    if filed["action"] != "case.filed" or named not in (None, doc["case"]):
        raise EvidenceError(f"the bundle's entries are not those of case {doc['case']}")
    return (
        f"{len(doc['entries'])} entries of case {doc['case']} verified against the checkpoint "
        f"of {cp.size} entries signed by key {cp.key_id} at {_stamp(cp.at)}"
    )
