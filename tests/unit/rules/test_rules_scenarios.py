"""The seed procedures, walked on a fake timeline with the shipped config/rules/ files.

A small harness plays the PSA and the vendor: it builds Facts at each instant
(SLA clocks from ticketbridge.sla.clock), evaluates the shipped rules, stores
the state through JSON as the engine would, and applies the intents back onto
the ticket (moves change board/team/owner/status, vendor priority changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ticketbridge.rules import (
    AddNote,
    Facts,
    Intent,
    LinkFacts,
    MovePsaTicket,
    Notify,
    OpenLessonsLearned,
    PsaFacts,
    RuleSet,
    SendEmail,
    SetVendorField,
    SetVendorPriority,
    VendorNote,
    evaluate,
    explain,
    load_rules,
    sla_facts_from_snapshot,
)
from ticketbridge.rules.engine import Evaluation
from ticketbridge.sla.calendar import BusinessCalendar
from ticketbridge.sla.clock import ClockPolicy, EventKind, MetricPolicy, SlaEvent, repair, snapshot
from ticketbridge.sla.models import Ball

RULES_DIR = Path(__file__).resolve().parents[3] / "config" / "rules"
M = timedelta(minutes=1)
H = timedelta(hours=1)
P1 = "Priority 1 - Emergency Response"
P3 = "Priority 3 - Normal Response"

#: ServiceNow priority 1 under the supplier contract: 30 minutes to acknowledge,
#: hourly updates, 8 hours to resolve, counted 24x7.
POLICY = ClockPolicy(
    calendar=BusinessCalendar.always_open(),
    acknowledgment=MetricPolicy(30 * M, business=False),
    update_cadence=MetricPolicy(H, business=False),
    resolution=MetricPolicy(8 * H, business=False),
)


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    rs, problems = load_rules(RULES_DIR)
    assert problems == []
    return rs


@dataclass
class Ticket:
    """A PSA ticket and its vendor ticket, changed by the test and by the rules' intents."""

    created_at: datetime
    priority: str = P3
    queue: str = "Service Desk"
    status: str = "New"
    group: str | None = None
    assignee: str | None = None
    closed_at: datetime | None = None
    vendor_number: str | None = None
    vendor_priority: str | None = None
    vendor_fields: dict[str, str] = field(default_factory=dict)
    vendor_status: str | None = None
    resolved_at: datetime | None = None
    linked_at: datetime | None = None
    notes: list[VendorNote] = field(default_factory=list)
    events: list[SlaEvent] = field(default_factory=list)
    state: dict[str, Any] | None = None
    log: list[tuple[datetime, Intent]] = field(default_factory=list)

    def facts(self, now: datetime) -> Facts:
        sla = None
        if self.events:
            sla = sla_facts_from_snapshot(
                snapshot(repair(self.events, POLICY, now).state, POLICY, now)
            )
        public = [n for n in self.notes if n.at <= now]
        return Facts(
            now=now,
            psa=PsaFacts(
                id="7001",
                number="7001",
                summary="Practice management system down",
                priority=self.priority,
                queue=self.queue,
                type="Incident",
                company="ACME",
                status=self.status,
                assignee=self.assignee,
                group=self.group,
                created_at=self.created_at,
                closed=self.closed_at is not None and self.closed_at <= now,
                closed_at=self.closed_at,
            ),
            link=LinkFacts(
                link_id="link-1",
                connection="cw-snow",
                vendor_system="snow",
                vendor_ticket_id=None if self.vendor_number is None else "sys-1",
                vendor_ticket_number=self.vendor_number,
                vendor_status=self.vendor_status,
                vendor_priority=self.vendor_priority,
                ball=Ball.VENDOR if self.resolved_at is None else Ball.MSP,
                linked_at=self.linked_at,
                vendor_last_public_update_at=public[-1].at if public else None,
                latest_public_note=public[-1] if public else None,
                resolved=self.resolved_at is not None and self.resolved_at <= now,
                resolved_at=self.resolved_at,
            ),
            sla=sla,
            business_hours=None,
        )

    def step(self, rules: RuleSet, now: datetime) -> Evaluation:
        ev = evaluate(rules, self.facts(now), self.state, now)
        self.state = json.loads(json.dumps(ev.state))  # what the store gives back
        for intent in ev.intents:
            self.log.append((now, intent))
            self.apply(intent)
        assert ev.failed == (), [f.message for f in ev.failed]
        return ev

    def apply(self, intent: Intent) -> None:
        if isinstance(intent, MovePsaTicket):
            self.queue = intent.queue or self.queue
            self.group = intent.group if intent.tier is not None else (intent.group or self.group)
            self.assignee = (
                intent.assignee if intent.tier is not None else (intent.assignee or self.assignee)
            )
            self.status = intent.status or self.status
        elif isinstance(intent, SetVendorPriority):
            self.vendor_priority = intent.priority
        elif isinstance(intent, SetVendorField):
            self.vendor_fields[intent.field] = intent.value

    def walk(
        self, rules: RuleSet, start: datetime, end: datetime, every: timedelta = 5 * M
    ) -> None:
        now = start
        while now <= end:
            self.step(rules, now)
            now += every

    def fired(
        self, kind: type[Intent] | None = None, rule: str | None = None
    ) -> list[tuple[datetime, Intent]]:
        return [
            (t, i)
            for t, i in self.log
            if (kind is None or isinstance(i, kind)) and (rule is None or i.rule == rule)
        ]


def moves(ticket: Ticket) -> list[tuple[datetime, str | None]]:
    return [(t, i.tier) for t, i in ticket.fired(MovePsaTicket) if isinstance(i, MovePsaTicket)]


# Tuesday 2026-03-03 09:00 in New York (EST).
TUESDAY_0900 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


class TestTieredProcedure:
    def test_tier_1_to_vendor_within_the_time_frames(self, shipped: RuleSet) -> None:
        """Tier 1 -> 2 -> 3 -> Onsite -> IT manager -> vendor, each within its time frame."""
        t = Ticket(created_at=TUESDAY_0900)
        t.walk(shipped, TUESDAY_0900, TUESDAY_0900 + 10 * H)
        t0 = TUESDAY_0900
        assert moves(t) == [
            (t0 + 30 * M, "Tier 2"),
            (t0 + 90 * M, "Tier 3"),
            (t0 + 210 * M, "Onsite"),
            (t0 + 450 * M, "IT Manager"),
            (t0 + 510 * M, "Vendor"),
        ]
        assert (t.queue, t.status) == ("Vendor Escalations", "New")
        notified = [(i.channel, i.recipient) for _, i in t.fired(Notify) if isinstance(i, Notify)]
        assert notified == [
            ("teams", "tier2"),
            ("email", "tier3"),
            ("slack", "onsite-dispatch"),
            ("email", "it-manager"),
            ("teams", "service-desk"),
        ]
        decision = next(
            i for _, i in t.fired(Notify) if isinstance(i, Notify) and i.recipient == "it-manager"
        )
        assert decision.subject == "Decision needed: #7001 Practice management system down"
        assert "complete details of all activity performed" in decision.text
        # Every step ran; on the vendor board the rule no longer matches.
        report = explain(shipped, t.facts(t0 + 10 * H), t.state).rules[0]
        assert report.chain.startswith("finished")
        assert not report.matched

    def test_escalations_wait_for_monday_across_the_weekend(self, shipped: RuleSet) -> None:
        """A Friday 17:45 ticket escalates Monday 08:00 (after the DST change), then on schedule."""
        friday_1745 = datetime(2026, 3, 6, 22, 45, tzinfo=UTC)
        monday_0800_edt = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
        t = Ticket(created_at=friday_1745)
        t.walk(shipped, friday_1745, monday_0800_edt + 2 * H, every=15 * M)
        assert moves(t) == [(monday_0800_edt, "Tier 2"), (monday_0800_edt + H, "Tier 3")]

    def test_manual_escalation_skips_passed_steps(self, shipped: RuleSet) -> None:
        """A ticket a technician moved to Tier 3 by hand is not moved again until onsite is due."""
        t = Ticket(created_at=TUESDAY_0900)
        t.walk(shipped, TUESDAY_0900, TUESDAY_0900 + 15 * M)
        t.group = "Tier 3"  # escalated by hand
        t.walk(shipped, TUESDAY_0900 + 20 * M, TUESDAY_0900 + 4 * H)
        assert moves(t) == [(TUESDAY_0900 + 210 * M, "Onsite")]
        ev = t.step(shipped, TUESDAY_0900 + 4 * H + 5 * M)
        assert ev.skipped_runs == ()

    def test_waiting_on_client_stops_and_rearms(self, shipped: RuleSet) -> None:
        """Waiting on Client stops the chain; back In Progress it restarts from the top."""
        t = Ticket(created_at=TUESDAY_0900, status="In Progress")
        t.walk(shipped, TUESDAY_0900, TUESDAY_0900 + 20 * M)
        t.status = "Waiting on Client"
        t.walk(shipped, TUESDAY_0900 + 25 * M, TUESDAY_0900 + 2 * H)
        assert moves(t) == []
        t.status = "In Progress"
        back = TUESDAY_0900 + 2 * H + 5 * M
        t.walk(shipped, back, back + 40 * M)
        assert moves(t) == [(back + 30 * M, "Tier 2")]
        assert (
            json.loads(json.dumps(t.state))["chains"]["tiered-escalation"]["progress"]["epoch"] == 1
        )


def start_p1(opened: datetime) -> Ticket:
    """A P1 ticket on the vendor board, linked to a ServiceNow incident at ``opened``."""
    t = Ticket(
        created_at=opened - 5 * M,
        priority=P1,
        queue="Vendor Escalations",
        status="Waiting on Vendor",
        vendor_number="INC0042",
        vendor_priority="2",
        vendor_status="New",
        linked_at=opened,
    )
    t.events.append(SlaEvent(opened, EventKind.OPENED, 1))
    return t


class TestCriticalIssueProcess:
    def test_the_whole_process(self, shipped: RuleSet) -> None:
        """Ack SLA watch, vendor escalation, updates, management, validation, final report, review."""
        t0 = TUESDAY_0900
        t = start_p1(t0)

        def at(minutes: int) -> list[tuple[str, str]]:
            ev = t.step(shipped, t0 + minutes * M)
            return [(i.rule, i.kind) for i in ev.intents]

        assert at(0) == [("critical-client-updates", "AddNote")]
        assert at(10) == []
        assert at(15) == [("critical-ack-50", "Notify")]
        assert at(23) == [("critical-ack-75", "Notify")]
        assert at(31) == [
            ("critical-ack-breach", "SetVendorPriority"),
            ("critical-ack-breach", "SetVendorField"),
            ("critical-ack-breach", "AddNote"),
            ("critical-ack-breach", "SendEmail"),
            ("critical-ack-breach", "Notify"),
            ("critical-ack-breach", "Notify"),
        ]
        assert (t.vendor_priority, t.vendor_fields) == ("1", {"escalation": "2"})
        mail = t.fired(SendEmail)[0][1]
        assert isinstance(mail, SendEmail)
        assert mail.to == ("major-incident@vendor.example",)

        # The vendor acknowledges with a public update at +45: the chase of its account manager stops.
        note = VendorNote(
            "Engineer assigned, investigating the database cluster.", t0 + 45 * M, "SN Eng"
        )
        t.notes.append(note)
        t.events.append(SlaEvent(note.at, EventKind.VENDOR_PUBLIC_UPDATE, 2))
        assert at(50) == []
        update = t.step(shipped, t0 + 60 * M).intents
        assert [(i.rule, i.kind) for i in update] == [("critical-client-updates", "AddNote")]
        assert isinstance(update[0], AddNote)
        assert update[0].visibility.value == "public"
        assert "Engineer assigned, investigating the database cluster." in update[0].text
        assert (
            t.fired(rule="critical-ack-breach", kind=SendEmail)[1:] == []
        )  # no account-manager chase

        # Silent for an hour after its update: ask the vendor for progress.
        assert at(100) == []
        assert at(105) == [
            ("critical-vendor-silent", "AddNote"),
            ("critical-vendor-silent", "Notify"),
        ]
        # Unresolved for two hours: management on both sides, and the hourly client update.
        assert at(120) == [
            ("critical-management-engagement", "Notify"),
            ("critical-management-engagement", "Notify"),
            ("critical-management-engagement", "SendEmail"),
            ("critical-client-updates", "AddNote"),
        ]

        # The vendor resolves at +150: validate with the client, ask for the final report.
        t.resolved_at, t.vendor_status = t0 + 150 * M, "Resolved"
        t.events.append(SlaEvent(t0 + 150 * M, EventKind.RESOLVED, 3))
        assert at(150) == [
            ("resolution-validation", "MovePsaTicket"),
            ("resolution-validation", "Notify"),
            ("critical-final-report", "AddNote"),
        ]
        assert t.status == "Vendor Resolved - Verify with Client"
        assert at(180) == []  # no more client updates, no management reminders
        assert at(240) == []

        # Verified with the client and closed: lessons learned, post-incident review.
        t.closed_at = t0 + 250 * M
        assert at(250) == [("lessons-learned", "OpenLessonsLearned"), ("lessons-learned", "Notify")]
        record = t.fired(OpenLessonsLearned)[0][1]
        assert isinstance(record, OpenLessonsLearned)
        assert record.summary == "Lessons learned: Practice management system down (snow INC0042)"
        assert "Supplier SLA breached: yes; escalated: yes." in record.details
        assert at(300) == []

    def test_restart_in_the_middle_of_the_process(self, shipped: RuleSet) -> None:
        """Down from +5m to +130m: one evaluation catches up once, in order; nothing doubles."""
        t0 = TUESDAY_0900
        t = start_p1(t0)
        t.step(shipped, t0)
        t.step(shipped, t0 + 5 * M)
        ev = t.step(shipped, t0 + 130 * M)
        assert [(i.rule, str(i.run)) for i in ev.intents if not isinstance(i, Notify)] == [
            ("critical-management-engagement", "critical-management-engagement/0/0"),
            ("critical-client-updates", "critical-client-updates/0/2"),
            ("critical-ack-breach", "critical-ack-breach/0/0"),
            ("critical-ack-breach", "critical-ack-breach/0/0"),
            ("critical-ack-breach", "critical-ack-breach/0/0"),
            ("critical-ack-breach", "critical-ack-breach/0/0"),
        ]
        assert [str(r.key) for r in ev.coalesced] == ["critical-client-updates/0/1"]
        assert {r.key.rule for r in ev.runs} >= {"critical-ack-50", "critical-ack-75"}
        # The overdue management engagement ran at its due time order, before the hourly update.
        assert [r.due_at for r in ev.runs][:2] == [t0 + 120 * M, t0 + 120 * M]
        keys = [i.key for _, i in t.log]
        assert len(keys) == len(set(keys))
        t.walk(shipped, t0 + 135 * M, t0 + 175 * M)
        # The next account-manager chase of the breach chain is 30 minutes after it started.
        chases = t.fired(SendEmail, rule="critical-ack-breach")
        assert [time - t0 for time, _ in chases] == [130 * M, 160 * M]

    def test_explain_a_p1_ticket(self, shipped: RuleSet) -> None:
        """explain names failing conditions and the next runs of the shipped rules."""
        t0 = TUESDAY_0900
        t = start_p1(t0)
        t.step(shipped, t0)
        text = explain(shipped, t.facts(t0 + 10 * M), t.state).render()
        assert "rule critical-ack-50 [" in text
        assert "[FAIL] acknowledgment elapsed 33%, needs at least 50%" in text
        assert "would start at 2026-03-03 14:15 UTC if nothing else changes" in text
        assert (
            "next: chain[0] #0 at 2026-03-03 16:00 UTC: notify it-manager, service-manager by email"
            in text
        )
        assert "[FAIL] queue is 'Vendor Escalations', needs one of ['Service Desk']" in text
