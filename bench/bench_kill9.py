"""Chaos run: kill -9 the daemon(s) at random moments during a two-way note sync.

Starts the ConnectWise and ServiceNow simulators in this process and one daemon
(SQLite) or several replicas on one PostgreSQL schema as child processes, links a few
tickets, then writes notes on both sides (bursts in the same second included) while a
chaos loop kills a random replica with SIGKILL and restarts it after a short pause
(``--pauses N`` also freezes a replica with SIGSTOP past its write lease, then lets it go on:
another replica takes its writes over, and the frozen one must not send them again).
When the notes are written and the kills are done, the daemons run until nothing is
left to deliver; then every source note is looked for at its target and at its source:

- lost: a note never reached its target;
- duplicated: more than one copy at the target, or a copy mirrored back to its source;
- out of order: pairs of notes of one ticket and direction that arrived at the target
  in another order than they were written at the source.

Prints one line of figures; exit status 1 when anything was lost or duplicated.

Run: ``.venv/bin/python -m bench.bench_kill9 --store sqlite --notes 300 --kills 30``
     ``.venv/bin/python -m bench.bench_kill9 --store postgresql --replicas 2 --pauses 4``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import (
    Replica,
    configs,
    drop_schema,
    link_tickets,
    lookup_ids,
    make_store,
    wait_ready,
)
from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.sandbox.server import SandboxServer

TOKEN = "kill9-outbound-token"
TOKEN_RE = re.compile(r"k9-(psa|ven)-t(\d+)-n(\d+)\b")


@dataclass
class Run:
    tickets: list[tuple[int, str]] = field(default_factory=list)  # (cw id, sn sys_id)
    written: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


async def write_notes(
    cw: ConnectWiseActor, sn: ServiceNowActor, run: Run, total: int, rng: random.Random
) -> None:
    seq: dict[tuple[str, int], int] = defaultdict(int)
    written = 0
    while written < total:
        burst = rng.choice([1, 1, 2, 5])  # bursts land in the same second
        ti = rng.randrange(len(run.tickets))
        side = rng.choice(["psa", "ven"])
        cw_id, sys_id = run.tickets[ti]
        for _ in range(min(burst, total - written)):
            seq[side, ti] += 1
            token = f"k9-{side}-t{ti}-n{seq[side, ti]:04d}"
            text = f"chaos note {token}"
            if side == "psa":
                await cw.add_note(cw_id, text, internal=False)
            else:
                await sn.update(sys_id, comments=text)
            run.written[f"{side}-t{ti}"].append(token)
            written += 1
        await asyncio.sleep(rng.uniform(0.0, 0.15))


def chaos(
    replicas: list[Replica],
    stop: threading.Event,
    kills: int,
    rng: random.Random,
    *,
    pauses: int = 0,
    pause_for: float = 0.0,
) -> threading.Thread:
    """Kill -9 a random replica ``kills`` times; with ``pauses``, also freeze one (SIGSTOP)
    for ``pause_for`` seconds, past its write lease, then let it go on (SIGCONT)."""

    def loop() -> None:
        done = paused = 0
        while (done < kills or paused < pauses) and not stop.is_set():
            time.sleep(rng.uniform(0.3, 2.0))
            victim = rng.choice(replicas)
            if paused < pauses and (done >= kills or rng.random() < 0.2) and victim.alive():
                assert victim.proc is not None
                victim.proc.send_signal(signal.SIGSTOP)
                time.sleep(pause_for)
                victim.proc.send_signal(signal.SIGCONT)
                victim.pauses += 1
                paused += 1
                continue
            victim.kill9()
            done += 1
            time.sleep(rng.uniform(0.0, 1.5))
            victim.start()
        for r in replicas:
            if not r.alive():
                r.start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def observed(cw_state: Any, sn_state: Any, run: Run) -> dict[str, dict[str, list[str]]]:
    """Tokens seen on each side, per ticket, in the order the side recorded them."""
    by_cw = {cw_id: ti for ti, (cw_id, _) in enumerate(run.tickets)}
    by_sn = {sys_id: ti for ti, (_, sys_id) in enumerate(run.tickets)}
    seen: dict[str, dict[str, list[str]]] = {"psa": defaultdict(list), "ven": defaultdict(list)}
    for note in list(cw_state.notes.values()):
        ti = by_cw.get(note["ticketId"])
        if ti is not None:
            for m in TOKEN_RE.finditer(note.get("text") or ""):
                seen["psa"][f"t{ti}"].append(m.group(0))
    for entry in list(sn_state.tables["sys_journal_field"].values()):
        ti = by_sn.get(entry.get("element_id"))
        if ti is not None:
            for m in TOKEN_RE.finditer(entry.get("value") or ""):
                seen["ven"][f"t{ti}"].append(m.group(0))
    return seen


def score(run: Run, seen: dict[str, dict[str, list[str]]]) -> dict[str, int]:
    lost = duplicated = echoed = 0
    inversions = {"psa": 0, "ven": 0}
    for stream, tokens in run.written.items():
        side, ticket = stream.split("-")
        target = "ven" if side == "psa" else "psa"
        at_target = seen[target][ticket]
        at_source = seen[side][ticket]
        for token in tokens:
            copies = at_target.count(token)
            lost += copies == 0
            duplicated += max(0, copies - 1)
            echoed += max(0, at_source.count(token) - 1)
        arrived = [t for t in dict.fromkeys(at_target) if t.startswith(f"k9-{side}-")]
        positions = [int(TOKEN_RE.fullmatch(t).group(3)) for t in arrived]  # type: ignore[union-attr]
        inversions[side] += sum(1 for a, b in itertools.pairwise(positions) if a > b)
    return {
        "lost": lost,
        "duplicated": duplicated,
        "echoed": echoed,
        "out_of_order": inversions["psa"] + inversions["ven"],
        "out_of_order_to_vendor": inversions["psa"],
        "out_of_order_to_psa": inversions["ven"],
    }


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    cw_server = SandboxServer(connectwise.create_app()).start()
    sn_server = SandboxServer(servicenow.create_app()).start()
    tmp = Path(tempfile.mkdtemp(prefix="tb-kill9-"))
    store_url, schema = make_store(args.store, tmp)
    replicas = configs(
        store_url,
        cw_server.url,
        sn_server.url,
        TOKEN,
        lookup_ids(sn_server.url),
        tmp,
        args.replicas,
        args.lease,
    )
    cw = ConnectWiseActor(cw_server.url)
    sn = ServiceNowActor(sn_server.url)
    admin = ServiceNowActor(sn_server.url, "ticketbridge.integration", "integration-pass")
    run = Run()
    began = time.monotonic()
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            wait_ready(r)
        await admin.configure_outbound(f"http://127.0.0.1:{replicas[0].port}/webhooks/snow", TOKEN)
        await cw.register_callback(f"http://127.0.0.1:{replicas[0].port}/webhooks/cw?recordId=")
        run.tickets = await link_tickets(cw, admin, args.tickets, uuid.uuid4().hex[:6])
        stop = threading.Event()
        killer = chaos(
            replicas, stop, args.kills, rng, pauses=args.pauses, pause_for=args.lease * 1.5
        )
        await write_notes(cw, sn, run, args.notes, rng)
        await asyncio.to_thread(killer.join, 600)
        stop.set()
        total = sum(len(v) for v in run.written.values())
        deadline = time.monotonic() + args.settle

        def look() -> dict[str, int]:
            states = (cw_server.app.state.sandbox, sn_server.app.state.sandbox)  # type: ignore[attr-defined]
            return score(run, observed(*states, run))

        figures = look()
        quiet_since = time.monotonic()
        last = figures
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            figures = look()
            if figures != last:
                last, quiet_since = figures, time.monotonic()
            if figures["lost"] == 0 or time.monotonic() - quiet_since > 20:
                await asyncio.sleep(3)  # late duplicates show up here
                figures = look()
                break
        kills = sum(r.kills for r in replicas)
        pauses = sum(r.pauses for r in replicas)
        print(
            f"store={args.store} replicas={args.replicas} tickets={args.tickets} "
            f"notes={total} kills={kills} pauses={pauses} lost={figures['lost']} "
            f"duplicated={figures['duplicated']} echoed={figures['echoed']} "
            f"out_of_order={figures['out_of_order']} (to vendor {figures['out_of_order_to_vendor']}, "
            f"to PSA {figures['out_of_order_to_psa']}) seconds={time.monotonic() - began:.0f}"
        )
        bad = figures["lost"] or figures["duplicated"] or figures["echoed"]
        if bad and args.keep:
            print(f"logs and configs kept in {tmp}")
        return 1 if bad else 0
    finally:
        for r in replicas:
            r.stop()
        for actor in (cw, sn, admin):
            await actor.aclose()
        cw_server.stop()
        sn_server.stop()
        drop_schema(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--tickets", type=int, default=5)
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument(
        "--pauses", type=int, default=0, help="SIGSTOP a replica past its lease this many times"
    )
    parser.add_argument("--lease", type=float, default=10.0, help="engine.write_lease, seconds")
    parser.add_argument("--settle", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="say where the logs are on failure")
    args = parser.parse_args()
    if args.store == "sqlite" and args.replicas != 1:
        parser.error("SQLite holds one writer: --replicas 1 (use --store postgresql)")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
