"""`ticketbridge timeline` on the demo incident, asserted event by event.

The demo plays the real daemon against the ConnectWise and ServiceNow simulators and keeps
its store (``--keep``); the timeline is then read from that store by the command as an
operator would run it, in JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import PlayedDemo, run_cli
from ticketbridge.demo.kit import base_config

pytestmark = pytest.mark.e2e

#: The demo incident's story in order: (side, kind, words in the summary).  Entries of the
#: same instant are ordered history first, then notes, writes, the clock, flags, reviews.
STORY = [
    ("psa", "watch_started", "queue Service Desk"),
    ("psa", "link_created", "routed"),
    ("bridge", "rule_escalated", "rule p1-to-tier-2"),
    ("psa", "write_done", "group=Tier 2"),
    ("bridge", "rule_escalated", "rule p1-engage-vendor"),
    ("psa", "write_done", "queue=Vendor Escalations"),
    ("vendor", "write_done", "open the vendor ticket: Internet down at main office"),
    ("vendor", "sla_clock_started", "Acme ISP critical incidents"),
    ("psa", "write_done", "external_ref=INC0010001"),
    ("psa", "note_mirrored", "mirrored to the vendor as public"),
    ("psa", "note_skipped", "skipped: internal"),
    ("vendor", "status_changed", "New -> On Hold"),
    ("vendor", "sla_clock_paused", "ball with the MSP"),
    ("psa", "note_mirrored", "mirrored to the vendor as public"),
    ("vendor", "status_changed", "On Hold -> In Progress"),
    ("vendor", "sla_clock_resumed", "ball with the vendor"),
    ("vendor", "sla_at_risk", "50% of the acknowledgment target"),
    ("vendor", "sla_at_risk", "75% of the acknowledgment target"),
    ("vendor", "sla_breached", "acknowledgment target missed (breach investigation BI-1)"),
    ("bridge", "rule_escalated", "rule vendor-ack-breach"),
    ("vendor", "write_done", "escalation=2"),
    ("bridge", "breach_investigation_opened", "BI-1"),
    ("vendor", "note_mirrored", "by Beth Anglin: mirrored to the PSA as internal"),
    ("vendor", "sla_acknowledged", "vendor acknowledged"),
    ("vendor", "status_changed", "In Progress -> Resolved"),
    ("vendor", "sla_resolved", "vendor resolved"),
    ("psa", "write_done", "status=Vendor Resolved - Verify with Client"),
    ("psa", "status_changed", "-> Closed"),
    ("psa", "link_closed", "the link is closed"),
    ("bridge", "lessons_learned_opened", "rule lessons-learned"),
]


@pytest.fixture(scope="module")
def demo_timeline(
    played_demo: PlayedDemo, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """The demo played once, keeping its store; its ticket's timeline as JSON."""
    played = played_demo.result
    assert 0 == played.returncode, played.stdout + played.stderr
    config = tmp_path_factory.mktemp("timeline") / "demo.yaml"
    config.write_text(yaml.safe_dump(base_config(played_demo.db, 9, "http://127.0.0.1:9")))
    shown = run_cli("timeline", "1001", "--config", str(config), "--format", "json", timeout=30)
    assert 0 == shown.returncode, shown.stderr
    data: list[dict[str, Any]] = json.loads(shown.stdout)
    return data


class TestDemoTimeline:
    def test_the_story_event_by_event(self, demo_timeline: list[dict[str, Any]]):
        """Every step of the demo incident appears, in this order, on its side."""
        entries = demo_timeline
        at = 0
        for side, kind, words in STORY:
            for n in range(at, len(entries)):
                e = entries[n]
                if (e["side"], e["kind"]) == (side, kind) and words in e["summary"]:
                    at = n + 1
                    break
            else:
                seen = "\n".join(
                    f"{e['at']} {e['side']} {e['kind']}: {e['summary']}" for e in entries
                )
                pytest.fail(
                    f"missing, or out of order after entry {at}: {(side, kind, words)}\n{seen}"
                )

    def test_times_ascend_in_utc_and_every_entry_names_the_ticket(self, demo_timeline):
        """Entries are in time order, in UTC, each naming the link and both tickets."""
        times = [e["at"] for e in demo_timeline]
        assert times == sorted(times)
        assert all(t.endswith("+00:00") for t in times)
        assert {(e["psa_ticket"], e["vendor_ticket"], e["connection"]) for e in demo_timeline} == {
            ("1001", "INC0010001", "cw-snow")
        }

    def test_echoes_are_marked_and_nothing_is_dead(self, demo_timeline):
        """Our own notes read back are marked as suppressed echoes, on both sides; no write
        was dead-lettered; client updates name the rule that fired them."""
        echoes = {e["side"] for e in demo_timeline if e["detail"].get("reason") == "echo"}
        assert echoes == {"psa", "vendor"}
        assert not [e for e in demo_timeline if e["kind"] in ("write_dead", "dead_letter")]
        steps = [e for e in demo_timeline if e["kind"] == "escalation_step"]
        assert "p1-client-updates" in {e["detail"]["rule"] for e in steps}

    def test_the_review_goes_back_to_the_psa_as_one_internal_note(self, demo_timeline):
        """Closing the breached ticket queued its post-incident review as one internal note
        to the PSA, through the outbox."""
        reviews = [
            e
            for e in demo_timeline
            if e["kind"].startswith("write_")
            and e["detail"]["operation"] == "add_note"
            and str(e["detail"]["payload"].get("text", "")).startswith("Post-incident review LL-1")
        ]
        assert 1 == len(reviews)
        assert ("psa", "internal") == (
            reviews[0]["side"],
            reviews[0]["detail"]["payload"]["visibility"],
        )
