"""``ticketbridge demo``: a scripted incident, played against a vendor of your choice.

``servicenow`` (the default): the built-in ConnectWise PSA and ServiceNow simulators;
``email``: an ISP reached only by mail; ``rt``: a local Request Tracker.  Each plays the
real daemon on a fresh SQLite file and prints the incident's timeline.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
from rich.console import Console

from ticketbridge.demo.kit import free_port, render_config, wait_for

__all__ = ["VENDORS", "free_port", "render_config", "run_demo", "wait_for"]

#: ``ticketbridge demo --vendor``: the vendor the incident is played against.
VENDORS = ("servicenow", "email", "rt")


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
                from ticketbridge.demo.mail import play_email

                return asyncio.run(play_email(console, db, Path(tmp)))
            if vendor == "rt":
                from ticketbridge.demo.rt import play_rt

                return asyncio.run(play_rt(console, db, Path(tmp)))
            from ticketbridge.demo.servicenow import play_servicenow

            return asyncio.run(play_servicenow(console, db))
        except (TimeoutError, httpx.HTTPError, AssertionError) as exc:
            console.print(f"[bold red]demo failed:[/] {type(exc).__name__}: {exc}")
            if verbose:
                console.print_exception()
            return 1
