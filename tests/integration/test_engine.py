"""The engine end to end on in-memory systems, against SQLite and the real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from tests.harness import Harness
from ticketbridge.adapters.fake.adapter import FakeSettings
from ticketbridge.domain import Visibility
from ticketbridge.errors import NotFoundError, RateLimitedError, TransientError
from ticketbridge.store import Store, repo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


PUBLIC = Visibility.PUBLIC


def all_links(h: Harness) -> list[Any]:
    with h.store.tx() as c:
        return repo.list_links(c)


def texts(h: Harness, side: str, ticket_id: str) -> list[str]:
    world = h.psa.world if side == "psa" else h.vendor.world
    return [n.text for n in world.notes[ticket_id]]


class TestLinking:
    async def test_routed_ticket_opens_vendor_ticket_and_writes_number_back(self, store: Store):
        """A P1 ticket on the routed board opens one vendor ticket with its details, and the
        vendor's number lands in the PSA ticket's link field."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        link = h.link()
        assert link.state == "open"
        vendor = h.vendor.world.tickets[link.vendor_ticket_id]
        assert vendor.summary == "Internet down"
        assert vendor.priority == "1"
        assert "Client: Acme Dental (ACME)" in vendor.description
        assert "Contact: Dana Lee <dana@acme.example> 555-0100" in vendor.description
        assert vendor.ref.number == h.psa.world.tickets[t.ref.id].external_ref
        assert len(h.vendor.world.tickets) == 1

    async def test_unrouted_board_and_unmapped_company_open_nothing(self, store: Store):
        """Tickets on other boards, or of clients without a vendor account, stay in the PSA."""
        h = Harness.build(store)
        h.psa_ticket(queue="Service Desk")
        h.psa_ticket(company="GLOBEX")
        await h.settle()
        assert h.vendor.world.tickets == {}
        with store.tx() as c:
            assert repo.list_links(c) == []

    async def test_manual_link_by_vendor_number(self, store: Store):
        """A vendor number typed into the PSA ticket links to that vendor ticket, and the
        vendor's earlier notes come over."""
        h = Harness.build(store)
        v = h.vendor.world.add_ticket(
            "vendor", "Opened in the portal", number="V777", status="In Progress"
        )
        h.vendor_note(v.ref.id, "We see packet loss upstream.", Visibility.PUBLIC)
        t = h.psa_ticket(queue="Service Desk", external_ref="V777")
        await h.settle()
        link = h.link()
        assert ("manual", v.ref.id) == (link.origin, link.vendor_ticket_id)
        assert len(h.vendor.world.tickets) == 1
        assert any("We see packet loss upstream." in x for x in texts(h, "psa", t.ref.id))

    async def test_a_case_opened_by_hand_records_who_typed_it_and_when(self, store: Store):
        """The engineer who typed the vendor's case number, and when, are on the link's
        history (the SLA and the ticket's story start there)."""
        h = Harness.build(store)
        h.vendor.world.add_ticket("vendor", "Opened in the portal", number="V778")
        t = h.psa_ticket(queue="Service Desk", external_ref="V778", updated_by="jsmith")
        await h.settle()
        link = h.link()
        with store.tx() as c:
            created = [e for e in repo.link_events(c, link.id) if e.kind == "link_created"]
        assert 1 == len(created)
        assert "jsmith" == (created[0].detail or {}).get("opened_by")
        assert t.updated_at == created[0].occurred_at


class TestMirroring:
    async def test_public_note_goes_internal_stays(self, store: Store):
        """A PSA public note reaches the vendor as public; internal and unknown ones never do."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        h.psa_note(t, "Client confirms outage since 09:00.", Visibility.PUBLIC)
        h.psa_note(t, "Client is behind on invoices.", Visibility.INTERNAL)
        h.psa_note(t, "Resolution-only note.", Visibility.UNKNOWN)
        await h.settle()
        vid = h.link().vendor_ticket_id
        notes = h.vendor.world.notes[vid]
        assert len(notes) == 1
        assert "Client confirms outage since 09:00." in notes[0].text
        assert "John Smith" in notes[0].text
        assert notes[0].visibility == Visibility.PUBLIC
        everything = " ".join(texts(h, "vendor", vid))
        assert "invoices" not in everything
        assert "Resolution-only" not in everything

    async def test_internal_notes_leave_only_when_policy_says_so(self, store: Store):
        """With psa_internal: private, an internal note reaches the vendor as a private note."""
        h = Harness.build(store, notes={"psa_internal": "private"})
        t = h.psa_ticket()
        await h.settle()
        h.psa_note(t, "Escalate to their NOC.", Visibility.INTERNAL)
        await h.settle()
        notes = h.vendor.world.notes[h.link().vendor_ticket_id]
        assert [n.visibility for n in notes] == [Visibility.INTERNAL]

    async def test_vendor_notes_land_internal_with_attribution(self, store: Store):
        """Vendor comments and work notes land as PSA internal notes naming their author."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        vid = h.link().vendor_ticket_id
        h.vendor_note(vid, "Engineer dispatched.", Visibility.PUBLIC)
        h.vendor_note(vid, "Card swap on PE router.", Visibility.INTERNAL)
        await h.settle()
        mirrored = h.psa.world.notes[t.ref.id]
        assert len(mirrored) == 2
        assert all(n.visibility is Visibility.INTERNAL for n in mirrored)
        assert "Beth Anglin" in mirrored[0].text
        assert "public comment" in mirrored[0].text
        assert "Engineer dispatched." in mirrored[0].text
        assert "internal note" in mirrored[1].text

    async def test_no_echo_and_exactly_one_copy(self, store: Store):
        """Notes we wrote are never mirrored back, however often both sides are re-read."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        vid = h.link().vendor_ticket_id
        h.psa_note(t, "From the MSP.", Visibility.PUBLIC)
        h.vendor_note(vid, "From the vendor.", Visibility.PUBLIC)
        for _ in range(3):
            await h.settle()
            for tid in (t.ref.id,):
                await h.engine.process_ticket("psa", tid, trigger="test")
            await h.engine.process_ticket("vendor", vid, trigger="test")
        assert len(h.vendor.world.notes[vid]) == 2
        assert len(h.psa.world.notes[t.ref.id]) == 2
        assert sum("From the MSP." in x for x in texts(h, "psa", t.ref.id)) == 1
        assert sum("From the vendor." in x for x in texts(h, "vendor", vid)) == 1

    async def test_text_shaped_like_our_marker_is_a_persons_note(self, store: Store):
        """A person quoting an old-style marker, or pasting a marker copied from one of our
        notes on another ticket, is mirrored, not dropped as an echo; our own notes (by
        author) still are never mirrored back."""
        h = Harness.build(
            store,
            extra={
                "engine": {"initial_lookback": 3600, "marker_secret": "a secret of this one"},
                "systems": {
                    "psa": {
                        "kind": "fake",
                        "base_url": "http://psa.invalid",
                        "visible_marker": True,
                    },
                    "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
                },
            },
        )
        other = h.psa_ticket("Another ticket")
        t = h.psa_ticket()
        await h.settle()
        links = {link.psa_ticket_id: link for link in all_links(h)}
        other_vid = links[other.ref.id].vendor_ticket_id
        h.vendor_note(other_vid, "Reply on the other ticket.", Visibility.PUBLIC)
        await h.settle()
        copied = next(
            n.text for n in h.psa.world.notes[other.ref.id] if "Reply on the other" in n.text
        )
        marker = copied.rsplit("\n", 1)[-1]
        assert marker.startswith("[tb:")
        h.psa_note(t, "> you wrote:\n> done [tb:0123456789abcdef]\nStill down here.", PUBLIC)
        h.psa_note(t, f"Pasted from the other ticket: {marker}", Visibility.PUBLIC)
        await h.settle()
        vid = links[t.ref.id].vendor_ticket_id
        got = texts(h, "vendor", vid)
        assert 1 == sum("Still down here." in x for x in got)
        assert 1 == sum("Pasted from the other ticket" in x for x in got)
        assert 0 == sum("Reply on the other" in x for x in texts(h, "vendor", other_vid)[1:])

    async def test_notes_arrive_in_source_order(self, store: Store):
        """Several notes of one ticket reach the target in the order they were written."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        for i in range(6):
            h.psa_note(t, f"update {i}", Visibility.PUBLIC)
        await h.settle()
        got = [x for x in texts(h, "vendor", h.link().vendor_ticket_id) if "update" in x]
        assert [f"update {i}" for i in range(6)] == [x.split("\n\n")[1] for x in got]


class TestVersionedChanges:
    @pytest.mark.parametrize("versioned", [False, True])
    async def test_a_change_in_the_same_tick_shows_a_new_version(
        self, store: Store, versioned: bool, monkeypatch: pytest.MonkeyPatch
    ):
        """A product that keeps a change counter (ServiceNow's sys_mod_count) lists a
        second change made within the tick its change time was polled at with the same
        time but a new version: it is read, with no wait for a later change.  Without a
        version (and a clock taken for exact) that change waits."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        vid = h.link().vendor_ticket_id
        listed = h.vendor.changes_after

        async def with_versions(*args: Any, **kwargs: Any) -> Any:
            batch = await listed(*args, **kwargs)
            if not versioned:
                return batch
            count = {
                c.ticket_id: str(len(h.vendor.world.notes.get(c.ticket_id, [])))
                for c in batch.changes
            }
            return replace(
                batch, changes=tuple(replace(c, version=count[c.ticket_id]) for c in batch.changes)
            )

        monkeypatch.setattr(h.vendor, "changes_after", with_versions)
        h.clock.advance(10)
        h.vendor_note(vid, "First answer.", Visibility.PUBLIC)
        await h.engine.poll("vendor")
        h.vendor_note(vid, "Second answer, same tick.", Visibility.PUBLIC)  # clock unmoved
        h.clock.advance(1)
        await h.engine.poll("vendor")
        while await h.engine.dispatch_once():
            pass
        got = texts(h, "psa", t.ref.id)
        assert any("First answer." in x for x in got)
        assert int(versioned) == sum("Second answer, same tick." in x for x in got)


class TestStatus:
    async def test_vendor_resolved_moves_psa_status_without_ping_pong(self, store: Store):
        """Vendor Resolved sets the mapped PSA status once; our own write is not sent back."""
        h = Harness.build(
            store,
            status_map={
                "vendor_to_psa": {"Resolved": "Vendor Resolved"},
                "psa_to_vendor": {"Vendor Resolved": "Resolved"},
            },
        )
        t = h.psa_ticket()
        await h.settle()
        vid = h.link().vendor_ticket_id
        h.vendor.world.change(vid, status="Resolved")
        await h.settle()
        assert h.psa.world.tickets[t.ref.id].status == "Vendor Resolved"
        vendor_updates = [c for c in h.vendor.world.calls if c[0] == "update_ticket"]
        assert vendor_updates == []


class TestCursor:
    async def test_same_second_updates_after_poll_are_not_lost(self, store: Store):
        """Tickets sharing the cursor's second, made visible after a poll, are still seen."""
        h = Harness.build(store)
        h.psa_ticket("first")
        await h.engine.poll("psa")
        h.psa_ticket("second")  # same second as the first (clock not advanced)
        await h.engine.poll("psa")
        with store.tx() as c:
            assert len(repo.list_links(c)) == 2

    @pytest.mark.parametrize("resolution", [0, 1])
    async def test_a_second_change_in_the_same_second_of_a_coarse_clock(
        self, store: Store, resolution: int
    ):
        """A product whose change times are whole seconds and that sends no webhooks (RT,
        e-mail): a ticket that changes again within the second it was polled shows the same
        time; it is read again on the next poll, so that change is not lost.  A product with
        exact times (resolution 0) is not read twice."""
        h = Harness.build(store)
        h.vendor.change_time_resolution = timedelta(seconds=resolution)  # type: ignore[misc]
        t = h.psa_ticket()
        await h.settle()
        vid = h.link().vendor_ticket_id
        h.clock.advance(10)
        h.vendor_note(vid, "First answer.", Visibility.PUBLIC)
        await h.engine.poll("vendor")
        h.vendor_note(vid, "Second answer, same second.", Visibility.PUBLIC)  # clock unmoved
        h.clock.advance(1)
        await h.engine.poll("vendor")
        while await h.engine.dispatch_once():  # one write per ticket at a time, in order
            pass
        got = texts(h, "psa", t.ref.id)
        assert any("First answer." in x for x in got)
        assert resolution == sum("Second answer, same second." in x for x in got)
        h.clock.advance(5)
        await h.engine.poll("vendor")  # settled now: read a last time and remembered
        reads = sum(1 for c in h.vendor.world.calls if c[0] == "get_ticket")
        h.clock.advance(5)
        await h.engine.poll("vendor")
        assert reads == sum(1 for c in h.vendor.world.calls if c[0] == "get_ticket")

    async def test_unchanged_tickets_are_not_reprocessed(self, store: Store):
        """The overlap window re-reads, but (id, updated-at) dedupe skips what was done."""
        h = Harness.build(store)
        h.psa_ticket()
        await h.engine.poll("psa")
        before = sum(1 for c in h.psa.world.calls if c[0] == "get_ticket")
        await h.engine.poll("psa")
        await h.engine.poll("psa")
        after = sum(1 for c in h.psa.world.calls if c[0] == "get_ticket")
        assert before == after

    async def test_cursor_stops_before_a_ticket_that_failed(self, store: Store):
        """A transient failure on one ticket keeps the cursor before it; the next poll
        takes it."""
        h = Harness.build(store)
        h.psa_ticket("one")
        h.clock.advance(5)
        h.psa_ticket("two")
        h.psa.fail_next("get_ticket", TransientError("boom"))
        await h.engine.poll("psa")
        with store.tx() as c:
            assert len(repo.list_links(c)) == 0
            cur = repo.get_cursor(c, "psa")
        assert cur.position is None
        await h.engine.poll("psa")
        with store.tx() as c:
            assert len(repo.list_links(c)) == 2
        assert h.engine.health["psa"].ok is True


class TestPollPageLimit:
    ENGINE: ClassVar[dict[str, Any]] = {
        "overlap": 60,
        "initial_lookback": 3600,
        "max_attempts": 3,
        "backoff_min": 1,
        "backoff_max": 10,
        "poll_max_pages": 2,
    }

    def reads(self, h: Harness) -> list[str]:
        return [ref for name, ref in h.psa.world.calls if name == "get_ticket"]

    async def test_a_limited_poll_continues_where_it_stopped(self, store: Store):
        """Two pages of two per poll over five pages and more: successive polls process every ticket
        once, in listing order, with no gap; each poll that stops at the limit says so; a
        ticket changed while the backlog is read is read again at its new time, not
        skipped; once caught up, the overlap re-reads nothing."""
        h = Harness.build(store, extra={"engine": self.ENGINE})
        h.psa.fake = FakeSettings(page_size=2)
        ids = []
        for n in range(10):
            if n % 3 == 0:
                h.clock.advance(1)  # several tickets share a second: the id breaks ties
            ids.append(h.psa_ticket(f"t{n}", queue="Service Desk").ref.id)
        h.clock.advance(1)

        assert 4 == await h.engine.poll("psa")
        assert ids[:4] == self.reads(h)
        with store.tx() as c:
            cur = repo.get_cursor(c, "psa")
        assert (ids[3], cur.position) == (cur.resume_after, cur.resume_at)
        # changed while the backlog is read: one already processed, one not yet reached
        h.clock.advance(1)
        h.psa.world.change(ids[1], summary="t1 again")
        h.psa.world.change(ids[5], summary="t5 again")

        assert 4 == await h.engine.poll("psa")
        assert 3 == await h.engine.poll("psa")  # the end of the listing: caught up
        assert 2 == h.metrics.poll_page_limits.labels("psa")._value.get()
        with store.tx() as c:
            assert None is repo.get_cursor(c, "psa").resume_after
        for _ in range(4):  # the overlap re-reads (in pages, across polls) but skips
            assert 0 == await h.engine.poll("psa")
        reads = self.reads(h)
        assert ids[:5] + ids[6:] + [ids[1], ids[5]] == reads
        with store.tx() as c:  # the latest change processed; re-reads never move it back
            assert h.clock.now() == repo.get_cursor(c, "psa").position
        assert h.engine.health["psa"].ok is True

    async def test_a_failure_in_a_limited_poll_resumes_before_the_failed_ticket(self, store: Store):
        """A ticket that fails mid-backlog is the first one the next poll reads."""
        h = Harness.build(store, extra={"engine": self.ENGINE})
        h.psa.fake = FakeSettings(page_size=2)
        ids = [h.psa_ticket(f"t{n}", queue="Service Desk").ref.id for n in range(6)]
        h.clock.advance(1)
        await h.engine.poll("psa")  # 0..3
        h.psa.fail_next("get_ticket", TransientError("boom"))
        assert 0 == await h.engine.poll("psa")  # 4 fails
        assert 2 == await h.engine.poll("psa")
        assert [*ids[:4], ids[4], *ids[4:]] == self.reads(h)


class TestPoisonTicket:
    async def test_a_ticket_that_always_fails_does_not_stop_the_others(self, store: Store):
        """A ticket whose read fails on every poll is set aside after three tries; tickets
        changed after it are still linked."""
        h = Harness.build(store)
        bad = h.psa_ticket("unreadable")
        h.clock.advance(5)
        h.psa_ticket("fine")
        for _ in range(3):
            h.psa.fail_next("get_ticket", TransientError("garbage in the record"))
            # the fake fails the first get_ticket of each poll: the unreadable one
            await h.engine.poll("psa")
        await h.engine.poll("psa")
        with store.tx() as c:
            linked = {r.psa_ticket_id for r in repo.list_links(c)}
        assert bad.ref.id not in linked
        assert len(linked) == 1


class TestDispatch:
    async def test_uncertain_failure_is_looked_up_not_resent(self, store: Store):
        """A note that reached the vendor but whose answer was lost is found by its marker
        on retry instead of being written twice."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        h.vendor.fail_next(
            "add_note", TransientError("read timeout", uncertain=True), after_apply=True
        )
        h.psa_note(t, "Only once, please.", Visibility.PUBLIC)
        await h.settle()
        vid = h.link().vendor_ticket_id
        assert sum("Only once, please." in x for x in texts(h, "vendor", vid)) == 1
        assert ("find_note", vid) in h.vendor.world.calls
        link_id = h.link().id
        with store.tx() as c:
            assert {"done"} == {r.state for r in repo.ledger_rows(c, link_id) if r.reason is None}

    async def test_uncertain_create_is_looked_up(self, store: Store):
        """A vendor ticket created whose answer was lost is found by correlation on retry."""
        h = Harness.build(store)
        h.vendor.fail_next("create_ticket", TransientError("502", uncertain=True), after_apply=True)
        h.psa_ticket()
        await h.settle()
        assert len(h.vendor.world.tickets) == 1
        assert h.link().state == "open"

    async def test_permanent_failure_dead_letters_only_its_ticket(self, store: Store):
        """A write the vendor refuses goes dead; later writes of that ticket wait, other
        tickets keep flowing."""
        h = Harness.build(store)
        bad = h.psa_ticket("bad")
        good = h.psa_ticket("good")
        await h.settle()
        h.vendor.fail_next("add_note", NotFoundError("gone", status=404))
        h.psa_note(bad, "first", Visibility.PUBLIC)
        await h.settle()
        h.psa_note(bad, "second", Visibility.PUBLIC)
        h.psa_note(good, "to the good one", Visibility.PUBLIC)
        await h.settle()
        dead = h.outbox("dead")
        assert len(dead) == 1
        assert "NotFoundError" in dead[0].last_error
        with store.tx() as c:
            links = {r.psa_ticket_id: r for r in repo.list_links(c)}
        good_vid = links[good.ref.id].vendor_ticket_id
        bad_vid = links[bad.ref.id].vendor_ticket_id
        assert any("to the good one" in x for x in texts(h, "vendor", good_vid))
        assert not any("second" in x for x in texts(h, "vendor", bad_vid))
        assert len(h.outbox("pending")) == 1

    async def test_transient_failures_retry_then_dead_letter(self, store: Store):
        """After max_attempts transient failures the write is dead-lettered and counted."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        for _ in range(3):
            h.vendor.fail_next("add_note", TransientError("503", uncertain=False))
        h.psa_note(t, "never arrives", Visibility.PUBLIC)
        for _ in range(30):
            await h.settle(rounds=1)
            h.clock.advance(5)
        dead = h.outbox("dead")
        assert len(dead) == 1
        assert dead[0].attempts == 3
        sample = h.metrics.writes.labels("vendor", "add_note", "dead")._value.get()
        assert sample == 1

    async def test_retry_after_is_honoured(self, store: Store):
        """A 429 with Retry-After puts the next attempt no earlier than asked."""
        h = Harness.build(store)
        t = h.psa_ticket()
        await h.settle()
        h.vendor.fail_next("add_note", RateLimitedError("429", retry_after=120))
        h.psa_note(t, "rate limited", Visibility.PUBLIC)
        await h.engine.poll("psa")
        now = h.clock.now()
        await h.engine.dispatch_once()
        row = h.outbox("pending")[0]
        assert row.next_attempt_at >= now + timedelta(seconds=120)
        assert "rate limited" in row.payload["text"]
