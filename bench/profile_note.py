"""Per-note cost of the daemon in webhook mode: CPU, SQL statements, HTTP requests, profile.

Starts the ConnectWise and ServiceNow simulators in this process and the daemon as a
child process (SQLite in a temporary directory, or a fresh schema on PostgreSQL), links
``--tickets`` tickets through webhooks, then adds notes in ConnectWise from
``--senders`` concurrent senders; each note's signed callback makes the daemon copy it
to the linked ServiceNow incident.  Two phases, both measured inside the daemon only:

1. ``--notes`` notes without a profiler: CPU ms per note (all of the daemon's threads,
   and the event-loop thread alone), SQL statements and transactions per note (the
   SQLAlchemy ``before_cursor_execute`` / ``commit`` events), HTTP requests per note
   (sent by the daemon's httpx clients);
2. ``--profiled`` notes under cProfile (event-loop thread): the top entries by own
   time and by cumulative time.

Run: ``.venv/bin/python bench/profile_note.py --store sqlite --notes 2000``
     ``.venv/bin/python bench/profile_note.py --store postgresql``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.demo import free_port, render_config
from ticketbridge.sandbox.server import SandboxServer

PG_URL = os.environ.get(
    "TICKETBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TOKEN = "profile-outbound-token"
QUOTE = '"'


# -- the child: the daemon with counters ----------------------------------------------


class _Counters:
    """Counted inside the daemon process between a start and a stop signal."""

    def __init__(self) -> None:
        self.on = False
        self.sql: Counter[str] = Counter()
        self.commits = 0
        self.http = 0
        self.cpu0 = 0.0
        self.loop_cpu0 = 0.0
        self.wall0 = 0.0
        self.profiler: cProfile.Profile | None = None
        self.lock = threading.Lock()

    def start(self, profile: bool) -> None:
        with self.lock:
            self.sql.clear()
            self.commits = 0
            self.http = 0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu0 = usage.ru_utime + usage.ru_stime
        self.loop_cpu0 = time.thread_time()  # signal handlers run on the main thread
        self.wall0 = time.monotonic()
        self.on = True
        if profile:
            # CPU time of the event-loop thread (waits for sockets and the store cost nothing)
            self.profiler = cProfile.Profile(time.thread_time)
            self.profiler.enable()

    def stop(self, out: Path) -> None:
        if self.profiler is not None:
            self.profiler.disable()
        self.on = False
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result: dict[str, Any] = {
            "cpu": usage.ru_utime + usage.ru_stime - self.cpu0,
            "loop_cpu": time.thread_time() - self.loop_cpu0,
            "wall": time.monotonic() - self.wall0,
            "sql": dict(self.sql),
            "commits": self.commits,
            "http": self.http,
        }
        if self.profiler is not None:
            for order in ("tottime", "cumulative"):
                text = io.StringIO()
                stats = pstats.Stats(self.profiler, stream=text)
                stats.sort_stats(order).print_stats(30)
                result[f"profile_{order}"] = text.getvalue()
            self.profiler = None
        out.write_text(json.dumps(result))


def _statement_kind(statement: str) -> str:
    words = statement.split(None, 3)
    kind = words[0].upper() if words else "?"
    table = ""
    if kind in ("INSERT", "DELETE") and len(words) > 2:
        table = words[2]
    elif kind == "UPDATE" and len(words) > 1:
        table = words[1]
    elif kind == "SELECT" and " FROM " in statement:
        table = statement.split(" FROM ", 1)[1].split(None, 1)[0]
    return f"{kind} {table.strip(QUOTE)}".strip()


def child(config_path: Path, out: Path) -> None:
    from ticketbridge.cli import _load
    from ticketbridge.daemon import Daemon
    from ticketbridge.log import configure_logging

    counters = _Counters()

    @sa.event.listens_for(sa.Engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if counters.on:
            with counters.lock:
                counters.sql[_statement_kind(statement)] += 1

    @sa.event.listens_for(sa.Engine, "commit")
    def _commit(_conn: Any) -> None:
        if counters.on:
            with counters.lock:
                counters.commits += 1

    send = httpx.AsyncClient.send

    async def counted_send(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        if counters.on:
            counters.http += 1
        return await send(self, *args, **kwargs)

    httpx.AsyncClient.send = counted_send  # type: ignore[method-assign]

    cfg = _load(config_path)
    configure_logging(json=True, level="warning")

    signal.signal(signal.SIGUSR1, lambda *_: counters.start(profile=False))
    signal.signal(signal.SIGHUP, lambda *_: counters.start(profile=True))
    signal.signal(signal.SIGUSR2, lambda *_: counters.stop(out))

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await Daemon(cfg).run(stop)

    asyncio.run(main())


# -- the parent: simulators, load, figures ---------------------------------------------


def make_store(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'tb.db'}", None
    schema = f"prof_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def lookup_ids(sn: SandboxServer) -> dict[str, str]:
    with httpx.Client(
        base_url=sn.url,
        auth=("ticketbridge.integration", "integration-pass"),
        params={"sysparm_exclude_reference_link": "true"},
    ) as client:
        acme = client.get(
            "/api/now/table/core_company", params={"sysparm_query": "name=Acme Dental Group"}
        ).json()
        user = client.get(
            "/api/now/table/sys_user",
            params={"sysparm_query": "user_name=ticketbridge.integration"},
        ).json()
    return {"acme": acme["result"][0]["sys_id"], "caller": user["result"][0]["sys_id"]}


def write_config(
    store_url: str, cw: SandboxServer, sn: SandboxServer, tmp: Path, port: int
) -> Path:
    ids = lookup_ids(sn)
    data = render_config(
        db_path=str(tmp / "unused.db"),
        daemon_port=str(port),
        cw_url=cw.url,
        sn_url=sn.url,
        sn_token=TOKEN,
        acme_sys_id=ids["acme"],
        caller_sys_id=ids["caller"],
    )
    data["store"] = {"url": store_url}
    data.pop("rules", None)
    data.pop("sla", None)
    for conn in data["connections"]:
        conn.pop("sla", None)
    for system in data["systems"].values():
        system["poll_interval"] = "1h"  # webhook mode: only the start-up poll
    data["engine"].update({"max_attempts": 1000, "dispatch_interval": "250ms"})
    data["log"] = {"json": True, "level": "warning"}
    path = tmp / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_daemon(config: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, __file__, "--child", str(config), "--out", str(out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("TICKETBRIDGE_")},
        )


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"the daemon was not up within {within}s")


async def link_tickets(cw: ConnectWiseActor, admin: ServiceNowActor, count: int) -> list[int]:
    tag = uuid.uuid4().hex[:6]
    made = []
    for i in range(count):
        t = await cw.open_ticket(
            summary=f"profile {tag} ticket {i}",
            description="per-note profile",
            board="Vendor Escalations",
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 3 - Normal Response",
        )
        made.append((t["id"], f"profile {tag} ticket {i}"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [
            ticket_id
            for ticket_id, summary in made
            if await admin.query("incident", f"short_description={summary}")
        ]
        if len(found) == count:
            return found
        await asyncio.sleep(0.5)
    raise SystemExit("not every ticket reached the vendor")


def mirrored(sn: SandboxServer, marker: str) -> int:
    state = sn.app.state.sandbox  # type: ignore[attr-defined]
    entries = list(state.tables["sys_journal_field"].values())
    return sum(1 for e in entries if marker in (e.get("value") or ""))


async def push_notes(
    cw: ConnectWiseActor,
    sn: SandboxServer,
    tickets: list[int],
    total: int,
    senders: int,
    marker: str,
    within: float,
) -> float:
    """Add ``total`` notes from ``senders`` concurrent senders; seconds until all arrived."""
    began = time.monotonic()
    queue = list(range(total))
    rng = random.Random(7)

    async def sender() -> None:
        while queue:
            n = queue.pop()
            text = f"profiled note {marker} n{n}"
            await cw.add_note(rng.choice(tickets), text, internal=False)

    await asyncio.gather(*(sender() for _ in range(senders)))
    deadline = time.monotonic() + within
    while mirrored(sn, marker) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {mirrored(sn, marker)} of {total} notes arrived in {within}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


def start_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the thread holding the GIL in the daemon (collapsed stacks)."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [
        str(spy),
        "record",
        "-p",
        str(pid),
        "-f",
        "raw",
        "-o",
        str(out),
        "-r",
        "100",
        "--gil",
        "--threads",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def print_spy(path: Path, top: int = 15) -> None:
    """Top entries of a py-spy raw profile: by own samples, and ticketbridge's by total."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    by_thread: dict[str, Counter[str]] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        samples += n
        threads[frames[0]] += n
        own[frames[-1]] += n
        mine = by_thread.setdefault(frames[0], Counter())
        for frame in set(frames[1:]):
            mine[frame] += n
        for frame in set(frames[1:]):
            if "ticketbridge/" in frame:
                total[frame] += n
    if not samples:
        print("  py-spy: no samples")
        return
    print(
        f"  py-spy: {samples} samples of the thread holding the GIL "
        f"({samples / 100:.1f} s of CPU at 100 samples/s)"
    )
    for thread, n in threads.most_common():
        print(f"   {100 * n / samples:5.1f}%  {thread}; its top entries by total samples:")
        for frame, k in by_thread[thread].most_common(top):
            print(f"          {100 * k / samples:5.1f}%  {frame}")
    print(f"  top {top} by own samples:")
    for frame, n in own.most_common(top):
        print(f"   {100 * n / samples:5.1f}%  {frame}")
    print(f"  top {top} ticketbridge functions by total samples:")
    for frame, n in total.most_common(top):
        print(f"   {100 * n / samples:5.1f}%  {frame}")


def read_stats(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while not out.exists() or not out.stat().st_size:
        if time.monotonic() > deadline:
            raise SystemExit("the daemon wrote no figures")
        time.sleep(0.05)
    time.sleep(0.1)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


async def settle(sn: SandboxServer, seconds: float = 1.5) -> None:
    """Wait until the vendor's journal stops growing (echo reads and the like are done)."""
    last, quiet = -1, time.monotonic()
    while time.monotonic() - quiet < seconds:
        now = len(sn.app.state.sandbox.tables["sys_journal_field"])  # type: ignore[attr-defined]
        if now != last:
            last, quiet = now, time.monotonic()
        await asyncio.sleep(0.1)


async def main_async(args: argparse.Namespace) -> int:
    cw_server = SandboxServer(connectwise.create_app()).start()
    sn_server = SandboxServer(servicenow.create_app()).start()
    tmp = Path(tempfile.mkdtemp(prefix="tb-profile-"))
    store_url, schema = make_store(args.store, tmp)
    port = free_port()
    config = write_config(store_url, cw_server, sn_server, tmp, port)
    out = tmp / "figures.json"
    log = tmp / "daemon.log"
    cw = ConnectWiseActor(cw_server.url)
    admin = ServiceNowActor(sn_server.url, "ticketbridge.integration", "integration-pass")
    proc = start_daemon(config, out, log)
    try:
        wait_ready(proc, port, log)
        await admin.configure_outbound(f"http://127.0.0.1:{port}/webhooks/snow", TOKEN)
        await cw.register_callback(f"http://127.0.0.1:{port}/webhooks/cw?recordId=")
        tickets = await link_tickets(cw, admin, args.tickets)
        await settle(sn_server)
        runs: list[tuple[str, int, dict[str, Any], float]] = []
        for phase, count, sig in (
            ("measured", args.notes, signal.SIGUSR1),
            ("profiled", args.profiled, signal.SIGHUP),
        ):
            if not count:
                continue
            proc.send_signal(sig)
            spy = (
                start_spy(proc.pid, tmp / "spy.txt")
                if args.py_spy and phase == "measured"
                else None
            )
            await asyncio.sleep(0.2)
            marker = f"pn{uuid.uuid4().hex[:8]}"
            seconds = await push_notes(
                cw, sn_server, tickets, count, args.senders, marker, args.within
            )
            await settle(sn_server)
            runs.append((phase, count, read_stats(proc, out), seconds))
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
                print_spy(tmp / "spy.txt")
                if args.spy_out:
                    shutil.copyfile(tmp / "spy.txt", args.spy_out)
        print(f"store={args.store} tickets={args.tickets} senders={args.senders}")
        for phase, count, figures, seconds in runs:
            sql = sum(figures["sql"].values())
            print(
                f"{phase}: notes={count} delivered/s={count / seconds:.0f} "
                f"cpu_ms/note={1000 * figures['cpu'] / count:.2f} "
                f"(event loop {1000 * figures['loop_cpu'] / count:.2f}) "
                f"sql/note={sql / count:.2f} tx/note={figures['commits'] / count:.2f} "
                f"http/note={figures['http'] / count:.2f}"
            )
            if phase == "measured":
                kinds = sorted(figures["sql"].items(), key=lambda kv: -kv[1])
                print(
                    "  sql per note by kind: "
                    + ", ".join(f"{kind}={n / count:.2f}" for kind, n in kinds)
                )
            for order in ("tottime", "cumulative"):
                text = figures.get(f"profile_{order}")
                if text:
                    lines = text.splitlines()
                    start = next(
                        (i for i, line in enumerate(lines) if "ncalls" in line), len(lines)
                    )
                    print(f"  top 30 by {order} (event-loop thread CPU, under cProfile):")
                    for line in lines[start : start + 31]:
                        print("   " + line)
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await cw.aclose()
        await admin.aclose()
        cw_server.stop()
        sn_server.stop()
        drop_schema(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=50)
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--profiled", type=int, default=500, help="notes under cProfile")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--within", type=float, default=300.0, help="seconds to deliver")
    parser.add_argument("--py-spy", action="store_true", help="sample the measured phase")
    parser.add_argument("--spy-out", help="keep py-spy's raw samples in this file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.out)
        return
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
