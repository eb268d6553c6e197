"""An engine wired to two in-memory systems and a real store, driven by a fake clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.fake.adapter import FakeAdapter, FakeSettings, FakeWorld
from ticketbridge.clock import FakeClock
from ticketbridge.config import TicketBridgeConfig, load_config
from ticketbridge.domain import Contact, Ticket, Visibility
from ticketbridge.engine import Engine
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store, repo

SLA: dict[str, Any] = {
    "calendars": [
        {"name": "24x7", "hours": "24x7"},
        {
            "name": "ny-office",
            "timezone": "America/New_York",
            "hours": {"mon-fri": ["08:00-17:00"]},
            "holidays": {"country": "US", "subdivision": "NY"},
        },
    ],
    "contracts": [
        {
            "name": "Vendor critical",
            "vendor": "vendor",
            "calendar": "24x7",
            "acknowledgment_by": "first_public_comment",
            "thresholds": [50, 75, 100],
            "targets": {
                "1": {
                    "acknowledgment": {"duration": "15m", "business": False},
                    "update_cadence": {"duration": "30m", "business": False},
                    "resolution": {"duration": "4h", "business": False},
                },
                "3": {"acknowledgment": "2h", "resolution": "2d"},
            },
        }
    ],
    "ball": {
        "vendor": {
            "rules": [
                {"vendor_class": "waiting_on_customer", "ball": "msp"},
                {"vendor_status": "Resolved", "ball": "msp"},
                {"vendor_status": ["Closed", "Canceled"], "ball": "resolved"},
            ],
            "resolved_statuses": ["Resolved", "Closed", "Canceled"],
            "in_progress_statuses": ["In Progress"],
        }
    },
}


def make_config(
    store_url: str,
    *,
    sla_config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    **connection: Any,
) -> TicketBridgeConfig:
    conn: dict[str, Any] = {
        "name": "main",
        "psa": "psa",
        "vendor": "vendor",
        "routing": {"queues": ["Vendor Escalations"]},
        "accounts": {"ACME": {"company": "acme-sys-id"}},
        "status_map": {
            "vendor_to_psa": {"Resolved": "Vendor Resolved"},
            "psa_to_vendor": {"Cancelled": "Canceled"},
        },
        "priority_map": {"psa_to_vendor": {"P1": "1", "P3": "3"}},
    }
    conn.update(connection)
    return load_config(
        {
            "store": {"url": store_url},
            "engine": {
                "overlap": 60,
                "initial_lookback": 3600,
                "max_attempts": 3,
                "backoff_min": 1,
                "backoff_max": 10,
            },
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [conn],
            "sla": sla_config or {},
            **(extra or {}),
        }
    )


@dataclass
class Harness:
    clock: FakeClock
    store: Store
    psa: FakeAdapter
    vendor: FakeAdapter
    engine: Engine
    metrics: Metrics

    @classmethod
    def build(
        cls,
        store: Store,
        *,
        sla_config: dict[str, Any] | None = None,
        clock: FakeClock | None = None,
        extra: dict[str, Any] | None = None,
        **connection: Any,
    ) -> Harness:
        clock = clock or FakeClock()
        config = make_config(
            str(store.url.render_as_string(hide_password=False)),
            sla_config=sla_config,
            extra=extra,
            **connection,
        )
        psa = FakeAdapter(
            AdapterContext("psa", "http://psa.invalid"), FakeSettings(), FakeWorld(clock=clock.now)
        )
        vendor = FakeAdapter(
            AdapterContext("vendor", "http://vendor.invalid"),
            FakeSettings(),
            FakeWorld(clock=clock.now),
        )
        metrics = Metrics()
        engine = Engine(config, store, {"psa": psa, "vendor": vendor}, metrics, clock)
        return cls(clock, store, psa, vendor, engine, metrics)

    def psa_ticket(self, summary: str = "Internet down", **fields: Any) -> Ticket:
        defaults: dict[str, Any] = {
            "queue": "Vendor Escalations",
            "status": "New",
            "priority": "P1",
            "company": "ACME",
            "company_name": "Acme Dental",
            "contact": Contact("Dana Lee", "dana@acme.example", "555-0100"),
            "description": "The main office lost its internet link.",
        }
        defaults.update(fields)
        return self.psa.world.add_ticket("psa", summary, **defaults)

    def psa_note(
        self, ticket: Ticket, text: str, visibility: Visibility, author: str = "John Smith"
    ) -> Any:
        return self.psa.world.add_note("psa", ticket.ref.id, text, visibility, author)

    def vendor_note(
        self, ticket_id: str, text: str, visibility: Visibility, author: str = "Beth Anglin"
    ) -> Any:
        return self.vendor.world.add_note("vendor", ticket_id, text, visibility, author)

    async def settle(self, rounds: int = 10) -> None:
        """Poll both sides, take hints and dispatch until nothing moves."""
        for _ in range(rounds):
            moved = await self.engine.poll("psa")
            moved += await self.engine.poll("vendor")
            moved += await self.engine.process_hints()
            moved += await self.engine.dispatch_once()
            self.clock.advance(1)
            if not moved and not self.due():
                return

    def due(self) -> int:
        with self.store.tx() as c:
            return sum(1 for r in repo.outbox_rows(c, states=["pending", "sending"]))

    def link(self) -> Any:
        with self.store.tx() as c:
            rows = repo.list_links(c)
        assert len(rows) == 1, rows
        return rows[0]

    def outbox(self, *states: str) -> list[Any]:
        with self.store.tx() as c:
            return repo.outbox_rows(c, states=list(states) or None)
