"""The dispatcher with typed operations: garbled rows dead-lettered, the fault seam."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Harness
from ticketbridge.domain import Visibility
from ticketbridge.engine import Engine
from ticketbridge.engine.dispatch import describe_waits
from ticketbridge.errors import RateLimitedError, TransientError
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store, repo
from ticketbridge.store.tables import outbox
from ticketbridge.testing import NoFaults, install_faults, installed_faults

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Boom(Exception):
    """Raised by the recording hook to stand in for a crash."""


class Recorder:
    """A fault hook that records every point and fails at one of them."""

    def __init__(self, fail_at: tuple[str, str] | None = None) -> None:
        self.hits: list[tuple[str, str]] = []
        self.fail_at = fail_at

    def hit(self, point: str, operation: str) -> None:
        self.hits.append((point, operation))
        if (point, operation) == self.fail_at:
            raise Boom(f"{point}:{operation}")


@pytest.fixture
def restore_faults() -> Iterator[None]:
    before = installed_faults()
    yield
    install_faults(before)


async def linked(store: Store) -> tuple[Harness, Any]:
    h = Harness.build(store)
    t = h.psa_ticket()
    await h.settle()
    assert "open" == h.link().state
    return h, t


def queue_raw(h: Harness, operation: str, payload: Any, key: str) -> None:
    link_id = h.link().id
    with h.store.tx() as c:
        assert repo.enqueue(
            c,
            link_id=link_id,
            target_system="vendor",
            operation=operation,
            key=key,
            payload=payload,
            now=h.clock.now(),
        )


class TestGarbledRows:
    @pytest.mark.parametrize(
        ("operation", "payload", "reason"),
        [
            ("frobnicate", {"x": 1}, "unknown outbox operation 'frobnicate'"),
            ("add_note", {"visibility": "public"}, "garbled 'add_note' payload: missing 'text'"),
            ("update_ticket", {"colour": "red"}, "unexpected keys ['colour']"),
        ],
    )
    async def test_dead_lettered_at_once_with_the_reason(
        self, store: Store, operation: str, payload: Any, reason: str
    ) -> None:
        """A row the dispatcher cannot read goes dead on its first attempt, with an event
        naming why; the other writes of the ticket keep their order and nothing crashes."""
        h, _t = await linked(store)
        queue_raw(h, operation, payload, "garbled-1")
        await h.engine.dispatch_once()
        dead = h.outbox("dead")
        assert ["garbled-1"] == [r.key for r in dead]
        assert 1 == dead[0].attempts
        assert reason in dead[0].last_error
        link_id = h.link().id
        with store.tx() as c:
            events = [e for e in repo.link_events(c, link_id) if e.kind == "write_dead"]
        assert [operation] == [e.detail["operation"] for e in events]

    async def test_old_row_shape_is_still_sent(self, store: Store) -> None:
        """A note row in the stored form of earlier releases is delivered as before."""
        h, _t = await linked(store)
        queue_raw(
            h,
            "add_note",
            {"text": "from an older release", "visibility": "public", "source_note_id": None},
            "old-row-1",
        )
        await h.settle()
        vendor_id = h.link().vendor_ticket_id
        notes = h.vendor.world.notes[vendor_id]
        assert 1 == sum(n.text.startswith("from an older release") for n in notes)
        assert [] == h.outbox("dead")


class TestFaultSeam:
    async def test_default_hook_does_nothing(self, store: Store) -> None:
        """Production dispatchers get the no-op hook."""
        h = Harness.build(store)
        assert isinstance(h.engine.dispatcher.faults, NoFaults)

    async def test_installed_hook_sees_each_write_after_send(
        self, store: Store, restore_faults: None
    ) -> None:
        """A hook installed before the daemon is built is called after each write reached
        the target, with the operation's name."""
        recorder = Recorder()
        install_faults(recorder)
        h, t = await linked(store)
        h.psa_note(t, "hello vendor", Visibility.PUBLIC)
        await h.settle()
        assert [
            ("after_send", "create_ticket"),
            ("after_send", "update_ticket"),
            ("after_send", "add_note"),
        ] == recorder.hits

    async def test_failing_between_send_and_record_is_not_repeated(
        self, store: Store, restore_faults: None
    ) -> None:
        """A crash stand-in after the note reached the vendor leaves the row uncertain; the
        retry finds the note by key instead of adding it twice."""
        install_faults(Recorder(fail_at=("after_send", "add_note")))
        h, t = await linked(store)
        h.psa_note(t, "exactly once", Visibility.PUBLIC)
        await h.engine.poll("psa")
        await h.engine.dispatch_once()
        assert [1] == [r.attempts for r in h.outbox("pending")]
        h.engine.dispatcher.faults = NoFaults()
        for _ in range(10):
            h.clock.advance(60)
            await h.settle(rounds=1)
        vendor_id = h.link().vendor_ticket_id
        assert 1 == sum("exactly once" in n.text for n in h.vendor.world.notes[vendor_id])
        assert [] == h.outbox("pending", "dead")


# -- issue 8: one ticket never holds up another; bounded Retry-After; fencing -------------


def vendor_faults(h: Harness) -> Any:
    """The in-process vendor simulator's fault plan."""
    return h.vendor.http._client._transport.app.state.faults  # type: ignore[attr-defined]


def vendor_notes(h: Harness, vendor_id: str, word: str) -> list[str]:
    """The lines holding ``word`` of the notes at the vendor ticket, in the order added."""
    return [
        line.strip()
        for n in h.vendor.world.notes[vendor_id]
        for line in n.text.splitlines()
        if word in line
    ]


async def eventually(check: Callable[[], bool], within: float) -> float:
    """Wait (real time) until ``check()`` holds; the seconds it took, or a failure."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def two_linked(store: Store) -> tuple[Harness, Any, Any, str, str]:
    h = Harness.build(store)
    a = h.psa_ticket("Ticket A")
    b = h.psa_ticket("Ticket B")
    await h.settle()
    with store.tx() as c:
        by_psa = {link.psa_ticket_id: link.vendor_ticket_id for link in repo.list_links(c)}
    return h, a, b, by_psa[a.ref.id], by_psa[b.ref.id]


class TestOneTicketNeverHoldsUpAnother:
    async def test_a_long_retry_after_on_a_parks_only_a(self, store: Store) -> None:
        """A 429 with Retry-After 20 on ticket A's note: ticket B's notes are delivered
        within a couple of seconds; A's notes follow, in order, once its 20 s are over."""
        h, a, b, va, vb = await two_linked(store)
        vendor_faults(h).add(
            [
                {
                    "method": "POST",
                    "path": f"/api/tickets/{va}/notes$",
                    "status": 429,
                    "retry_after": "20",
                }
            ]
        )
        h.psa_note(a, "alpha-1 first", Visibility.PUBLIC)
        h.psa_note(a, "alpha-2 second", Visibility.PUBLIC)
        for i in range(3):
            h.psa_note(b, f"B{i} flows", Visibility.PUBLIC)
        await h.engine.poll("psa")
        refused_at = h.clock.now()
        stop = asyncio.Event()
        worker = asyncio.create_task(h.engine.run_worker(stop))
        try:
            took = await eventually(lambda: len(vendor_notes(h, vb, "flows")) == 3, within=3.0)
            assert took < 3.0
            assert [] == vendor_notes(h, va, "alpha-")
            [parked] = [
                r
                for r in h.outbox("pending")
                if r.operation == "add_note" and "alpha-1" in r.payload["text"]
            ]
            assert parked.next_attempt_at == refused_at + timedelta(seconds=20)
            h.clock.advance(19)
            h.engine.wake.set()
            await asyncio.sleep(0.3)
            assert [] == vendor_notes(h, va, "alpha-")  # not before its Retry-After
            h.clock.advance(2)
            h.engine.wake.set()
            await eventually(lambda: len(vendor_notes(h, va, "alpha-")) == 2, within=3.0)
        finally:
            stop.set()
            await asyncio.wait_for(worker, 5)
        assert ["alpha-1 first", "alpha-2 second"] == vendor_notes(h, va, "alpha-")
        assert ["B0 flows", "B1 flows", "B2 flows"] == vendor_notes(h, vb, "flows")

    async def test_a_slow_webhook_read_does_not_hold_up_writes(self, store: Store) -> None:
        """Reading the ticket a webhook names (here: hanging) runs beside the writes."""
        h, _a, b, _va, vb = await two_linked(store)
        h.psa_note(b, "bravo flows while a hint hangs", Visibility.PUBLIC)
        await h.engine.poll("psa")
        release = asyncio.Event()
        real_get = h.psa.get_ticket

        async def hanging(ticket_id: str) -> Any:
            await release.wait()
            return await real_get(ticket_id)

        h.psa.get_ticket = hanging  # type: ignore[method-assign]
        await h.engine.add_hint("psa", b.ref.id, "delivery-1")
        stop = asyncio.Event()
        worker = asyncio.create_task(h.engine.run_worker(stop))
        try:
            await eventually(lambda: len(vendor_notes(h, vb, "flows")) == 1, within=3.0)
            # delivered while the hint's read still hangs
            assert not release.is_set()
        finally:
            release.set()
            stop.set()
            await asyncio.wait_for(worker, 5)
        assert ["bravo flows while a hint hangs"] == vendor_notes(h, vb, "flows")


class TestBoundedRetryAfter:
    @pytest.mark.parametrize(
        "value", ["inf", "1e12", "nan", "-5", "100000000", "Tue, 01 Jan 2030 00:00:00 GMT"]
    )
    async def test_any_retry_after_parks_within_the_cap(self, store: Store, value: str) -> None:
        """Whatever a 429's Retry-After says, the write is parked at most
        engine.retry_after_max (15 min by default), never stuck in 'sending', and
        delivered once after."""
        h, t = await linked(store)
        vendor = h.link().vendor_ticket_id
        vendor_faults(h).add(
            [
                {
                    "method": "POST",
                    "path": f"/api/tickets/{vendor}/notes$",
                    "status": 429,
                    "retry_after": value,
                }
            ]
        )
        h.psa_note(t, "bounded wait", Visibility.PUBLIC)
        await h.engine.poll("psa")
        await asyncio.wait_for(h.engine.dispatch_once(), 10)
        [row] = [r for r in h.outbox() if r.operation == "add_note"]
        if value in ("nan", "-5"):  # nothing usable / no wait: retried inside the call
            assert "done" == row.state
        else:
            assert "pending" == row.state
            assert row.next_attempt_at == h.clock.now() + timedelta(minutes=15)
        h.clock.advance(15 * 60 + 1)
        await h.settle()
        assert ["bounded wait"] == vendor_notes(h, vendor, "bounded")

    @pytest.mark.parametrize("seconds", [float("inf"), 1e12, float("nan"), -1.0])
    async def test_an_absurd_retry_after_never_crashes_the_worker(
        self, store: Store, seconds: float
    ) -> None:
        """A RateLimitedError carrying an infinite or huge wait (OverflowError in timedelta
        before) leaves the write pending within the cap, not stuck in 'sending'."""
        h, t = await linked(store)
        h.vendor.fail_next("add_note", RateLimitedError("slow down", retry_after=seconds))
        h.psa_note(t, "no overflow", Visibility.PUBLIC)
        await h.engine.poll("psa")
        await h.engine.dispatch_once()
        [row] = [r for r in h.outbox() if r.operation == "add_note"]
        assert "pending" == row.state
        assert row.next_attempt_at <= h.clock.now() + timedelta(minutes=15)

    async def test_a_write_failing_past_its_deadline_is_dead_lettered(self, store: Store) -> None:
        """engine.write_deadline: a write still failing that long after it was queued goes
        dead with the reason, instead of retrying on and on."""
        engine = {"max_attempts": 50, "backoff_min": 1, "backoff_max": 10, "write_deadline": "1h"}
        h = Harness.build(store, extra={"engine": engine})
        t = h.psa_ticket()
        await h.settle()
        vendor = h.link().vendor_ticket_id
        vendor_faults(h).add(
            [
                {
                    "method": "POST",
                    "path": f"/api/tickets/{vendor}/notes$",
                    "status": 503,
                    "count": None,
                }
            ]
        )
        h.psa_note(t, "too late", Visibility.PUBLIC)
        await h.engine.poll("psa")
        await h.engine.dispatch_once()
        [row] = [r for r in h.outbox() if r.operation == "add_note"]
        assert "pending" == row.state
        h.clock.advance(3601)
        await h.engine.dispatch_once()
        [row] = [r for r in h.outbox() if r.operation == "add_note"]
        assert "dead" == row.state
        assert "past its write deadline" in (row.last_error or "")
        assert 2 == row.attempts
        with store.tx() as c:
            events = [e for e in repo.link_events(c, row.link_id) if e.kind == "write_dead"]
        assert ["add_note"] == [e.detail["operation"] for e in events]
        assert "past its write deadline" in events[0].detail["error"]

    async def test_an_error_while_recording_a_failure_does_not_leave_it_sending(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Even an unexpected error in the failure path puts the row back in line."""
        h, t = await linked(store)
        h.vendor.fail_next("add_note", TransientError("flaky", uncertain=False))

        def broken(*args: Any, **kwargs: Any) -> float:
            raise OverflowError("date value out of range")

        monkeypatch.setattr(h.engine.dispatcher, "_delay", broken)
        h.psa_note(t, "recorded anyway", Visibility.PUBLIC)
        await h.engine.poll("psa")
        await h.engine.dispatch_once()
        [row] = [r for r in h.outbox() if r.operation == "add_note"]
        assert "pending" == row.state
        assert row.uncertain


class TestReplicasNeverWriteTwice:
    async def test_a_paused_owner_does_not_send_after_its_lease(self, store: Store) -> None:
        """Process 1 claims a note and pauses past its lease; process 2 takes the write
        over and delivers it; process 1 wakes up: the vendor has exactly one copy, and
        process 1's attempt is refused and counted."""
        h, t = await linked(store)
        other = Engine(
            h.engine.config, store, {"psa": h.psa, "vendor": h.vendor}, Metrics(), h.clock
        )
        vendor = h.link().vendor_ticket_id
        real_add = h.vendor.add_note
        entered, gate = asyncio.Event(), asyncio.Event()

        async def paused(ticket_id: str, note: Any, key: str) -> Any:
            if not entered.is_set():
                entered.set()
                await gate.wait()  # process 1 is stopped (GC pause, SIGSTOP, slow retries)
            return await real_add(ticket_id, note, key)

        h.vendor.add_note = paused  # type: ignore[method-assign]
        h.psa_note(t, "exactly one copy", Visibility.PUBLIC)
        await h.engine.poll("psa")
        first = asyncio.create_task(h.engine.dispatch_once())
        await asyncio.wait_for(entered.wait(), 5)
        h.clock.advance(h.engine.config.engine.write_lease + 1)
        assert 1 == await other.dispatch_once()
        gate.set()
        await asyncio.wait_for(first, 10)
        assert ["exactly one copy"] == vendor_notes(h, vendor, "exactly")
        [row] = [r for r in h.outbox() if r.operation == "add_note"]
        assert "done" == row.state
        lost = h.metrics.claims_lost.labels("vendor", "add_note")._value.get()
        assert 1 == lost
        with store.tx() as c:
            mirrored = [e for e in repo.link_events(c, row.link_id) if e.kind == "note_mirrored"]
        assert 1 == len(mirrored)

    async def test_an_owner_past_its_lease_before_sending_sends_nothing(self, store: Store) -> None:
        """The owner re-checks its lease right before sending: claimed, then taken over,
        it sends nothing at all."""
        h, t = await linked(store)
        other = Engine(
            h.engine.config, store, {"psa": h.psa, "vendor": h.vendor}, Metrics(), h.clock
        )
        vendor = h.link().vendor_ticket_id
        h.psa_note(t, "claimed twice", Visibility.PUBLIC)
        await h.engine.poll("psa")
        [row] = await h.engine.dispatcher.claim(10)
        h.clock.advance(h.engine.config.engine.write_lease + 1)
        assert 1 == await other.dispatch_once()
        calls = len(h.vendor.world.calls)
        await h.engine.dispatcher.send(row)
        assert calls == len(h.vendor.world.calls)
        assert ["claimed twice"] == vendor_notes(h, vendor, "claimed")
        assert "done" == h.outbox("done")[-1].state


class TestWhatWaitsOnWhat:
    async def test_outbox_list_says_what_each_row_waits_on(self, store: Store) -> None:
        """Each open row says why it is not sent: behind a dead row, a retry time and its
        error, a vendor ticket not created yet, a lease held elsewhere."""
        h = Harness.build(store)
        h.vendor.fail_next("create_ticket", TransientError("vendor down", uncertain=False))
        h.psa_ticket()
        await h.engine.poll("psa")
        await h.engine.dispatch_once()
        queue_raw(h, "add_note", {"text": "a rule's note", "visibility": "public"}, "rule-1")
        now = h.clock.now()
        with store.tx() as c:
            rows = repo.outbox_rows(c, states=["pending", "sending", "dead"])
            waits = describe_waits(c, rows, now)
        by_op = {r.operation: (r, waits[r.id]) for r in rows}
        create, create_wait = by_op["create_ticket"]
        assert create_wait.startswith("retry at ")
        assert create_wait.endswith("TransientError: vendor down")
        note_wait = next(waits[r.id] for r in rows if r.operation == "add_note")
        assert note_wait.startswith("vendor ticket not created yet; behind #")
        assert f"#{create.id} (create_ticket, retry at" in note_wait

    async def test_dead_head_and_lease(self, store: Store) -> None:
        """Rows behind a dead one name it and its reason; a claimed row names its lease."""
        h, _t = await linked(store)
        queue_raw(h, "frobnicate", {"x": 1}, "garbled-head")
        await h.engine.dispatch_once()
        queue_raw(h, "add_note", {"text": "stuck behind", "visibility": "public"}, "behind-1")
        queue_raw(h, "add_note", {"text": "third", "visibility": "public"}, "behind-2")
        now = h.clock.now()
        with store.tx() as c:
            rows = repo.outbox_rows(c, states=["pending", "sending", "dead"])
            waits = describe_waits(c, rows, now)
        dead = next(r for r in rows if r.key == "garbled-head")
        for key in ("behind-1", "behind-2"):
            row = next(r for r in rows if r.key == key)
            assert waits[row.id].startswith(
                f"behind #{dead.id} (frobnicate, dead: PermanentError: "
                "unknown outbox operation 'frobnicate'"
            )
        with store.tx() as c:
            repo.outbox_cancel(c, dead.id)
            [claimed] = repo.claim_outbox(
                c, now, limit=5, lease=timedelta(minutes=2), postgres=not store.is_sqlite
            )
            waits = describe_waits(c, repo.outbox_rows(c, states=["pending", "sending"]), now)
        assert waits[claimed.id] == "lease held by another process until " + (
            (now + timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M:%S UTC")
        )

    async def test_outbox_list_command_prints_the_waits(self, store: Store, tmp_path: Any) -> None:
        """`ticketbridge outbox list` has a "waiting on" column with each row's reason."""
        import yaml
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        h, _t = await linked(store)
        queue_raw(h, "frobnicate", {"x": 1}, "garbled-head")
        await h.engine.dispatch_once()
        queue_raw(h, "add_note", {"text": "stuck behind", "visibility": "public"}, "behind-1")
        cfg = {
            "store": {"url": store.url.render_as_string(hide_password=False)},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {
                    "name": "main",
                    "psa": "psa",
                    "vendor": "vendor",
                    "routing": {"queues": ["Vendor Escalations"]},
                }
            ],
        }
        path = tmp_path / "tb.yaml"
        path.write_text(yaml.safe_dump(cfg))
        result = CliRunner().invoke(
            app, ["outbox", "list", "--config", str(path)], env={"COLUMNS": "400"}
        )
        assert result.exit_code == 0, result.output
        dead = h.outbox("dead")[0]
        assert "waiting on" in result.output
        assert f"behind #{dead.id} (frobnicate, dead: PermanentError" in result.output


class TestSuccessesShareATransaction:
    async def _three_claimed(self, store: Store) -> tuple[Harness, list[Any]]:
        h = Harness.build(store)
        tickets = [h.psa_ticket(f"ticket {n}") for n in range(3)]
        await h.settle()
        for t in tickets:
            h.psa_note(t, f"shared commit {t.ref.id}", Visibility.PUBLIC)
        await h.engine.poll("psa")
        rows = await h.engine.dispatcher.claim(10)
        assert 3 == len(rows)
        return h, rows

    async def test_writes_finishing_together_are_recorded_in_one_transaction(
        self, store: Store
    ) -> None:
        h, rows = await self._three_claimed(store)
        real_add = h.vendor.add_note
        entered: list[int] = []
        together = asyncio.Event()

        async def add_together(ticket_id: str, note: Any, key: str) -> Any:
            added = await real_add(ticket_id, note, key)
            entered.append(1)
            if len(entered) == len(rows):
                together.set()
            await together.wait()  # the three answers come back at the same moment
            return added

        h.vendor.add_note = add_together  # type: ignore[method-assign]
        commits: list[int] = []

        def count(_conn: Any) -> None:
            commits.append(1)

        sa.event.listen(store.engine, "commit", count)
        try:
            await asyncio.gather(*(h.engine.dispatcher.send(row) for row in rows))
        finally:
            sa.event.remove(store.engine, "commit", count)
        assert 1 == len(commits)
        done = {r.id for r in h.outbox("done")}
        assert all(row.id in done for row in rows)
        with store.tx() as c:
            states = {e.state for e in repo.ledger_rows(c, rows[0].link_id)}
        assert {"done"} == states

    async def test_a_lost_claim_in_a_shared_transaction_records_only_itself_as_lost(
        self, store: Store
    ) -> None:
        h, rows = await self._three_claimed(store)
        taken = rows[1]
        with store.tx() as c:  # another process took this row over meanwhile
            c.execute(sa.update(outbox).where(outbox.c.id == taken.id).values(claim_token="theirs"))
        await asyncio.gather(*(h.engine.dispatcher.send(row) for row in rows))
        by_id = {r.id: r for r in h.outbox()}
        assert "sending" == by_id[taken.id].state  # still theirs: nothing recorded by us
        assert ["done", "done"] == [by_id[r.id].state for r in rows if r.id != taken.id]
        assert 1 == h.metrics.claims_lost.labels("vendor", "add_note")._value.get()
        with store.tx() as c:
            mirrored = [e for e in repo.link_events(c, taken.link_id) if e.kind == "note_mirrored"]
            ledger = [e.state for e in repo.ledger_rows(c, taken.link_id)]
        assert [] == mirrored
        assert "done" not in ledger
