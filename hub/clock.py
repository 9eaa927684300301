"""Injected time and randomness, so that tests are exact and never sleep."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FrozenClock:
    """A clock that only moves when told to; for tests."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current = self.current + timedelta(**delta)
        return self.current


class RandomSource(Protocol):
    def symbols(self, alphabet: str, k: int) -> str:
        """`k` symbols of `alphabet`, each uniformly and independently drawn."""
        ...

    def token(self) -> str: ...


class SecureRandom:
    """Cryptographic randomness for references and tracking tokens."""

    def symbols(self, alphabet: str, k: int) -> str:
        # One draw of k base-n digits: one call to the system's randomness instead of k (each
        # secrets.choice reads the system's randomness again), with the same uniform symbols.
        n = len(alphabet)
        value = secrets.randbelow(n**k)
        out = []
        for _ in range(k):
            value, digit = divmod(value, n)
            out.append(alphabet[digit])
        return "".join(out)

    def token(self) -> str:
        return secrets.token_urlsafe(24)
