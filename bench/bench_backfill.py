"""Benchmark: backfill and reconcile against the ConnectWise and ServiceNow simulators.

Serves both simulators on 127.0.0.1, plays ``--tickets`` linked pairs (an incident the
vendor's agent opened, typed into a ConnectWise ticket; a public and an internal note on
each side), then times, each with the API requests the simulators counted:

* the backfill adopting every pair (SQLite store, no daemon);
* a reconcile run over the adopted links, all in step (nothing to repair);
* a reconcile run after ``--drift`` PSA notes no webhook announced (each recovered).

Run: ``.venv/bin/python bench/bench_backfill.py [--tickets 100] [--drift 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.clock import SystemClock
from ticketbridge.config import load_config
from ticketbridge.demo import render_config
from ticketbridge.engine import Engine
from ticketbridge.engine.backfill import Backfill
from ticketbridge.engine.reconcile import Reconciler
from ticketbridge.metrics import Metrics
from ticketbridge.sandbox.server import SandboxServer
from ticketbridge.store import Store
from ticketbridge.wiring import build_adapters


def requests(*servers: SandboxServer) -> list[int]:
    counts = []
    for server in servers:
        state: Any = server.app.state  # type: ignore[attr-defined]
        counts.append(len(state.requests.items()))
        state.requests.clear()
    return counts


async def play(cw_url: str, sn_url: str, count: int) -> list[int]:
    cw, sn = ConnectWiseActor(cw_url), ServiceNowActor(sn_url)
    tickets = []
    try:
        for n in range(count):
            resp = await sn.http.post(
                "/api/now/table/incident",
                json={"short_description": f"Circuit {n} down", "urgency": "2", "impact": "2"},
            )
            incident = resp.raise_for_status().json()["result"]
            ticket = await cw.open_ticket(
                summary=f"Circuit {n} down",
                description="The branch has no internet.",
                board="Service Desk",
                company="ACME",
                contact="Dana Whitfield",
                priority="Priority 2 - Quick Response",
            )
            patch = [{"op": "replace", "path": "externalXRef", "value": incident["number"]}]
            (await cw.http.patch(f"/service/tickets/{ticket['id']}", json=patch)).raise_for_status()
            await cw.add_note(ticket["id"], f"Client {n}: still down.", internal=False)
            await cw.add_note(ticket["id"], f"Internal {n}.", internal=True)
            await sn.update(incident["sys_id"], comments=f"Engineer {n} dispatched.")
            await sn.update(incident["sys_id"], work_notes=f"Card fault {n}.")
            tickets.append(int(ticket["id"]))
    finally:
        await cw.aclose()
        await sn.aclose()
    return tickets


async def drift(cw_url: str, tickets: list[int]) -> None:
    cw = ConnectWiseActor(cw_url)
    try:
        for tid in tickets:
            await cw.add_note(tid, "Client: is there an update?", internal=False)
    finally:
        await cw.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--drift", type=int, default=10)
    args = parser.parse_args()
    cw = SandboxServer(connectwise.create_app()).start()
    sn = SandboxServer(servicenow.create_app()).start()
    tmp = Path(tempfile.mkdtemp())
    try:
        with httpx.Client(
            base_url=sn.url, auth=("ticketbridge.integration", "integration-pass")
        ) as client:
            acme = client.get(
                "/api/now/table/core_company",
                params={"sysparm_query": "name=Acme Dental Group"},
            ).json()["result"][0]["sys_id"]
        data = render_config(
            db_path=str(tmp / "tb.db"),
            daemon_port="0",
            cw_url=cw.url,
            sn_url=sn.url,
            sn_token="bench-token-0123456789",
            acme_sys_id=acme,
            caller_sys_id="unused",
        )
        data["reconcile"] = {"grace": "0s", "links_per_run": 100_000}
        config = load_config(data)
        tickets = asyncio.run(play(cw.url, sn.url, args.tickets))
        requests(cw, sn)
        store = Store(config.store.url)
        store.upgrade()

        async def backfill() -> Any:
            adapters = build_adapters(config)
            runner = Backfill(config, store, adapters, SystemClock())
            [(psa, conns)] = runner.plan().items()
            try:
                from datetime import timedelta

                return await runner.run(psa, conns, timedelta(days=1))
            finally:
                for adapter in adapters.values():
                    await adapter.aclose()

        began = time.perf_counter()
        run = asyncio.run(backfill())
        took = time.perf_counter() - began
        cw_calls, sn_calls = requests(cw, sn)
        print(
            f"backfill: {run.counts['adopted']} linked tickets adopted in {took:.2f}s "
            f"({took / max(1, args.tickets) * 1000:.0f} ms each); API requests: "
            f"ConnectWise {cw_calls} ({cw_calls / args.tickets:.1f}/ticket), "
            f"ServiceNow {sn_calls} ({sn_calls / args.tickets:.1f}/ticket); "
            f"notes seen {run.counts['notes_seen']}, matched {run.counts['notes_matched']}"
        )

        async def reconcile() -> Any:
            adapters = build_adapters(config)
            engine = Engine(config, store, adapters, Metrics(), SystemClock())
            try:
                return await Reconciler(engine).run()
            finally:
                for adapter in adapters.values():
                    await adapter.aclose()

        for label, before in (("in step", None), ("after drift", args.drift)):
            if before:
                asyncio.run(drift(cw.url, tickets[:before]))
                requests(cw, sn)
            began = time.perf_counter()
            result = asyncio.run(reconcile())
            took = time.perf_counter() - began
            cw_calls, sn_calls = requests(cw, sn)
            print(
                f"reconcile ({label}): {result.links} links in {took:.2f}s "
                f"({took / max(1, result.links) * 1000:.0f} ms each), "
                f"{result.notes} notes recovered; API requests: ConnectWise {cw_calls}, "
                f"ServiceNow {sn_calls} ({(cw_calls + sn_calls) / max(1, result.links):.1f}/link)"
            )
        store.close()
    finally:
        cw.stop()
        sn.stop()


if __name__ == "__main__":
    main()
