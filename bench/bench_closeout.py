"""Benchmark: the closeout of a client with N open linked tickets (default 20).

The ConnectWise and ServiceNow simulators serve on 127.0.0.1; an engine in this process
links N ConnectWise tickets of the client ACME to ServiceNow incidents (not timed); then
``ticketbridge closeout ACME --apply`` runs as its own process against the same store and
simulators, as an administrator would run it.  Prints the command's wall time, the closeout's
own time (from the store: started to finished), and the API calls each simulator counted
during the command, by method.

Run: ``.venv/bin/python bench/bench_closeout.py [--tickets 20] [--store sqlite|postgresql]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench._harness import daemon_config, drop_schema, lookup_ids, make_store, open_tickets
from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.clock import SystemClock
from ticketbridge.config import load_config
from ticketbridge.engine import Engine
from ticketbridge.metrics import Metrics
from ticketbridge.sandbox.server import SandboxServer
from ticketbridge.store import Store, repo
from ticketbridge.store import closeout as co_store
from ticketbridge.wiring import build_adapters


async def link(engine: Engine, cw_url: str, count: int) -> None:
    """Open ``count`` routed tickets and run the engine until each has its incident."""
    actor = ConnectWiseActor(cw_url)
    try:
        await open_tickets(actor, count, "closeout", prefix="bench", board="Vendor Escalations")
    finally:
        await actor.aclose()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for system in engine.config.systems:
            await engine.poll(system)
        await engine.process_hints()
        while await engine.dispatch_once(64):
            pass  # until nothing is due
        with engine.store.tx() as c:
            linked = [row for row in repo.list_links(c) if row.vendor_ticket_id]
        if len(linked) >= count:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"only {len(linked)} of {count} tickets reached the vendor")


async def close(engine: Engine) -> None:
    for adapter in engine.adapters.values():
        await adapter.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    cw_app = connectwise.create_app()
    sn_app = servicenow.create_app()
    with (
        SandboxServer(cw_app) as cw,
        SandboxServer(sn_app) as sn,
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        tmp = Path(tmp_name)
        store_url, schema = make_store(args.store, tmp, prefix="closeout")
        try:
            data = daemon_config(
                store_url=store_url,
                cw_url=cw.url,
                sn_url=sn.url,
                sn_token="bench-token",
                ids=lookup_ids(sn.url),
                tmp=tmp,
                port=0,
            )
            config_path = tmp / "tb.yaml"
            config_path.write_text(yaml.safe_dump(data))
            cfg = load_config(config_path)
            store = Store(cfg.store.url)
            store.upgrade()
            engine = Engine(cfg, store, build_adapters(cfg), Metrics(), SystemClock())
            asyncio.run(link(engine, cw.url, args.tickets))
            asyncio.run(close(engine))
            cw_app.state.requests.clear()
            sn_app.state.requests.clear()
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ticketbridge",
                    "closeout",
                    "ACME",
                    "--apply",
                    "--config",
                    str(config_path),
                    "--timeout",
                    "2m",
                    "--poll-every",
                    "500ms",
                    "--format",
                    "json",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - started
            with store.tx() as c:
                last = co_store.latest_closeout(c, "ACME")
                tickets = [] if last is None else co_store.tickets_of(c, last.id)
            store.close()
        finally:
            drop_schema(schema)
    report(args, done, wall, last, tickets, cw_app, sn_app)


def report(
    args: Any, done: Any, wall: float, last: Any, tickets: list[Any], cw_app: Any, sn_app: Any
) -> None:
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
    sn_calls = sn_app.state.requests.totals()
    cw_calls = cw_app.state.requests.totals()
    sn_total = sum(row["count"] for row in sn_calls)
    cw_total = sum(row["count"] for row in cw_calls)
    own = (
        (last.finished_at - last.started_at).total_seconds() if last and last.finished_at else None
    )
    print(f"closeout of {args.tickets} linked tickets ({args.store} store)")
    print(f"  exit code {done.returncode}; state {last.state if last else '-'}")
    print(f"  confirmed {sum(t.state == 'confirmed' for t in tickets)} of {len(tickets)}")
    print(f"  command wall time {wall:.2f} s (process start included)")
    print(f"  closeout time in the store {own:.2f} s" if own is not None else "  not finished")
    per = sn_total / max(1, args.tickets)
    print(
        f"  ServiceNow API calls {sn_total} ({per:.1f} per ticket): "
        + ", ".join(f"{row['method']} {row['count']}" for row in sn_calls)
    )
    print(f"  ConnectWise API calls {cw_total}")


if __name__ == "__main__":
    main()
