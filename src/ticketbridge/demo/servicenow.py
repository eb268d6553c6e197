"""``ticketbridge demo``: a scripted incident against the built-in simulators (ServiceNow).

The simulators of ConnectWise PSA and ServiceNow run on 127.0.0.1; the real
daemon runs against them on a fresh SQLite file, with webhooks and polling.
People are played by :class:`ConnectWiseActor` (the MSP's engineer) and
:class:`ServiceNowActor` (the vendor's agent), through the products' own APIs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.config import load_config
from ticketbridge.demo.kit import (
    DEMO_SPEED,
    VERIFY,
    Engineer,
    Timeline,
    clock_line,
    first_line,
    free_port,
    render_config,
    wait_for,
)

__all__ = ["play_servicenow"]


def _holdings(
    cw_notes: list[dict[str, Any]], journal: list[dict[str, Any]], tid: int, number: str
) -> Table:
    table = Table(title="What each system holds now", expand=True)
    table.add_column("where", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("note")
    for note in cw_notes:
        kind = "internal" if note.get("internalAnalysisFlag") else "discussion"
        table.add_row(f"[cyan]ConnectWise #{tid}[/]", kind, first_line(note["text"]))
    for entry in journal:
        kind = "comment" if entry["element"] == "comments" else "work note"
        table.add_row(f"[magenta]ServiceNow {number}[/]", kind, first_line(entry["value"]))
    return table


async def play_servicenow(console: Console, db: Path) -> int:
    from datetime import timedelta

    from ticketbridge.adapters.connectwise import simulator as connectwise
    from ticketbridge.adapters.servicenow import simulator as servicenow
    from ticketbridge.clock import ScaledClock
    from ticketbridge.daemon import Daemon
    from ticketbridge.sandbox.server import SandboxServer

    began = time.monotonic()
    clock = ScaledClock(DEMO_SPEED)
    tl = Timeline(clock=clock)
    cw_state = connectwise.ConnectWiseState(clock=clock.now)
    sn_state = servicenow.ServiceNowState(clock=clock.now)
    cw_server = SandboxServer(connectwise.create_app(cw_state)).start()
    sn_server = SandboxServer(servicenow.create_app(sn_state)).start()
    cw = ConnectWiseActor(cw_server.url)
    sn = ServiceNowActor(sn_server.url)
    sn_admin = ServiceNowActor(sn_server.url, "ticketbridge.integration", "integration-pass")
    stop = asyncio.Event()
    daemon_task: asyncio.Task[None] | None = None

    async def demo_wait(minutes: float) -> None:
        await asyncio.sleep(clock.real_seconds(timedelta(minutes=minutes)))

    try:
        port = free_port()
        token = secrets.token_hex(16)
        acme = (await sn_admin.query("core_company", "name=Acme Dental Group"))[0]
        caller = (await sn_admin.query("sys_user", "user_name=ticketbridge.integration"))[0]
        config = load_config(
            render_config(
                db_path=str(db),
                daemon_port=str(port),
                cw_url=cw_server.url,
                sn_url=sn_server.url,
                sn_token=token,
                acme_sys_id=acme["sys_id"],
                caller_sys_id=caller["sys_id"],
            )
        )
        await cw.register_callback(f"http://127.0.0.1:{port}/webhooks/cw?recordId=")
        await sn.configure_outbound(f"http://127.0.0.1:{port}/webhooks/snow", token)
        console.print(
            f"[bold]ticketbridge demo[/] — ConnectWise PSA simulator {cw_server.url}, "
            f"ServiceNow simulator {sn_server.url}, daemon on 127.0.0.1:{port}, "
            f"store {db}. Time runs {DEMO_SPEED:.0f}x faster than real time."
        )
        daemon = Daemon(config, clock=clock)
        daemon_task = asyncio.create_task(daemon.run(stop))
        await asyncio.wait_for(daemon.started.wait(), timeout=15)
        tl.add(
            "ticketbridge",
            "daemon started: polling both systems, webhooks registered, "
            "contract 'Acme ISP critical incidents' (P1: acknowledge in 15m)",
        )

        # 1. The service desk takes a P1 call; Tier 1 cannot fix it in time.
        ticket = await cw.open_ticket(
            summary="Internet down at main office - ISP circuit",
            description="Since 08:40 the main office has no internet. Modem shows no sync.",
            board="Service Desk",
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 1 - Emergency Response",
        )
        tid = ticket["id"]
        tl.add(
            "ConnectWise PSA",
            f"#{tid} opened on Service Desk (Tier 1), Priority 1, "
            f"Acme Dental Group, contact Dana Whitfield",
        )

        async def on_tier_2() -> str | None:
            got = (await cw.ticket(tid)).get("team") or {}
            return "Tier 2" if got.get("name") == "Tier 2" else None

        await wait_for(on_tier_2, "the move to Tier 2")
        tl.add("ticketbridge", f"rule p1-to-tier-2: #{tid} moved to Tier 2 after 5 minutes")

        async def on_vendor_board() -> str | None:
            board = (await cw.ticket(tid))["board"]["name"]
            return str(board) if board == "Vendor Escalations" else None

        await wait_for(on_vendor_board, "the move to the vendor tier")
        tl.add(
            "ticketbridge",
            f"rule p1-engage-vendor: #{tid} moved to Vendor Escalations after 10 minutes "
            "(vendor engagement)",
        )

        async def incident() -> dict[str, Any] | None:
            found = await sn_admin.query("incident", "correlation_display=ticketbridge")
            return found[0] if found else None

        inc = await wait_for(incident, "the ServiceNow incident")
        sys_id, number = inc["sys_id"], inc["number"]
        assert inc["short_description"] == ticket["summary"]
        assert inc["company"] == acme["sys_id"]
        assert "Dana Whitfield" in inc["description"]
        tl.add(
            "ServiceNow",
            f'{number} opened: "{inc["short_description"]}", priority '
            f"{inc['priority']}, company Acme Dental Group, contact in "
            "description",
        )

        engineer = Engineer(cw, tl)
        await engineer.sees_number(tid, number, "the incident number")

        # 2. A public note goes to the vendor; an internal one does not.
        await cw.add_note(
            tid,
            "Client reports the office is fully offline; 40 users "
            "affected. Please treat as critical.",
            internal=False,
        )
        await cw.add_note(
            tid, "Internal: client is on a month-to-month contract, be nice.", internal=True
        )
        tl.add("ConnectWise PSA", "John Smith adds a public note and an internal note")

        async def vendor_comment() -> list[dict[str, Any]] | None:
            entries = await sn_admin.journal(sys_id)
            hits = [
                e for e in entries if e["element"] == "comments" and "fully offline" in e["value"]
            ]
            return entries if hits else None

        entries = await wait_for(vendor_comment, "the public note at ServiceNow")
        assert not any("month-to-month" in e["value"] for e in entries), "internal note leaked"
        tl.add(
            "ServiceNow",
            f'{number} additional comment: "Client reports the office is '
            'fully offline..." (the internal note stayed in the PSA)',
        )
        await demo_wait(3)
        tl.add("ticketbridge", clock_line(daemon, clock))

        # 3. The vendor puts the incident on hold, waiting on the caller (the MSP).
        await sn.update(
            sys_id,
            state="3",
            hold_reason="1",
            work_notes="Need the circuit ID from the caller before we can test.",
        )
        tl.add(
            "ServiceNow",
            "Beth Anglin: On Hold, awaiting caller (a work note, no reply to the customer yet)",
        )

        async def paused() -> str | None:
            line = clock_line(daemon, clock)
            return line if "paused" in line else None

        tl.add("ticketbridge", await wait_for(paused, "the vendor clock to pause"))
        await demo_wait(10)
        tl.add("ticketbridge", clock_line(daemon, clock) + " — 10 minutes later, unchanged")

        # 4. The engineer answers; the caller's comment puts the incident back in progress.
        await cw.add_note(tid, "Circuit ID is ACME-NY-0042.", internal=False)
        tl.add("ConnectWise PSA", "John Smith replies with the circuit ID (public note)")

        async def resumed() -> str | None:
            inc_now = await sn_admin.incident(sys_id)
            line = clock_line(daemon, clock)
            return line if inc_now["state"] == "2" and "running" in line else None

        line = await wait_for(resumed, "the incident back in progress")
        tl.add("ServiceNow", f"{number} back In Progress (the caller answered)")
        tl.add("ticketbridge", line)

        # 5. The vendor stays silent: the acknowledgment target is breached.
        flagged = await engineer.sees_breach(tid, 30)
        notes = await cw.notes(tid)
        risk = [n for n in notes if "Supplier SLA at risk" in n["text"]]
        tl.add(
            "ConnectWise PSA",
            f"{len(risk)} internal 'SLA at risk' notes (50%, 75%), then: "
            + first_line(flagged, 160),
        )

        async def escalated() -> dict[str, Any] | None:
            inc_now = await sn_admin.incident(sys_id)
            notes = [e for e in await sn_admin.journal(sys_id) if "ESCALATION:" in e["value"]]
            return inc_now if inc_now.get("escalation") == "2" and notes else None

        await wait_for(escalated, "the escalation at ServiceNow")
        tl.add(
            "ServiceNow",
            f"rule vendor-ack-breach: {number} escalation set to High and a public "
            "escalation comment posted",
        )

        # 6. The vendor finally works the incident: a work note and a public comment.
        await sn.update(
            sys_id, work_notes="Line test shows fault at the exchange; dispatching field engineer."
        )
        await sn.update(sys_id, comments="A field engineer is on the way, ETA 11:30.")
        tl.add("ServiceNow", "Beth Anglin: a work note and an additional comment (late)")

        async def mirrored_back() -> list[dict[str, Any]] | None:
            notes = await cw.notes(tid)
            got = [
                n
                for n in notes
                if "Beth Anglin" in n["text"]
                and ("exchange" in n["text"] or "ETA 11:30" in n["text"])
            ]
            return got if len(got) == 2 else None

        back = await wait_for(mirrored_back, "the vendor's notes in the PSA")
        assert all(n["internalAnalysisFlag"] for n in back), "vendor notes must land internal"
        tl.add(
            "ConnectWise PSA",
            "internal notes from Beth Anglin (work notes, comment) with attribution",
        )

        async def client_update() -> str | None:
            for note in await cw.notes(tid):
                text = str(note["text"])
                if (
                    note["detailDescriptionFlag"]
                    and "ETA 11:30" in text
                    and "[ServiceNow" not in text
                ):
                    return text
            return None

        update = await wait_for(client_update, "the client-visible status update", 30)
        tl.add(
            "ConnectWise PSA",
            "rule p1-client-updates: client-visible note: " + first_line(update, 140),
        )

        # 7. The vendor resolves; the PSA ticket moves to the quality-control status.
        await sn.update(
            sys_id,
            state="6",
            close_code="Solved (Permanently)",
            close_notes="Line card replaced at the exchange; sync restored.",
        )
        tl.add("ServiceNow", f"{number} Resolved: line card replaced at the exchange")

        await engineer.sees_status(tid, VERIFY)

        # 8. The client confirms; the engineer closes the ticket; lessons learned opens.
        await engineer.closes(tid, daemon)
        holdings = _holdings(await cw.notes(tid), await sn_admin.journal(sys_id), tid, number)
    finally:
        stop.set()
        if daemon_task is not None:
            await asyncio.wait_for(daemon_task, timeout=15)
        for actor in (cw, sn, sn_admin):
            await actor.aclose()
        cw_server.stop()
        sn_server.stop()
    console.print(tl.render())
    console.print(holdings)
    elapsed = time.monotonic() - began
    console.print(
        f"[bold green]demo complete[/] in {elapsed:.1f}s — every step was seen in both systems."
    )
    return 0
