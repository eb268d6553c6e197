"""`ticketbridge demo` as a person runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.conftest import PlayedDemo

pytestmark = pytest.mark.e2e


class TestDemo:
    def test_demo_plays_the_incident_and_exits_zero_within_a_minute(self, played_demo: PlayedDemo):
        """The demo exits 0 in under 60 s and its timeline shows every step of the story:
        tier escalation, vendor engagement, mirrored notes, the paused and breached vendor
        clock, escalation at the vendor, client updates, resolution and lessons learned."""
        result = played_demo.result
        assert result.returncode == 0, result.stdout + result.stderr
        assert played_demo.took < 60
        out = result.stdout
        for expected in (
            "opened on Service Desk (Tier 1), Priority 1",
            "rule p1-to-tier-2: #1001 moved to Tier 2",
            "rule p1-engage-vendor: #1001 moved to Vendor Escalations",
            "INC0010001 opened",
            "externalXRef = INC0010001",
            "the internal note stayed in the PSA",
            "(paused, ball with the MSP)",
            "10 minutes later, unchanged",
            "back In Progress",
            "2 internal 'SLA at risk' notes (50%, 75%)",
            "Supplier SLA BREACHED",
            "rule vendor-ack-breach: INC0010001 escalation set to High",
            "rule p1-client-updates: client-visible note",
            "rule lessons-learned: record opened",
            "status -> Vendor Resolved - Verify with Client",
            "demo complete",
        ):
            assert expected in out, f"missing {expected!r} in:\n{out}"

    def test_the_email_vendor_demo_plays_the_incident_by_mail(self):
        """`demo --vendor email`: the ISP is a mailbox on a mail server on loopback; the
        timeline shows the case-number mail, the number written back, the public note mailed
        with the case number (the internal one not), the breach and the escalation mail to the
        escalation contact, the vendor's answer landing in the PSA, resolution by mail and
        lessons learned."""
        result = subprocess.run(
            [sys.executable, "-m", "ticketbridge", "demo", "--vendor", "email"],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            env={"COLUMNS": "220", "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        out = " ".join(result.stdout.split())
        for expected in (
            "support@isp.example received",
            "case CS0048151 created",
            "externalXRef = CS0048151",
            "the internal note stayed in the PSA",
            "Supplier SLA BREACHED",
            "rule vendor-ack-breach: escalations@isp.example",
            "internal note from beth.anglin@isp.example",
            "status -> Vendor Resolved - Verify with Client",
            "rule lessons-learned: record opened",
            "demo complete",
        ):
            assert expected in out, f"missing {expected!r} in:\n{result.stdout}"

    def test_an_unknown_demo_vendor_is_refused_naming_the_choices(self):
        result = subprocess.run(
            [sys.executable, "-m", "ticketbridge", "demo", "--vendor", "zendesk"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert 2 == result.returncode
        assert "servicenow, email" in result.stderr
