"""Pure decisions for adopting a link with history: copies matched, the rest seen."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.test_plan_mirror import NOW, SECRET, conn, note, psa_ticket, vendor_ticket
from ticketbridge.domain import StatusClass, Visibility
from ticketbridge.engine import adopt, decide
from ticketbridge.engine.linking import ADOPTED


def copy_of_psa(nid: str, source_id: str, text: str) -> object:
    """The note an earlier installation wrote at the vendor for PSA note ``source_id``."""
    source = note(source_id, text)
    body = decide.render_for_vendor(source, "ConnectWise PSA", "42")
    return replace(note(nid, body, system="sn"), ticket_id="v1", by_us=True)


class TestMatchCopies:
    def test_each_copy_matches_one_source_even_with_html_and_spacing(self):
        """Two PSA notes with the same text have two copies: each copy matched once, the
        oldest first; products' HTML and whitespace do not hide a copy."""
        sources = [note("1", "Rebooted."), note("2", "Rebooted.")]
        render = lambda n: decide.render_for_vendor(n, "ConnectWise PSA", "42")
        first = note("10", "<p>" + render(sources[0]) + "</p>", system="sn")
        second = note("11", render(sources[1]).replace("\n\n", "\n"), system="sn")
        assert {"1": "10", "2": "11"} == adopt.match_copies(sources, [first, second], render)

    def test_a_note_without_a_copy_is_not_matched(self):
        """Text that differs is no copy."""
        render = lambda n: decide.render_for_vendor(n, "ConnectWise PSA", "42")
        other = note("10", "Something else entirely.", system="sn")
        assert {} == adopt.match_copies([note("1", "Rebooted.")], [other], render)


class TestDecideAdoption:
    def plan(self, psa_notes: list[object], vendor_notes: list[object]) -> tuple[object, object]:
        return adopt.decide_adoption(
            conn(),
            psa_ticket(),
            psa_notes,  # type: ignore[arg-type]
            vendor_ticket(status="In Progress"),
            vendor_notes,  # type: ignore[arg-type]
            7,
            psa_label="ConnectWise PSA",
            vendor_label="ServiceNow",
            secret=SECRET,
            now=NOW,
        )

    def test_copies_done_people_seen_ours_echo_and_nothing_queued(self):
        """A PSA note with its copy at the vendor is done (target: the copy); the copy is
        an echo; a vendor work note is seen; no outbox row, no hint."""
        psa_public = note("1", "Client reports the outage.")
        copy = copy_of_psa("20", "1", "Client reports the outage.")
        work = replace(note("21", "Card fault.", Visibility.INTERNAL, system="sn"), ticket_id="v1")
        plan, counts = self.plan([psa_public], [copy, work])

        states = {
            (e.source_system, e.source_note_id): (e.state, e.reason, e.target_note_id)
            for e in plan.ledger
        }
        assert ("done", "backfill", "20") == states[("cw", "1")]
        assert ("skipped", "echo", None) == states[("sn", "20")]
        assert ("skipped", "backfill", None) == states[("sn", "21")]
        assert (1, 1, 1) == (counts.matched, counts.seen, counts.ours)
        assert () == plan.outbox
        assert () == plan.hints

    def test_history_as_a_first_read_records_it_and_rules_adopt(self):
        """The link's history: created (marked backfill), the vendor ticket seen, its
        status, the vendor's person notes (not our copies), and the adoption last."""
        copy = copy_of_psa("20", "1", "Client reports the outage.")
        comment = replace(note("21", "On it.", system="sn"), ticket_id="v1")
        plan, _ = self.plan([note("1", "Client reports the outage.")], [copy, comment])

        kinds = [e.kind for e in plan.events]
        assert [
            "link_created",
            "vendor_ticket_seen",
            "vendor_status_changed",
            "vendor_note",
            ADOPTED,
        ] == kinds
        assert "21" == plan.events[3].detail["note_id"]
        assert plan.events[0].detail["backfill"] is True

    def test_the_adopted_link_holds_both_sides_as_read(self):
        """Vendor status, priority and assignee stored: the next read carries nothing."""
        made = adopt.adopted_link(
            conn(), psa_ticket(), vendor_ticket(status="In Progress"), None, NOW
        )
        values = made.values
        assert ("open", "manual", "In Progress", "1", "Beth") == (
            values["state"],
            values["origin"],
            values["vendor_status"],
            values["vendor_priority"],
            values["vendor_assignee"],
        )
        closed = adopt.adopted_link(
            conn(),
            psa_ticket(status="Closed", status_class=StatusClass.CLOSED),
            vendor_ticket(),
            None,
            NOW,
        )
        assert "closed" == closed.values["state"]
