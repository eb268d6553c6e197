"""Reconcile: a change whose webhook never came and that no poll has read is found by
comparing open links with both systems, repaired through the normal path, and counted."""

from __future__ import annotations

import pytest

from tests.harness import Harness
from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.domain import Visibility
from ticketbridge.engine.reconcile import Reconciler
from ticketbridge.store import Store, repo
from ticketbridge.store import reconcile as rstore

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def recovered(h: Harness, system: str, kind: str) -> float:
    value = h.metrics.registry.get_sample_value(
        "ticketbridge_reconcile_recovered_total", {"system": system, "kind": kind}
    )
    return value or 0.0


async def linked(h: Harness) -> tuple[str, str]:
    """A routed PSA ticket linked to the vendor ticket it opened, everything settled."""
    ticket = h.psa_ticket()
    await h.settle()
    link = h.link()
    assert "open" == link.state
    assert link.vendor_ticket_id is not None
    return ticket.ref.id, link.vendor_ticket_id


class TestReconcile:
    async def test_recovers_a_note_whose_webhook_was_dropped(self, store: Store) -> None:
        """A PSA note no webhook announced and no poll read: after a reconcile it is at
        the vendor once, and the counter says 1; a second run recovers nothing more."""
        h = Harness.build(store)
        psa_id, vendor_id = await linked(h)
        before = len(h.vendor.world.notes[vendor_id])
        h.clock.advance(300)
        note = h.psa.world.add_note(
            "psa", psa_id, "Client: the office is still down.", Visibility.PUBLIC, "Dana"
        )
        h.clock.advance(120)  # older than the grace; still no webhook, no poll

        run = await Reconciler(h.engine).run()
        await h.engine.dispatch_once()

        texts = [n.text for n in h.vendor.world.notes[vendor_id]]
        assert before + 1 == len(texts)
        assert 1 == sum("the office is still down" in t for t in texts)
        assert 1 == run.notes
        assert 1 == run.links_repaired
        assert 1.0 == recovered(h, "psa", "note")
        link_id = h.link().id
        with store.tx() as c:
            events = [e for e in repo.link_events(c, link_id) if e.kind == "drift_repaired"]
            figures = rstore.totals(c)
        assert 1 == len(events)
        assert [note.id] == events[0].detail["notes"]
        assert (1, 1) == (figures.runs, figures.notes)

        again = await Reconciler(h.engine).run()
        await h.engine.dispatch_once()
        await h.settle()
        assert 0 == again.notes
        assert 1.0 == recovered(h, "psa", "note")
        texts = [n.text for n in h.vendor.world.notes[vendor_id]]
        assert 1 == sum("the office is still down" in t for t in texts)

    async def test_recovers_a_vendor_status_change_and_carries_it_across(
        self, store: Store
    ) -> None:
        """The vendor resolved its ticket and the webhook was lost: the reconcile records
        the status and the mapped PSA status is written, counted as a status recovered."""
        h = Harness.build(store)
        psa_id, vendor_id = await linked(h)
        h.vendor.world.change(vendor_id, status="Resolved")
        h.clock.advance(120)

        run = await Reconciler(h.engine).run()
        await h.engine.dispatch_once()

        assert "Resolved" == h.link().vendor_status
        assert "Vendor Resolved" == h.psa.world.tickets[psa_id].status
        assert 1 == run.fields
        assert 1.0 == recovered(h, "vendor", "status")

        h.clock.advance(120)  # the PSA status we wrote is our own write, not drift
        again = await Reconciler(h.engine).run()
        assert (0, 0) == (again.fields, again.links_repaired)
        assert 0.0 == recovered(h, "psa", "status")

    async def test_nothing_drifted_changes_nothing(self, store: Store) -> None:
        """Links that are in step: nothing processed, nothing counted, no write queued."""
        h = Harness.build(store)
        await linked(h)
        h.vendor_note(h.link().vendor_ticket_id or "", "On it.", Visibility.PUBLIC)
        await h.settle()
        h.clock.advance(120)
        rows = len(h.outbox())

        run = await Reconciler(h.engine).run()

        assert (1, 0, 0, 0) == (run.links, run.links_repaired, run.notes, run.fields)
        assert rows == len(h.outbox())
        assert 0.0 == recovered(h, "psa", "note")

    async def test_a_change_younger_than_the_grace_is_left_to_webhooks(self, store: Store) -> None:
        """A note written seconds ago may have its webhook on the way: not repaired yet."""
        h = Harness.build(store)
        psa_id, _ = await linked(h)
        h.psa.world.add_note("psa", psa_id, "Just now.", Visibility.PUBLIC, "Dana")

        run = await Reconciler(h.engine).run()

        assert 0 == run.notes
        assert [] == h.outbox("pending")

    async def test_pages_through_links_and_continues_where_it_stopped(self, store: Store) -> None:
        """With two links per run, three open links take two runs; the third run starts
        over from the first link."""
        h = Harness.build(store, extra={"reconcile": {"links_per_run": 2}})
        for n in range(3):
            h.psa_ticket(f"Outage {n}")
        await h.settle()
        reconciler = Reconciler(h.engine)

        runs = [await reconciler.run() for _ in range(3)]

        assert [2, 1, 2] == [run.links for run in runs]

    async def test_waits_for_the_request_budget_and_ends_when_it_stays_spent(
        self, store: Store
    ) -> None:
        """While a system's budget has no more than the reserve free, a run compares
        nothing; past its time (``every``) it ends and says why; freed, it goes on."""
        h = Harness.build(store, extra={"reconcile": {"every": "300ms", "budget_reserve": 0.5}})
        await linked(h)
        now = [0.0]
        budget = RequestBudget(4, 60, clock=lambda: now[0])
        h.psa.http.budget = budget
        for _ in range(3):
            await budget.acquire()  # live work spent 3 of 4: 1 free, the reserve is 2
        reconciler = Reconciler(h.engine)

        stopped = await reconciler.run()
        now[0] += 61  # the spent requests come back
        resumed = await reconciler.run()

        assert (0, "budget") == (stopped.links, stopped.stopped)
        assert (1, None) == (resumed.links, resumed.stopped)
        assert 1.0 == h.metrics.registry.get_sample_value(
            "ticketbridge_reconcile_runs_total", {"outcome": "budget"}
        )

    async def test_a_priority_we_wrote_is_not_drift(self, store: Store) -> None:
        """The vendor raised its priority and we carried it to the PSA: the PSA's new
        priority is our own write, not a change to recover, whether or not its echo was
        read."""
        h = Harness.build(
            store, priority_map={"psa_to_vendor": {"P1": "1"}, "vendor_to_psa": {"2": "P2"}}
        )
        psa_id, vendor_id = await linked(h)
        h.vendor.world.change(vendor_id, priority="2")
        await h.engine.process_ticket("vendor", vendor_id, trigger="webhook")
        await h.engine.dispatch_once()
        assert "P2" == h.psa.world.tickets[psa_id].priority
        h.clock.advance(120)

        run = await Reconciler(h.engine).run()

        assert (0, 0) == (run.fields, run.links_repaired)
