"""``ticketbridge demo``: a scripted incident against the built-in simulators.

The simulators of ConnectWise PSA and ServiceNow run on 127.0.0.1; the real
daemon runs against them on a fresh SQLite file, with webhooks and polling.
People are played by :class:`ConnectWiseActor` (the MSP's engineer) and
:class:`ServiceNowActor` (the vendor's agent), through the products' own APIs.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import string
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.config import load_config

__all__ = [
    "VENDORS",
    "Engineer",
    "base_config",
    "clock_line",
    "first_line",
    "free_port",
    "lessons_learned",
    "run_demo",
    "wait_for",
]

#: ``ticketbridge demo --vendor``: the vendor the incident is played against.
VENDORS = ("servicenow", "email", "rt")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(probe: Callable[[], Awaitable[T | None]], what: str, within: float = 20.0) -> T:
    """Ask ``probe`` until it returns something; fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {within:.0f}s")
        await asyncio.sleep(0.2)


@dataclass
class Timeline:
    clock: Any = None
    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[float, str, str, str]] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        stamp = f"{self.clock.now():%H:%M}" if self.clock is not None else ""
        self.rows.append((time.monotonic() - self.started, stamp, where, what))

    def render(self) -> Table:
        table = Table(title="Incident timeline", show_lines=False, expand=True)
        table.add_column("real s", justify="right", style="dim", no_wrap=True)
        table.add_column("clock", style="dim", no_wrap=True)
        table.add_column("where", no_wrap=True)
        table.add_column("what")
        colours = {"ConnectWise PSA": "cyan", "ticketbridge": "green"}
        for at, stamp, where, what in self.rows:
            table.add_row(f"{at:5.1f}", stamp, f"[{colours.get(where, 'magenta')}]{where}[/]", what)
        return table


def first_line(text: str, width: int = 90) -> str:
    """The first meaningful line(s) of a note, cut to ``width``."""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    head = lines[0] if lines else ""
    body = lines[1] if len(lines) > 1 and head.endswith(":") else ""
    shown = f"{head} {body}".strip()
    return shown if len(shown) <= width else shown[: width - 1] + "…"


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


def render_config(**values: str) -> dict[str, Any]:
    values.setdefault("rules_dir", str(files("ticketbridge").joinpath("demo_rules")))
    template = string.Template(files("ticketbridge").joinpath("demo.yaml").read_text("utf-8"))
    data: dict[str, Any] = yaml.safe_load(template.substitute(values))
    return data


def run_demo(
    *, keep_db: Path | None = None, verbose: bool = False, vendor: str = "servicenow"
) -> int:
    """Play the demo against ``vendor`` (one of :data:`VENDORS`); 0 when every step was seen
    to happen, 1 otherwise."""
    if vendor not in VENDORS:
        raise ValueError(f"unknown demo vendor {vendor!r}: one of {', '.join(VENDORS)}")
    from ticketbridge.log import configure_logging

    configure_logging(level="info" if verbose else "error")
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ticketbridge-demo-") as tmp:
        db = keep_db or Path(tmp) / "ticketbridge.db"
        if db.exists():
            db.unlink()
        try:
            if vendor == "email":
                from ticketbridge.demo_email import play_email

                return asyncio.run(play_email(console, db, Path(tmp)))
            if vendor == "rt":
                from ticketbridge.demo_rt import play_rt

                return asyncio.run(play_rt(console, db, Path(tmp)))
            return asyncio.run(_play(console, db))
        except (TimeoutError, httpx.HTTPError, AssertionError) as exc:
            console.print(f"[bold red]demo failed:[/] {type(exc).__name__}: {exc}")
            if verbose:
                console.print_exception()
            return 1


PSA = "ConnectWise PSA"
VERIFY = "Vendor Resolved - Verify with Client"


def base_config(db: Path, port: int, cw_url: str) -> dict[str, Any]:
    """The demo's configuration with its ServiceNow part unfilled, for the demos that put
    another vendor in its place (they replace the ``snow`` system and the connection)."""
    return render_config(
        db_path=str(db),
        daemon_port=str(port),
        cw_url=cw_url,
        sn_url="http://127.0.0.1:9",
        sn_token="unused-token-unused",  # noqa: S106 - replaced with the other vendor
        acme_sys_id="unused",
        caller_sys_id="unused",
    )


@dataclass
class Engineer:
    """The MSP's engineer in the demo PSA (the ConnectWise simulator), and what every demo
    checks there, each step added to the timeline."""

    cw: ConnectWiseActor
    tl: Timeline

    async def open_p1(self, board: str) -> int:
        ticket = await self.cw.open_ticket(
            summary="Internet down at main office - ISP circuit",
            description="Since 08:40 the main office has no internet. Modem shows no sync.",
            board=board,
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 1 - Emergency Response",
        )
        tier = " (Tier 1)" if board == "Service Desk" else ""
        self.tl.add(PSA, f"#{ticket['id']} opened on {board}{tier}, Priority 1")
        return int(ticket["id"])

    async def sees_number(self, tid: int, number: str, what: str) -> None:
        async def written_back() -> str | None:
            value = (await self.cw.ticket(tid)).get("externalXRef")
            return str(value) if value == number else None

        await wait_for(written_back, f"{what} in the PSA ticket")
        self.tl.add(PSA, f"#{tid} externalXRef = {number}")

    async def writes_public_and_internal(self, tid: int, public: str, internal: str) -> None:
        await self.cw.add_note(tid, public, internal=False)
        await self.cw.add_note(tid, internal, internal=True)
        self.tl.add(PSA, "John Smith adds a public note and an internal note")

    async def sees_breach(self, tid: int, within: float) -> str:
        async def breach_note() -> str | None:
            for note in await self.cw.notes(tid):
                if "Supplier SLA BREACHED" in note["text"]:
                    return str(note["text"])
            return None

        return await wait_for(breach_note, "the breach flag in the PSA", within)

    async def sees_status(self, tid: int, wanted: str) -> None:
        async def status() -> str | None:
            name = str((await self.cw.ticket(tid))["status"]["name"])
            return name if name == wanted else None

        await wait_for(status, "the PSA status change")
        self.tl.add(PSA, f"#{tid} status -> {wanted}")

    async def closes(self, tid: int, daemon: Any) -> None:
        """Verified with the client and closed; the lessons-learned record opens."""
        await self.cw.set_status(tid, "Closed")
        self.tl.add(PSA, f"John Smith verifies with Dana Whitfield and closes #{tid}")
        summary = await wait_for(lambda: lessons_learned(daemon), "the lessons-learned record")
        self.tl.add("ticketbridge", f"rule lessons-learned: record opened: {summary}")


async def lessons_learned(daemon: Any) -> str | None:
    """The first lessons-learned record's summary, once the rule opened one."""
    from ticketbridge.store.rules import lessons_learned_summaries

    with daemon.store.tx() as c:
        summaries = lessons_learned_summaries(c)
    return summaries[0] if summaries else None


#: The demo clock runs this many times faster than real time (1 real second = 2 minutes).
DEMO_SPEED = 120.0


def clock_line(daemon: Any, clock: Any) -> str:
    """The acknowledgment clock of the demo's only link, as the daemon sees it now."""
    from ticketbridge.engine.sla import format_duration
    from ticketbridge.sla.clock import SlaState, snapshot
    from ticketbridge.store import repo
    from ticketbridge.store import sla as sla_store

    with daemon.store.tx() as c:
        links = repo.list_links(c)
        row = sla_store.first_clock(c) if links else None
    if not links or row is None:
        return "no clock yet"
    found = daemon.engine.sla.policy(links[0])
    if found is None:
        return "no contract"
    snap = snapshot(SlaState.from_dict(row.state), found[1], clock.now())
    ack = snap.acknowledgment
    state = "paused, ball with the MSP" if ack.status.value == "paused" else ack.status.value
    return (
        f"acknowledgment clock {format_duration(ack.elapsed)} of "
        f"{format_duration(ack.target)} ({state})"
    )


async def _play(console: Console, db: Path) -> int:
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
