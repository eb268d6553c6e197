"""Supplier SLA clocks wired into the engine: flags in the PSA, exactly once, from source times."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.harness import SLA, Harness
from ticketbridge.clock import FakeClock
from ticketbridge.domain import StatusClass, Visibility
from ticketbridge.store import Store
from ticketbridge.store.tables import breach_investigations, sla_clocks, sla_flags

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def flags(store: Store) -> list[tuple[str, str, int]]:
    with store.tx() as c:
        rows = c.execute(sa.select(sla_flags).order_by(sla_flags.c.id))
        return [(r.metric, r.kind, r.level) for r in rows]


def psa_notes(h: Harness, ticket_id: str) -> list[str]:
    return [n.text for n in h.psa.world.notes[ticket_id]]


async def linked(h: Harness) -> tuple[str, str]:
    t = h.psa_ticket()
    await h.settle()
    return t.ref.id, h.link().vendor_ticket_id


class TestBreach:
    async def test_ack_breach_flagged_in_psa_once_with_no_new_event(self, store: Store):
        """With the vendor silent, the sweep flags 50 %, 75 % and the breach of the 15-minute
        acknowledgment target within a tick, each once, with a note and an investigation."""
        h = Harness.build(store, sla_config=SLA)
        tid, _ = await linked(h)
        h.clock.advance(timedelta(minutes=8))
        await h.engine.sla_sweep()
        assert flags(store) == [("acknowledgment", "at_risk", 50)]
        h.clock.advance(timedelta(minutes=8))  # 16 min: past 75 % and the deadline
        await h.engine.sla_sweep()
        await h.settle()
        for _ in range(3):
            await h.engine.sla_sweep()
        got = flags(store)
        assert got == [
            ("acknowledgment", "at_risk", 50),
            ("acknowledgment", "at_risk", 75),
            ("acknowledgment", "breach", 100),
        ]
        notes = psa_notes(h, tid)
        breach = [n for n in notes if "BREACHED" in n]
        assert len(breach) == 1
        assert "acknowledgment target of 15m (calendar time" in breach[0]
        assert "Vendor's last action: nothing since the ticket was opened" in breach[0]
        assert all(n.visibility is Visibility.INTERNAL for n in h.psa.world.notes[tid])
        with store.tx() as c:
            inv = c.execute(sa.select(breach_investigations)).all()
        assert len(inv) == 1
        assert (inv[0].metric, inv[0].state) == ("acknowledgment", "open")
        assert inv[0].elapsed_seconds >= 15 * 60

    async def test_public_comment_acknowledges_in_time(self, store: Store):
        """A vendor public comment inside the target stops the acknowledgment clock: no breach."""
        h = Harness.build(store, sla_config=SLA)
        _, vid = await linked(h)
        h.clock.advance(timedelta(minutes=5))
        h.vendor_note(vid, "Looking into it.", Visibility.PUBLIC)
        await h.settle()
        h.clock.advance(timedelta(minutes=20))
        await h.engine.sla_sweep()
        assert not any(m == "acknowledgment" and k == "breach" for m, k, _ in flags(store))

    async def test_work_note_is_not_an_acknowledgment(self, store: Store):
        """A private work note is not the vendor's first public response."""
        h = Harness.build(store, sla_config=SLA)
        _, vid = await linked(h)
        h.clock.advance(timedelta(minutes=5))
        h.vendor_note(vid, "internal only", Visibility.INTERNAL)
        await h.settle()
        h.clock.advance(timedelta(minutes=11))
        await h.engine.sla_sweep()
        assert ("acknowledgment", "breach", 100) in flags(store)

    async def test_breach_psa_status_is_set(self, store: Store):
        """A configured breach status and tag field are set on the PSA ticket, and only notes
        that were asked for are written."""
        h = Harness.build(
            store,
            sla_config=SLA,
            sla={
                "breach_psa_status": "Vendor SLA Breached",
                "note_at_risk": False,
                "breach_psa_fields": {"sla_flag": "breached"},
            },
        )
        tid, _ = await linked(h)
        h.clock.advance(timedelta(minutes=16))
        await h.engine.sla_sweep()
        await h.settle()
        assert h.psa.world.tickets[tid].status == "Vendor SLA Breached"
        assert h.psa.world.tickets[tid].fields.get("sla_flag") == "breached"
        notes = psa_notes(h, tid)
        assert sum("BREACHED" in n for n in notes) == 1
        assert sum("at risk" in n for n in notes) == 0


class TestPause:
    async def test_ball_with_msp_pauses_the_vendor_clock(self, store: Store):
        """On Hold awaiting the caller pauses the vendor's clock; the time does not count."""
        h = Harness.build(store, sla_config=SLA)
        _, vid = await linked(h)
        h.clock.advance(timedelta(minutes=5))
        h.vendor.world.change(vid, status="On Hold", status_class=StatusClass.WAITING_ON_CUSTOMER)
        await h.settle()
        h.clock.advance(timedelta(hours=2))  # the MSP sits on it: not the vendor's time
        await h.engine.sla_sweep()
        assert not any(k == "breach" for _, k, _ in flags(store))
        h.vendor.world.change(vid, status="In Progress", fields={})
        await h.settle()
        h.clock.advance(timedelta(minutes=9))  # 5 + 9 = 14 vendor minutes
        await h.engine.sla_sweep()
        assert not any(k == "breach" for _, k, _ in flags(store))
        h.clock.advance(timedelta(minutes=2))  # 16 vendor minutes
        await h.engine.sla_sweep()
        assert ("acknowledgment", "breach", 100) in flags(store)


class TestBallByClass:
    async def test_waiting_on_a_third_party_keeps_the_vendor_clock_running(self, store: Store):
        """The same vendor status waiting on the vendor's own supplier is the vendor's time;
        without ball rules, the status class alone decides."""
        sla = {k: v for k, v in SLA.items() if k != "ball"}
        h = Harness.build(store, sla_config=sla)
        _, vid = await linked(h)
        h.clock.advance(timedelta(minutes=5))
        h.vendor.world.change(
            vid, status="On Hold", status_class=StatusClass.WAITING_ON_THIRD_PARTY
        )
        await h.settle()
        h.clock.advance(timedelta(minutes=11))  # 16 vendor minutes
        await h.engine.sla_sweep()
        assert ("acknowledgment", "breach", 100) in flags(store)

    async def test_waiting_on_the_customer_pauses_without_ball_rules(self, store: Store):
        """Waiting on the customer (the MSP) pauses the vendor's clock by class alone."""
        sla = {k: v for k, v in SLA.items() if k != "ball"}
        h = Harness.build(store, sla_config=sla)
        _, vid = await linked(h)
        h.clock.advance(timedelta(minutes=5))
        h.vendor.world.change(vid, status="On Hold", status_class=StatusClass.WAITING_ON_CUSTOMER)
        await h.settle()
        h.clock.advance(timedelta(hours=2))
        await h.engine.sla_sweep()
        assert not any(k == "breach" for _, k, _ in flags(store))


class TestRestart:
    async def test_breach_flagged_once_across_restarts_and_outages(self, store: Store):
        """A daemon that was down when the breach happened flags it once on its first sweep;
        a second daemon on the same store does not flag it again."""
        clock = FakeClock()
        h = Harness.build(store, sla_config=SLA, clock=clock)
        tid, _ = await linked(h)
        clock.advance(timedelta(hours=1))  # "down" for an hour: no sweeps
        again = Harness.build(store, sla_config=SLA, clock=clock)
        again.psa, again.vendor = h.psa, h.vendor
        again.engine.adapters.update({"psa": h.psa, "vendor": h.vendor})
        await again.engine.sla_sweep()
        await again.engine.sla_sweep()
        third = Harness.build(store, sla_config=SLA, clock=clock)
        third.engine.adapters.update({"psa": h.psa, "vendor": h.vendor})
        await third.engine.sla_sweep()
        await third.settle()
        got = [f for f in flags(store) if f[1] == "breach"]
        assert sum(1 for f in got if f[0] == "acknowledgment") == 1
        assert sum("BREACHED" in n and "acknowledgment" in n for n in psa_notes(h, tid)) == 1

    async def test_repair_equals_live(self, store: Store):
        """Recomputing every clock from history gives the stored live checkpoints."""
        h = Harness.build(store, sla_config=SLA)
        _, vid = await linked(h)
        h.clock.advance(timedelta(minutes=3))
        h.vendor_note(vid, "ack", Visibility.PUBLIC)
        await h.settle()
        h.clock.advance(timedelta(minutes=7))
        h.vendor.world.change(vid, status="On Hold", status_class=StatusClass.WAITING_ON_CUSTOMER)
        await h.settle()
        h.clock.advance(timedelta(minutes=40))
        h.vendor.world.change(vid, status="In Progress", fields={})
        await h.settle()
        with store.tx() as c:
            live = c.execute(sa.select(sla_clocks.c.state)).scalar_one()
        assert h.engine.sla_repair() == 1
        with store.tx() as c:
            repaired = c.execute(sa.select(sla_clocks.c.state)).scalar_one()
        assert live == repaired


class TestScorecard:
    async def _history(self, store: Store) -> Harness:
        h = Harness.build(store, sla_config=SLA)
        for i in range(3):
            t = h.psa_ticket(f"incident {i}")
            await h.settle()
            vid = next(
                link.vendor_ticket_id
                for link in self._links(store)
                if link.psa_ticket_id == t.ref.id
            )
            h.clock.advance(timedelta(minutes=5 if i < 2 else 20))  # the third one is late
            h.vendor_note(vid, "On it.", Visibility.PUBLIC)
            await h.settle()
            h.clock.advance(timedelta(minutes=10))
            h.vendor.world.change(vid, status="Resolved")
            await h.settle()
        await h.engine.sla_sweep()
        return h

    @staticmethod
    def _links(store: Store) -> list:
        from ticketbridge.store import repo

        with store.tx() as c:
            return repo.list_links(c)

    async def test_scorecard_rows_and_formats(self, store: Store):
        """Per vendor and priority: tickets, ack median/p90, compliance, breaches; CSV, JSON
        and a self-contained HTML page with SVG charts."""
        import json

        from ticketbridge.report import collect, render_csv, render_html, render_json

        h = await self._history(store)
        now = h.clock.now()
        report = collect(store, h.engine.config, since=now - timedelta(days=1), now=now)
        row = next(r for r in report.rows if r.priority == "1")
        assert (row.vendor, row.tickets) == ("vendor", 3)
        # the settle loop moves the clock a few seconds while the vendor ticket opens
        assert row.ack_median is not None
        assert timedelta(minutes=5) <= row.ack_median < timedelta(minutes=5, seconds=10)
        assert row.breach_count == 1
        assert round(200 / 3, 1) == round(row.compliance_pct or 0, 1)
        assert 5.0 <= row.breach_minutes < 5.2
        data = json.loads(render_json(report))
        first = next(r for r in data["rows"] if r["priority"] == "1")
        assert row.ack_median.total_seconds() == first["ack_median_seconds"]
        csv_text = render_csv(report)
        assert csv_text.splitlines()[0].startswith("vendor,priority,tickets")
        page = render_html(report)
        assert page.count("<svg") == 3
        assert "src=" not in page
        assert "<script" not in page
        assert "vendor P1" in page

    async def test_filters(self, store: Store):
        """--vendor and --client narrow the scorecard."""
        from ticketbridge.report import collect

        h = await self._history(store)
        now = h.clock.now()
        assert (
            collect(
                store, h.engine.config, since=now - timedelta(days=1), now=now, client="GLOBEX"
            ).rows
            == []
        )
        assert (
            collect(
                store, h.engine.config, since=now - timedelta(days=1), now=now, vendor="other"
            ).rows
            == []
        )


class TestLinksCommand:
    async def test_links_list_shows_tickets_states_and_breaches(self, store: Store, tmp_path):
        """`ticketbridge links list` prints each link with both tickets and its SLA breaches."""
        import yaml
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        h = Harness.build(store, sla_config=SLA)
        tid, _ = await linked(h)
        h.clock.advance(timedelta(minutes=16))
        await h.engine.sla_sweep()
        cfg = {
            "store": {"url": store.url.render_as_string(hide_password=False)},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {
                    "name": "main",
                    "psa": "psa",
                    "vendor": "vendor",
                    "routing": {"queues": ["Vendor Escalations"]},
                }
            ],
        }
        path = tmp_path / "tb.yaml"
        path.write_text(yaml.safe_dump(cfg))
        result = CliRunner().invoke(app, ["links", "list", "--config", str(path)])
        assert result.exit_code == 0, result.output
        line = next(x for x in result.output.splitlines() if f" {tid} " in x)
        assert "V00001" in line
        assert "open" in line
        assert line.rstrip(" │").endswith("1")


class TestResolvedBy:
    @pytest.mark.parametrize(
        ("resolved_by", "breached"), [("vendor", True), ("vendor_or_msp", False)]
    )
    async def test_closing_the_psa_ticket_resolves_when_the_contract_says_so(
        self, store: Store, resolved_by: str, breached: bool
    ):
        """An e-mail vendor seldom says "resolved" in words: with ``resolved_by: vendor_or_msp``
        the engineer closing the PSA ticket ends the vendor's resolution clock; with the
        default (``vendor``) the vendor's clock runs on until the vendor resolves."""
        contract = {**SLA["contracts"][0], "resolved_by": resolved_by}
        h = Harness.build(store, sla_config={**SLA, "contracts": [contract]})
        tid, vid = await linked(h)
        h.vendor_note(vid, "Working on it.", Visibility.PUBLIC)  # acknowledged in time
        await h.settle()
        h.clock.advance(timedelta(hours=1))
        h.psa.world.change(tid, status="Closed", status_class=StatusClass.CLOSED)
        await h.settle()
        h.clock.advance(timedelta(hours=4))
        for _ in range(3):
            await h.engine.sla_sweep()
        got = [(m, k) for m, k, _ in flags(store)]
        assert breached == (("resolution", "breach") in got), got
