"""The adapter kit builds each request itself: the same request httpx's client would."""

from __future__ import annotations

import httpx
import pytest

from ticketbridge.adapters.kit.http import HttpClient

pytestmark = pytest.mark.anyio

BASES = ["https://acme.service-now.com", "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/"]
CASES: list[tuple[str, dict[str, object] | None]] = [
    ("/api/now/table/incident/abc", None),
    ("service/tickets/12/notes", {"pageSize": 1000, "conditions": 'ticketId = 12 and x="a b"'}),
    ("/api/now/table/incident", {"sysparm_query": "a=b^c>=2025-03-01 10:00:00", "n": None}),
    ("/search?q=one&page=2", {"page": 3, "tag": ["x", "y"]}),
    ("https://other.example/full/path?a=1", {"b": "ü &="}),
    ("", None),
]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(("path", "params"), CASES)
async def test_same_request_as_httpx(base: str, path: str, params: dict[str, object]) -> None:
    ours = HttpClient(system="x", base_url=base, headers={"X-Product": "1"}, timeout=7.0)
    plain = httpx.AsyncClient(base_url=base.rstrip("/"), headers={"X-Product": "1"}, timeout=7.0)
    for client in (ours._client, plain):  # a session cookie the product set goes back
        client.cookies.set("JSESSIONID", "abc123", domain=httpx.URL(base).host)
    try:
        got = ours._build(
            "PATCH", path, params, {"a": 1}, {"X-Extra": "2"}, httpx.USE_CLIENT_DEFAULT
        )
        want = plain.build_request(
            "PATCH", path, params=params, json={"a": 1}, headers={"X-Extra": "2"}
        )
        assert str(want.url) == str(got.url)
        assert want.headers.multi_items() == got.headers.multi_items()
        assert want.content == got.content
        assert want.extensions["timeout"] == got.extensions["timeout"]
        short = ours._build("GET", path, params, None, None, 1.5)
        assert {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5} == short.extensions[
            "timeout"
        ]
    finally:
        await ours.aclose()
        await plain.aclose()
