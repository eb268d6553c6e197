"""Paging strategies: a record updated between two page reads is never skipped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ticketbridge.adapters.kit.paging import (
    CursorPaging,
    OffsetPaging,
    Page,
    PageNumberPaging,
    latest_per_ticket,
)
from ticketbridge.domain import TicketChange
from ticketbridge.errors import TransientError

pytestmark = pytest.mark.anyio


@dataclass
class Listing:
    """An 'updated since, oldest first' endpoint over records that change while it is read.

    ``on_read[n]`` runs right after the n-th request (1-based) was answered.
    ``headers`` picks what the end of the listing looks like: ``"link"``
    (RFC 8288 Link with rel=next), ``"total"`` (X-Total-Count) or ``"none"``.
    """

    updated: dict[int, int] = field(default_factory=lambda: {i: i for i in range(1, 7)})
    on_read: dict[int, Callable[[Listing], None]] = field(default_factory=dict)
    headers: str = "none"
    requests: list[dict[str, str]] = field(default_factory=list)

    def touch(self, record: int) -> None:
        self.updated[record] = max(self.updated.values()) + 1

    def ordered(self) -> list[dict[str, Any]]:
        rows = sorted(self.updated.items(), key=lambda kv: (kv[1], kv[0]))
        return [{"id": i, "updated": u} for i, u in rows]

    def handler(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.requests.append(params)
        rows = self.ordered()
        if "after_u" in params:
            key = (int(params["after_u"]), int(params["after_id"]))
            rows = [r for r in rows if (r["updated"], r["id"]) > key]
        if "page" in params:
            size = int(params["pageSize"])
            start = (int(params["page"]) - 1) * size
        else:
            size = int(params.get("limit", "2"))
            start = int(params.get("offset", "0"))
        chunk = rows[start : start + size]
        headers: dict[str, str] = {}
        if self.headers == "total":
            headers["X-Total-Count"] = str(len(rows))
        elif self.headers == "link":
            rel = "next" if start + size < len(rows) else "last"
            headers["Link"] = f'<http://api.invalid/items?offset={start + size}>; rel="{rel}"'
        response = httpx.Response(200, json=chunk, headers=headers)
        hook = self.on_read.get(len(self.requests))
        if hook is not None:
            hook(self)
        return response

    def fetcher(self) -> Callable[[Mapping[str, Any]], Any]:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

        async def fetch(paging: Mapping[str, Any]) -> Page:
            resp = await client.get("http://api.invalid/items", params=dict(paging))
            return Page(resp.json(), resp)

        return fetch


def key(item: Mapping[str, Any]) -> int:
    return int(item["id"])


def page_numbers(size: int = 2, rewalks: int = 2) -> PageNumberPaging:
    return PageNumberPaging(size=size, system="acme", where="GET /items", key=key, rewalks=rewalks)


def offsets(size: int = 2, rewalks: int = 2) -> OffsetPaging:
    return OffsetPaging(size=size, system="acme", where="GET /items", key=key, rewalks=rewalks)


def seen(items: list[dict[str, Any]]) -> dict[int, int]:
    return {item["id"]: item["updated"] for item in items}


STRATEGIES = [pytest.param(page_numbers, id="page-number"), pytest.param(offsets, id="offset")]


class TestIndexed:
    @pytest.mark.parametrize("make", STRATEGIES)
    @pytest.mark.parametrize("headers", ["none", "total", "link"])
    async def test_quiet_listing_one_walk(self, make: Any, headers: str) -> None:
        listing = Listing(headers=headers)
        paging = make()
        items = await paging.walk(listing.fetcher())
        assert {i: i for i in range(1, 7)} == seen(items)
        assert 1 == paging.last_walks

    @pytest.mark.parametrize("make", STRATEGIES)
    @pytest.mark.parametrize("headers", ["none", "total", "link"])
    async def test_record_on_read_page_updated_between_reads(self, make: Any, headers: str) -> None:
        """Record 1 (page 1, read) is updated before page 2 is read: record 3 slides onto
        page 1.  The walk sees record 1 twice, walks again and finds record 3."""
        listing = Listing(headers=headers, on_read={1: lambda lst: lst.touch(1)})
        paging = make()
        items = await paging.walk(listing.fetcher())
        assert {1: 7, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6} == seen(items)
        assert 2 == paging.last_walks

    @pytest.mark.parametrize("make", STRATEGIES)
    async def test_the_skip_is_real_without_a_second_walk(self, make: Any) -> None:
        """The same listing walked once (no re-walks) loses record 3: the test above is not idle."""
        listing = Listing(on_read={1: lambda lst: lst.touch(1)})
        items = await make(rewalks=0).walk(listing.fetcher())
        assert 3 not in seen(items)

    @pytest.mark.parametrize("make", STRATEGIES)
    async def test_record_on_next_page_moves_to_the_end(self, make: Any) -> None:
        """Record 3 (page 2) is updated while page 1 is read: it is read at the end, once."""
        listing = Listing(on_read={1: lambda lst: lst.touch(3)})
        paging = make()
        items = await paging.walk(listing.fetcher())
        assert {1: 1, 2: 2, 3: 7, 4: 4, 5: 5, 6: 6} == seen(items)
        assert 1 == paging.last_walks

    @pytest.mark.parametrize("make", STRATEGIES)
    async def test_busy_listing_stops_after_rewalks(self, make: Any) -> None:
        """A listing that changes during every walk is walked 1 + rewalks times, no more."""
        hooks = {
            n: (lambda lst: lst.touch(min(lst.updated, key=lst.updated.get)))
            for n in range(1, 60, 2)
        }
        listing = Listing(on_read=hooks)
        paging = make(rewalks=2)
        items = await paging.walk(listing.fetcher())
        assert 3 == paging.last_walks
        assert set(range(1, 7)) == set(seen(items))

    async def test_link_without_next_ends_a_full_page(self) -> None:
        """With Link headers, a full page without rel=next is the last: no extra request."""
        listing = Listing(headers="link", updated={1: 1, 2: 2})
        await page_numbers().walk(listing.fetcher())
        assert 1 == len(listing.requests)

    async def test_short_page_with_next_link_continues(self) -> None:
        pages = iter([[{"id": 1}], [{"id": 2}, {"id": 3}], [{"id": 4}]])
        links = iter(['<http://x/?page=2>; rel="next"', '<http://x/?page=3>; rel="next"', ""])

        async def fetch(paging: Mapping[str, Any]) -> Page:
            request = httpx.Request("GET", "http://x/")
            headers = {"Link": link} if (link := next(links)) else {}
            return Page(next(pages), httpx.Response(200, headers=headers, request=request))

        items = await page_numbers().walk(fetch)
        assert [1, 2, 3, 4] == [i["id"] for i in items]

    @pytest.mark.parametrize("make", STRATEGIES)
    async def test_server_ignoring_paging_is_transient(self, make: Any) -> None:
        async def fetch(paging: Mapping[str, Any]) -> Page:
            return Page([{"id": 1}, {"id": 2}], httpx.Response(200))

        with pytest.raises(TransientError, match="repeats the previous page"):
            await make().walk(fetch)

    def test_params(self) -> None:
        assert {"page": 3, "pageSize": 2} == page_numbers().params(2)
        paging = OffsetPaging(
            size=50,
            system="s",
            where="w",
            key=key,
            offset_param="sysparm_offset",
            limit_param="sysparm_limit",
        )
        assert {"sysparm_offset": 100, "sysparm_limit": 50} == paging.params(2)


class TestCursor:
    @staticmethod
    def keyset(size: int = 2) -> CursorPaging:
        def next_params(page: Page) -> Mapping[str, Any] | None:
            if len(page.items) < size:
                return None
            last = page.items[-1]
            return {"limit": size, "after_u": last["updated"], "after_id": last["id"]}

        return CursorPaging(
            first={"limit": size},
            next_params=next_params,
            system="acme",
            where="GET /items",
            key=key,
        )

    async def test_quiet_listing(self) -> None:
        listing = Listing()
        items = await self.keyset().walk(listing.fetcher())
        assert {i: i for i in range(1, 7)} == seen(items)

    @pytest.mark.parametrize("record", [1, 3])
    async def test_record_updated_between_reads(self, record: int) -> None:
        """Behind a keyset nothing shifts: the updated record is read again at the end."""
        listing = Listing(on_read={1: lambda lst: lst.touch(record)})
        items = await self.keyset().walk(listing.fetcher())
        assert set(range(1, 7)) == set(seen(items))
        assert 7 == seen(items)[record]

    async def test_next_token(self) -> None:
        """A product's own next token drives the walk until it is absent."""
        bodies = {None: ([{"id": 1}], "t2"), "t2": ([{"id": 2}], "t3"), "t3": ([{"id": 3}], None)}

        async def fetch(paging: Mapping[str, Any]) -> Page:
            rows, token = bodies[paging.get("cursor")]
            return Page(rows, httpx.Response(200, json={"next": token}))

        paging = CursorPaging(
            first={},
            next_params=lambda p: {"cursor": t} if (t := p.response.json()["next"]) else None,
            system="s",
            where="w",
            key=key,
        )
        assert [1, 2, 3] == [i["id"] for i in await paging.walk(fetch)]


def test_latest_per_ticket() -> None:
    t0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
    rows = [("10", t0), ("9", t0), ("2", t0 + timedelta(seconds=5)), ("10", t0 - timedelta(1))]
    expected = [
        TicketChange("9", t0),
        TicketChange("10", t0),
        TicketChange("2", t0 + timedelta(seconds=5)),
    ]
    assert expected == latest_per_ticket(rows)
