"""What every ``ticketbridge demo`` shares: the PSA engineer's steps, the timeline, waiting,
the demo clock, and the configuration template (``demo.yaml``, ``demo_rules/``)."""

from __future__ import annotations

import asyncio
import socket
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rich.table import Table

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor

__all__ = [
    "DEMO_SPEED",
    "PSA",
    "VERIFY",
    "Engineer",
    "Timeline",
    "base_config",
    "clock_line",
    "first_line",
    "free_port",
    "lessons_learned",
    "render_config",
    "wait_for",
]

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


def render_config(**values: str) -> dict[str, Any]:
    values.setdefault("rules_dir", str(files("ticketbridge").joinpath("demo_rules")))
    template = string.Template(files("ticketbridge").joinpath("demo.yaml").read_text("utf-8"))
    data: dict[str, Any] = yaml.safe_load(template.substitute(values))
    return data


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
