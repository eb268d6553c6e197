"""The demo's incident, played by people through the products' APIs, with checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.demo import wait_for

SUMMARY = "Internet down at main office - ISP circuit"
PUBLIC = "Client reports the office is fully offline; 40 users affected."
INTERNAL = "Internal: client is on a month-to-month contract."
WORK_NOTE = "Line test shows fault at the exchange; dispatching field engineer."
COMMENT = "A field engineer is on the way, ETA 11:30."
VERIFY = "Vendor Resolved - Verify with Client"


@dataclass
class Played:
    ticket_id: int
    sys_id: str
    number: str


async def open_and_link(
    cw: ConnectWiseActor, admin: ServiceNowActor, summary: str = SUMMARY
) -> Played:
    ticket = await cw.open_ticket(
        summary=summary,
        description="No sync on the modem since 08:40.",
        board="Vendor Escalations",
        company="ACME",
        contact="Dana Whitfield",
        priority="Priority 1 - Emergency Response",
    )

    async def incident() -> dict[str, Any] | None:
        rows = await admin.query("incident", f"short_description={summary}")
        return rows[0] if rows else None

    inc = await wait_for(incident, "the ServiceNow incident", 30)

    async def number() -> str | None:
        value = (await cw.ticket(ticket["id"])).get("externalXRef")
        return str(value) if value else None

    await wait_for(number, "the incident number written back", 30)
    return Played(ticket["id"], inc["sys_id"], inc["number"])


async def play_demo(cw: ConnectWiseActor, sn: ServiceNowActor, admin: ServiceNowActor) -> Played:
    """Every step of the demo; returns the ids for the final checks."""
    p = await open_and_link(cw, admin)
    await cw.add_note(p.ticket_id, PUBLIC, internal=False)
    await cw.add_note(p.ticket_id, INTERNAL, internal=True)

    async def comment_arrived() -> bool:
        return any(PUBLIC in e["value"] for e in await admin.journal(p.sys_id))

    await wait_for(comment_arrived, "the public note at the vendor", 30)
    await sn.update(p.sys_id, state="2", work_notes=WORK_NOTE)
    await sn.update(p.sys_id, comments=COMMENT)

    async def both_back() -> bool:
        texts = [n["text"] for n in await cw.notes(p.ticket_id)]
        return any(WORK_NOTE in t for t in texts) and any(COMMENT in t for t in texts)

    await wait_for(both_back, "the vendor's notes in the PSA", 30)
    await sn.update(
        p.sys_id, state="6", close_code="Solved (Permanently)", close_notes="Line card replaced."
    )

    async def verified() -> bool:
        return bool((await cw.ticket(p.ticket_id))["status"]["name"] == VERIFY)

    await wait_for(verified, "the quality-control status in the PSA", 30)
    return p


async def assert_demo_outcome(
    cw: ConnectWiseActor, admin: ServiceNowActor, p: Played, acme_sys_id: str
) -> None:
    """The end state of both systems after the demo incident."""
    incidents = await admin.query("incident", "correlation_display=ticketbridge")
    assert [p.sys_id] == [i["sys_id"] for i in incidents]
    inc = await admin.incident(p.sys_id)
    assert inc["short_description"] == SUMMARY
    assert "No sync on the modem" in inc["description"]
    assert "Acme Dental Group" in inc["description"]
    assert "Dana Whitfield" in inc["description"]
    assert acme_sys_id == inc["company"]
    assert inc["priority"] == "1"
    assert inc["state"] == "6"
    journal = await admin.journal(p.sys_id)
    comments = [e["value"] for e in journal if e["element"] == "comments"]
    work = [e["value"] for e in journal if e["element"] == "work_notes"]
    assert sum(PUBLIC in c for c in comments) == 1
    assert "John Smith" in next(c for c in comments if PUBLIC in c)
    assert not any(INTERNAL in e["value"] for e in journal)
    assert work == [WORK_NOTE]
    ticket = await cw.ticket(p.ticket_id)
    assert p.number == ticket["externalXRef"]
    assert ticket["status"]["name"] == VERIFY
    notes = await cw.notes(p.ticket_id)
    mirrored = [n for n in notes if "[ServiceNow" in n["text"]]
    assert len(mirrored) == 2
    assert all(n["internalAnalysisFlag"] and not n["detailDescriptionFlag"] for n in mirrored)
    assert all("Beth Anglin" in n["text"] for n in mirrored)
    assert sum(WORK_NOTE in n["text"] for n in notes) == 1
    assert sum(COMMENT in n["text"] for n in notes) == 1


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def histogram_quantile(text: str, name: str, q: float) -> float:
    """histogram_quantile() over all label sets of a Prometheus histogram."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}_bucket\{{(.*)\}}\s+(\S+)$", line)
        if not m:
            continue
        le = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))["le"]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(m.group(2))
    bounds = sorted(buckets)
    total = buckets.get(float("inf"), 0.0)
    if total == 0:
        return float("nan")
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            frac = (rank - prev_count) / span if span else 0.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound
