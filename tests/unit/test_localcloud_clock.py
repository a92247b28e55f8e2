"""The local cloud's clock and schedule expressions, without a cloud.

Given a controlled clock, waits end only when advancing passes them, and timed sources run in time order; given
EventBridge's rate and cron expressions, the next firing is the one AWS documents.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from mlloop.localcloud.clock import Clock, parse_duration
from mlloop.localcloud.schedule_expressions import next_run, parse

T0 = datetime(2026, 12, 2, 16, 20, 30, tzinfo=UTC)  # a Wednesday


class Recorder:
    name = "recorder"

    def __init__(self, every: timedelta) -> None:
        self.every = every
        self.runs: list[datetime] = []

    def next_due(self, after: datetime) -> datetime | None:
        return T0 + self.every * ((after - T0) // self.every + 1)

    def run_due(self, due: datetime, now: datetime) -> None:
        self.runs.append(now)


def test_a_wait_ends_only_when_the_clock_is_advanced_past_it() -> None:
    clock = Clock(time_scale=1.0)
    clock.take_control(T0)
    ended: list[datetime] = []
    sleeper = threading.Thread(target=lambda: (clock.sleep(600), ended.append(clock.now())))
    sleeper.start()
    while clock.waiting() < 1:
        threading.Event().wait(0.01)

    clock.advance(599)
    before = list(ended)
    clock.advance(1)
    sleeper.join(timeout=10)

    assert before == [] and ended == [T0 + timedelta(seconds=600)]


def test_sources_run_at_each_due_instant_with_that_instant_as_now() -> None:
    clock = Clock(time_scale=1.0)
    clock.take_control(T0)
    source = Recorder(timedelta(minutes=20))
    clock.add_source(source)

    assert clock.advance(timedelta(hours=1)) == T0 + timedelta(hours=1)
    assert source.runs == [T0 + timedelta(minutes=m) for m in (20, 40, 60)]


def test_released_waits_continue_on_scaled_time() -> None:
    clock = Clock(time_scale=0.001)
    clock.take_control(T0)
    done = threading.Event()
    threading.Thread(target=lambda: (clock.sleep(1000), done.set())).start()
    while clock.waiting() < 1:
        threading.Event().wait(0.01)

    clock.release()

    assert done.wait(10)


def test_advancing_an_uncontrolled_or_backwards_clock_is_refused() -> None:
    clock = Clock(time_scale=0.01)
    with pytest.raises(RuntimeError):
        clock.advance(1)
    clock.take_control(T0)
    with pytest.raises(ValueError):
        clock.advance(-1)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400), ("2w", 1209600)]
)
def test_durations_read_as_the_advance_verb_takes_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_a_rate_fires_one_interval_after_creation_and_every_interval_after() -> None:
    assert next_run("rate(1 hour)", T0, T0) == T0 + timedelta(hours=1)
    assert next_run("rate(1 hour)", T0 + timedelta(hours=1), T0) == T0 + timedelta(hours=2)
    assert next_run("rate(7 days)", T0 + timedelta(days=1), T0) == T0 + timedelta(days=7)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(30 3 * * ? *)", datetime(2026, 12, 3, 3, 30, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2026, 12, 2, 16, 30, tzinfo=UTC)),
        ("cron(0 12 ? * MON-FRI *)", datetime(2026, 12, 3, 12, 0, tzinfo=UTC)),
        ("cron(0 8 ? * 1 *)", datetime(2026, 12, 6, 8, 0, tzinfo=UTC)),  # 1 is Sunday
        ("cron(0 0 L * ? *)", datetime(2026, 12, 31, 0, 0, tzinfo=UTC)),
        ("cron(0 9 ? * 6L *)", datetime(2026, 12, 25, 9, 0, tzinfo=UTC)),  # the last Friday
        ("cron(0 9 ? * 2#1 *)", datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),  # the first Monday
        ("cron(0 10 1 JAN ? 2028)", datetime(2028, 1, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_cron_fires_at_the_next_matching_minute(expression: str, expected: datetime) -> None:
    assert next_run(expression, T0, T0) == expected


@pytest.mark.parametrize(
    "expression", ["rate(1 hours)", "rate(5 minute)", "rate(0 minutes)", "cron(0 12 * * * *)", "cron(0 12 * *)"]
)
def test_expressions_aws_refuses_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        parse(expression)


def test_the_nearest_weekday_wildcard_is_refused_as_not_emulated() -> None:
    with pytest.raises(ValueError, match="not emulated"):
        parse("cron(0 9 15W * ? *)")
