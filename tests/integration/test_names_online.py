"""check-config --online against the ConnectWise and ServiceNow simulators (issue 8 item 15).

A typo in a routed queue, a rule's priority or status, a vendor field: each is named with
its configuration path and the closest existing name, and check-config exits non-zero.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.adapters.connectwise.simulator import ConnectWiseState
from ticketbridge.adapters.connectwise.simulator import create_app as cw_app
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter
from ticketbridge.adapters.servicenow.simulator import ServiceNowState
from ticketbridge.adapters.servicenow.simulator import create_app as sn_app
from ticketbridge.cli import app
from ticketbridge.config import load_config
from ticketbridge.errors import ConfigError
from ticketbridge.sandbox.server import SandboxServer

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "ticketbridge.example.yaml"
CHAT = "https://hooks.example/ticketbridge"
ENV = {
    "CW_PUBLIC_KEY": "pub",
    "CW_CLIENT_ID": "00000000-0000-0000-0000-000000000000",
    "SNOW_PASSWORD": "integration-pass",
    "SNOW_WEBHOOK_TOKEN": "hook-token",
    "SMTP_PASSWORD": "smtp-pw",
    **{
        name: CHAT
        for name in (
            "TEAMS_SERVICE_DESK_URL",
            "TEAMS_TIER2_URL",
            "TEAMS_MANAGERS_URL",
            "SLACK_DISPATCH_URL",
            "SLACK_MANAGERS_URL",
            "NOC_WEBHOOK_URL",
        )
    },
}


class World:
    def __init__(self, cw: ConnectWiseState, sn: ServiceNowState, data: dict[str, Any]) -> None:
        self.cw, self.sn, self.data = cw, sn, data

    def check(self, tmp_path: Path) -> tuple[int, str]:
        f = tmp_path / "tb.yaml"
        f.write_text(yaml.safe_dump(self.data))
        result = CliRunner().invoke(app, ["check-config", "--online", str(f)])
        return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    key = tmp_path / "cw_private_key"
    key.write_text("priv")
    key.chmod(0o600)
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    cw_state, sn_state = ConnectWiseState(), ServiceNowState()
    with SandboxServer(cw_app(cw_state)) as cw, SandboxServer(sn_app(sn_state)) as sn:
        data = yaml.safe_load(EXAMPLE.read_text())
        data["systems"]["cw"]["base_url"] = cw.url + "/v4_6_release/apis/3.0"
        data["systems"]["cw"]["settings"]["private_key"] = {"file": str(key)}
        data["systems"]["snow"]["base_url"] = sn.url
        data["store"]["url"] = f"sqlite:///{tmp_path / 'tb.db'}"
        data["rules"]["directory"] = str(rules)
        yield World(cw_state, sn_state, data)


def test_the_example_and_shipped_rules_pass(world, tmp_path):
    """Every name of the example and the shipped rules exists in the simulators' seed data."""
    code, output = world.check(tmp_path)
    assert code == 0, output
    assert "names checked online" in output


def test_typos_exit_non_zero_with_did_you_mean(world, tmp_path):
    """A routed queue, a status map value, a rule's priority, move status and vendor field."""
    conn = world.data["connections"][0]
    conn["routing"]["queues"] = ["Vendor Escalation"]
    conn["status_map"]["vendor_to_psa"]["In Progress"] = "Waiting on Vendr"
    conn["accounts"]["ACME"]["caller"] = conn["accounts"]["ACME"].pop("caller_id")
    conn["sla"]["breach_psa_fields"] = {"custom:Vendor Nme": "Breached"}
    world.cw.create_ticket(
        {"summary": "any ticket shows the custom fields", "company": {"identifier": "ACME"}}
    )
    (Path(world.data["rules"]["directory"]) / "90-custom.yaml").write_text(
        "rules:\n"
        "  - name: custom-p1\n"
        "    when: {priority: Priority 1 - Emergency Respons}\n"
        "    actions:\n"
        "      - {type: move_psa_ticket, status: In Progres, assignee: jsmiht}\n"
        "      - {type: set_vendor_field, field: urgancy, value: '1'}\n"
    )
    code, output = world.check(tmp_path)
    assert code == 2, output
    expected = [
        (
            "connections[0].routing.queues[0]: cw (ConnectWise PSA) has no queue "
            "'Vendor Escalation' hint: did you mean 'Vendor Escalations'?"
        ),
        (
            "connections[0].status_map.vendor_to_psa.In Progress: cw (ConnectWise PSA) has no "
            "status 'Waiting on Vendr' hint: did you mean 'Waiting on Vendor'?"
        ),
        (
            "connections[0].accounts.ACME.caller: snow (ServiceNow) has no field 'caller' "
            "hint: did you mean 'caller_id'?"
        ),
        (
            "rules[0].when.priority: cw (ConnectWise PSA) has no priority "
            "'Priority 1 - Emergency Respons' hint: did you mean 'Priority 1 - Emergency Response'?"
        ),
        (
            "rules[0].actions[0].status: cw (ConnectWise PSA) has no status 'In Progres' "
            "hint: did you mean 'In Progress'?"
        ),
        (
            "rules[0].actions[0].assignee: cw (ConnectWise PSA) has no assignee 'jsmiht' "
            "hint: did you mean 'jsmith'?"
        ),
        (
            "rules[0].actions[1].field: snow (ServiceNow) has no field 'urgancy' "
            "hint: did you mean 'urgency'?"
        ),
    ]
    expected.append(
        "connections[0].sla.breach_psa_fields.custom:Vendor Nme: cw (ConnectWise PSA) has no "
        "field 'custom:Vendor Nme' hint: did you mean 'custom:Vendor Name'?"
    )
    for line in expected:
        assert line in output, line
    assert "8 problem(s)" in output  # one line per name and place, nothing else


def test_wrong_credentials_are_named(world, tmp_path):
    """A system that refuses the credentials is a problem naming the system."""
    world.data["systems"]["cw"]["settings"]["company_id"] = "other"
    code, output = world.check(tmp_path)
    assert code == 2
    assert "cannot log in to cw (ConnectWise PSA)" in output
    assert "credentials are not valid" in output


def test_missing_rights_show_the_products_error(world, tmp_path):
    """Without rights to members (ConnectWise) or the dictionary (ServiceNow): the 403s."""
    world.cw.deny("/system/members", "Member Maintenance")
    world.sn.deny_read("sys_dictionary")
    code, output = world.check(tmp_path)
    assert code == 2
    assert "cannot check assignee names at cw (ConnectWise PSA)" in output
    assert "You do not have access to Member Maintenance" in output
    assert "cannot check field names at snow (ServiceNow)" in output
    assert "User Not Authorized" in output


def test_a_product_without_the_check_says_not_checked(world, tmp_path, monkeypatch):
    """The base adapter checks nothing: its kinds are listed as not checked, not as OK."""
    monkeypatch.setattr(ServiceNowAdapter, "lookup_names", TicketAdapter.lookup_names)
    world.data["connections"][0]["accounts"]["ACME"]["caller"] = "x"
    code, output = world.check(tmp_path)
    assert code == 0, output
    assert "note: snow (ServiceNow): field names not checked" in output
    assert "note: snow (ServiceNow): status names not checked" in output


def test_daemon_start_warns_or_refuses(world, tmp_path, monkeypatch):
    """At start a missing name is a warning; with engine.strict_names the start is refused."""
    from ticketbridge.daemon import Daemon

    world.data["connections"][0]["routing"]["queues"] = ["Vendor Escalation"]
    cfg = load_config(world.data)
    daemon = Daemon(cfg)
    try:
        asyncio.run(daemon.check_names())  # a warning only
    finally:
        daemon.store.close()
    world.data["engine"]["strict_names"] = True
    strict = Daemon(load_config(world.data))
    try:
        with pytest.raises(ConfigError) as info:
            asyncio.run(strict.check_names())
    finally:
        strict.store.close()
    assert [p for p, _, _ in info.value.problems] == ["connections[0].routing.queues[0]"]


def test_run_with_strict_names_refuses_to_start(world, tmp_path):
    """`ticketbridge run` under engine.strict_names exits 2 naming the missing queue."""
    world.data["connections"][0]["routing"]["queues"] = ["Vendor Escalation"]
    world.data["engine"]["strict_names"] = True
    world.data["server"]["port"] = 0
    f = tmp_path / "tb.yaml"
    f.write_text(yaml.safe_dump(world.data))
    result = CliRunner().invoke(app, ["run", "--config", str(f)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert "connections[0].routing.queues[0]: cw (ConnectWise PSA) has no queue" in output
