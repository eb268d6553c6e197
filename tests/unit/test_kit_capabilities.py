"""Capabilities are data and enforced: at run time by the adapter base class, and at config check."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from tests.adapters import sn_payloads
from ticketbridge.adapters.base import AdapterContext, Capability, capabilities_for_change
from ticketbridge.adapters.fake.adapter import FakeAdapter, FakeSettings
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter
from ticketbridge.config import load_config
from ticketbridge.domain import FieldChange, NoteDraft, TicketDraft, Visibility, WebhookRequest
from ticketbridge.errors import (
    CapabilityError,
    ConfigError,
    PermanentError,
    WebhookAuthError,
)

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parents[2] / "config" / "ticketbridge.example.yaml"


class NotesOnly(FakeAdapter):
    """A product that can only read and add notes."""

    kind = "fake"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.ADD_NOTE})


@pytest.fixture
def notes_only() -> NotesOnly:
    adapter = NotesOnly(AdapterContext("acme", "http://acme.invalid"), FakeSettings())
    adapter.world.add_ticket("acme", "printer on fire", status="New")
    return adapter


class TestRunTime:
    async def test_create_ticket_refused_without_call(self, notes_only: NotesOnly) -> None:
        with pytest.raises(CapabilityError) as info:
            await notes_only.create_ticket(TicketDraft(summary="x", description="y"), "k1")
        assert "create_ticket" == info.value.capability
        assert "fake" == info.value.product
        assert "'create_ticket'" in str(info.value)
        assert "acme" in str(info.value)
        assert [] == notes_only.world.calls  # the adapter's own code never ran
        assert isinstance(info.value, PermanentError)

    async def test_declared_capability_runs(self, notes_only: NotesOnly) -> None:
        note = NoteDraft(text="hello", visibility=Visibility.PUBLIC)
        assert await notes_only.add_note("1", note, "k1") is not None

    @pytest.mark.parametrize(
        ("change", "capability"),
        [
            (FieldChange(status="Closed"), "set_status"),
            (FieldChange(priority="1"), "set_priority"),
            (FieldChange(fields={"escalation": "1"}), "set_fields"),
            (FieldChange(queue="Tier 2"), "assign"),
            (FieldChange(assignee="jdoe"), "assign"),
        ],
    )
    async def test_update_refused_per_field(
        self, notes_only: NotesOnly, change: FieldChange, capability: str
    ) -> None:
        with pytest.raises(CapabilityError) as info:
            await notes_only.update_ticket("1", change)
        assert capability == info.value.capability
        assert [] == notes_only.world.calls

    async def test_external_ref_and_empty_change_need_nothing(self, notes_only: NotesOnly) -> None:
        await notes_only.update_ticket("1", FieldChange())
        await notes_only.update_ticket("1", FieldChange(external_ref="INC001"))
        assert "INC001" == notes_only.world.tickets["1"].external_ref

    async def test_find_by_number_refused(self, notes_only: NotesOnly) -> None:
        with pytest.raises(CapabilityError, match="find_by_number"):
            await notes_only.find_ticket("1")

    async def test_webhooks_refused_as_auth_error(self, notes_only: NotesOnly) -> None:
        """Without WEBHOOKS a webhook is refused with 401, and the error says why."""
        with pytest.raises(CapabilityError) as info:
            await notes_only.webhook_hints(WebhookRequest(headers={}, query={}, body=b"{}"))
        assert isinstance(info.value, WebhookAuthError)
        assert 401 == info.value.status_code  # type: ignore[attr-defined]

    def test_change_needs(self) -> None:
        change = FieldChange(status="x", priority="1", group="T", fields={"a": "b"})
        expected = {
            Capability.SET_STATUS,
            Capability.SET_PRIORITY,
            Capability.SET_FIELDS,
            Capability.ASSIGN,
        }
        assert expected == capabilities_for_change(change)

    async def test_servicenow_cannot_assign(self) -> None:
        """ServiceNow does not declare ASSIGN: moving a board is refused before any request."""
        adapter = sn_payloads.adapter()
        try:
            with pytest.raises(CapabilityError, match="assign"):
                await adapter.update_ticket("a" * 32, FieldChange(queue="Tier 2"))
        finally:
            await adapter.aclose()


# -- config check -------------------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name in ("CW_PUBLIC_KEY", "CW_CLIENT_ID", "SNOW_PASSWORD", "SNOW_WEBHOOK_TOKEN"):
        monkeypatch.setenv(name, f"{name.lower()}-1")
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-1")
    for name in ("TEAMS_SERVICE_DESK_URL", "TEAMS_TIER2_URL", "TEAMS_MANAGERS_URL"):
        monkeypatch.setenv(name, "https://msp.webhook.office.com/webhookb2/x")
    for name in ("SLACK_DISPATCH_URL", "SLACK_MANAGERS_URL"):
        monkeypatch.setenv(name, "https://hooks.slack.com/services/T0/B0/x")
    secret = tmp_path / "cw_private_key"
    secret.write_text("private-key-1\n")
    secret.chmod(0o600)
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["systems"]["cw"]["settings"]["private_key"] = {"file": str(secret)}
    data["store"]["url"] = f"sqlite:///{tmp_path / 'tb.db'}"
    data["rules"]["directory"] = str(EXAMPLE.parent / "rules")
    return data


def capability_problems(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(data)
    return [p for p in info.value.problems if "lacks" in p[1]]


def without(monkeypatch: pytest.MonkeyPatch, *caps: Capability) -> None:
    monkeypatch.setattr(
        ServiceNowAdapter, "capabilities", ServiceNowAdapter.capabilities - set(caps)
    )


class TestConfigCheck:
    def test_example_needs_nothing_missing(self, example: dict[str, Any]) -> None:
        """The example pairing (every capability present) loads without a problem."""
        config = load_config(example)
        assert ["snow"] == [c.vendor for c in config.connections]

    def test_vendor_without_create_ticket(self, example, monkeypatch) -> None:
        without(monkeypatch, Capability.CREATE_TICKET)
        found = capability_problems(example)
        assert ["connections[0].vendor"] == [p for p, _, _ in found]
        _, message, hint = found[0]
        assert "ServiceNow" in message
        assert "'create_ticket'" in message
        assert "'snow'" in message
        assert hint

    def test_mirrored_notes_without_add_note(self, example, monkeypatch) -> None:
        without(monkeypatch, Capability.ADD_NOTE)
        paths = [p for p, _, _ in capability_problems(example)]
        assert "connections[0].notes" in paths

    def test_skipped_notes_need_no_add_note(self, example, monkeypatch) -> None:
        without(monkeypatch, Capability.ADD_NOTE)
        data = copy.deepcopy(example)
        data["connections"][0]["notes"] = {"psa_public": "skip", "psa_internal": "skip"}
        data["rules"]["directory"] = None
        assert [] == capability_problems_or_none(data)

    def test_status_and_priority_maps(self, example, monkeypatch) -> None:
        without(monkeypatch, Capability.SET_STATUS, Capability.SET_PRIORITY)
        example["connections"][0]["status_map"]["psa_to_vendor"] = {"Cancelled": "Canceled"}
        paths = {p for p, _, _ in capability_problems(example)}
        assert {
            "connections[0].status_map.psa_to_vendor",
            "connections[0].priority_map.psa_to_vendor",
        } <= paths

    def test_rule_actions(self, example, monkeypatch) -> None:
        """Rule actions that set the vendor's priority or fields need those capabilities."""
        without(monkeypatch, Capability.SET_PRIORITY, Capability.SET_FIELDS)
        found = capability_problems(example)
        rule_paths = [p for p, _, _ in found if ".yaml: rules[" in p]
        assert rule_paths, "the example rules set vendor priority and fields"
        assert all(".chain[0].actions[" in p for p in rule_paths)
        assert {"'set_priority'", "'set_fields'"} <= {m.rsplit(" ", 1)[-1] for _, m, _ in found}

    def test_webhook_secret_without_webhooks(self, example, monkeypatch) -> None:
        without(monkeypatch, Capability.WEBHOOKS)
        found = capability_problems(example)
        assert ["systems.snow.settings.webhook_token"] == [p for p, _, _ in found]
        assert "'webhooks'" in found[0][1]


def capability_problems_or_none(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    try:
        load_config(data)
    except ConfigError as exc:
        return [p for p in exc.problems if "lacks" in p[1]]
    return []


class TestRequestBudgetConfig:
    def test_product_default(self, example: dict[str, Any]) -> None:
        """Without an override a system gets its product's documented quota (or none)."""
        cfg = load_config(example)
        assert (1000, 60.0) == cfg.request_budget("cw")
        assert cfg.request_budget("snow") is None

    @pytest.mark.parametrize(
        "block", [{"requests": 300, "per": "5m"}, {"requests": 300, "per_seconds": 300}]
    )
    def test_override(self, example: dict[str, Any], block: dict[str, Any]) -> None:
        example["systems"]["snow"]["request_budget"] = block
        assert (300, 300.0) == load_config(example).request_budget("snow")

    @pytest.mark.parametrize(
        ("block", "path"),
        [
            ({"requests": 0, "per": "1m"}, "systems.snow.request_budget.requests"),
            ({"requests": 10, "per": "soon"}, "systems.snow.request_budget.per"),
            ({"requests": 10}, "systems.snow.request_budget.per"),
        ],
    )
    def test_invalid_override(self, example: dict[str, Any], block: Any, path: str) -> None:
        example["systems"]["snow"]["request_budget"] = block
        with pytest.raises(ConfigError) as info:
            load_config(example)
        assert path in {p for p, _, _ in info.value.problems}

    def test_daemon_gives_each_system_its_own_bucket(self, example: dict[str, Any]) -> None:
        from ticketbridge.wiring import build_adapters

        example["systems"]["snow"]["request_budget"] = {"requests": 5, "per": "1s"}
        adapters = build_adapters(load_config(example))
        cw, snow = adapters["cw"].http.budget, adapters["snow"].http.budget
        assert cw is not None
        assert snow is not None
        assert (1000, 60.0) == (cw.requests, cw.per_seconds)
        assert (5, 1.0) == (snow.requests, snow.per_seconds)
