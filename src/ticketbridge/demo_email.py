"""``ticketbridge demo --vendor email``: the incident with an ISP reached only by e-mail.

ConnectWise PSA is its simulator; the ISP is a mailbox.  ticketbridge sends over SMTP to a
mail server on 127.0.0.1 (the built-in one, aiosmtpd, delivering into a Maildir) and reads
the ISP's answers from that Maildir.  The ISP's desk (:class:`MailVendor`) acknowledges with
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
from ticketbridge.demo import (
    DEMO_SPEED,
    Timeline,
    clock_line,
    first_line,
    free_port,
    lessons_learned,
    render_config,
    wait_for,
)

__all__ = ["play_email"]

US = "noc@msp.example"
SUPPORT = "support@isp.example"
ESCALATIONS = "escalations@isp.example"
MANAGER = "account.manager@isp.example"
CASE = "CS0048151"
WHERE = "ISP (e-mail)"


def email_config(base: dict[str, Any], smtp_port: int, maildir: Path) -> dict[str, Any]:
    """The demo's configuration with the ISP by e-mail in place of ServiceNow."""
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
            "inbound": {"maildir": str(maildir)},
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
    from ticketbridge.adapters.email.mailserver import MailServer
    from ticketbridge.clock import ScaledClock
    from ticketbridge.daemon import Daemon
    from ticketbridge.sandbox.server import SandboxServer

    began = time.monotonic()
    clock = ScaledClock(DEMO_SPEED)
    tl = Timeline(clock=clock)
    maildir = tmp / "Maildir"
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
        base = render_config(
            db_path=str(db),
            daemon_port=str(port),
            cw_url=cw_server.url,
            sn_url="http://127.0.0.1:9",
            sn_token="unused-token-unused",  # noqa: S106 - the ServiceNow part is replaced
            acme_sys_id="unused",
            caller_sys_id="unused",
        )
        config = load_config(email_config(base, smtp.port, maildir))
        await cw.register_callback(f"http://127.0.0.1:{port}/webhooks/cw?recordId=")
        console.print(
            f"[bold]ticketbridge demo, vendor by e-mail[/] — ConnectWise PSA simulator "
            f"{cw_server.url}, mail server 127.0.0.1:{smtp.port} delivering into {maildir}, "
            f"daemon on 127.0.0.1:{port}, store {db}. Time runs {DEMO_SPEED:.0f}x faster."
        )
        daemon = Daemon(config, clock=clock)
        daemon_task = asyncio.create_task(daemon.run(stop))
        await asyncio.wait_for(daemon.started.wait(), timeout=15)
        tl.add(
            "ticketbridge",
            "daemon started: ConnectWise by webhooks and polling, the ISP's mailbox polled; "
            "contract 'Acme ISP critical incidents' (urgent: acknowledge in 15m)",
        )

        # 1. A P1 at the service desk; the tiers run out; the ISP is engaged by mail.
        ticket = await cw.open_ticket(
            summary="Internet down at main office - ISP circuit",
            description="Since 08:40 the main office has no internet. Modem shows no sync.",
            board="Service Desk",
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 1 - Emergency Response",
        )
        tid = ticket["id"]
        tl.add("ConnectWise PSA", f"#{tid} opened on Service Desk (Tier 1), Priority 1")

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

        async def written_back() -> str | None:
            value = (await cw.ticket(tid)).get("externalXRef")
            return str(value) if value == CASE else None

        await wait_for(written_back, "the case number in the PSA ticket")
        tl.add("ConnectWise PSA", f"#{tid} externalXRef = {CASE}")

        # 3. A public note goes to the ISP by mail; an internal one stays in the PSA.
        await cw.add_note(
            tid, "Client reports 40 users offline; please treat as critical.", internal=False
        )
        await cw.add_note(tid, "Internal: client is on a month-to-month contract.", internal=True)

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
        async def breach_note() -> str | None:
            for note in await cw.notes(tid):
                if "Supplier SLA BREACHED" in note["text"]:
                    return str(note["text"])
            return None

        flagged = await wait_for(breach_note, "the breach flag in the PSA", 40)
        tl.add("ConnectWise PSA", first_line(flagged, 160))

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

        async def verify_status() -> str | None:
            name = str((await cw.ticket(tid))["status"]["name"])
            return name if name == "Vendor Resolved - Verify with Client" else None

        status = await wait_for(verify_status, "the PSA status change")
        tl.add("ConnectWise PSA", f"#{tid} status -> {status}")

        # 8. Closed after verification: lessons learned (the ISP breached its target).
        await cw.set_status(tid, "Closed")
        tl.add("ConnectWise PSA", f"John Smith verifies with the client and closes #{tid}")
        summary = await wait_for(lambda: lessons_learned(daemon), "the lessons-learned record")
        tl.add("ticketbridge", f"rule lessons-learned: record opened: {summary}")
        sent = len(isp.received()) + len(isp.received(ESCALATIONS))
    finally:
        stop.set()
        if daemon_task is not None:
            await asyncio.wait_for(daemon_task, timeout=15)
        await cw.aclose()
        cw_server.stop()
        smtp.stop()
    console.print(tl.render())
    elapsed = time.monotonic() - began
    console.print(
        f"[bold green]demo complete[/] in {elapsed:.1f}s — {sent} mails reached the ISP; "
        "every step was seen in the PSA and the mailbox."
    )
    return 0
