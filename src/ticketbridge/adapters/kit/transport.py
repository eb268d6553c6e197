"""httpx's API on aiohttp's HTTP/1.1 client: the same requests for less CPU.

httpx with its own stack (httpcore, h11, anyio) spends about 1 ms of CPU per request;
sending through aiohttp's connection pool and parser takes about 0.6 ms, so
:class:`HttpClient` uses this transport whenever no other is given.  Everything above
the transport (auth, base URL, timeouts, the error mapping, retries) stays httpx's.

Errors are mapped so that the write rules hold: only a failure *before* the request
left (no connection could be made or taken from the pool in time) is an
``httpx.ConnectError`` / ``httpx.ConnectTimeout``; anything later (reset, server
disconnected, read timeout, a garbled answer) is a read or protocol error, which
leaves a write uncertain.  The body is read inside the transport, so those errors
surface here too.
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpTransport"]

#: Seconds an idle keep-alive connection is kept (below the usual 5 s of servers, so a
#: connection the server is about to drop is seldom reused).
KEEPALIVE = 4.0

#: Connections per transport (one transport per system), as httpx's default pool.
MAX_CONNECTIONS = 100


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    given: dict[str, float | None] = request.extensions.get("timeout", {})
    connect, pool, read = given.get("connect"), given.get("pool"), given.get("read")
    waiting = None if connect is None and pool is None else (connect or 0.0) + (pool or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=read)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` sending through one ``aiohttp.ClientSession``."""

    def __init__(self, *, verify: ssl.SSLContext | None = None) -> None:
        self._ssl = verify
        self._session: aiohttp.ClientSession | None = None
        #: ``HTTP(S)_PROXY`` / ``NO_PROXY`` from the environment, as httpx honours them.
        self._proxies = urllib.request.getproxies_environment()

    def _proxy(self, url: httpx.URL) -> str | None:
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if proxy is None or urllib.request.proxy_bypass(url.host):
            return None
        return proxy

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context = self._ssl if self._ssl is not None else httpx.create_ssl_context()
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE, ssl=context
            )
            # not trust_env: it reads the environment and ~/.netrc again on every request;
            # proxies from the environment are read once instead (see _proxy)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        body = await request.aread()
        proxy = self._proxy(request.url) if self._proxies else None
        sent = False
        try:
            async with session.request(
                request.method,
                # as httpx encoded it, byte for byte: a signed URL (a Teams workflow's
                # sig, say) must not be re-encoded on the way
                yarl.URL(str(request.url), encoded=True),
                headers=list(request.headers.multi_items()),
                data=body or None,
                allow_redirects=False,
                proxy=proxy,
                timeout=_timeout(request),
            ) as resp:
                sent = True
                content = await resp.read()
                headers = list(resp.raw_headers)
                status, reason = resp.status, resp.reason
        except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time: nothing sent
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except TimeoutError as exc:  # read timeout (aiohttp.SocketTimeoutError) and others
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientResponseError as exc:  # a garbled answer
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:  # reset, disconnected: maybe applied
            name = type(exc).__name__
            where = "while reading the answer" if sent else "before an answer came"
            raise httpx.ReadError(f"{name} {where}: {exc}", request=request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=status,
            headers=headers,
            content=content,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
