"""Group commit: many small writes that arrive together share one transaction.

Webhook intake inserts one inbox row per delivery.  Each transaction costs a commit (an
fsync on SQLite, a round trip on PostgreSQL) and a hop to a store thread; at hundreds of
deliveries a second those, not the inserts, are the limit.  ``GroupCommit`` queues the
items submitted while a transaction is in flight and writes them all in the next one,
so the cost of a commit is shared by however many deliveries arrived meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

from sqlalchemy.engine import Connection

from ticketbridge.store.db import Store

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Submit items one by one; ``write(conn, items)`` stores them a batch at a time.

    ``write`` returns one result per item, in order.  A batch is one transaction: when
    it fails, every item of that batch gets the error (and nothing of it is stored);
    with ``isolate``, the items of a failed batch are written again one transaction
    each instead, so only the item at fault fails.  Items keep their submission order
    across batches.
    """

    def __init__(
        self,
        store: Store,
        write: Callable[[Connection, Sequence[T]], Sequence[R]],
        *,
        max_batch: int = 500,
        isolate: bool = False,
    ) -> None:
        self.store = store
        self._write = write
        self._max_batch = max_batch
        self._isolate = isolate
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait until its batch is committed; its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            parts = [batch]
            while parts:
                part = parts.pop(0)
                items = [item for item, _ in part]
                try:
                    results = await self.store.run(partial(self._write_batch, items))
                except Exception as exc:  # noqa: BLE001 - every submitter of the batch hears why
                    if self._isolate and len(part) > 1:
                        parts[:0] = [[one] for one in part]  # again, one transaction each
                        continue
                    for _, future in part:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled (loop shutting down): so are its submitters
                    for _, future in [pair for p in [part, *parts] for pair in p] + self._pending:
                        future.cancel()
                    raise
                for (_, future), result in zip(part, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    def _write_batch(self, items: Sequence[T], conn: Connection) -> Sequence[R]:
        results = self._write(conn, items)
        if len(results) != len(items):
            raise ValueError(f"{len(items)} items written but {len(results)} results returned")
        return results
