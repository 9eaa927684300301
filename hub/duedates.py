"""Due dates: calendar or business days. Business days skip weekends and Belgian public holidays.

Dates are computed at the agency's local day boundary (Europe/Brussels): a case filed on Friday
afternoon with "3 business days" is due at the end of Wednesday, Brussels time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from mappings.engine import Duration

BRUSSELS = ZoneInfo("Europe/Brussels")


@lru_cache(maxsize=16)
def _belgian_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("BE", years=year))


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _belgian_holidays(day.year)


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), BRUSSELS)


def due_at(start: datetime, within: Duration) -> datetime:
    """When something started at `start` and allowed `within` is due (aware, Brussels time)."""
    local = start.astimezone(BRUSSELS)
    if within.unit == "business_days":
        day, left = local.date(), within.amount
        while left > 0:
            day += timedelta(days=1)
            if is_business_day(day):
                left -= 1
        return _end_of_day(day)
    if within.unit == "days":
        return _end_of_day(local.date() + timedelta(days=within.amount))
    return local + timedelta(seconds=within.seconds)
