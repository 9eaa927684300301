"""Engines, sessions and migrations.

SQLite is the embedded default: WAL journal, a busy timeout, and write transactions that start
with BEGIN IMMEDIATE so two processes never deadlock upgrading a read lock. Sessions that only
read use `read_only=True` and take no write lock. PostgreSQL is the production store; its
pool does not ping a connection before lending it (a dropped connection costs one failed
request, after which the pool replaces every connection it holds).

The SQLite file holds every case, party and attachment: it is created owner-only (0600, its
folder 0700 when this creates it) before SQLite opens it, whatever the umask; SQLite gives its
WAL and shared-memory files the database file's mode. `secure_delete` is on, so what an
erasure (hub/gdpr.py) or a deletion removes is zeroed on disk, not left in free space.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:":
            create_private_file(Path(path))
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):  # pragma: no cover - trivial
            dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # erased and deleted rows are overwritten with zeros, not left in free pages
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # On the driver's connection: through `exec_driver_sql` this one statement cost a
            # tenth of a millisecond of Python, on every transaction.
            begin = (
                "BEGIN"
                if conn.get_execution_options().get("loket_read_only")
                else "BEGIN IMMEDIATE"
            )
            with driver_errors(begin, None, sqlite3.Error):
                conn.connection.driver_connection.execute(begin)

        return engine
    _cache_long_statements()
    # No ping before every checkout (a round trip per request): a connection the server dropped
    # fails its one request, and SQLAlchemy, seeing a disconnect error (`is_disconnect`),
    # invalidates the whole pool, so the next checkout gets a fresh connection.
    kwargs.setdefault("pool_pre_ping", False)
    return create_engine(url, **kwargs)


# psycopg converts a query's `%(name)s` placeholders once and keeps the result (an LRU of 128
# queries), but only for queries up to 4,096 bytes and 50 parameters (psycopg/_queries.py).
# Intake's single statement (hub/intake.py) is about 5,000 bytes and 87 parameters for one
# agency, more for a fan-out, so it was converted anew on every filing: about a millisecond of
# CPU, a sixth of the filing. tests/test_intake_api.py fails if a psycopg release moves these.
PSYCOPG_CACHED_QUERY_BYTES = 32 * 1024
PSYCOPG_CACHED_QUERY_PARAMS = 512


def _cache_long_statements() -> None:
    from psycopg import _queries

    for name, least in (
        ("MAX_CACHED_STATEMENT_LENGTH", PSYCOPG_CACHED_QUERY_BYTES),
        ("MAX_CACHED_STATEMENT_PARAMS", PSYCOPG_CACHED_QUERY_PARAMS),
    ):
        setattr(_queries, name, max(getattr(_queries, name), least))


@contextmanager
def driver_errors(statement: str, params: object, error: type[Exception]) -> Iterator[None]:
    """For a statement run on the driver's connection, not through SQLAlchemy's execution: its
    errors are raised as SQLAlchemy's (`IntegrityError`, `OperationalError`, ...), as
    `Connection.execute` would raise them, so callers catch one kind whichever way ran it."""
    try:
        yield
    except error as exc:
        raise DBAPIError.instance(statement, params, exc, error) from exc


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 (its missing folders 0700) unless it exists; an existing
    file keeps the mode its owner gave it."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Database:
    """One engine and its session factories; shared by the web app, the worker and the CLI."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(loket_read_only=True), expire_on_commit=False
        )
        # PostgreSQL: for a unit of work that is ONE statement, which PostgreSQL runs atomically
        # on its own; without BEGIN and COMMIT it costs one round trip instead of three.
        self.one_statement: Engine | None = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back on any exception."""
        factory = self._read_sessions if read_only else self._sessions
        with factory() as session:
            if read_only:
                yield session  # closing ends the transaction; loaded objects stay readable
                return
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (what `loket db upgrade` runs)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def insert_if_missing(session, model, key: str, **values) -> None:
    """INSERT ... ON CONFLICT (key) DO NOTHING: create a row two processes may create at once."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=[key]))
