"""``python -m bench.rt_flow``: one vendor incident against a real Request Tracker 5.

Starts a throwaway RT (``ticketbridge.adapters.rt.local``, as the tests do; install it
with ``scripts/rt-up``), then through the RT adapter: opens a ticket, writes 20 notes
(correspondence and comments alternating), while a vendor agent writes 20 notes through
REST2 and the adapter reads each one incrementally as a poll would (the tickets changed
since the last poll, then the ticket's notes since the newest one seen), and resolves the
ticket.  Prints the wall time and the HTTP requests the adapter made, per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.rt import RtAdapter, RtSettings
from ticketbridge.adapters.rt.driver import RtAgent
from ticketbridge.adapters.rt.local import LocalRt, start_local_rt
from ticketbridge.domain import FieldChange, NoteDraft, TicketDraft, Visibility

#: The engine's overlap when it reads notes since the newest one seen (1 s resolution).
OVERLAP = timedelta(seconds=1)


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's transport, counting each request by ``METHOD path-shape``."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shape = "/".join("{id}" if p.isdigit() else p for p in request.url.path.split("/"))
        self.calls[f"{request.method} {shape.split('/REST/2.0', 1)[-1]}"] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def flow(rt: LocalRt, notes: int) -> dict[str, Any]:
    wire = CountingTransport()
    adapter = RtAdapter(
        AdapterContext(name="rt", base_url=rt.base_url, transport=wire),
        RtSettings(token=rt.token, user=rt.user, queue=rt.queue, requestor=rt.requestor),
    )
    agent = RtAgent(rt.base_url, rt.agent_token, rt.queue, None)
    phases: dict[str, dict[str, Any]] = {}

    async def phase(name: str, work: Any) -> Any:
        before, started = sum(wire.calls.values()), time.perf_counter()
        result = await work
        phases[name] = {
            "seconds": round(time.perf_counter() - started, 3),
            "calls": sum(wire.calls.values()) - before,
        }
        return result

    async def write_ours() -> None:
        for n in range(notes):
            visibility = Visibility.PUBLIC if n % 2 == 0 else Visibility.INTERNAL
            await adapter.add_note(tid, NoteDraft(f"MSP note {n}", visibility), f"{n:016x}")

    read: list[str] = []
    agent_seconds = 0.0

    async def read_theirs() -> None:
        nonlocal agent_seconds
        since: datetime | None = None
        polled = datetime.now().astimezone() - timedelta(seconds=5)
        for n in range(notes):
            visibility = Visibility.PUBLIC if n % 2 == 0 else Visibility.INTERNAL
            started = time.perf_counter()
            await agent.note(tid, f"Vendor note {n}", visibility)
            agent_seconds += time.perf_counter() - started
            changed = await adapter.changed_tickets(polled - OVERLAP)
            assert tid in {c.ticket_id for c in changed}
            polled = max(c.updated_at for c in changed)
            found = await adapter.list_notes(tid, since)
            fresh = [x for x in found if not x.by_us and x.id not in read]
            read.extend(x.id for x in fresh)
            if found:
                since = max(x.created_at for x in found) - OVERLAP

    started = time.perf_counter()
    try:
        tid = (
            await phase(
                "create", adapter.create_ticket(TicketDraft("Link down", "Since 09:00."), "f" * 16)
            )
        ).id
        await phase("notes_out", write_ours())
        await phase("notes_in", read_theirs())
        await phase("resolve", adapter.update_ticket(tid, FieldChange(status="resolved")))
        total = time.perf_counter() - started
        status = (await agent.ticket(tid))["Status"]
    finally:
        await adapter.aclose()
        await agent.aclose()
    phases["notes_in"]["agent_seconds_excluded"] = round(agent_seconds, 3)  # not the adapter's
    return {
        "wall_seconds": round(total, 3),
        "adapter_calls": sum(wire.calls.values()),
        "agent_notes_read": len(read),
        "final_status": status,
        "phases": phases,
        "calls_by_request": dict(sorted(wire.calls.items())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rt_flow", description=__doc__)
    parser.add_argument("--notes", type=int, default=20, help="notes each way (20)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rt-flow-") as state:
        started = time.perf_counter()
        rt = start_local_rt(Path(state))
        boot = time.perf_counter() - started
        try:
            result = asyncio.run(flow(rt, args.notes))
        finally:
            rt.stop()
    result["rt_start_seconds"] = round(boot, 3)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Request Tracker flow ({args.notes} notes each way), RT started in {boot:.1f} s")
    print(
        f"  wall time {result['wall_seconds']:.2f} s, adapter HTTP calls "
        f"{result['adapter_calls']}, agent notes read {result['agent_notes_read']}, "
        f"final status {result['final_status']}"
    )
    for name, figures in result["phases"].items():
        extra = figures.get("agent_seconds_excluded")
        note = f"  (of which the agent's own REST2 writes {extra:.2f} s)" if extra else ""
        print(f"  {name:10} {figures['seconds']:7.2f} s  {figures['calls']:4} calls{note}")
    for request, count in result["calls_by_request"].items():
        print(f"    {count:4}  {request}")


if __name__ == "__main__":
    main()
