"""Due dates in calendar or business days; business days skip weekends and Belgian holidays."""

from datetime import UTC, date, datetime

from hub.duedates import BRUSSELS, due_at, is_business_day
from mappings.engine import Duration


def local_day(dt: datetime) -> date:
    return dt.astimezone(BRUSSELS).date()


def test_business_days_skip_the_weekend():
    friday = datetime(2026, 11, 6, 15, 0, tzinfo=UTC)
    due = due_at(friday, Duration(3, "business_days"))
    assert local_day(due) == date(2026, 11, 12)  # Mon 9, Tue 10, Thu 12 (Wed 11 is a holiday)


def test_business_days_skip_belgian_public_holidays():
    assert not is_business_day(date(2026, 11, 11))  # Armistice Day
    assert not is_business_day(date(2026, 12, 25))
    assert not is_business_day(date(2027, 5, 6))  # Ascension Day 2027
    before_christmas = datetime(2026, 12, 23, 10, 0, tzinfo=UTC)
    due = due_at(before_christmas, Duration(2, "business_days"))
    assert local_day(due) == date(2026, 12, 28)  # Thu 24, (Fri 25 holiday, weekend), Mon 28


def test_calendar_days_count_every_day_and_end_at_the_end_of_the_day_in_brussels():
    start = datetime(2026, 11, 6, 23, 30, tzinfo=UTC)  # already Saturday 7th in Brussels
    due = due_at(start, Duration(30, "days"))
    assert local_day(due) == date(2026, 12, 7)
    assert (due.astimezone(BRUSSELS).hour, due.astimezone(BRUSSELS).minute) == (23, 59)


def test_hours_are_exact():
    start = datetime(2026, 11, 6, 10, 0, tzinfo=UTC)
    assert due_at(start, Duration(48, "hours")) == datetime(2026, 11, 8, 10, 0, tzinfo=UTC)
