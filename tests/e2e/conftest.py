"""The daemon as a subprocess against the sandbox simulators, all on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.demo import free_port, render_config
from ticketbridge.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e
TOKEN = "e2e-outbound-token-5f2c"
#: The test-only launcher that installs a crash hook and then runs the normal CLI.
CRASHING_DAEMON = Path(__file__).with_name("crashing_daemon.py")


@dataclass
class Sims:
    cw: SandboxServer
    sn: SandboxServer
    acme_sys_id: str
    caller_sys_id: str

    @property
    def cw_state(self) -> Any:
        return self.cw.app.state.sandbox  # type: ignore[attr-defined]

    @property
    def sn_state(self) -> Any:
        return self.sn.app.state.sandbox  # type: ignore[attr-defined]


@pytest.fixture
def sims() -> Iterator[Sims]:
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
            ).json()
            user = client.get(
                "/api/now/table/sys_user",
                params={"sysparm_query": "user_name=ticketbridge.integration"},
            ).json()
        yield Sims(cw, sn, acme["result"][0]["sys_id"], user["result"][0]["sys_id"])
    finally:
        cw.stop()
        sn.stop()


@dataclass
class DaemonProcess:
    """One ``ticketbridge run`` subprocess; its output goes to a log file."""

    config_path: Path
    log_path: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    exits: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, fault: str | None = None, wait_ready: bool = True) -> DaemonProcess:
        """Run the daemon; with ``fault`` (``after_send:add_note:2``) through the test-only
        launcher ``crashing_daemon.py``, which kills it with SIGKILL at that point."""
        launcher = ["-m", "ticketbridge"] if fault is None else [str(CRASHING_DAEMON), fault]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.logs()}")
            try:
                path = "/readyz" if wait_ready else "/healthz"
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready within 20s:\n{self.logs()}")

    def stop(self, timeout: float = 10) -> float:
        """SIGTERM; return how long the exit took (it must be clean)."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.exits.append(code)
        return time.monotonic() - began

    def wait_killed(self, timeout: float = 30) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self.exits.append(code)
        return code

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def daemon_factory(sims: Sims, tmp_path: Path) -> Iterator[Any]:
    made: list[DaemonProcess] = []

    def make(*, webhooks: bool, poll: str = "1s", **overrides: Any) -> DaemonProcess:
        port = free_port()
        data = render_config(
            db_path=str(tmp_path / "tb.db"),
            daemon_port=str(port),
            cw_url=sims.cw.url,
            sn_url=sims.sn.url,
            sn_token=TOKEN,
            acme_sys_id=sims.acme_sys_id,
            caller_sys_id=sims.caller_sys_id,
        )
        for system in data["systems"].values():
            system["poll_interval"] = poll
        data["log"] = {"json": True, "level": "info"}
        data["engine"].update(overrides)
        path = tmp_path / "tb.yaml"
        path.write_text(yaml.safe_dump(data))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETBRIDGE_")}
        env["PYTHONUNBUFFERED"] = "1"
        d = DaemonProcess(path, tmp_path / "daemon.log", port, env)
        made.append(d)
        if webhooks:
            with httpx.Client(
                base_url=sims.cw.url + "/v4_6_release/apis/3.0",
                auth=("msp+pub", "priv"),
                headers={"clientId": "00000000-0000-0000-0000-000000000000"},
            ) as c:
                c.post(
                    "/system/callbacks",
                    json={
                        "url": f"{d.url}/webhooks/cw?recordId=",
                        "objectId": 1,
                        "type": "Ticket",
                        "level": "Owner",
                    },
                ).raise_for_status()
            httpx.post(
                sims.sn.url + "/_sandbox/outbound",
                json={
                    "url": f"{d.url}/webhooks/snow",
                    "headers": {"X-Ticketbridge-Token": TOKEN},
                    "enabled": True,
                },
            ).raise_for_status()
        return d

    yield make
    for d in made:
        d.kill()


@pytest.fixture
async def actors(sims: Sims) -> Any:
    cw = ConnectWiseActor(sims.cw.url)
    sn = ServiceNowActor(sims.sn.url)
    admin = ServiceNowActor(sims.sn.url, "ticketbridge.integration", "integration-pass")
    yield cw, sn, admin
    for a in (cw, sn, admin):
        await a.aclose()


@dataclass(frozen=True)
class PlayedDemo:
    """``ticketbridge demo --keep DB`` as a person runs it: its output, time and store."""

    result: subprocess.CompletedProcess[str]
    took: float
    db: Path


def run_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m ticketbridge ARGS`` with the package as this test run imports it."""
    return subprocess.run(
        [sys.executable, "-m", "ticketbridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture(scope="session")
def played_demo(tmp_path_factory: pytest.TempPathFactory) -> PlayedDemo:
    """The default demo played once for the run (its story and its timeline are checked
    by different tests)."""
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    began = time.monotonic()
    result = run_cli("demo", "--keep", str(db), timeout=100)
    return PlayedDemo(result, time.monotonic() - began, db)
