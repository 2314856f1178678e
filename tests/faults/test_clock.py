"""Clock faults (issue #7, reliability): operating hours, auto-close (rule 11) and the affinity
timeout (rule 7) under a frozen or advanced clock, across daylight saving changes, a clock
stepped backwards and a clock that jumps a week forward.

The daylight saving changes used (2026):
- Europe/Copenhagen: Sunday 29 March 02:00 -> 03:00 (01:00 UTC); Sunday 25 October 03:00 -> 02:00
  (01:00 UTC), so 02:00-02:59 happens twice (00:00-00:59 and 01:00-01:59 UTC).
- America/New_York: Sunday 8 March 02:00 -> 03:00 (07:00 UTC); Sunday 1 November 02:00 -> 01:00
  (06:00 UTC).
- Australia/Lord_Howe, a 30-minute shift: Sunday 4 October 02:00 -> 02:30 (Saturday 15:30 UTC);
  Sunday 5 April 02:00 -> 01:30 (Saturday 15:00 UTC).

Each test says in its docstring which clock fault it applies and what it verifies."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from conversations import services, sweeps
from conversations.errors import OutsideOperatingHours
from conversations.models import Conversation, Customer, Status
from conversations.services import queues_drain
from conversations.tasks import sweep_task
from tests.cast import (  # noqa: F401 - fixtures
    alice,
    bob,
    broadcasts,
    commit,
    customer,
    eager_celery,
    live,
    other_customer,
    persistent,
    queue,
    visitor,
)
from tests.conversations.test_concurrency import run_concurrently
from tests.factories import OperatingHoursFactory, OperatingIntervalFactory
from workstreams.models import OperatingHours, OperatingInterval, Workstream

pytestmark = pytest.mark.django_db

COPENHAGEN = "Europe/Copenhagen"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
SUNDAY = 6
SATURDAY = 5


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hours_with(time_zone: str, *intervals: tuple[int, time, time]) -> OperatingHours:
    """Operating hours in ``time_zone`` with (weekday, opens, closes) intervals, read fresh."""
    hours = OperatingHoursFactory(time_zone=time_zone)
    for weekday, opens, closes in intervals:
        OperatingIntervalFactory(hours=hours, weekday=weekday, opens_at=opens, closes_at=closes)
    return OperatingHours.objects.get(pk=hours.pk)


def minutes_between(start: datetime, end: datetime):
    at = start
    while at < end:
        yield at
        at += timedelta(minutes=1)


def openings(hours: OperatingHours, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The open stretches between two instants, sampled every real minute."""
    stretches: list[tuple[datetime, datetime]] = []
    opened = None
    for at in minutes_between(start, end):
        if hours.is_open(at) and opened is None:
            opened = at
        elif not hours.is_open(at) and opened is not None:
            stretches.append((opened, at))
            opened = None
    if opened is not None:
        stretches.append((opened, end))
    return stretches


def say(widget, customer, body="Hello"):
    return services.customer_message_send(widget=widget, customer=customer, body=body)


def refresh(conversation) -> Conversation:
    return Conversation.objects.select_related("agent").get(pk=conversation.pk)


def kinds(conversation) -> list[str]:
    return list(conversation.messages.exclude(kind="").order_by("seq").values_list("kind", flat=True))


def frames_of_kind(broadcasts, group: str, kind: str) -> list[dict]:
    return [
        frame
        for sent_to, frame in broadcasts
        if sent_to == group and frame["type"] == "message" and frame["message"]["kind"] == kind
    ]


@pytest.fixture
def no_sweep_errors(caplog):
    """The sweep logs and skips a conversation it fails on; a clock fault must cause none."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.fixture
def danish_server(settings):
    """The server's own time zone is Copenhagen too, so local-time arithmetic anywhere would show."""
    settings.TIME_ZONE = COPENHAGEN


# --- Operating hours: the spring-forward gap ---------------------------------------------------------

# (zone, the Sunday of the gap, a wall time inside the gap, the instant the clocks jump)
GAPS = [
    pytest.param(COPENHAGEN, (2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 0), id="copenhagen"),
    pytest.param(NEW_YORK, (2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 0), id="new-york"),
    pytest.param(LORD_HOWE, (2026, 10, 4), time(2, 15), utc(2026, 10, 3, 15, 30), id="lord-howe-30-min"),
]


@pytest.mark.parametrize(("zone", "day", "in_gap", "jump"), GAPS)
def test_an_opening_inside_the_spring_gap_opens_at_the_instant_the_clocks_jump(zone, day, in_gap, jump):
    """Fault: the opening time (02:30; 02:15 on Lord Howe) does not exist on the day the clocks
    go forward. Verified: the queue opens the instant the local clock first shows that time or
    later, which is the jump itself (03:00; 02:30 on Lord Howe), not a gap's length later
    (03:30; 02:45), and next_opening names that instant."""
    hours = hours_with(zone, (SUNDAY, in_gap, time(5)))
    saturday_noon = datetime(*day, 12, tzinfo=zoneinfo.ZoneInfo(zone)) - timedelta(days=1)
    assert hours.next_opening(saturday_noon) == jump
    assert not hours.is_open(jump - timedelta(seconds=1))
    assert hours.is_open(jump)
    assert hours.next_opening(jump - timedelta(seconds=1)) == jump


@pytest.mark.parametrize(("zone", "day", "in_gap", "jump"), GAPS)
def test_a_closing_inside_the_spring_gap_closes_at_the_instant_the_clocks_jump(zone, day, in_gap, jump):
    """Fault: the closing time does not exist on the day the clocks go forward. Verified: the
    queue closes when the local clock first shows that time or later (the jump), not a gap's
    length later, so it is never open after its closing time on the wall clock."""
    hours = hours_with(zone, (SUNDAY, time(0), in_gap))
    assert hours.is_open(jump - timedelta(seconds=1))
    assert not hours.is_open(jump)
    assert not hours.is_open(jump + timedelta(minutes=20))


@pytest.mark.parametrize(("zone", "day", "in_gap", "jump"), GAPS)
def test_an_interval_wholly_inside_the_spring_gap_is_skipped_and_next_opening_is_real(zone, day, in_gap, jump):
    """Fault: a whole interval (02:30-03:00 in Copenhagen and New York, 02:15-02:30 on Lord Howe)
    lies inside the hour that does not exist. Verified: it does not open that day (the clock never
    shows those times), and next_opening skips to the next Sunday, where it opens for real, never
    an instant at which the queue turns out to be closed."""
    closes = time(3) if zone != LORD_HOWE else time(2, 30)
    hours = hours_with(zone, (SUNDAY, in_gap, closes))
    tz = zoneinfo.ZoneInfo(zone)
    saturday_noon = datetime(*day, 12, tzinfo=tz) - timedelta(days=1)
    assert openings(hours, saturday_noon, saturday_noon + timedelta(days=1)) == []
    following_sunday = datetime.combine(datetime(*day).date() + timedelta(days=7), in_gap, tzinfo=tz)
    opening = hours.next_opening(saturday_noon)
    assert opening == following_sunday.astimezone(UTC)
    assert hours.is_open(opening)


# Intervals around each change, in each zone: the wall times before, inside and after the gap
# and the fold, a night split at midnight, and the weekday intervals of an office.
TRICKY_INTERVALS = [
    (SATURDAY, time(20), time(0)),
    (SUNDAY, time(0), time(1, 30)),
    (SUNDAY, time(2, 15), time(2, 30)),
    (SUNDAY, time(2, 30), time(3)),
    (SUNDAY, time(3, 30), time(4)),
    (0, time(9), time(17)),
]
CHANGES = [
    pytest.param(COPENHAGEN, utc(2026, 3, 28, 10), id="copenhagen-spring"),
    pytest.param(COPENHAGEN, utc(2026, 10, 24, 10), id="copenhagen-autumn"),
    pytest.param(NEW_YORK, utc(2026, 3, 7, 17), id="new-york-spring"),
    pytest.param(NEW_YORK, utc(2026, 10, 31, 16), id="new-york-autumn"),
    pytest.param(LORD_HOWE, utc(2026, 10, 3, 1), id="lord-howe-spring"),
    pytest.param(LORD_HOWE, utc(2026, 4, 4, 1), id="lord-howe-autumn"),
]


@pytest.mark.parametrize(("zone", "saturday"), CHANGES)
def test_next_opening_is_always_an_instant_at_which_it_opens_across_dst_changes(zone, saturday):
    """Fault: both daylight saving changes in three zones (one with a 30-minute shift), with
    intervals starting and ending before, inside and after the gap and the fold. Verified, every
    5 minutes from Saturday to Monday evening: next_opening is the instant itself while open;
    otherwise a later instant at which it is open and just before which it is closed, with no open
    instant in between (so the widget's "opens at" is never a lie)."""
    hours = hours_with(zone, *TRICKY_INTERVALS)
    end = saturday + timedelta(days=2, hours=12)
    open_minutes = [at for at in minutes_between(saturday, end + timedelta(days=7)) if hours.is_open(at)]
    for at in list(minutes_between(saturday, end))[::5]:
        opening = hours.next_opening(at)
        if hours.is_open(at):
            assert opening == at
            continue
        assert opening is not None and opening > at, at
        assert hours.is_open(opening), (at, opening)
        assert not hours.is_open(opening - timedelta(seconds=1)), (at, opening)
        assert not [minute for minute in open_minutes if at < minute < opening], (at, opening)


# --- Operating hours: the autumn fold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "interval", "expected"),
    [
        # 02:30 happens at 00:30 and at 01:30 UTC: the period starts at the first and runs on
        # through the repeated hour until 04:00 CET.
        pytest.param(
            COPENHAGEN,
            (time(2, 30), time(4)),
            [(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3, 0))],
            id="copenhagen-starts-in-the-fold",
        ),
        # The whole interval lies in the repeated hour: open once, the first time round.
        pytest.param(
            COPENHAGEN,
            (time(2), time(2, 30)),
            [(utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30))],
            id="copenhagen-inside-the-fold",
        ),
        pytest.param(
            NEW_YORK,
            (time(1), time(1, 30)),
            [(utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30))],
            id="new-york-inside-the-fold",
        ),
        # Lord Howe goes back from 02:00 to 01:30: 01:30-01:59 repeats.
        pytest.param(
            LORD_HOWE,
            (time(1, 45), time(3)),
            [(utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 16, 30))],
            id="lord-howe-starts-in-the-fold",
        ),
    ],
)
def test_an_interval_in_the_autumn_fold_opens_once_neither_twice_nor_never(zone, interval, expected):
    """Fault: the clocks go back, so the interval's wall times happen twice. Verified, minute by
    minute over the whole weekend: the queue opens exactly once, at the first time the clock shows
    the opening time, for one continuous stretch (never reopened the second time round, never
    skipped)."""
    hours = hours_with(zone, (SUNDAY, *interval))
    start = expected[0][0] - timedelta(hours=30)
    assert openings(hours, start, start + timedelta(hours=48)) == expected
    assert hours.next_opening(start) == expected[0][0]


def test_a_night_shift_split_at_midnight_stays_open_across_midnight_and_both_dst_changes():
    """Fault: a night shift past midnight, on the nights the clocks change. The model has no
    closing time after midnight (it refuses 22:00-02:00; an admin enters 20:00-00:00 and 00:00-04:00
    on the next day). Verified: open without a break across midnight, for 7 real hours on the
    spring night and 9 on the autumn night (wall clock 20:00-04:00 both), and next_opening at
    midnight is midnight itself."""
    with pytest.raises(ValidationError):
        OperatingInterval(weekday=SATURDAY, opens_at=time(22), closes_at=time(2)).clean()
    hours = hours_with(COPENHAGEN, (SATURDAY, time(20), time(0)), (SUNDAY, time(0), time(4)))
    spring = openings(hours, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert spring == [(utc(2026, 3, 28, 19), utc(2026, 3, 29, 2))]
    autumn = openings(hours, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert autumn == [(utc(2026, 10, 24, 18), utc(2026, 10, 25, 3))]
    midnight = utc(2026, 3, 28, 23)
    assert hours.next_opening(midnight) == midnight


# --- The widget and the engine agree with the hours --------------------------------------------------


def widget_config(widget) -> dict:
    return APIClient().get(f"/api/v1/widget/{widget.widget_key}/").json()


def test_the_widget_says_offline_until_the_gap_opening_and_refuses_chat_with_the_same_next_opening(live, visitor):
    """Fault: a live widget whose hours open at 02:30 on the night the clocks skip 02:00-03:00.
    Verified at 00:59:59 UTC: GET /api/v1/widget/{key}/ says offline with next_opening 01:00 UTC
    (03:00 CEST), and a message is refused outside_operating_hours with that same next_opening;
    at 01:00 UTC the widget is online and the same message starts a conversation."""
    live.operating_hours = hours_with(COPENHAGEN, (SUNDAY, time(2, 30), time(5)))
    live.save()
    jump = utc(2026, 3, 29, 1, 0)
    with time_machine.travel(jump - timedelta(seconds=1), tick=False):
        config = widget_config(live)
        with pytest.raises(OutsideOperatingHours) as refused:
            say(live, visitor)
    assert (config["online"], config["next_opening"]) == (False, "2026-03-29T01:00:00+00:00")
    assert refused.value.next_opening.isoformat() == config["next_opening"]
    assert not Conversation.objects.exists()
    with time_machine.travel(jump, tick=False):
        config = widget_config(live)
        conversation = say(live, visitor).conversation
    assert (config["online"], config["next_opening"]) == (True, None)
    assert conversation.status == Status.OPEN


@pytest.mark.parametrize(
    ("hours_args", "before", "opening"),
    [
        pytest.param((SUNDAY, time(2, 30), time(5)), utc(2026, 3, 28, 12), utc(2026, 3, 29, 1), id="spring-gap"),
        pytest.param((SUNDAY, time(2, 30), time(5)), utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30), id="autumn-fold"),
    ],
)
def test_a_persistent_queue_drains_when_its_hours_open_around_a_dst_change_and_not_before(
    persistent, customer, alice, commit, hours_args, before, opening, no_sweep_errors
):
    """Fault: persistent chat written while the queue is closed; the queue opens at 02:30 on a
    night the clocks change. Verified with the minute sweep: one second before the real opening
    (03:00 CEST on the spring night, the first 02:30 on the autumn night) the conversation stays in
    the queue; at the opening the sweep assigns it to the queue's agent."""
    queue = persistent.workstream.queue
    queue.operating_hours = hours_with(COPENHAGEN, hours_args)
    queue.save()
    with time_machine.travel(before, tick=False), commit():
        conversation = say(persistent, customer).conversation
    with time_machine.travel(opening - timedelta(seconds=1), tick=False), commit():
        assert sweep_task()["assigned"] == 0
    assert refresh(conversation).status == Status.OPEN
    with time_machine.travel(opening, tick=False), commit():
        assert sweep_task()["assigned"] == 1
    conversation = refresh(conversation)
    assert (conversation.status, conversation.agent) == (Status.ACTIVE, alice)


# --- Auto-close (rule 11) and the affinity timeout (rule 7): durations of real time ------------------

SPRING_SATURDAY_NOON = utc(2026, 3, 28, 11)  # 12:00 CET; 23 real hours later the wall clock shows 12:00 again
AUTUMN_SATURDAY_NOON = utc(2026, 10, 24, 10)  # 12:00 CEST; 25 real hours later the wall clock shows 12:00 again


def set_timeouts(widget, **timeouts) -> None:
    Workstream.objects.filter(pk=widget.workstream_id).update(**timeouts)


@pytest.mark.parametrize("start", [SPRING_SATURDAY_NOON, AUTUMN_SATURDAY_NOON], ids=["spring", "autumn"])
@pytest.mark.parametrize("reason", ["open_timeout", "waiting_timeout", "wrap_up_timeout"])
def test_a_24_hour_timeout_closes_after_24_real_hours_across_a_dst_change(
    request, reason, start, persistent, live, customer, visitor, broadcasts, commit, danish_server, no_sweep_errors
):
    """Fault: a 24-hour auto-close period (open, waiting, wrap-up) that spans the night the clocks
    go forward (the wall clock shows "24 hours later" after 23) or back (after 25), on a server
    whose own time zone is Copenhagen. Verified with the minute sweep at the advanced clock: still
    open one second before 24 real hours, closed at 24 real hours; a second sweep at the same
    instant (a second worker, or beat firing twice) closes nothing more; the customer, and the
    agent when there is one, hear the auto_closed message exactly once."""
    widget, who = (live, visitor) if reason == "open_timeout" else (persistent, customer)
    set_timeouts(widget, **{reason: timedelta(hours=24)})
    with time_machine.travel(start, tick=False), commit():
        conversation = say(widget, who).conversation
        if reason != "open_timeout":
            alice = request.getfixturevalue("alice")
            queues_drain()
            act = services.conversation_wait if reason == "waiting_timeout" else services.conversation_end
            act(conversation_id=conversation.pk, agent=alice)
    status = refresh(conversation).status
    with time_machine.travel(start + timedelta(hours=24) - timedelta(seconds=1), tick=False), commit():
        assert reason not in sweep_task()
    assert refresh(conversation).status == status
    with time_machine.travel(start + timedelta(hours=24), tick=False), commit():
        assert sweep_task()[reason] == 1
        assert reason not in sweep_task()
    conversation = refresh(conversation)
    assert conversation.status == Status.CLOSED
    assert conversation.closed_at == start + timedelta(hours=24)
    assert kinds(conversation).count("auto_closed") == 1
    assert len(frames_of_kind(broadcasts, f"customer.{who.pk}.{widget.workstream_id}", "auto_closed")) == 1
    if conversation.agent_id:
        assert len(frames_of_kind(broadcasts, f"agent.{conversation.agent_id}", "auto_closed")) == 1


@pytest.mark.parametrize(
    "returned",
    [
        pytest.param(utc(2026, 3, 29, 0, 30), id="spring-01:30-CET-to-03:30-CEST"),
        pytest.param(utc(2026, 10, 25, 0, 30), id="autumn-first-02:30-to-second-02:30"),
    ],
)
def test_the_affinity_timeout_is_an_hour_of_real_time_across_a_dst_change(
    request, returned, persistent, customer, alice, broadcasts, commit, danish_server, no_sweep_errors
):
    """Fault: a returning customer waits for their agent across the clock change: on the spring
    night the wall clock shows two hours gone after one; on the autumn night it shows the very time
    the customer returned (the second 02:30) after one. Verified: one second before a real hour the
    conversation is still with its agent; at a real hour the sweep sends it to the queue, where
    the other agent gets it once (one agent_joined message, one "assigned"); a second sweep changes
    nothing."""
    with time_machine.travel(returned - timedelta(hours=3), tick=False), commit():
        conversation = say(persistent, customer).conversation
        queues_drain()
        services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    bob = request.getfixturevalue("bob")
    with time_machine.travel(returned, tick=False), commit():
        say(persistent, customer, "I'm back")
    assert refresh(conversation).returned_at == returned
    with time_machine.travel(returned + timedelta(hours=1) - timedelta(seconds=1), tick=False), commit():
        assert "affinity_timeout" not in sweep_task()
    assert refresh(conversation).agent == alice
    with time_machine.travel(returned + timedelta(hours=1), tick=False), commit():
        assert sweep_task()["affinity_timeout"] == 1
        assert "affinity_timeout" not in sweep_task()
    conversation = refresh(conversation)
    assert (conversation.status, conversation.agent) == (Status.ACTIVE, bob)
    assert kinds(conversation).count("agent_joined") == 2  # alice at the start, bob now
    assigned = [f for g, f in broadcasts if g == f"agent.{bob.pk}" and f.get("kind") == "assigned"]
    assert len(assigned) == 1
    assert len(frames_of_kind(broadcasts, f"customer.{customer.pk}.{persistent.workstream_id}", "agent_joined")) == 2


def test_a_worker_acting_on_a_stale_list_of_due_conversations_closes_nothing_twice(
    persistent, customer, alice, commit, no_sweep_errors
):
    """Fault: two sweeps run at the same advanced instant, the second listing the due conversations
    before the first closed them (two beat schedulers, or a worker that stalled). Verified: the
    engine re-checks each one under its lock, so the stale worker closes nothing and posts no second
    auto_closed message."""
    with time_machine.travel(SPRING_SATURDAY_NOON, tick=False):
        conversation = say(persistent, customer).conversation
        queues_drain()
        services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    later = SPRING_SATURDAY_NOON + timedelta(days=2)
    with time_machine.travel(later, tick=False), commit():
        stale = sweeps.due(later)
        assert (conversation.pk, "waiting_timeout") in stale
        assert sweep_task()["waiting_timeout"] == 1
        assert [services.conversation_auto_close(conversation_id=pk, reason=r) for pk, r in stale] == [None]
    assert kinds(refresh(conversation)).count("auto_closed") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_sweeping_at_the_same_advanced_instant_close_each_due_conversation_exactly_once(
    persistent, alice, no_sweep_errors
):
    """Fault: the clock is advanced past the waiting period of four conversations (four others are
    a day short of it) and two workers run the minute sweep at the same instant, on PostgreSQL.
    Verified: between them they close the four due ones, each exactly once with one auto_closed
    message, leave the other four waiting, and neither raises nor logs an error."""
    type(alice).objects.filter(pk=alice.pk).update(capacity=1000)
    customers = [
        Customer.objects.create(authentication_setting=persistent.authentication_setting, external_id=f"c{i}")
        for i in range(8)
    ]
    with time_machine.travel(SPRING_SATURDAY_NOON, tick=False):
        conversations = [say(persistent, c).conversation for c in customers]
        queues_drain()
        for conversation in conversations[:4]:
            services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    with time_machine.travel(SPRING_SATURDAY_NOON + timedelta(days=1), tick=False):
        for conversation in conversations[4:]:
            services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    with time_machine.travel(SPRING_SATURDAY_NOON + timedelta(days=2), tick=False):
        results = run_concurrently([sweep_task, sweep_task])
    assert all(isinstance(result, dict) for result in results), results
    assert sum(result.get("waiting_timeout", 0) for result in results) == 4
    for conversation in conversations[:4]:
        assert refresh(conversation).status == Status.CLOSED
        assert kinds(conversation).count("auto_closed") == 1
    assert [refresh(c).status for c in conversations[4:]] == [Status.WAITING] * 4


# --- The clock stepped backwards, and a week-long jump forward ---------------------------------------


def test_a_clock_stepped_back_closes_nothing_early_nothing_twice_and_raises_nothing(
    persistent, customer, other_customer, alice, commit, no_sweep_errors
):
    """Fault: NTP steps the clock back a day, (1) after the sweep closed a conversation, (2) after a
    conversation was moved to waiting while the clock was a day fast, (3) between a sweep listing a
    conversation as due and acting on it. Verified: (1) the closed one is not touched again and gets
    no second message; (2) the one stamped in the future is never closed before its full waiting
    period has passed on the corrected clock (a day late rather than early); (3) the engine re-checks
    with the clock at the time it acts and closes nothing; the customer can still write into a
    conversation whose last activity lies in the future, and seq keeps counting; no sweep errors."""
    t0 = SPRING_SATURDAY_NOON
    with time_machine.travel(t0, tick=False):
        closed = say(persistent, customer).conversation
        queues_drain()
        services.conversation_wait(conversation_id=closed.pk, agent=alice)
    with time_machine.travel(t0 + timedelta(days=2), tick=False), commit():
        assert sweep_task()["waiting_timeout"] == 1
        # The clock is a day fast from here on: a conversation moved to waiting now is stamped a day ahead.
        fast = say(persistent, other_customer).conversation
        queues_drain()
        services.conversation_wait(conversation_id=fast.pk, agent=alice)
    stamped = refresh(fast).last_activity_at
    corrected = t0 + timedelta(days=1)  # NTP steps back a day
    with time_machine.travel(corrected, tick=False), commit():
        assert "waiting_timeout" not in sweep_task()
        assert services.conversation_auto_close(conversation_id=closed.pk, reason="waiting_timeout") is None
    assert kinds(refresh(closed)).count("auto_closed") == 1
    with time_machine.travel(stamped + timedelta(days=2) - timedelta(seconds=1), tick=False), commit():
        stale = sweeps.due(stamped + timedelta(days=2))  # listed by a worker whose clock is ahead
        assert (fast.pk, "waiting_timeout") in stale
        assert services.conversation_auto_close(conversation_id=fast.pk, reason="waiting_timeout") is None
        assert "waiting_timeout" not in sweep_task()
    assert refresh(fast).status == Status.WAITING
    with time_machine.travel(corrected + timedelta(hours=1), tick=False), commit():
        result = say(persistent, other_customer, "Back, with a slow clock")
    assert result.message.seq == refresh(fast).last_seq and refresh(fast).status == Status.ACTIVE
    assert list(fast.messages.order_by("seq").values_list("seq", flat=True)) == list(range(1, result.message.seq + 1))


def test_a_week_long_jump_forward_closes_every_due_conversation_once_and_nothing_else(
    request, persistent, live, customer, other_customer, visitor, alice, broadcasts, commit, no_sweep_errors
):
    """Fault: the clock jumps a week forward at once (a laptop running the server slept, or a
    paused VM resumed), with one conversation in every state. Verified: the first sweep at the new
    clock closes the open live chat, the waiting and the wrap-up persistent ones (one auto_closed
    message each), ends the live chat whose customer left (one ended_by_customer, into wrap-up that
    starts now), sends the unanswered returning customer to the queue, where the other agent gets it,
    and leaves the quiet active conversation alone; a second sweep changes nothing; no errors."""
    Agent = type(alice)
    Agent.objects.filter(pk=alice.pk).update(capacity=1000)
    set_timeouts(persistent, open_timeout=timedelta(days=30))
    customers = [customer, other_customer] + [
        Customer.objects.create(authentication_setting=persistent.authentication_setting, external_id=f"c{i}")
        for i in range(2)
    ]
    leaver = Customer.objects.create(widget=live, external_id="leaver")
    t0 = SPRING_SATURDAY_NOON
    with time_machine.travel(t0, tick=False):
        waiting, wrap_up, returning, quiet = (say(persistent, c).conversation for c in customers)
        leaving = say(live, leaver).conversation
        queues_drain()
        services.conversation_wait(conversation_id=waiting.pk, agent=alice)
        services.conversation_end(conversation_id=wrap_up.pk, agent=alice)
        services.conversation_wait(conversation_id=returning.pk, agent=alice)
        say(persistent, customers[2], "I'm back")
        services.customer_connect(customer=leaver)
        services.customer_disconnect(customer=leaver)
        unserved = say(live, visitor).conversation
    bob = request.getfixturevalue("bob")
    Agent.objects.filter(pk=bob.pk).update(capacity=1000)
    before = {c.pk: kinds(c) for c in (waiting, wrap_up, returning, quiet, leaving, unserved)}
    with time_machine.travel(t0 + timedelta(days=7), tick=False), commit():
        first = sweep_task()
        second = sweep_task()
    assert first == {
        "open_timeout": 1,
        "waiting_timeout": 1,
        "wrap_up_timeout": 1,
        "customer_disconnected": 1,
        "affinity_timeout": 1,
        "assigned": 1,
    }
    assert second == {"assigned": 0}
    after = {c.pk: refresh(c) for c in (waiting, wrap_up, returning, quiet, leaving, unserved)}
    for closed in (waiting, wrap_up, unserved):
        assert after[closed.pk].status == Status.CLOSED
        assert kinds(after[closed.pk]) == [*before[closed.pk], "auto_closed"]
    assert after[leaving.pk].status == Status.WRAP_UP
    assert kinds(after[leaving.pk]) == [*before[leaving.pk], "ended_by_customer"]
    assert (after[returning.pk].status, after[returning.pk].agent) == (Status.ACTIVE, bob)
    assert kinds(after[returning.pk]) == [*before[returning.pk], "agent_joined"]
    assert (after[quiet.pk].status, kinds(after[quiet.pk])) == (Status.ACTIVE, before[quiet.pk])
    told = [f["message"] for g, f in broadcasts if g.startswith("customer.") and f["type"] == "message"]
    closed_ids = sorted(m["conversation_id"] for m in told if m["kind"] == "auto_closed")
    assert closed_ids == sorted([waiting.pk, wrap_up.pk, unserved.pk])


def test_a_live_chat_sent_back_to_the_queue_gets_its_whole_open_period_there(live, visitor, alice, commit):
    """Fault: the clock advances 25 minutes over a quiet live chat (active chats have no timeout),
    then the agent presses ✖, which sends it back to the queue, and the minute sweep runs one minute
    later. Verified: the open period (20 minutes) counts from the return to the queue, as a transfer
    to a queue does, so the chat is not closed a minute after the customer was put back in line; it
    closes 20 real minutes after the ✖ if nobody takes it."""
    with time_machine.travel(SPRING_SATURDAY_NOON, tick=False):
        conversation = say(live, visitor).conversation
        queues_drain()
    sent_back = SPRING_SATURDAY_NOON + timedelta(minutes=25)
    with time_machine.travel(sent_back, tick=False):
        services.agent_presence_set(agent=alice, presence="away")  # nobody takes it again
        services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    with time_machine.travel(sent_back + timedelta(minutes=1), tick=False), commit():
        assert "open_timeout" not in sweep_task()
    assert refresh(conversation).status == Status.OPEN
    with time_machine.travel(sent_back + timedelta(minutes=20), tick=False), commit():
        assert sweep_task()["open_timeout"] == 1
    assert kinds(refresh(conversation)).count("auto_closed") == 1
