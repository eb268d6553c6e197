"""Benchmark: webhook acknowledgment latency at a steady offered load.

Starts the real daemon (``Daemon.run``: uvicorn on 127.0.0.1, poller, worker) in a child
process on a fresh store, then offers webhooks at a fixed rate (open loop: each request
leaves at its scheduled instant whether or not earlier ones were answered) and prints the
p50 / p99 / max time from sending a webhook to its ``202``.  Every webhook is a distinct,
valid ServiceNow delivery, so each one inserts an inbox row and wakes the worker, whose
own store calls compete with intake (the vendor it then reads is unreachable and fails
fast, as a vendor outage would).

Runs on SQLite, and on PostgreSQL when ``TICKETBRIDGE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is reachable.

Run: ``.venv/bin/python bench/bench_webhook_ack.py [--rate 200] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

PG_URL = os.environ.get(
    "TICKETBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TOKEN = "bench-webhook-token"


def daemon_config(url: str, port: int) -> dict[str, Any]:
    """A fake PSA and a ServiceNow vendor whose API is unreachable (port 9 refuses)."""
    return {
        "store": {"url": url},
        "server": {"host": "127.0.0.1", "port": port},
        "log": {"level": "error"},
        "systems": {
            "psa": {"kind": "fake", "base_url": "http://psa.invalid", "poll_interval": 3600},
            "snow": {
                "kind": "servicenow",
                "base_url": "http://127.0.0.1:9",
                "poll_interval": 3600,
                "settings": {"username": "u", "password": "p", "webhook_token": TOKEN},
            },
        },
        "connections": [
            {
                "name": "c",
                "psa": "psa",
                "vendor": "snow",
                "routing": {"boards": ["B"]},
                "status_map": {
                    "vendor_to_psa": dict.fromkeys(
                        ["New", "In Progress", "On Hold", "Resolved", "Closed", "Canceled"]
                    )
                },
            }
        ],
    }


def serve(url: str, port: int) -> None:
    """Child process: run the daemon until SIGTERM."""
    from ticketbridge.config import load_config
    from ticketbridge.daemon import Daemon
    from ticketbridge.log import configure_logging

    config = load_config(daemon_config(url, port))
    configure_logging(json=True, level="error")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await Daemon(config).run(stop)

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(base: str, deadline: float) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the daemon did not start")


async def offer(base: str, rate: float, count: int) -> tuple[list[float], int, float]:
    """Send ``count`` webhooks at ``rate`` per second.

    Returns the latencies (s) of the 202s, the number of failures, and the seconds from
    the first send to the last answer (``count`` over it is the rate actually served).
    """
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            nonlocal failures
            body = {"table": "incident", "sys_id": uuid.uuid4().hex, "sys_mod_count": str(i)}
            started = time.perf_counter()
            try:
                answer = await client.post(
                    "/webhooks/snow",
                    content=json.dumps(body).encode(),
                    headers={"X-Ticketbridge-Token": TOKEN},
                )
            except httpx.HTTPError:
                failures += 1
                return
            if answer.status_code == 202:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

        start = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, failures, time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def run_one(label: str, url: str, rate: float, seconds: float) -> None:
    from ticketbridge.store import Store

    Store(url).upgrade()
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port)])
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base, time.monotonic() + 30))
        asyncio.run(offer(base, rate, 50))  # warm-up
        count = int(rate * seconds)
        latencies, failures, took = asyncio.run(offer(base, rate, count))
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)
    ms = [v * 1000 for v in latencies]
    print(
        f"{label:<11} {len(ms)} acknowledged, {failures} failed at {rate:.0f}/s: "
        f"p50 {statistics.median(ms):.1f} ms  p99 {percentile(ms, 99):.1f} ms  "
        f"max {max(ms):.1f} ms  (served {count / took:.0f}/s)"
    )


def pg_schema_url() -> tuple[str, str] | None:
    """A fresh schema on the test PostgreSQL server, or None when it is unreachable."""
    try:
        admin = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
    except Exception:  # noqa: BLE001 - no server: SQLite only
        return None
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str) -> None:
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_one("sqlite", f"sqlite:///{Path(tmp) / 'tb.db'}", args.rate, args.seconds)
    pg = pg_schema_url()
    if pg is None:
        print("postgresql  not reachable: skipped")
        return
    url, schema = pg
    try:
        run_one("postgresql", url, args.rate, args.seconds)
    finally:
        drop_schema(schema)


if __name__ == "__main__":
    main()
