"""Business calendar arithmetic: weekends, holidays, exceptions, DST, overnight hours, speed paths."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketbridge.sla.calendar import (
    CALENDAR_TIME,
    BusinessCalendar,
    WorkInterval,
    parse_interval,
    weekday_index,
)
from ticketbridge.sla.models import CalendarConfig

H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A local wall time (unambiguous in the tests) as aware UTC."""
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def build(**kwargs: object) -> BusinessCalendar:
    return CalendarConfig.model_validate({"name": "t", **kwargs}).build()


NY = build(
    timezone="America/New_York",
    hours={"mon-fri": ["08:00-12:00", "13:00-17:30"]},
    holidays={"country": "US", "subdivision": "NY"},
)
NY_9_5 = build(timezone="America/New_York", hours={"mon-fri": ["09:00-17:00"]})
BERLIN_BY = build(
    timezone="Europe/Berlin",
    hours={"mon-fri": ["09:00-17:00"]},
    holidays={"country": "DE", "subdivision": "BY"},
)
BERLIN_BE = build(
    timezone="Europe/Berlin",
    hours={"mon-fri": ["09:00-17:00"]},
    holidays={"country": "DE", "subdivision": "BE"},
)
SYDNEY = build(timezone="Australia/Sydney", hours={"weekdays": ["09:00-17:00"]})
SYDNEY_NSW = build(
    timezone="Australia/Sydney",
    hours={"weekdays": ["09:00-17:00"]},
    holidays={"country": "AU", "subdivision": "NSW"},
)
LONDON = build(
    timezone="Europe/London",
    hours={"mon-fri": ["09:00-17:30"]},
    holidays={"country": "GB", "subdivision": "ENG"},
)
NIGHTS = build(timezone="UTC", hours={"mon-fri": ["22:00-06:00"]})
NY_SUNDAYS = build(timezone="America/New_York", hours={"sun": ["00:00-24:00"]})
BERLIN_SUNDAYS = build(timezone="Europe/Berlin", hours={"sun": ["00:00-24:00"]})
SPECIAL = build(
    timezone="America/New_York",
    hours={"mon-fri": ["09:00-17:00"]},
    holidays={"country": "US"},
    closed_dates=["2026-12-31"],
    special_hours={"2026-12-24": ["09:00-12:00"], "2026-11-26": ["10:00-14:00"]},
)


# -- parsing ---------------------------------------------------------------------------------


def test_parse_interval_accepts_24_00_overnight_and_rejects_garbage() -> None:
    """Intervals parse to minutes; 24:00 ends a day, an earlier end runs overnight, nonsense fails."""
    assert parse_interval("08:00-17:30") == WorkInterval(480, 1050)
    assert parse_interval("00:00-24:00") == WorkInterval(0, 1440)
    assert parse_interval("17:00-00:00") == WorkInterval(1020, 1440)
    night = parse_interval("22:00-06:00")
    assert night.overnight
    assert night.minutes == 480
    assert str(night) == "22:00-06:00"
    for bad in ("8-17", "08:00-08:00", "24:00-01:00", "08:61-09:00", "25:00-26:00"):
        with pytest.raises(ValueError, match=r"interval|time|equal|24:00"):
            parse_interval(bad)


def test_weekday_index_accepts_short_and_full_names() -> None:
    """Weekday names map to date.weekday() numbers in any case; unknown names raise."""
    assert weekday_index("Mon") == 0
    assert weekday_index("sunday") == 6
    with pytest.raises(ValueError, match="unknown weekday"):
        weekday_index("funday")


def test_constructor_rejects_calendars_without_hours_and_overlaps() -> None:
    """A calendar with no working time at all, or overlapping intervals, is refused."""
    with pytest.raises(ValueError, match="no working hours"):
        BusinessCalendar(weekly={})
    with pytest.raises(ValueError, match="overlap"):
        BusinessCalendar(weekly={0: [WorkInterval(480, 720), WorkInterval(700, 900)]})
    with pytest.raises(ValueError, match="time zone"):
        BusinessCalendar(weekly={0: [WorkInterval(480, 720)]}, timezone="Mars/Olympus")


# -- ordinary days ---------------------------------------------------------------------------


def test_split_day_counts_only_working_intervals() -> None:
    """The lunch break does not count; adding time jumps over it."""
    mon_11 = local("America/New_York", 2026, 1, 5, 11)
    assert NY.business_time_between(mon_11, mon_11 + 3 * H) == 2 * H
    lunch = local("America/New_York", 2026, 1, 5, 12, 30)
    assert NY.add_business_time(lunch, 30 * M) == local("America/New_York", 2026, 1, 5, 13, 30)


def test_add_ending_at_closing_time_returns_the_closing_instant() -> None:
    """When the duration runs out exactly at closing time, the closing instant is returned."""
    mon_11 = local("America/New_York", 2026, 1, 5, 11)
    assert NY.add_business_time(mon_11, H) == local("America/New_York", 2026, 1, 5, 12)
    fri_1630 = local("America/New_York", 2026, 1, 9, 16, 30)
    assert NY.add_business_time(fri_1630, H) == local("America/New_York", 2026, 1, 9, 17, 30)


def test_weekend_is_skipped() -> None:
    """Friday afternoon plus hours lands on Monday morning; the weekend adds nothing."""
    fri = local("America/New_York", 2026, 1, 9, 16, 30)
    mon = local("America/New_York", 2026, 1, 12, 10)
    assert NY.add_business_time(fri, 3 * H) == mon
    assert NY.business_time_between(fri, mon) == 3 * H
    sat = local("America/New_York", 2026, 1, 10, 12)
    assert NY.business_time_between(sat, sat + 24 * H) == timedelta(0)


def test_zero_and_reversed_ranges_are_zero() -> None:
    """between() of an empty or reversed range is zero; adding zero returns the start."""
    t = local("America/New_York", 2026, 1, 5, 10)
    assert NY.business_time_between(t, t) == timedelta(0)
    assert NY.business_time_between(t + H, t) == timedelta(0)
    sat = local("America/New_York", 2026, 1, 10, 12)
    assert NY.add_business_time(sat, timedelta(0)) == sat


def test_bad_arguments_raise() -> None:
    """Naive datetimes and negative durations are programming errors and raise ValueError."""
    with pytest.raises(ValueError, match="naive"):
        NY.is_open(datetime(2026, 1, 5, 10))
    with pytest.raises(ValueError, match="negative"):
        NY.add_business_time(utc(2026, 1, 5), -M)


def test_is_open_and_next_open_use_half_open_intervals() -> None:
    """Open at the opening instant, closed at the closing instant; next_open finds the next start."""
    noon = local("America/New_York", 2026, 1, 5, 12)
    assert NY.is_open(noon - US)
    assert not NY.is_open(noon)
    assert NY.is_open(local("America/New_York", 2026, 1, 5, 13))
    assert NY.next_open(noon) == local("America/New_York", 2026, 1, 5, 13)
    assert NY.next_open(noon - US) == noon - US
    sat = local("America/New_York", 2026, 1, 10, 9)
    assert NY.next_open(sat) == local("America/New_York", 2026, 1, 12, 8)


def test_microseconds_are_exact() -> None:
    """Arithmetic is exact to the microsecond, not rounded to minutes or seconds."""
    start = local("America/New_York", 2026, 1, 5, 8) + timedelta(microseconds=123_457)
    odd = timedelta(hours=5, seconds=7, microseconds=999_999)
    end = NY.add_business_time(start, odd)
    assert NY.business_time_between(start, end) == odd
    assert end == local("America/New_York", 2026, 1, 5, 14, 0, 8) + timedelta(microseconds=123_456)


# -- holidays and exceptions -------------------------------------------------------------------


def test_us_ny_holiday_is_closed() -> None:
    """Martin Luther King Jr. Day (US/NY) is closed: Friday + 3h ends on Tuesday."""
    assert NY.holiday_name(date(2026, 1, 19)) == "Martin Luther King Jr. Day"
    fri = local("America/New_York", 2026, 1, 16, 16, 30)
    tue = local("America/New_York", 2026, 1, 20, 10)
    assert NY.add_business_time(fri, 3 * H) == tue
    assert NY.business_time_between(fri, tue) == 3 * H
    assert not NY.is_open(local("America/New_York", 2026, 1, 19, 10))


def test_subdivision_holidays_differ_by_state() -> None:
    """Epiphany (6 Jan) closes Bavaria but not Berlin."""
    day_start = local("Europe/Berlin", 2026, 1, 6, 0)
    assert BERLIN_BY.business_time_between(day_start, day_start + 24 * H) == timedelta(0)
    assert BERLIN_BE.business_time_between(day_start, day_start + 24 * H) == 8 * H


def test_gb_eng_bank_holiday() -> None:
    """The late summer bank holiday (England) is closed; the Friday before is a full day."""
    fri = local("Europe/London", 2026, 8, 28, 0)
    assert LONDON.business_time_between(fri, fri + 4 * 24 * H) == timedelta(hours=8, minutes=30)
    assert LONDON.holiday_name(date(2026, 8, 31)) is not None


def test_special_hours_closed_dates_and_open_holiday() -> None:
    """Special hours shorten a day or open a holiday; closed dates close a working day."""
    eve = local("America/New_York", 2026, 12, 24, 0)
    assert SPECIAL.business_time_between(eve, eve + 24 * H) == 3 * H
    thanksgiving = local("America/New_York", 2026, 11, 26, 0)
    assert SPECIAL.business_time_between(thanksgiving, thanksgiving + 24 * H) == 4 * H
    christmas = local("America/New_York", 2026, 12, 25, 0)
    assert SPECIAL.business_time_between(christmas, christmas + 24 * H) == timedelta(0)
    nye = local("America/New_York", 2026, 12, 31, 0)
    assert SPECIAL.business_time_between(nye, nye + 24 * H) == timedelta(0)
    assert SPECIAL.hours_on(date(2026, 12, 24)) == (WorkInterval(540, 720),)
    # 16:00 on the 23rd + 2h: 1h that day, 1h on the short 24th.
    start = local("America/New_York", 2026, 12, 23, 16)
    assert SPECIAL.add_business_time(start, 2 * H) == local("America/New_York", 2026, 12, 24, 10)


# -- daylight saving time ------------------------------------------------------------------


def test_us_eastern_spring_forward_business_hours() -> None:
    """Across the March change, Monday 09:00 is 13:00 UTC (EDT), not 14:00."""
    fri = local("America/New_York", 2026, 3, 6, 16)
    assert fri == utc(2026, 3, 6, 21)
    assert NY_9_5.add_business_time(fri, 2 * H) == utc(2026, 3, 9, 14)
    assert NY_9_5.business_time_between(fri, utc(2026, 3, 9, 14)) == 2 * H


def test_us_eastern_fall_back_business_hours() -> None:
    """Across the November change, Monday 10:00 is 15:00 UTC (EST)."""
    fri = local("America/New_York", 2026, 10, 30, 16)
    assert fri == utc(2026, 10, 30, 20)
    assert NY_9_5.add_business_time(fri, 2 * H) == utc(2026, 11, 2, 15)


def test_us_eastern_local_day_lengths_on_dst_sundays() -> None:
    """A whole local day lasts 23 h in March and 25 h in November."""
    week_march = NY_SUNDAYS.business_time_between(utc(2026, 3, 7), utc(2026, 3, 10))
    week_november = NY_SUNDAYS.business_time_between(utc(2026, 10, 31), utc(2026, 11, 3))
    assert (week_march, week_november) == (23 * H, 25 * H)


def test_us_eastern_boundaries_in_the_gap_and_the_repeat() -> None:
    """Skipped wall times map to the change instant; repeated ones to their first occurrence."""
    spring = build(
        timezone="America/New_York",
        hours={},
        special_hours={"2026-03-08": ["01:00-04:00"], "2026-03-15": ["09:00-10:00"]},
    )
    assert spring.open_intervals(utc(2026, 3, 8), utc(2026, 3, 9)) == [
        (utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
    ]
    gap = build(timezone="America/New_York", hours={"sun": ["02:30-03:30"]})
    assert gap.open_intervals(utc(2026, 3, 8), utc(2026, 3, 9)) == [
        (utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 30))
    ]
    repeat = build(timezone="America/New_York", hours={"sun": ["01:00-03:00"]})
    assert repeat.business_time_between(utc(2026, 11, 1), utc(2026, 11, 2)) == 3 * H
    early = build(timezone="America/New_York", hours={"sun": ["00:00-01:30"]})
    assert early.open_intervals(utc(2026, 11, 1), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5, 30))
    ]


def test_berlin_dst_both_directions() -> None:
    """Europe/Berlin: Monday 10:00 is 08:00 UTC after March and 09:00 UTC after October."""
    assert BERLIN_BY.add_business_time(utc(2026, 3, 27, 15), 2 * H) == utc(2026, 3, 30, 8)
    assert BERLIN_BY.add_business_time(utc(2026, 10, 23, 14), 2 * H) == utc(2026, 10, 26, 9)
    assert BERLIN_SUNDAYS.business_time_between(utc(2026, 3, 28), utc(2026, 3, 31)) == 23 * H
    assert BERLIN_SUNDAYS.business_time_between(utc(2026, 10, 24), utc(2026, 10, 27)) == 25 * H
    assert BERLIN_SUNDAYS.add_business_time(utc(2026, 3, 28, 23), 23 * H) == utc(2026, 3, 29, 22)


def test_sydney_dst_both_directions_and_across_utc_midnight() -> None:
    """Australia/Sydney (southern hemisphere): April ends DST, October starts it."""
    # April: Friday 16:00 AEDT (05:00Z) + 2h -> Monday 10:00 AEST = Monday 00:00Z.
    assert SYDNEY.add_business_time(utc(2026, 4, 3, 5), 2 * H) == utc(2026, 4, 6, 0)
    # October: Friday 16:00 AEST (06:00Z) + 2h -> Monday 10:00 AEDT = Sunday 23:00Z.
    assert SYDNEY.add_business_time(utc(2026, 10, 2, 6), 2 * H) == utc(2026, 10, 4, 23)
    # A Sydney business day straddles UTC midnight: 09:00-17:00 AEST is 23:00Z-07:00Z.
    assert SYDNEY.business_time_between(utc(2026, 6, 1), utc(2026, 6, 1, 12)) == 7 * H
    assert SYDNEY.business_time_between(utc(2026, 5, 31, 22), utc(2026, 6, 1)) == H
    assert SYDNEY.is_open(utc(2026, 5, 31, 23))
    assert not SYDNEY.is_open(utc(2026, 5, 31, 22, 59))


def test_sydney_holidays_around_easter_and_labour_day() -> None:
    """NSW Good Friday, Easter Monday and Labour Day are skipped along with the DST change."""
    assert SYDNEY_NSW.add_business_time(utc(2026, 4, 2, 5), 2 * H) == utc(2026, 4, 7, 0)
    assert SYDNEY_NSW.business_time_between(utc(2026, 4, 2, 5), utc(2026, 4, 7, 0)) == 2 * H
    assert SYDNEY_NSW.add_business_time(utc(2026, 10, 2, 6), 2 * H) == utc(2026, 10, 5, 23)


def test_dst_changing_at_midnight() -> None:
    """America/Santiago changes clocks at midnight: the day boundary itself moves."""
    saturdays = build(timezone="America/Santiago", hours={"sat": ["00:00-24:00"]})
    sundays = build(timezone="America/Santiago", hours={"sun": ["00:00-24:00"]})
    # April: Saturday 24:00 -> 23:00, so Saturday lasts 25 h.
    assert saturdays.open_intervals(utc(2026, 4, 3), utc(2026, 4, 6)) == [
        (utc(2026, 4, 4, 3), utc(2026, 4, 5, 4))
    ]
    # September: Sunday 00:00 does not exist; Sunday starts at the change and lasts 23 h.
    assert sundays.open_intervals(utc(2026, 9, 4), utc(2026, 9, 8)) == [
        (utc(2026, 9, 6, 4), utc(2026, 9, 7, 3))
    ]
    assert sundays.add_business_time(utc(2026, 9, 5), 23 * H) == utc(2026, 9, 7, 3)


def test_overnight_shift_belongs_to_the_day_it_starts() -> None:
    """22:00-06:00 on weekdays: Friday's shift runs into Saturday; Monday 00:00-06:00 is closed."""
    assert NIGHTS.is_open(utc(2026, 1, 10, 3))  # Saturday morning, Friday's shift
    assert not NIGHTS.is_open(utc(2026, 1, 5, 3))  # Monday morning, no Sunday shift
    assert NIGHTS.business_time_between(utc(2026, 1, 4), utc(2026, 1, 6)) == 2 * H
    assert NIGHTS.add_business_time(utc(2026, 1, 9, 21), 9 * H) == utc(2026, 1, 12, 23)


# -- fast paths and caches -----------------------------------------------------------------------


def test_calendar_time_is_plain_arithmetic() -> None:
    """The 24x7 calendar counts every microsecond, weekends included."""
    start = utc(2026, 1, 9, 16, 30)
    assert CALENDAR_TIME.is_always_open
    assert CALENDAR_TIME.add_business_time(start, 3 * 24 * H) == utc(2026, 1, 12, 16, 30)
    assert CALENDAR_TIME.business_time_between(start, start + 50 * H) == 50 * H
    assert build(hours="24x7").is_always_open


def test_general_path_agrees_with_fast_path_for_a_full_week() -> None:
    """A 24x7 calendar forced onto the general path (a no-op special date) gives plain time."""
    slow = build(hours="24x7", special_hours={"2030-01-01": ["00:00-24:00"]})
    assert not slow.is_always_open
    start = utc(2026, 2, 27, 13, 5, 7)
    assert slow.business_time_between(start, start + 100 * H) == 100 * H
    assert slow.add_business_time(start, 100 * H) == start + 100 * H


def test_prefix_sums_grow_in_both_directions() -> None:
    """Asking about the future first and the past afterwards gives the same answers as fresh."""
    cal = build(
        timezone="America/New_York",
        hours={"mon-fri": ["09:00-17:00"]},
        holidays={"country": "US"},
    )
    fresh = build(
        timezone="America/New_York",
        hours={"mon-fri": ["09:00-17:00"]},
        holidays={"country": "US"},
    )
    far = utc(2027, 6, 1)
    assert cal.add_business_time(far, 100 * H) == fresh.add_business_time(far, 100 * H)
    past = utc(2025, 2, 3, 15)
    assert cal.add_business_time(past, 300 * H) == fresh.add_business_time(past, 300 * H)
    assert cal.business_time_between(past, far) == fresh.business_time_between(past, far)


def test_fingerprint_changes_with_definition() -> None:
    """Equal definitions share a fingerprint; a changed holiday subdivision changes it."""
    assert (
        BERLIN_BY.fingerprint
        == build(
            timezone="Europe/Berlin",
            hours={"mon-fri": ["09:00-17:00"]},
            holidays={"country": "DE", "subdivision": "BY"},
        ).fingerprint
    )
    assert BERLIN_BY.fingerprint != BERLIN_BE.fingerprint


# -- properties ------------------------------------------------------------------------------------

CALENDARS = [NY, BERLIN_BY, SYDNEY_NSW, NIGHTS, NY_SUNDAYS, LONDON, SPECIAL]
instants = st.integers(
    min_value=int(utc(2026, 1, 1).timestamp() * 1_000_000),
    max_value=int(utc(2027, 1, 1).timestamp() * 1_000_000),
).map(lambda us: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us))
durations = st.integers(min_value=0, max_value=20 * 24 * 3600 * 1_000_000).map(
    lambda us: timedelta(microseconds=us)
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(cal=st.sampled_from(CALENDARS), start=instants, duration=durations)
def test_between_inverts_add(cal: BusinessCalendar, start: datetime, duration: timedelta) -> None:
    """between(start, add(start, d)) == d, and nothing is open in between twice."""
    end = cal.add_business_time(start, duration)
    assert end >= start
    assert cal.business_time_between(start, end) == duration
    if duration > timedelta(0):
        # ``end`` is the earliest such instant: one microsecond earlier is not enough.
        assert cal.business_time_between(start, end - US) == duration - US


@settings(max_examples=60, deadline=None)
@given(
    cal=st.sampled_from(CALENDARS),
    start=instants,
    many=st.lists(durations, min_size=1, max_size=5),
)
def test_add_many_equals_add_each(
    cal: BusinessCalendar, start: datetime, many: list[timedelta]
) -> None:
    """add_business_times(start, ds) is [add_business_time(start, d) for d in ds]."""
    assert cal.add_business_times(start, many) == [cal.add_business_time(start, d) for d in many]


@FAST
@given(cal=st.sampled_from(CALENDARS), start=instants, span=durations)
def test_add_inverts_between(cal: BusinessCalendar, start: datetime, span: timedelta) -> None:
    """add(start, between(start, end)) is the earliest instant with the same business time."""
    end = start + span
    used = cal.business_time_between(start, end)
    reached = cal.add_business_time(start, used)
    assert start <= reached <= end
    assert cal.business_time_between(reached, end) == timedelta(0)


@FAST
@given(cal=st.sampled_from(CALENDARS), points=st.lists(instants, min_size=3, max_size=3))
def test_between_is_additive(cal: BusinessCalendar, points: list[datetime]) -> None:
    """between(a, c) == between(a, b) + between(b, c) for a <= b <= c."""
    a, b, c = sorted(points)
    assert cal.business_time_between(a, c) == cal.business_time_between(
        a, b
    ) + cal.business_time_between(b, c)


@FAST
@given(cal=st.sampled_from(CALENDARS), at=instants)
def test_is_open_matches_between(cal: BusinessCalendar, at: datetime) -> None:
    """is_open(t) exactly when the microsecond starting at t counts, and next_open is open."""
    assert cal.is_open(at) == (cal.business_time_between(at, at + US) == US)
    nxt = cal.next_open(at)
    assert nxt >= at
    assert cal.is_open(nxt)
    assert cal.business_time_between(at, nxt) == timedelta(0)


def _first_instant_by_scan(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """Reference: scan UTC minutes for the first one whose local wall time is >= the target."""
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    # Start well before any candidate: offsets within one day differ by at most an hour.
    probe = wall.replace(tzinfo=zone).astimezone(UTC) - 3 * H
    while probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += M
    return probe


def _reference_between(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    zone = ZoneInfo(cal.timezone)
    total = timedelta(0)
    day = start.astimezone(zone).date() - timedelta(days=2)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        for iv in cal.hours_on(day):
            lo = _first_instant_by_scan(zone, day, iv.start)
            end_day = day + timedelta(days=1) if iv.overnight or iv.end == 1440 else day
            hi = _first_instant_by_scan(zone, end_day, iv.end % 1440)
            overlap = min(hi, end) - max(lo, start)
            total += max(overlap, timedelta(0))
        day += timedelta(days=1)
    return total


DST_WEEKS = [
    utc(2026, 3, 6),
    utc(2026, 3, 27),
    utc(2026, 4, 2),
    utc(2026, 10, 1),
    utc(2026, 10, 29),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cal=st.sampled_from([NY, BERLIN_BY, SYDNEY_NSW, NIGHTS, NY_SUNDAYS, BERLIN_SUNDAYS]),
    week=st.sampled_from(DST_WEEKS),
    offset=st.integers(min_value=0, max_value=4 * 24 * 60),
    length=st.integers(min_value=0, max_value=3 * 24 * 60),
)
def test_between_matches_brute_force_around_dst(
    cal: BusinessCalendar, week: datetime, offset: int, length: int
) -> None:
    """Around DST changes, between() equals a minute-scanning reference of the wall-clock rule."""
    start = week + offset * M + timedelta(microseconds=17)
    end = start + length * M
    assert cal.business_time_between(start, end) == _reference_between(cal, start, end)
