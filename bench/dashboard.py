"""Dashboard page render times at 10,000 links (issue 11: "dashboard page render times
with 10,000 links").

The store is filled in bulk with the dashboard tests' seed (``tests/dashboard/seed.py``:
two vendors, four clients, running, paused and breached supplier clocks, escalations,
dead letters), the admin app is served by uvicorn on 127.0.0.1, and each page is asked
for over HTTP ``--repeat`` times with a bearer token: wall time per request (the whole
round trip: SQL, templates, HTTP), median and p95, and the page's size.  The scorecards
are computed once in the background (timed apart) and then served from memory.

Run: ``.venv/bin/python -m bench.dashboard [--links 10000] [--repeat 20] [--postgres]``
(PostgreSQL at ``TICKETBRIDGE_TEST_PG_URL`` or 127.0.0.1:5432/test, in a schema of its
own that is dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import sqlalchemy as sa
import uvicorn
from tests.dashboard import seed

from ticketbridge.daemon import _Server
from ticketbridge.log import configure_logging
from ticketbridge.store import Store
from ticketbridge.web.admin import Authenticator, create_admin_app

PG_URL = os.environ.get(
    "TICKETBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

#: (name, path) of every page timed; the links page with each filter and a deep page.
PAGES = [
    ("overview", "/"),
    ("links (open, page 1)", "/links"),
    ("links, vendor + breached", "/links?vendor=isp&breached=yes"),
    ("links, client + ball at MSP", "/links?client=Globex&ball=msp"),
    ("links, escalated", "/links?escalated=yes&state=any"),
    ("links, page 150 of 180", "/links?page=150"),
    ("one link + timeline", "/links/4242"),
    ("SLA clocks", "/clocks"),
    ("SLA clocks, page 100", "/clocks?page=100"),
    ("scorecards", "/scorecards"),
    ("reviews", "/reviews"),
    ("one review (document)", "/reviews/BI-1"),
    ("closeouts", "/closeouts"),
    ("one closeout + report (a client of 2,500 links)", "/closeouts/2"),
    ("dead letters", "/dead-letters"),
    ("systems", "/health"),
]


@contextmanager
def sqlite_store(workdir: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{workdir / 'tb.db'}")
    store.upgrade()
    try:
        yield store
    finally:
        store.close()


@contextmanager
def postgres_store() -> Iterator[Store]:
    schema = f"tb_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    store = Store(url.render_as_string(hide_password=False))
    store.upgrade()
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def serve(service: seed.Service) -> Iterator[str]:
    app = create_admin_app(service, Authenticator.from_config(service.config.admin))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = _Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def measure(store: Store, links: int, repeat: int) -> list[tuple[str, float, float, int]]:
    config = seed.make_config(store.url.render_as_string(hide_password=False), token=seed.TOKEN)
    began = time.perf_counter()
    seed.seed(store, config, links)
    seed.seed_records(store)
    print(f"  seeded {links:,} links in {time.perf_counter() - began:.1f} s")
    rows = []
    with (
        serve(seed.service(store, config)) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {seed.TOKEN}"}, timeout=60
        ) as client,
    ):
        # the scorecards are computed in the background from the first request on: wait for
        # them, so that their computation does not run beside the pages timed
        t = time.perf_counter()
        client.get("/scorecards").raise_for_status()
        print(f"  scorecards computed (first request) in {time.perf_counter() - t:.2f} s")
        for name, path in PAGES:
            first = client.get(path)  # warm: compiled statements, templates
            first.raise_for_status()
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                client.get(path).raise_for_status()
                times.append(time.perf_counter() - t)
            p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
            rows.append((name, statistics.median(times) * 1000, p95 * 1000, len(first.content)))
    return rows


def report(label: str, rows: list[tuple[str, float, float, int]]) -> None:
    print(f"\n{label}")
    print("| page | median ms | p95 ms | KB |\n|---|---:|---:|---:|")
    for name, median, p95, size in rows:
        print(f"| {name} | {median:.1f} | {p95:.1f} | {size / 1024:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    configure_logging(json=True, level="error")
    print(f"dashboard pages at {args.links:,} links, {args.repeat} requests each")
    with tempfile.TemporaryDirectory() as tmp, sqlite_store(Path(tmp)) as store:
        report("SQLite", measure(store, args.links, args.repeat))
    if args.postgres:
        with postgres_store() as store:
            report("PostgreSQL", measure(store, args.links, args.repeat))


if __name__ == "__main__":
    main()
