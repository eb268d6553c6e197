"""API calls per mirrored note, counted by the simulators (counts, never times).

A note an engineer adds in ConnectWise reaches the linked ServiceNow incident with one
read at the PSA (the ticket's notes since the newest one handled: the ticket itself
comes in the signed callback) and one write at the vendor, whose answer proves it (the
journal entry it shows).  The vendor's webhook for that very write is recognised by its
version and read no more.  Polling reads each changed ticket's new notes once per cycle.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import Sims
from tests.e2e.scenario import open_and_link

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TICKETS = 5
NOTES_PER_TICKET = 4
NOTE_POST = re.compile(r"/service/tickets/\d+/notes$")
#: The polls' own listings (the cost of a poll cycle, counted apart).
LISTINGS = re.compile(r"/service/tickets$|/api/now/table/incident$")


def requests(sim: Any) -> list[Any]:
    return list(sim.app.state.requests.items())


def journal_texts(sims: Sims) -> list[str]:
    with sims.sn_state.lock:
        return [j["value"] for j in sims.sn_state.tables["sys_journal_field"].values()]


async def settle(sims: Sims, quiet: float = 1.5, timeout: float = 30) -> None:
    """Wait until neither simulator has seen a request for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = (-1, -1)
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = (len(requests(sims.cw)), len(requests(sims.sn)))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the simulators never went quiet")


async def arrived(sims: Sims, texts: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        there = journal_texts(sims)
        if all(any(text in entry for entry in there) for text in texts):
            return
        await asyncio.sleep(0.1)
    missing = [t for t in texts if not any(t in e for e in journal_texts(sims))]
    raise AssertionError(f"{len(missing)} notes never reached ServiceNow: {missing[:3]}")


def tally(records: list[Any], *, leave_out: re.Pattern[str] | None = None) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in records:
        if leave_out is not None and leave_out.search(r.path):
            continue
        out["read" if r.method == "GET" else "write"] += 1
    return out


async def linked_tickets(cw: Any, admin: Any, sims: Sims) -> list[int]:
    """Linked tickets, each with a first note mirrored: the calls a link costs once (the
    vendor ticket's first read, which the SLA clock starts from) are behind us."""
    tickets = [
        (await open_and_link(cw, admin, summary=f"Circuit {n} down - calls per note")).ticket_id
        for n in range(TICKETS)
    ]
    first = [f"First word on ticket {ticket_id}." for ticket_id in tickets]
    for ticket_id, text in zip(tickets, first, strict=True):
        await cw.add_note(ticket_id, text, internal=False)
    await arrived(sims, first)
    return tickets


class TestCallsPerNote:
    async def test_webhook_mode_one_read_and_one_write_per_note(self, sims, daemon_factory, actors):
        cw, _, admin = actors
        d = daemon_factory(webhooks=True, poll="1h").start()
        tickets = await linked_tickets(cw, admin, sims)
        await settle(sims)
        sims.cw.app.state.requests.clear()
        sims.sn.app.state.requests.clear()

        texts: list[str] = []
        for round_ in range(NOTES_PER_TICKET):
            for ticket_id in tickets:
                text = f"Update {round_} on ticket {ticket_id}: line tested again."
                await cw.add_note(ticket_id, text, internal=False)
                texts.append(text)
        await arrived(sims, texts)
        await settle(sims)

        cw_calls = requests(sims.cw)
        posted = [r for r in cw_calls if r.method == "POST" and NOTE_POST.search(r.path)]
        assert len(texts) == len(posted), "the engineer's own notes are told apart"
        psa = tally([r for r in cw_calls if r not in posted])
        vendor = tally(requests(sims.sn))
        notes = len(texts)
        print(
            f"\nwebhook mode, {notes} notes: PSA reads {psa['read']} writes {psa['write']}, "
            f"vendor reads {vendor['read']} writes {vendor['write']}"
        )
        assert 0 == psa["write"]
        assert notes == vendor["write"], "one write per note"
        assert 0 == vendor["read"], "the write's answer proves it; its echo is not read"
        assert psa["read"] <= notes, "at most one read of the PSA ticket's notes per note"
        assert (psa.total() + vendor.total()) / notes <= 2.05
        d.stop()

    async def test_polling_mode_reads_each_ticket_once_per_cycle(
        self, sims, daemon_factory, actors
    ):
        """N notes per ticket between two polls: one read of the ticket's new notes, one
        write per note — ≤ 1 + 1/N + 0.05 calls per note besides the polls' listings."""
        cw, _, admin = actors
        d = daemon_factory(webhooks=False, poll="3s").start()
        tickets = await linked_tickets(cw, admin, sims)
        await asyncio.sleep(7)  # two poll cycles: the first notes and their echoes are behind
        sims.cw.app.state.requests.clear()
        sims.sn.app.state.requests.clear()

        texts: list[str] = []
        assert d.proc is not None
        d.proc.send_signal(signal.SIGSTOP)  # every note is there before the next poll
        try:
            for ticket_id in tickets:
                for n in range(NOTES_PER_TICKET):
                    text = f"Polled update {n} on ticket {ticket_id}."
                    await cw.add_note(ticket_id, text, internal=False)
                    texts.append(text)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        await arrived(sims, texts)
        await asyncio.sleep(7)  # the polls after the writes see only our own writes

        cw_calls = requests(sims.cw)
        posted = [r for r in cw_calls if r.method == "POST" and NOTE_POST.search(r.path)]
        assert len(texts) == len(posted)
        psa = tally([r for r in cw_calls if r not in posted], leave_out=LISTINGS)
        vendor = tally(requests(sims.sn), leave_out=LISTINGS)
        notes = len(texts)
        print(
            f"\npolling mode, {notes} notes ({NOTES_PER_TICKET} per ticket): PSA reads "
            f"{psa['read']}, vendor reads {vendor['read']} writes {vendor['write']} "
            "(listings apart)"
        )
        assert notes == vendor["write"]
        assert 0 == vendor["read"] + psa["write"], "our own writes' echoes are not read"
        assert len(tickets) == psa["read"], "one read of each ticket's new notes"
        assert (psa.total() + vendor.total()) / notes <= 1 + 1 / NOTES_PER_TICKET + 0.05
        d.stop()
