"""The load benchmark behind ``python -m bench``.

Simulators (ConnectWise, ServiceNow) each run in a process of their own; the daemon runs
as a child process on a rendered configuration; this process is the load generator.  A
note is added at the PSA as a technician, the simulator sends a signed callback to the
daemon, and the daemon copies the note to the linked ServiceNow incident.  Each note
carries a unique token; the ConnectWise simulator stamps when it stores each note and
the ServiceNow one when it stores each journal entry, so the end-to-end latency is
"journal entry stored" minus "note stored at the PSA".  API calls are counted by the simulators' request logs, the load
generator's own requests (``X-Sandbox-Client: load``) apart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._harness import (
    Replica,
    daemon_config,
    drop_schema,
    link_tickets,
    lookup_ids,
    make_store,
    open_tickets,
    wait_ready,
    write_replica,
)
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.demo import free_port

CLIENT = "load"  # the load generator's X-Sandbox-Client
SN_TOKEN = "bench-outbound-token"
_CLK = os.sysconf("SC_CLK_TCK")


@dataclass
class Options:
    stores: list[str]
    rates: list[int] = field(default_factory=lambda: [50, 200, 500, 1000])
    duration: float = 20.0
    max_notes: int = 10_000
    senders: int = 50
    tickets: int = 50
    polling: list[int] = field(default_factory=lambda: [1, 5, 20])
    poll_cycles: int = 3
    poll_interval: float = 2.0
    #: the daemon's poll interval in webhook mode (polling runs beside webhooks)
    webhook_poll_interval: float = 30.0
    drain_cap: float = 300.0
    stall: float = 20.0
    relay: bool = True
    #: note each row's most frequent requests (what the calls per note are made of)
    paths: bool = False


@dataclass
class Row:
    name: str
    mode: str  # open, max, relay, polling
    offered: float = 0.0
    delivered_per_s: float = 0.0
    #: journal entries written per second, duplicates included (the relay's ceiling: one
    #: callback handled, one entry written, whichever note it carried)
    copies_per_s: float = 0.0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    sent: int = 0
    delivered: int = 0
    errors: int = 0
    lost: int = 0
    duplicates: int = 0
    backlog: int = 0
    drain_s: float = 0.0
    rss_mb: float = 0.0
    cpu_ms: float | None = None
    sim_cpu_ms: float | None = None
    calls: dict[str, int] = field(default_factory=dict)  # cw_read, cw_write, sn_read, sn_write
    ratio: float | None = None
    note: str = ""
    #: notes counted lost: not at the vendor when the row's wait ended
    missing: set[str] = field(default_factory=set, repr=False)

    def per_note(self, key: str) -> float | None:
        return self.calls.get(key, 0) / self.delivered if self.delivered else None

    @property
    def calls_per_note(self) -> float | None:
        total = sum(self.calls.values())
        return total / self.delivered if self.delivered else None


# -- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Child:
    """A ``python -m <module>`` child printing its URL on its first line; stops when its
    standard input closes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],  # where the ``bench`` package is
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise SystemExit(f"{' '.join(args)} did not start")
        self.url = line
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Simulators:
    def __init__(self) -> None:
        self.cw = Child("bench._sim", "connectwise")
        self.sn = Child("bench._sim", "servicenow")
        self.admin = httpx.Client(timeout=30)
        self.journal_next = 0
        #: token -> the times its journal entries were stored
        self.stamps: dict[str, list[float]] = defaultdict(list)
        self.notes_next = 0
        #: token -> when the PSA stored the note
        self.created: dict[str, float] = {}

    def stop(self) -> None:
        self.admin.close()
        self.cw.stop()
        self.sn.stop()

    def cpu(self) -> float:
        return cpu_seconds(self.cw.pid) + cpu_seconds(self.sn.pid)

    def clear_counts(self) -> None:
        for url in (self.cw.url, self.sn.url):
            self.admin.delete(f"{url}/_sandbox/requests").raise_for_status()

    def counts(self) -> dict[str, int]:
        """The integration's (not the load generator's) requests since the last clear."""
        out = {"cw_read": 0, "cw_write": 0, "sn_read": 0, "sn_write": 0}
        for side, url in (("cw", self.cw.url), ("sn", self.sn.url)):
            totals = self.admin.get(f"{url}/_sandbox/requests/totals").json()
            for item in totals:
                if item["client"] is not None:
                    continue
                kind = "read" if item["method"] in ("GET", "HEAD") else "write"
                out[f"{side}_{kind}"] += int(item["count"])
        return out

    def top_paths(self, limit: int = 6) -> str:
        """The integration's most frequent requests since the last clear (ids folded)."""
        seen: dict[str, int] = defaultdict(int)
        for side, url in (("cw", self.cw.url), ("sn", self.sn.url)):
            for item in self.admin.get(f"{url}/_sandbox/requests").json():
                if item.get("client") is not None:
                    continue
                path = re.sub(r"/(\d+|[0-9a-f]{32})(?=/|$)", "/{id}", item["path"])
                seen[f"{side} {item['method']} {path}"] += 1
        top = sorted(seen.items(), key=lambda kv: -kv[1])[:limit]
        return ", ".join(f"{name}: {count}" for name, count in top)

    def poll_notes(self, token_re: re.Pattern[str]) -> None:
        """Fetch the PSA's creation times of newly added notes."""
        got = self.admin.get(
            f"{self.cw.url}/_sandbox/bench/notes", params={"after": self.notes_next}
        ).json()
        self.notes_next = int(got["next"])
        for text, at in got["entries"]:
            for token in token_re.findall(text):
                self.created.setdefault(token, float(at))

    def poll_journal(self, token_re: re.Pattern[str]) -> int:
        """Fetch newly stored journal entries; how many new ones carried a token."""
        got = self.admin.get(
            f"{self.sn.url}/_sandbox/bench/journal", params={"after": self.journal_next}
        ).json()
        self.journal_next = int(got["next"])
        found = 0
        for text, at in got["entries"]:
            for token in set(token_re.findall(text)):
                self.stamps[token].append(float(at))
                found += 1
        return found


# -- load ------------------------------------------------------------------------------------


class Load:
    """The load generator: notes added at the PSA as a technician."""

    def __init__(self, sims: Simulators, run_id: str) -> None:
        self.sims = sims
        self.cw = ConnectWiseActor(sims.cw.url)
        self._unused = self.cw.http
        # a pool as large as the offered load needs, waiting as long as the PSA takes: a
        # failed POST is then the PSA's answer, not the load generator's queue
        self.cw.http = httpx.AsyncClient(
            base_url=self._unused.base_url,
            auth=self._unused.auth,
            headers={**self._unused.headers, "X-Sandbox-Client": CLIENT},
            timeout=120,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        )
        self.sn_admin = ServiceNowActor(sims.sn.url, "ticketbridge.integration", "integration-pass")
        self.sn_admin.http.headers["X-Sandbox-Client"] = CLIENT
        self.run_id = run_id
        self.token_re = re.compile(rf"\bbn{run_id}x\d+\b")
        self._seq = itertools.count(1)
        #: notes sent and not yet seen at the vendor (a row starts once they arrived)
        self.outstanding: set[str] = set()

    async def aclose(self) -> None:
        await self._unused.aclose()
        await self.cw.aclose()
        await self.sn_admin.aclose()

    def token(self) -> str:
        return f"bn{self.run_id}x{next(self._seq)}"

    async def send(self, ticket: int, sent: dict[str, float], errors: list[str]) -> None:
        token = self.token()
        try:
            await self.cw.add_note(ticket, f"bench note {token}", internal=False)
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        sent[token] = time.time()
        self.outstanding.add(token)

    async def open_loop(
        self, tickets: list[int], rate: float, duration: float
    ) -> tuple[dict[str, float], list[str], float, float]:
        sent: dict[str, float] = {}
        errors: list[str] = []
        total = max(1, round(rate * duration))
        loop = asyncio.get_running_loop()
        began, t0 = time.time(), loop.time()
        tasks = []
        for i in range(total):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.send(tickets[i % len(tickets)], sent, errors)))
        await asyncio.gather(*tasks)
        return sent, errors, began, time.time()

    async def closed_loop(
        self, tickets: list[int], total: int, senders: int
    ) -> tuple[dict[str, float], list[str], float, float]:
        sent: dict[str, float] = {}
        errors: list[str] = []
        order = iter(range(total))

        async def sender(ticket: int) -> None:
            for _ in order:
                await self.send(ticket, sent, errors)

        began = time.time()
        await asyncio.gather(*(sender(tickets[s % len(tickets)]) for s in range(senders)))
        return sent, errors, began, time.time()

    async def per_ticket(
        self, tickets: list[int], n: int
    ) -> tuple[dict[str, float], list[str], float, float]:
        """``n`` notes on each ticket, one after the other (tickets side by side)."""
        sent: dict[str, float] = {}
        errors: list[str] = []

        async def sender(ticket: int) -> None:
            for _ in range(n):
                await self.send(ticket, sent, errors)

        began = time.time()
        await asyncio.gather(*(sender(t) for t in tickets))
        return sent, errors, began, time.time()


# -- one row -----------------------------------------------------------------------------------


async def _arrival(sims: Simulators, load: Load, tokens: set[str], opts: Options) -> None:
    """Wait until every token is at the vendor, ``opts.stall`` s pass without a new one,
    or ``opts.drain_cap`` s pass."""
    deadline = time.monotonic() + opts.drain_cap
    last_progress = time.monotonic()
    while time.monotonic() < deadline:
        if await asyncio.to_thread(sims.poll_journal, load.token_re):
            last_progress = time.monotonic()
        if all(t in sims.stamps for t in tokens):
            return
        if time.monotonic() - last_progress > opts.stall:
            return
        await asyncio.sleep(0.25)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(
    name: str,
    mode: str,
    sims: Simulators,
    load: Load,
    pid: int,
    drive: Callable[[], Awaitable[tuple[dict[str, float], list[str], float, float]]],
    opts: Options,
) -> Row:
    """Run ``drive`` (the offered load), wait for the notes to arrive, and score them.

    Starts once the notes of earlier rows arrived (or stopped arriving), so a backlog
    left by one row does not count in the next."""
    await _arrival(sims, load, load.outstanding, opts)
    sims.clear_counts()
    cpu0, sim0 = cpu_seconds(pid), sims.cpu()
    sent, errors, began, stopped = await drive()
    await _arrival(sims, load, set(sent), opts)
    await asyncio.sleep(0.3)  # a late duplicate shows up here
    await asyncio.to_thread(sims.poll_journal, load.token_re)
    await asyncio.to_thread(sims.poll_notes, load.token_re)
    calls = sims.counts()
    paths = await asyncio.to_thread(sims.top_paths) if opts.paths else ""
    cpu = cpu_seconds(pid) - cpu0
    sim_cpu = sims.cpu() - sim0
    firsts = {t: sims.stamps[t][0] for t in sent if t in sims.stamps}
    latencies = [
        (firsts[t] - sims.created.get(t, answered)) * 1000
        for t, answered in sent.items()
        if t in firsts
    ]
    load.outstanding.difference_update(firsts)  # what is left is what the next row waits for
    last = max(firsts.values(), default=stopped)
    behind = [t for t in sent if t not in firsts or firsts[t] > stopped]
    row = Row(
        name=name,
        mode=mode,
        offered=len(sent) / max(stopped - began, 1e-9),
        delivered_per_s=len(firsts) / max(last - began, 1e-9),
        copies_per_s=sum(len(sims.stamps[t]) for t in firsts)
        / max(max((sims.stamps[t][-1] for t in firsts), default=stopped) - began, 1e-9),
        sent=len(sent),
        delivered=len(firsts),
        errors=len(errors),
        lost=len(sent) - len(firsts),
        duplicates=sum(len(sims.stamps[t]) - 1 for t in firsts),
        backlog=len(behind),
        drain_s=max(0.0, last - stopped) if behind else 0.0,
        rss_mb=peak_rss_mb(pid),
        cpu_ms=cpu * 1000 / len(firsts) if firsts else None,
        sim_cpu_ms=sim_cpu * 1000 / len(firsts) if firsts else None,
        calls=calls,
        missing={t for t in sent if t not in firsts},
    )
    if latencies:
        row.p50, row.p95 = _pct(latencies, 0.50), _pct(latencies, 0.95)
        row.p99, row.max = _pct(latencies, 0.99), max(latencies)
    if errors:
        row.note = f"first error: {errors[0][:120]}"
    if paths:
        row.note = (row.note + "; " if row.note else "") + f"most frequent requests: {paths}"
    return row


# -- the runs ------------------------------------------------------------------------------------


async def relay_row(
    sims: Simulators, load: Load, opts: Options, tmp: Path, say: Callable[[str], None]
) -> Row:
    """The stateless relay on tickets of an unrouted board, no daemon running."""
    made = await open_tickets(
        load.cw, opts.tickets, load.run_id, prefix="relay", board="Service Desk"
    )
    ids = lookup_ids(sims.sn.url)
    links: dict[str, str] = {}
    for ticket_id, summary in made:
        resp = await load.sn_admin.http.post(
            "/api/now/table/incident",
            json={
                "short_description": summary,
                "company": ids["acme"],
                "caller_id": ids["caller"],
            },
        )
        resp.raise_for_status()
        links[str(ticket_id)] = resp.json()["result"]["sys_id"]
    path = tmp / "relay-links.json"
    path.write_text(json.dumps(links))
    relay = Child("bench.relay", "--cw", sims.cw.url, "--sn", sims.sn.url, "--links", str(path))
    callback = await load.cw.register_callback(f"{relay.url}/callback?recordId=")
    say(f"relay: pid {relay.pid}")
    try:
        tickets = [tid for tid, _ in made]
        return await measure(
            "relay",
            "relay",
            sims,
            load,
            relay.pid,
            lambda: load.closed_loop(tickets, opts.max_notes, opts.senders),
            opts,
        )
    finally:
        (await load.cw.http.delete(f"/system/callbacks/{callback['id']}")).raise_for_status()
        relay.stop()
        load.outstanding.clear()  # what the relay dropped will not come


def _daemon(
    sims: Simulators, store_url: str, tmp: Path, name: str, poll_interval: float
) -> Replica:
    data = daemon_config(
        store_url=store_url,
        cw_url=sims.cw.url,
        sn_url=sims.sn.url,
        sn_token=SN_TOKEN,
        ids=lookup_ids(sims.sn.url),
        tmp=tmp,
        port=free_port(),
        poll_interval=f"{poll_interval}s",
        engine={"initial_lookback": "1h"},
    )
    for conn in data["connections"]:
        conn["routing"].pop("watch_queues", None)
    # The simulators enforce no quota: ConnectWise's documented 1,000 requests a minute
    # (the adapter's default budget) would cap the daemon at a read per note near 16
    # notes/s and measure the quota, not the engine.  Lifted here, as the relay has none.
    for system in data["systems"].values():
        system["request_budget"] = {"requests": 1_000_000, "per": "1m"}
    replica = write_replica(data, tmp, name)
    replica.start()
    wait_ready(replica)
    return replica


async def _outbound(load: Load, url: str, enabled: bool) -> None:
    resp = await load.sn_admin.http.post(
        "/_sandbox/outbound",
        json={"url": url, "headers": {"X-Ticketbridge-Token": SN_TOKEN}, "enabled": enabled},
    )
    resp.raise_for_status()


async def store_rows(
    kind: str,
    sims: Simulators,
    load: Load,
    opts: Options,
    tmp: Path,
    say: Callable[[str], None],
) -> list[Row]:
    store_url, schema = make_store(kind, tmp, prefix="bench")
    rows: list[Row] = []
    daemon = _daemon(sims, store_url, tmp, f"daemon-{kind}", opts.webhook_poll_interval)
    try:
        assert daemon.proc is not None
        say(f"{kind}: daemon pid {daemon.proc.pid}")
        await _outbound(load, f"http://127.0.0.1:{daemon.port}/webhooks/snow", True)
        callback = await load.cw.register_callback(
            f"http://127.0.0.1:{daemon.port}/webhooks/cw?recordId="
        )
        linked = await link_tickets(
            load.cw, load.sn_admin, opts.tickets, f"{kind}{load.run_id}", prefix="bench"
        )
        tickets = [tid for tid, _ in linked]
        await asyncio.sleep(1.0)
        for rate in opts.rates:
            say(f"{kind}: {rate} notes/s for {opts.duration:g} s")
            row = await measure(
                f"{rate}/s",
                "open",
                sims,
                load,
                daemon.proc.pid,
                lambda rate=rate: load.open_loop(tickets, rate, opts.duration),  # type: ignore[misc]
                opts,
            )
            rows.append(row)
            if row.lost or row.drain_s > max(2 * opts.duration, 10):
                rest = [r for r in opts.rates if r > rate]
                if rest:
                    row.note = (row.note + "; " if row.note else "") + (
                        f"behind: {', '.join(map(str, rest))}/s skipped"
                    )
                break
        say(f"{kind}: max run, {opts.max_notes} notes, {opts.senders} senders")
        rows.append(
            await measure(
                "max",
                "max",
                sims,
                load,
                daemon.proc.pid,
                lambda: load.closed_loop(tickets, opts.max_notes, opts.senders),
                opts,
            )
        )
        if opts.polling:
            (await load.cw.http.delete(f"/system/callbacks/{callback['id']}")).raise_for_status()
            await _outbound(load, f"http://127.0.0.1:{daemon.port}/webhooks/snow", False)
            daemon.stop()
            daemon = _daemon(sims, store_url, tmp, f"daemon-{kind}-poll", opts.poll_interval)
            assert daemon.proc is not None
            pid = daemon.proc.pid
            # warm-up, not measured: a start reads each ticket's notes whole once and
            # knows no version of its own writes yet
            say(f"{kind}: polling warm-up cycle")
            await _poll_cycles(load, sims, tickets, 1, replace(opts, poll_cycles=1), pid)
            for n in opts.polling:
                say(f"{kind}: polling, {n} notes per ticket per cycle")
                rows.append(
                    await measure(
                        f"poll N={n}",
                        "polling",
                        sims,
                        load,
                        daemon.proc.pid,
                        lambda n=n: _poll_cycles(load, sims, tickets, n, opts, pid),  # type: ignore[misc]
                        opts,
                    )
                )
    finally:
        await asyncio.to_thread(sims.poll_journal, load.token_re)
        for row in rows:
            late = sum(1 for t in row.missing if t in sims.stamps)
            if late:
                row.note = (row.note + "; " if row.note else "") + (
                    f"{late} of the {row.lost} counted lost arrived later"
                )
        daemon.stop()
        drop_schema(schema)
    return rows


async def _poll_cycles(
    load: Load, sims: Simulators, tickets: list[int], n: int, opts: Options, pid: int
) -> tuple[dict[str, float], list[str], float, float]:
    """``n`` notes on every ticket, then wait for them to arrive; ``poll_cycles`` times.

    The daemon is paused (SIGSTOP) while a cycle's notes are written, so each poll finds
    exactly ``n`` new notes per ticket however long writing them takes here (latency
    figures of these rows include that pause)."""
    sent: dict[str, float] = {}
    errors: list[str] = []
    began = time.time()
    for _ in range(opts.poll_cycles):
        os.kill(pid, signal.SIGSTOP)
        try:
            batch, errs, _, _ = await load.per_ticket(tickets, n)
        finally:
            os.kill(pid, signal.SIGCONT)
        sent.update(batch)
        errors.extend(errs)
        deadline = time.monotonic() + opts.stall + 3 * opts.poll_interval
        while time.monotonic() < deadline and not all(t in sims.stamps for t in batch):
            await asyncio.sleep(0.25)
            await asyncio.to_thread(sims.poll_journal, load.token_re)
    return sent, errors, began, time.time()


async def run_all(opts: Options, say: Callable[[str], None]) -> dict[str, Any]:
    """Every store's rows and the relay row: ``{"relay": Row | None, "stores": {...}}``."""
    run_id = uuid.uuid4().hex[:6]
    out: dict[str, Any] = {"relay": None, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for i, kind in enumerate(opts.stores or [None]):
            sims = Simulators()
            load = Load(sims, run_id)
            say(f"simulators: ConnectWise pid {sims.cw.pid}, ServiceNow pid {sims.sn.pid}")
            try:
                if i == 0 and opts.relay:
                    say("relay: max run")
                    out["relay"] = await relay_row(sims, load, opts, tmp, say)
                if kind is not None:
                    out["stores"][kind] = await store_rows(kind, sims, load, opts, tmp, say)
            finally:
                await load.aclose()
                sims.stop()
    relay: Row | None = out["relay"]
    if relay is not None and relay.copies_per_s:
        for rows in out["stores"].values():
            for row in rows:
                row.ratio = row.delivered_per_s / relay.copies_per_s
    return out


# -- output --------------------------------------------------------------------------------------


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "? GiB"
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now} · {os.cpu_count()} cores, {memory}, {model} · "
        f"Python {platform.python_version()} · commit {commit}"
    )


_HEAD = (
    "| row | offered/s | delivered/s | of relay | p50 ms | p95 ms | p99 ms | max ms | sent "
    "| delivered | errors | lost | dup | backlog at stop | drain s | RSS MB | CPU ms/note "
    "| sim CPU ms/note | PSA r+w /note | vendor r+w /note | calls/note |"
)


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def format_row(row: Row) -> str:
    def rw(side: str) -> str:
        r, w = row.per_note(f"{side}_read"), row.per_note(f"{side}_write")
        return f"{_f(r, 2)} + {_f(w, 2)}"

    cells = [
        row.name,
        _f(row.offered, 1),
        _f(row.copies_per_s if row.mode == "relay" else row.delivered_per_s, 1),
        "1.00" if row.mode == "relay" else _f(row.ratio, 2),
        _f(row.p50),
        _f(row.p95),
        _f(row.p99),
        _f(row.max),
        str(row.sent),
        str(row.delivered),
        str(row.errors),
        str(row.lost),
        str(row.duplicates),
        str(row.backlog),
        _f(row.drain_s, 1),
        _f(row.rss_mb),
        _f(row.cpu_ms, 2),
        _f(row.sim_cpu_ms, 2),
        rw("cw"),
        rw("sn"),
        _f(row.calls_per_note, 2),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(result: dict[str, Any], opts: Options) -> str:
    sep = "|" + "---|" * (_HEAD.count("|") - 1)
    lines = [f"Machine: {machine_line()}", ""]
    lines.append(
        f"Settings: {opts.tickets} linked tickets, open loop {opts.duration:g} s per rate, "
        f"max run {opts.max_notes} notes from {opts.senders} senders, polling "
        f"{opts.poll_cycles} cycles every {opts.poll_interval:g} s after a warm-up cycle, "
        "the daemon paused while a cycle's notes are written (so each poll finds N per "
        "ticket; polling latencies include the pause) "
        f"(target ≤ 1 + 1/N + 0.05 calls per note). Latency: note stored at the PSA → "
        "journal entry stored at ServiceNow (both simulators' clocks). Calls counted by the simulators, the load "
        "generator's own requests excluded; CPU = user + system of the process. The relay "
        "reads the ticket's newest note on each callback, so notes close together on one "
        "ticket come out as one note twice: its delivered/s counts entries written, "
        "duplicates included (one per callback handled), and is the ratios' base."
    )
    relay: Row | None = result["relay"]
    for kind, rows in result["stores"].items():
        lines += ["", f"### ticketbridge, {kind} store", "", _HEAD, sep]
        lines += [format_row(r) for r in rows]
        if relay is not None:
            lines.append(format_row(relay))
        notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
        if notes:
            lines += ["", *notes]
    if relay is not None and not result["stores"]:
        lines += ["", "### relay", "", _HEAD, sep, format_row(relay)]
    if relay is not None and relay.note:
        lines += [f"- relay: {relay.note}"]
    return "\n".join(lines) + "\n"


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    def row(r: Row) -> dict[str, Any]:
        out = {**asdict(r), "calls_per_note": r.calls_per_note}
        del out["missing"]
        return out

    return {
        "machine": machine_line(),
        "relay": row(result["relay"]) if result["relay"] is not None else None,
        "stores": {k: [row(r) for r in rows] for k, rows in result["stores"].items()},
    }


def counts_consistent(rows: Iterable[Row]) -> list[str]:
    """Problems with a table's counts (delivered + lost = sent, calls counted)."""
    problems = []
    for r in rows:
        if r.delivered + r.lost != r.sent:
            problems.append(f"{r.name}: delivered {r.delivered} + lost {r.lost} != {r.sent}")
        if r.delivered and not sum(r.calls.values()):
            problems.append(f"{r.name}: no API call counted")
    return problems
