"""Paging strategies for list endpoints, and the shared latest-per-ticket dedupe.

A listing of "tickets updated since T, oldest first" shifts while it is read:
a record updated after its page was read moves to the end, and every record
behind it moves up one place, so the record that was first on the next page
slides onto the page already read and a plain walk skips it.  The strategies
here never skip a record changed while the walk is in progress:

* :class:`PageNumberPaging` (``page``/``pageSize``) and
  :class:`OffsetPaging` (``offset``/``limit``) walk page by page.
  A record that moved from a page already read to the end is read again there,
  so a walk that sees one id twice knows the listing shifted under it and walks
  again (at most ``rewalks`` more times), keeping every record seen.  Records
  that never changed are found by the second walk, changed ones at the end of
  the first.
* :class:`CursorPaging` follows a cursor or keyset the product gives (a next
  token, or the last record's ``(updated_at, id)``): nothing shifts under a
  keyset, so one walk is enough.

The end of a listing is where the product says it is: an RFC 8288 ``Link``
header without ``rel="next"`` when the product sends ``Link``; else an
``X-Total-Count`` reached; else a short page.  A product that answers the same
page twice (it ignores the paging parameter) is a ``TransientError``, not an
endless loop.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ticketbridge.adapters.kit.payload import bad_shape
from ticketbridge.domain import Ticket, TicketChange

__all__ = [
    "CursorPaging",
    "Fetch",
    "OffsetPaging",
    "Page",
    "PageNumberPaging",
    "Paging",
    "after_keyset",
    "latest_per_ticket",
]

#: Safety stop for one walk (pages, not records).
MAX_PAGES = 1000


@dataclass(frozen=True)
class Page:
    """One page of a listing: its records and the response that carried them."""

    items: list[dict[str, Any]]
    response: httpx.Response


#: Reads one page given the paging parameters to add to the listing's own query.
Fetch = Callable[[Mapping[str, Any]], Awaitable[Page]]
#: A record's identity (``id``, ``sys_id``): how a walk knows it saw a record twice.
Key = Callable[[Mapping[str, Any]], Hashable]


class Paging(abc.ABC):
    """A way of walking every page of a listing."""

    def __init__(self, *, system: str, where: str, key: Key, max_pages: int = MAX_PAGES) -> None:
        self.system = system
        self.where = where
        self.key = key
        self.max_pages = max_pages
        #: Whether the last walk stopped at ``max_pages`` with more pages to read.
        self.stopped_at_limit = False

    @abc.abstractmethod
    def pages(self, fetch: Fetch) -> AsyncGenerator[Page, None]:
        """Each page of one walk, first to last."""

    async def walk(self, fetch: Fetch) -> list[dict[str, Any]]:
        """Every record of the listing, once per key (a later read wins), in first-seen order."""
        found: dict[Hashable, dict[str, Any]] = {}
        async for page in self.pages(fetch):
            for item in page.items:
                found[self.key(item)] = item
        return list(found.values())

    def _repeats(self, previous: list[Hashable], page: Page, at: str) -> list[Hashable]:
        """The page's keys; raise when a non-empty page repeats the previous one."""
        keys = [self.key(item) for item in page.items]
        if keys and keys == previous:
            raise bad_shape(self.system, self.where, f"{at} repeats the previous page")
        return keys


def _has_next_link(resp: httpx.Response) -> bool | None:
    """``True``/``False`` when the response has a ``Link`` header, else ``None``."""
    if not resp.headers.get("link"):
        return None
    return "next" in resp.links


class _Indexed(Paging):
    """Pages addressed by number or offset; walks again when the listing shifted."""

    def __init__(
        self,
        *,
        size: int,
        system: str,
        where: str,
        key: Key,
        rewalks: int = 2,
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(system=system, where=where, key=key, max_pages=max_pages)
        if size < 1:
            raise ValueError("page size must be at least 1")
        self.size = size
        self.rewalks = rewalks
        #: Walks the last ``walk`` took (1 when nothing shifted).
        self.last_walks = 0

    @abc.abstractmethod
    def params(self, index: int) -> dict[str, Any]:
        """The paging parameters of page ``index`` (0-based)."""

    @abc.abstractmethod
    def describe(self, index: int) -> str:
        """Page ``index`` as the product names it, for errors."""

    def _more(self, page: Page, index: int) -> bool:
        link = _has_next_link(page.response)
        if link is not None:
            return link
        total = page.response.headers.get("x-total-count", "").strip()
        if total.isdigit():
            return (index + 1) * self.size < int(total)
        return len(page.items) >= self.size

    async def pages(self, fetch: Fetch) -> AsyncGenerator[Page, None]:
        previous: list[Hashable] = []
        self.stopped_at_limit = False
        for index in range(self.max_pages):
            page = await fetch(self.params(index))
            previous = self._repeats(previous, page, self.describe(index))
            yield page
            if not self._more(page, index):
                return
        self.stopped_at_limit = True

    async def walk(self, fetch: Fetch) -> list[dict[str, Any]]:
        """Every record; walks again while a walk saw a record twice (the listing shifted)."""
        key = self.key
        found: dict[Hashable, dict[str, Any]] = {}
        self.last_walks = 0
        for _ in range(1 + max(0, self.rewalks)):
            self.last_walks += 1
            seen: set[Hashable] = set()
            shifted = False
            async for page in self.pages(fetch):
                for item in page.items:
                    ident = key(item)
                    shifted = shifted or ident in seen
                    seen.add(ident)
                    found[ident] = item
            if not shifted:
                break
        return list(found.values())


class PageNumberPaging(_Indexed):
    """``?page=1&pageSize=100``, ``page=2`` ... (parameter names are settable)."""

    def __init__(
        self,
        *,
        size: int,
        system: str,
        where: str,
        key: Key,
        page_param: str = "page",
        size_param: str = "pageSize",
        first: int = 1,
        rewalks: int = 2,
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(
            size=size, system=system, where=where, key=key, rewalks=rewalks, max_pages=max_pages
        )
        self.page_param = page_param
        self.size_param = size_param
        self.first = first

    def params(self, index: int) -> dict[str, Any]:
        return {self.page_param: self.first + index, self.size_param: self.size}

    def describe(self, index: int) -> str:
        return f"page {self.first + index}"


class OffsetPaging(_Indexed):
    """``?offset=0&limit=100``, ``offset=100`` ... (parameter names are settable)."""

    def __init__(
        self,
        *,
        size: int,
        system: str,
        where: str,
        key: Key,
        offset_param: str = "offset",
        limit_param: str = "limit",
        rewalks: int = 2,
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(
            size=size, system=system, where=where, key=key, rewalks=rewalks, max_pages=max_pages
        )
        self.offset_param = offset_param
        self.limit_param = limit_param

    def params(self, index: int) -> dict[str, Any]:
        return {self.limit_param: self.size, self.offset_param: index * self.size}

    def describe(self, index: int) -> str:
        return f"offset {index * self.size}"


class CursorPaging(Paging):
    """A cursor or keyset: ``next_params`` turns a page into the next page's parameters.

    ``next_params`` returns ``None`` at the end; it may read a next token from the
    body or headers, or build a keyset from the page's last record
    (``updated > T or (updated = T and id > I)``).  With a keyset ordered by
    ``(updated_at, id)`` a record changed during the walk moves behind the
    cursor and is read there; nothing shifts onto pages already read.
    """

    def __init__(
        self,
        *,
        first: Mapping[str, Any],
        next_params: Callable[[Page], Mapping[str, Any] | None],
        system: str,
        where: str,
        key: Key,
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(system=system, where=where, key=key, max_pages=max_pages)
        self.first = dict(first)
        self.next_params = next_params

    async def pages(self, fetch: Fetch) -> AsyncGenerator[Page, None]:
        params: Mapping[str, Any] | None = self.first
        previous: list[Hashable] = []
        self.stopped_at_limit = False
        for number in range(1, self.max_pages + 1):
            if params is None:
                return
            page = await fetch(params)
            previous = self._repeats(previous, page, f"page {number}")
            yield page
            params = self.next_params(page)
        self.stopped_at_limit = params is not None


def after_keyset(
    changes: Iterable[TicketChange], since: datetime | None, after: str | None
) -> list[TicketChange]:
    """``changes`` past the keyset ``(since, after)``: later than ``since``, or at ``since``
    with an id after ``after`` in listing order; all at or after ``since`` when ``after`` is
    ``None``."""
    if since is None:
        return list(changes)
    if after is None:
        return [c for c in changes if c.updated_at >= since]
    anchor = (since, _id_order(after))
    return [c for c in changes if (c.updated_at, _id_order(c.ticket_id)) > anchor]


def _id_order(ticket_id: str) -> tuple[int, int, str]:
    """Numeric ids in number order, others after them in text order."""
    if ticket_id.isascii() and ticket_id.isdigit():
        return (0, int(ticket_id), "")
    return (1, 0, ticket_id)


def latest_per_ticket(
    rows: Iterable[tuple[str, datetime] | tuple[str, datetime, Ticket | None]],
) -> list[TicketChange]:
    """One change per ticket at its latest ``updated_at``, oldest first (ties by id).

    A row may carry the ticket as the listing showed it; the latest row's is kept."""
    latest: dict[str, tuple[datetime, Ticket | None]] = {}
    for row in rows:
        ticket_id, updated = row[0], row[1]
        ticket = row[2] if len(row) > 2 else None
        if ticket_id not in latest or updated >= latest[ticket_id][0]:
            latest[ticket_id] = (updated, ticket)
    changes = [TicketChange(ticket_id=k, updated_at=v, ticket=t) for k, (v, t) in latest.items()]
    changes.sort(key=lambda c: (c.updated_at, _id_order(c.ticket_id)))
    return changes
