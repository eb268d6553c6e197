"""`ticketbridge backfill` and `ticketbridge reconcile` against the ConnectWise and
ServiceNow simulators on 127.0.0.1: linked tickets with history adopted, nothing posted,
an interrupted run resumed; a PSA note no webhook announced found by a reconcile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.cli import app
from ticketbridge.demo import render_config
from ticketbridge.sandbox.server import SandboxServer
from ticketbridge.store import Store, repo

pytestmark = [pytest.mark.integration]


@dataclass
class World:
    cw: SandboxServer
    sn: SandboxServer
    config: Path
    db: Path

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(app, [*args, "--config", str(self.config), "--format", "json"])
        assert 0 == result.exit_code, result.output
        return json.loads(result.stdout)

    def play(self, script: Any) -> Any:
        """Run ``script(engineer, agent)``: the MSP engineer and the vendor's agent."""

        async def main() -> Any:
            cw = ConnectWiseActor(self.cw.url)
            sn = ServiceNowActor(self.sn.url)
            try:
                return await script(cw, sn)
            finally:
                await cw.aclose()
                await sn.aclose()

        return asyncio.run(main())

    def counts(self, pairs: list[tuple[int, str]]) -> tuple[int, int]:
        """Notes on the PSA tickets and journal entries on the incidents."""

        async def count(cw: ConnectWiseActor, sn: ServiceNowActor) -> tuple[int, int]:
            psa = sum([len(await cw.notes(tid)) for tid, _ in pairs])
            vendor = sum([len(await sn.journal(sys_id)) for _, sys_id in pairs])
            return psa, vendor

        result: tuple[int, int] = self.play(count)
        return result


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    cw = SandboxServer(connectwise.create_app()).start()
    sn = SandboxServer(servicenow.create_app()).start()
    try:
        with httpx.Client(
            base_url=sn.url,
            auth=("ticketbridge.integration", "integration-pass"),
            params={"sysparm_exclude_reference_link": "true"},
        ) as client:
            acme = client.get(
                "/api/now/table/core_company", params={"sysparm_query": "name=Acme Dental Group"}
            ).json()["result"][0]["sys_id"]
        db = tmp_path / "tb.db"
        data = render_config(
            db_path=str(db),
            daemon_port="0",
            cw_url=cw.url,
            sn_url=sn.url,
            sn_token="cli-test-token-7c1d",
            acme_sys_id=acme,
            caller_sys_id="unused",
        )
        data["reconcile"] = {"grace": "0s"}
        path = tmp_path / "tb.yaml"
        path.write_text(yaml.safe_dump(data))
        yield World(cw, sn, path, db)
    finally:
        cw.stop()
        sn.stop()


async def linked_pair(cw: ConnectWiseActor, sn: ServiceNowActor, n: int) -> tuple[int, str]:
    """An incident the vendor's agent opened and the engineer typed into a PSA ticket, with
    a public and an internal note on each side."""
    resp = await sn.http.post(
        "/api/now/table/incident",
        json={"short_description": f"Circuit {n} down", "urgency": "2", "impact": "2"},
    )
    resp.raise_for_status()
    incident = resp.json()["result"]
    ticket = await cw.open_ticket(
        summary=f"Circuit {n} down",
        description="The branch has no internet.",
        board="Service Desk",
        company="ACME",
        contact="Dana Whitfield",
        priority="Priority 2 - Quick Response",
    )
    patched = await cw.http.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "externalXRef", "value": incident["number"]}],
    )
    patched.raise_for_status()
    await cw.add_note(ticket["id"], f"Client {n}: still down.", internal=False)
    await cw.add_note(ticket["id"], f"Internal {n}: renewal due.", internal=True)
    await sn.update(incident["sys_id"], comments=f"Engineer {n} dispatched.")
    await sn.update(incident["sys_id"], work_notes=f"Card fault {n}.")
    return int(ticket["id"]), str(incident["sys_id"])


def test_backfill_adopts_resumes_and_posts_nothing(world: World) -> None:
    """Three linked pairs: a run stopped after one ticket, then run again, adopts all
    three; neither system gains a note; a third run finds them linked."""

    async def history(cw: ConnectWiseActor, sn: ServiceNowActor) -> list[tuple[int, str]]:
        return [await linked_pair(cw, sn, n) for n in range(3)]

    pairs = world.play(history)
    before = world.counts(pairs)

    [first] = world.cli("backfill", "--since", "1d", "--limit", "1")
    [second] = world.cli("backfill", "--since", "1d")
    [third] = world.cli("backfill", "--since", "1d")

    assert (1, "paused") == (first["adopted"], first["state"])
    assert (3, "finished") == (second["adopted"], second["state"])
    assert 0 == second["already_linked"]
    assert 3 == third["already_linked"]
    assert 0 == third["adopted"]
    assert before == world.counts(pairs)
    store = Store(f"sqlite:///{world.db}")
    try:
        with store.tx() as c:
            links = repo.list_links(c)
            queued = repo.outbox_rows(c)
    finally:
        store.close()
    assert {sys_id for _, sys_id in pairs} == {link.vendor_ticket_id for link in links}
    assert {"open"} == {link.state for link in links}
    assert [] == queued


def test_reconcile_finds_a_note_no_webhook_announced(world: World) -> None:
    """After adoption, a PSA note whose callback never came: `reconcile` queues its
    mirror (once, also when run again) and says one note was recovered."""

    async def one(cw: ConnectWiseActor, sn: ServiceNowActor) -> tuple[int, str]:
        return await linked_pair(cw, sn, 0)

    tid, _ = world.play(one)
    world.cli("backfill", "--since", "1d")

    async def note(cw: ConnectWiseActor, sn: ServiceNowActor) -> None:
        await cw.add_note(tid, "Client: the branch is back up?", internal=False)

    world.play(note)
    [first] = world.cli("reconcile")
    [second] = world.cli("reconcile")

    assert (1, 1, 1) == (first["links"], first["links_repaired"], first["notes"])
    assert 0 == second["notes"]
    store = Store(f"sqlite:///{world.db}")
    try:
        with store.tx() as c:
            queued = repo.outbox_rows(c)
    finally:
        store.close()
    assert ["add_note"] == [row.operation for row in queued]
    assert "the branch is back up?" in queued[0].payload["text"]


def test_a_bad_connection_or_link_is_an_error(world: World) -> None:
    """An unknown --connection exits 2 naming the configured ones; an unknown --link
    exits 1 saying it is not found; a --since that is no duration exits 2."""
    runner = CliRunner()
    config = ["--config", str(world.config)]

    bad_connection = runner.invoke(app, ["backfill", "--connection", "nope", *config])
    bad_link = runner.invoke(app, ["reconcile", "--link", "999", *config])
    bad_since = runner.invoke(app, ["backfill", "--since", "soon", *config])

    assert 2 == bad_connection.exit_code
    assert "no connection named 'nope' (configured: cw-snow)" in bad_connection.output
    assert 1 == bad_link.exit_code
    assert "link 999 not found" in bad_link.output
    assert 2 == bad_since.exit_code
    assert "--since" in bad_since.output


def test_a_failing_system_stops_the_run_with_what_to_do(world: World) -> None:
    """The vendor refuses our credentials: the command exits 1 naming the error and says
    that running it again continues; the tickets finished before stay adopted."""

    async def two(cw: ConnectWiseActor, sn: ServiceNowActor) -> list[tuple[int, str]]:
        return [await linked_pair(cw, sn, n) for n in range(2)]

    world.play(two)
    world.cli("backfill", "--since", "1d", "--limit", "1")
    data = yaml.safe_load(world.config.read_text())
    data["systems"]["snow"]["settings"]["password"] = "wrong-password"
    world.config.write_text(yaml.safe_dump(data))

    result = CliRunner().invoke(app, ["backfill", "--config", str(world.config)])

    assert 1 == result.exit_code, result.output
    assert "backfill stopped:" in result.output
    assert "run the same command again to continue" in result.output
    store = Store(f"sqlite:///{world.db}")
    try:
        with store.tx() as c:
            assert 1 == len(repo.list_links(c))
    finally:
        store.close()
