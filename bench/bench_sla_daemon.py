"""Benchmark: the daemon's SLA sweep over 100,000 open links in a real store.

Fills a SQLite store with 100,000 open links, each with a supplier SLA clock
checkpoint (as the engine stores them), then measures, in CPU seconds:

* ``tick``: one scheduler tick of ``Engine.sla_sweep`` when 0.1 % of the clocks
  (100 links: far more than cross a threshold in one 15 s tick) have a threshold
  or deadline due (index look-up of due clocks, evaluation,
  flags with their PSA notes and investigations, next wake-up);
* ``idle tick``: a tick right after, when nothing is due (the common case);
* ``full recheck``: every one of the 100,000 checkpoints loaded and evaluated
  (what a tick would cost without the ``next_wakeup`` index);

and the process's resident memory after a tick (``ru_maxrss`` is printed too).  Then it
starts the real daemon (``ticketbridge run``) on that store, lets it sweep for a few
seconds, and prints the daemon's own RSS and CPU time.
Target: a tick over 100,000 open links <= 1 s CPU, daemon RSS < 200 MB.

Run: ``.venv/bin/python bench/bench_sla_daemon.py [--links 100000] [--due 0.01]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.fake.adapter import FakeAdapter, FakeSettings
from ticketbridge.clock import FakeClock
from ticketbridge.config import load_config
from ticketbridge.engine import Engine
from ticketbridge.metrics import Metrics
from ticketbridge.sla.clock import ClockPolicy, EventKind, SlaEvent, repair, sweep_status
from ticketbridge.store import Store
from ticketbridge.store.tables import events, links, sla_clocks

#: Histories end "now", so a daemon started on the store afterwards sees the same clocks.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def config(url: str):  # type: ignore[no-untyped-def]
    return load_config(
        {
            "store": {"url": url},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["B"]}}
            ],
            "sla": {
                "calendars": [{"name": "24x7", "hours": "24x7"}],
                "contracts": [
                    {
                        "name": "c",
                        "vendor": "vendor",
                        "calendar": "24x7",
                        "targets": {
                            "1": {
                                "acknowledgment": {"duration": "15m", "business": False},
                                "resolution": {"duration": "4h", "business": False},
                            }
                        },
                    }
                ],
            },
        }
    )


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    from ticketbridge.log import configure_logging

    configure_logging(json=True, level="error")  # flags log warnings; keep the figures readable
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument(
        "--due",
        type=float,
        default=0.001,
        help="share of clocks with a threshold or deadline due at the tick",
    )
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        cfg = config(url)
        store = Store(url)
        store.upgrade()
        calendar = cfg.sla.build_calendars()["24x7"]
        policy = ClockPolicy.from_contract(cfg.sla.contracts[0], "1", calendar)
        now = START + timedelta(days=2)
        print(f"filling the store with {args.links:,} open links and clocks ...", flush=True)
        t0 = time.perf_counter()
        due_cut = int(args.links * args.due)
        with store.tx() as c:
            link_rows, event_rows, clock_rows = [], [], []
            for i in range(1, args.links + 1):
                opened = START + timedelta(minutes=rng.randrange(0, 2 * 24 * 60))
                acked = opened + timedelta(minutes=rng.randrange(1, 14))
                state = repair(
                    [
                        SlaEvent(opened, EventKind.OPENED, 1),
                        SlaEvent(acked, EventKind.VENDOR_PUBLIC_UPDATE, 2),
                    ],
                    policy,
                    acked,
                ).state
                wake = sweep_status(state, acked).next_wakeup
                # a few have something due now; the rest later
                next_wakeup = (
                    now - timedelta(seconds=5)
                    if i <= due_cut
                    else (wake if wake and wake > now else now + timedelta(hours=1))
                )
                link_rows.append(
                    {
                        "id": i,
                        "connection": "main",
                        "psa_system": "psa",
                        "psa_ticket_id": str(i),
                        "vendor_system": "vendor",
                        "vendor_ticket_id": f"v{i}",
                        "vendor_number": f"V{i}",
                        "state": "open",
                        "origin": "routed",
                        "company": "ACME",
                        "vendor_priority": "1",
                        "created_at": opened,
                        "updated_at": acked,
                    }
                )
                event_rows.append(
                    {
                        "link_id": i,
                        "kind": "vendor_ticket_seen",
                        "detail": {},
                        "occurred_at": opened,
                        "recorded_at": opened,
                    }
                )
                clock_rows.append(
                    {
                        "link_id": i,
                        "contract": "c",
                        "priority": "1",
                        "policy_key": policy.key,
                        "state": state.to_dict(),
                        "next_wakeup": next_wakeup,
                        "breached": False,
                        "updated_at": acked,
                    }
                )
            c.execute(sa.insert(links), link_rows)
            c.execute(sa.insert(events), event_rows)
            c.execute(sa.insert(sla_clocks), clock_rows)
            del link_rows, event_rows, clock_rows
        print(f"  filled in {time.perf_counter() - t0:.1f}s wall", flush=True)
        clock = FakeClock(now)
        adapters = {
            name: FakeAdapter(AdapterContext(name, f"http://{name}.invalid"), FakeSettings())
            for name in ("psa", "vendor")
        }
        engine = Engine(cfg, store, adapters, Metrics(), clock)  # type: ignore[arg-type]

        def cpu(fn: Callable[[], int]) -> tuple[float, int]:
            began = time.process_time()
            result = fn()
            return time.process_time() - began, result

        tick, due = cpu(lambda: asyncio.run(engine.sla_sweep()))
        idle, due_again = cpu(lambda: asyncio.run(engine.sla_sweep()))

        def full() -> int:
            count = 0
            from ticketbridge.sla.clock import SlaState

            with store.engine.connect() as conn:
                for row in conn.execute(sa.select(sla_clocks.c.state)):
                    sweep_status(SlaState.from_dict(row.state), now)
                    count += 1
            return count

        recheck, checked = cpu(full)
        with store.tx() as c:
            flagged = c.execute(sa.text("SELECT count(*) FROM sla_flags")).scalar_one()
        store.close()
        daemon_rss, daemon_cpu = run_daemon(Path(tmp), url)
    print(f"links: {args.links:,}; due at the tick: {due:,}; flags written: {flagged:,}")
    print(f"tick ({args.due:.1%} due):   {tick:.3f} s CPU")
    print(f"idle tick:          {idle:.3f} s CPU ({due_again} due)")
    print(f"full recheck:       {recheck:.3f} s CPU over {checked:,} checkpoints")
    print(f"RSS now:            {rss_mb():.0f} MB")
    print(
        f"peak RSS (maxrss):  {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        " (includes building the 100,000 rows)"
    )
    print(
        f"daemon on this store: RSS {daemon_rss:.0f} MB, {daemon_cpu:.2f} s CPU for start-up "
        "and 10 s of ticks every second"
    )


def run_daemon(tmp: Path, url: str) -> tuple[float, float]:
    """Start ``ticketbridge run`` on the store, let it sweep, return (RSS MB, CPU s)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import yaml

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = {
        "store": {"url": url},
        "server": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "json": True},
        "engine": {"sla_tick": "1s"},
        "systems": {
            "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
            "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
        },
        "connections": [
            {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["B"]}}
        ],
        "sla": config(url).sla.model_dump(mode="json", exclude_defaults=True),
    }
    path = tmp / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticketbridge", "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(10)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = (
            next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            / 1024
        )
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(fields[11]) + int(fields[12])) / ticks
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    return rss, cpu_s


if __name__ == "__main__":
    main()
