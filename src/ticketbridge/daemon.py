"""The composition root: builds everything from the config and runs it.

Polls run on APScheduler (one in-memory job per system, this process only);
the webhook/health server is uvicorn; the worker drains webhook hints and the
outbox.  ``stop`` (SIGTERM) stops intake, lets in-flight writes finish, and
returns within the shutdown budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import structlog
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from starlette.types import ASGIApp

from ticketbridge.clock import Clock, SystemClock
from ticketbridge.config import TicketBridgeConfig
from ticketbridge.engine import Engine
from ticketbridge.engine.reconcile import Reconciler
from ticketbridge.health import HealthRegistry
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store
from ticketbridge.wiring import build_adapters

__all__ = ["Daemon"]

log = structlog.get_logger("ticketbridge.daemon")

#: Seconds the worker may take to finish in-flight writes after SIGTERM.
SHUTDOWN_BUDGET = 7.0
#: Longest the start-up name check may take (it is skipped with a warning past it).
NAME_CHECK_BUDGET = 60.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


#: The longest one wait for a product's change announcement lasts (seconds).
WATCH_SLICE = 5.0


class Daemon:
    def __init__(
        self,
        config: TicketBridgeConfig,
        *,
        clock: Clock | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        from ticketbridge.web import create_app

        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.store = Store(config.store.url, password=config.store.password)
        self.adapters = build_adapters(config, transports=transports, clock=self.clock)
        self.engine = Engine(config, self.store, self.adapters, self.metrics, self.clock)
        self.reconciler = Reconciler(self.engine)
        self.health = HealthRegistry(clock=self.clock.now)
        self.app = create_app(self)
        self.stopping = False
        self.port: int | None = None
        #: The admin listener's port once it listens (``None``: not started).
        self.admin_port: int | None = None
        self.started = asyncio.Event()
        self._polls: set[asyncio.Task[object]] = set()

    async def _poll_job(self, system: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._polls.add(task)
        try:
            await self.engine.poll(system)
        except Exception as exc:
            log.error("poll_crashed", system=system, error=str(exc), exc_info=exc)
        finally:
            if task is not None:
                self._polls.discard(task)

    async def _watch(self, system: str) -> None:
        """Poll ``system`` as soon as it says something changed (IMAP IDLE), besides its
        scheduled polls; a failing watch waits a poll interval and tries again."""
        adapter = self.adapters[system]
        interval = float(self.config.systems[system].poll_interval)
        while not self.stopping:
            try:
                # short waits: a wait blocked in a thread (IDLE) cannot be cancelled, and
                # shutting down waits for it
                changed = await adapter.wait_for_changes(min(interval, WATCH_SLICE))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the scheduled polls go on regardless
                log.warning("watch_failed", system=system, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(interval)
                continue
            if changed and not self.stopping:
                await self._poll_job(system)

    async def _sla_job(self) -> None:
        """The timers: SLA thresholds and deadlines, then escalation steps that are due."""
        try:
            await self.engine.sla_sweep()
        except Exception as exc:
            log.error("sla_sweep_crashed", error=str(exc), exc_info=exc)
        try:
            await self.engine.rules_sweep()
        except Exception as exc:
            log.error("rules_sweep_crashed", error=str(exc), exc_info=exc)

    async def _reconcile_job(self) -> None:
        """Compare open links with both systems and repair drift (lost webhooks); cancelled
        at shutdown like a poll (a run continues where it ended, next time)."""
        task = asyncio.current_task()
        if task is not None:
            self._polls.add(task)
        try:
            await self.reconciler.run()
        except Exception as exc:
            log.error("reconcile_crashed", error=str(exc), exc_info=exc)
        finally:
            if task is not None:
                self._polls.discard(task)

    async def _rules_pass_job(self) -> None:
        try:
            await self.engine.rules_pass()
        except Exception as exc:
            log.error("rules_pass_crashed", error=str(exc), exc_info=exc)

    async def check_names(self) -> None:
        """Check online that every name configuration and rules write exists (warnings;
        with ``engine.strict_names`` a missing name stops the start)."""
        from ticketbridge.errors import ConfigError
        from ticketbridge.namecheck import check_names

        try:
            report = await asyncio.wait_for(
                check_names(self.config, self.adapters, self.engine.rules.ruleset),
                timeout=NAME_CHECK_BUDGET,
            )
        except Exception as exc:  # noqa: BLE001 - a failed check is reported, never fatal
            log.warning("names_not_checked", error=str(exc) or type(exc).__name__)
            if self.config.engine.strict_names:
                raise ConfigError(
                    [("engine.strict_names", f"names could not be checked: {exc}", "")]
                ) from None
            return
        for where, message, hint in report.problems:
            log.warning("name_problem", where=where, problem=message, hint=hint)
        if report.problems and self.config.engine.strict_names:
            raise ConfigError(report.problems)

    async def _start_admin(self) -> tuple[uvicorn.Server, asyncio.Task[None]] | None:
        """Start the dashboard's listener, unless it has no credentials (never open)."""
        admin = self.config.admin
        if not admin.enabled:
            log.info("admin_disabled")
            return None
        if not admin.has_credentials:
            log.warning(
                "admin_not_started",
                reason="no credentials configured",
                hint="set admin.token, or admin.username and admin.password, "
                "as {env: NAME} or {file: PATH}",
            )
            return None
        from ticketbridge.web.admin import Authenticator, create_admin_app

        app = create_admin_app(self, Authenticator.from_config(admin))
        try:
            server, task, self.admin_port = await _listen(app, admin.host, admin.port, "admin")
        except RuntimeError as exc:  # the bridge runs on without its dashboard
            log.error("admin_not_started", reason=str(exc), hint="free the port or set admin.port")
            return None
        log.info("admin_started", host=admin.host, port=self.admin_port)
        if admin.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "admin_not_on_loopback",
                host=admin.host,
                hint="serve it through a reverse proxy with TLS: credentials cross the network",
            )
        return server, task

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        self.store.lock_single_writer()
        self.store.upgrade()
        self.engine.recover()
        # Names are checked online at start: before anything runs when they must exist
        # (engine.strict_names); otherwise beside the start, so a slow or unreachable
        # system delays nothing and only its warnings come later.
        name_check: asyncio.Task[None] | None = None
        if self.config.engine.strict_names:
            await self.check_names()
        else:
            name_check = asyncio.create_task(self.check_names(), name="name-check")
        log.info(
            "daemon_starting",
            store=self.store.describe(),
            systems=sorted(self.adapters),
            connections=sorted(self.engine.connections),
        )
        scheduler = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        for name, system in self.config.systems.items():
            scheduler.add_job(
                self._poll_job,
                "interval",
                seconds=system.poll_interval,
                args=[name],
                id=f"poll:{name}",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        if self.engine.rules.enabled:
            scheduler.add_job(
                self._rules_pass_job,
                "interval",
                seconds=self.config.rules.tick,
                id="rules",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        if self.engine.sla.enabled or self.engine.rules.enabled:
            scheduler.add_job(
                self._sla_job,
                "interval",
                seconds=self.config.engine.sla_tick,
                id="sla",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        if self.config.reconcile.enabled:
            every = float(self.config.reconcile.every)
            scheduler.add_job(
                self._reconcile_job,
                "interval",
                seconds=every,
                id="reconcile",
                # not at start: the first polls catch up on what happened while stopped
                next_run_time=now + timedelta(seconds=every),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        worker_stop = asyncio.Event()
        server, server_task, self.port = await _listen(
            self.app, self.config.server.host, self.config.server.port, "http"
        )
        admin = await self._start_admin()
        scheduler.start()
        watchers = [
            asyncio.create_task(self._watch(name), name=f"watch:{name}")
            for name, adapter in self.adapters.items()
            if adapter.announces_changes
        ]
        worker = asyncio.create_task(self.engine.run_worker(worker_stop), name="worker")
        log.info("daemon_started", host=self.config.server.host, port=self.port)
        self.started.set()
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({stopper, server_task, worker}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        # -- graceful shutdown: stop intake, finish in-flight writes, release.
        self.stopping = True
        log.info("daemon_stopping")
        scheduler.shutdown(wait=False)
        for task in [*watchers, *self._polls]:
            task.cancel()
        worker_stop.set()
        self.engine.wake.set()
        try:
            await asyncio.wait_for(worker, timeout=SHUTDOWN_BUDGET)
        except TimeoutError:
            log.error("shutdown_timeout", waited=SHUTDOWN_BUDGET)
        server.should_exit = True
        if admin is not None:
            admin[0].should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server_task, timeout=2.5)
        if admin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin[1], timeout=2.5)
        if self._polls or watchers:
            await asyncio.wait([*watchers, *self._polls], timeout=1)
        if name_check is not None and not name_check.done():
            name_check.cancel()
            await asyncio.wait({name_check}, timeout=1)
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.aclose()
        await self.engine.close_senders()
        self.store.close()
        log.info("daemon_stopped")


async def _listen(
    app: ASGIApp, host: str, port: int, name: str
) -> tuple[uvicorn.Server, asyncio.Task[None], int | None]:
    """Serve ``app`` on ``host:port``; the server, its task and the port bound."""
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits when it cannot bind
            raise RuntimeError(f"cannot listen on {host}:{port} ({name})") from None

    task = asyncio.create_task(serve(), name=name)
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has only a flag
        await asyncio.sleep(0.01)
    if task.done():
        await task  # re-raise why it could not start
        raise RuntimeError(f"the {name} server stopped at start")
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else None
    return server, task, bound
