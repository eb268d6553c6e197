"""The dispatcher with typed operations: garbled rows dead-lettered, the fault seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Harness
from ticketbridge.domain import Visibility
from ticketbridge.store import Store, repo
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
