"""Configuration models of the ``sla`` section: calendars, contracts, ball-in-court rules.

Every model is frozen and refuses unknown keys.  Errors carry a message and,
where one helps, a hint; :func:`problems_from_validation_error` turns a
pydantic ``ValidationError`` into ``(yaml_path, message, hint)`` triples and
:func:`validate_sla_config` adds the cross-reference checks (unknown calendar,
unknown priority, ambiguous contracts), so ``ticketbridge check-config`` can
list every problem at once.

Durations
    A target is ``minutes: 240`` or ``duration: "4h"`` (the grammar of
    :mod:`ticketbridge.duration`: ``"1h30m"``, ``"2d"``, ``"PT4H"``, ...), or the bare
    shorthand ``resolution: "4h"`` (a bare *number* there means minutes).
    Units are fixed lengths: ``d`` is 24 hours and ``w`` 7 days.  With
    ``business: true`` (the default) the duration is counted in business time
    of the contract's calendar, so ``"2d"`` means 48 *business hours*, not two
    business days; write ``"18h"`` for two 9-hour business days.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ticketbridge.domain import StatusClass
from ticketbridge.duration import parse_duration as _parse_duration
from ticketbridge.errors import ConfigError
from ticketbridge.sla.calendar import (
    MINUTES_PER_DAY,
    WEEKDAYS,
    BusinessCalendar,
    WorkInterval,
    parse_interval,
    weekday_index,
)

__all__ = [
    "CLASS_BALLS",
    "AckBy",
    "Ball",
    "BallConfig",
    "BallRule",
    "CalendarConfig",
    "ContractConfig",
    "HolidaySource",
    "Priorities",
    "PriorityTargets",
    "Problem",
    "SideStatus",
    "SlaConfig",
    "Target",
    "load_sla_config",
    "parse_duration",
    "problems_from_validation_error",
    "select_contract",
    "sla_config_problems",
    "validate_sla_config",
]

#: ``(yaml_path, message, hint)`` as :class:`~ticketbridge.errors.ConfigError` expects.
Problem = tuple[str, str, str]
#: Priorities each vendor system knows (``None``: do not check), or one set for all.
Priorities = Mapping[str, Collection[str] | None] | Collection[str]

AckBy = Literal["first_public_comment", "in_progress", "assigned"]
#: Who may end the resolution clock: the vendor only (its ticket resolved or closed), or also
#: the MSP (the PSA ticket closed: vendors reached by e-mail seldom say "resolved" in words).
ResolvedBy = Literal["vendor", "vendor_or_msp"]


class Ball(StrEnum):
    """Whose move it is on a linked ticket; only ``VENDOR`` runs the supplier's clocks."""

    VENDOR = "vendor"
    MSP = "msp"
    CLIENT = "client"
    RESOLVED = "resolved"


def _error(message: str, hint: str = "") -> PydanticCustomError:
    # Braces in user text must not be taken for template fields.
    safe = message.replace("{", "(").replace("}", ")")
    return PydanticCustomError("sla_config", safe, {"hint": hint})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- calendars ------------------------------------------------------------------

_DAY_GROUPS: dict[str, tuple[int, ...]] = {
    "daily": tuple(range(7)),
    "weekdays": tuple(range(5)),
    "weekends": (5, 6),
}


def _day_key_days(key: str) -> tuple[int, ...]:
    """``"mon"`` / ``"monday"`` / ``"mon-fri"`` / ``"daily"`` / ``"weekdays"`` / ``"weekends"``."""
    text = key.strip().lower()
    if text in _DAY_GROUPS:
        return _DAY_GROUPS[text]
    if "-" in text:
        first, _, last = text.partition("-")
        a, b = weekday_index(first), weekday_index(last)
        return tuple((a + i) % 7 for i in range((b - a) % 7 + 1))
    return (weekday_index(text),)


def _check_day_key(key: str) -> str:
    try:
        _day_key_days(key)
    except ValueError:
        raise _error(
            f"{key!r} is not a weekday",
            "use mon..sun (or full names), a range like 'mon-fri', or daily/weekdays/weekends",
        ) from None
    return key


def _check_interval(text: str) -> str:
    try:
        parse_interval(text)
    except ValueError as exc:
        raise _error(
            str(exc), "write 'HH:MM-HH:MM' in local time, e.g. '08:00-17:30' or '22:00-06:00'"
        ) from None
    return text


DayKey = Annotated[str, AfterValidator(_check_day_key)]
IntervalText = Annotated[str, AfterValidator(_check_interval)]


def _day_intervals(texts: Sequence[str], what: str) -> tuple[WorkInterval, ...]:
    intervals = sorted(parse_interval(t) for t in texts)
    for before, after in itertools.pairwise(intervals):
        before_end = before.end + (MINUTES_PER_DAY if before.overnight else 0)
        if after.start < before_end:
            raise _error(
                f"{what}: intervals {before} and {after} overlap",
                "merge them or make them touch, e.g. '08:00-12:00' and '12:00-17:00'",
            )
    return tuple(intervals)


class HolidaySource(_Model):
    """Public holidays from the ``holidays`` package: ISO country code and optional subdivision."""

    country: str = Field(min_length=2)
    subdivision: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> HolidaySource:
        supported = holidays_pkg.list_supported_countries(include_aliases=True)
        if self.country not in supported:
            raise _error(
                f"country {self.country!r} is not supported by the holidays package",
                "use an ISO 3166-1 alpha-2 code such as 'US', 'GB', 'DE', 'AU'",
            )
        subdivisions = supported[self.country]
        if self.subdivision is not None:
            try:
                holidays_pkg.country_holidays(self.country, subdiv=self.subdivision)
            except NotImplementedError:
                shown = ", ".join(subdivisions[:30]) + (" ..." if len(subdivisions) > 30 else "")
                raise _error(
                    f"{self.country} has no subdivision {self.subdivision!r}",
                    f"known subdivisions: {shown}" if shown else "omit subdivision",
                ) from None
        return self


class CalendarConfig(_Model):
    """One business calendar (``calendars[]``).

    ``hours`` maps weekday keys to local intervals; days not listed are closed.
    ``hours: "24x7"`` is open all the time.  ``special_hours`` gives a date its
    own intervals (an empty list closes it; an entry on a public holiday opens it).
    """

    name: str = Field(min_length=1)
    timezone: str = "UTC"
    holidays: HolidaySource | None = None
    closed_dates: list[date] = Field(default_factory=list)
    special_hours: dict[date, list[IntervalText]] = Field(default_factory=dict)
    hours: dict[DayKey, list[IntervalText]]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _error(
                f"unknown time zone {value!r}",
                "use an IANA name such as 'America/New_York', 'Europe/Berlin', 'UTC'",
            ) from None
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _always(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"24x7", "24/7"}:
            return {"daily": ["00:00-24:00"]}
        if isinstance(value, str):
            raise _error(
                f"hours must be a mapping of weekday to intervals or '24x7', not {value!r}",
                "e.g. hours: {mon-fri: ['08:00-17:00']}",
            )
        return value

    @field_validator("hours")
    @classmethod
    def _weekly(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        seen: dict[int, str] = {}
        for key in value:
            for day in _day_key_days(key):
                if day in seen:
                    raise _error(
                        f"{WEEKDAYS[day]} is given by both {seen[day]!r} and {key!r}",
                        "give every weekday once",
                    )
                seen[day] = key
        for key, texts in value.items():
            _day_intervals(texts, key)
        special = info.data.get("special_hours") or {}
        if not any(value.values()) and not any(special.values()):
            raise _error("the calendar has no working hours", "add intervals or use hours: '24x7'")
        return value

    @field_validator("special_hours")
    @classmethod
    def _special(cls, value: dict[date, list[str]], info: ValidationInfo) -> dict[date, list[str]]:
        closed = set(info.data.get("closed_dates") or ())
        for day, texts in value.items():
            if day in closed:
                raise _error(
                    f"{day.isoformat()} is also in closed_dates",
                    "keep it in one place: an empty special_hours list also closes a date",
                )
            _day_intervals(texts, day.isoformat())
        return value

    def weekly_hours(self) -> dict[int, tuple[WorkInterval, ...]]:
        """Weekday index (0 = Monday) -> intervals."""
        out: dict[int, list[WorkInterval]] = {}
        for key, texts in self.hours.items():
            for day in _day_key_days(key):
                out.setdefault(day, []).extend(parse_interval(t) for t in texts)
        return {day: tuple(sorted(ivs)) for day, ivs in out.items()}

    def special_intervals(self) -> dict[date, tuple[WorkInterval, ...]]:
        return {
            day: tuple(sorted(parse_interval(t) for t in texts))
            for day, texts in self.special_hours.items()
        }

    def build(self) -> BusinessCalendar:
        """The :class:`~ticketbridge.sla.calendar.BusinessCalendar` this config describes."""
        return BusinessCalendar.from_config(self)


# -- targets and contracts ----------------------------------------------------------


def parse_duration(text: Any) -> timedelta:
    """A positive target length in the one grammar of :mod:`ticketbridge.duration`
    (``"30m"``, ``"4h"``, ``"2d"``, ``"1h30m"``, ``"1w"``, ``"PT4H"``); ``ValueError`` otherwise.

    ``d`` is always 24 hours and ``w`` 7 days; a target of zero is refused.
    """
    value = _parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"{text!r} is zero; a target must be positive")
    return value


class Target(_Model):
    """One SLA target: ``minutes`` or ``duration``; ``business`` picks business vs calendar time."""

    minutes: int | None = Field(default=None, gt=0)
    duration: str | None = None
    business: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"duration": data}
        if isinstance(data, int) and not isinstance(data, bool):
            return {"minutes": data}
        return data

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as exc:
                raise _error(
                    str(exc), "units: w d h m s ms, e.g. '30m', '4h', '2d', '1h30m', 'PT4H'"
                ) from None
        return value

    @model_validator(mode="after")
    def _one(self) -> Target:
        if (self.minutes is None) == (self.duration is None):
            raise _error(
                "give exactly one of 'minutes' and 'duration'",
                "e.g. {minutes: 240} or {duration: '4h'} or just '4h'",
            )
        return self

    @property
    def delta(self) -> timedelta:
        if self.duration is not None:
            return parse_duration(self.duration)
        assert self.minutes is not None
        return timedelta(minutes=self.minutes)


class PriorityTargets(_Model):
    """The targets for one vendor priority; a missing target is tracked but never breached."""

    acknowledgment: Target | None = None
    update_cadence: Target | None = None
    resolution: Target | None = None


def _threshold_list(value: list[int]) -> list[int]:
    for pct in value:
        if not 0 < pct <= 1000:
            raise _error(
                f"threshold {pct} is outside 1..1000 percent", "e.g. thresholds: [50, 75, 100]"
            )
    if len(set(value)) != len(value):
        raise _error("thresholds repeat a value", "list every percentage once")
    return sorted(value)


class ContractConfig(_Model):
    """A supplier SLA contract (``contracts[]``).

    ``clients`` limits the contract to some MSP clients; without it the contract
    covers every client of that vendor system.  ``targets`` is keyed by the
    vendor's priority value (e.g. ``"1"`` .. ``"5"``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    name: str = Field(min_length=1)
    vendor: str = Field(min_length=1)
    clients: list[str] | None = None
    calendar: str = Field(min_length=1)
    targets: dict[str, PriorityTargets] = Field(min_length=1)
    acknowledgment_by: AckBy = "first_public_comment"
    resolved_by: ResolvedBy = "vendor"
    thresholds: Annotated[list[int], AfterValidator(_threshold_list)] = Field(
        default_factory=lambda: [50, 75, 100]
    )

    @field_validator("clients")
    @classmethod
    def _clients(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise _error(
                "an empty clients list matches no client", "omit 'clients' to cover every client"
            )
        return value

    def applies_to(self, vendor: str, client: str | None) -> bool:
        if vendor != self.vendor:
            return False
        return self.clients is None or (client is not None and client in self.clients)

    def targets_for(self, priority: str | None) -> PriorityTargets | None:
        return None if priority is None else self.targets.get(str(priority))


def select_contract(
    contracts: Sequence[ContractConfig], vendor: str, client: str | None
) -> ContractConfig | None:
    """The contract for a vendor system and MSP client: one naming the client beats a catch-all."""
    fallback: ContractConfig | None = None
    for contract in contracts:
        if not contract.applies_to(vendor, client):
            continue
        if contract.clients is not None:
            return contract
        if fallback is None:
            fallback = contract
    return fallback


# -- ball in court --------------------------------------------------------------------


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    return value


class BallRule(_Model):
    """Matches when every condition given matches (case-insensitively); a list means any of.

    ``vendor_class`` / ``psa_class`` match the status class of that side's
    ticket (see :class:`~ticketbridge.domain.StatusClass`), whatever the
    product calls the status.
    """

    vendor_status: tuple[str, ...] | None = None
    vendor_class: tuple[StatusClass, ...] | None = None
    psa_status: tuple[str, ...] | None = None
    psa_class: tuple[StatusClass, ...] | None = None
    ball: Ball

    @field_validator("vendor_status", "vendor_class", "psa_status", "psa_class", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _strings(value)

    @field_validator("vendor_status", "vendor_class", "psa_status", "psa_class")
    @classmethod
    def _non_empty(cls, value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        if value is not None and not value:
            raise _error("an empty list matches nothing", "omit the condition to match any value")
        return value

    @property
    def unconditional(self) -> bool:
        return (
            self.vendor_status is None
            and self.vendor_class is None
            and self.psa_status is None
            and self.psa_class is None
        )

    def matches(self, vendor: SideStatus, psa: SideStatus) -> bool:
        return (
            _match(self.vendor_status, vendor.status)
            and _class_match(self.vendor_class, vendor.status_class)
            and _match(self.psa_status, psa.status)
            and _class_match(self.psa_class, psa.status_class)
        )


@dataclass(frozen=True, slots=True)
class SideStatus:
    """One side's ticket status as observed: the product's word and its class."""

    status: str | None = None
    status_class: StatusClass | None = None


def _norm(value: str) -> str:
    return " ".join(value.split()).casefold()


def _match(wanted: tuple[str, ...] | None, actual: str | None) -> bool:
    if wanted is None:
        return True
    if actual is None:
        return False
    norm = _norm(actual)
    return any(_norm(w) == norm for w in wanted)


def _class_match(wanted: tuple[StatusClass, ...] | None, actual: StatusClass | None) -> bool:
    return wanted is None or (actual is not None and actual in wanted)


#: Whose move it is by the vendor ticket's status class, when no rule decides: the
#: vendor works new and working tickets and those waiting on its own suppliers;
#: waiting on its customer (the MSP) or resolved (the MSP confirms with its client)
#: puts the ball with the MSP; closed and cancelled tickets are resolved.
CLASS_BALLS: Mapping[StatusClass, Ball] = {
    StatusClass.NEW: Ball.VENDOR,
    StatusClass.WORKING: Ball.VENDOR,
    StatusClass.WAITING_ON_THIRD_PARTY: Ball.VENDOR,
    StatusClass.WAITING_ON_CUSTOMER: Ball.MSP,
    StatusClass.RESOLVED: Ball.MSP,
    StatusClass.CLOSED: Ball.RESOLVED,
    StatusClass.CANCELLED: Ball.RESOLVED,
}


class BallConfig(_Model):
    """How to derive ball-in-court: the first matching rule wins, else ``default``.

    Without a ``default`` the vendor status class decides (:data:`CLASS_BALLS`),
    and the vendor holds the ball while the class is unknown.

    ``resolved_statuses`` are the vendor statuses at which the vendor considers
    the ticket resolved: entering one emits a ``resolved`` clock event and
    leaving one a ``reopened`` event (see :mod:`ticketbridge.sla.ball`).  Left
    empty, the resolved, closed and cancelled classes count as resolved.
    """

    rules: tuple[BallRule, ...] = ()
    default: Ball | None = None
    resolved_statuses: tuple[str, ...] = ()
    #: Vendor statuses meaning the vendor works the ticket (``acknowledgment_by:
    #: in_progress``); left empty, the working class.
    in_progress_statuses: tuple[str, ...] = ()

    @field_validator("resolved_statuses", "in_progress_statuses", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _strings(value)

    @field_validator("rules")
    @classmethod
    def _reachable(cls, value: tuple[BallRule, ...]) -> tuple[BallRule, ...]:
        for i, rule in enumerate(value[:-1]):
            if rule.unconditional:
                raise _error(
                    f"rules[{i}] has no condition, so the rules after it never apply",
                    "move it last or use 'default'",
                )
        return value

    def default_for(self, vendor: SideStatus) -> Ball:
        """The ball when no rule matches: ``default`` if set, else by the vendor's class."""
        if self.default is not None:
            return self.default
        if vendor.status_class is None:
            return Ball.VENDOR
        return CLASS_BALLS[vendor.status_class]

    def is_resolved(self, vendor: SideStatus) -> bool:
        """Has the vendor resolved the ticket (by ``resolved_statuses``, else by class)?"""
        if self.resolved_statuses:
            return _match(self.resolved_statuses, vendor.status)
        return vendor.status_class is not None and vendor.status_class.is_done

    def is_in_progress(self, vendor: SideStatus) -> bool:
        """Is the vendor working the ticket (by ``in_progress_statuses``, else by class)?"""
        if self.in_progress_statuses:
            return _match(self.in_progress_statuses, vendor.status)
        return vendor.status_class is StatusClass.WORKING


class SlaConfig(_Model):
    """The whole ``sla`` section: calendars, contracts and ball rules per vendor system."""

    calendars: list[CalendarConfig] = Field(default_factory=list)
    contracts: list[ContractConfig] = Field(default_factory=list)
    ball: dict[str, BallConfig] = Field(default_factory=dict)

    def build_calendars(self) -> dict[str, BusinessCalendar]:
        return {c.name: c.build() for c in self.calendars}


# -- problems -----------------------------------------------------------------------------


def _render_path(prefix: str, loc: Sequence[int | str]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """``(yaml_path, message, hint)`` for each error, e.g. ``calendars[0].hours.mon[1]``."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        msg = err["msg"].removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        hint = str(ctx.get("hint", ""))
        if loc and loc[-1] == "[key]":
            msg = f"key: {msg}"
        if err["type"] == "extra_forbidden":
            msg, hint = "unknown key", hint or "check the spelling against the documentation"
        if err["type"] == "missing":
            msg = "required key is missing"
        problems.append((_render_path(prefix, loc), msg, hint))
    return problems


def _known_for(known: Priorities | None, vendor: str) -> tuple[bool, Collection[str] | None]:
    """(vendor system known?, its priorities or None for no check)."""
    if known is None:
        return True, None
    if isinstance(known, Mapping):
        if vendor not in known:
            return False, None
        values = known[vendor]
        return True, None if values is None else {str(v) for v in values}
    return True, {str(v) for v in known}


def validate_sla_config(
    calendars: Sequence[CalendarConfig],
    contracts: Sequence[ContractConfig],
    known_priorities: Priorities | None = None,
    *,
    prefix: str = "",
) -> list[Problem]:
    """Cross-reference checks over validated models; ``[]`` when all is well.

    ``known_priorities`` maps vendor system name -> its priority values (or
    ``None`` to skip that system), or is one collection for every system.
    Reports duplicate names, a contract's unknown calendar
    (``contracts[0].calendar``), unknown vendor system, unknown priority
    (``contracts[0].targets.6``) and two contracts competing for the same
    vendor and client.
    """
    dot = f"{prefix}." if prefix else ""
    problems: list[Problem] = []

    def add(path: str, message: str, hint: str) -> None:
        problems.append((f"{dot}{path}", message, hint))

    calendar_at: dict[str, int] = {}
    for i, cal in enumerate(calendars):
        if cal.name in calendar_at:
            first = calendar_at[cal.name]
            add(
                f"calendars[{i}].name",
                f"calendar name {cal.name!r} is already used by calendars[{first}]",
                "give every calendar its own name",
            )
        else:
            calendar_at[cal.name] = i
    defined = ", ".join(sorted(calendar_at)) or "none"

    contract_at: dict[str, int] = {}
    catch_all: dict[str, int] = {}
    client_at: dict[tuple[str, str], int] = {}
    for i, contract in enumerate(contracts):
        here = f"contracts[{i}]"
        vendor = contract.vendor
        if contract.name in contract_at:
            first = contract_at[contract.name]
            add(
                f"{here}.name",
                f"contract name {contract.name!r} is already used by contracts[{first}]",
                "give every contract its own name",
            )
        else:
            contract_at[contract.name] = i
        if contract.calendar not in calendar_at:
            add(
                f"{here}.calendar",
                f"unknown calendar {contract.calendar!r}",
                f"defined calendars: {defined}",
            )
        system_known, priorities = _known_for(known_priorities, vendor)
        if not system_known:
            assert isinstance(known_priorities, Mapping)
            systems = ", ".join(sorted(known_priorities)) or "none"
            add(f"{here}.vendor", f"unknown vendor system {vendor!r}", f"known systems: {systems}")
        elif priorities is not None:
            known = ", ".join(sorted(priorities))
            for key in contract.targets:
                if key not in priorities:
                    add(
                        f"{here}.targets.{key}",
                        f"unknown priority {key!r} for {vendor}",
                        f"known priorities: {known}",
                    )
        if contract.clients is None:
            if vendor in catch_all:
                other = catch_all[vendor]
                add(
                    f"{here}.clients",
                    f"contracts[{other}] already covers every client of {vendor}",
                    "list the clients this contract is for",
                )
            else:
                catch_all[vendor] = i
            continue
        for client in contract.clients:
            other_at = client_at.get((vendor, client))
            if other_at is not None:
                add(
                    f"{here}.clients",
                    f"client {client!r} of {vendor} is also in contracts[{other_at}].clients",
                    "a client may appear in one contract per vendor system",
                )
            else:
                client_at[(vendor, client)] = i
    return problems


def sla_config_problems(
    data: Mapping[str, Any], known_priorities: Priorities | None = None, *, prefix: str = ""
) -> tuple[SlaConfig | None, list[Problem]]:
    """Validate a raw ``sla`` mapping (as loaded from YAML): the model and every problem found."""
    try:
        config = SlaConfig.model_validate(data)
    except ValidationError as exc:
        return None, problems_from_validation_error(exc, prefix)
    return config, validate_sla_config(
        config.calendars, config.contracts, known_priorities, prefix=prefix
    )


def load_sla_config(
    data: Mapping[str, Any], known_priorities: Priorities | None = None, *, prefix: str = ""
) -> SlaConfig:
    """Like :func:`sla_config_problems` but raises :class:`ConfigError` listing all problems."""
    config, problems = sla_config_problems(data, known_priorities, prefix=prefix)
    if problems or config is None:
        raise ConfigError(problems)
    return config
