"""Business calendars: when a supplier's SLA clock may run.

A :class:`BusinessCalendar` knows a time zone, the working hours of each
weekday (several intervals a day, or none), public holidays from the
``holidays`` package and dated exceptions (extra closed days, days with
special hours, or a holiday on which the supplier is open after all).

Everything that goes in or comes out is an aware UTC ``datetime``; the local
wall-clock arithmetic happens inside, once per local day, and is cached.

Wall-clock rule
    An interval boundary ``HH:MM`` on a local date is the *first instant at
    which the local clock shows that time or later*.  For ordinary times that
    is the obvious instant; for a time repeated when clocks go back it is the
    first occurrence; for a time skipped when clocks go forward it is the
    instant of the change (``02:30`` on the US spring-forward date is
    ``03:00`` EDT).  ``24:00`` is the next local midnight.  An interval whose
    end is earlier than its start (``22:00-06:00``) runs past midnight and
    belongs to the date it starts on.

Speed
    Open intervals of a local day are computed once (``lru_cache`` keyed on
    the date) as integer microseconds since the epoch.  A lazily grown prefix
    sum of business time per day makes :meth:`business_time_between` O(1)
    amortised and :meth:`add_business_time` O(log days); nothing loops per
    minute.  A calendar that is always open (the ``24x7`` calendar,
    :data:`CALENDAR_TIME`) short-circuits to plain arithmetic.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg

if TYPE_CHECKING:
    from ticketbridge.sla.models import CalendarConfig

__all__ = [
    "CALENDAR_TIME",
    "MINUTES_PER_DAY",
    "WEEKDAYS",
    "BusinessCalendar",
    "WorkInterval",
    "parse_interval",
    "weekday_index",
]

MINUTES_PER_DAY = 1440
#: Weekday keys, Monday first (``date.weekday()`` order).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)
_US_PER_S = 1_000_000
#: How far ahead ``add_business_time`` / ``next_open`` look before giving up.
_HORIZON_DAYS = 366 * 20
_GROW_CHUNK_DAYS = 64

_INTERVAL_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Span = tuple[int, int]


def _to_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: pass an aware UTC datetime")
    return (value - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True, order=True)
class WorkInterval:
    """Working hours within one local day, in minutes after local midnight.

    ``start`` is 0..1439 and ``end`` 1..1440 (1440 is ``24:00``).  When
    ``end < start`` the interval runs past midnight into the next day.
    """

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < MINUTES_PER_DAY:
            raise ValueError(f"start {self.start} is outside 00:00..23:59")
        if not 0 < self.end <= MINUTES_PER_DAY:
            raise ValueError(f"end {self.end} is outside 00:01..24:00")
        if self.end == self.start:
            raise ValueError("an interval must not start and end at the same time")

    @property
    def overnight(self) -> bool:
        """Whether the interval ends on the next local day."""
        return self.end < self.start

    @property
    def minutes(self) -> int:
        """Nominal length in wall-clock minutes (DST changes aside)."""
        return (self.end - self.start) % MINUTES_PER_DAY or MINUTES_PER_DAY

    @staticmethod
    def _fmt(minute: int) -> str:
        return f"{minute // 60:02d}:{minute % 60:02d}"

    def __str__(self) -> str:
        return f"{self._fmt(self.start)}-{self._fmt(self.end)}"

    @classmethod
    def parse(cls, text: str) -> WorkInterval:
        return parse_interval(text)


def parse_interval(text: str) -> WorkInterval:
    """Parse ``"HH:MM-HH:MM"``; ``24:00`` may end an interval, ``22:00-06:00`` runs overnight.

    Raises ``ValueError`` with a readable message.
    """
    match = _INTERVAL_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an interval like '08:00-17:30'")
    sh, sm, eh, em = (int(g) for g in match.groups())
    for hour, minute, which in ((sh, sm, "start"), (eh, em, "end")):
        if minute > 59 or hour > 24 or (hour == 24 and minute != 0):
            raise ValueError(f"{text!r}: {which} time {hour:02d}:{minute:02d} is not a time of day")
    if sh == 24:
        raise ValueError(f"{text!r}: an interval cannot start at 24:00")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise ValueError(f"{text!r}: start and end are equal; use '00:00-24:00' for a whole day")
    if end < start and end == 0:
        end = MINUTES_PER_DAY  # "17:00-00:00" means until midnight
    return WorkInterval(start, end)


def weekday_index(name: str) -> int:
    """``"mon"``/``"Monday"`` -> 0 ... ``"sun"`` -> 6; ``ValueError`` otherwise."""
    key = name.strip().lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _FULL_WEEKDAYS:
        return _FULL_WEEKDAYS.index(key)
    raise ValueError(f"unknown weekday {name!r}")


def _check_day(intervals: Sequence[WorkInterval], what: str) -> tuple[WorkInterval, ...]:
    """Sort one day's intervals; reject overlaps (touching intervals are fine)."""
    ordered = tuple(sorted(intervals))
    for before, after in itertools.pairwise(ordered):
        before_end = before.end + (MINUTES_PER_DAY if before.overnight else 0)
        if after.start < before_end:
            raise ValueError(f"{what}: intervals {before} and {after} overlap")
    return ordered


class BusinessCalendar:
    """Working hours in one time zone, with public holidays and dated exceptions.

    Precedence for a local date: ``closed_dates`` > ``special_hours`` (which
    also opens a public holiday) > public holiday (closed) > weekly hours.
    A special-hours entry with no intervals closes the date.

    Instances are immutable from the outside; their caches are safe to share
    between threads.
    """

    def __init__(
        self,
        *,
        weekly: Mapping[int, Sequence[WorkInterval]],
        timezone: str = "UTC",
        name: str = "",
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        closed_dates: Iterable[date] = (),
        special_hours: Mapping[date, Sequence[WorkInterval]] | None = None,
        cache_days: int = 16384,
    ) -> None:
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        self.name = name
        self.timezone = timezone
        bad_days = [d for d in weekly if not 0 <= d <= 6]
        if bad_days:
            raise ValueError(f"weekday indexes must be 0 (Monday)..6 (Sunday), got {bad_days}")
        self._weekly: tuple[tuple[WorkInterval, ...], ...] = tuple(
            _check_day(weekly.get(i, ()), WEEKDAYS[i]) for i in range(7)
        )
        self._closed: frozenset[date] = frozenset(closed_dates)
        special = dict(special_hours or {})
        both = sorted(self._closed & special.keys())
        if both:
            raise ValueError(f"dates both closed and with special hours: {both}")
        self._special: dict[date, tuple[WorkInterval, ...]] = {
            d: _check_day(ivs, d.isoformat()) for d, ivs in special.items()
        }
        if not any(self._weekly) and not any(self._special.values()):
            raise ValueError("the calendar has no working hours at all")
        self.holiday_country = holiday_country
        self.holiday_subdivision = holiday_subdivision if holiday_country else None
        self._holidays: holidays_pkg.HolidayBase | None = None
        if holiday_country:
            try:
                self._holidays = holidays_pkg.country_holidays(
                    holiday_country, subdiv=holiday_subdivision
                )
            except NotImplementedError as exc:
                raise ValueError(str(exc)) from exc

        full_day = (WorkInterval(0, MINUTES_PER_DAY),)
        self._always = (
            all(day == full_day for day in self._weekly)
            and self._holidays is None
            and not self._closed
            and not self._special
        )

        cached: Callable[[Callable[[date], Any]], Any] = functools.lru_cache(maxsize=cache_days)
        self._midnight: Callable[[date], int] = cached(self._compute_midnight)
        self._raw: Callable[[date], tuple[Span, ...]] = cached(self._compute_raw)
        self._spans: Callable[[date], tuple[Span, ...]] = cached(self._compute_spans)
        self._totals: Callable[[date], int] = cached(self._compute_total)

        # Prefix sums of business microseconds per local day, relative to an
        # origin day fixed at first use.  ``_fwd[i]`` is the business time of
        # days ``origin .. origin+i-1``; ``_bwd[k]`` of days ``origin-k .. origin-1``.
        # Both lists only ever grow, so readers need no lock.
        self._grow_lock = threading.Lock()
        self._origin: int | None = None
        self._fwd: list[int] = [0]
        self._bwd: list[int] = [0]
        self._fingerprint = self._compute_fingerprint()

    # -- construction helpers ---------------------------------------------------
    @classmethod
    def always_open(cls, name: str = "24x7", timezone: str = "UTC") -> BusinessCalendar:
        """A calendar open every minute of every day: business time == calendar time."""
        full = (WorkInterval(0, MINUTES_PER_DAY),)
        return cls(weekly=dict.fromkeys(range(7), full), timezone=timezone, name=name)

    @classmethod
    def from_config(cls, config: CalendarConfig) -> BusinessCalendar:
        """Build from a validated :class:`~ticketbridge.sla.models.CalendarConfig`."""
        return cls(
            name=config.name,
            timezone=config.timezone,
            weekly=config.weekly_hours(),
            holiday_country=config.holidays.country if config.holidays else None,
            holiday_subdivision=config.holidays.subdivision if config.holidays else None,
            closed_dates=config.closed_dates,
            special_hours=config.special_intervals(),
        )

    # -- description ----------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """A short digest of everything that decides open time (incl. holiday data version).

        Clock checkpoints record it so a changed calendar forces a recompute.
        """
        return self._fingerprint

    @property
    def is_always_open(self) -> bool:
        return self._always

    def _compute_fingerprint(self) -> str:
        parts = [
            self.timezone,
            ";".join(",".join(str(iv) for iv in day) for day in self._weekly),
            f"{self.holiday_country}/{self.holiday_subdivision}/{getattr(holidays_pkg, '__version__', '')}"
            if self._holidays is not None
            else "-",
            ",".join(sorted(d.isoformat() for d in self._closed)),
            ";".join(
                f"{d.isoformat()}={','.join(str(iv) for iv in ivs)}"
                for d, ivs in sorted(self._special.items())
            ),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self.name!r}, timezone={self.timezone!r})"

    def hours_on(self, day: date) -> tuple[WorkInterval, ...]:
        """The working intervals that start on local date ``day`` after all exceptions."""
        if day in self._closed:
            return ()
        special = self._special.get(day)
        if special is not None:
            return special
        if self._holidays is not None and day in self._holidays:
            return ()
        return self._weekly[day.weekday()]

    def holiday_name(self, day: date) -> str | None:
        """The public holiday on ``day`` from the ``holidays`` package, if any."""
        if self._holidays is None:
            return None
        name = self._holidays.get(day)
        return None if name is None else str(name)

    # -- local wall clock -> UTC ---------------------------------------------------
    def _first_instant(self, day: date, minute: int) -> int:
        """The first instant (epoch µs) at which the local clock shows ``day`` ``minute`` or later."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        first = wall.replace(tzinfo=self._tz)  # fold=0: first occurrence / pre-change offset
        us = _to_us(first)
        if _from_us(us).astimezone(self._tz).replace(tzinfo=None) == wall:
            return us
        # ``wall`` falls in a gap (clocks went forward): find the instant of the change.
        other = _to_us(wall.replace(tzinfo=self._tz, fold=1))
        lo, hi = sorted((us, other))
        lo_s, hi_s = lo // _US_PER_S, -(-hi // _US_PER_S)
        while hi_s - lo_s > 1:
            mid = (lo_s + hi_s) // 2
            local = _from_us(mid * _US_PER_S).astimezone(self._tz).replace(tzinfo=None)
            if local >= wall:
                hi_s = mid
            else:
                lo_s = mid
        return hi_s * _US_PER_S

    def _compute_midnight(self, day: date) -> int:
        return self._first_instant(day, 0)

    def _compute_raw(self, day: date) -> tuple[Span, ...]:
        """Open spans (epoch µs) of the intervals that start on ``day``, unclipped."""
        out: list[Span] = []
        for iv in self.hours_on(day):
            start = self._first_instant(day, iv.start)
            if iv.end == MINUTES_PER_DAY:
                end = self._midnight(day + _ONE_DAY)
            elif iv.overnight:
                end = self._first_instant(day + _ONE_DAY, iv.end)
            else:
                end = self._first_instant(day, iv.end)
            if end > start:
                out.append((start, end))
        return tuple(out)

    def _compute_spans(self, day: date) -> tuple[Span, ...]:
        """Open spans within the UTC window of local ``day``: sorted, disjoint, merged."""
        lo, hi = self._midnight(day), self._midnight(day + _ONE_DAY)
        pieces = sorted(
            (max(s, lo), min(e, hi))
            for s, e in self._raw(day - _ONE_DAY) + self._raw(day)
            if min(e, hi) > max(s, lo)
        )
        merged: list[Span] = []
        for s, e in pieces:
            if merged and s <= merged[-1][1]:
                if e > merged[-1][1]:
                    merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        return tuple(merged)

    def _compute_total(self, day: date) -> int:
        return sum(e - s for s, e in self._spans(day))

    def _day_of(self, at: datetime, us: int) -> date:
        """The local day whose UTC window ``[midnight(d), midnight(d+1))`` holds ``us``."""
        day = at.astimezone(self._tz).date()
        # Only differs from the local date in zones whose clocks go back across midnight.
        while us < self._midnight(day):
            day -= _ONE_DAY
        while us >= self._midnight(day + _ONE_DAY):
            day += _ONE_DAY
        return day

    # -- prefix sums ----------------------------------------------------------------
    def _prefix(self, ordinal: int) -> int:
        """Business µs from the origin day to the start of day ``ordinal`` (negative before it)."""
        origin = self._origin
        if origin is not None:
            i = ordinal - origin
            if 0 <= i < len(self._fwd):
                return self._fwd[i]
            if 0 < -i < len(self._bwd):
                return -self._bwd[-i]
        self._grow_to(ordinal)
        return self._prefix(ordinal)

    def _grow_to(self, ordinal: int) -> None:
        with self._grow_lock:
            if self._origin is None:
                self._origin = ordinal
            origin = self._origin
            if ordinal >= origin:
                while len(self._fwd) <= ordinal - origin:
                    day = date.fromordinal(origin + len(self._fwd) - 1)
                    self._fwd.append(self._fwd[-1] + self._totals(day))
            else:
                while len(self._bwd) <= origin - ordinal:
                    day = date.fromordinal(origin - len(self._bwd))
                    self._bwd.append(self._bwd[-1] + self._totals(day))

    def _position(self, at: datetime) -> tuple[int, date, int]:
        """(epoch µs, local day, business µs since the origin day) for ``at``."""
        us = _to_us(at)
        day = self._day_of(at, us)
        partial = 0
        for s, e in self._spans(day):
            if s >= us:
                break
            partial += min(e, us) - s
        return us, day, self._prefix(day.toordinal()) + partial

    def _day_reaching(self, target: int, from_ordinal: int) -> int:
        """The ordinal of the day ``d >= from_ordinal`` with ``prefix(d) < target <= prefix(d+1)``."""
        origin = self._origin
        assert origin is not None
        if target <= 0:
            # Inside the backward region, which already reaches ``from_ordinal``.
            return origin - bisect.bisect_right(self._bwd, -target)
        limit = max(from_ordinal, origin) + _HORIZON_DAYS
        while self._fwd[-1] < target:
            reach = origin + len(self._fwd) - 1
            if reach > limit:
                raise ValueError(
                    f"calendar {self.name!r} has no business time within {_HORIZON_DAYS} days"
                )
            self._grow_to(reach + _GROW_CHUNK_DAYS)
        return origin + bisect.bisect_left(self._fwd, target) - 1

    # -- public arithmetic ------------------------------------------------------
    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` lies in working hours (spans are half-open: open at start, closed at end)."""
        if self._always:
            _to_us(at)
            return True
        us = _to_us(at)
        for s, e in self._spans(self._day_of(at, us)):
            if s <= us < e:
                return True
            if s > us:
                break
        return False

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself when open, else the start of the next working interval."""
        us = _to_us(at)
        if self._always:
            return at.astimezone(UTC)
        day = self._day_of(at, us)
        for _ in range(_HORIZON_DAYS):
            for s, e in self._spans(day):
                if us < e:
                    return at.astimezone(UTC) if s <= us else _from_us(s)
            day += _ONE_DAY
        raise ValueError(f"calendar {self.name!r} has no business time within {_HORIZON_DAYS} days")

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in ``[start, end)``; ``timedelta(0)`` when ``end <= start``."""
        if self._always:
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError("naive datetime: pass aware UTC datetimes")
            return max(end - start, timedelta(0))
        if end <= start:
            return timedelta(0)
        return timedelta(microseconds=self._position(end)[2] - self._position(start)[2])

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant at which ``duration`` of working time has elapsed since ``start``.

        ``duration == 0`` returns ``start``.  When the allowance runs out exactly
        at closing time the closing instant is returned (not the next opening).
        Raises ``ValueError`` for a negative duration.
        """
        return self.add_business_times(start, (duration,))[0]

    def add_business_times(self, start: datetime, durations: Sequence[timedelta]) -> list[datetime]:
        """:meth:`add_business_time` for several durations from one ``start`` (one position lookup)."""
        zero = timedelta(0)
        if start.tzinfo is None:
            raise ValueError(f"naive datetime {start.isoformat()}: pass an aware UTC datetime")
        if any(d < zero for d in durations):
            raise ValueError(f"negative duration in {list(durations)}")
        if self._always:
            return [(start + d).astimezone(UTC) for d in durations]
        start_utc = start.astimezone(UTC)
        position: tuple[int, date, int] | None = None
        out: list[datetime] = []
        for duration in durations:
            if duration == zero:
                out.append(start_utc)
                continue
            if position is None:
                position = self._position(start)
            _, day, before = position
            out.append(self._reach(before + duration // _ONE_US, day.toordinal()))
        return out

    def _reach(self, target: int, from_ordinal: int) -> datetime:
        """The earliest instant at which the prefix sum reaches ``target`` (> prefix at start)."""
        found = self._day_reaching(target, from_ordinal)
        remaining = target - self._prefix(found)
        for s, e in self._spans(date.fromordinal(found)):
            if remaining <= e - s:
                return _from_us(s + remaining)
            remaining -= e - s
        raise AssertionError("prefix sums disagree with day spans")  # pragma: no cover

    def open_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The working intervals within ``[start, end)`` as UTC pairs (clipped to the range)."""
        if end <= start:
            return []
        s_us, e_us = _to_us(start), _to_us(end)
        if self._always:
            return [(start.astimezone(UTC), end.astimezone(UTC))]
        out: list[tuple[datetime, datetime]] = []
        day = self._day_of(start, s_us)
        last = self._day_of(end, e_us)
        while day <= last:
            for s, e in self._spans(day):
                lo, hi = max(s, s_us), min(e, e_us)
                if hi > lo:
                    if out and _to_us(out[-1][1]) == lo:
                        out[-1] = (out[-1][0], _from_us(hi))
                    else:
                        out.append((_from_us(lo), _from_us(hi)))
            day += _ONE_DAY
        return out


#: Plain elapsed time: the calendar used for targets with ``business: false``.
CALENDAR_TIME = BusinessCalendar.always_open("calendar-time")
