"""An SFTP agency simulator: an agency whose whole system is a folder that a nightly batch reads.

The agency's back-end is `AgencyBatch`, working directly on the SFTP server's data folder (it IS
the agency's side of the server): each run it picks up the case files in `inbox/` (ignoring
dot-names, which are still being written), numbers each new one (`EI-2026-000042`), moves it to
`inbox/archive/`, de-duplicates on the file name (which the hub derives from the idempotency
key), moves every case one status further each `step_seconds` (times come from an injectable
clock), and drops one status file per run into `outbox/` (written under a dot-name, then renamed).
A message file (a consumer's reply on a case: a record whose `kind` is "message", its
attachments in the folder `<name>.attachments/` beside it) is attached to its case, de-duplicated on its file name and archived with its attachments;
one naming no case the agency has, or unreadable, goes to `inbox/rejected/` with the reason, as
a case file off contract does.

The SFTP server in front of the folder is either
- `asyncssh` (pure Python, chrooted to the data folder; any username with the authorised key):
  what `loket run` uses, so the demo runs on any machine, with or without OpenSSH; or
- `sshd`: a real OpenSSH server (`openssh-server`), SFTP only, as root: what the tests and CI use.

Keys are generated at first start under the root folder (`ssh_host_ed25519_key[.pub]`,
`client_ed25519_key[.pub]`, `authorized_keys`); the mapping file points the adapter at them with
`@file:` (see mappings/agencies/economic-inspection.yaml).

Each agency's profile (case numbers, status codes, flows) is data:
contracts/agencies/<id>/simulator.yaml with `kind: sftp`. The files themselves are read, checked
and written by `casefiles`, the agency's own code (nothing shared with the hub's adapter).

    loket-simulator sftp --root var/sim/sftp --port 8104 --profile economic-inspection

Many agencies in one process (`launch_group`, what `loket run` uses): one asyncssh server per
address the mappings name (normally one, 127.0.0.1:8104, with one host key at the path the
mappings pin), each agency its own SSH user, authorised key (where its mapping's `private_key`
says) and chroot (its own folder), and its own batch: profile (case numbers, status codes,
flow), file format (XML, JSON or CSV), status file layout and case file contract.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from adapters.base import dig
from loket_simulators import command, wait_listening
from loket_simulators.casefiles import (
    EXTENSIONS,
    FORMATS,
    Contract,
    FileRefused,
    attachments_dir,
    case_contract,
    is_message,
    load_contract,
    name_problem,
    read_message,
    read_record,
    write_statuses,
)
from loket_simulators.profiles import Reader, load, named

log = logging.getLogger("loket.sim.sftp")


@dataclass(frozen=True)
class Profile:
    """How one file-based agency looks from outside."""

    name: str
    id_format: str  # formatted with n (sequence), year, yy
    flow: tuple[tuple[str, str], ...]  # (status code, note); the first is set on pick-up
    reference_field: str = "reference"  # where the case file holds the hub's case reference
    # Another flow for some cases: the value of `kind_field` in the case file picks it (a
    # question is answered, a report ends as intelligence).
    kind_field: str | None = None
    flows: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def flow_for(self, key: str) -> tuple[tuple[str, str], ...]:
        return self.flows.get(key, self.flow)


def read_profile(data: Reader) -> Profile:
    data.known({"name", "case_number", "reference_field", "kind_field", "statuses", "flows"})
    raw_flows = data.data.get("flows") or {}
    if not isinstance(raw_flows, dict):
        raise data.fail("flows", "map each value of kind_field to its statuses")
    flows = {str(k): Reader(data.path, raw_flows).statuses(str(k)) for k in raw_flows}
    if flows and not data.optional("kind_field"):
        raise data.fail("flows", "name the case file's field that picks a flow in kind_field")
    return Profile(
        name=data.text("name"),
        id_format=data.case_number(),
        flow=data.statuses(),
        reference_field=data.text("reference_field", "reference"),
        kind_field=data.optional("kind_field"),
        flows=flows,
    )


@cache
def profiles() -> dict[str, Profile]:
    """Every SFTP agency's profile by agency id (simulator.yaml files with `kind: sftp`)."""
    return load("sftp", read_profile)


def profile(name: str) -> Profile:
    return named("SFTP", profiles(), name)


# Where a status record's fields go: the same keys as the adapter's `status` layout.
DEFAULT_LAYOUT: dict[str, Any] = {
    "root": "statuses",
    "record": "status",
    "agency_reference": "agency_reference",
    "case_reference": "case_reference",
    "status": "status",
    "time": "time",
    "message": "message",
}
# How the batch writes times: strftime and zone (a time without an offset is local time), or ISO.
TIME_LAYOUT = ("time_format", "timezone")


@dataclass
class SimCase:
    id: str
    file: str
    case_reference: str | None
    created: str  # ISO time
    step: int = 0
    flow: str = ""  # the profile's flow for this case (see Profile.kind_field)
    # the replies received on it, in order: {"file", "text", "language", "attachments"}
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BatchRun:
    picked_up: list[str] = field(default_factory=list)
    replays: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # message files attached to a case
    status_file: str | None = None
    records: int = 0


class AgencyBatch:
    """The agency's back-end on the server's data folder. Thread-safe; time from `clock`."""

    def __init__(
        self,
        data_dir: Path,
        profile: Profile,
        *,
        fmt: str = "xml",
        step_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        layout: Mapping[str, Any] | None = None,
        delimiter: str = ";",
        schema: Path | None = None,
        state_file: Path | None = None,
    ):
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.data_dir = Path(data_dir)
        self.inbox = self.data_dir / "inbox"
        self.archive = self.inbox / "archive"
        self.rejected_dir = self.inbox / "rejected"
        self.outbox = self.data_dir / "outbox"
        for folder in (self.inbox, self.archive, self.rejected_dir, self.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.fmt = fmt
        self.step = timedelta(seconds=step_seconds)
        self.clock = clock
        self.layout = {**DEFAULT_LAYOUT, **(layout or {})}
        self.time_format = (layout or {}).get("time_format")
        self.timezone = ZoneInfo((layout or {}).get("timezone") or "Europe/Brussels")
        self.delimiter = delimiter
        self.state_file = state_file or self.data_dir.parent / "agency-state.json"
        self.lock = threading.RLock()
        self.cases: dict[str, SimCase] = {}  # by file name: the de-duplication key
        self.messages: dict[str, str] = {}  # message file name (the de-duplication key) -> case
        self.files_written = 0
        self.replays = 0
        self.rejected = 0
        self._pending: list[dict[str, Any]] = []
        self._validator: Contract | None = load_contract(schema, fmt) if schema else None
        self._load()

    # ---------------------------------------------------------------------------------- state

    def _load(self) -> None:
        if self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            self.cases = {k: SimCase(**v) for k, v in data["cases"].items()}
            self.files_written = data.get("files_written", 0)
            self.messages = dict(data.get("messages") or {})

    def _save(self) -> None:
        data = {
            "cases": {k: asdict(v) for k, v in self.cases.items()},
            "files_written": self.files_written,
            "messages": self.messages,
        }
        temp = self.state_file.with_name(f".{self.state_file.name}.part")
        temp.write_text(json.dumps(data, indent=1))
        os.replace(temp, self.state_file)

    def case_count(self) -> int:
        """Cases the agency holds: those it numbered plus well-named files waiting in its inbox."""
        with self.lock:
            return len(set(self.cases) | set(self._waiting_cases()))

    def by_reference(self, reference: str) -> SimCase | None:
        with self.lock:
            for case in self.cases.values():
                if reference in (case.id, case.file, case.case_reference):
                    return case
            return None

    # ------------------------------------------------------------------------------ the batch

    def _waiting(self) -> list[str]:
        return sorted(
            name
            for name in os.listdir(self.inbox)
            if not name.startswith(".")
            and name_problem(name) is None
            and (self.inbox / name).is_file()
        )

    def _is_message(self, name: str) -> bool:
        try:
            data = (self.inbox / name).read_bytes()
        except OSError:
            return False
        return is_message(data, self.fmt, delimiter=self.delimiter)

    def _waiting_cases(self) -> list[str]:
        return [name for name in self._waiting() if not self._is_message(name)]

    def _waiting_messages(self) -> list[str]:
        """Message files in the inbox in the order they arrived (then by name)."""
        found = []
        for name in self._waiting():
            if self._is_message(name):
                try:
                    found.append(((self.inbox / name).stat().st_mtime_ns, name))
                except FileNotFoundError:
                    continue
        return [name for _, name in sorted(found)]

    def messages_for(self, reference: str) -> list[tuple[str, list[str]]]:
        """The replies a case received: (text, attachment file names), in order."""
        with self.lock:
            case = self.by_reference(reference)
            if case is None:
                raise KeyError(f"no case {reference!r} at the agency")
            return [(m["text"], list(m["attachments"])) for m in case.messages]

    def _record(self, case: SimCase, at: datetime) -> None:
        code, note = self.profile.flow_for(case.flow)[case.step]
        lay = self.layout
        when = (
            at.astimezone(self.timezone).strftime(self.time_format)
            if self.time_format
            else at.isoformat()
        )
        record: dict[str, Any] = {}
        for key, value in (
            (lay["agency_reference"], case.id),
            (lay["case_reference"], case.case_reference),
            (lay["status"], code),
            (lay["time"], when),
            (lay["message"], note),
        ):
            node = record
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        self._pending.append(record)

    def _pick_up(self, name: str, now: datetime, run: BatchRun) -> None:
        path = self.inbox / name
        if name in self.cases:  # the same idempotency key again: no second case
            self.replays += 1
            run.replays.append(name)
            os.replace(path, self.archive / name)
            return
        data = path.read_bytes()
        try:
            problems = self._validator(data) if self._validator else []
            if problems:
                raise FileRefused("; ".join(problems[:5]))
            payload = read_record(data, self.fmt, delimiter=self.delimiter)
        except FileRefused as exc:
            log.warning("rejected %s: %s", name, exc)
            self.rejected += 1
            run.rejected.append(name)
            os.replace(path, self.rejected_dir / name)
            (self.rejected_dir / f"{name}.reason.txt").write_text(f"{exc}\n")
            return
        now_year = now.year
        n = len(self.cases) + 1
        case_id = self.profile.id_format.format(n=n, year=now_year, yy=now.strftime("%y"))
        reference = dig(payload, self.profile.reference_field)
        kind = dig(payload, self.profile.kind_field) if self.profile.kind_field else None
        case = SimCase(
            case_id,
            name,
            str(reference) if reference else None,
            now.isoformat(),
            flow=str(kind) if kind in self.profile.flows else "",
        )
        self.cases[name] = case
        self._record(case, now)
        os.replace(path, self.archive / name)
        run.picked_up.append(name)

    def _move_message(self, name: str, folder: Path) -> None:
        """A message file and its attachments folder (if any) into `folder`."""
        files = self.inbox / attachments_dir(name)
        if files.is_dir():
            target = folder / files.name
            if target.exists():  # a replay's copy of what is there already
                shutil.rmtree(target)
            os.replace(files, target)
        os.replace(self.inbox / name, folder / name)

    def _reject_message(self, name: str, reason: str, run: BatchRun) -> None:
        log.warning("rejected message %s: %s", name, reason)
        self.rejected += 1
        run.rejected.append(name)
        self._move_message(name, self.rejected_dir)
        (self.rejected_dir / f"{name}.reason.txt").write_text(f"{reason}\n")

    def _take_message(self, name: str, run: BatchRun) -> None:
        if name in self.messages:  # the same idempotency key again: no second message
            self.replays += 1
            run.replays.append(name)
            self._move_message(name, self.archive)
            return
        try:
            message = read_message(
                (self.inbox / name).read_bytes(), self.fmt, delimiter=self.delimiter
            )
        except FileRefused as exc:
            self._reject_message(name, f"unreadable message file: {exc}", run)
            return
        case = None
        for reference in (message["agency_reference"], message["case_reference"]):
            if reference and case is None:
                case = self.by_reference(reference)
        if case is None:
            self._reject_message(
                name,
                f"no case {message['agency_reference'] or message['case_reference']!r} at the "
                "agency: a message must answer a case it has",
                run,
            )
            return
        files = self.inbox / attachments_dir(name)
        for attachment in message["attachments"]:
            reason = name_problem(attachment)
            if reason or attachment.startswith("."):
                self._reject_message(
                    name, f"attachment name {attachment!r}: {reason or 'a dot-name'}", run
                )
                return
            if not (files / attachment).is_file():
                self._reject_message(
                    name, f"attachment {attachment!r} is missing from {files.name}/", run
                )
                return
        case.messages.append(
            {
                "file": name,
                "text": message["text"],
                "language": message["language"],
                "attachments": message["attachments"],
            }
        )
        self.messages[name] = case.file
        self._move_message(name, self.archive)
        run.messages.append(name)

    def _advance(self, now: datetime) -> None:
        due: list[tuple[datetime, str, int]] = []
        for case in self.cases.values():
            created = datetime.fromisoformat(case.created)
            for step in range(case.step + 1, len(self.profile.flow_for(case.flow))):
                at = created + self.step * step
                if at > now:
                    break
                due.append((at, case.file, step))
        for at, name, step in sorted(due):
            case = self.cases[name]
            case.step = step
            self._record(case, at)

    def _flush(self, now: datetime, run: BatchRun) -> None:
        if not self._pending:
            return
        self.files_written += 1
        name = f"status-{now:%Y%m%d%H%M%S}-{self.files_written:06d}.{EXTENSIONS[self.fmt]}"
        data = write_statuses(
            self._pending,
            self.fmt,
            root=self.layout["root"],
            record=self.layout["record"],
            delimiter=self.delimiter,
        )
        temp = self.outbox / f".{name}.part"
        temp.write_bytes(data)
        os.replace(temp, self.outbox / name)
        run.status_file, run.records = name, len(self._pending)
        self._pending = []

    def run_once(self) -> BatchRun:
        """One batch run: pick up new case files, then attach the messages to their cases,
        move cases on, write one status file."""
        with self.lock:
            now = self.clock()
            run = BatchRun()
            self._advance(now)
            for name in self._waiting_cases():
                self._pick_up(name, now, run)
            for name in self._waiting_messages():
                self._take_message(name, run)
            self._flush(now, run)
            self._save()
            return run

    def step_case(self, reference: str) -> str:
        """Move one case (file name, agency id or case reference) one status on now: a case
        still in the inbox is picked up. Returns the new status code (tests and demos)."""
        with self.lock:
            now = self.clock()
            run = BatchRun()
            case = self.by_reference(reference)
            if case is None:
                if reference not in self._waiting_cases():
                    raise KeyError(f"no case {reference!r} at the agency")
                self._pick_up(reference, now, run)
                case = self.cases.get(reference)
                if case is None:
                    raise ValueError(f"the agency rejected {reference!r}")
            else:
                if case.step + 1 >= len(self.profile.flow_for(case.flow)):
                    raise ValueError(f"case {case.id} is already at the end of its flow")
                case.step += 1
                self._record(case, now)
            self._flush(now, run)
            self._save()
            return self.profile.flow_for(case.flow)[case.step][0]


class BatchLoop:
    """Runs the batch every `every` seconds in a thread, like the agency's scheduler would."""

    def __init__(self, batch: AgencyBatch, every: float):
        self.batch, self.every = batch, every
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="agency-batch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                run = self.batch.run_once()
                if run.picked_up or run.status_file:
                    log.info("batch: picked up %s, wrote %s", run.picked_up, run.status_file)
            except Exception:  # the demo agency keeps running, like a real batch would
                log.exception("batch run failed")

    def start(self) -> BatchLoop:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


# ----------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Keys:
    host_key: Path  # private; the server's
    host_public: Path
    client_key: Path  # private; the hub's
    client_public: Path
    authorized_keys: Path


def ensure_key_pair(private: Path, comment: str) -> Path:
    """An ed25519 key pair (OpenSSH format) at `private` and `private.pub`, made if missing.
    Returns the public key's path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = private.with_name(private.name + ".pub")
    if private.exists() and public.exists():
        return public
    private.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public_line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    public.write_bytes(public_line + f" {comment}\n".encode())
    return public


def ensure_keys(root: Path) -> Keys:
    """Generate the host and client keys at first start (ed25519, OpenSSH format)."""
    root.mkdir(parents=True, exist_ok=True)
    keys = Keys(
        root / "ssh_host_ed25519_key",
        root / "ssh_host_ed25519_key.pub",
        root / "client_ed25519_key",
        root / "client_ed25519_key.pub",
        root / "authorized_keys",
    )
    ensure_key_pair(keys.host_key, "loket-sim-host")
    ensure_key_pair(keys.client_key, "loket-hub")
    keys.authorized_keys.write_bytes(keys.client_public.read_bytes())
    return keys


# -------------------------------------------------------------------------------------- servers


SSHD = "/usr/sbin/sshd"


class OpenSshServer:
    """A real OpenSSH sshd that serves only SFTP on `data_dir`, as root, on loopback.

    `read_only_port`, when given, is a second port whose sessions are read-only
    (`internal-sftp -R`): a real server refusing writes with "permission denied".
    Every SFTP request is logged (`-l INFO`) to `log_file`.
    """

    def __init__(
        self,
        root: Path,
        data_dir: Path,
        keys: Keys,
        port: int,
        *,
        host: str = "127.0.0.1",
        read_only_port: int | None = None,
    ):
        self.root, self.data_dir, self.keys = Path(root), Path(data_dir), keys
        self.host, self.port, self.read_only_port = host, port, read_only_port
        self.config_file = self.root / "sshd_config"
        self.log_file = self.root / "sshd.log"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def installed() -> bool:
        return os.access(SSHD, os.X_OK)

    def config(self) -> str:
        sftp = f"internal-sftp -l INFO -d {self.data_dir}"
        lines = [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {self.keys.host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.keys.authorized_keys}",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "AllowUsers root",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            f"ForceCommand {sftp}",
            "AllowTcpForwarding no",
            "X11Forwarding no",
        ]
        if self.read_only_port:
            lines.insert(1, f"ListenAddress {self.host}:{self.read_only_port}")
            lines += [f"Match LocalPort {self.read_only_port}", f"  ForceCommand {sftp} -R"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> OpenSshServer:
        if not self.installed():
            raise RuntimeError(f"{SSHD} is not installed: apt-get install openssh-server")
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config())
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        log_fh = open(self.log_file, "ab")  # noqa: SIM115 - closed when the server stops
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config_file)],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._log_fh = log_fh
        proc = self.process
        ports = [self.port] + ([self.read_only_port] if self.read_only_port else [])
        for port in ports:
            if not wait_listening(proc, self.host, port, timeout):
                self.stop()
                raise RuntimeError(f"sshd did not start on port {port}:\n{self.log()[-2000:]}")
        return self

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log_fh", None) is not None:
            self._log_fh.close()


class AsyncsshServer:
    """A pure-Python SFTP server (asyncssh), chrooted to `data_dir`, on its own event loop
    thread: any username that presents the authorised client key gets in."""

    def __init__(
        self,
        data_dir: Path,
        keys: Keys,
        port: int,
        host: str = "127.0.0.1",
        server_class: Any = None,
    ):
        self.data_dir, self.keys, self.host, self.port = Path(data_dir), keys, host, port
        self.server_class = server_class  # an asyncssh.SFTPServer subclass (tests record calls)
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._acceptor: Any = None

    async def listen(self):
        import asyncssh

        chroot = os.fsencode(str(self.data_dir.resolve()))
        server_class = self.server_class or asyncssh.SFTPServer
        self._acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_host_keys=[str(self.keys.host_key)],
            authorized_client_keys=str(self.keys.authorized_keys),
            sftp_factory=lambda chan: server_class(chan, chroot=chroot),
            allow_scp=False,
            password_auth=False,
            kbdint_auth=False,
        )
        return self._acceptor

    def start(self, timeout: float = 15.0) -> AsyncsshServer:
        import asyncio

        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.listen())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._acceptor.close()
            loop.run_until_complete(self._acceptor.wait_closed())
            # sessions still open (a client that went away as the server stopped) end here,
            # not as "Task was destroyed but it is pending" when the loop is collected
            leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
            if leftover:
                for task in leftover:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="asyncssh-server", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        if errors:
            raise RuntimeError(f"the asyncssh server did not start: {errors[0]}")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)


class MultiUserSftpServer(AsyncsshServer):
    """asyncssh for several agencies at one address (one port, one host key): each SSH user is
    one agency, with its own authorised key and its own chroot (that agency's data folder), so
    one agency never sees another's files."""

    def __init__(
        self,
        host_key: Path,
        users: Mapping[str, tuple[Path, Path]],  # username -> (authorised public key, data dir)
        port: int,
        host: str = "127.0.0.1",
    ):
        self.host_key, self.users, self.host, self.port = host_key, dict(users), host, port
        self.server_class = None
        self._loop = None
        self._thread = None
        self._acceptor = None

    async def listen(self):
        import asyncssh

        users = {
            name: (str(key), os.fsencode(str(Path(data).resolve())))
            for name, (key, data) in self.users.items()
        }

        class PerUser(asyncssh.SSHServer):
            def connection_made(self, conn) -> None:
                self.conn = conn

            def begin_auth(self, username: str) -> bool:
                if username in users:  # anyone else has no authorised key, so cannot log in
                    self.conn.set_authorized_keys(users[username][0])
                return True

            def public_key_auth_supported(self) -> bool:
                return True

        def sftp(chan):
            return asyncssh.SFTPServer(chan, chroot=users[chan.get_extra_info("username")][1])

        self._acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=PerUser,
            server_host_keys=[str(self.host_key)],
            sftp_factory=sftp,
            allow_scp=False,
            password_auth=False,
            kbdint_auth=False,
        )
        return self._acceptor


# ----------------------------------------------------------------------------------- many agencies


@dataclass(frozen=True)
class SftpAgencySpec:
    """One simulated SFTP agency, from its mapping: its SSH user and the key the hub logs in
    with, the server's host key the mapping pins, its folder, and how its batch reads and
    writes files. Keys named by the mapping (`@file:`) are made there at first start, so the
    mapping and the simulator agree by construction."""

    agency_id: str
    profile: str
    root: str  # the agency's folder: data/ (what its SSH user sees) and its batch's state
    username: str
    client_key: str  # the hub's private key; its .pub is authorised for `username`
    host_key: str  # the server's private host key; its .pub is what the mapping pins
    host: str = "127.0.0.1"
    port: int = 22
    format: str = "json"
    delimiter: str = ";"
    layout: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None  # the agency's case file contract (XSD, JSON Schema, CSV layout)
    step_seconds: float = 5.0

    @classmethod
    def from_mapping(
        cls, agency_id: str, config: Mapping[str, Any], spec: Mapping[str, Any], root: Path
    ) -> SftpAgencySpec:
        sim_root = _sim_root(agency_id, spec, root)
        fmt = str(config.get("format", "json"))
        host_public = _file_setting(config.get("host_key"), root)
        host_key = (
            host_public.with_suffix("")
            if host_public and host_public.suffix == ".pub"
            else sim_root / "ssh_host_ed25519_key"
        )
        return cls(
            agency_id=agency_id,
            profile=str(spec.get("profile") or agency_id),
            root=str(sim_root),
            username=str(config.get("username", "loket")),
            client_key=str(
                _file_setting(config.get("private_key"), root) or sim_root / "client_ed25519_key"
            ),
            host_key=str(host_key),
            host=str(config.get("host", "127.0.0.1")),
            port=int(config.get("port", 22)),
            format=fmt,
            delimiter=str(config.get("csv_delimiter") or ";"),
            layout=_batch_layout(config),
            schema=_case_contract(spec, fmt, root),
            step_seconds=float(spec.get("step_seconds", 5)),
        )


def _sim_root(agency_id: str, spec: Mapping[str, Any], root: Path) -> Path:
    """The agency's simulator folder: the mapping's `simulator.root` (relative to `root`), else
    <LOKET_VAR_DIR>/sim/<agency id> (var/ under `root` by default, as the mappings' key paths)."""
    if spec.get("root"):
        return root / str(spec["root"])
    return Path(os.environ.get("LOKET_VAR_DIR") or root / "var").resolve() / "sim" / agency_id


def _file_setting(value: Any, root: Path) -> Path | None:
    """The path of an `@file:PATH` setting (relative to `root`, where loket run works)."""
    if isinstance(value, str) and value.startswith("@file:"):
        path = Path(value[len("@file:") :]).expanduser()
        return path if path.is_absolute() else root / path
    return None


def _batch_layout(config: Mapping[str, Any]) -> dict[str, Any]:
    layout = config.get("status") or {}
    keys = (*DEFAULT_LAYOUT, *TIME_LAYOUT)
    return {k: v for k, v in layout.items() if k in keys and v is not None}


def _case_contract(spec: Mapping[str, Any], fmt: str, root: Path) -> str | None:
    """The agency's contract for its case files in `fmt`, if the mapping names its folder."""
    if not spec.get("contract"):
        return None
    contract = root / spec["contract"]
    if contract.is_dir():
        found = case_contract(contract, fmt)
        return str(found) if found else None
    return str(contract) if contract.is_file() else None


def _sftp_endpoints(specs: Sequence[SftpAgencySpec]) -> dict[tuple[str, int], list[SftpAgencySpec]]:
    out: dict[tuple[str, int], list[SftpAgencySpec]] = {}
    for s in specs:
        out.setdefault((s.host, s.port), []).append(s)
    return out


def group_problems(specs: Sequence[SftpAgencySpec]) -> list[str]:
    """Why these agencies cannot share the servers; each line names the setting to change."""
    out: list[str] = []
    folders: dict[str, str] = {}
    for s in specs:
        if s.profile not in profiles():
            out.append(
                f"{s.agency_id}: no SFTP simulator profile {s.profile!r}; set simulator.profile "
                f"to one of {', '.join(sorted(profiles()))} or write "
                f"contracts/agencies/{s.profile}/simulator.yaml"
            )
        if s.root in folders:
            out.append(
                f"{s.agency_id} and {folders[s.root]} both use the folder {s.root}: give each "
                "its own simulator.root"
            )
        folders.setdefault(s.root, s.agency_id)
    for (host, port), here in _sftp_endpoints(specs).items():
        first = here[0]
        users: dict[str, str] = {}
        for s in here:
            if s.host_key != first.host_key:
                out.append(
                    f"{s.agency_id} and {first.agency_id} share the server {host}:{port} but pin "
                    f"different host keys ({s.host_key}.pub, {first.host_key}.pub): one server "
                    "has one key, so point both host_key settings at the same file"
                )
            if s.username in users:
                out.append(
                    f"{s.agency_id} and {users[s.username]} both log in to {host}:{port} as "
                    f"{s.username!r}: give each agency its own username there"
                )
            users.setdefault(s.username, s.agency_id)
    return out


class SftpGroup:
    """Every SFTP agency of `loket run` in one process: one asyncssh server per address the
    mappings name (normally one: 127.0.0.1:8104), each agency its own SSH user and chroot, and
    each its own batch (case numbers, status codes, flow, file format) in its own thread."""

    def __init__(self, specs: Sequence[SftpAgencySpec]):
        self.specs = list(specs)
        self.batches: dict[str, AgencyBatch] = {}
        self.servers: list[MultiUserSftpServer] = []
        for (host, port), here in _sftp_endpoints(self.specs).items():
            host_key = Path(here[0].host_key)
            ensure_key_pair(host_key, "loket-sim-host")
            users: dict[str, tuple[Path, Path]] = {}
            for s in here:
                public = ensure_key_pair(Path(s.client_key), f"loket-hub@{s.agency_id}")
                data = Path(s.root) / "data"
                self.batches[s.agency_id] = AgencyBatch(
                    data,
                    profile(s.profile),
                    fmt=s.format,
                    step_seconds=s.step_seconds,
                    layout=s.layout,
                    delimiter=s.delimiter,
                    schema=Path(s.schema) if s.schema else None,
                )
                users[s.username] = (public, data)
            self.servers.append(MultiUserSftpServer(host_key, users, port, host))
        self.loops = [BatchLoop(self.batches[s.agency_id], s.step_seconds) for s in self.specs]

    def start(self) -> SftpGroup:
        for loop in self.loops:
            loop.start()
        for server in reversed(self.servers):  # the first last: once it listens, all is ready
            server.start()
        return self

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        for server in self.servers:
            server.stop()


# ------------------------------------------------------------------------------------ loket run


def launch_group(agencies: Sequence[Any], root: Path):
    """For `loket run`: every SFTP agency in one process (see SftpGroup). Agencies whose mappings
    name the same host and port share one server there; the hint to move it names every such
    agency's PORT variable, as they move together."""
    from loket_simulators import Launch, env_var

    specs = [
        SftpAgencySpec.from_mapping(a.agency_id, a.adapter_config, a.spec, root) for a in agencies
    ]
    [((host, port), first), *more] = _sftp_endpoints(specs).items()

    def hint(here: list[SftpAgencySpec]) -> str:
        return ", ".join(env_var(s.agency_id, "PORT") for s in here)

    cmd = command("sftp", "--group", json.dumps([asdict(s) for s in specs]))
    url = ", ".join(
        f"sftp://{h}:{p} (users " + ", ".join(s.username for s in here) + ")"
        for (h, p), here in _sftp_endpoints(specs).items()
    )
    return Launch(
        cmd,
        host,
        port,
        url,
        hint(first),
        agencies=tuple(s.agency_id for s in specs),
        also_listens=tuple((h, p, hint(here)) for (h, p), here in more),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loket-simulator sftp",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=Path("var/sim/sftp"), help="keys and data")
    parser.add_argument(
        "--profile", default="economic-inspection", help="the agency to play (its id)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8104)
    parser.add_argument("--format", choices=FORMATS, default="xml")
    parser.add_argument("--delimiter", default=";", help="CSV delimiter")
    parser.add_argument("--layout", default="{}", help="status record field names (JSON)")
    parser.add_argument(
        "--schema",
        type=Path,
        default=None,
        help="the case files' contract: an XSD, a JSON Schema or a CSV layout (per --format)",
    )
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between batch runs")
    parser.add_argument(
        "--server",
        choices=["asyncssh", "sshd"],
        default="asyncssh",
        help="asyncssh (pure Python, any user) or sshd (OpenSSH; run as root, user root)",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="many agencies in one process: a JSON list of SftpAgencySpec (what loket run "
        "passes); replaces the single-agency options above",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
    if args.group:
        sys.exit(serve_group([SftpAgencySpec(**entry) for entry in json.loads(args.group)]))
    try:
        played = profile(args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    root = args.root.resolve()
    keys = ensure_keys(root)
    data_dir = root / "data"
    batch = AgencyBatch(
        data_dir,
        played,
        fmt=args.format,
        step_seconds=args.step_seconds,
        layout=json.loads(args.layout),
        delimiter=args.delimiter,
        schema=args.schema,
    )
    server: OpenSshServer | AsyncsshServer
    if args.server == "sshd":
        server = OpenSshServer(root, data_dir, keys, args.port, host=args.host)
    else:
        server = AsyncsshServer(data_dir, keys, args.port, host=args.host)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server.start()
    loop = BatchLoop(batch, args.step_seconds).start()
    print(
        f"SFTP agency simulator '{args.profile}' ({args.server}) on sftp://{args.host}:{args.port}"
        f" serving {data_dir}; host key {keys.host_public}",
        flush=True,
    )
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        loop.stop()
        server.stop()


def serve_group(specs: list[SftpAgencySpec]) -> int:
    problems = group_problems(specs)
    if problems:
        for line in problems:
            print(f"SFTP agencies: {line}", file=sys.stderr, flush=True)
        return 2
    group = SftpGroup(specs)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        group.start()
    except RuntimeError as exc:
        print(f"SFTP agencies: {exc}", file=sys.stderr, flush=True)
        group.stop()
        return 1
    for s in specs:
        print(
            f"SFTP agency {s.agency_id} ('{s.profile}', {s.format}) on sftp://{s.username}@"
            f"{s.host}:{s.port} serving {Path(s.root) / 'data'}; host key {s.host_key}.pub",
            flush=True,
        )
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        group.stop()
    return 0
