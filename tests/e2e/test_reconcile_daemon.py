"""The daemon's scheduled reconcile, as a subprocess against the simulators: a ConnectWise
callback that is never delivered, with polls an hour apart, still gets its note to the
vendor, once, and the recovery is counted."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from tests.e2e.scenario import metric, open_and_link
from ticketbridge.demo import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

NOTE = "Client: still offline after the router reboot."


async def test_scheduled_reconcile_recovers_a_dropped_callback(sims, daemon_factory, actors):
    """Linked through webhooks; then the PSA's callbacks stop reaching the daemon and the
    next poll is an hour away: the reconcile (every 2 s) mirrors the note, once."""
    cw, _sn, admin = actors
    d = daemon_factory(webhooks=True, poll="1h")
    data = yaml.safe_load(d.config_path.read_text())
    data["reconcile"] = {"every": "2s", "grace": "0s"}
    d.config_path.write_text(yaml.safe_dump(data))
    await asyncio.to_thread(d.start)
    p = await open_and_link(cw, admin)
    sims.cw_state.callbacks.clear()  # every later ConnectWise callback is lost
    await asyncio.sleep(2)  # a callback already on its way (our write-back's) lands first
    announced = metric(d.metrics(), "ticketbridge_webhooks_total", system="cw")
    await cw.add_note(p.ticket_id, NOTE, internal=False)

    async def at_vendor() -> bool:
        return any(NOTE in e["value"] for e in await admin.journal(p.sys_id))

    await wait_for(at_vendor, "the note at the vendor through the reconcile", 30)
    await asyncio.sleep(4.5)  # two more runs: nothing more to recover, nothing sent twice
    copies = [e for e in await admin.journal(p.sys_id) if NOTE in e["value"]]
    text = d.metrics()
    assert 1 == len(copies)
    assert announced == metric(text, "ticketbridge_webhooks_total", system="cw")
    assert 1.0 == metric(text, "ticketbridge_reconcile_recovered_total", system="cw", kind="note")
    assert metric(text, "ticketbridge_changes_seen_total", system="cw", trigger="reconcile") >= 1
    d.stop()
    assert [0] == d.exits
