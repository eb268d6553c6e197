"""``ticketbridge demo --vendor rt``: the incident with a vendor on Request Tracker.

A real Request Tracker 5 (Debian's packages; ``scripts/rt-up`` installs them) is started on
127.0.0.1 with its own state for the demo; ConnectWise PSA is its simulator.  The vendor's
agent works the ticket through RT's REST2 API: silent past the acknowledgment target, then
a comment and a reply, then resolved.

RT keeps real time (its dates are its server's clock), so this demo runs in real time with
an acknowledgment target of 20 seconds, and the ticket goes straight to the vendor tier.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.config import load_config
from ticketbridge.demo.kit import (
    PSA,
    VERIFY,
    Engineer,
    Timeline,
    base_config,
    clock_line,
    first_line,
    free_port,
    wait_for,
)
from ticketbridge.domain import Visibility

__all__ = ["play_rt"]

WHERE = "Request Tracker"
#: The acknowledgment target of the demo's contract (real time: RT's clock is real).
ACK_SECONDS = 20


def rt_rules(base_dir: str, into: Path) -> str:
    """The demo's rules for a vendor on RT: its priorities are Low/Medium/High (a number is
    RT's own scale, where 1 is low) and it has no escalation field to set."""
    into.mkdir(parents=True, exist_ok=True)
    for source in sorted(Path(base_dir).glob("*.yaml")):
        data = yaml.safe_load(source.read_text("utf-8"))
        for rule in data.get("rules", []):
            actions = [
                {**a, "priority": "High"} if a.get("type") == "set_vendor_priority" else a
                for a in rule.get("actions", [])
                if a.get("type") != "set_vendor_field"
            ]
            if "actions" in rule:
                rule["actions"] = actions
        (into / source.name).write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return str(into)


def rt_config(base: dict[str, Any], rt: Any, rules_dir: str) -> dict[str, Any]:
    """The demo's configuration with Request Tracker in place of ServiceNow."""
    config = dict(base)
    systems = dict(config["systems"])
    systems.pop("snow")
    systems["rt"] = {
        "kind": "rt",
        "base_url": rt.base_url,
        "poll_interval": "1s",
        "settings": {
            "token": rt.token,
            "user": rt.user,
            "queue": rt.queue,
            "requestor": rt.requestor,
        },
    }
    config["systems"] = systems
    config["rules"] = {**config["rules"], "directory": rules_dir}
    conn = dict(config["connections"][0])
    conn.pop("accounts", None)
    conn.update(
        name="cw-rt",
        vendor="rt",
        default_account={},
        status_map={
            "vendor_to_psa": {
                "new": None,
                "open": "Waiting on Vendor",
                "stalled": None,
                "resolved": "Vendor Resolved - Verify with Client",
                "rejected": "Vendor Resolved - Verify with Client",
                "deleted": None,
            }
        },
        priority_map={
            "psa_to_vendor": {
                "Priority 1 - Emergency Response": "High",
                "Priority 2 - Quick Response": "Medium",
                "Priority 3 - Normal Response": "Medium",
                "Priority 4 - Low": "Low",
            }
        },
    )
    config["connections"] = [conn]
    sla = dict(config["sla"])
    sla["contracts"] = [
        {
            **c,
            "vendor": "rt",
            "targets": {
                "High": {
                    "acknowledgment": {"duration": f"{ACK_SECONDS}s", "business": False},
                    "update_cadence": {"duration": "10m", "business": False},
                    "resolution": {"duration": "1h", "business": False},
                },
                "Medium": c["targets"]["2"],
            },
        }
        for c in sla["contracts"]
    ]
    config["sla"] = sla
    return config


async def play_rt(console: Console, db: Path, tmp: Path) -> int:
    from ticketbridge.adapters.connectwise import simulator as connectwise
    from ticketbridge.adapters.rt.driver import RtAgent
    from ticketbridge.adapters.rt.local import RtUnavailable, start_local_rt
    from ticketbridge.clock import SystemClock
    from ticketbridge.daemon import Daemon
    from ticketbridge.sandbox.server import SandboxServer

    began = time.monotonic()
    try:
        rt = await asyncio.to_thread(start_local_rt, tmp / "rt")
    except RtUnavailable as exc:
        console.print(f"[bold red]cannot play the Request Tracker demo:[/] {exc}")
        return 2
    clock = SystemClock()
    tl = Timeline(clock=clock)
    agent = RtAgent(rt.base_url, rt.agent_token, rt.queue, None)
    cw_state = connectwise.ConnectWiseState(clock=clock.now)
    cw_server = SandboxServer(connectwise.create_app(cw_state)).start()
    cw = ConnectWiseActor(cw_server.url)
    stop = asyncio.Event()
    daemon_task: asyncio.Task[None] | None = None

    try:
        port = free_port()
        base = base_config(db, port, cw_server.url)
        engineer = Engineer(cw, tl)
        rules = rt_rules(base["rules"]["directory"], tmp / "rules")
        config = load_config(rt_config(base, rt, rules))
        await cw.register_callback(f"http://127.0.0.1:{port}/webhooks/cw?recordId=")
        console.print(
            f"[bold]ticketbridge demo, vendor on Request Tracker[/] — ConnectWise PSA simulator "
            f"{cw_server.url}, Request Tracker {rt.base_url} (queue '{rt.queue}'), daemon on "
            f"127.0.0.1:{port}, store {db}. Real time (RT's clock is real): the vendor has "
            f"{ACK_SECONDS}s to acknowledge."
        )
        daemon = Daemon(config, clock=clock)
        daemon_task = asyncio.create_task(daemon.run(stop))
        await asyncio.wait_for(daemon.started.wait(), timeout=15)
        tl.add(
            "ticketbridge",
            "daemon started: ConnectWise by webhooks and polling, Request Tracker polled "
            "(TicketSQL on LastUpdated); contract 'Acme ISP critical incidents' "
            f"(High: acknowledge in {ACK_SECONDS}s)",
        )

        # 1. A P1 on the vendor tier: a ticket is opened in RT.
        tid = await engineer.open_p1("Vendor Escalations")

        async def rt_ticket() -> dict[str, Any] | None:
            found = await agent.call(
                "GET",
                "/tickets",
                params={"query": f"Queue = '{rt.queue}'", "fields": "Subject,Status,Priority"},
            )
            return found["items"][0] if found["items"] else None

        opened = await wait_for(rt_ticket, "the Request Tracker ticket", 40)
        number = str(opened["id"])
        tl.add(
            WHERE,
            f'ticket #{number} opened in {rt.queue}: "{opened["Subject"]}", status '
            f"{opened['Status']}, priority {opened['Priority']}",
        )

        await engineer.sees_number(tid, number, "the RT ticket number")

        # 2. A public note is a correspondence in RT; an internal one stays in the PSA.
        await engineer.writes_public_and_internal(
            tid,
            "Client reports 40 users offline; please treat as critical.",
            "Internal: client is on a month-to-month contract.",
        )

        async def corresponded() -> list[tuple[str, str, str]] | None:
            notes = await agent.notes(number)
            return notes if any("40 users offline" in n[2] for n in notes) else None

        notes = await wait_for(corresponded, "the correspondence in RT")
        assert not any("month-to-month" in n[2] for n in notes), "internal note leaked"
        kinds = {n[0] for n in notes if "40 users offline" in n[2]}
        tl.add(WHERE, f"{'/'.join(sorted(kinds))}: the client's note (the internal note stayed)")
        await asyncio.sleep(2)
        tl.add("ticketbridge", clock_line(daemon, clock))

        # 3. The vendor stays silent: breach, escalation (priority High, a public note).
        flagged = await engineer.sees_breach(tid, ACK_SECONDS + 30)
        tl.add(PSA, first_line(flagged, 160))

        async def escalated() -> list[tuple[str, str, str]] | None:
            notes = await agent.notes(number)
            return notes if any("ESCALATION:" in n[2] for n in notes) else None

        await wait_for(escalated, "the escalation in RT", 20)
        now = await agent.ticket(number)
        tl.add(
            WHERE,
            f"rule vendor-ack-breach: an ESCALATION correspondence on #{number} "
            f"(priority {now.get('Priority')})",
        )

        # 4. The agent works it: a comment (internal at the vendor) and a reply.
        await agent.note(number, "Line test shows a fault at the exchange.", Visibility.INTERNAL)
        await agent.note(number, "A field engineer is on the way, ETA 11:30.", Visibility.PUBLIC)
        tl.add(WHERE, "the vendor's agent: a comment and a correspondence")

        async def mirrored_back() -> list[dict[str, Any]] | None:
            got = [
                n
                for n in await cw.notes(tid)
                if "exchange" in n["text"] or "ETA 11:30" in n["text"]
            ]
            return got if len(got) >= 2 else None

        back = await wait_for(mirrored_back, "the vendor's notes in the PSA")
        assert all(n["internalAnalysisFlag"] for n in back), "vendor notes must land internal"
        tl.add(PSA, "internal notes: the comment and the correspondence, attributed")
        tl.add("ticketbridge", clock_line(daemon, clock))

        # 5. Resolved in RT; the PSA ticket moves to verification; closed; lessons learned.
        await agent.set(number, Status="resolved")
        tl.add(WHERE, f"#{number} resolved")

        await engineer.sees_status(tid, VERIFY)
        await engineer.closes(tid, daemon)
    finally:
        stop.set()
        if daemon_task is not None:
            await asyncio.wait_for(daemon_task, timeout=15)
        await agent.aclose()
        await cw.aclose()
        cw_server.stop()
        await asyncio.to_thread(rt.stop)
    console.print(tl.render())
    elapsed = time.monotonic() - began
    console.print(
        f"[bold green]demo complete[/] in {elapsed:.1f}s — every step was seen in the PSA "
        "and in Request Tracker."
    )
    return 0
