"""Configuration: loading, secrets, environment overrides, and check-config's problems."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ticketbridge.cli import app
from ticketbridge.config import load_config, parse_duration
from ticketbridge.domain import StatusClass
from ticketbridge.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "config" / "ticketbridge.example.yaml"
ENV = {
    "CW_PUBLIC_KEY": "pubkey-1",
    "CW_CLIENT_ID": "guid-1",
    "SNOW_PASSWORD": "snow-pw-1",
    "SNOW_WEBHOOK_TOKEN": "hook-token-1",
    "SMTP_PASSWORD": "smtp-pw-1",
    # the chat channels the shipped rules notify (config/rules/00-directory.yaml)
    "TEAMS_SERVICE_DESK_URL": "https://msp.webhook.office.com/webhookb2/service-desk",
    "TEAMS_TIER2_URL": "https://msp.webhook.office.com/webhookb2/tier2",
    "TEAMS_MANAGERS_URL": "https://msp.webhook.office.com/webhookb2/managers",
    "SLACK_DISPATCH_URL": "https://hooks.slack.com/services/T0/B0/dispatch",
    "SLACK_MANAGERS_URL": "https://hooks.slack.com/services/T0/B0/managers",
    "NOC_WEBHOOK_URL": "https://noc.msp.example/hooks/ticketbridge",
}


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    secret = tmp_path / "cw_private_key"
    secret.write_text("private-key-1\n")
    secret.chmod(0o600)
    data = yaml.safe_load(EXAMPLE.read_text())
    data["systems"]["cw"]["settings"]["private_key"] = {"file": str(secret)}
    data["store"]["url"] = f"sqlite:///{tmp_path / 'tb.db'}"
    data["rules"]["directory"] = str(EXAMPLE.parent / "rules")
    return data


def problems(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(data)
    return info.value.problems


def paths(data: dict[str, Any]) -> set[str]:
    return {p for p, _, _ in problems(data)}


class TestExample:
    def test_example_loads(self, example):
        """The shipped example is valid once its secrets exist."""
        cfg = load_config(example)
        assert {"cw", "snow"} == set(cfg.systems)
        assert cfg.systems["cw"].poll_interval == 60.0
        s = cfg.adapter_settings("cw")
        assert s.private_key.get_secret_value() == "private-key-1"  # type: ignore[attr-defined]

    def test_display_names_default_to_the_product(self, example):
        """Clients and vendors read a system's product name, not its config key; a
        configured display_name wins."""
        cfg = load_config(example)
        assert ("ConnectWise PSA", "ServiceNow") == (
            cfg.display_name("cw"),
            cfg.display_name("snow"),
        )
        example["systems"]["snow"]["display_name"] = "Acme's ServiceNow"
        assert load_config(example).display_name("snow") == "Acme's ServiceNow"

    def test_env_overrides_yaml(self, example, monkeypatch):
        """TICKETBRIDGE_ variables override the file."""
        monkeypatch.setenv("TICKETBRIDGE_SERVER__PORT", "9999")
        monkeypatch.setenv("TICKETBRIDGE_SYSTEMS__CW__POLL_INTERVAL", "5m")
        cfg = load_config(example)
        assert cfg.server.port == 9999
        assert cfg.systems["cw"].poll_interval == 300.0


class TestProblems:
    def test_missing_secret_names_variable(self, example, monkeypatch):
        """A missing environment secret is reported at its YAML path with the variable."""
        monkeypatch.delenv("SNOW_PASSWORD")
        found = problems(example)
        assert [(p,) for p, m, _ in found if "SNOW_PASSWORD" in m] == [
            ("systems.snow.settings.password",)
        ]

    def test_env_and_file_both_set_is_refused(self, example, monkeypatch, tmp_path):
        """Setting both NAME and NAME_FILE is an error, not a guess."""
        f = tmp_path / "pw"
        f.write_text("x" * 8)
        monkeypatch.setenv("SNOW_PASSWORD_FILE", str(f))
        assert "systems.snow.settings.password" in paths(example)

    def test_every_problem_is_listed_at_once(self, example):
        """Unknown kind, bad URL, unknown system, unmapped status: all reported together."""
        data = copy.deepcopy(example)
        data["systems"]["snow"]["kind"] = "servicenowz"
        data["systems"]["cw"]["base_url"] = "ftp://nowhere"
        data["connections"][0]["vendor"] = "nope"
        found = paths(data)
        assert {"systems.snow.kind", "systems.cw.base_url", "connections[0].vendor"} <= found

    def test_status_without_mapping(self, example):
        """Every vendor status needs a PSA mapping (null allowed)."""
        data = copy.deepcopy(example)
        del data["connections"][0]["status_map"]["vendor_to_psa"]["On Hold"]
        found = problems(data)
        hits = [(p, m) for p, m, _ in found if "On Hold" in m]
        assert hits == [
            ("connections[0].status_map.vendor_to_psa", "vendor status 'On Hold' has no mapping")
        ]

    def test_unknown_field_and_bad_duration(self, example):
        """Typos and bad durations are named with their paths."""
        data = copy.deepcopy(example)
        data["engine"]["overlapp"] = 5
        data["systems"]["cw"]["poll_interval"] = "soon"
        found = paths(data)
        assert {"engine.overlapp", "systems.cw.poll_interval"} <= found

    def test_adapter_settings_validated(self, example):
        """An adapter's own settings are checked against its model."""
        data = copy.deepcopy(example)
        del data["systems"]["cw"]["settings"]["company_id"]
        assert "systems.cw.settings.company_id" in paths(data)

    def test_psa_vendor_sides_checked(self, example):
        """A vendor-only adapter cannot be the PSA of a connection."""
        data = copy.deepcopy(example)
        data["connections"][0]["psa"], data["connections"][0]["vendor"] = "snow", "cw"
        assert {"connections[0].psa", "connections[0].vendor"} <= paths(data)


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("30", 30),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86400),
            ("250ms", 0.25),
            (15, 15),
        ],
    )
    def test_parse(self, text, seconds):
        """Durations accept bare seconds and s/m/h/d/ms units."""
        assert seconds == parse_duration(text)

    @pytest.mark.parametrize("bad", ["", "soon", "-5s", True])
    def test_refuse(self, bad):
        """Nonsense is refused."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


class TestCheckConfigCommand:
    def test_ok_exits_zero(self, example, tmp_path):
        """check-config exits 0 on a sound file."""
        f = tmp_path / "tb.yaml"
        f.write_text(yaml.safe_dump(example))
        result = CliRunner().invoke(app, ["check-config", str(f)])
        assert result.exit_code == 0, result.output
        assert "OK" in result.output

    def test_problems_exit_two_with_paths_and_hints(self, example, tmp_path):
        """check-config exits 2 listing each problem with its path and a hint."""
        example["systems"]["snow"]["kind"] = "servicenowz"
        f = tmp_path / "tb.yaml"
        f.write_text(yaml.safe_dump(example))
        result = CliRunner().invoke(app, ["check-config", str(f)])
        assert result.exit_code == 2
        assert "systems.snow.kind" in result.output
        assert "hint: one of:" in result.output

    def test_bad_yaml(self, tmp_path):
        """Broken YAML names the line."""
        f = tmp_path / "tb.yaml"
        f.write_text("systems:\n  cw: [unclosed\n")
        result = CliRunner().invoke(app, ["check-config", str(f)])
        assert result.exit_code == 2
        assert "line" in result.output


class TestFileVariables:
    def test_file_variable_supplies_value(self, example, monkeypatch, tmp_path):
        """TICKETBRIDGE_STORE__PASSWORD_FILE reads the store password from a file."""
        f = tmp_path / "pg"
        f.write_text("s3cret-pg-pw\n")
        f.chmod(0o600)
        monkeypatch.setenv("TICKETBRIDGE_STORE__PASSWORD_FILE", str(f))
        assert load_config(example).store.password == "s3cret-pg-pw"

    def test_missing_file_is_a_problem(self, example, monkeypatch, tmp_path):
        """A _FILE variable naming a missing file is reported, not ignored."""
        monkeypatch.setenv("TICKETBRIDGE_STORE__PASSWORD_FILE", str(tmp_path / "nope"))
        assert "store.password (from TICKETBRIDGE_STORE__PASSWORD_FILE)" in paths(example)


class TestSlaProblems:
    def test_unknown_calendar_and_priority_are_named(self, example):
        """check-config names a contract's unknown calendar and unknown priority by path."""
        data = copy.deepcopy(example)
        data["sla"]["contracts"][0]["calendar"] = "nope"
        data["sla"]["contracts"][0]["targets"]["9"] = {"acknowledgment": "1h"}
        found = paths(data)
        assert "sla.contracts[0].calendar" in found
        assert "sla.contracts[0].targets.9" in found

    def test_example_contracts_load(self, example):
        """The shipped example's SLA section is valid: two calendars, two contracts."""
        cfg = load_config(example)
        assert ["vendor-us-east", "24x7"] == [c.name for c in cfg.sla.calendars]
        assert "15m" == cfg.sla.contracts[0].targets["1"].acknowledgment.duration


class TestRulesProblems:
    def test_shipped_rules_load_with_the_example(self, example):
        """The example points at config/rules, whose rule files are valid."""
        cfg = load_config(example)
        assert cfg.rules.directory is not None
        assert cfg.rules.directory.endswith("rules")

    def test_rule_problems_are_listed_with_file_paths(self, example, tmp_path):
        """A broken rule file is reported with its file and YAML path."""
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "bad.yaml").write_text(
            "rules:\n  - name: r1\n    when: {priority: P1}\n"
            "    actions: [{type: move_psa_ticket, to_tier: Nowhere}]\n"
        )
        example["rules"]["directory"] = str(rules)
        found = problems(example)
        assert any("bad.yaml" in path and "rules[0]" in path for path, _, _ in found)

    def test_smtp_settings_checked(self, example):
        """Bad SMTP settings are named under notify.smtp."""
        example["notify"]["smtp"]["port"] = 0
        assert "notify.smtp.port" in paths(example)


class TestProblemsAreNotRepeated:
    def test_a_missing_secret_is_one_problem(self, example, monkeypatch):
        """A missing secret is reported once, with its variable, not again by the schema."""
        monkeypatch.delenv("SMTP_PASSWORD")
        monkeypatch.delenv("CW_PUBLIC_KEY")
        found = problems(example)
        assert [p for p, _, _ in found] == [
            "systems.cw.settings.public_key",
            "notify.smtp.password",
        ]


class TestNeutralWords:
    def test_example_routes_by_queue_and_classes_statuses(self, example):
        """The example writes neutral words; its status class override is read typed."""
        cfg = load_config(example)
        routing = cfg.connections[0].routing
        assert (["Vendor Escalations"], ["Service Desk"]) == (
            routing.queues,
            routing.watch_queues,
        )
        expected = {"Waiting Vendor": StatusClass.WAITING_ON_THIRD_PARTY}
        assert expected == cfg.systems["cw"].status_classes

    def test_product_words_are_aliases(self, example):
        """A PSA's own words (a ConnectWise board is its queue) route the same."""
        routing = example["connections"][0]["routing"]
        routing["boards"] = routing.pop("queues")
        routing["watch_boards"] = routing.pop("watch_queues")
        cfg = load_config(example)
        assert (["Vendor Escalations"], ["Service Desk"]) == (
            cfg.connections[0].routing.queues,
            cfg.connections[0].routing.watch_queues,
        )

    def test_alias_and_neutral_word_together_are_refused(self, example):
        """Both ``boards`` and ``queues``: the alias is an unknown key, reported by path."""
        example["connections"][0]["routing"]["boards"] = ["Other"]
        assert "connections[0].routing.boards" in paths(example)

    def test_unknown_status_class_and_bad_rank_are_problems(self, example):
        """check-config names a class that does not exist and a rank below 1."""
        example["systems"]["cw"]["status_classes"] = {"Waiting Vendor": "on_hold"}
        example["systems"]["cw"]["priority_ranks"] = {"Priority 1 - Emergency Response": 0}
        found = paths(example)
        assert {
            "systems.cw.status_classes.Waiting Vendor",
            "systems.cw.priority_ranks.Priority 1 - Emergency Response",
        } <= found

    def test_shipped_rules_accept_product_words(self, example, tmp_path):
        """Tiers, conditions and moves written with a PSA's own words load at check-config."""
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "00.yaml").write_text(
            "tiers:\n"
            "  - {name: T1, board: Service Desk}\n"
            "  - {name: T2, board: Service Desk, team: Tier 2, owner: adavis}\n"
            "rules:\n"
            "  - name: r1\n"
            "    when: {board: Service Desk, team: Tier 1}\n"
            "    actions: [{type: move_psa_ticket, board: Vendor Escalations, owner: jsmith}]\n"
        )
        example["rules"]["directory"] = str(rules)
        assert load_config(example).rules.directory == str(rules)


class TestRuleChannels:
    """Issue 8 item 3: a rule naming a channel or secret that is not configured fails the check."""

    def test_missing_chat_url_names_rule_step_and_fix(self, example, monkeypatch):
        """A shipped rule notifying on Teams whose URL variable is unset is a problem."""
        monkeypatch.delenv("TEAMS_TIER2_URL")
        found = [p for p in problems(example) if "TEAMS_TIER2_URL" in p[1]]
        assert len(found) == 1
        path, message, hint = found[0]
        assert path.endswith("10-tiered-procedure.yaml: rules[0].chain[0].actions[1]")
        assert "rule 'tiered-escalation' step 1 notifies 'tier2' on teams" in message
        assert "contacts.people.tier2.teams" in message
        assert "export TEAMS_TIER2_URL=" in hint

    def test_email_without_mail_relay(self, example):
        """E-mail actions (notify by e-mail, email_vendor) need notify.smtp."""
        example["notify"]["smtp"] = None
        found = problems(example)
        hits = [(p, m) for p, m, _ in found if "no mail relay" in m]
        assert hits, found
        assert all("rule '" in m for _, m in hits)
        assert any("email_vendor" in m for _, m in hits)

    def test_custom_rule_secret_file_and_bad_url(self, example, tmp_path):
        """A custom rule's secret file that is missing and a plain URL that is none: both named."""
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "00.yaml").write_text(
            "contacts:\n"
            "  people:\n"
            f"    noc: {{webhook: {{file: {tmp_path / 'absent'}}}}}\n"
            "    desk: {slack: not-a-url}\n"
            "rules:\n"
            "  - name: page-noc\n"
            "    when: {priority: P1}\n"
            "    actions:\n"
            "      - {type: notify, channel: webhook, to: noc, template: 'P1 {{ ticket.number }}'}\n"
            "      - {type: notify, channel: slack, to: desk, template: 'P1 {{ ticket.number }}'}\n"
        )
        example["rules"]["directory"] = str(rules)
        found = {p.rsplit(": ", 1)[-1]: (m, h) for p, m, h in problems(example) if "00.yaml" in p}
        message, hint = found["rules[0].actions[0]"]
        assert "rule 'page-noc' notifies 'noc' on webhook" in message
        assert "cannot read secret file" in message
        assert "mount the secret file" in hint
        message, _ = found["rules[0].actions[1]"]
        assert "is not a usable slack URL" in message


class TestOnePass:
    """Issue 8 item 15: every problem in one pass, not stage by stage."""

    def test_schema_secret_file_and_rule_problems_together(self, example, monkeypatch, tmp_path):
        """A typo in the schema, a missing _FILE secret and a broken rule are all reported."""
        monkeypatch.setenv("TICKETBRIDGE_STORE__PASSWORD_FILE", str(tmp_path / "nope"))
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "bad.yaml").write_text(
            "rules:\n  - name: r1\n    when: {priority: P1}\n"
            "    actions: [{type: move_psa_ticket, to_tier: Nowhere}]\n"
        )
        example["rules"]["directory"] = str(rules)
        example["engine"]["overlapp"] = 5
        example["connections"][0]["notes"]["psa_public"] = "loud"
        del example["connections"][0]["status_map"]["vendor_to_psa"]["On Hold"]
        found = problems(example)
        where = [p for p, _, _ in found]
        assert "engine.overlapp" in where
        assert "store.password (from TICKETBRIDGE_STORE__PASSWORD_FILE)" in where
        assert "connections[0].notes.psa_public" in where
        assert any("bad.yaml" in p and "to_tier" in p for p in where)
        # the connection with a bad field is still checked for everything else
        assert any("'On Hold' has no mapping" in m for _, m, _ in found)


class TestEnvironmentNamed:
    def test_overridden_value_names_its_variable(self, example, monkeypatch):
        """A bad value from TICKETBRIDGE_... says which variable set it."""
        monkeypatch.setenv("TICKETBRIDGE_ENGINE__WRITE_LEASE", "soon")
        monkeypatch.setenv("TICKETBRIDGE_SYSTEMS__CW__TIMEOUT", "never")
        found = paths(example)
        assert "engine.write_lease (from TICKETBRIDGE_ENGINE__WRITE_LEASE)" in found
        assert "systems.cw.timeout (from TICKETBRIDGE_SYSTEMS__CW__TIMEOUT)" in found

    def test_file_values_are_not_named(self, example):
        """Values from the file keep their plain path."""
        example["engine"]["write_lease"] = "soon"
        assert "engine.write_lease" in paths(example)


class TestAdminWording:
    """Library wording is rewritten into the administrator's terms."""

    def test_unknown_setting_did_you_mean(self, example):
        example["engine"]["overlapp"] = 5
        example["systems"]["cw"]["settings"]["company_idd"] = "x"
        found = {p: (m, h) for p, m, h in problems(example)}
        assert found["engine.overlapp"][0] == (
            "unknown setting `overlapp` in engine — did you mean `overlap`?"
        )
        message, _ = found["systems.cw.settings.company_idd"]
        assert message == (
            "unknown setting `company_idd` in systems.cw.settings — did you mean `company_id`?"
        )
        assert not any("Extra inputs" in m for m, _ in found.values())

    def test_unknown_setting_without_a_close_name_lists_the_known(self, example):
        example["server"]["colour"] = "blue"
        found = {p: (m, h) for p, m, h in problems(example)}
        message, hint = found["server.colour"]
        assert message == "unknown setting `colour` in server"
        assert "host, max_body, metrics, port" in hint

    def test_numbers_choices_and_required(self, example):
        example["engine"]["max_attempts"] = "three"
        example["server"]["port"] = 70000
        example["connections"][0]["notes"]["psa_public"] = "loud"
        del example["systems"]["cw"]["settings"]["company_id"]
        found = {p: m for p, m, _ in problems(example)}
        assert found["engine.max_attempts"] == "must be a whole number"
        assert found["server.port"] == "must be at most 65535"
        assert found["connections[0].notes.psa_public"] == (
            "must be one of: 'public', 'private' or 'skip'"
        )
        assert found["systems.cw.settings.company_id"] == "`company_id` is required"
        assert not any("Input should" in m or "Field required" in m for m in found.values())

    def test_rule_files_speak_the_same_words(self, example, tmp_path):
        """A rule file's wrong types read the same as the configuration's."""
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "00.yaml").write_text(
            "rules:\n"
            "  - name: r1\n"
            "    chain:\n"
            "      - after: 5m\n"
            "        repeat: lots\n"
            "        actions: [{type: vendor_note, template: hi, visibility: loud}]\n"
        )
        example["rules"]["directory"] = str(rules)
        found = {p.rsplit(": ", 1)[-1]: m for p, m, _ in problems(example) if "00.yaml" in p}
        assert found["rules[0].chain[0].repeat"] == "must be a whole number"
        assert found["rules[0].chain[0].actions[0].visibility"] == (
            "must be one of: 'public' or 'internal'"
        )
