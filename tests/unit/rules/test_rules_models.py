"""Rule files: schema, cross-reference checks, problems reported with YAML paths."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ticketbridge.errors import ConfigError
from ticketbridge.rules import load_rules, load_rules_or_raise
from ticketbridge.rules.models import format_duration, parse_duration
from ticketbridge.sla.calendar import BusinessCalendar

from .helpers import problems_of


def paths(problems: list[tuple[str, str, str]]) -> list[str]:
    return [p for p, _, _ in problems]


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("15m", timedelta(minutes=15)),
            ("2h", timedelta(hours=2)),
            ("1d", timedelta(days=1)),
            ("1h30m", timedelta(minutes=90)),
            ("45s", timedelta(seconds=45)),
            ("1w", timedelta(days=7)),
            (0, timedelta(0)),
            ("0", timedelta(0)),
            ("15", timedelta(seconds=15)),
            (15, timedelta(seconds=15)),
        ],
    )
    def test_parses_units(self, text: object, expected: timedelta) -> None:
        """Durations use w/d/h/m/s units and may combine them; a plain number is seconds."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["fifteen minutes", "", "-5m", True, "5x"])
    def test_refuses_nonsense(self, text: object) -> None:
        """A negative or unparsable duration is refused with a ValueError."""
        with pytest.raises(ValueError, match=r"duration|unit"):
            parse_duration(text)

    def test_format_round_trips(self) -> None:
        """format_duration writes what parse_duration reads."""
        for value in (timedelta(minutes=90), timedelta(days=2, hours=3), timedelta(seconds=59)):
            assert parse_duration(format_duration(value)) == value


class TestShape:
    def test_unknown_condition_key_suggests_the_right_one(self) -> None:
        """A misspelt condition key is reported at its path with a did-you-mean hint."""
        problems = problems_of(
            """
            rules:
              - name: r
                when: {prioirty: P1}
                actions: [{type: lessons_learned}]
            """
        )
        assert problems == [
            (
                "10-rules.yaml: rules[0].when.prioirty",
                "unknown key 'prioirty'",
                "did you mean 'priority'?",
            )
        ]

    def test_unknown_action_type(self) -> None:
        """An unknown action type names the path of its `type` and lists the known ones."""
        problems = problems_of(
            """
            rules:
              - name: r
                chain:
                  - after: 5m
                    actions: [{type: page_someone}]
            """
        )
        assert len(problems) == 1
        path, message, hint = problems[0]
        assert path == "10-rules.yaml: rules[0].chain[0].actions[0].type"
        assert message == "unknown action type 'page_someone'"
        assert "move_psa_ticket" in hint
        assert "notify" in hint

    def test_extra_key_inside_an_action_has_no_union_noise(self) -> None:
        """Paths through a discriminated action skip pydantic's tag segment."""
        problems = problems_of(
            """
            rules:
              - name: r
                actions: [{type: vendor_note, template: hi, visibilty: public}]
            """
        )
        assert paths(problems) == ["10-rules.yaml: rules[0].actions[0].visibilty"]
        assert problems[0][2] == "did you mean 'visibility'?"

    def test_bad_duration_and_window(self) -> None:
        """A bad wait and a bad hours window are both reported, each at its own path."""
        problems = problems_of(
            """
            rules:
              - name: r
                chain:
                  - after: 15 minutes
                    only_between: "8-18"
                    actions: [{type: lessons_learned}]
            """
        )
        assert paths(problems) == [
            "10-rules.yaml: rules[0].chain[0].after",
            "10-rules.yaml: rules[0].chain[0].only_between.hours[0]",
        ]
        assert "not a duration" in problems[0][1]
        assert "HH:MM-HH:MM" in problems[1][2]

    def test_repeat_needs_every(self) -> None:
        """`repeat` without `every` is a nonsense wait."""
        problems = problems_of(
            """
            rules:
              - name: r
                chain: [{after: 5m, repeat: 3, actions: [{type: lessons_learned}]}]
            """
        )
        assert paths(problems) == ["10-rules.yaml: rules[0].chain[0]"]
        assert problems[0][1] == "repeat: 3 needs 'every'"

    def test_actions_xor_chain(self) -> None:
        """A rule must have exactly one of actions and chain."""
        problems = problems_of("rules: [{name: r, when: {closed: true}}]")
        assert paths(problems) == ["10-rules.yaml: rules[0]"]
        assert "exactly one of 'actions' and 'chain'" in problems[0][1]

    def test_window_calendar_excludes_hours(self) -> None:
        """A window is either a named calendar or hours, never both."""
        problems = problems_of(
            """
            rules:
              - name: r
                chain:
                  - only_between: {calendar: us, hours: "08:00-17:00"}
                    actions: [{type: lessons_learned}]
            """
        )
        assert paths(problems) == ["10-rules.yaml: rules[0].chain[0].only_between"]

    def test_file_must_be_a_mapping(self) -> None:
        """A file holding a list is refused at its root."""
        assert problems_of("- 1\n- 2\n") == [
            ("10-rules.yaml: (root)", "the file must hold a mapping", "start with `rules:`")
        ]


class TestReferences:
    def test_unknown_tier_in_condition_and_action(self) -> None:
        """Tiers named in conditions (also nested) and in moves must be defined."""
        problems = problems_of(
            """
            rules:
              - name: r
                when: {any: [{tier: Tier 9}]}
                actions: [{type: move_psa_ticket, to_tier: Tier 7}]
            """
        )
        assert paths(problems) == [
            "10-rules.yaml: rules[0].when.any[0].tier",
            "10-rules.yaml: rules[0].actions[0].to_tier",
        ]
        assert "Tier 1, Tier 2, Tier 3, Vendor" in problems[0][2]

    def test_unknown_person_and_missing_channel(self) -> None:
        """notify needs a defined person who has the channel used."""
        problems = problems_of(
            """
            rules:
              - name: r
                actions:
                  - {type: notify, channel: teams, to: nobody, template: x}
                  - {type: notify, channel: slack, to: desk, template: x}
                  - {type: notify, channel: email, to: someone@example.com, template: x}
            """
        )
        assert problems == [
            (
                "10-rules.yaml: rules[0].actions[0].to",
                "unknown contact 'nobody'",
                "define it under contacts.people; known: boss, desk, noc",
            ),
            (
                "10-rules.yaml: rules[0].actions[1].channel",
                "'desk' has no slack address",
                "add contacts.people.desk.slack",
            ),
        ]

    def test_unknown_vendor_role(self) -> None:
        """email_vendor names a role some vendor defines, or an address."""
        problems = problems_of(
            """
            rules:
              - name: r
                actions:
                  - {type: email_vendor, to: [ceo, ops@vendor.example], subject: s, body: b}
            """
        )
        assert paths(problems) == ["10-rules.yaml: rules[0].actions[0].to[0]"]
        assert "account_manager, escalation" in problems[0][2]

    def test_unknown_calendar(self) -> None:
        """A named calendar must be among the calendars given to the loader."""
        rules = """
            rules:
              - name: r
                chain:
                  - only_between: {calendar: us-east}
                    actions: [{type: lessons_learned}]
            """
        problems = problems_of(rules)
        assert paths(problems) == ["10-rules.yaml: rules[0].chain[0].only_between.calendar"]
        known = {"us-east": BusinessCalendar.always_open("us-east")}
        assert problems_of(rules, calendars=known) == []

    def test_duplicate_rule_names_across_files(self) -> None:
        """Rule names are unique across all files; the second use points to the first."""
        from ticketbridge.rules import rules_from_data

        rule = {"name": "same", "actions": [{"type": "lessons_learned"}]}
        rs, problems = rules_from_data({"a.yaml": {"rules": [rule]}, "b.yaml": {"rules": [rule]}})
        assert problems == [
            (
                "b.yaml: rules[0].name",
                "rule name 'same' is already used by a.yaml: rules[0]",
                "give every rule its own name (across all rule files)",
            )
        ]
        assert [r.name for r in rs.rules] == ["same"]

    def test_tiers_defined_twice(self) -> None:
        """The tier ladder lives in one file."""
        from ticketbridge.rules import rules_from_data

        tiers = {"tiers": [{"name": "T1", "queue": "B"}]}
        _, problems = rules_from_data({"a.yaml": tiers, "b.yaml": tiers})
        assert problems == [
            (
                "b.yaml: tiers",
                "tiers are already defined in a.yaml",
                "define the tier ladder in one file only",
            )
        ]


class TestTemplatesAndSanity:
    def test_template_syntax_error_has_line(self) -> None:
        """A template that does not parse is reported with its line at load time."""
        problems = problems_of(
            """
            rules:
              - name: r
                actions:
                  - type: vendor_note
                    template: "line one\\n{{ ticket.summary "
            """
        )
        assert paths(problems) == ["10-rules.yaml: rules[0].actions[0].template"]
        assert problems[0][1].startswith("template syntax error on line 2")

    def test_unknown_template_variable(self) -> None:
        """A template naming an unknown variable is caught at load time, with the known ones."""
        problems = problems_of(
            """
            rules:
              - name: r
                actions: [{type: email_vendor, subject: "{{ tikcet.summary }}", body: ok}]
            """
        )
        assert problems == [
            (
                "10-rules.yaml: rules[0].actions[0].subject",
                "template uses unknown variable(s): tikcet",
                "available: business_hours, link, now, rule, run, since, sla, ticket, vendor",
            )
        ]

    def test_nonsense_waits(self) -> None:
        """Waits beyond 30 days, repeats more often than a minute, floods of client updates."""
        problems = problems_of(
            """
            rules:
              - name: r
                chain:
                  - after: 45d
                    repeat: 2
                    every: 30s
                    actions: [{type: client_update, every: 1m}]
            """
        )
        assert paths(problems) == [
            "10-rules.yaml: rules[0].chain[0].after",
            "10-rules.yaml: rules[0].chain[0].every",
            "10-rules.yaml: rules[0].chain[0].actions[0].every",
        ]

    def test_overlapping_window_hours(self) -> None:
        """Window intervals must not overlap."""
        problems = problems_of(
            """
            rules:
              - name: r
                chain:
                  - only_between: {hours: ["08:00-12:00", "11:00-17:00"], days: mon-fri}
                    actions: [{type: lessons_learned}]
            """
        )
        assert paths(problems) == ["10-rules.yaml: rules[0].chain[0].only_between.hours"]
        assert "overlap" in problems[0][1]

    def test_contradictory_conditions(self) -> None:
        """age_over at or above age_under can never hold; a level below 0 neither."""
        problems = problems_of(
            """
            rules:
              - name: r
                when: {age_over: 2h, age_under: 1h, not: {escalation_level_below: 0}}
                actions: [{type: lessons_learned}]
            """
        )
        assert paths(problems) == [
            "10-rules.yaml: rules[0].when.age_under",
            "10-rules.yaml: rules[0].when.not.escalation_level_below",
        ]


class TestLoadRules:
    def test_reads_yaml_files_in_name_order_with_file_paths(self, tmp_path: Path) -> None:
        """Files load in name order; problems carry the file path; bad rules are left out."""
        (tmp_path / "b.yaml").write_text(
            "rules:\n  - {name: second, actions: [{type: lessons_learned}]}\n"
        )
        (tmp_path / "a.yaml").write_text(
            "rules:\n  - {name: first, actions: [{type: lessons_learned}]}\n"
            "  - {name: broken, actions: [{type: vendor_note, template: '{{ x.y }}'}]}\n"
            "  - {name: disabled, enabled: false, actions: [{type: lessons_learned}]}\n"
        )
        (tmp_path / "notes.txt").write_text("ignored")
        rs, problems = load_rules(tmp_path)
        assert [r.name for r in rs.rules] == ["first", "second"]
        assert paths(problems) == [f"{tmp_path / 'a.yaml'}: rules[1].actions[0].template"]

    def test_yaml_syntax_error_has_line(self, tmp_path: Path) -> None:
        """Broken YAML is reported with its line and column."""
        (tmp_path / "x.yaml").write_text("rules:\n  - name: [unclosed\n")
        _, problems = load_rules(tmp_path)
        assert len(problems) == 1
        assert problems[0][0] == str(tmp_path / "x.yaml")
        assert "not valid YAML at line" in problems[0][1]

    def test_missing_directory_and_raise(self, tmp_path: Path) -> None:
        """A missing directory is a problem; load_rules_or_raise turns problems into ConfigError."""
        with pytest.raises(ConfigError, match="rules directory not found"):
            load_rules_or_raise(tmp_path / "nope")


class TestProductWords:
    """A product's own words for ticket fields, given as aliases, load as the neutral ones."""

    ALIASES = {"lane": "queue", "crew": "group", "handler": "assignee"}
    NEUTRAL = {
        "tiers": [
            {"name": "T1", "queue": "Desk"},
            {"name": "T2", "queue": "Desk", "group": "Second", "assignee": "ann"},
        ],
        "rules": [
            {
                "name": "r1",
                "when": {"queue": "Desk", "any": [{"group": "First"}, {"assignee": "bob"}]},
                "actions": [{"type": "move_psa_ticket", "queue": "Other", "assignee": "cy"}],
            }
        ],
    }
    PRODUCT = {
        "tiers": [
            {"name": "T1", "lane": "Desk"},
            {"name": "T2", "lane": "Desk", "crew": "Second", "handler": "ann"},
        ],
        "rules": [
            {
                "name": "r1",
                "when": {"lane": "Desk", "any": [{"crew": "First"}, {"handler": "bob"}]},
                "actions": [{"type": "move_psa_ticket", "lane": "Other", "handler": "cy"}],
            }
        ],
    }

    def test_aliases_load_as_the_neutral_words(self) -> None:
        """Tiers, nested conditions and moves written with aliases equal the neutral file."""
        from ticketbridge.rules import rules_from_data

        neutral, p1 = rules_from_data({"n.yaml": self.NEUTRAL})
        product, p2 = rules_from_data({"p.yaml": self.PRODUCT}, aliases=self.ALIASES)
        assert ([], [], neutral.directory.tiers, neutral.rules[0].model) == (
            p1,
            p2,
            product.directory.tiers,
            product.rules[0].model,
        )

    def test_without_aliases_product_words_are_unknown_keys(self) -> None:
        """No product declares the words: they are reported, not silently ignored."""
        from ticketbridge.rules import rules_from_data

        _, problems = rules_from_data({"p.yaml": self.PRODUCT})
        assert {"p.yaml: tiers[0].lane", "p.yaml: rules[0].when.lane"} <= {
            path for path, _, _ in problems
        }

    def test_registered_products_supply_the_aliases(self) -> None:
        """The registry merges every product's declared words (ConnectWise: board -> queue)."""
        from ticketbridge.adapters import field_aliases

        words = field_aliases()
        assert ("queue", "group", "assignee", "queues", "watch_queues") == (
            words["board"],
            words["team"],
            words["owner"],
            words["boards"],
            words["watch_boards"],
        )
