"""respx mocks httpx's own stack (httpcore): tests using it send through that stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ticketbridge.adapters.kit import http


@pytest.fixture(autouse=True)
def _httpx_stack_under_respx(request: pytest.FixtureRequest) -> Iterator[None]:
    if "respx" not in vars(request.module):
        yield
        return
    before = http.USE_AIOHTTP
    http.USE_AIOHTTP = False
    try:
        yield
    finally:
        http.USE_AIOHTTP = before
