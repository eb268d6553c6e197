"""The contract suite's driver on a real Request Tracker (see ``test_contract_live.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp

from ticketbridge.adapters.rt.driver import RtAgent, RtDriver
from ticketbridge.adapters.rt.local import LocalRt

FAULTS = "fault injection and the request log need the simulator, not a real RT"


class NoSimulatorError(RuntimeError):
    """What a check that needs the simulator's fault injection or request log gets."""


class LiveRtDriver(RtDriver):
    """:class:`RtDriver` whose people act on a running RT instead of the simulator."""

    def __init__(self, rt: LocalRt) -> None:
        super().__init__()
        self.rt = rt

    def create_app(self) -> ASGIApp:  # pragma: no cover - nothing to serve
        raise NoSimulatorError("a real RT is running")

    def start(self) -> str:
        return self.rt.base_url

    @property
    def url(self) -> str:
        return self.rt.base_url

    @property
    def base_url(self) -> str:
        return self.rt.base_url

    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        token = self.rt.token if valid_credentials else "1-99-00000000000000000000000000000000"
        return {"token": token, "user": self.rt.user, "queue": self.rt.queue}

    def agent(self) -> RtAgent:
        if self._agent is None:
            self._agent = RtAgent(self.rt.base_url, self.rt.agent_token, self.rt.queue, None)
        return self._agent

    async def stop(self) -> None:
        await self.close_actors()

    async def add_faults(self, rules: Iterable[Mapping[str, Any]]) -> None:
        raise NoSimulatorError(FAULTS)

    async def clear_faults(self) -> None:
        raise NoSimulatorError(FAULTS)

    async def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        raise NoSimulatorError(FAULTS)

    async def clear_requests(self) -> None:
        raise NoSimulatorError(FAULTS)
