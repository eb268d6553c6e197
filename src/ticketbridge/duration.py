"""One duration grammar for configuration, escalation rules and SLA contracts.

Accepted forms (case and surrounding blanks do not matter):

* the short form: one or more ``<number><unit>`` parts, largest unit first, with units
  ``w`` (7 days), ``d`` (24 hours), ``h``, ``m``, ``s`` and ``ms`` -- ``250ms``, ``90s``,
  ``15m``, ``1h30m``, ``2d``, ``1d2h``, ``1.5h``; blanks between parts are allowed;
* ISO 8601: ``PT1H30M``, ``P1DT2H``, ``P2W``, ``PT0.5S`` (weeks, days, hours, minutes and
  seconds; years and months are refused because their length varies);
* a plain number, or a string holding only one: seconds (``30``, ``"0.25"``);
* a :class:`datetime.timedelta` as is.

Negative values, empty strings, booleans and anything else are refused with a
``ValueError`` that lists these forms.  :func:`format_duration` writes the short form back
(``timedelta(minutes=90)`` -> ``"1h30m"``), and ``parse_duration(format_duration(d)) == d``
for every non-negative whole number of milliseconds.

Business time
    The grammar only measures a *length*; it never decides which clock counts it.  Units are
    fixed lengths everywhere: ``d`` is always 24 hours and ``w`` 7 days.  Whether a length is
    counted in calendar time or business time is chosen by the setting that holds it, never
    by the unit:

    * engine and system settings (``engine.*``, ``systems.*.poll_interval``, ``timeout``,
      ``rules.tick``, ``notify`` timeouts) and rule timings (``after``, ``every``,
      ``age_over``, ``vendor_silent_for``, ``remaining_under``) are wall-clock time;
    * an SLA target (``sla.contracts[].targets``) is business time of the contract's calendar
      unless the target says ``business: false``.  Business time advances only inside the
      calendar's working intervals (weekly hours, minus holidays, plus special days), so
      ``"2d"`` as a business target means 48 *business hours*, not two business days: write
      ``"18h"`` for two 9-hour business days.

See ``docs/configuration/durations.md``.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "ACCEPTED_FORMS",
    "Duration",
    "Seconds",
    "format_duration",
    "format_span",
    "parse_duration",
]

#: Named in every error so the reader knows what to write instead.
ACCEPTED_FORMS = (
    "use e.g. 250ms, 90s, 15m, 1h30m, 2d, 1d2h, ISO 8601 PT1H30M or P1DT2H, "
    "or a plain number of seconds"
)

_NUMBER = r"\d+(?:\.\d+)?"
_UNIT_SECONDS: dict[str, float] = {
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_SHORT_ORDER = ("w", "d", "h", "m", "s", "ms")
_SHORT_PART = re.compile(rf"({_NUMBER})\s*(ms|w|d|h|m|s)\s*")
_PLAIN = re.compile(rf"^{_NUMBER}$")
_ISO = re.compile(
    rf"^p(?:(?P<w>{_NUMBER})w)?(?:(?P<d>{_NUMBER})d)?"
    rf"(?:t(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?)?$"
)


def _refuse(value: object, why: str = "is not a duration") -> ValueError:
    return ValueError(f"{value!r} {why}; {ACCEPTED_FORMS}")


def _from_seconds(value: object, seconds: float) -> timedelta:
    if not math.isfinite(seconds):
        raise _refuse(value)
    if seconds < 0:
        raise _refuse(value, "is negative: a duration cannot be negative")
    return timedelta(seconds=seconds)


def _parse_short(text: str) -> float | None:
    """Seconds of ``1h30m``-style text, or ``None`` when it is not that form."""
    pos, total, last = 0, 0.0, -1
    while pos < len(text):
        match = _SHORT_PART.match(text, pos)
        if match is None:
            return None
        rank = _SHORT_ORDER.index(match.group(2))
        if rank <= last:
            return None  # units repeated or out of order: "5m1h", "1h1h"
        last, pos = rank, match.end()
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return total if last >= 0 else None


def _parse_iso(text: str) -> float | None:
    """Seconds of an ISO 8601 duration (``PT1H30M``), or ``None`` when it is not one."""
    match = _ISO.match(text)
    if match is None or text in ("p", "pt") or text.endswith("t"):
        return None
    parts = match.groupdict()
    if not any(parts.values()):
        return None
    return sum(float(v) * _UNIT_SECONDS[k] for k, v in parts.items() if v)


def parse_duration(value: Any) -> timedelta:
    """A non-negative ``timedelta`` from any accepted form; ``ValueError`` naming them otherwise."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise _refuse(value, "is negative: a duration cannot be negative")
        return value
    if isinstance(value, bool):
        raise _refuse(value)
    if isinstance(value, int | float):
        return _from_seconds(value, float(value))
    if not isinstance(value, str):
        raise _refuse(value)
    text = value.strip().lower()
    if not text:
        raise _refuse(value, "is empty, not a duration")
    if text.startswith("-"):
        raise _refuse(value, "is negative: a duration cannot be negative")
    if _PLAIN.match(text):
        seconds: float | None = float(text)
    elif text.startswith("p"):
        seconds = _parse_iso(text)
    else:
        seconds = _parse_short(text)
    if seconds is None:
        raise _refuse(value)
    return _from_seconds(value, seconds)


def format_span(value: timedelta | None) -> str:
    """A time span as people read it in notes, reviews and the dashboard: ``1h 05m``,
    ``17m 30s``, ``2d 3h``; ``-`` for none (a negative span counts as zero)."""
    if value is None:
        return "-"
    seconds = int(max(value, timedelta(0)).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def format_duration(value: timedelta) -> str:
    """The short form: ``1h30m``, ``2d``, ``1d2h``, ``250ms``; ``0s`` for zero.

    Days are the largest unit written (weeks read back as days); below a millisecond is
    dropped.  A negative value (an overdue remainder) is written with a leading ``-``.
    """
    total_ms = round(value / timedelta(milliseconds=1))
    if total_ms == 0:
        return "0s"
    sign = "-" if total_ms < 0 else ""
    rest = abs(total_ms)
    out: list[str] = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return sign + "".join(out)


def _seconds(value: Any) -> float:
    return parse_duration(value).total_seconds()


#: A pydantic field holding a ``timedelta``, read from any accepted form, written as the
#: short form in JSON.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]

#: A pydantic field holding seconds as a ``float``, read from any accepted form (settings the
#: daemon hands to ``asyncio`` and HTTP clients as numbers).
Seconds = Annotated[float, BeforeValidator(_seconds)]
