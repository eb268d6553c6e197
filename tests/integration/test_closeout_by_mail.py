"""Closeout with a vendor reached only by e-mail (a Maildir fed by a real SMTP server on
loopback): the closing mail goes out through the adapter's note path, there is no status to
set, and the closeout waits for the vendor's answer saying the case is closed."""

from __future__ import annotations

import email.policy
from pathlib import Path

import pytest

from tests.integration.test_separate_ticketing import (  # noqa: F401 - the fixture
    CASE,
    VENDOR,
    World,
    mail,
    vendor_writes,
)
from ticketbridge.adapters.email.mailserver import MailServer
from ticketbridge.closeout import Closer, TicketState
from ticketbridge.review import link_to_psa
from ticketbridge.store import Store, repo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def closing_mails(server: MailServer) -> list[str]:
    """The subject and text of every closing mail the vendor got."""
    found = []
    for r in server.received:
        if VENDOR not in r.recipients:
            continue
        msg = email.message_from_bytes(r.raw, policy=email.policy.default)
        body = msg.get_body(("plain",))
        text = f"{msg['Subject']}\n{body.get_content() if body else ''}"
        if "ended its service" in text:
            found.append(text)
    return found


async def test_an_isp_case_is_closed_by_mail_once_the_isp_confirms(
    store: Store,
    mail: tuple[MailServer, Path],  # noqa: F811 - the fixture
) -> None:
    """The closing mail names the case and asks the ISP to close it; until the ISP answers
    the closeout is not done (the case is still the vendor's); once its desk writes that the
    case is closed, running the closeout again finishes it without a second mail."""
    server, maildir = mail
    w = World(store, server, maildir)
    first = vendor_writes(maildir, f"Fibre cut in your area - case {CASE}", "Crews dispatched.")
    ticket = w.psa.world.add_ticket(
        "psa", "Internet down at Acme", queue="Service Desk", status="New", company="ACME"
    )
    await w.settle()
    await link_to_psa(w.config, w.adapters, reference=CASE, psa_ticket=ticket.ref.id)
    await w.settle()

    async def sleep(seconds: float) -> None:
        w.clock.advance(seconds)

    closer = Closer(w.config, store, w.adapters, w.clock, w.engine.dispatch_once, sleep=sleep)
    try:
        outcome = await closer.apply("ACME", client_name="Acme Dental", timeout=1, poll_every=0.1)
        assert not outcome.done
        (row,) = [t.outcome for t in outcome.tickets]
        assert row is not None
        assert TicketState.OPEN.value == row.state
        assert "no confirmation within" in (row.reason or "")
        mails = closing_mails(server)
        assert 1 == len(mails)
        assert CASE in mails[0]
        assert "Acme Dental has ended its service" in mails[0]
        assert "Please close the case and confirm by reply." in mails[0]
        with store.tx() as c:
            to_isp = [r.operation for r in repo.outbox_rows(c) if r.target_system == "isp"]
        assert ["add_note"] == to_isp  # a mail thread has no status to set

        vendor_writes(
            maildir,
            f"Re: case {CASE}",
            "Thank you for letting us know, we are closing this case.",
            in_reply_to=first,
        )
        outcome = await closer.apply("ACME", timeout=5, poll_every=0.1)
        assert outcome.done, outcome.closeout.reason
        assert 1 == len(closing_mails(server))
    finally:
        await w.vendor.aclose()
