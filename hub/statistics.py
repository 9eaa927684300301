"""The public statistics: daily rollups computed by housekeeping, figures read only from them.

Why rollups: the page must answer fast at millions of cases, so it never counts cases. The
worker (and `loket stats rollup`) recomputes whole days into `stat_rollups`, from the day of the
previous run to today; a day is recomputed from scratch each time, so a run is idempotent and a
crash in between loses nothing. Every count is kept by the day it happened (filed, answered,
closed, rated), so a past day's figures no longer change, except `outcome`, whose value is the
line's outcome as it stands when its day is rolled up.

Metrics (one row per day and dimensions, `n` the count):
- `cases`    day filed; area (the first part of the domain code), kind.
- `lines`    day a line (case x service) was created; agency.
- `answered` day of the line's first answer (first status among ANSWERED); agency;
             value `on_time` (before the line went past due, or never past due) or `late`.
- `answer_days` the same lines; agency; value = whole days from line created to first answer
             (capped at MAX_DAYS), so a median per service comes from the histogram.
- `outcome`  day of the line's first end status (ENDED); agency; value = the outcome of a
             resolved line (solved, partly_solved, ...) or the end status itself.
- `rating`   day the consumer rated; agency; value yes | partly | no.

Small cells: the page shows no count under `K` (it says "fewer than 10"), no share or median
computed from fewer than `K` lines. The case-level open data (hub/opendata.py) has its own rule.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from hub.db import Database
from hub.models import Assignment, Case, Rating, StatRollup, StatState, StatusEvent

K = 10
MAX_DAYS = 366
STATE = "daily"
ANSWERED = ("waiting_for_consumer", "resolved", "not_competent", "closed_no_individual_follow_up")
ENDED = ("resolved", "not_competent", "closed_no_individual_follow_up", "referred", "withdrawn")
METRICS = ("cases", "lines", "answered", "answer_days", "outcome", "rating")
RATINGS = ("yes", "partly", "no")
PERIOD_MONTHS = 12


def area_of(domain: str) -> str:
    return domain.split(".", 1)[0]


def _day(session: Session, column) -> ColumnElement:
    """The UTC calendar day of a timestamp column, in SQL (SQLite stores naive UTC text)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


Key = tuple[date, str, str, str, str, str]  # day, metric, agency, area, kind, value


def compute(session: Session, first: date, last: date) -> Counter[Key]:
    """Every rollup count of the days first..last (inclusive), from the cases themselves."""
    lo, hi = _start(first), _start(last + timedelta(days=1))
    counts: Counter[Key] = Counter()

    day = _day(session, Case.created_at)
    for d, domain, kind, n in session.execute(
        select(day, Case.domain, Case.kind, func.count())
        .where(Case.created_at >= lo, Case.created_at < hi)
        .group_by(day, Case.domain, Case.kind)
    ):
        counts[(_as_date(d), "cases", "", area_of(domain), kind, "")] += n

    day = _day(session, Assignment.created_at)
    for d, agency, n in session.execute(
        select(day, Assignment.agency_id, func.count())
        .where(Assignment.created_at >= lo, Assignment.created_at < hi)
        .group_by(day, Assignment.agency_id)
    ):
        counts[(_as_date(d), "lines", agency, "", "", "")] += n

    for _line, agency, created, past_due, at, _status in _firsts(session, ANSWERED, lo, hi):
        on_time = past_due is None or past_due > at
        days = min(MAX_DAYS, max(0, (at - created).days))
        d = at.date()
        counts[(d, "answered", agency, "", "", "on_time" if on_time else "late")] += 1
        counts[(d, "answer_days", agency, "", "", str(days))] += 1

    outcomes = _firsts(session, ENDED, lo, hi)
    for _line, agency, _created, _due, at, status in outcomes:
        counts[(at.date(), "outcome", agency, "", "", status)] += 1

    day = _day(session, Rating.created_at)
    for d, agency, answer, n in session.execute(
        select(day, Rating.agency_id, Rating.answer, func.count())
        .where(Rating.created_at >= lo, Rating.created_at < hi)
        .group_by(day, Rating.agency_id, Rating.answer)
    ):
        counts[(_as_date(d), "rating", agency, "", "", answer)] += n
    return counts


def _firsts(session: Session, statuses: Iterable[str], lo: datetime, hi: datetime):
    """(line id, agency, line created, past due at, first time, value) of the lines whose first
    status among `statuses` was recorded in [lo, hi). value: the outcome of a resolved line,
    else the status reached."""
    statuses = tuple(statuses)
    touched = (
        select(StatusEvent.assignment_id)
        .where(
            StatusEvent.recorded_at >= lo,
            StatusEvent.recorded_at < hi,
            StatusEvent.to_status.in_(statuses),
        )
        .distinct()
        .scalar_subquery()
    )
    first = (
        select(
            StatusEvent.assignment_id.label("line_id"),
            func.min(StatusEvent.id).label("event_id"),
        )
        .where(StatusEvent.assignment_id.in_(touched), StatusEvent.to_status.in_(statuses))
        .group_by(StatusEvent.assignment_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Assignment.id,
            Assignment.agency_id,
            Assignment.created_at,
            Assignment.past_due_at,
            StatusEvent.recorded_at,
            StatusEvent.to_status,
            Assignment.outcome,
        )
        .join(first, first.c.event_id == StatusEvent.id)
        .join(Assignment, Assignment.id == first.c.line_id)
        .where(StatusEvent.recorded_at >= lo, StatusEvent.recorded_at < hi)
    )
    for line_id, agency, created, past_due, at, status, outcome in rows:
        value = (outcome or status) if status == "resolved" else status
        yield line_id, agency, created, past_due, at, value


@dataclass(frozen=True)
class RollupRun:
    first: date
    last: date
    rows: int


def rollup(db: Database, now: datetime, *, full: bool = False) -> RollupRun:
    """Recompute the days from the previous run's last day (or the first case, `full`) to today,
    in one transaction: the page sees the old figures or the new ones, never half."""
    today = now.astimezone(UTC).date()
    with db.session() as s:
        state = s.get(StatState, STATE)
        if state is None or state.last_day is None or full:
            oldest = s.scalar(select(func.min(Case.created_at)))
            first = oldest.astimezone(UTC).date() if oldest else today
        else:
            first = min(state.last_day, today)
        counts = compute(s, first, today)
        s.execute(delete(StatRollup).where(StatRollup.day >= first, StatRollup.day <= today))
        rows = [
            {
                "day": d,
                "month": d.strftime("%Y-%m"),
                "metric": metric,
                "agency_id": agency,
                "area": area,
                "kind": kind,
                "value": value,
                "n": n,
            }
            for (d, metric, agency, area, kind, value), n in counts.items()
        ]
        for i in range(0, len(rows), 5000):
            s.connection().execute(StatRollup.__table__.insert(), rows[i : i + 5000])
        run_id = uuid.uuid4().hex
        if state is None:
            s.add(StatState(name=STATE, last_day=today, computed_at=now, run_id=run_id))
        else:
            state.last_day, state.computed_at, state.run_id = today, now, run_id
    return RollupRun(first, today, len(rows))


def stored(session: Session) -> Counter[Key]:
    """The rollup table as counts (tests compare it with a count of their own)."""
    return Counter(
        {
            (_as_date(r.day), r.metric, r.agency_id, r.area, r.kind, r.value): r.n
            for r in session.scalars(select(StatRollup))
        }
    )


# ----------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class ServiceFigures:
    agency_id: str
    lines: int
    answered: int
    on_time: int
    median_days: int | None  # None under K answered lines


@dataclass(frozen=True)
class Figures:
    """What the public page shows, over the months `months` (oldest first). Counts are exact;
    hiding small cells is the page's job (`shown`)."""

    version: str
    computed_at: datetime | None  # the rollup run these figures come from
    months: tuple[str, ...]
    areas_by_month: dict[str, dict[str, int]]  # area -> month -> cases
    kinds: dict[str, int]
    services: tuple[ServiceFigures, ...]
    outcomes: dict[str, int]
    ratings: dict[str, int]
    ratings_by_service: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total_cases(self) -> int:
        return sum(self.kinds.values())


def shown(n: int | None) -> int | None:
    """A count as published: None (shown as "fewer than K") under K."""
    return n if n is not None and n >= K else None


def median_from(histogram: dict[int, int]) -> int | None:
    total = sum(histogram.values())
    if total < K:
        return None
    middle, seen = (total + 1) // 2, 0
    for days in sorted(histogram):
        seen += histogram[days]
        if seen >= middle:
            return days
    return None


def _months(today: date, count: int) -> tuple[str, ...]:
    y, m = today.year, today.month
    out = []
    for _ in range(count):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return tuple(reversed(out))


_cache: dict[str, Figures] = {}
_cache_lock = threading.Lock()


def figures(db: Database, now: datetime) -> Figures:
    """The page's figures from the rollups, cached per process until the next rollup run."""
    with db.session(read_only=True) as s:
        state = s.get(StatState, STATE)
        computed_at = state.computed_at if state else None
        version = state.run_id if state else "none"
        months = _months(now.astimezone(UTC).date(), PERIOD_MONTHS)
        key = f"{db.url}|{version}|{months[-1]}"  # one process may read two databases (bench)
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
        rows = s.execute(
            select(
                StatRollup.metric,
                StatRollup.month,
                StatRollup.agency_id,
                StatRollup.area,
                StatRollup.kind,
                StatRollup.value,
                func.sum(StatRollup.n),
            )
            .where(StatRollup.month >= months[0])
            .group_by(
                StatRollup.metric,
                StatRollup.month,
                StatRollup.agency_id,
                StatRollup.area,
                StatRollup.kind,
                StatRollup.value,
            )
        ).all()
    areas: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(months, 0))
    kinds: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    on_time: Counter[str] = Counter()
    days: dict[str, Counter[int]] = defaultdict(Counter)
    outcomes: Counter[str] = Counter()
    ratings: Counter[str] = Counter()
    by_service: dict[str, Counter[str]] = defaultdict(Counter)
    for metric, month, agency, area, kind, value, n in rows:
        n = int(n)
        if metric == "cases":
            if month in months:
                areas[area][month] += n
            kinds[kind] += n
        elif metric == "lines":
            lines[agency] += n
        elif metric == "answered":
            answered[agency] += n
            if value == "on_time":
                on_time[agency] += n
        elif metric == "answer_days":
            days[agency][int(value)] += n
        elif metric == "outcome":
            outcomes[value] += n
        elif metric == "rating":
            ratings[value] += n
            by_service[agency][value] += n
    services = tuple(
        ServiceFigures(a, lines[a], answered[a], on_time[a], median_from(days[a]))
        for a in sorted(set(lines) | set(answered), key=lambda a: (-lines[a], a))
    )
    result = Figures(
        version=key,
        computed_at=computed_at,
        months=months,
        areas_by_month={a: dict(v) for a, v in sorted(areas.items())},
        kinds=dict(kinds.most_common()),
        services=services,
        outcomes=dict(outcomes.most_common()),
        ratings={r: ratings[r] for r in RATINGS},
        ratings_by_service={a: dict(c) for a, c in by_service.items()},
    )
    with _cache_lock:
        _cache.clear()
        _cache[key] = result
    return result
