"""Separate ticketing end to end in the engine: a vendor reached only by e-mail.

A fake PSA, the e-mail adapter on a Maildir fed by a real SMTP server on loopback
(aiosmtpd), the real engine and store.  A vendor's person writes about a case nobody linked:
it is on the review list, an engineer links it to a PSA ticket, the vendor's mails come over,
a public PSA note goes out by mail with the case number, and the list no longer shows it.
"""

from __future__ import annotations

import copy
import mailbox
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.email import EmailAdapter, EmailSettings
from ticketbridge.adapters.email.mailserver import MailServer
from ticketbridge.adapters.fake import FakeAdapter, FakeSettings, FakeWorld
from ticketbridge.clock import FakeClock, utcnow
from ticketbridge.config import load_config
from ticketbridge.domain import Visibility
from ticketbridge.engine import Engine
from ticketbridge.metrics import Metrics
from ticketbridge.review import ReviewError, link_to_psa, unmatched
from ticketbridge.store import Store, repo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

US = "noc@msp.example"
VENDOR = "support@isp.example"
CASE = "CS0042424"


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[tuple[MailServer, Path]]:
    maildir = tmp_path / "Maildir"
    mailbox.Maildir(maildir, create=True)
    server = MailServer(maildirs={US: maildir}).start()
    try:
        yield server, maildir
    finally:
        server.stop()


def vendor_writes(maildir: Path, subject: str, text: str, in_reply_to: str | None = None) -> str:
    msg = EmailMessage()
    mid = make_msgid(domain="isp.example")
    msg["Message-ID"], msg["Date"] = mid, format_datetime(utcnow())
    msg["From"], msg["To"], msg["Subject"] = VENDOR, US, subject
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(text)
    mailbox.Maildir(maildir, create=False).add(mailbox.MaildirMessage(bytes(msg)))
    return mid


class World:
    def __init__(self, store: Store, server: MailServer, maildir: Path) -> None:
        settings: dict[str, Any] = {
            "smtp": {
                "host": server.host,
                "port": server.port,
                "security": "none",
                "from_address": US,
            },
            "vendor": {"support_address": VENDOR},
            "inbound": {"maildir": str(maildir)},
            "id_domain": "tb.msp.example",
        }
        self.raw: dict[str, Any] = {
            "store": {"url": store.url.render_as_string(hide_password=False)},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "isp": {
                    "kind": "email",
                    "base_url": "https://support.isp.example",
                    "settings": settings,
                },
            },
            "connections": [
                {
                    "name": "isp",
                    "psa": "psa",
                    "vendor": "isp",
                    # the PSA status is the engineer's: the thread's state stays the vendor's
                    "status_map": {
                        "vendor_to_psa": {
                            "sent": None,
                            "acknowledged": None,
                            "waiting on us": None,
                            "waiting on vendor": None,
                            "resolved": None,
                        }
                    },
                }
            ],
        }
        self.config = load_config(copy.deepcopy(self.raw))
        self.clock = FakeClock(utcnow())
        self.psa = FakeAdapter(
            AdapterContext("psa", "http://psa.invalid"),
            FakeSettings(),
            FakeWorld(clock=self.clock.now),
        )
        self.vendor = EmailAdapter(
            AdapterContext("isp", "https://support.isp.example"),
            EmailSettings.model_validate(settings),
        )
        self.adapters = {"psa": self.psa, "isp": self.vendor}
        self.store = store
        self.server = server
        self.engine = Engine(self.config, store, self.adapters, Metrics(), self.clock)

    async def settle(self) -> None:
        for _ in range(8):
            moved = await self.engine.poll("psa")
            moved += await self.engine.poll("isp")
            moved += await self.engine.process_hints()
            moved += await self.engine.dispatch_once()
            self.clock.advance(1)
            if not moved:
                return


async def test_a_vendor_case_from_the_review_list_linked_to_a_psa_ticket(
    store: Store, mail: tuple[MailServer, Path]
) -> None:
    server, maildir = mail
    w = World(store, server, maildir)
    first = vendor_writes(maildir, f"Fibre cut in your area - case {CASE}", "Crews dispatched.")
    ticket = w.psa.world.add_ticket(
        "psa", "Internet down at Acme", queue="Service Desk", status="New", company="ACME"
    )
    await w.settle()
    with store.tx() as c:
        assert [] == repo.list_links(c)  # nobody linked anything yet

    listed = await unmatched(w.config, store, w.adapters)
    assert [("isp", CASE, first)] == [(x.system, x.item.reference, x.item.item_id) for x in listed]
    with pytest.raises(ReviewError, match="has no ticket"):
        await link_to_psa(w.config, w.adapters, reference="CS0000000x", psa_ticket="999")

    conn, label = await link_to_psa(w.config, w.adapters, reference=CASE, psa_ticket=ticket.ref.id)
    assert ("isp", CASE) == (conn.vendor, label)
    vendor_writes(maildir, f"Re: case {CASE}", "Splice expected by 14:00.", in_reply_to=first)
    await w.settle()

    with store.tx() as c:
        (link,) = repo.list_links(c)
        created = [e for e in repo.link_events(c, link.id) if e.kind == "link_created"]
    assert ("manual", f"case{CASE}", CASE) == (
        link.origin,
        link.vendor_ticket_id,
        link.vendor_number,
    )
    assert "manual" == (created[0].detail or {}).get("origin")
    psa_notes = [n.text for n in w.psa.world.notes.get(ticket.ref.id, [])]
    assert any("Splice expected by 14:00." in text for text in psa_notes), psa_notes
    assert [] == await unmatched(w.config, store, w.adapters)  # linked: off the list

    w.psa.world.add_note("psa", ticket.ref.id, "Client's office is offline.", Visibility.PUBLIC)
    await w.settle()
    to_vendor = [r for r in server.received if VENDOR in r.recipients]
    assert 1 == len(to_vendor)
    assert CASE.encode() in to_vendor[0].raw.split(b"\r\n\r\n", 1)[0]  # in the subject
    assert b"Client's office is offline." in to_vendor[0].raw
    await w.settle()
    assert 1 == len([r for r in server.received if VENDOR in r.recipients])  # not twice
    await w.vendor.aclose()


async def test_the_daemon_reads_a_vendor_reply_as_it_lands(
    store: Store, mail: tuple[MailServer, Path], tmp_path: Path
) -> None:
    """The mailbox says when mail arrived (a Maildir's new file; IMAP IDLE): the daemon polls
    the vendor then, not at its next scheduled poll (an hour away here)."""
    import asyncio
    import time

    from ticketbridge.daemon import Daemon
    from ticketbridge.demo import free_port, wait_for

    server, maildir = mail
    w = World(store, server, maildir)
    raw = copy.deepcopy(w.raw)
    raw["server"] = {"host": "127.0.0.1", "port": free_port()}
    raw["systems"]["psa"]["poll_interval"] = 1
    raw["systems"]["isp"]["poll_interval"] = 3600
    config = load_config(raw)
    daemon = Daemon(config)
    psa = daemon.adapters["psa"]
    assert isinstance(psa, FakeAdapter)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.wait_for(daemon.started.wait(), timeout=15)
        ticket = psa.world.add_ticket(
            "psa", "Line down", queue="Service Desk", status="New", external_ref=CASE
        )

        def linked() -> Any:
            with store.tx() as c:
                return repo.list_links(c) or None

        async def is_linked() -> Any:
            return linked()

        await wait_for(is_linked, "the link to the adopted case", 15)
        landed = time.monotonic()
        vendor_writes(maildir, f"Re: case {CASE}", "Technician dispatched.")

        async def in_psa() -> Any:
            notes = psa.world.notes.get(ticket.ref.id, [])
            return [n for n in notes if "Technician dispatched." in n.text] or None

        await wait_for(in_psa, "the vendor's reply in the PSA", 15)
        took = time.monotonic() - landed
        print(f"vendor reply in the mailbox -> PSA note: {took:.2f} s")
        assert took < 10  # the scheduled poll is an hour away
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
