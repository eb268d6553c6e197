"""Engine set-up, migrations and the single-writer lock for SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import URL, Connection, make_url

from ticketbridge.errors import StoreError

__all__ = ["Store", "StoreLockedError"]

_MIGRATIONS = Path(__file__).with_name("migrations")
#: PostgreSQL advisory lock held while migrating (any constant; "tbmigrat" in ASCII).
_MIGRATE_LOCK = 0x74626D6967726174

#: Store threads for PostgreSQL (SQLite has one writer, so it gets one thread).
POSTGRES_THREADS = 4

T = TypeVar("T")
P = ParamSpec("P")


class StoreLockedError(StoreError):
    """Another ticketbridge process already writes to this SQLite file."""


class Store:
    """Owns the SQLAlchemy engine.

    Synchronous transactions: ``with store.tx() as conn: ...`` (CLI, tests, start-up).
    From the event loop: ``await store.run(work)`` runs ``work(conn)`` in one transaction
    on the store's own threads, so a slow commit (an fsync, a lock wait, a network round
    trip to PostgreSQL) never stalls webhook intake or the worker.  SQLite gets one
    thread (it has a single writer anyway, and queueing there keeps commits in call
    order); PostgreSQL gets a small pool.
    """

    def __init__(self, url: str, *, password: str | None = None) -> None:
        parsed: URL = make_url(url)
        if password:
            parsed = parsed.set(password=password)
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._lock_file: IO[str] | None = None
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = sa.create_engine(parsed, **kwargs)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)  # a file: nothing to ping
        else:
            _ping_when_idle(self.engine)
        self.threads = 1 if self.is_sqlite else POSTGRES_THREADS
        self._executor: ThreadPoolExecutor | None = None
        #: Each store thread keeps its connection between transactions (a pool check-out
        #: and check-in per transaction cost more CPU than most of their statements).
        self._local = threading.local()
        self._held: list[Connection] = []
        self._held_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------
    def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied (``ticketbridge db upgrade``)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    # replicas starting together: one migrates, the others wait and find it done
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK}
                    )
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot migrate the store: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from None

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            insp = sa.inspect(conn)
            if not insp.has_table("alembic_version"):
                return None
            value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return str(value) if value is not None else None

    def lock_single_writer(self) -> None:
        """On SQLite, refuse to run beside another process writing the same file."""
        if not self.is_sqlite or not self.url.database or self.url.database == ":memory:":
            return
        path = Path(self.url.database + ".lock")
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreLockedError(
                f"another ticketbridge process is using {self.url.database}; "
                "SQLite allows one daemon only (use PostgreSQL for several replicas)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._held_lock:
            held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()
        self._local = threading.local()
        self.engine.dispose()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- use -----------------------------------------------------------------------
    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in one transaction on a store thread; its result.

        Committed when ``work`` returns, rolled back (and the error re-raised here) when
        it raises.  ``work`` must not touch the event loop; the caller's context
        variables (log context) are visible to it.
        """
        return await self.call(self._in_tx, work)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Any blocking store function, called on a store thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="store")
        context = contextvars.copy_context()
        bound = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, bound)

    def _in_tx(self, work: Callable[[Connection], T]) -> T:
        conn = self._thread_connection()
        try:
            with conn.begin():
                result = work(conn)
        except BaseException:
            if conn.invalidated or conn.closed:  # a lost server connection: take a new one
                self._drop_thread_connection()
            raise
        self._local.used = time.monotonic()
        return result

    def _thread_connection(self) -> Connection:
        """This store thread's connection, checked out once and kept between transactions;
        one idle longer than ``PING_AFTER_IDLE`` goes back to the pool and a fresh check-out
        (pinged on PostgreSQL) replaces it."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and (
            conn.closed
            or conn.invalidated
            or time.monotonic() - getattr(self._local, "used", 0.0) > PING_AFTER_IDLE
        ):
            self._drop_thread_connection()
            conn = None
        if conn is None:
            conn = self.engine.connect()
            self._local.conn = conn
            with self._held_lock:
                self._held.append(conn)
        return conn

    def _drop_thread_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is None:
            return
        with self._held_lock:
            if conn in self._held:
                self._held.remove(conn)
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            conn.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)


#: A pooled PostgreSQL connection unused this long is pinged before it is handed out.
PING_AFTER_IDLE = 10.0


def _ping_when_idle(engine: sa.Engine) -> None:
    """Ping a pooled connection before use only when it sat idle (a restarted server, a
    dropped idle connection); one in steady use is not pinged (a round trip saved on
    every transaction).  A failed ping makes the pool replace the connection."""

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("ticketbridge_used", 0.0)
        if time.monotonic() - last > PING_AFTER_IDLE:
            try:
                cur = dbapi_conn.cursor()
                try:
                    cur.execute("SELECT 1")
                finally:
                    cur.close()
            except Exception as exc:  # any failure: take another connection
                raise sa.exc.DisconnectionError(str(exc)) from exc
        record.info["ticketbridge_used"] = time.monotonic()

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["ticketbridge_used"] = time.monotonic()


def _sqlite_pragmas(engine: sa.Engine) -> None:
    """WAL, full fsync, foreign keys, and BEGIN IMMEDIATE so writers queue instead of failing."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
