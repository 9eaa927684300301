"""The hub's services wired together once per process (web app, worker, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.agencies import Directory
from hub.clock import Clock, RandomSource, SecureRandom, SystemClock
from hub.config import Settings
from hub.db import Database
from hub.routing import Router


@dataclass
class Hub:
    settings: Settings
    db: Database
    directory: Directory
    router: Router
    clock: Clock = field(default_factory=SystemClock)
    random: RandomSource = field(default_factory=SecureRandom)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        clock: Clock | None = None,
        random: RandomSource | None = None,
    ) -> Hub:
        directory = Directory.load(settings.agencies_dir)
        router = Router.from_file(settings.routing_file, directory.agencies)
        return cls(
            settings=settings,
            db=db or Database(settings.database_url),
            directory=directory,
            router=router,
            clock=clock or SystemClock(),
            random=random or SecureRandom(),
        )

    def close(self) -> None:
        self.directory.close()
        self.db.dispose()
