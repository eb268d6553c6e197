"""The one duration grammar, and every setting that reads a duration accepting all of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ticketbridge.config import EngineConfig, RulesConfig, SystemConfig, parse_duration
from ticketbridge.duration import (
    ACCEPTED_FORMS,
    Duration,
    Seconds,
    format_duration,
)
from ticketbridge.duration import parse_duration as parse
from ticketbridge.notify.chat import SlackSettings
from ticketbridge.notify.email import SmtpSettings
from ticketbridge.rules.models import ClientUpdateAction, SlaCondition, StepModel, When
from ticketbridge.sla.models import Target

FORMS: list[tuple[Any, timedelta]] = [
    ("250ms", timedelta(milliseconds=250)),
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1h30m", timedelta(minutes=90)),
    ("1h 30m", timedelta(minutes=90)),
    ("2d", timedelta(days=2)),
    ("1d2h", timedelta(days=1, hours=2)),
    ("1w", timedelta(days=7)),
    ("1.5h", timedelta(minutes=90)),
    ("1m30s500ms", timedelta(seconds=90, milliseconds=500)),
    (" 15M ", timedelta(minutes=15)),
    ("PT1H30M", timedelta(minutes=90)),
    ("pt45s", timedelta(seconds=45)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("P2D", timedelta(days=2)),
    ("P1W", timedelta(days=7)),
    ("PT0.25S", timedelta(milliseconds=250)),
    ("30", timedelta(seconds=30)),
    ("0.25", timedelta(milliseconds=250)),
    (30, timedelta(seconds=30)),
    (0.5, timedelta(milliseconds=500)),
    (0, timedelta(0)),
    ("0", timedelta(0)),
    (timedelta(minutes=3), timedelta(minutes=3)),
]

BAD: list[Any] = [
    "",
    "   ",
    "soon",
    "-5s",
    "-5",
    -5,
    -0.1,
    timedelta(seconds=-1),
    True,
    None,
    [],
    "5x",
    "h",
    "1h1h",
    "30m1h",
    "1h-30m",
    "P",
    "PT",
    "P1DT",
    "P1Y",
    "P1M",
    "PT1H30",
    "1h30",
    "nan",
    float("nan"),
    float("inf"),
]


class TestParse:
    @pytest.mark.parametrize(("text", "expected"), FORMS)
    def test_every_form(self, text: Any, expected: timedelta) -> None:
        """Short units, ISO 8601, plain seconds and timedeltas all read to the same length."""
        assert expected == parse(text)

    @pytest.mark.parametrize("bad", BAD, ids=repr)
    def test_refuses_with_the_accepted_forms(self, bad: Any) -> None:
        """Garbage, negatives and empty input are refused with a message listing what works."""
        with pytest.raises(ValueError, match="duration") as info:
            parse(bad)
        assert ACCEPTED_FORMS in str(info.value)

    def test_negative_says_so(self) -> None:
        """A negative duration is named as such, not as unreadable."""
        with pytest.raises(ValueError, match="negative"):
            parse("-1h")


class TestFormat:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (timedelta(0), "0s"),
            (timedelta(milliseconds=250), "250ms"),
            (timedelta(seconds=90), "1m30s"),
            (timedelta(minutes=15), "15m"),
            (timedelta(minutes=90), "1h30m"),
            (timedelta(days=2), "2d"),
            (timedelta(days=1, hours=2), "1d2h"),
            (timedelta(days=7), "7d"),
            (timedelta(minutes=-5), "-5m"),
        ],
    )
    def test_short_form(self, value: timedelta, text: str) -> None:
        """The formatter writes the short form, largest unit first."""
        assert text == format_duration(value)

    @pytest.mark.parametrize(("text", "expected"), FORMS)
    def test_round_trip(self, text: Any, expected: timedelta) -> None:
        """Whatever is read formats back to text that reads to the same length."""
        assert expected == parse(format_duration(parse(text)))


class _Holder(BaseModel):
    length: Duration
    seconds: Seconds = 0.0


class TestPydantic:
    def test_duration_field(self) -> None:
        """A Duration field reads any form and writes the short form in JSON."""
        model = _Holder.model_validate({"length": "PT1H30M", "seconds": "250ms"})
        assert timedelta(minutes=90) == model.length
        assert 0.25 == model.seconds
        assert '{"length":"1h30m","seconds":0.25}' == model.model_dump_json()

    def test_field_error_names_the_forms(self) -> None:
        """Validation errors carry the accepted forms."""
        with pytest.raises(ValidationError, match="ISO 8601"):
            _Holder.model_validate({"length": "soon"})


def _engine(value: Any) -> timedelta:
    return timedelta(seconds=EngineConfig.model_validate({"overlap": value}).overlap)


def _sla_tick(value: Any) -> timedelta:
    return timedelta(seconds=EngineConfig.model_validate({"sla_tick": value}).sla_tick)


def _poll_interval(value: Any) -> timedelta:
    system = SystemConfig.model_validate(
        {"kind": "fake", "base_url": "http://127.0.0.1:1", "poll_interval": value}
    )
    return timedelta(seconds=system.poll_interval)


def _system_timeout(value: Any) -> timedelta:
    system = SystemConfig.model_validate(
        {"kind": "fake", "base_url": "http://127.0.0.1:1", "timeout": value}
    )
    return timedelta(seconds=system.timeout)


def _rules_tick(value: Any) -> timedelta:
    return timedelta(seconds=RulesConfig.model_validate({"tick": value}).tick)


def _cli_since(value: Any) -> timedelta:
    return timedelta(seconds=parse_duration(value))


def _step_after(value: Any) -> timedelta:
    step = StepModel.model_validate({"after": value, "actions": [{"type": "client_update"}]})
    return step.after


def _step_every(value: Any) -> timedelta:
    step = StepModel.model_validate(
        {"repeat": 1, "every": value, "actions": [{"type": "client_update"}]}
    )
    assert step.every is not None
    return step.every


def _age_over(value: Any) -> timedelta:
    when = When.model_validate({"age_over": value})
    assert when.age_over is not None
    return when.age_over


def _vendor_silent_for(value: Any) -> timedelta:
    when = When.model_validate({"vendor_silent_for": value})
    assert when.vendor_silent_for is not None
    return when.vendor_silent_for


def _remaining_under(value: Any) -> timedelta:
    cond = SlaCondition.model_validate({"metric": "resolution", "remaining_under": value})
    assert cond.remaining_under is not None
    return cond.remaining_under


def _client_update_every(value: Any) -> timedelta:
    action = ClientUpdateAction.model_validate({"type": "client_update", "every": value})
    assert action.every is not None
    return action.every


def _sla_target(value: Any) -> timedelta:
    return Target.model_validate({"duration": value}).delta


def _smtp_timeout(value: Any) -> timedelta:
    smtp = SmtpSettings.model_validate(
        {"host": "mail.example", "from_address": "a@msp.example", "timeout": value}
    )
    return timedelta(seconds=smtp.timeout)


def _chat_timeout(value: Any) -> timedelta:
    chat = SlackSettings.model_validate(
        {"url": "https://hooks.slack.com/services/T/B/x", "timeout": value}
    )
    return timedelta(seconds=chat.timeout)


PLACES: dict[str, Callable[[Any], timedelta]] = {
    "engine.overlap": _engine,
    "engine.sla_tick": _sla_tick,
    "systems.poll_interval": _poll_interval,
    "systems.timeout": _system_timeout,
    "rules.tick": _rules_tick,
    "report --since": _cli_since,
    "rule step after": _step_after,
    "rule step every": _step_every,
    "rule when age_over": _age_over,
    "rule when vendor_silent_for": _vendor_silent_for,
    "rule sla remaining_under": _remaining_under,
    "rule client_update every": _client_update_every,
    "sla target duration": _sla_target,
    "notify.smtp.timeout": _smtp_timeout,
    "notify chat timeout": _chat_timeout,
}

#: Positive forms every place must read the same way (SLA targets and timeouts refuse zero).
SHARED = [
    ("1h30m", timedelta(minutes=90)),
    ("250ms", timedelta(milliseconds=250)),
    ("PT1H30M", timedelta(minutes=90)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("1d2h", timedelta(days=1, hours=2)),
    ("90s", timedelta(seconds=90)),
    ("2d", timedelta(days=2)),
]


class TestEveryPlaceOneGrammar:
    @pytest.mark.parametrize("place", sorted(PLACES))
    @pytest.mark.parametrize(("text", "expected"), SHARED)
    def test_accepts(self, place: str, text: str, expected: timedelta) -> None:
        """`1h30m` (once refused by rules.tick) and `250ms` (once refused by rule steps)
        and ISO 8601 read the same in every setting that takes a duration."""
        assert expected == PLACES[place](text)

    @pytest.mark.parametrize("place", sorted(PLACES))
    @pytest.mark.parametrize("bad", ["soon", "-5m", "", "1h1h"])
    def test_refuses(self, place: str, bad: str) -> None:
        """Every place refuses the same garbage."""
        with pytest.raises(ValueError, match="duration"):
            PLACES[place](bad)
