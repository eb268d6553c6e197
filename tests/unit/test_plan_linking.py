"""Pure decisions about a PSA ticket without a link: the link to store and what follows."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.test_plan_mirror import AT, NOW, conn, link, note, psa_ticket, vendor_ticket
from ticketbridge.domain import StatusClass, TicketDraft, idempotency_key, note_key
from ticketbridge.engine import linking, mirror
from ticketbridge.operations import CreateTicket
from ticketbridge.plan import Hint

DRAFT = TicketDraft(summary="Link down", description="d", priority="1", account={"company": "abc"})


class TestNewLink:
    def test_routed_link_is_creating(self):
        """A routed ticket's link waits for its vendor ticket; no vendor ids yet."""
        new = linking.new_link(conn(), psa_ticket(), None, None, NOW)
        assert None is new.upgrade
        assert ("creating", "routed", NOW) == (
            new.values["state"],
            new.values["origin"],
            new.values["created_at"],
        )
        assert "vendor_ticket_id" not in new.values

    def test_manual_link_upgrades_the_watching_one(self):
        """A vendor number typed in links at once, over the link that watched the ticket."""
        new = linking.new_link(conn(), psa_ticket(), vendor_ticket(), link(state="watching"), NOW)
        assert 9 == new.upgrade
        assert ("open", "manual", "v1", "INC1") == tuple(
            new.values[k] for k in ("state", "origin", "vendor_ticket_id", "vendor_number")
        )


class TestLinkCreated:
    def test_routed_queues_the_vendor_ticket_under_its_key(self):
        """The vendor ticket's creation is queued once per (connection, PSA ticket); notes
        already on the ticket are ledgered as history, keyed by the new link."""
        t = psa_ticket()
        plan = linking.decide_link_created(
            conn(), t, [note("1"), note("2")], 9, manual_vendor=None, draft=DRAFT, now=NOW
        )
        assert [idempotency_key("c", "cw", "42", "create_ticket")] == [r.key for r in plan.outbox]
        assert CreateTicket(DRAFT) == plan.outbox[0].operation
        assert [(note_key("cw", "42", n, "sn"), "skipped", "before_link") for n in "12"] == [
            (e.key, e.state, e.reason) for e in plan.ledger
        ]
        assert [("link_created", "routed")] == [(e.kind, e.detail["origin"]) for e in plan.events]
        assert () == plan.hints

    def test_manual_asks_for_the_vendor_history(self):
        """A manual link queues no creation; a local hint has the vendor ticket read."""
        plan = linking.decide_link_created(
            conn(), psa_ticket(), [], 9, manual_vendor=vendor_ticket(), draft=None, now=NOW
        )
        assert () == plan.outbox
        assert (Hint("sn", "local:link:9", "v1", NOW),) == plan.hints
        assert "INC1" == plan.events[0].detail["vendor_ticket"]


class TestWatching:
    def test_watch_started(self):
        """A newly watched ticket gets a watching link and a watch_started entry."""
        new = linking.watch_link(conn(), psa_ticket(), NOW)
        assert ("watching", "watched") == (new.values["state"], new.values["origin"])
        plan = linking.decide_watch_started(conn(), psa_ticket(), 9, NOW)
        assert ["watch_started"] == [e.kind for e in plan.events]

    def test_unchanged_watched_ticket_plans_nothing(self):
        """Read again without changes: nothing to write."""
        t = psa_ticket()
        row = link(state="watching", psa_snapshot=mirror.psa_snapshot(t))
        assert linking.decide_watching(conn(), t, row, NOW).empty

    def test_watched_status_change_and_close(self):
        """A status change is recorded; a closed ticket stops being watched."""
        t = psa_ticket(status="Closed", status_class=StatusClass.CLOSED, updated_at=AT)
        row = link(state="watching", psa_snapshot=mirror.psa_snapshot(psa_ticket()))
        plan = linking.decide_watching(conn(), t, row, NOW)
        assert ["psa_status_changed"] == [e.kind for e in plan.events]
        assert ("Closed", "closed") == (plan.changes(9)["psa_status"], plan.changes(9)["state"])
        assert NOW == plan.changes(9)["updated_at"]
        assert replace(row, state="open").id == plan.link_updates[0].link_id
