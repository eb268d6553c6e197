"""The daemon as a subprocess: the demo scenario through webhooks and through polling alone,
crash recovery, graceful stop, bad webhooks and vendor faults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import httpx
import pytest
import yaml

from tests.e2e.conftest import TOKEN
from tests.e2e.scenario import (
    COMMENT,
    PUBLIC,
    assert_demo_outcome,
    histogram_quantile,
    metric,
    open_and_link,
    play_demo,
)
from ticketbridge.demo import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


class TestDemoScenario:
    async def test_through_webhooks(self, sims, daemon_factory, actors):
        """With polls an hour apart, webhooks alone carry the whole demo incident."""
        cw, sn, admin = actors
        d = daemon_factory(webhooks=True, poll="1h").start()
        p = await play_demo(cw, sn, admin)
        await assert_demo_outcome(cw, admin, p, sims.acme_sys_id)
        text = d.metrics()
        assert metric(text, "ticketbridge_changes_seen_total", trigger="webhook") > 0
        assert metric(text, "ticketbridge_changes_seen_total", trigger="poll") == 0
        p50 = histogram_quantile(text, "ticketbridge_mirror_latency_seconds", 0.5)
        p99 = histogram_quantile(text, "ticketbridge_mirror_latency_seconds", 0.99)
        print(f"\nmirror latency via webhooks: p50={p50:.2f}s p99={p99:.2f}s")
        assert d.stop() < 10
        assert d.exits == [0]

    async def test_through_polling_alone(self, sims, daemon_factory, actors):
        """With no webhook registered, polling alone carries the whole demo incident."""
        cw, sn, admin = actors
        d = daemon_factory(webhooks=False, poll="1s").start()
        p = await play_demo(cw, sn, admin)
        await assert_demo_outcome(cw, admin, p, sims.acme_sys_id)
        text = d.metrics()
        assert metric(text, "ticketbridge_changes_seen_total", trigger="webhook") == 0
        assert metric(text, "ticketbridge_changes_seen_total", trigger="poll") > 0
        p50 = histogram_quantile(text, "ticketbridge_mirror_latency_seconds", 0.5)
        p99 = histogram_quantile(text, "ticketbridge_mirror_latency_seconds", 0.99)
        print(f"\nmirror latency via polling (1s): p50={p50:.2f}s p99={p99:.2f}s")
        d.stop()
        assert d.exits == [0]


class TestCrash:
    async def test_kill_between_send_and_commit_gives_one_copy(self, sims, daemon_factory, actors):
        """kill -9 after a note reached the vendor and before it was recorded: after a
        restart every note is at the vendor exactly once, none lost."""
        cw, _sn, admin = actors
        d = daemon_factory(webhooks=True, poll="1s")
        d.start(fault="after_send:add_note:2")
        p = await open_and_link(cw, admin)
        texts = [f"{PUBLIC} #{i}" for i in range(4)]
        for text in texts:
            await cw.add_note(p.ticket_id, text, internal=False)
        assert await asyncio.to_thread(d.wait_killed) == -9
        d.start()

        async def all_there() -> bool:
            journal = await admin.journal(p.sys_id)
            return all(any(t in e["value"] for e in journal) for t in texts)

        await wait_for(all_there, "every note at the vendor after the restart", 30)
        await asyncio.sleep(2.5)  # a few more polls: nothing may be sent twice
        journal = [e["value"] for e in await admin.journal(p.sys_id)]
        assert [sum(t in v for v in journal) for t in texts] == [1, 1, 1, 1]
        assert '"found_existing": true' in d.logs()
        d.stop()

    async def test_kill_after_create_gives_one_incident(self, sims, daemon_factory, actors):
        """kill -9 after the vendor ticket was created and before it was recorded: the
        restart finds it by correlation instead of opening a second one."""
        cw, _sn, admin = actors
        d = daemon_factory(webhooks=True, poll="1s")
        d.start(fault="after_send:create_ticket")
        await cw.open_ticket(
            summary="Crash during create",
            description="x",
            board="Vendor Escalations",
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 2 - Quick Response",
        )
        assert await asyncio.to_thread(d.wait_killed) == -9
        d.start()

        async def written_back() -> str | None:
            tickets = await cw.http.get(
                "/service/tickets", params={"conditions": 'summary="Crash during create"'}
            )
            value = tickets.json()[0].get("externalXRef")
            return str(value) if value else None

        number = await wait_for(written_back, "the incident number written back", 30)
        await asyncio.sleep(2.5)
        rows = await admin.query("incident", "short_description=Crash during create")
        assert [number] == [r["number"] for r in rows]
        assert '"found_existing": true' in d.logs()
        d.stop()


class TestLifecycle:
    async def test_sigterm_exits_zero_quickly(self, daemon_factory):
        """SIGTERM stops the daemon cleanly (exit 0) well within 10 seconds."""
        d = daemon_factory(webhooks=False).start()
        took = d.stop()
        assert d.exits == [0]
        assert took < 10

    async def test_readyz_reports_a_down_vendor(self, sims, daemon_factory):
        """/readyz is 503 naming the system whose polls fail, and 200 again after."""
        d = daemon_factory(webhooks=False, poll="1s").start()
        httpx.post(
            sims.sn.url + "/_sandbox/faults",
            json={
                "method": "GET",
                "path": "/api/now/table/incident$",
                "status": 503,
                "count": 1000,
            },
        ).raise_for_status()

        async def not_ready() -> dict | None:
            r = httpx.get(d.url + "/readyz", timeout=5)
            return r.json() if r.status_code == 503 else None

        body = await wait_for(not_ready, "/readyz to notice", 20)
        assert body["systems"]["snow"]["ok"] is False
        assert body["systems"]["cw"]["ok"] is True
        httpx.delete(sims.sn.url + "/_sandbox/faults").raise_for_status()

        async def ready() -> bool:
            return httpx.get(d.url + "/readyz", timeout=5).status_code == 200

        await wait_for(ready, "/readyz to recover", 20)
        d.stop()


class TestBadWebhooks:
    async def test_forged_and_malformed_webhooks_change_nothing(self, sims, daemon_factory):
        """Wrong or missing secrets get 401, malformed bodies 400; nothing is stored."""
        d = daemon_factory(webhooks=False, poll="1h").start()
        url = d.url + "/webhooks/snow"
        body = b'{"table":"incident","sys_id":"' + b"a" * 32 + b'"}'
        assert httpx.post(url, content=body).status_code == 401
        assert (
            httpx.post(
                url, content=body, headers={"X-Ticketbridge-Token": "forged-token-7781"}
            ).status_code
            == 401
        )
        assert (
            httpx.post(
                url, content=b"{not json", headers={"X-Ticketbridge-Token": TOKEN}
            ).status_code
            == 400
        )
        cw_body = b'{"Type":"Ticket","ID":1,"Metadata":{"key_url":"http://169.254.169.254/k"}}'
        forged = base64.b64encode(
            hmac.new(hashlib.sha256(b"k").digest(), cw_body, hashlib.sha256).digest()
        ).decode()
        assert (
            httpx.post(
                d.url + "/webhooks/cw?recordId=1",
                content=cw_body,
                headers={"x-content-signature": forged},
            ).status_code
            == 401
        )
        assert httpx.post(d.url + "/webhooks/nope", content=body).status_code == 404
        text = d.metrics()
        assert metric(text, "ticketbridge_changes_seen_total", trigger="webhook") == 0
        assert metric(text, "ticketbridge_webhooks_total", outcome="unauthorized") == 3
        assert metric(text, "ticketbridge_webhooks_total", outcome="malformed") == 1
        assert "forged-token-7781" not in d.logs()
        assert TOKEN not in d.logs()
        d.stop()


class TestVendorFaults:
    async def test_5xx_429_and_garbage_are_retried_to_exactly_once(
        self, sims, daemon_factory, actors
    ):
        """A vendor answering 503, 429 with Retry-After, and garbage JSON still ends with each
        note exactly once, and other tickets keep flowing."""
        cw, _sn, admin = actors
        d = daemon_factory(webhooks=True, poll="1s", backoff_min="100ms", backoff_max="1s").start()
        p = await open_and_link(cw, admin)
        httpx.post(
            sims.sn.url + "/_sandbox/faults",
            json=[
                {
                    "method": "PATCH",
                    "path": "/api/now/table/incident/",
                    "action": "apply_then_fail",
                    "status": 502,
                    "count": 1,
                },
                {
                    "method": "PATCH",
                    "path": "/api/now/table/incident/",
                    "status": 429,
                    "retry_after": "1",
                    "count": 1,
                    "skip": 1,
                },
                {
                    "method": "GET",
                    "path": "/api/now/table/sys_journal_field",
                    "action": "garbage",
                    "count": 1,
                },
            ],
        ).raise_for_status()
        texts = [f"fault note {i}" for i in range(3)]
        for text in texts:
            await cw.add_note(p.ticket_id, text, internal=False)
        other = await open_and_link(cw, admin, summary="Second incident, unaffected")

        async def all_there() -> bool:
            journal = await admin.journal(p.sys_id)
            return all(any(t in e["value"] for e in journal) for t in texts)

        await wait_for(all_there, "every note despite the faults", 40)
        await asyncio.sleep(2)
        journal = [e["value"] for e in await admin.journal(p.sys_id)]
        assert [sum(t in v for v in journal) for t in texts] == [1, 1, 1]
        assert other.number != p.number
        text = d.metrics()
        assert metric(text, "ticketbridge_writes_total", outcome="retry") >= 1
        d.stop()
        assert d.exits == [0]

    async def test_a_200_html_page_on_a_note_write_loses_nothing(
        self, sims, daemon_factory, actors
    ):
        """The vendor answers note PATCHes with 200 and an HTML page: once without applying it
        (maintenance, a hibernating instance), once after applying it (a proxy). Neither is
        recorded as done: each note ends up exactly once."""
        cw, _sn, admin = actors
        d = daemon_factory(webhooks=True, poll="1s", backoff_min="100ms", backoff_max="1s").start()
        p = await open_and_link(cw, admin)
        httpx.post(
            sims.sn.url + "/_sandbox/faults",
            json=[
                {"method": "PATCH", "path": "/api/now/table/incident/", "action": "garbage"},
                {
                    "method": "PATCH",
                    "path": "/api/now/table/incident/",
                    "action": "apply_then_fail",
                    "fail_with": "garbage",
                    "skip": 1,
                },
            ],
        ).raise_for_status()
        texts = [f"html answer note {i}" for i in range(2)]
        for text in texts:
            await cw.add_note(p.ticket_id, text, internal=False)

        async def all_there() -> bool:
            journal = await admin.journal(p.sys_id)
            return all(any(t in e["value"] for e in journal) for t in texts)

        await wait_for(all_there, "every note despite the HTML answers", 40)
        await asyncio.sleep(2)
        journal = [e["value"] for e in await admin.journal(p.sys_id)]
        assert [sum(t in v for v in journal) for t in texts] == [1, 1]
        faults = httpx.get(sims.sn.url + "/_sandbox/faults").json()
        assert [1, 1] == [f["fired"] for f in faults]
        d.stop()
        assert d.exits == [0]


CLIENT_UPDATES = {
    "timezone": "UTC",
    "rules": [
        {
            "name": "p1-client-updates",
            "when": {"priority": "Priority 1 - Emergency Response", "vendor_linked": True},
            "stop_when": ["resolved"],
            "chain": [{"actions": [{"type": "client_update", "every": "60m"}]}],
        }
    ],
}


class TestStoreLoss:
    @pytest.mark.parametrize("visible_marker", [False, True], ids=["no-marker", "marker"])
    async def test_a_lost_store_writes_nothing_again(
        self, sims, daemon_factory, actors, tmp_path, visible_marker
    ):
        """Notes both ways and a client update; the daemon stops, its store is deleted and
        it starts again: not one new note on either side, no second incident, and no
        visible marker unless a system opts in."""
        cw, sn, admin = actors
        d = daemon_factory(webhooks=False, poll="1s")
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "rules.yaml").write_text(yaml.safe_dump(CLIENT_UPDATES))
        data = yaml.safe_load(d.config_path.read_text())
        data["rules"]["directory"] = str(rules)
        data["engine"]["marker_secret"] = "e2e marker secret kept outside the store"
        for system in data["systems"].values():
            system["visible_marker"] = visible_marker
        d.config_path.write_text(yaml.safe_dump(data))
        d.start()
        p = await open_and_link(cw, admin)
        await cw.add_note(p.ticket_id, PUBLIC, internal=False)
        await sn.update(p.sys_id, comments=COMMENT)

        async def settled() -> bool:
            journal = [e["value"] for e in await admin.journal(p.sys_id)]
            notes = [n["text"] for n in await cw.notes(p.ticket_id)]
            return (
                any(PUBLIC in v for v in journal)
                and any(COMMENT in t for t in notes)
                and any("Status update on" in t for t in notes)
            )

        await wait_for(settled, "notes both ways and a client update", 30)
        await asyncio.sleep(2.5)  # a few more polls
        d.stop()

        async def state() -> tuple[list[str], list[str], list[str]]:
            journal = [e["value"] for e in await admin.journal(p.sys_id)]
            notes = [n["text"] for n in await cw.notes(p.ticket_id)]
            incidents = await admin.query("incident", "correlation_display=ticketbridge")
            return journal, notes, [i["sys_id"] for i in incidents]

        before = await state()
        assert 1 == sum("Status update on" in t for t in before[1])
        ours = [t for t in before[1] if "[ServiceNow" in t or "Status update on" in t]
        ours += [v for v in before[0] if PUBLIC in v]
        assert visible_marker == all("[tb:" in t for t in ours)
        assert visible_marker == any("[tb:" in t for t in ours)

        (tmp_path / "tb.db").unlink()
        d.start()
        await asyncio.sleep(6)  # polls, hints and the dispatcher have had their turns
        assert before == await state()
        assert '"found_existing": true' in d.logs()
        d.stop()
        assert d.exits == [0, 0]
