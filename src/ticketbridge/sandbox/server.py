"""Serve a sandbox app over real HTTP on loopback, in a background thread."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp

from ticketbridge.sandbox._faults import InjectedDisconnect

__all__ = ["SandboxServer", "run_sandbox"]

logger = logging.getLogger("ticketbridge.sandbox")


class _QuietSandbox(logging.Filter):
    """Keeps uvicorn's records from sandbox server threads below each server's level.

    Installed on the ``uvicorn.error`` and ``uvicorn.access`` loggers instead of
    changing their levels, so a uvicorn serving the daemon in the same process
    logs as configured.  Connections dropped on purpose are never reported.
    """

    def __init__(self) -> None:
        super().__init__()
        self.levels: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, InjectedDisconnect):
            return False
        level = self.levels.get(record.threadName or "")
        return level is None or record.levelno >= level


_QUIET = _QuietSandbox()
_UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access")


class SandboxServer:
    """Runs ``app`` with uvicorn on ``host`` (loopback) and a free (or given) port.

    ``start()`` returns once the server accepts connections; ``stop()`` shuts
    it down (running the app's lifespan shutdown).  Also a context manager.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        start_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.log_level = log_level
        self.start_timeout = start_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        self._claimed = False

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on connections of a
        # socket that says it is TCP; with Nagle on, every keep-alive response waits ~40 ms
        # for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        self._claim_public_url()
        for name in _UVICORN_LOGGERS:
            logging.getLogger(name).addFilter(_QUIET)
        thread_name = f"sandbox-{self.port}"
        _QUIET.levels[thread_name] = logging.getLevelNamesMapping().get(
            self.log_level.upper(), logging.WARNING
        )
        # No log_config/log_level and access_log on: uvicorn then leaves the
        # process-wide logging configuration alone.
        config = uvicorn.Config(self.app, log_config=None, log_level=None, lifespan="on")
        server = uvicorn.Server(config)
        self._server = server

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                self._error = exc

        self._thread = threading.Thread(target=serve, name=thread_name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError(f"sandbox server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"sandbox server did not start within {self.start_timeout}s")
            time.sleep(0.01)
        self._wait_accepting(deadline)
        return self

    def _wait_accepting(self, deadline: float) -> None:
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError("sandbox server does not accept connections") from None
                time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout)
        self._cleanup()

    def _sandbox_state(self) -> Any:
        return getattr(getattr(self.app, "state", None), "sandbox", None)

    def _claim_public_url(self) -> None:
        """Tell a simulator its URL (for hrefs and callback key URLs) unless one is set."""
        state = self._sandbox_state()
        if state is not None and getattr(state, "public_url", "") is None:
            state.public_url = self.url
            self._claimed = True

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
            _QUIET.levels.pop(f"sandbox-{self.port}", None)
        state = self._sandbox_state()
        if self._claimed and state is not None and state.public_url == self.url:
            state.public_url = None
        self._claimed = False
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_sandbox(
    apps: Mapping[str, tuple[ASGIApp, int]],
    *,
    host: str = "127.0.0.1",
    on_ready: Callable[[Mapping[str, SandboxServer]], Any] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve simulators (name -> (app, port), port 0 for a free one) until interrupted.

    ``on_ready`` is called with the running servers by name (e.g. to print their
    URLs); the call returns when ``stop`` is set or on Ctrl+C.
    """
    servers = {name: SandboxServer(app, host=host, port=port) for name, (app, port) in apps.items()}
    stop = stop or threading.Event()
    with ExitStack() as stack:
        for name, server in servers.items():
            stack.enter_context(server)
            logger.info("%s sandbox at %s", name, server.url)
        if on_ready is not None:
            on_ready(servers)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            logger.info("sandbox interrupted; shutting down")
