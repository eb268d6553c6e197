"""A rules pass evaluates only the links whose conditions time may have changed (counts)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.fake.adapter import FakeAdapter, FakeSettings
from ticketbridge.clock import FakeClock
from ticketbridge.config import load_config
from ticketbridge.engine import Engine, core
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store, bulk, repo

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
LINKS = 30


def engine_for(tmp_path: Path, rules: list[dict[str, object]]) -> tuple[Engine, FakeClock]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "r.yaml").write_text(yaml.safe_dump({"timezone": "UTC", "rules": rules}))
    url = f"sqlite:///{tmp_path / 'tb.db'}"
    cfg = load_config(
        {
            "store": {"url": url},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["B"]}}
            ],
            "rules": {"directory": str(rules_dir)},
        }
    )
    store = Store(url)
    store.upgrade()
    with store.tx() as c:
        bulk.add_links(
            c,
            [
                {
                    "id": i,
                    "connection": "main",
                    "psa_system": "psa",
                    "psa_ticket_id": str(i),
                    "vendor_system": "vendor",
                    "vendor_ticket_id": f"v{i}",
                    "state": "open",
                    "origin": "routed",
                    "company": "ACME",
                    # links 1-10 turn 2 hours old at NOW + 1 h, the others at NOW + 90 min
                    "psa_snapshot": {
                        "created_at": (NOW - timedelta(hours=1 if i <= 10 else 0.5)).isoformat()
                    },
                    "created_at": NOW - timedelta(hours=1),
                    "updated_at": NOW,
                }
                for i in range(1, LINKS + 1)
            ],
        )
        bulk.add_events(
            c,
            [
                {"link_id": i, "kind": "vendor_ticket_seen", "detail": {}, "recorded_at": NOW}
                for i in range(1, LINKS + 1)
            ],
        )
    clock = FakeClock(NOW)
    adapters = {
        name: FakeAdapter(AdapterContext(name, f"http://{name}.invalid"), FakeSettings())
        for name in ("psa", "vendor")
    }
    engine = Engine(cfg, store, adapters, Metrics(), clock)  # type: ignore[arg-type]
    return engine, clock


OLD = {
    "name": "old",
    "when": {"age_over": "2h"},
    "actions": [{"type": "vendor_note", "template": "old"}],
}


def started(engine: Engine) -> int:
    with engine.store.tx() as c:
        return sum(
            1
            for i in range(1, LINKS + 1)
            for e in repo.link_events(c, i)
            if e.kind == "rule_chain_started"
        )


def test_a_pass_evaluates_only_links_whose_timer_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "ROLLING_BATCH", 5)
    engine, clock = engine_for(tmp_path, [OLD])
    try:
        assert asyncio.run(engine.rules_pass()) == LINKS  # first pass: every open link
        clock.advance(timedelta(minutes=1))
        assert asyncio.run(engine.rules_pass()) == 5  # only the rolling slice (links 1-5)
        assert started(engine) == 0
        clock.set(NOW + timedelta(hours=1, seconds=1))
        # links 1-10 turned two hours old, plus the rolling slice (links 6-10)
        assert asyncio.run(engine.rules_pass()) == 10 + 5
        assert started(engine) == 10
        clock.set(NOW + timedelta(hours=1, minutes=31))
        assert asyncio.run(engine.rules_pass()) == 20 + 5
        assert started(engine) == LINKS
    finally:
        engine.store.close()


def test_changed_rules_evaluate_every_open_link_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "ROLLING_BATCH", 5)
    engine, _ = engine_for(tmp_path, [OLD])
    try:
        assert asyncio.run(engine.rules_pass()) == LINKS
        assert asyncio.run(engine.rules_pass()) == 5
    finally:
        engine.store.close()
    newer = {**OLD, "when": {"age_over": "3h"}}
    (tmp_path / "rules" / "r.yaml").write_text(
        yaml.safe_dump({"timezone": "UTC", "rules": [newer]})
    )
    engine, _ = engine_for_existing(tmp_path)
    try:
        assert asyncio.run(engine.rules_pass()) == LINKS
        assert asyncio.run(engine.rules_pass()) == 5
    finally:
        engine.store.close()


def engine_for_existing(tmp_path: Path) -> tuple[Engine, FakeClock]:
    """An engine on the same store with the rules now in the directory (a restart)."""
    url = f"sqlite:///{tmp_path / 'tb.db'}"
    cfg = load_config(
        {
            "store": {"url": url},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["B"]}}
            ],
            "rules": {"directory": str(tmp_path / "rules")},
        }
    )
    clock = FakeClock(NOW)
    adapters = {
        name: FakeAdapter(AdapterContext(name, f"http://{name}.invalid"), FakeSettings())
        for name in ("psa", "vendor")
    }
    return Engine(cfg, Store(url), adapters, Metrics(), clock), clock  # type: ignore[arg-type]


def count_statements(engine: Engine) -> dict[str, int]:
    """Count the SQL statements the store runs, by their first word, while it is live."""
    counts: dict[str, int] = {}

    @sa.event.listens_for(engine.store.engine, "before_cursor_execute")
    def _count(*args: object) -> None:
        statement = str(args[2]).lstrip()
        word = statement.split(None, 1)[0].upper()
        counts[word] = counts.get(word, 0) + 1

    return counts


def test_a_full_pass_reads_each_batch_in_a_few_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "ROLLING_BATCH", 5)
    engine, clock = engine_for(tmp_path, [OLD])
    try:
        counts = count_statements(engine)
        assert asyncio.run(engine.rules_pass()) == LINKS
        # reads: the rules digest, the batch's ids (twice: the second finds none) and its
        # links, rule states, clocks and events; whatever the number of links
        assert counts.get("SELECT", 0) <= 8
        # writes: each link's new rule state (nothing fires yet) and the rules digest
        assert counts.get("INSERT", 0) == LINKS + 1
        counts.clear()
        clock.set(NOW + timedelta(hours=2))
        # every link's timer came (plus the rolling slice): each fires, still a few reads
        assert asyncio.run(engine.rules_pass()) == LINKS + 5
        assert counts.get("SELECT", 0) <= 12
        assert started(engine) == LINKS
    finally:
        engine.store.close()
