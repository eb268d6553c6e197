"""Pieces shared by the benchmarks: daemon processes on a rendered configuration, stores
(SQLite file or a fresh PostgreSQL schema), and linking tickets through the actors."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.demo import free_port, render_config

PG_URL = os.environ.get(
    "TICKETBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass
class Replica:
    """One daemon process (``ticketbridge run``) on a configuration file."""

    name: str
    config: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    pauses: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ticketbridge", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if not k.startswith("TICKETBRIDGE_")},
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_ready(replica: Replica, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not replica.alive():
            raise SystemExit(f"{replica.name} exited:\n{replica.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{replica.port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{replica.name} not up within {within}s")


def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def make_store(kind: str, tmp: Path, prefix: str = "k9") -> tuple[str, str | None]:
    """A store URL: a SQLite file in ``tmp``, or a fresh PostgreSQL schema (returned too)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'tb.db'}", None
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def daemon_config(
    *,
    store_url: str,
    cw_url: str,
    sn_url: str,
    sn_token: str,
    ids: dict[str, str],
    tmp: Path,
    port: int,
    poll_interval: str = "1s",
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The demo configuration without rules and SLA, on these simulators and store."""
    data = render_config(
        db_path=str(tmp / "unused.db"),
        daemon_port=str(port),
        cw_url=cw_url,
        sn_url=sn_url,
        sn_token=sn_token,
        acme_sys_id=ids["acme"],
        caller_sys_id=ids["caller"],
    )
    data["store"] = {"url": store_url}
    data.pop("rules", None)
    data.pop("sla", None)
    for conn in data["connections"]:
        conn.pop("sla", None)
    for system in data["systems"].values():
        system["poll_interval"] = poll_interval
    if engine:
        data["engine"].update(engine)
    data["log"] = {"json": True, "level": "warning"}
    return data


def write_replica(data: dict[str, Any], tmp: Path, name: str) -> Replica:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return Replica(name, path, tmp / f"{name}.log", int(data["server"]["port"]))


def configs(
    store_url: str,
    cw_url: str,
    sn_url: str,
    sn_token: str,
    ids: dict[str, str],
    tmp: Path,
    n: int,
    lease: float,
) -> list[Replica]:
    """``n`` replicas on one store, polling every second (the chaos run's set-up)."""
    return [
        write_replica(
            daemon_config(
                store_url=store_url,
                cw_url=cw_url,
                sn_url=sn_url,
                sn_token=sn_token,
                ids=ids,
                tmp=tmp,
                port=free_port(),
                engine={
                    "write_lease": f"{lease}s",
                    "max_attempts": 1000,
                    "dispatch_interval": "100ms",
                },
            ),
            tmp,
            f"replica{i}",
        )
        for i in range(n)
    ]


def lookup_ids(sn_url: str) -> dict[str, str]:
    with httpx.Client(
        base_url=sn_url,
        auth=("ticketbridge.integration", "integration-pass"),
        params={"sysparm_exclude_reference_link": "true"},
        headers={"X-Sandbox-Client": "harness"},
    ) as client:
        acme = client.get(
            "/api/now/table/core_company", params={"sysparm_query": "name=Acme Dental Group"}
        ).json()
        user = client.get(
            "/api/now/table/sys_user",
            params={"sysparm_query": "user_name=ticketbridge.integration"},
        ).json()
    return {"acme": acme["result"][0]["sys_id"], "caller": user["result"][0]["sys_id"]}


async def open_tickets(
    cw: ConnectWiseActor, count: int, tag: str, *, prefix: str, board: str
) -> list[tuple[int, str]]:
    """``count`` new PSA tickets on ``board``: (id, summary)."""
    made = []
    for i in range(count):
        summary = f"{prefix} {tag} ticket {i}"
        t = await cw.open_ticket(
            summary=summary,
            description=f"{prefix} run",
            board=board,
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 3 - Normal Response",
        )
        made.append((t["id"], summary))
    return made


async def link_tickets(
    cw: ConnectWiseActor,
    admin: ServiceNowActor,
    count: int,
    tag: str,
    *,
    prefix: str = "kill9",
    within: float = 120,
) -> list[tuple[int, str]]:
    """Open ``count`` tickets on the routed board; once the daemon opened their vendor
    incidents, (PSA ticket id, incident sys_id) of each."""
    made = await open_tickets(cw, count, tag, prefix=prefix, board="Vendor Escalations")
    linked: dict[int, str] = {}
    deadline = time.monotonic() + within
    while len(linked) < count and time.monotonic() < deadline:
        rows = await admin.query("incident", f"short_descriptionSTARTSWITH{prefix} {tag} ticket ")
        by_summary = {r["short_description"]: r["sys_id"] for r in rows}
        linked = {tid: by_summary[s] for tid, s in made if s in by_summary}
        if len(linked) < count:
            await asyncio.sleep(0.5)
    if len(linked) < count:
        raise SystemExit(f"only {len(linked)} of {count} tickets reached the vendor")
    return [(tid, linked[tid]) for tid, _ in made]
