"""Settings from the environment, validated once at start-up.

Every setting has a default that works on a fresh machine (SQLite under ./var). Production sets
LOKET_DATABASE_URL to PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
DEFAULT_VAR_DIR = ROOT / "var"


def var_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where a dev run keeps its state (SQLite file, consumer mail, the front desk's key,
    simulators' folders and keys): LOKET_VAR_DIR, so a test's `loket run` does not mix its cases
    with yours, else ./var. Read when asked, never at import."""
    env = os.environ if env is None else env
    return Path(env.get("LOKET_VAR_DIR") or DEFAULT_VAR_DIR).resolve()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'loket.db'}"


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
    password: str | None = field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    timeout: float = 10.0
    # How long a line's change waits for others of the same case before one mail tells them
    # all; None: `notify.batch_minutes` of contracts/statuses.yaml.
    batch_seconds: float | None = None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> MailSettings:
        m = cls()
        port = env.get("LOKET_SMTP_PORT")
        if port and not port.isdigit():
            raise ConfigError(f"LOKET_SMTP_PORT={port!r} is not a port number; e.g. 25 or 587")
        batch = env.get("LOKET_MAIL_BATCH_SECONDS")
        try:
            batch_seconds = float(batch) if batch else None
        except ValueError:
            raise ConfigError(
                f"LOKET_MAIL_BATCH_SECONDS={batch!r} is not a number of seconds; e.g. 300"
            ) from None
        return replace(
            m,
            host=env.get("LOKET_SMTP_HOST", m.host),
            port=int(port) if port else m.port,
            sender=env.get("LOKET_MAIL_FROM", m.sender),
            starttls=env.get("LOKET_SMTP_STARTTLS", "") in ("1", "true", "yes"),
            username=env.get("LOKET_SMTP_USERNAME") or None,
            password=env.get("LOKET_SMTP_PASSWORD") or None,
            batch_seconds=batch_seconds,
            public_url=env.get("LOKET_PUBLIC_URL", m.public_url),
        )


def _port(env: dict[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}={raw!r} is not a port number; e.g. {name}=9464")
    return int(raw)


def _limit(env: dict[str, str], name: str, default: str) -> str:
    """A Flask-Limiter rate such as "10 per hour", checked here so a typo stops the start."""
    raw = env.get(name) or default
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a rate; write it like {default!r} (count per period)"
        ) from None
    return raw


def _storage(env: dict[str, str]) -> str:
    """LOKET_RATELIMIT_STORAGE: a storage URI of the `limits` library (memory://, redis://...)."""
    raw = env.get("LOKET_RATELIMIT_STORAGE") or "memory://"
    from limits.storage import storage_from_string

    try:
        storage_from_string(raw)
    except Exception as exc:  # unknown scheme, or the store's client library missing
        raise ConfigError(
            f"LOKET_RATELIMIT_STORAGE={raw!r} is not usable ({exc}); e.g. "
            "LOKET_RATELIMIT_STORAGE=redis://127.0.0.1:6379/0, or leave it unset for memory://"
        ) from None
    return raw


def _count(env: dict[str, str], name: str) -> int:
    raw = (env.get(name) or "0").strip()
    if not raw.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a count; e.g. {name}=1 behind one proxy")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    var_dir: Path = field(default_factory=lambda: DEFAULT_VAR_DIR.resolve())
    database_url: str = field(default_factory=lambda: sqlite_url(DEFAULT_VAR_DIR.resolve()))
    agencies_dir: Path = field(default_factory=lambda: ROOT / "mappings" / "agencies")
    routing_file: Path = field(default_factory=lambda: ROOT / "mappings" / "routing.yaml")
    # Worker timing. poll_seconds, when set, overrides every agency's own poll schedule (demo, tests).
    dispatch_seconds: float = 1.0
    poll_seconds: float | None = None
    # A claimed delivery's lease. Short, because a live worker renews its leases every third of it
    # (its heartbeat): a killed worker's rows come back within this many seconds.
    lease_seconds: float = 10.0
    # How long one worker may hold an agency's poll before another may take over (a dead worker
    # holds it this long). A poll that overruns it is harmless: applying updates is idempotent.
    poll_lease_seconds: float = 30.0
    # How often the worker refers not-competent lines on and marks late ones past due.
    housekeeping_seconds: float = 10.0
    # Deliveries claimed at once per agency (its in-flight allowance and this worker's share of it
    # may make it fewer); receipts are recorded in groups of up to half of it.
    batch_size: int = 200
    max_body_bytes: int = 1024 * 1024
    mail: MailSettings = field(default_factory=MailSettings)
    # Signs the front desk's forms and session; None: a random key kept in <var_dir>/secret_key,
    # shared by the processes of one machine (set it when several machines serve).
    secret_key: str | None = field(default=None, repr=False)
    # Per client address, per process (Flask-Limiter): successful filings on the front desk,
    # failed guesses of a case's reference and code, back-office sign-in attempts.
    filing_limit: str = "10 per hour"
    tracking_limit: str = "20 per hour"
    signin_limit: str = "10 per 15 minutes"
    # Wrong codes for one case from every address together: past it the case is under attack
    # (logged and counted for the operators; the holder of the right code still gets in).
    tracking_case_limit: str = "100 per hour"
    # Per client address: cases filed through the JSON API (POST /api/v1/cases).
    api_filing_limit: str = "20 per hour"
    # The agency API: calls per client (a runaway integration must not starve the others or
    # the front desk), and token requests per address (a token lasts five minutes, so a client
    # that behaves asks about twelve times an hour).
    agency_api_limit: str = "600 per minute"
    agency_token_limit: str = "60 per hour"
    # Confirmation mails to one email address, whichever door filed the case; past it the case
    # is filed but no confirmation mail goes to that address.
    confirmation_mail_limit: str = "5 per hour"
    # Where the counters live: "memory://" (each process its own) or a shared store such as
    # "redis://127.0.0.1:6379/0" so every web process counts together.
    ratelimit_storage: str = "memory://"
    # How many reverse proxies in front of the web app set X-Forwarded-For (Werkzeug ProxyFix);
    # 0: the client address is the socket's peer and X-Forwarded-For is ignored.
    trusted_proxies: int = 0
    # The worker serves its Prometheus metrics on 127.0.0.1 at this port when set.
    worker_metrics_port: int | None = None
    # The bearer token a scraper sends for the web app's /metrics; None: /metrics answers 404.
    metrics_token: str | None = field(default=None, repr=False)
    # The worker signs an evidence checkpoint when this many entries wait for one, or when any
    # wait and the last is this old (hub/evidence.py).
    checkpoint_seconds: float = 300.0
    checkpoint_entries: int = 1000
    # The evidence keyring and private keys (None: <var_dir>/evidence), and the signing key's
    # file when it is kept elsewhere (a mounted secret); never in the database.
    evidence_dir: Path | None = None
    evidence_key: Path | None = None
    # The console lists a delivery as stuck when it is still not done this long after it was
    # queued (LOKET_STUCK_AFTER_MINUTES).
    stuck_after_minutes: float = 15.0
    # How often the worker recomputes the statistics' daily rollups, the open data and the
    # market signals (hub/statistics.py, hub/opendata.py, hub/signals.py).
    stats_seconds: float = 900.0
    # Where market-signal alerts for the Economic Inspection are mailed (hub/signals.py).
    inspection_alerts_to: str = "signalen@inspectie.example.be"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        var = var_dir(env)
        s = cls(var_dir=var, database_url=env.get("LOKET_DATABASE_URL") or sqlite_url(var))
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
        s = replace(
            s,
            mail=MailSettings.from_env(env),
            secret_key=env.get("LOKET_SECRET_KEY") or None,
            filing_limit=_limit(env, "LOKET_FILING_LIMIT", s.filing_limit),
            tracking_limit=_limit(env, "LOKET_TRACKING_LIMIT", s.tracking_limit),
            signin_limit=_limit(env, "LOKET_SIGNIN_LIMIT", s.signin_limit),
            tracking_case_limit=_limit(env, "LOKET_TRACKING_CASE_LIMIT", s.tracking_case_limit),
            api_filing_limit=_limit(env, "LOKET_API_FILING_LIMIT", s.api_filing_limit),
            agency_api_limit=_limit(env, "LOKET_AGENCY_API_LIMIT", s.agency_api_limit),
            agency_token_limit=_limit(env, "LOKET_AGENCY_TOKEN_LIMIT", s.agency_token_limit),
            confirmation_mail_limit=_limit(
                env, "LOKET_CONFIRMATION_MAIL_LIMIT", s.confirmation_mail_limit
            ),
            ratelimit_storage=_storage(env),
            trusted_proxies=_count(env, "LOKET_TRUSTED_PROXIES"),
            worker_metrics_port=_port(env, "LOKET_WORKER_METRICS_PORT"),
            metrics_token=env.get("LOKET_METRICS_TOKEN") or None,
            checkpoint_seconds=_float(
                env, "LOKET_EVIDENCE_CHECKPOINT_SECONDS", s.checkpoint_seconds
            ),
            evidence_dir=Path(env["LOKET_EVIDENCE_DIR"]) if env.get("LOKET_EVIDENCE_DIR") else None,
            evidence_key=Path(env["LOKET_EVIDENCE_KEY"]) if env.get("LOKET_EVIDENCE_KEY") else None,
            checkpoint_entries=int(
                _float(env, "LOKET_EVIDENCE_CHECKPOINT_ENTRIES", s.checkpoint_entries)
            ),
            stuck_after_minutes=_float(env, "LOKET_STUCK_AFTER_MINUTES", s.stuck_after_minutes),
            stats_seconds=_float(env, "LOKET_STATS_SECONDS", s.stats_seconds),
            inspection_alerts_to=env.get("LOKET_INSPECTION_ALERTS_TO") or s.inspection_alerts_to,
        )
        return replace(s, database_url=normalise_database_url(s.database_url))
