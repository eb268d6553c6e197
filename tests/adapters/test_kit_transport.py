"""The kit's aiohttp transport on real sockets: answers as httpx would give them, and every
failure after the request may have left counts as uncertain for a write."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ticketbridge.adapters.kit.http import HttpClient, RetrySettings, default_transport
from ticketbridge.adapters.kit.transport import AiohttpTransport
from ticketbridge.errors import TransientError

pytestmark = pytest.mark.anyio

ONCE = RetrySettings(attempts=1, wait_min=0, wait_max=0)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


async def _serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def _client(url: str, timeout: float = 5.0) -> HttpClient:
    return HttpClient(
        system="s", base_url=url, timeout=timeout, retry=ONCE, transport=AiohttpTransport()
    )


async def test_clients_given_no_transport_use_it() -> None:
    transport = default_transport()
    assert isinstance(transport, AiohttpTransport)
    await transport.aclose()


async def test_an_answer_arrives_as_httpx_gives_it() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        body = gzip.compress(json.dumps({"id": 7}).encode())
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nX-Seen: one\r\nX-Seen: two\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async for url in _serve(answer):
        client = _client(url)
        try:
            resp = await client.request(
                "POST", "/notes", json={"text": "hi"}, headers={"X-Key": "k1"}, idempotent=False
            )
        finally:
            await client.aclose()
    assert 201 == resp.status_code
    assert {"id": 7} == resp.json()
    assert ["one", "two"] == resp.headers.get_list("x-seen")
    [(head, body)] = seen
    assert head.startswith(b"POST /notes HTTP/1.1\r\n")
    assert b"x-key: k1" in head.lower()
    assert {"text": "hi"} == json.loads(body)


async def test_a_refused_connection_sent_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TransientError) as failed:
            await client.write("POST", "/notes", json={"text": "hi"})
    finally:
        await client.aclose()
    assert not failed.value.uncertain


async def test_a_connection_dropped_after_the_request_leaves_the_write_uncertain() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.transport.abort()  # reset, no answer

    async for url in _serve(drop):
        client = _client(url)
        try:
            with pytest.raises(TransientError) as failed:
                await client.write("POST", "/notes", json={"text": "hi"})
        finally:
            await client.aclose()
    assert failed.value.uncertain


async def test_no_answer_in_time_leaves_the_write_uncertain() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async for url in _serve(hang):
        client = _client(url, timeout=0.3)
        try:
            with pytest.raises(TransientError) as failed:
                await client.write("POST", "/notes", json={"text": "hi"})
        finally:
            await client.aclose()
    assert failed.value.uncertain
    assert "timed out" in str(failed.value)


async def test_a_body_cut_short_leaves_the_write_uncertain() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{"id"')
        await writer.drain()
        writer.close()

    async for url in _serve(cut):
        client = _client(url)
        try:
            with pytest.raises(TransientError) as failed:
                await client.write("POST", "/notes", json={"text": "hi"})
        finally:
            await client.aclose()
    assert failed.value.uncertain
