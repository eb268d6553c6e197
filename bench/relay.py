"""A minimal stateless relay, the harness's ceiling: what a generic tool would do.

Receives a ConnectWise callback, checks its signature against the signing key (fetched
once per key URL, then cached), reads the ticket's newest note (one GET) and adds it to
the linked ServiceNow incident (one PATCH), with aiohttp.  No store, no retry, no ledger.

``python -m bench.relay --cw URL --sn URL --links FILE`` (FILE: ``{"<ticket id>":
"<incident sys_id>"}``) prints its URL on one line, then serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

import aiohttp

from ticketbridge.adapters.connectwise.actor import CW_ACCEPT, CW_PREFIX


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Relay:
    def __init__(self, cw_url: str, sn_url: str, links: dict[int, str]) -> None:
        self.cw_api = cw_url + CW_PREFIX
        self.sn_url = sn_url
        self.cw = aiohttp.ClientSession(
            headers={
                "Authorization": _basic("msp+pub", "priv"),
                "clientId": "00000000-0000-0000-0000-000000000000",
                "Accept": CW_ACCEPT,
            }
        )
        self.sn = aiohttp.ClientSession(
            headers={"Authorization": _basic("ticketbridge.integration", "integration-pass")}
        )
        self.links = links
        self.keys: dict[str, bytes] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        while line := await reader.readline():
            headers: dict[str, str] = {}
            while (raw := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = raw.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            ok = line.startswith(b"POST") and await self.accept(body, headers)
            status = "202 Accepted" if ok else "401 Unauthorized"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        writer.close()
        self.writers.discard(writer)

    async def accept(self, body: bytes, headers: dict[str, str]) -> bool:
        payload = json.loads(body)
        url = payload["Metadata"]["key_url"]
        if url not in self.keys:
            async with self.cw.get(url) as resp:
                key = (await resp.json())["signing_key"]
            self.keys[url] = hashlib.sha256(key.encode()).digest()
        mac = hmac.new(self.keys[url], body, hashlib.sha256).digest()
        if not hmac.compare_digest(
            base64.b64encode(mac).decode(), headers.get("x-content-signature", "")
        ):
            return False
        task = asyncio.create_task(self.mirror(int(payload["ID"])))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def mirror(self, ticket_id: int) -> None:
        sys_id = self.links.get(ticket_id)
        if sys_id is None:
            return
        async with self.cw.get(
            f"{self.cw_api}/service/tickets/{ticket_id}/notes",
            params={"orderBy": "id desc", "pageSize": "1"},
        ) as resp:
            newest = await resp.json(content_type=None)
        if newest:
            patch = {"work_notes": newest[0]["text"]}
            url = f"{self.sn_url}/api/now/table/incident/{sys_id}"
            async with self.sn.patch(url, json=patch) as resp:
                await resp.read()


async def main_async(args: argparse.Namespace, links: dict[int, str]) -> None:
    relay = Relay(args.cw, args.sn, links)
    server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    server.close()
    for writer in list(relay.writers):
        writer.close()
    await relay.cw.close()
    await relay.sn.close()
    await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cw", required=True)
    parser.add_argument("--sn", required=True)
    parser.add_argument("--links", required=True)
    args = parser.parse_args()
    links = {int(k): v for k, v in json.loads(Path(args.links).read_text()).items()}
    asyncio.run(main_async(args, links))


if __name__ == "__main__":
    main()
