"""Fire times, computed by cronsim in zoneinfo's time zones: across DST changes, on a leap day,
for intervals; and which fire times a late scheduler fires (the catch-up policy)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spoold.errors import InvalidArgument
from spoold.schedules import CatchUp, Timing, plan

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(tz: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=tz, fold=fold).astimezone(UTC)  # type: ignore[misc]


def test_berlin_spring_forward_fires_a_skipped_time_once_at_the_first_minute_after_the_gap() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    t = Timing(cron="30 2 * * *", time_zone="Europe/Berlin")
    fires = t.after(local(BERLIN, 2026, 3, 28, 12), 3)
    assert fires == [
        local(BERLIN, 2026, 3, 29, 3),
        local(BERLIN, 2026, 3, 30, 2, 30),
        local(BERLIN, 2026, 3, 31, 2, 30),
    ]
    assert fires[1] - fires[0] == timedelta(hours=23, minutes=30)


def test_berlin_fall_back_fires_a_repeated_time_once() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, the job runs once.
    t = Timing(cron="30 2 * * *", time_zone="Europe/Berlin")
    fires = t.after(local(BERLIN, 2026, 10, 24, 12), 2)
    assert fires == [local(BERLIN, 2026, 10, 25, 2, 30), local(BERLIN, 2026, 10, 26, 2, 30)]
    assert fires[1] - fires[0] == timedelta(hours=25)


def test_new_york_hourly_fires_every_real_hour_across_both_changes() -> None:
    t = Timing(cron="@hourly", time_zone="America/New_York")
    # 2026-03-08 02:00 EST becomes 03:00 EDT: the hour 02:xx does not exist.
    spring = t.after(local(NEW_YORK, 2026, 3, 8, 0, 30), 3)
    assert [f.astimezone(NEW_YORK).hour for f in spring] == [1, 3, 4]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(spring))
    # 2026-11-01 02:00 EDT becomes 01:00 EST: 01:00 happens twice, an hour apart, both fire.
    fall = t.after(local(NEW_YORK, 2026, 11, 1, 0, 30), 3)
    assert fall == [
        local(NEW_YORK, 2026, 11, 1, 1),
        local(NEW_YORK, 2026, 11, 1, 1, fold=1),
        local(NEW_YORK, 2026, 11, 1, 2),
    ]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(fall))


def test_new_york_daily_keeps_its_wall_clock_time_across_the_change() -> None:
    t = Timing(cron="0 9 * * *", time_zone="America/New_York")
    fires = t.after(local(NEW_YORK, 2026, 3, 7, 0), 2)
    assert [f.astimezone(NEW_YORK).hour for f in fires] == [9, 9]
    assert fires[1] - fires[0] == timedelta(hours=23)  # the day of the change is 23 hours long
    assert [f.hour for f in fires] == [14, 13]  # in UTC


def test_leap_day_fires_only_in_leap_years() -> None:
    t = Timing(cron="0 12 29 2 *", time_zone="Europe/Berlin")
    fires = t.after(datetime(2025, 1, 1, tzinfo=UTC), 3)
    assert fires == [local(BERLIN, 2028, 2, 29, 12), local(BERLIN, 2032, 2, 29, 12), local(BERLIN, 2036, 2, 29, 12)]


def test_six_fields_have_seconds_first_and_macros_expand() -> None:
    start = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert Timing(cron="*/20 * * * * *").after(start, 3) == [start + timedelta(seconds=s) for s in (20, 40, 60)]
    assert Timing(cron="@daily").after(start, 1) == [datetime(2026, 5, 2, tzinfo=UTC)]
    assert Timing(cron="@Weekly").after(start, 1) == [datetime(2026, 5, 3, tzinfo=UTC)]  # a Sunday


def test_intervals_fire_at_multiples_since_the_epoch_whatever_the_time_zone() -> None:
    t = Timing(every=timedelta(seconds=30), time_zone="Asia/Kolkata")
    start = datetime(2026, 5, 1, 10, 0, 10, tzinfo=UTC)
    assert t.after(start, 2) == [start.replace(second=30), start.replace(minute=1, second=0)]
    assert t.at_or_before(start.replace(second=30), 2) == [start.replace(second=30), start.replace(second=0)]


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        (Timing(cron="* * * *"), "cron"),
        (Timing(cron="* * * * * * * *"), "cron"),
        (Timing(cron="61 * * * *"), "cron"),
        (Timing(cron="0 0 30 2 *"), "cron"),
        (Timing(cron="@reboot"), "cron"),
        (Timing(cron="0 3 * * *", time_zone="Mars/Olympus"), "time_zone"),
        (Timing(cron="0 3 * * *", time_zone="../../etc/passwd"), "time_zone"),
        (Timing(every=timedelta(milliseconds=999)), "interval"),
        (Timing(every=timedelta(days=367)), "interval"),
    ],
)
def test_bad_timings_are_refused_naming_the_field(timing: Timing, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        timing.check("schedule.")
    assert caught.value.field == f"schedule.{field}"


MINUTE = Timing(cron="* * * * *")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)


def test_on_time_fire_times_all_fire_whatever_the_policy() -> None:
    every_second = Timing(every=timedelta(seconds=1))
    for policy in CatchUp:
        p = plan(every_second, T0, T0 + timedelta(seconds=3.5), policy, 100, GRACE)
        assert p.fires == tuple(T0 + timedelta(seconds=s) for s in range(4)) and not p.dropped
        assert p.next_fire_at == T0 + timedelta(seconds=4)


def test_after_a_stop_latest_fires_once_all_fires_each_missed_time_and_none_fires_nothing() -> None:
    back = T0 + timedelta(minutes=5, seconds=30)  # 12:01 .. 12:05 were missed
    latest = plan(MINUTE, T0 + timedelta(minutes=1), back, CatchUp.LATEST, 100, GRACE)
    assert latest.fires == (T0 + timedelta(minutes=5),) and latest.dropped
    every = plan(MINUTE, T0 + timedelta(minutes=1), back, CatchUp.ALL, 100, GRACE)
    assert every.fires == tuple(T0 + timedelta(minutes=m) for m in range(1, 6)) and not every.dropped
    bounded = plan(MINUTE, T0 + timedelta(minutes=1), back, CatchUp.ALL, 2, GRACE)
    assert bounded.fires == (T0 + timedelta(minutes=4), T0 + timedelta(minutes=5)) and bounded.dropped
    nothing = plan(MINUTE, T0 + timedelta(minutes=1), back, CatchUp.NONE, 100, GRACE)
    assert nothing.fires == () and nothing.dropped
    assert {p.next_fire_at for p in (latest, every, bounded, nothing)} == {T0 + timedelta(minutes=6)}


def test_a_long_outage_costs_the_fire_times_kept_not_every_one_missed() -> None:
    every_second = Timing(cron="* * * * * *")
    back = T0 + timedelta(days=30)  # 2.6 million fire times missed
    p = plan(every_second, T0, back, CatchUp.ALL, 3, GRACE)
    assert p.fires[-1] == back and len(p.fires) == 3 + 11  # 3 missed, and 11 on time (the last 10 s)
