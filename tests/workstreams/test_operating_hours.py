"""Operating hours: open at an instant, next opening, closed dates, daylight saving."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from tests.factories import OperatingHoursFactory, OperatingIntervalFactory, QueueFactory
from workstreams.models import ClosedDate

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def weekdays_9_to_17():
    """Copenhagen office hours, Monday to Friday 09:00–17:00 local time."""
    hours = OperatingHoursFactory(time_zone="Europe/Copenhagen")
    for weekday in range(5):
        OperatingIntervalFactory(hours=hours, weekday=weekday, opens_at=time(9), closes_at=time(17))
    return hours


def test_open_during_an_interval_and_closed_outside(weekdays_9_to_17):
    # Wednesday 2026-01-14, winter time (UTC+1): 09:00 local = 08:00 UTC.
    assert not weekdays_9_to_17.is_open(utc(2026, 1, 14, 7, 59))
    assert weekdays_9_to_17.is_open(utc(2026, 1, 14, 8, 0))
    assert weekdays_9_to_17.is_open(utc(2026, 1, 14, 15, 59))
    assert not weekdays_9_to_17.is_open(utc(2026, 1, 14, 16, 0))


def test_opening_follows_local_time_across_the_spring_dst_change(weekdays_9_to_17):
    # Clocks go forward on Sunday 2026-03-29; Monday 09:00 local is now 07:00 UTC.
    assert weekdays_9_to_17.is_open(utc(2026, 3, 30, 7, 0))
    assert not weekdays_9_to_17.is_open(utc(2026, 3, 27, 7, 30))  # Friday before: 08:30 local
    assert weekdays_9_to_17.next_opening(utc(2026, 3, 27, 17, 0)) == utc(2026, 3, 30, 7, 0)


def test_opening_follows_local_time_across_the_autumn_dst_change(weekdays_9_to_17):
    # Clocks go back on Sunday 2026-10-25; Monday 09:00 local is 08:00 UTC again.
    assert weekdays_9_to_17.next_opening(utc(2026, 10, 23, 16, 0)) == utc(2026, 10, 26, 8, 0)
    assert not weekdays_9_to_17.is_open(utc(2026, 10, 26, 7, 30))


def test_an_interval_inside_the_dst_gap_opens_when_the_clocks_jump():
    hours = OperatingHoursFactory(time_zone="Europe/Copenhagen")
    OperatingIntervalFactory(hours=hours, weekday=6, opens_at=time(2, 30), closes_at=time(4))
    # 02:30 does not exist on 2026-03-29 (02:00 -> 03:00 CEST = 01:00 UTC).
    opening = hours.next_opening(utc(2026, 3, 28, 12, 0))
    assert opening is not None and opening.astimezone(hours.tz).hour == 3
    assert hours.is_open(utc(2026, 3, 29, 1, 45))  # 03:45 local


def test_next_opening_is_now_while_open(weekdays_9_to_17):
    now = utc(2026, 1, 14, 10, 0)
    assert weekdays_9_to_17.next_opening(now) == now


def test_next_opening_skips_the_weekend(weekdays_9_to_17):
    # Friday 2026-01-16 18:00 local -> Monday 2026-01-19 09:00 local (08:00 UTC).
    assert weekdays_9_to_17.next_opening(utc(2026, 1, 16, 17, 0)) == utc(2026, 1, 19, 8, 0)


def test_closed_dates_are_closed_all_day_and_skipped_by_next_opening(weekdays_9_to_17):
    ClosedDate.objects.create(hours=weekdays_9_to_17, date=date(2026, 12, 24), label="Christmas Eve")
    ClosedDate.objects.create(hours=weekdays_9_to_17, date=date(2026, 12, 25), label="Christmas Day")
    hours = type(weekdays_9_to_17).objects.get(pk=weekdays_9_to_17.pk)
    assert not hours.is_open(utc(2026, 12, 24, 10, 0))
    assert hours.is_open(utc(2026, 12, 23, 10, 0))
    # Wednesday 23rd after closing -> Monday 28th (24th, 25th closed; 26th, 27th weekend).
    assert hours.next_opening(utc(2026, 12, 23, 17, 0)) == utc(2026, 12, 28, 8, 0)


def test_closing_at_midnight_covers_the_end_of_the_day():
    hours = OperatingHoursFactory(time_zone="America/New_York")
    OperatingIntervalFactory(hours=hours, weekday=4, opens_at=time(20), closes_at=time(0))
    # Friday 2026-01-16 23:59 in New York (UTC-5) = Saturday 04:59 UTC.
    assert hours.is_open(utc(2026, 1, 17, 4, 59))
    assert not hours.is_open(utc(2026, 1, 17, 5, 0))


def test_hours_without_intervals_never_open():
    hours = OperatingHoursFactory()
    assert not hours.is_open(utc(2026, 1, 14, 10, 0))
    assert hours.next_opening(utc(2026, 1, 14, 10, 0)) is None


def test_a_queue_without_operating_hours_is_always_open():
    queue = QueueFactory(operating_hours=None)
    now = utc(2026, 1, 14, 3, 0)
    assert queue.is_open(now)
    assert queue.next_opening(now) == now
