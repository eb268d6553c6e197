"""SLA configuration models: parsing, validation messages with YAML paths, cross-checks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ticketbridge.errors import ConfigError
from ticketbridge.sla.calendar import WorkInterval
from ticketbridge.sla.models import (
    BallConfig,
    CalendarConfig,
    ContractConfig,
    Target,
    load_sla_config,
    parse_duration,
    problems_from_validation_error,
    select_contract,
    sla_config_problems,
    validate_sla_config,
)

SERVICENOW_PRIORITIES = {"servicenow": ["1", "2", "3", "4", "5"]}


def calendar(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "ny",
        "timezone": "America/New_York",
        "hours": {"mon-fri": ["08:00-12:00", "13:00-17:30"]},
        "holidays": {"country": "US", "subdivision": "NY"},
    }
    return {**base, **overrides}


def contract(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "acme-snow",
        "vendor": "servicenow",
        "calendar": "ny",
        "targets": {
            "1": {"acknowledgment": "15m", "update_cadence": "1h", "resolution": "4h"},
            "3": {"acknowledgment": {"minutes": 120}, "resolution": {"duration": "2d"}},
        },
    }
    return {**base, **overrides}


def problems(
    data: dict[str, Any], known: Any = SERVICENOW_PRIORITIES
) -> list[tuple[str, str, str]]:
    return sla_config_problems(data, known)[1]


def paths(data: dict[str, Any], known: Any = SERVICENOW_PRIORITIES) -> list[str]:
    return [p for p, _, _ in problems(data, known)]


# -- happy paths ------------------------------------------------------------------------------


def test_full_config_parses_and_builds_calendars() -> None:
    """A complete section validates, with weekday ranges, holidays and exceptions expanded."""
    config = load_sla_config(
        {
            "calendars": [
                calendar(
                    closed_dates=["2026-12-31"],
                    special_hours={"2026-12-24": ["08:00-12:00"], "2026-11-26": []},
                ),
                {"name": "24x7", "hours": "24x7"},
            ],
            "contracts": [contract()],
            "ball": {"servicenow": {"rules": [{"vendor_status": "Closed", "ball": "resolved"}]}},
        },
        SERVICENOW_PRIORITIES,
    )
    ny = config.calendars[0]
    weekly = ny.weekly_hours()
    assert sorted(weekly) == [0, 1, 2, 3, 4]
    assert weekly[0] == (WorkInterval(480, 720), WorkInterval(780, 1050))
    assert ny.special_intervals()[date(2026, 11, 26)] == ()
    built = config.build_calendars()
    assert built["24x7"].is_always_open
    assert built["ny"].hours_on(date(2026, 12, 24)) == (WorkInterval(480, 720),)
    assert built["ny"].hours_on(date(2026, 12, 31)) == ()
    assert config.ball["servicenow"].rules[0].vendor_status == ("Closed",)


def test_target_forms_and_duration_units() -> None:
    """Targets accept minutes, a duration string, or a bare shorthand; d is 24 hours."""
    assert Target.model_validate("30m").delta == timedelta(minutes=30)
    assert Target.model_validate(90).delta == timedelta(minutes=90)
    assert Target.model_validate({"duration": "2d", "business": False}).delta == timedelta(days=2)
    assert Target.model_validate({"minutes": 240}).business is True
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1w") == timedelta(days=7)
    for bad in ("", "0m", "4x", "h"):
        with pytest.raises(ValueError, match=r"duration|zero"):
            parse_duration(bad)


def test_contract_coerces_numeric_priorities_and_sorts_thresholds() -> None:
    """YAML integer priority keys become strings; thresholds are sorted."""
    model = ContractConfig.model_validate(
        contract(targets={2: {"resolution": "8h"}}, thresholds=[100, 50])
    )
    assert list(model.targets) == ["2"]
    assert model.thresholds == [50, 100]
    assert model.targets_for(2) is not None  # type: ignore[arg-type]
    assert model.acknowledgment_by == "first_public_comment"


def test_select_contract_prefers_one_naming_the_client() -> None:
    """A contract listing the client beats the vendor's catch-all contract."""
    catch_all = ContractConfig.model_validate(contract(name="all"))
    special = ContractConfig.model_validate(contract(name="acme", clients=["ACME"]))
    other = ContractConfig.model_validate(contract(name="jira", vendor="jira"))
    contracts = [catch_all, special, other]
    assert select_contract(contracts, "servicenow", "ACME") is special
    assert select_contract(contracts, "servicenow", "Globex") is catch_all
    assert select_contract(contracts, "servicenow", None) is catch_all
    assert select_contract(contracts, "zendesk", "ACME") is None


# -- field errors with paths ----------------------------------------------------------------


def test_bad_interval_is_reported_at_its_path_with_a_hint() -> None:
    """A malformed interval names calendars[i].hours.<day>[j] and how to write it."""
    found = problems({"calendars": [calendar(hours={"mon": ["08:00-12:00", "13-17"]})]})
    assert len(found) == 1
    path, message, hint = found[0]
    assert path == "calendars[0].hours.mon[1]"
    assert "'13-17' is not an interval" in message
    assert "HH:MM-HH:MM" in hint


def test_bad_weekday_overlap_and_duplicate_days() -> None:
    """Unknown weekday keys, overlapping intervals and days given twice are all reported."""
    assert problems({"calendars": [calendar(hours={"mon-fry": ["08:00-17:00"]})]})[0][:2] == (
        "calendars[0].hours.mon-fry",
        "key: 'mon-fry' is not a weekday",
    )
    overlap = problems({"calendars": [calendar(hours={"mon": ["08:00-12:00", "11:00-13:00"]})]})
    assert overlap[0][0] == "calendars[0].hours"
    assert "overlap" in overlap[0][1]
    twice = problems({"calendars": [calendar(hours={"mon-fri": ["08:00-17:00"], "fri": []})]})
    assert "fri is given by both 'mon-fri' and 'fri'" in twice[0][1]
    empty = problems({"calendars": [calendar(hours={"mon": []})]})
    assert empty[0][1] == "the calendar has no working hours"


def test_bad_timezone_and_holiday_source() -> None:
    """Unknown zones, countries and subdivisions are refused with suggestions."""
    assert problems({"calendars": [calendar(timezone="Eastern")]})[0][:2] == (
        "calendars[0].timezone",
        "unknown time zone 'Eastern'",
    )
    country = problems({"calendars": [calendar(holidays={"country": "XX"})]})
    assert country[0][0] == "calendars[0].holidays"
    assert "not supported" in country[0][1]
    subdivision = problems(
        {"calendars": [calendar(holidays={"country": "DE", "subdivision": "ZZ"})]}
    )
    assert "DE has no subdivision 'ZZ'" in subdivision[0][1]
    assert "BY" in subdivision[0][2]


def test_special_hours_must_not_repeat_closed_dates() -> None:
    """A date both closed and with special hours is a conflict reported on special_hours."""
    found = problems(
        {
            "calendars": [
                calendar(closed_dates=["2026-12-24"], special_hours={"2026-12-24": ["08:00-12:00"]})
            ]
        }
    )
    assert found[0][0] == "calendars[0].special_hours"
    assert "also in closed_dates" in found[0][1]


def test_target_errors() -> None:
    """Both or neither of minutes/duration, bad durations and non-positive minutes are errors."""
    base = contract()
    both = problems(
        {
            "calendars": [calendar()],
            "contracts": [
                {**base, "targets": {"1": {"resolution": {"minutes": 5, "duration": "5m"}}}}
            ],
        }
    )
    assert both[0][0] == "contracts[0].targets.1.resolution"
    assert "exactly one" in both[0][1]
    bad = problems(
        {
            "calendars": [calendar()],
            "contracts": [{**base, "targets": {"1": {"resolution": "4 hours"}}}],
        }
    )
    assert bad[0][0] == "contracts[0].targets.1.resolution.duration"
    zero = problems(
        {"calendars": [calendar()], "contracts": [{**base, "targets": {"1": {"resolution": 0}}}]}
    )
    assert zero[0][0] == "contracts[0].targets.1.resolution.minutes"


def test_contract_field_errors() -> None:
    """Unknown keys, bad acknowledgment_by, bad thresholds and empty client lists are reported."""
    found = problems(
        {
            "calendars": [calendar()],
            "contracts": [
                contract(
                    acknowledgment_by="first_reply",
                    thresholds=[50, 50, 0],
                    clients=[],
                    escalate=True,
                )
            ],
        }
    )
    by_path = {path: (message, hint) for path, message, hint in found}
    assert set(by_path) == {
        "contracts[0].acknowledgment_by",
        "contracts[0].thresholds",
        "contracts[0].clients",
        "contracts[0].escalate",
    }
    assert by_path["contracts[0].escalate"][0] == "unknown key"
    assert by_path["contracts[0].clients"][1] == "omit 'clients' to cover every client"
    assert "outside 1..1000" in by_path["contracts[0].thresholds"][0]


def test_ball_rule_errors() -> None:
    """An unconditional rule before others makes them unreachable; unknown balls are refused."""
    with pytest.raises(ValidationError) as caught:
        BallConfig.model_validate(
            {"rules": [{"ball": "msp"}, {"vendor_status": "Closed", "ball": "nobody"}]}
        )
    found = problems_from_validation_error(caught.value, "ball.servicenow")
    assert len(found) == 1
    assert found[0][0] == "ball.servicenow.rules[1].ball"
    assert "'vendor'" in found[0][1]
    with pytest.raises(ValidationError, match="never apply"):
        BallConfig.model_validate(
            {"rules": [{"ball": "msp"}, {"vendor_status": "x", "ball": "vendor"}]}
        )


def test_missing_keys_are_named() -> None:
    """A missing required key is reported at its own path."""
    found = problems({"calendars": [{"name": "x"}]})
    assert found == [("calendars[0].hours", "required key is missing", "")]


# -- cross-reference checks ----------------------------------------------------------------


def test_unknown_calendar_and_priority_are_reported_with_paths() -> None:
    """A contract naming an unknown calendar or priority is reported at that key."""
    found = problems(
        {
            "calendars": [calendar()],
            "contracts": [contract(calendar="london", targets={"6": {"resolution": "4h"}})],
        }
    )
    assert found == [
        ("contracts[0].calendar", "unknown calendar 'london'", "defined calendars: ny"),
        (
            "contracts[0].targets.6",
            "unknown priority '6' for servicenow",
            "known priorities: 1, 2, 3, 4, 5",
        ),
    ]


def test_unknown_vendor_duplicates_and_competing_contracts() -> None:
    """Unknown vendor systems, duplicate names and two contracts for one client are reported."""
    found = paths(
        {
            "calendars": [calendar(), calendar()],
            "contracts": [
                contract(),
                contract(),
                contract(name="a", clients=["ACME"]),
                contract(name="b", clients=["ACME", "Globex"]),
                contract(name="c", vendor="zendesk"),
            ],
        }
    )
    assert found == [
        "calendars[1].name",
        "contracts[1].name",
        "contracts[1].clients",
        "contracts[3].clients",
        "contracts[4].vendor",
    ]


def test_validate_accepts_a_plain_priority_collection_and_skips_unknown_systems() -> None:
    """known_priorities may be one collection for all systems, or None per system to skip."""
    cal = CalendarConfig.model_validate(calendar())
    good = ContractConfig.model_validate(contract())
    assert validate_sla_config([cal], [good], ["1", "2", "3"]) == []
    assert validate_sla_config([cal], [good], {"servicenow": None}) == []
    assert validate_sla_config([cal], [good], None) == []
    assert [p for p, _, _ in validate_sla_config([cal], [good], ["1"], prefix="sla")] == [
        "sla.contracts[0].targets.3"
    ]


def test_load_raises_config_error_listing_every_problem() -> None:
    """load_sla_config raises ConfigError whose problems are the (path, message, hint) list."""
    with pytest.raises(ConfigError) as caught:
        load_sla_config(
            {"calendars": [calendar(timezone="Nowhere/City")], "contracts": []}, prefix="sla"
        )
    assert caught.value.problems[0][0] == "sla.calendars[0].timezone"
    assert "sla.calendars[0].timezone: unknown time zone" in str(caught.value)
