"""Waking the dispatcher when there is work, instead of asking the database every tick.

On PostgreSQL a trigger on `deliveries` (migration 0019) sends `NOTIFY loket_outbox` whenever a
statement queues deliveries (a filing, a consumer's reply, a referral); the dispatcher LISTENs on
a connection of its own and runs its tick the moment one arrives. Retries and expired leases
become due by the clock, not by an insert, so the dispatcher still ticks every
`dispatch_seconds` when nothing wakes it. On SQLite there is no such channel: the wait is a
plain sleep of `dispatch_seconds`. An idle worker therefore costs one small query per
`dispatch_seconds`, however short a latency new filings get.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger("loket.worker")
CHANNEL = "loket_outbox"


class Waker:
    """`wait(seconds)`: until work may be there (a notification), the time is up, or `stop` is
    set. Connection trouble falls back to sleeping and reconnects on the next wait."""

    def __init__(self, database_url: str, stop: threading.Event):
        self.stop = stop
        url = make_url(database_url)
        self._dsn: str | None = None
        if url.get_backend_name() == "postgresql":
            self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None

    def wait(self, seconds: float) -> bool:
        """True when a notification came (work was queued), False on timeout or stop."""
        if self._dsn is None or self.stop.is_set():
            self.stop.wait(seconds)
            return False
        try:
            conn = self._connection()
            woke = False
            for _ in conn.notifies(timeout=seconds, stop_after=1):
                woke = True
            if woke:  # several filings at once are one wake-up
                for _ in conn.notifies(timeout=0.0):
                    pass
            return woke
        except Exception as exc:  # the database went away: sleep, reconnect next time
            log.warning("dispatcher cannot listen for new deliveries: %s", exc)
            self.close()
            self.stop.wait(seconds)
            return False

    def _connection(self) -> Any:
        if self._conn is None:
            import psycopg

            self._conn = psycopg.connect(self._dsn, autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
