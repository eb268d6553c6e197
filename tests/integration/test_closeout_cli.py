"""``ticketbridge closeout`` end to end: the fake product's simulator served on 127.0.0.1 (the
worlds the engine linked tickets in), the CLI against it -- dry run, --apply, a vendor that
refuses (exit 1 naming the ticket), the list, and the report's content in Markdown and HTML."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.harness import Harness
from ticketbridge.adapters.fake.simulator import create_app
from ticketbridge.cli import app
from ticketbridge.clock import FakeClock, utcnow
from ticketbridge.sandbox.server import SandboxServer
from ticketbridge.store import Store

pytestmark = [pytest.mark.integration]


class Site:
    """Linked tickets in a store, and the two fake systems served over HTTP."""

    def __init__(self, tmp_path: Path, harness: Harness, servers: dict[str, SandboxServer]):
        self.h = harness
        self.servers = servers
        self.config = tmp_path / "tb.yaml"
        url = harness.store.url.render_as_string(hide_password=False)
        self.config.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": url},
                    "systems": {
                        "psa": {"kind": "fake", "base_url": servers["psa"].url},
                        "vendor": {
                            "kind": "fake",
                            "base_url": servers["vendor"].url,
                            "display_name": "Acme Cloud Support",
                        },
                    },
                    "connections": [
                        {
                            "name": "main",
                            "psa": "psa",
                            "vendor": "vendor",
                            "routing": {"queues": ["Vendor Escalations"]},
                            "accounts": {"ACME": {"company": "acme-sys-id"}},
                        }
                    ],
                }
            )
        )

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--config", str(self.config)])

    def requests(self, kind: str) -> int:
        return int(self.servers[kind].app.state.requests.count())  # type: ignore[attr-defined]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = Store(f"sqlite:///{tmp_path / 'tb.db'}")
    store.upgrade()
    h = Harness.build(store, clock=FakeClock())
    servers = {
        "psa": SandboxServer(create_app(h.psa.world)).start(),
        "vendor": SandboxServer(create_app(h.vendor.world)).start(),
    }
    try:
        yield Site(tmp_path, h, servers)
    finally:
        for server in servers.values():
            server.stop()
        store.close()


def link_tickets(site: Site, count: int) -> list[Any]:
    h = site.h
    tickets = [h.psa_ticket(f"Outage {n} <b>bold</b> | piped") for n in range(count)]
    asyncio.run(h.settle())
    return tickets


def test_dry_run_lists_and_writes_nothing(site: Site) -> None:
    """The review lists every open ticket of the client as JSON, the ones at no vendor too;
    nothing is written at the vendor and no closeout is recorded."""
    link_tickets(site, 3)
    # a ticket of the client that never went to a vendor, and one of another client
    desk = site.h.psa_ticket("Printer jam", queue="Service Desk")
    site.h.psa_ticket("Other client", company="OTHER", queue="Service Desk")
    before = site.requests("vendor")
    result = site.cli("closeout", "ACME", "--format", "json")
    assert 0 == result.exit_code, result.output
    rows = json.loads(result.stdout)
    assert 4 == len(rows)
    linked, (unlinked,) = rows[:3], rows[3:]
    assert {"New"} == {row["vendor_status"] for row in linked}
    assert all(row["vendor_ticket"].startswith("V") for row in linked)
    assert (desk.ref.number or desk.ref.id, "not linked", None) == (
        unlinked["psa_ticket"],
        unlinked["closeout"],
        unlinked["vendor_ticket"],
    )
    assert before == site.requests("vendor")
    listed = site.cli("closeout", "list", "--format", "json")
    assert [] == json.loads(listed.stdout)


def test_apply_closes_out_and_reports(site: Site) -> None:
    """--apply closes every vendor ticket (exit 0); the list shows the closeout done, and
    the Markdown report counts completed versus cancelled with the KPIs."""
    tickets = link_tickets(site, 3)
    result = site.cli(
        "closeout",
        "ACME",
        "--apply",
        "--complete",
        tickets[0].ref.id,
        "--client-name",
        "Acme Dental",
        "--timeout",
        "20s",
        "--poll-every",
        "100ms",
        "--format",
        "json",
    )
    assert 0 == result.exit_code, result.output
    assert "closeout of ACME is done" in result.stderr
    statuses = sorted(t.status for t in site.h.vendor.world.tickets.values())
    assert ["Canceled", "Canceled", "Resolved"] == statuses
    notes = [n.text for ns in site.h.vendor.world.notes.values() for n in ns]
    assert 3 == sum("Acme Dental has ended its service with Fake" in n for n in notes)

    listed = json.loads(site.cli("closeout", "list", "--format", "json").stdout)
    assert 1 == len(listed)
    assert ("done", 3, 3, 0) == (
        listed[0]["state"],
        listed[0]["tickets"],
        listed[0]["confirmed"],
        listed[0]["open"],
    )

    md = site.cli("closeout", "report", "ACME", "--format", "md")
    assert 0 == md.exit_code, md.output
    text = md.stdout
    assert "| Tickets completed | 1 |" in text
    assert "| Tickets cancelled | 2 |" in text
    assert "| Vendor tickets closed | 3 |" in text
    assert "Nothing: every vendor ticket is closed." in text
    assert "| Deactivation issues | 0 |" in text
    # one client, closed out: retention 0 %, nobody came back yet
    assert "| Client retention rate | 0.0 % (0 of 1 clients never closed out) |" in text
    assert "| Client return rate | 0.0 % (0 of 1 closed-out clients came back) |" in text
    assert "Outage 0 <b>bold</b> \\| piped" in text  # the pipe cannot break the table


def test_a_refusing_vendor_fails_the_run_naming_the_ticket(site: Site, tmp_path: Path) -> None:
    """The vendor answers 403 to one ticket's status write: exit 1, the ticket and the
    vendor's error named; the HTML report (escaped) lists it as open and as an issue."""
    link_tickets(site, 2)
    refused = sorted(site.h.vendor.world.tickets)[1]
    site.servers["vendor"].app.state.faults.add(  # type: ignore[attr-defined]
        [
            {
                "method": "PATCH",
                "path": f"/api/tickets/{refused}$",
                "status": 403,
                "body": {"error": "state is read-only for this user"},
                "count": None,
            }
        ]
    )
    result = site.cli("closeout", "ACME", "--apply", "--timeout", "20s", "--poll-every", "100ms")
    assert 1 == result.exit_code, result.output
    assert "closeout of ACME is not done" in result.stderr
    psa_ticket = next(
        t.ref.id
        for t in site.h.psa.world.tickets.values()
        if t.external_ref == site.h.vendor.world.tickets[refused].ref.number
    )
    assert re.search(rf"PSA ticket {psa_ticket} \(vendor V\d+\): .*403", result.stderr)

    out = tmp_path / "report.html"
    html = site.cli("closeout", "report", "ACME", "--format", "html", "--output", str(out))
    assert 0 == html.exit_code, html.output
    page = out.read_text()
    assert "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert 'id="still-open"' in page
    assert 'id="issues"' in page
    assert "403" in page.split('id="still-open"')[1]
    assert "<tr><td>Tickets completed</td><td>0</td></tr>" in page
    assert "<tr><td>Tickets cancelled</td><td>1</td></tr>" in page
    listed = json.loads(site.cli("closeout", "list", "--format", "json").stdout)
    assert ("closing", 1) == (listed[0]["state"], listed[0]["open"])
    bad = site.cli("closeout", "list", "--state", "nope")
    assert 2 == bad.exit_code


def test_beside_a_daemon_on_sqlite_the_daemon_sends(site: Site) -> None:
    """On an SQLite store a running daemon holds the writer's lock: the command queues the
    closing writes and waits, sending nothing itself; once the daemon sent them, running it
    again confirms and finishes, with one note per vendor ticket."""
    link_tickets(site, 2)
    daemon = Store(site.h.store.url.render_as_string(hide_password=False))
    daemon.lock_single_writer()
    try:
        before = site.requests("vendor")
        waiting = site.cli("closeout", "ACME", "--apply", "--timeout", "1s")
        assert 1 == waiting.exit_code, waiting.output
        assert "the daemon is running on this store" in waiting.stderr
        assert "being sent" in waiting.stderr
        assert before == site.requests("vendor")  # nothing sent by the command
        # the daemon's dispatcher, its clock where the command queued the writes
        site.h.clock.set(utcnow() + timedelta(seconds=1))
        asyncio.run(site.h.engine.dispatch_once())
        asyncio.run(site.h.engine.dispatch_once())
        done = site.cli("closeout", "ACME", "--apply", "--timeout", "10s")
        assert 0 == done.exit_code, done.output
    finally:
        daemon.close()
    notes = [n.text for ns in site.h.vendor.world.notes.values() for n in ns]
    assert 2 == sum("ended its service" in n for n in notes)
