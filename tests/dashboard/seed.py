"""A store seeded for the dashboard: links of two vendors and four clients, supplier
clocks (running, paused with the ball at the MSP, breached), escalations, a link with
notes and writes, and dead letters; and the daemon parts the admin app reads from.

Everything is derived from the link number, so a test knows what each filter must
return without reading the store back (see :func:`expected`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketbridge.clock import FakeClock
from ticketbridge.config import TicketBridgeConfig, load_config
from ticketbridge.engine import Engine
from ticketbridge.health import HealthRegistry
from ticketbridge.metrics import Metrics
from ticketbridge.sla.clock import ClockPolicy, EventKind, SlaEvent, repair, sweep_status
from ticketbridge.store import Store, bulk, repo
from ticketbridge.wiring import build_adapters

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
TOKEN = "admin-token-0123456789abcdef"
USER, PASSWORD = "operator", "correct horse battery"

VENDORS = ("vendor", "isp")
CLIENTS = ("ACME", "Globex", "Initech", "Umbrella")

SLA: dict[str, Any] = {
    "calendars": [{"name": "24x7", "hours": "24x7"}],
    "contracts": [
        {
            "name": f"{vendor} contract",
            "vendor": vendor,
            "calendar": "24x7",
            "acknowledgment_by": "first_public_comment",
            "targets": {
                "1": {
                    "acknowledgment": {"duration": "30m", "business": False},
                    "resolution": {"duration": "8h", "business": False},
                }
            },
        }
        for vendor in VENDORS
    ],
}


def make_config(store_url: str, **admin: Any) -> TicketBridgeConfig:
    return load_config(
        {
            "store": {"url": store_url},
            "server": {"host": "127.0.0.1", "port": 0},
            "admin": {"host": "127.0.0.1", "port": 0, **admin},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {
                    "kind": "fake",
                    "base_url": "http://vendor.invalid",
                    "request_budget": {"requests": 300, "per": "5m"},
                },
                "isp": {"kind": "fake", "base_url": "http://isp.invalid"},
            },
            "connections": [
                {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["V"]}},
                {"name": "isp", "psa": "psa", "vendor": "isp", "routing": {"queues": ["I"]}},
            ],
            "sla": SLA,
        }
    )


# -- what each link is, by its number (1-based) ------------------------------------------


def vendor_of(i: int) -> str:
    return VENDORS[i % 2]


def client_of(i: int) -> str:
    return CLIENTS[i % 4]


def state_of(i: int) -> str:
    return "closed" if i % 10 == 0 else "open"


def ball_of(i: int) -> str:
    """Links 5, 10, 15 ... wait on the MSP (their clocks paused 40 s after opening)."""
    return "msp" if i % 5 == 0 else "vendor"


def breached_of(i: int) -> bool:
    """Never acknowledged, opened 2 h ago, with the vendor: the 30 min acknowledgment
    target is breached (a clock paused at once is not)."""
    return i % 3 == 0 and ball_of(i) == "vendor"


def escalated_of(i: int) -> bool:
    return i % 7 == 0


def dead_of(i: int) -> bool:
    return i % 50 == 1


def expected(n: int, **f: Any) -> list[int]:
    """Link numbers matching the filter ``f`` (state defaults to open), newest first."""
    checks = {
        "state": state_of,
        "vendor": vendor_of,
        "client": client_of,
        "ball": ball_of,
        "breached": breached_of,
        "escalated": escalated_of,
    }
    f.setdefault("state", "open")
    return [i for i in range(n, 0, -1) if all(f[k] is None or checks[k](i) == f[k] for k in f)]


def _clock(i: int, policy: ClockPolicy, now: datetime) -> tuple[dict[str, Any], Any, bool]:
    opened = now - (timedelta(hours=2) if breached_of(i) else timedelta(minutes=1 + i % 20))
    events = [SlaEvent(opened, EventKind.OPENED, 1)]
    if not breached_of(i) and i % 4 == 0:
        events.append(SlaEvent(opened + timedelta(seconds=30), EventKind.VENDOR_PUBLIC_UPDATE, 2))
    if ball_of(i) == "msp":
        events.append(SlaEvent(opened + timedelta(seconds=40), EventKind.BALL, 3, value="msp"))
    state = repair(events, policy, now).state
    status = sweep_status(state, now)
    return state.to_dict(), status.next_wakeup, bool(status.breached)


def seed(store: Store, config: TicketBridgeConfig, n: int, now: datetime = NOW) -> None:
    """Fill ``store`` with ``n`` links numbered 1..n (their ids), in bulk."""
    calendar = config.sla.build_calendars()["24x7"]
    contracts = {c.vendor: c for c in config.sla.contracts}
    policies = {v: ClockPolicy.from_contract(contracts[v], "1", calendar) for v in VENDORS}
    chunk = 5_000
    for first in range(1, n + 1, chunk):
        links, events, clocks, writes = [], [], [], []
        for i in range(first, min(n, first + chunk - 1) + 1):
            vendor = vendor_of(i)
            created = now - timedelta(hours=3)
            links.append(
                {
                    "id": i,
                    "connection": "main" if vendor == "vendor" else "isp",
                    "psa_system": "psa",
                    "psa_ticket_id": str(100_000 + i),
                    "psa_number": f"T{100_000 + i}",
                    "vendor_system": vendor,
                    "vendor_ticket_id": f"v{i}",
                    "vendor_number": f"INC{i:07d}",
                    "state": state_of(i),
                    "origin": "routed",
                    "company": client_of(i),
                    "psa_status": "Waiting Vendor",
                    "vendor_status": "In Progress",
                    "psa_priority": "P1",
                    "vendor_priority": "1",
                    "created_at": created,
                    "updated_at": created,
                }
            )
            events.append(
                {
                    "link_id": i,
                    "connection": links[-1]["connection"],
                    "system": vendor,
                    "kind": "vendor_ticket_seen",
                    "detail": {"number": f"INC{i:07d}"},
                    "occurred_at": created,
                    "recorded_at": created,
                }
            )
            if escalated_of(i):
                events.append(
                    {
                        "link_id": i,
                        "connection": links[-1]["connection"],
                        "system": vendor,
                        "kind": "rule_escalated",
                        "detail": {"rule": "vendor-ack-watch", "step": 0},
                        "occurred_at": created + timedelta(minutes=31),
                        "recorded_at": created + timedelta(minutes=31),
                    }
                )
            state, wake, breached = _clock(i, policies[vendor], now)
            clocks.append(
                {
                    "link_id": i,
                    "contract": contracts[vendor].name,
                    "priority": "1",
                    "policy_key": policies[vendor].key,
                    "state": state,
                    "next_wakeup": wake,
                    "breached": breached,
                    "updated_at": now,
                }
            )
            if dead_of(i):
                writes.append(
                    {
                        "link_id": i,
                        "target_system": vendor,
                        "operation": "add_note",
                        "key": f"dead{i:027d}",
                        "payload": {"body": "Client reports the line is still down"},
                        "state": "dead",
                        "attempts": 8,
                        "uncertain": False,
                        "next_attempt_at": now - timedelta(minutes=5),
                        "last_error": "HTTP 403: write refused by an ACL on comments",
                        "created_at": now - timedelta(minutes=50),
                    }
                )
        with store.tx() as c:
            bulk.add_links(c, links)
            bulk.add_events(c, events)
            bulk.add_clocks(c, clocks)
            bulk.add_outbox(c, writes)
    with store.tx() as c:
        # the first link's notes: one mirrored, one kept home as internal
        for note, state, reason in (("n1", "done", None), ("n2", "skipped", "internal")):
            repo.insert_ledger(
                c,
                link_id=1,
                source_system="psa",
                source_note_id=note,
                source_created_at=now - timedelta(minutes=90),
                target_system=vendor_of(1),
                target_note_id="t1" if state == "done" else None,
                key=f"key-{note}",
                state=state,
                reason=reason,
                created_at=now - timedelta(minutes=90),
            )


@dataclass
class Service:
    """The daemon parts the admin app reads (what :class:`ticketbridge.daemon.Daemon` has)."""

    config: TicketBridgeConfig
    store: Store
    engine: Engine
    metrics: Metrics
    adapters: dict[str, Any]
    clock: FakeClock
    health: HealthRegistry = field(default_factory=HealthRegistry)


def service(store: Store, config: TicketBridgeConfig, now: datetime = NOW) -> Service:
    clock = FakeClock(now)
    adapters = build_adapters(config, clock=clock)
    metrics = Metrics()
    engine = Engine(config, store, adapters, metrics, clock)
    return Service(config, store, engine, metrics, adapters, clock, HealthRegistry(clock.now))


#: What :func:`seed_records` records (the pages' tests check against these).
LESSON_OPEN, LESSON_CLOSED = 1, 2  # LL-1 on link 10, LL-2 on link 20 (closed)
INVESTIGATION = 1  # BI-1 on link 3
#: A summary a ticket could carry: the pages must show it as text.
HOSTILE = '<script>alert("x")</script> fibre cut & <b>outage</b>'
#: Closeouts: #1 Umbrella (done, replaced by #2), #2 Umbrella (closing), #3 Initech (done).
OLD_CLOSEOUT, CLOSING, DONE = 1, 2, 3
STILL_OPEN_REASON = "INC0000007 still In Progress at isp after 10m"


def seed_records(store: Store, now: datetime = NOW) -> None:
    """Post-incident reviews and client closeouts, through the store functions the rules,
    the SLA engine and ``ticketbridge closeout`` use."""
    from ticketbridge.store import closeout as co_store
    from ticketbridge.store import rules, sla
    from ticketbridge.store import timeline as records

    with store.tx() as c:
        for link_id, hours in ((10, 2), (20, 1)):
            rules.open_lessons_learned(
                c,
                link_id,
                rule="lessons",
                key=f"lessons:{link_id}",
                summary=f"T{100_000 + link_id}: {HOSTILE}",
                details="closed after the vendor resolved",
                now=now - timedelta(hours=hours),
            )
        records.close_lesson(c, LESSON_CLOSED, now=now, findings="the ISP's NOC was not paged")
        sla.open_investigation(
            c,
            link_id=3,
            connection="isp",
            vendor_system="isp",
            vendor_ticket="INC0000003",
            contract="isp contract",
            priority="1",
            metric="acknowledgment",
            episode=1,
            target_seconds=900.0,
            elapsed_seconds=1800.0,
            business=False,
            breached_at=now - timedelta(minutes=30),
            vendor_last_action=None,
            vendor_last_action_at=None,
            state="open",
            opened_at=now - timedelta(minutes=30),
        )
        old = co_store.start_closeout(c, "Umbrella", now - timedelta(days=2))
        co_store.add_ticket(c, old, 3, disposition="cancel", state="confirmed", now=now)
        co_store.finish(c, old, done=True, reason=None, now=now - timedelta(days=2))
        closing = co_store.start_closeout(c, "Umbrella", now - timedelta(hours=1))
        co_store.add_ticket(c, closing, 3, disposition="complete", state="confirmed", now=now)
        co_store.add_ticket(
            c,
            closing,
            7,
            disposition="complete",
            state="open",
            vendor_status="In Progress",
            reason=STILL_OPEN_REASON,
            now=now,
        )
        co_store.finish(c, closing, done=False, reason=STILL_OPEN_REASON, now=now)
        done = co_store.start_closeout(c, "Initech", now - timedelta(hours=3))
        co_store.add_ticket(c, done, 2, disposition="cancel", state="confirmed", now=now)
        co_store.add_ticket(c, done, 6, disposition="none", state="nothing_to_close", now=now)
        co_store.finish(c, done, done=True, reason=None, now=now - timedelta(hours=2))
