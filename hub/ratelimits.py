"""The web app's counters of attempts: wrong tracking codes, API filings, confirmation mails.

One `Counters` per app (`app.extensions["loket.counters"]`), kept where LOKET_RATELIMIT_STORAGE
says: `memory://` (each process its own, the default) or a shared store such as
`redis://127.0.0.1:6379/0`, so that N web processes count together instead of N times looser.
Built on the `limits` library (the one under Flask-Limiter), moving windows.

Wrong codes (the rule, docs/security.md): every wrong code counts, wherever it came from (the
open form, the link's `k`, the case cookie, a download, a reply, a withdrawal, the API's bearer
token), once against the client address and once against the case. An address past its limit
is refused every code-bearing request, right code or wrong, so a limited guesser learns nothing.
A case past its own limit is under attack: that is logged and counted for the operators, but it
refuses nobody, so guessers can never lock the holder of the right code out of their case.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from hub.config import Settings

log = logging.getLogger(__name__)

EXTENSION = "loket.counters"
# App config keys (tests and deployments may tighten them per app; Settings gives the defaults).
TRACKING_LIMIT = "LOKET_TRACKING_LIMIT"
TRACKING_CASE_LIMIT = "LOKET_TRACKING_CASE_LIMIT"
API_FILING_LIMIT = "LOKET_API_FILING_LIMIT"
AGENCY_API_LIMIT = "LOKET_AGENCY_API_LIMIT"
AGENCY_TOKEN_LIMIT = "LOKET_AGENCY_TOKEN_LIMIT"
CONFIRMATION_MAIL_LIMIT = "LOKET_CONFIRMATION_MAIL_LIMIT"


@dataclass(frozen=True)
class Exhausted(Exception):
    """Too many attempts; the next is allowed in `retry_after` seconds."""

    retry_after: int


# How long a shared store may take to connect or to answer. redis-py waits forever by default,
# so a store that stopped answering (a full host, a dropped route) would hold every request
# that counts an attempt, and with them every web process.
STORE_TIMEOUT_SECONDS = 0.25
# After a shared store failed, count in memory for this long before trying it again, doubling
# while it keeps failing: a store that hangs costs one request its timeout, not every request.
STORE_RETRY_SECONDS, STORE_RETRY_MAX_SECONDS = 1.0, 60.0


def storage_options(storage_uri: str) -> dict[str, float]:
    """The `limits` storage options for `storage_uri`: connect and answer timeouts for Redis."""
    if storage_uri.split(":", 1)[0].startswith("redis"):
        return {
            "socket_timeout": STORE_TIMEOUT_SECONDS,
            "socket_connect_timeout": STORE_TIMEOUT_SECONDS,
        }
    return {}


def _seconds_until(reset: float) -> int:
    """Retry-After for a window that resets at `reset` (a Unix time): whole seconds, at least 1."""
    return max(1, math.ceil(reset - time.time()))


class Counters:
    """Moving-window counters in the configured store. When a shared store cannot be reached,
    the counting goes on in this process's memory (logged as an error) rather than failing the
    consumer's request: limits per process for a while are better than no front desk. The
    store is tried again after a pause that doubles while it keeps failing (as Flask-Limiter
    does for the filing limits)."""

    def __init__(self, storage_uri: str) -> None:
        self.storage_uri = storage_uri
        self.storage = storage_from_string(storage_uri, **storage_options(storage_uri))
        self.shared = MovingWindowRateLimiter(self.storage)
        self.local = MovingWindowRateLimiter(storage_from_string("memory://"))
        self._retry_at = 0.0  # time.monotonic() before which the shared store is not tried
        self._pause = STORE_RETRY_SECONDS

    def _run(self, what: str, *args):
        if time.monotonic() >= self._retry_at:
            try:
                answer = getattr(self.shared, what)(*args)
            except Exception as exc:  # the store is down, hangs or refuses: count here
                log.error(
                    "rate-limit store %s unreachable (%s); counting in this process for %.0f s",
                    self.storage.__class__.__name__,
                    exc.__class__.__name__,
                    self._pause,
                )
                self._retry_at = time.monotonic() + self._pause
                self._pause = min(self._pause * 2, STORE_RETRY_MAX_SECONDS)
            else:
                self._pause = STORE_RETRY_SECONDS
                return answer
        return getattr(self.local, what)(*args)

    def _wait(self, item: RateLimitItem, *key: str) -> int:
        reset, _remaining = self._run("get_window_stats", item, *key)
        return _seconds_until(reset)

    def check(self, rate: str, *key: str) -> None:
        """Raise Exhausted when `key` has used up `rate`; counts nothing."""
        item = parse(rate)
        if not self._run("test", item, *key):
            raise Exhausted(self._wait(item, *key))

    def hit(self, rate: str, *key: str) -> bool:
        """Count one attempt; False when it was one too many (it is not counted then)."""
        return self._run("hit", parse(rate), *key)

    def take(self, rate: str, *key: str) -> None:
        """Count one attempt, or raise Exhausted when the limit is used up."""
        item = parse(rate)
        if not self._run("hit", item, *key):
            raise Exhausted(self._wait(item, *key))

    def reset(self) -> None:
        self.storage.reset()


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = Counters(settings.ratelimit_storage)
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.ratelimit_storage)  # Flask-Limiter's
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", storage_options(settings.ratelimit_storage))
    # ... which, like Counters, counts in memory while a shared store is down
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault(TRACKING_LIMIT, settings.tracking_limit)
    app.config.setdefault(TRACKING_CASE_LIMIT, settings.tracking_case_limit)
    app.config.setdefault(API_FILING_LIMIT, settings.api_filing_limit)
    app.config.setdefault(AGENCY_API_LIMIT, settings.agency_api_limit)
    app.config.setdefault(AGENCY_TOKEN_LIMIT, settings.agency_token_limit)
    app.config.setdefault(CONFIRMATION_MAIL_LIMIT, settings.confirmation_mail_limit)
    app.after_request(_page_retry_after)


def counters() -> Counters:
    return current_app.extensions[EXTENSION]


def _page_retry_after(response: Response) -> Response:
    """A 429 page of a Flask-Limiter limit (filing on the front desk, back-office sign-in) says
    in Retry-After when the address may try again, as the counters' own 429s do."""
    if response.status_code != 429 or "Retry-After" in response.headers:
        return response
    for limiter in current_app.extensions.get("limiter", ()):
        try:
            current = limiter.current_limit
            if current is not None and current.breached:
                response.headers["Retry-After"] = str(_seconds_until(current.reset_at))
                break
        except Exception:  # the store went away meanwhile: the page goes out without it
            log.debug("no Retry-After for this 429", exc_info=True)
    return response


def client_address() -> str:
    """The client's address: the socket's peer, or what the trusted proxies said
    (LOKET_TRUSTED_PROXIES, applied by Werkzeug's ProxyFix in loket/app.py)."""
    return request.remote_addr or "unknown"


# ------------------------------------------------------------------------------- wrong codes


def guard_codes() -> None:
    """Before a request that carries a tracking code is looked at: refuse it when this address
    has sent too many wrong codes (whether this one is right or not)."""
    counters().check(current_app.config[TRACKING_LIMIT], "wrong-code", client_address())


def wrong_code(reference: str | None) -> None:
    """A wrong code was sent for `reference`: count it for the address and for the case."""
    c = counters()
    c.hit(current_app.config[TRACKING_LIMIT], "wrong-code", client_address())
    if reference:
        key = reference.strip().upper()[:40]
        if not c.hit(current_app.config[TRACKING_CASE_LIMIT], "wrong-code-case", key):
            from hub.metrics import CASE_GUESS_ALARMS

            CASE_GUESS_ALARMS.inc()
            log.warning(
                "case %s is under attack: more wrong codes for it than %s from all addresses "
                "together; the holder of the right code is still let in",
                key,
                current_app.config[TRACKING_CASE_LIMIT],
            )


# ------------------------------------------------------------------------------ the JSON API


def take_api_filing() -> None:
    """One more case filed through the JSON API from this address, or Exhausted."""
    counters().take(current_app.config[API_FILING_LIMIT], "api-filing", client_address())


def confirmation_allowed(email: str | None) -> bool:
    """Whether one more confirmation mail may go to `email` this hour (counted when it may). The
    address is kept only as a digest in the counters and never logged."""
    if not email:
        return True
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    if counters().hit(current_app.config[CONFIRMATION_MAIL_LIMIT], "confirmation-mail", digest):
        return True
    from hub.metrics import CONFIRMATIONS_WITHHELD

    CONFIRMATIONS_WITHHELD.inc()
    log.warning(
        "confirmation mail withheld: the recipient had %s already (address not logged)",
        current_app.config[CONFIRMATION_MAIL_LIMIT],
    )
    return False
