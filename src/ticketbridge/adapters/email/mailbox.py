"""The mailbox the e-mail adapter reads and keeps its copies in: IMAP or a local Maildir.

Both run their blocking calls (``imaplib``, ``mailbox``) in a worker thread.  Raw mails
are remembered by folder and UID (Maildir: file key) so a poll fetches only what is new;
that memo can be dropped at any time -- the mailbox stays the record.
"""

from __future__ import annotations

import abc
import asyncio
import imaplib
import mailbox
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from ticketbridge.adapters.email.settings import ImapSettings, MaildirSettings
from ticketbridge.errors import AuthFailedError, PermanentError, TransientError

_T = TypeVar("_T")

__all__ = ["ImapMailbox", "Mailbox", "MaildirMailbox", "StoredMail"]

SYSTEM = "email"


@dataclass(frozen=True)
class StoredMail:
    """One mail as the mailbox holds it: where, its arrival time (INTERNALDATE) and bytes."""

    folder: str
    uid: int
    arrived: datetime
    raw: bytes


class Mailbox(abc.ABC):
    #: Requests made to the mail store (IMAP commands; Maildir: directory scans).
    round_trips: int = 0

    @abc.abstractmethod
    async def check(self) -> None: ...

    @abc.abstractmethod
    async def read(self, folder: str, since: datetime) -> list[StoredMail]:
        """Mails of ``folder`` arrived on or after ``since``'s day, in arrival (UID) order."""

    @abc.abstractmethod
    async def append(self, folder: str, raw: bytes, when: datetime) -> None: ...

    @abc.abstractmethod
    async def search_header(self, folder: str, name: str, value: str) -> list[StoredMail]: ...

    async def wait(self, folder: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` for new mail; True when the server said some arrived."""
        await asyncio.sleep(timeout)
        return False

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release the connection."""


# -- IMAP ------------------------------------------------------------------------------------------
_FETCH_RE = re.compile(rb"UID (\d+)")
_DATE_RE = re.compile(rb'INTERNALDATE "([^"]+)"')


class ImapMailbox(Mailbox):
    def __init__(self, settings: ImapSettings, *, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self._ssl = ssl_context
        self._conn: imaplib.IMAP4 | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], StoredMail] = {}
        self._validity: dict[str, bytes] = {}
        self._selected: str | None = None
        self._where = f"IMAP {settings.host}:{settings.port}"

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        context = self._ssl or ssl.create_default_context()
        try:
            conn: imaplib.IMAP4
            if s.security == "tls":
                conn = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=s.timeout)
            else:
                conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                if s.security == "starttls":
                    conn.starttls(ssl_context=context)
            self.round_trips += 2
        except (OSError, imaplib.IMAP4.error) as exc:
            raise TransientError(f"{self._where}: cannot connect: {exc}", system=SYSTEM) from None
        try:
            conn.login(s.username, s.password.get_secret_value())
            self.round_trips += 1
        except imaplib.IMAP4.error as exc:
            _hang_up(conn)
            if "UNAVAILABLE" in _text(exc):  # RFC 5530: the server cannot check right now
                raise TransientError(
                    f"{self._where}: login not possible now: {_text(exc)}", system=SYSTEM
                ) from None
            raise AuthFailedError(
                f"{self._where}: login refused for {s.username}: {_text(exc)}", system=SYSTEM
            ) from None
        self._selected = None
        return conn

    def _with_conn(self, work: str, fn: Callable[..., _T], *args: object) -> _T:
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = self._connect()
                try:
                    return fn(self._conn, *args)
                except (imaplib.IMAP4.abort, OSError) as exc:
                    _hang_up(self._conn)
                    self._conn = None
                    if attempt == 2 or work == "append":
                        raise TransientError(
                            f"{self._where}: {work} failed: {exc}",
                            system=SYSTEM,
                            uncertain=work == "append",
                        ) from None
                except imaplib.IMAP4.error as exc:
                    raise PermanentError(
                        f"{self._where}: {work} refused: {_text(exc)}", system=SYSTEM
                    ) from None
        raise AssertionError("unreachable")

    def _select(self, conn: imaplib.IMAP4, folder: str) -> None:
        # a failed SELECT leaves no folder selected (RFC 3501 6.3.1): forget the old one first
        self._selected = None
        typ, data = conn.select(_quote(folder), readonly=True)
        self.round_trips += 1
        if typ != "OK":
            raise imaplib.IMAP4.error(f"cannot select {folder}: {data!r}")
        validity = conn.response("UIDVALIDITY")[1]
        value = validity[0] if validity and validity[0] else b""
        if self._validity.get(folder) not in (None, value):
            self._cache = {k: v for k, v in self._cache.items() if k[0] != folder}
        self._validity[folder] = value
        self._selected = folder

    # -- operations ---------------------------------------------------------------------
    async def check(self) -> None:
        def work(conn: imaplib.IMAP4) -> None:
            conn.noop()
            self.round_trips += 1

        await asyncio.to_thread(self._with_conn, "check", work)

    async def read(self, folder: str, since: datetime) -> list[StoredMail]:
        day = imaplib.Time2Internaldate(since.timestamp()).strip('"').split(" ")[0]
        criteria = f"SINCE {day}"
        got = await asyncio.to_thread(self._with_conn, "read", self._read, folder, criteria)
        return [m for m in got if m.arrived >= since]

    async def search_header(self, folder: str, name: str, value: str) -> list[StoredMail]:
        if not re.fullmatch(r"[A-Za-z0-9._@<>+=-]+", value):
            raise ValueError("searched header values are plain tokens")
        criteria = f'HEADER {name} "{value}"'
        got = await asyncio.to_thread(self._with_conn, "search", self._read, folder, criteria)
        return got

    def _read(self, conn: imaplib.IMAP4, folder: str, criteria: str) -> list[StoredMail]:
        if self._selected != folder:
            try:
                self._select(conn, folder)
            except imaplib.IMAP4.error:
                if folder.upper() == "INBOX":
                    raise
                return []  # a Sent folder not made yet holds nothing
        else:
            conn.noop()  # lets the server announce new mail in the selected folder
            self.round_trips += 1
        typ, data = conn.uid("SEARCH", criteria)
        self.round_trips += 1
        if typ != "OK":
            raise imaplib.IMAP4.error(f"search refused: {data!r}")
        uids = [int(u) for u in (data[0] or b"").split()]
        missing = [u for u in uids if (folder, u) not in self._cache]
        if missing:
            wanted = ",".join(str(u) for u in missing)
            typ, fetched = conn.uid("FETCH", wanted, "(UID INTERNALDATE BODY.PEEK[])")
            self.round_trips += 1
            if typ != "OK":
                raise imaplib.IMAP4.error(f"fetch refused: {fetched!r}")
            for item in fetched:
                if not isinstance(item, tuple):
                    continue
                head, raw = item
                uid = _FETCH_RE.search(head)
                date = _DATE_RE.search(head)
                if uid is None or date is None:
                    continue
                arrived = _internaldate(date.group(1).decode())
                key = (folder, int(uid.group(1)))
                self._cache[key] = StoredMail(folder, key[1], arrived, bytes(raw))
        return [self._cache[(folder, u)] for u in uids if (folder, u) in self._cache]

    async def append(self, folder: str, raw: bytes, when: datetime) -> None:
        def work(conn: imaplib.IMAP4) -> None:
            stamp = imaplib.Time2Internaldate(when.timestamp())
            typ, data = conn.append(_quote(folder), r"(\Seen)", stamp, raw)
            self.round_trips += 1
            if typ != "OK" and b"TRYCREATE" in b" ".join(d for d in data if d):
                conn.create(_quote(folder))
                typ, data = conn.append(_quote(folder), r"(\Seen)", stamp, raw)
                self.round_trips += 2
            if typ != "OK":
                raise imaplib.IMAP4.error(f"append to {folder} refused: {data!r}")

        await asyncio.to_thread(self._with_conn, "append", work)

    async def wait(self, folder: str, timeout: float) -> bool:  # noqa: ASYNC109
        """IMAP IDLE (RFC 2177) on ``folder`` when the server offers it, else sleep."""
        if not self.settings.idle:
            return await super().wait(folder, timeout)
        result = await asyncio.to_thread(self._with_conn, "idle", self._idle, folder, timeout)
        if result is None:
            return await super().wait(folder, timeout)
        return bool(result)

    def _idle(self, conn: imaplib.IMAP4, folder: str, timeout: float) -> bool | None:
        if "IDLE" not in conn.capabilities:
            return None
        if self._selected != folder:
            self._select(conn, folder)
        tag = conn._new_tag()
        conn.send(tag + b" IDLE\r\n")
        self.round_trips += 1
        if not conn.readline().startswith(b"+"):
            raise imaplib.IMAP4.abort("IDLE refused")
        sock: socket.socket = conn.sock
        woke = False
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    line = conn.readline()
                except TimeoutError:
                    break
                if not line:
                    raise imaplib.IMAP4.abort("connection closed during IDLE")
                if re.match(rb"\* \d+ (EXISTS|RECENT)", line):
                    woke = True
                    break
        finally:
            sock.settimeout(self.settings.timeout)
            conn.send(b"DONE\r\n")
            while True:
                line = conn.readline()
                if not line or line.startswith(tag):
                    break
        return woke

    async def aclose(self) -> None:
        def work() -> None:
            with self._lock:
                if self._conn is not None:
                    _hang_up(self._conn)
                    self._conn = None

        await asyncio.to_thread(work)


def _hang_up(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except (OSError, imaplib.IMAP4.error):
        pass


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _internaldate(value: str) -> datetime:
    parsed = imaplib.Internaldate2tuple(f'INTERNALDATE "{value}"'.encode())
    if parsed is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(time.mktime(parsed), UTC)


# -- Maildir ---------------------------------------------------------------------------------------
class MaildirMailbox(Mailbox):
    """A local Maildir (Maildir++ sub-folders for the copies); a mail's file time is its arrival."""

    def __init__(self, settings: MaildirSettings) -> None:
        self.settings = settings
        self.path = Path(settings.maildir)
        self._lock = threading.Lock()

    def _box(self, folder: str) -> mailbox.Maildir:
        root = mailbox.Maildir(self.path, create=True)
        if folder.upper() == "INBOX":
            return root
        if folder not in root.list_folders():
            return root.add_folder(folder)
        return root.get_folder(folder)

    async def check(self) -> None:
        def work() -> None:
            try:
                self._box("INBOX")
            except OSError as exc:
                raise PermanentError(f"Maildir {self.path}: {exc}", system=SYSTEM) from None

        await asyncio.to_thread(work)

    def _all(self, folder: str) -> list[StoredMail]:
        with self._lock:
            box = self._box(folder)
            self.round_trips += 1
            # Arrival second, then when the file was put there (same-second mails in order).
            found: list[tuple[int, int, StoredMail]] = []
            for key in list(box.iterkeys()):
                try:
                    path = Path(box._path) / box._lookup(key)  # type: ignore[attr-defined]
                    stat = path.stat()
                    raw = path.read_bytes()
                except (OSError, KeyError):
                    continue  # moved or deleted meanwhile
                arrived = datetime.fromtimestamp(int(stat.st_mtime), UTC)
                order = (int(stat.st_mtime), stat.st_ctime_ns)
                found.append((*order, StoredMail(folder, 0, arrived, raw)))
        found.sort(key=lambda item: (item[0], item[1]))
        return [
            StoredMail(m.folder, n, m.arrived, m.raw) for n, (_, _, m) in enumerate(found, start=1)
        ]

    async def read(self, folder: str, since: datetime) -> list[StoredMail]:
        mails = await asyncio.to_thread(self._all, folder)
        return [m for m in mails if m.arrived >= since]

    async def search_header(self, folder: str, name: str, value: str) -> list[StoredMail]:
        pattern = re.compile(
            rb"^" + re.escape(name.encode()) + rb":[ \t]*" + re.escape(value.encode()) + rb"\s*$",
            re.IGNORECASE | re.MULTILINE,
        )
        mails = await asyncio.to_thread(self._all, folder)
        return [m for m in mails if pattern.search(re.split(rb"\r?\n\r?\n", m.raw, maxsplit=1)[0])]

    async def append(self, folder: str, raw: bytes, when: datetime) -> None:
        def work() -> None:
            with self._lock:
                message = mailbox.MaildirMessage(raw)
                message.set_date(when.timestamp())
                message.set_subdir("cur")
                message.add_flag("S")
                self._box(folder).add(message)
                self.round_trips += 1

        try:
            await asyncio.to_thread(work)
        except OSError as exc:
            raise TransientError(f"Maildir {self.path}: {exc}", system=SYSTEM) from None

    async def wait(self, folder: str, timeout: float) -> bool:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        before = await asyncio.to_thread(self._count, folder)
        while time.monotonic() < deadline:
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            if await asyncio.to_thread(self._count, folder) != before:
                return True
        return False

    def _count(self, folder: str) -> int:
        with self._lock:
            box = self._box(folder)
            return len(box)
