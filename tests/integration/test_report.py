"""The supplier scorecard against a hand-computed fixture: every number is worked out below.

Six vendor tickets, all at the vendor system ``vendor`` under one contract on a 24x7
calendar in calendar time, with these targets by vendor priority:

    "1": acknowledgment 15m, resolution 4h
    "3": acknowledgment 2h,  resolution 2d
    "4": acknowledgment 1h,  resolution 1d
    "2": not in the contract -> no target

T0 = Monday 2026-03-02 10:00 UTC; the report is evaluated at NOW = T0 + 24h.
The ball stays with the vendor throughout (no pauses).

    A  P1  opened T0, public comment T0+10m, resolved T0+3h.
           ack 10m (met), resolution 3h (met): compliant, 0 breaches.
           Rule runs: two client updates (not escalations).
    B  P1  opened T0, public comment T0+25m, resolved T0+5h.
           ack 25m: breached by 10m; resolution 5h: breached by 60m -> 2 breaches, 70 min.
           Rule runs: one run that raised the vendor's priority (an escalation), one client
           update and one "verify with client" notification (not escalations).
    C  P1  opened T0, never acknowledged, not resolved.
           At NOW: ack 24h running, breached by 24h - 15m = 1425m; resolution 24h running,
           breached by 24h - 4h = 1200m -> 2 breaches, 2625 min.  No ack or resolution time.
           Rule runs: two escalations (tier move, then e-mail to the vendor's desk).
    D  P2  opened T0, public comment T0+40m, not resolved.  No target: not compliant,
           not non-compliant; its acknowledgment time (40m) is still a measured time.
    E  P3  opened T0, public comment T0+1h, not resolved (24h of 2d used): compliant.
    F  P4  opened T0+20h, never acknowledged, not resolved.
           At NOW: ack 4h running, breached by 4h - 1h = 180m; resolution 4h of 1d: met so
           far -> 1 breach, 180 min, compliance 0 %.  No acknowledgment time at all:
           its median is missing, not 0.

Per row (percentiles interpolate between closest ranks: p90 of [a, b] = a + 0.9 (b - a)):

    P1   tickets 3, no target 0, acknowledged 2 (10m, 25m), resolved 2 (3h, 5h)
         ack median (10+25)/2 = 17m30s, ack p90 10 + 0.9*15 = 23.5m = 23m30s
         resolution median 4h, p90 3h + 0.9*2h = 4.8h = 4h48m
         compliance 1 of 3 = 33.3 %, breaches 2 + 2 = 4, minutes 70 + 2625 = 2695
         escalations 1 (B) + 2 (C) = 3
    P2   tickets 1, no target 1, acknowledged 1, resolved 0
         ack median = p90 = 40m; resolution missing; compliance, breaches, minutes missing
         escalations 0
    P3   tickets 1, no target 0, acknowledged 1, resolved 0
         ack median = p90 = 1h; resolution missing; compliance 100.0, breaches 0, minutes 0
    P4   tickets 1, no target 0, acknowledged 0, resolved 0
         ack and resolution missing; compliance 0.0, breaches 1, minutes 180
    all  tickets 6, no target 1, acknowledged 4 (10m, 25m, 40m, 60m), resolved 2
         ack median (25+40)/2 = 32m30s; p90 rank 3*0.9 = 2.7 -> 40 + 0.7*20 = 54m
         resolution median 4h, p90 4h48m
         compliance: 5 with a target (A B C E F), 2 compliant (A E) = 40.0 %
         breaches 4 + 1 = 5, minutes 2695 + 180 = 2875, escalations 3, reopens 0
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.harness import Harness
from ticketbridge.clock import FakeClock
from ticketbridge.report import collect, render_csv, render_html, render_json, render_table
from ticketbridge.store import Store, repo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

M = timedelta(minutes=1)
H = timedelta(hours=1)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NOW = T0 + 24 * H

SLA: dict[str, Any] = {
    "calendars": [{"name": "24x7", "hours": "24x7"}],
    "contracts": [
        {
            "name": "Vendor contract",
            "vendor": "vendor",
            "calendar": "24x7",
            "acknowledgment_by": "first_public_comment",
            "targets": {
                "1": {
                    "acknowledgment": {"duration": "15m", "business": False},
                    "resolution": {"duration": "4h", "business": False},
                },
                "3": {
                    "acknowledgment": {"duration": "2h", "business": False},
                    "resolution": {"duration": "2d", "business": False},
                },
                "4": {
                    "acknowledgment": {"duration": "1h", "business": False},
                    "resolution": {"duration": "1d", "business": False},
                },
            },
        }
    ],
}

#: name -> (vendor priority, opened, public comment, resolved, rule runs: escalated?)
TICKETS: dict[str, tuple[str, timedelta, timedelta | None, timedelta | None, list[bool]]] = {
    "A": ("1", 0 * M, 10 * M, 3 * H, [False, False]),
    "B": ("1", 0 * M, 25 * M, 5 * H, [True, False, False]),
    "C": ("1", 0 * M, None, None, [True, True]),
    "D": ("2", 0 * M, 40 * M, None, []),
    "E": ("3", 0 * M, 1 * H, None, []),
    "F": ("4", 20 * H, None, None, []),
}


def _fixture(store: Store) -> Harness:
    h = Harness.build(store, sla_config=SLA, clock=FakeClock(NOW))
    with store.tx() as c:
        for name, (priority, opened, comment, resolved, runs) in TICKETS.items():
            at = T0 + opened
            link_id = repo.insert_link(
                c,
                connection="main",
                psa_system="psa",
                psa_ticket_id=f"psa-{name}",
                psa_number=name,
                vendor_system="vendor",
                vendor_ticket_id=f"v-{name}",
                vendor_number=f"INC-{name}",
                state="open",
                origin="routed",
                company="ACME",
                vendor_status="New",
                vendor_priority=priority,
                created_at=at,
                updated_at=at,
            )
            common = {"link_id": link_id, "connection": "main", "now": NOW}
            repo.add_event(c, "vendor_ticket_seen", occurred_at=at, **common)
            repo.add_event(
                c,
                "vendor_status_changed",
                occurred_at=at,
                old=None,
                new="New",
                status_class="new",
                **common,
            )
            if comment is not None:
                repo.add_event(
                    c,
                    "vendor_note",
                    occurred_at=T0 + comment,
                    visibility="public",
                    author="Vendor engineer",
                    **common,
                )
            if resolved is not None:
                repo.add_event(
                    c,
                    "vendor_status_changed",
                    occurred_at=T0 + resolved,
                    old="New",
                    new="Resolved",
                    status_class="resolved",
                    **common,
                )
            for step, escalated in enumerate(runs):
                run_at = at + (step + 1) * M
                # every rule run is an escalation_step; only escalations add rule_escalated
                repo.add_event(
                    c, "escalation_step", occurred_at=run_at, rule="r", step=step, **common
                )
                if escalated:
                    repo.add_event(
                        c, "rule_escalated", occurred_at=run_at, rule="r", step=step, **common
                    )
    assert h.engine.sla_repair() == len(TICKETS)
    return h


def _rows(store: Store, h: Harness) -> dict[str, Any]:
    report = collect(store, h.engine.config, since=T0 - 24 * H, now=NOW)
    return {r.priority: r for r in report.rows}


class TestScorecardFixture:
    async def test_every_number(self, store: Store):
        h = _fixture(store)
        rows = _rows(store, h)
        assert list(rows) == ["1", "2", "3", "4", "all"]
        p1, p2, p3, p4, total = (rows[k] for k in ("1", "2", "3", "4", "all"))

        assert (p1.tickets, p1.no_target, p1.acknowledged, p1.resolved) == (3, 0, 2, 2)
        assert (p1.ack_median, p1.ack_p90) == (17 * M + timedelta(seconds=30), 23.5 * M)
        assert (p1.resolution_median, p1.resolution_p90) == (4 * H, 4.8 * H)
        assert p1.compliance_pct == pytest.approx(100 / 3)
        assert (p1.breach_count, p1.breach_minutes) == (4, pytest.approx(2695))
        assert (p1.escalations, p1.reopens) == (3, 0)

        assert (p2.tickets, p2.no_target, p2.acknowledged, p2.resolved) == (1, 1, 1, 0)
        assert (p2.ack_median, p2.ack_p90) == (40 * M, 40 * M)
        assert (p2.resolution_median, p2.resolution_p90) == (None, None)
        assert (p2.compliance_pct, p2.breach_count, p2.breach_minutes) == (None, None, None)
        assert p2.escalations == 0

        assert (p3.tickets, p3.no_target, p3.acknowledged, p3.resolved) == (1, 0, 1, 0)
        assert (p3.ack_median, p3.resolution_median) == (1 * H, None)
        assert (p3.compliance_pct, p3.breach_count, p3.breach_minutes) == (100.0, 0, 0.0)

        assert (p4.tickets, p4.no_target, p4.acknowledged, p4.resolved) == (1, 0, 0, 0)
        assert (p4.ack_median, p4.ack_p90, p4.resolution_median) == (None, None, None)
        assert (p4.compliance_pct, p4.breach_count) == (0.0, 1)
        assert p4.breach_minutes == pytest.approx(180)

        assert (total.tickets, total.no_target, total.acknowledged, total.resolved) == (6, 1, 4, 2)
        assert (total.ack_median, total.ack_p90) == (32.5 * M, 54 * M)
        assert (total.resolution_median, total.resolution_p90) == (4 * H, 4.8 * H)
        assert total.compliance_pct == pytest.approx(40.0)
        assert (total.breach_count, total.breach_minutes) == (5, pytest.approx(2875))
        assert (total.escalations, total.reopens) == (3, 0)

    async def test_text_table(self, store: Store):
        from rich.console import Console

        h = _fixture(store)
        report = collect(store, h.engine.config, since=T0 - 24 * H, now=NOW)
        console = Console(width=250, record=True)
        console.print(render_table(report))
        lines = {
            line.split("│")[2].strip(): [cell.strip() for cell in line.split("│")[1:-1]]
            for line in console.export_text().splitlines()
            if line.count("│") > 10
        }
        # vendor priority tickets no-target acked resolved ack-med ack-p90 res-med res-p90
        # compliance breaches breach-minutes escalations reopens
        assert lines["1"] == [
            "vendor", "1", "3", "0", "2", "2", "17m 30s", "23m 30s", "4h 00m", "4h 48m",
            "33.3", "4", "2695", "3", "0",
        ]  # fmt: skip
        assert lines["2"] == [
            "vendor", "2", "1", "1", "1", "0", "40m", "40m", "—", "—", "—", "—", "—", "0", "0",
        ]  # fmt: skip
        assert lines["4"] == [
            "vendor", "4", "1", "0", "0", "0", "—", "—", "—", "—", "0.0", "1", "180", "0", "0",
        ]  # fmt: skip
        assert lines["all"] == [
            "vendor", "all", "6", "1", "4", "2", "32m 30s", "54m", "4h 00m", "4h 48m",
            "40.0", "5", "2875", "3", "0",
        ]  # fmt: skip

    async def test_json_and_csv(self, store: Store):
        h = _fixture(store)
        report = collect(store, h.engine.config, since=T0 - 24 * H, now=NOW)
        data = {r["priority"]: r for r in json.loads(render_json(report))["rows"]}
        assert data["1"]["ack_median_seconds"] == 17.5 * 60
        assert data["1"]["escalations"] == 3
        assert data["2"]["no_target"] == 1
        assert data["2"]["compliance_pct"] is None
        assert data["2"]["breach_count"] is None
        assert data["2"]["breach_minutes"] is None
        assert data["4"]["ack_median_seconds"] is None  # never acknowledged: no data, not 0
        assert data["4"]["compliance_pct"] == 0.0
        assert data["all"]["compliance_pct"] == pytest.approx(40.0)
        assert data["all"]["breach_minutes"] == pytest.approx(2875)

        table = {r["priority"]: r for r in csv.DictReader(io.StringIO(render_csv(report)))}
        assert table["2"]["compliance_pct"] == ""
        assert table["2"]["no_target"] == "1"
        assert table["4"]["ack_median_seconds"] == ""
        assert table["4"]["compliance_pct"] == "0.0"
        assert table["all"]["escalations"] == "3"

    async def test_html_shows_missing_as_missing(self, store: Store):
        h = _fixture(store)
        page = render_html(collect(store, h.engine.config, since=T0 - 24 * H, now=NOW))
        charts = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
        assert len(charts) == 3
        compliance, ack, breach = charts

        def bar(chart: str, label: str) -> str:
            """The text after a row's label: its value, or its 'no data' note."""
            found = re.search(rf">{re.escape(label)}</text>(.*?)</text>", chart, re.DOTALL)
            assert found, (label, chart)
            return found.group(1)

        # the never-acknowledged P4 has no median acknowledgment: "no data", not a 0.0 bar
        assert "no data" in bar(ack, "vendor P4")
        assert ">0.0 min<" not in ack
        assert "17.5 min" in bar(ack, "vendor P1")
        # P2 has no target: no compliance bar (it is not 0 % compliant) and no breach bar
        assert "no target" in bar(compliance, "vendor P2")
        assert "no target" in bar(breach, "vendor P2")
        assert "33.3 %" in bar(compliance, "vendor P1")
        assert "0.0 %" in bar(compliance, "vendor P4")  # a real 0: it breached
        assert "2695.0 min" in bar(breach, "vendor P1")
        # the table: missing cells are a dash
        p2 = re.search(r"<tr><td>vendor</td><td>2</td>(.*?)</tr>", page, re.DOTALL)
        assert p2 is not None
        # resolution median and p90, compliance, breaches, breach minutes
        assert p2.group(1).count("<td>—</td>") == 5
