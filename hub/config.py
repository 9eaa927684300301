"""Settings from the environment, validated once at start-up.

Every setting has a default that works on a fresh machine (SQLite under ./var). Production sets
LOKET_DATABASE_URL to PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
# Where a dev run keeps its state (SQLite file, consumer mail, simulators' folders and keys).
# LOKET_VAR_DIR moves it, so a test's `loket run` does not mix its cases with yours.
VAR_DIR = Path(os.environ.get("LOKET_VAR_DIR") or ROOT / "var").resolve()


class ConfigError(ValueError):
    """A setting is wrong; the message names it and says how to fix it."""


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a number; set it to seconds, e.g. {name}=5"
        ) from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


@dataclass(frozen=True)
class MailSettings:
    """Where consumer notifications go out (SMTP) and the public address their links use."""

    host: str = "127.0.0.1"
    port: int = 8025
    sender: str = "Loket <noreply@loket.example.be>"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> MailSettings:
        m = cls()
        port = env.get("LOKET_SMTP_PORT")
        if port and not port.isdigit():
            raise ConfigError(f"LOKET_SMTP_PORT={port!r} is not a port number; e.g. 25 or 587")
        return replace(
            m,
            host=env.get("LOKET_SMTP_HOST", m.host),
            port=int(port) if port else m.port,
            sender=env.get("LOKET_MAIL_FROM", m.sender),
            starttls=env.get("LOKET_SMTP_STARTTLS", "") in ("1", "true", "yes"),
            username=env.get("LOKET_SMTP_USERNAME") or None,
            password=env.get("LOKET_SMTP_PASSWORD") or None,
            public_url=env.get("LOKET_PUBLIC_URL", m.public_url),
        )


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: f"sqlite:///{VAR_DIR / 'loket.db'}")
    agencies_dir: Path = field(default_factory=lambda: ROOT / "mappings" / "agencies")
    routing_file: Path = field(default_factory=lambda: ROOT / "mappings" / "routing.yaml")
    # Worker timing. poll_seconds, when set, overrides every agency's own poll schedule (demo, tests).
    dispatch_seconds: float = 1.0
    poll_seconds: float | None = None
    lease_seconds: float = 60.0
    # How long one worker may hold an agency's poll before another may take over (a dead worker
    # holds it this long). A poll that overruns it is harmless: applying updates is idempotent.
    poll_lease_seconds: float = 30.0
    # How often the worker refers not-competent lines on and marks late ones past due.
    housekeeping_seconds: float = 10.0
    batch_size: int = 50
    max_body_bytes: int = 1024 * 1024
    mail: MailSettings = field(default_factory=MailSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        s = cls()
        if env.get("LOKET_DATABASE_URL"):
            s = replace(s, database_url=env["LOKET_DATABASE_URL"])
        if env.get("LOKET_AGENCIES_DIR"):
            s = replace(s, agencies_dir=Path(env["LOKET_AGENCIES_DIR"]))
        if env.get("LOKET_ROUTING_FILE"):
            s = replace(s, routing_file=Path(env["LOKET_ROUTING_FILE"]))
        poll = env.get("LOKET_POLL_SECONDS")
        s = replace(
            s,
            dispatch_seconds=_float(env, "LOKET_DISPATCH_SECONDS", s.dispatch_seconds),
            poll_seconds=_float(env, "LOKET_POLL_SECONDS", 1.0) if poll else None,
            lease_seconds=_float(env, "LOKET_LEASE_SECONDS", s.lease_seconds),
            poll_lease_seconds=_float(env, "LOKET_POLL_LEASE_SECONDS", s.poll_lease_seconds),
            housekeeping_seconds=_float(env, "LOKET_HOUSEKEEPING_SECONDS", s.housekeeping_seconds),
        )
        s = replace(s, mail=MailSettings.from_env(env))
        return replace(s, database_url=normalise_database_url(s.database_url))
