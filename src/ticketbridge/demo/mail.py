"""``ticketbridge demo --vendor email``: the incident with an ISP reached only by e-mail.

ConnectWise PSA is its simulator; the ISP is a mailbox.  ticketbridge sends over SMTP to a
mail server on 127.0.0.1 (the built-in one, aiosmtpd, delivering into the MSP's Maildir) and
reads the ISP's answers over IMAP from a local Dovecot serving that Maildir when Dovecot is
installed (``scripts/mail-up``), from the Maildir itself otherwise.  The ISP's desk (:class:`MailVendor`) acknowledges with
its system's case-number mail, stays silent past the acknowledgment target, answers the
escalation with a question, and resolves.
"""

from __future__ import annotations

import asyncio
import mailbox
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.config import load_config
from ticketbridge.demo.kit import (
    DEMO_SPEED,
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

__all__ = ["play_email"]

US = "noc@msp.example"
SUPPORT = "support@isp.example"
ESCALATIONS = "escalations@isp.example"
MANAGER = "account.manager@isp.example"
CASE = "CS0048151"
WHERE = "ISP (e-mail)"


def email_config(
    base: dict[str, Any], smtp_port: int, maildir: Path, imap: Any | None = None
) -> dict[str, Any]:
    """The demo's configuration with the ISP by e-mail in place of ServiceNow; ``imap``: a
    :class:`LocalDovecot` to read the mailbox from (else the Maildir directly)."""
    inbound: dict[str, Any] = (
        {
            "imap": {
                "host": "127.0.0.1",
                "port": imap.imap_port,
                "security": "none",  # loopback only
                "username": imap.user,
                "password": imap.password,
            }
        }
        if imap is not None
        else {"inbound": {"maildir": str(maildir)}}
    )
    config = dict(base)
    systems = dict(config["systems"])
    systems.pop("snow")
    systems["isp"] = {
        "kind": "email",
        "base_url": "https://support.isp.example",
        "poll_interval": "1s",
        "settings": {
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_address": US,
            },
            "vendor": {
                "support_address": SUPPORT,
                "escalation_address": ESCALATIONS,
                "account_manager": MANAGER,
            },
            **inbound,
            "id_domain": "tb.msp.example",
        },
    }
    config["systems"] = systems
    conn = dict(config["connections"][0])
    conn.pop("accounts", None)
    conn.update(
        name="cw-isp",
        vendor="isp",
        default_account={},  # a mail needs no account fields
        status_map={
            "vendor_to_psa": {
                "sent": None,
                "acknowledged": "Waiting on Vendor",
                "waiting on vendor": "Waiting on Vendor",
                "waiting on us": None,
                "resolved": "Vendor Resolved - Verify with Client",
            }
        },
        priority_map={
            "psa_to_vendor": {
                "Priority 1 - Emergency Response": "urgent",
                "Priority 2 - Quick Response": "high",
                "Priority 3 - Normal Response": "normal",
                "Priority 4 - Low": "low",
            }
        },
    )
    config["connections"] = [conn]
    sla = dict(config["sla"])
    contracts = []
    for contract in sla["contracts"]:
        targets = contract["targets"]
        contracts.append(
            {**contract, "vendor": "isp", "targets": {"urgent": targets["1"], "high": targets["2"]}}
        )
    sla["contracts"] = contracts
    config["sla"] = sla
    return config


async def play_email(console: Console, db: Path, tmp: Path) -> int:
    from ticketbridge.adapters.connectwise import simulator as connectwise
    from ticketbridge.adapters.email.actor import MailVendor
    from ticketbridge.adapters.email.local import (
        DovecotUnavailable,
        missing_dovecot,
        start_local_dovecot,
    )
    from ticketbridge.adapters.email.mailserver import MailServer
    from ticketbridge.clock import ScaledClock
    from ticketbridge.daemon import Daemon
    from ticketbridge.sandbox.server import SandboxServer

    began = time.monotonic()
    dovecot = None
    if missing_dovecot() is None:
        try:
            dovecot = await asyncio.to_thread(start_local_dovecot, US, "demo-imap-password")
        except DovecotUnavailable as exc:
            console.print(f"[yellow]{exc}: the mailbox is read as a Maildir instead[/]")
    clock = ScaledClock(DEMO_SPEED)
    tl = Timeline(clock=clock)
    maildir = dovecot.maildir if dovecot is not None else tmp / "Maildir"
    mailbox.Maildir(maildir, create=True)
    smtp = MailServer(maildirs={US: maildir}, clock=clock.now).start()
    isp = MailVendor(smtp, maildir, support=SUPPORT, us=US, clock=clock.now)
    cw_state = connectwise.ConnectWiseState(clock=clock.now)
    cw_server = SandboxServer(connectwise.create_app(cw_state)).start()
    cw = ConnectWiseActor(cw_server.url)
    stop = asyncio.Event()
    daemon_task: asyncio.Task[None] | None = None

    async def demo_wait(minutes: float) -> None:
        await asyncio.sleep(clock.real_seconds(timedelta(minutes=minutes)))

    try:
        port = free_port()
        base = base_config(db, port, cw_server.url)
        config = load_config(email_config(base, smtp.port, maildir, dovecot))
        engineer = Engineer(cw, tl)
        await cw.register_callback(f"http://127.0.0.1:{port}/webhooks/cw?recordId=")
        reading = (
            f"read over IMAP from Dovecot on 127.0.0.1:{dovecot.imap_port}"
            if dovecot is not None
            else "read from the Maildir (install Dovecot to read it over IMAP)"
        )
        console.print(
            f"[bold]ticketbridge demo, vendor by e-mail[/] — ConnectWise PSA simulator "
            f"{cw_server.url}; SMTP server 127.0.0.1:{smtp.port} delivering into {maildir}, "
            f"{reading}; daemon on 127.0.0.1:{port}, store {db}. "
            f"Time runs {DEMO_SPEED:.0f}x faster."
        )
        daemon = Daemon(config, clock=clock)
        daemon_task = asyncio.create_task(daemon.run(stop))
        await asyncio.wait_for(daemon.started.wait(), timeout=15)
        tl.add(
            "ticketbridge",
            "daemon started: ConnectWise by webhooks and polling, the ISP's mailbox watched "
            "(IMAP IDLE or new files) and polled; "
            "contract 'Acme ISP critical incidents' (urgent: acknowledge in 15m)",
        )

        # 1. A P1 at the service desk; the tiers run out; the ISP is engaged by mail.
        tid = await engineer.open_p1("Service Desk")

        async def on_vendor_board() -> str | None:
            board = (await cw.ticket(tid))["board"]["name"]
            return str(board) if board == "Vendor Escalations" else None

        await wait_for(on_vendor_board, "the move to the vendor tier", 30)
        tl.add("ticketbridge", "rules p1-to-tier-2, p1-engage-vendor: Tier 2, then the vendor tier")

        def opening() -> Any:
            got = [m for m in isp.received() if m["X-Ticketbridge-Op"] == "create"]
            return got[0] if got else None

        async def mailed() -> Any:
            return opening()

        case_mail = await wait_for(mailed, "the mail opening the case at the ISP")
        assert "Dana Whitfield" in case_mail.get_content()
        tl.add(
            WHERE,
            f'{SUPPORT} received "{case_mail["Subject"]}" (X-Priority {case_mail["X-Priority"]})',
        )

        # 2. The ISP's ticketing system answers with its case number (an automatic mail).
        isp.answer(
            case_mail,
            f"Your case {CASE} has been created. Please keep the number in the subject.",
            sender="noreply@isp.example",
            subject=f"Case {CASE} created",
            automatic=True,
        )
        tl.add(WHERE, f"automatic reply: case {CASE} created (not an acknowledgment by a person)")

        await engineer.sees_number(tid, CASE, "the case number")

        # 3. A public note goes to the ISP by mail; an internal one stays in the PSA.
        await engineer.writes_public_and_internal(
            tid,
            "Client reports 40 users offline; please treat as critical.",
            "Internal: client is on a month-to-month contract.",
        )

        async def note_mailed() -> Any:
            got = [m for m in isp.received() if "40 users offline" in m.get_content()]
            return got[0] if got else None

        note_mail = await wait_for(note_mailed, "the public note mailed to the ISP")
        assert CASE in str(note_mail["Subject"])
        assert not any("month-to-month" in m.get_content() for m in isp.received())
        subject = " ".join(str(note_mail["Subject"]).split())
        tl.add(WHERE, f'received "{subject}" (the internal note stayed in the PSA)')
        await demo_wait(2)
        tl.add("ticketbridge", clock_line(daemon, clock))

        # 4. Nobody at the ISP answers: the acknowledgment target is breached; escalation.
        flagged = await engineer.sees_breach(tid, 40)
        tl.add(PSA, first_line(flagged, 160))

        async def escalation() -> Any:
            got = isp.received(ESCALATIONS)
            return got[0] if got else None

        escalated = await wait_for(escalation, "the escalation mail", 20)
        tl.add(
            WHERE,
            f"rule vendor-ack-breach: {ESCALATIONS} (cc {escalated['Cc']}) received "
            f'"{escalated["Subject"]}"',
        )

        # 5. A person at the ISP answers the escalation, asking something: ball with the MSP.
        isp.answer(
            escalated,
            "Apologies for the delay: an engineer is assigned now. Can you confirm the circuit ID?",
            sender="beth.anglin@isp.example",
        )
        tl.add(WHERE, "Beth Anglin answers the escalation and asks for the circuit ID")

        async def question_in_psa() -> str | None:
            for note in await cw.notes(tid):
                if "circuit ID?" in note["text"] and note["internalAnalysisFlag"]:
                    return str(note["text"])
            return None

        await wait_for(question_in_psa, "the ISP's question in the PSA")
        tl.add(
            "ConnectWise PSA",
            "internal note from beth.anglin@isp.example (quoted history stripped)",
        )
        tl.add("ticketbridge", clock_line(daemon, clock))

        # 6. The engineer answers; the mail carries the case number.
        await cw.add_note(tid, "Circuit ID is ACME-NY-0042.", internal=False)

        async def answer_mailed() -> Any:
            got = [m for m in isp.received() if "ACME-NY-0042" in m.get_content()]
            return got[0] if got else None

        answer = await wait_for(answer_mailed, "the answer mailed to the ISP")
        tl.add(WHERE, f'received "{" ".join(str(answer["Subject"]).split())}"')

        # 7. The ISP resolves by mail; the PSA ticket moves to verification.
        isp.answer(
            answer,
            "The line card at the exchange was replaced and sync is restored. "
            "This case has been resolved.",
            sender="beth.anglin@isp.example",
        )
        tl.add(WHERE, "Beth Anglin: line card replaced, the case has been resolved")

        await engineer.sees_status(tid, VERIFY)

        # 8. Closed after verification: lessons learned (the ISP breached its target).
        await engineer.closes(tid, daemon)
        sent = len(isp.received()) + len(isp.received(ESCALATIONS))
    finally:
        stop.set()
        if daemon_task is not None:
            await asyncio.wait_for(daemon_task, timeout=15)
        await cw.aclose()
        cw_server.stop()
        smtp.stop()
        if dovecot is not None:
            await asyncio.to_thread(dovecot.stop)
    console.print(tl.render())
    elapsed = time.monotonic() - began
    console.print(
        f"[bold green]demo complete[/] in {elapsed:.1f}s — {sent} mails reached the ISP; "
        "every step was seen in the PSA and the mailbox."
    )
    return 0
