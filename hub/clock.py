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
    def choice(self, alphabet: str) -> str: ...

    def token(self) -> str: ...


class SecureRandom:
    """Cryptographic randomness for references and tracking tokens."""

    def choice(self, alphabet: str) -> str:
        return secrets.choice(alphabet)

    def token(self) -> str:
        return secrets.token_urlsafe(24)
