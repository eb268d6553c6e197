"""Client service closeout: when a client leaves, every vendor ticket of its open tickets is
completed or cancelled, and the closeout is done only when each vendor confirms it.

The open ticket review (:func:`review`) lists the client's open linked tickets with their
vendor tickets, the vendors' statuses, open supplier-SLA clocks and running escalation
chains; it reads the store only.  Applying it (:class:`Closer`) is resumable and writes
nothing twice:

1. In one transaction: the closeout is recorded (or the client's unfinished one is taken
   up again), the rules stop acting on the client's links (their timers are cleared and the
   rules skip them from then on: no escalation step, no client update), and each vendor
   ticket still open gets its closing note and, where the product has one, its completing or
   cancelling status -- as outbox rows keyed by the vendor ticket's own identity, so a
   second run, or a store restored from a backup, queues nothing again.
2. The writes go out through the dispatcher (as any replica's would; a running daemon may
   send them just as well), then each vendor ticket is read back until its status class is
   resolved, closed or cancelled, or until the timeout.
3. Every ticket's outcome is recorded (confirmed, refused with the vendor's error, or still
   open with its status); the closeout is ``done`` only when every vendor ticket is
   confirmed, and otherwise says which are open and why.

A ticket is completed when its PSA ticket is named in ``complete`` or its vendor already
resolved it; every other one is cancelled (the client is leaving: the work stops).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog
from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.engine import Connection

from ticketbridge.adapters.base import Capability, ClosingTerms, TicketAdapter
from ticketbridge.clock import Clock
from ticketbridge.config import TicketBridgeConfig
from ticketbridge.domain import StatusClass, Ticket, Visibility, idempotency_key
from ticketbridge.errors import AdapterError
from ticketbridge.operations import AddNote, UpdateTicket
from ticketbridge.store import Store, repo
from ticketbridge.store import closeout as co_store
from ticketbridge.store.closeout import CloseoutRow, CloseoutTicketRow
from ticketbridge.store.rows import ClockRow, LinkRow, OutboxRow

__all__ = [
    "FINISHED",
    "CloseoutError",
    "Closer",
    "Disposition",
    "Outcome",
    "Progress",
    "Review",
    "ReviewedTicket",
    "TicketState",
    "Unlinked",
    "closing_terms",
    "review",
    "review_in",
    "unlinked",
    "write_keys",
]

log = structlog.get_logger("ticketbridge.closeout")


class Disposition(StrEnum):
    """What the closeout does with a ticket at its vendor."""

    COMPLETE = "complete"
    CANCEL = "cancel"
    #: No vendor ticket (a ticket only watched by the rules): nothing to close.
    NONE = "none"


class TicketState(StrEnum):
    """Where a closeout ticket stands, as last seen."""

    #: The closing writes are queued or sent; the vendor has not confirmed yet.
    QUEUED = "queued"
    #: The vendor ticket reads back resolved, closed or cancelled.
    CONFIRMED = "confirmed"
    #: The vendor refused a closing write (dead-lettered): ``reason`` holds its error.
    REFUSED = "refused"
    #: No confirmation within the timeout: ``reason`` holds the vendor's status.
    OPEN = "open"
    #: Nothing at a vendor to close.
    NOTHING = "nothing_to_close"


#: States that let the closeout be done.
FINISHED = frozenset({TicketState.CONFIRMED, TicketState.NOTHING})


class CloseoutError(Exception):
    """The closeout cannot go ahead (an unknown system, a template that does not render)."""


@dataclass(frozen=True, slots=True)
class ReviewedTicket:
    """One open PSA ticket of the client in the open ticket review."""

    link: LinkRow
    vendor_class: StatusClass | None
    clock: ClockRow | None
    chains: tuple[str, ...]
    outcome: CloseoutTicketRow | None = None

    @property
    def psa_ticket(self) -> str:
        return self.link.psa_number or self.link.psa_ticket_id

    @property
    def vendor_ticket(self) -> str | None:
        return self.link.vendor_number or self.link.vendor_ticket_id

    @property
    def summary(self) -> str:
        return str((self.link.psa_snapshot or {}).get("summary") or "")

    def as_row(self) -> dict[str, Any]:
        """The review's listing row (``ticketbridge closeout CLIENT``)."""
        clock = self.clock
        return {
            "psa_ticket": self.psa_ticket,
            "summary": self.summary,
            "psa_status": self.link.psa_status,
            "vendor": self.link.vendor_system if self.link.vendor_ticket_id else None,
            "vendor_ticket": self.vendor_ticket,
            "vendor_status": (self.outcome.vendor_status if self.outcome else None)
            or self.link.vendor_status,
            "vendor_class": None if self.vendor_class is None else self.vendor_class.value,
            "sla_clock": None
            if clock is None
            else f"{clock.contract} P{clock.priority or '-'}"
            + (" BREACHED" if clock.breached else "")
            + (f" next {clock.next_wakeup:%Y-%m-%d %H:%M}Z" if clock.next_wakeup else ""),
            "chains": ", ".join(self.chains),
            "closeout": None if self.outcome is None else self.outcome.state,
            "reason": None if self.outcome is None else self.outcome.reason,
        }


@dataclass(frozen=True, slots=True)
class Review:
    """The open ticket review of a client: its open tickets and its latest closeout."""

    client: str
    tickets: tuple[ReviewedTicket, ...]
    closeout: CloseoutRow | None


def _class_of(adapters: Mapping[str, TicketAdapter], link: LinkRow) -> StatusClass | None:
    adapter = adapters.get(link.vendor_system)
    if adapter is None or link.vendor_status is None:
        return None
    return adapter.status_class_of(link.vendor_status)


def review(store: Store, adapters: Mapping[str, TicketAdapter], client: str) -> Review:
    """The client's open linked tickets as the store knows them (no API call): the dry run.

    A client's tickets are its links (``company``); a PSA ticket that never reached a
    vendor or the rules' watch list is not known here."""
    with store.tx() as c:
        return review_in(c, adapters, client)


def review_in(c: Connection, adapters: Mapping[str, TicketAdapter], client: str) -> Review:
    """:func:`review` in the caller's transaction."""
    last = co_store.latest_closeout(c, client)
    found = co_store.client_links(c, client)
    outcomes: dict[int, CloseoutTicketRow] = {}
    if last is not None:
        outcomes = {row.link_id: row for row in co_store.tickets_of(c, last.id)}
        known = {link.id for link in found}
        # tickets of the closeout whose PSA ticket closed since are still the closeout's
        extra = [i for i in outcomes if i not in known]
        found += sorted(co_store.links_by_id(c, extra).values(), key=lambda link: link.id)
    ids = [link.id for link in found]
    clocks = co_store.clocks_of(c, ids)
    states = co_store.rule_states_of(c, ids)
    tickets = tuple(
        ReviewedTicket(
            link=link,
            vendor_class=_class_of(adapters, link),
            clock=clocks.get(link.id),
            chains=tuple(sorted((states[link.id].state or {}).get("chains") or {}))
            if link.id in states
            else (),
            outcome=outcomes.get(link.id),
        )
        for link in found
    )
    return Review(client, tickets, last)


@dataclass(frozen=True, slots=True)
class Unlinked:
    """Open PSA tickets of the client that no link holds (nothing of theirs at a vendor), and
    the PSA systems that cannot list a company's tickets (only links are known there)."""

    tickets: tuple[tuple[str, Ticket], ...]
    unlisted: tuple[str, ...]

    def rows(self) -> list[dict[str, Any]]:
        """Rows in the review's columns."""
        return [
            {
                "psa_ticket": ticket.ref.number or ticket.ref.id,
                "summary": ticket.summary,
                "psa_status": ticket.status,
                "closeout": "not linked",
                "reason": f"open in {system}, nothing at a vendor to close",
            }
            for system, ticket in self.tickets
        ]


async def unlinked(
    config: TicketBridgeConfig, adapters: Mapping[str, TicketAdapter], found: Review
) -> Unlinked:
    """The client's open PSA tickets that the review's links do not hold, from each PSA that
    can list a company's tickets (``TicketAdapter.open_tickets_of``)."""
    known = {(t.link.psa_system, t.link.psa_ticket_id) for t in found.tickets}
    tickets: list[tuple[str, Ticket]] = []
    unlisted: list[str] = []
    for system in dict.fromkeys(conn.psa for conn in config.connections):
        adapter = adapters.get(system)
        listed = None if adapter is None else await adapter.open_tickets_of(found.client)
        if listed is None:
            unlisted.append(system)
            continue
        tickets += [(system, t) for t in listed if (system, t.ref.id) not in known]
    return Unlinked(tuple(tickets), tuple(unlisted))


def closing_terms(config: TicketBridgeConfig, adapter: TicketAdapter) -> ClosingTerms:
    """The product's closing terms with ``systems.<name>.closing`` laid over them."""
    terms = adapter.closing_terms
    system = config.systems.get(adapter.name)
    override = None if system is None else system.closing
    if override is None:
        return terms
    return ClosingTerms(
        complete_note=override.complete_note or terms.complete_note,
        cancel_note=override.cancel_note or terms.cancel_note,
        complete_status=override.complete_status or terms.complete_status,
        cancel_status=override.cancel_status or terms.cancel_status,
    )


_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def _render(template: str, values: Mapping[str, Any], where: str) -> str:
    try:
        return _TEMPLATES.from_string(template).render(**values).strip()
    except TemplateError as exc:
        raise CloseoutError(
            f"the closing note of {where} does not render: {exc}; fix "
            f"systems.{where}.closing (variables: {', '.join(sorted(values))})"
        ) from None


def write_keys(link: LinkRow) -> tuple[str, str]:
    """The idempotency keys of a vendor ticket's closing note and closing status: made of
    the vendor ticket's own identity, so no run (nor a restored store) writes them twice."""
    vendor_id = str(link.vendor_ticket_id)
    return (
        idempotency_key(link.vendor_system, vendor_id, "closeout", "note"),
        idempotency_key(link.vendor_system, vendor_id, "closeout", "status"),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a closeout stands after a run of :meth:`Closer.apply`."""

    closeout: CloseoutRow
    tickets: tuple[ReviewedTicket, ...]
    #: Vendor reads made while waiting for confirmations.
    reads: int = 0
    elapsed: float = 0.0

    @property
    def done(self) -> bool:
        return self.closeout.state == "done"

    @property
    def still_open(self) -> list[ReviewedTicket]:
        return [t for t in self.tickets if t.outcome is None or t.outcome.state not in FINISHED]


class Progress(Protocol):
    """What the closeout reports while it runs (the CLI draws a progress bar from it)."""

    def started(self, total: int) -> None: ...

    def advanced(self, finished: int, waiting: int, note: str) -> None: ...


class _Quiet:
    def started(self, total: int) -> None:
        """Nothing to show."""

    def advanced(self, finished: int, waiting: int, note: str) -> None:
        """Nothing to show."""


@dataclass
class _Watch:
    """What one pass of the wait found."""

    finished: int = 0
    waiting: list[int] = field(default_factory=list)
    #: Refused by the vendor: waiting changes nothing until someone retries the write.
    refused: list[int] = field(default_factory=list)


Dispatch = Callable[[], Awaitable[int]]


class Closer:
    """Applies a client's closeout (see the module's docstring).

    ``dispatch`` sends the due writes once (``Dispatcher.dispatch_once``); ``sleep`` waits
    between two looks at the vendors (a test passes one that advances a fake clock)."""

    def __init__(
        self,
        config: TicketBridgeConfig,
        store: Store,
        adapters: Mapping[str, TicketAdapter],
        clock: Clock,
        dispatch: Dispatch,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self.adapters = adapters
        self.clock = clock
        self.dispatch = dispatch
        self.sleep = sleep
        self.connections = {conn.name: conn for conn in config.connections}
        #: The client, its name in notes and the tickets to complete, while applying.
        self._running: tuple[str, str | None, Collection[str]] = ("", None, ())

    # -- step 1: record, hold the rules, queue the closing writes -------------------------
    def _values(self, link: LinkRow, client: str, client_name: str | None) -> dict[str, Any]:
        snapshot = link.psa_snapshot or {}
        conn = self.connections.get(link.connection)
        msp = self.config.display_name(conn.psa if conn else link.psa_system)
        return {
            "client": client,
            "client_name": client_name or client,
            "psa_ticket": link.psa_number or link.psa_ticket_id,
            "vendor_ticket": link.vendor_number or link.vendor_ticket_id,
            "summary": str(snapshot.get("summary") or ""),
            "msp": msp,
        }

    def _adapter(self, link: LinkRow) -> TicketAdapter:
        adapter = self.adapters.get(link.vendor_system)
        if adapter is None:
            raise CloseoutError(
                f"link {link.id} names vendor system {link.vendor_system!r}, which is not "
                "configured: add it under systems, or close the link's ticket by hand"
            )
        return adapter

    def _queue(
        self,
        c: Connection,
        closeout_id: int,
        link: LinkRow,
        disposition: Disposition,
        client: str,
        client_name: str | None,
        now: datetime,
    ) -> None:
        """Queue the closing note and status of one vendor ticket, with its closeout row."""
        adapter = self._adapter(link)
        terms = closing_terms(self.config, adapter)
        complete = disposition is Disposition.COMPLETE
        note = _render(
            terms.complete_note if complete else terms.cancel_note,
            self._values(link, client, client_name),
            adapter.name,
        )
        status = terms.complete_status if complete else terms.cancel_status
        note_key, status_key = write_keys(link)
        repo.enqueue(
            c,
            link_id=link.id,
            target_system=link.vendor_system,
            operation=AddNote.op,
            key=note_key,
            payload=AddNote(note, Visibility.PUBLIC).to_json(),
            now=now,
        )
        if status is not None and Capability.SET_STATUS in adapter.capabilities:
            repo.enqueue(
                c,
                link_id=link.id,
                target_system=link.vendor_system,
                operation=UpdateTicket.op,
                key=status_key,
                payload=UpdateTicket.of(status=status).to_json(),
                now=now,
            )
        co_store.add_ticket(
            c, closeout_id, link.id, disposition=disposition.value, state="queued", now=now
        )
        repo.add_event(
            c,
            "closeout_requested",
            now=now,
            link_id=link.id,
            connection=link.connection,
            system=link.vendor_system,
            ticket_id=link.vendor_ticket_id,
            closeout_id=closeout_id,
            disposition=disposition.value,
            status=status,
        )

    async def _begin(self, client: str, client_name: str | None, complete: Collection[str]) -> int:
        """Step 1 in one transaction; the closeout's id."""
        now = self.clock.now()

        def begin(c: Connection) -> int:
            last = co_store.latest_closeout(c, client)
            found = co_store.client_links(c, client)
            # tickets a closeout (this one or an earlier) covers are never added again
            covered = co_store.covered(c, [link.id for link in found])
            fresh = [link for link in found if link.id not in covered]
            if last is not None and last.state == "closing":
                closeout_id = last.id
            elif fresh or last is None:
                closeout_id = co_store.start_closeout(c, client, now)
            else:
                return last.id  # done, and no ticket opened since: nothing more to do
            stopped = co_store.hold_rules(c, [link.id for link in fresh], now)
            ours = {key for link in fresh if link.vendor_ticket_id for key in write_keys(link)}
            for row in co_store.cancel_rule_writes(c, [link.id for link in fresh], keep=ours):
                repo.add_event(
                    c,
                    "write_cancelled",
                    now=now,
                    link_id=row.link_id,
                    system=row.target_system,
                    operation=row.operation,
                    reason="closeout",
                    closeout_id=closeout_id,
                )
            for link_id, chains in stopped.items():
                for chain in chains:
                    repo.add_event(
                        c,
                        "rule_chain_stopped",
                        now=now,
                        link_id=link_id,
                        rule=chain,
                        reason="closeout",
                        closeout_id=closeout_id,
                    )
            for link in fresh:
                self._add(c, closeout_id, link, client, client_name, complete, now)
            self._catch_up(c, closeout_id, client, client_name, complete, now)
            return closeout_id

        return await self.store.run(begin)

    def _catch_up(
        self,
        c: Connection,
        closeout_id: int,
        client: str,
        client_name: str | None,
        complete: Collection[str],
        now: datetime,
    ) -> None:
        """Tickets of the closeout whose vendor ticket did not exist yet when they were
        added, and exists now: their closing writes are queued (once: by their keys)."""
        rows = [r for r in co_store.tickets_of(c, closeout_id) if r.state not in FINISHED]
        found = co_store.links_by_id(c, [r.link_id for r in rows])
        created = [link for link in found.values() if link.vendor_ticket_id is not None]
        queued = co_store.outbox_by_key(c, [k for link in created for k in write_keys(link)])
        for row in rows:
            link = found[row.link_id]
            if link.vendor_ticket_id is None:
                continue
            if any(key in queued for key in write_keys(link)):
                continue  # queued before: nothing to catch up
            disposition = self._disposition(link, complete)
            self._queue(c, closeout_id, link, disposition, client, client_name, now)
            co_store.update_ticket(
                c,
                row.id,
                state=TicketState.QUEUED.value,
                disposition=disposition.value,
                reason=None,
                updated_at=now,
            )

    @staticmethod
    def _disposition(link: LinkRow, complete: Collection[str]) -> Disposition:
        """Complete the ticket when its PSA ticket is named in ``complete``, else cancel it."""
        named = {link.psa_ticket_id, link.psa_number} & set(complete)
        return Disposition.COMPLETE if named else Disposition.CANCEL

    def _add(
        self,
        c: Connection,
        closeout_id: int,
        link: LinkRow,
        client: str,
        client_name: str | None,
        complete: Collection[str],
        now: datetime,
    ) -> None:
        if link.vendor_ticket_id is None:
            if link.state == "creating":  # its vendor ticket is being opened: wait for it
                co_store.add_ticket(
                    c,
                    closeout_id,
                    link.id,
                    disposition=Disposition.CANCEL.value,
                    state="open",
                    now=now,
                    reason="the vendor ticket is not created yet; run the closeout again "
                    "once it is",
                )
                return
            co_store.add_ticket(
                c,
                closeout_id,
                link.id,
                disposition=Disposition.NONE.value,
                state=TicketState.NOTHING.value,
                now=now,
                reason="no vendor ticket",
            )
            return
        known = _class_of(self.adapters, link)
        if known is not None and known.is_done:
            co_store.add_ticket(
                c,
                closeout_id,
                link.id,
                disposition=Disposition.COMPLETE.value,
                state=TicketState.CONFIRMED.value,
                vendor_status=link.vendor_status,
                now=now,
                reason=f"already {known.value} at the vendor",
            )
            return
        disposition = self._disposition(link, complete)
        self._queue(c, closeout_id, link, disposition, client, client_name, now)

    # -- step 2 and 3: send, wait for the vendors, record ----------------------------------
    async def apply(
        self,
        client: str,
        *,
        complete: Collection[str] = (),
        client_name: str | None = None,
        timeout: float = 300.0,  # noqa: ASYNC109 - bounds the wait for vendors, not a call
        poll_every: float = 5.0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Close the client out (or continue its unfinished closeout); the outcome.

        ``timeout`` bounds the wait for the vendors' confirmations (seconds of this
        process's running time); the closeout stays ``closing`` when one is missing, and
        running it again continues where this run stopped.  ``client_name`` is how the
        closing notes name the client (default: ``client``)."""
        shown = progress or _Quiet()
        started = time.monotonic()
        self._running = (client, client_name, complete)
        closeout_id = await self._begin(client, client_name, complete)
        reads = 0
        first = True
        while True:
            sent = await self.dispatch()
            watch, made = await self._look(closeout_id)
            reads += made
            if first:
                shown.started(watch.finished + len(watch.waiting) + len(watch.refused))
                first = False
            late = time.monotonic() - started >= timeout
            note = (
                f"{len(watch.waiting)} vendor ticket(s) not confirmed yet"
                if watch.waiting
                else "vendor tickets confirmed"
            ) + (f", {len(watch.refused)} refused" if watch.refused else "")
            shown.advanced(watch.finished, len(watch.waiting), note)
            if not watch.waiting or late:
                break
            if not sent:  # writes still going out are sent at once; vendors get time
                await self.sleep(poll_every)
        outcome = await self._finish(closeout_id, client, timeout)
        return Outcome(
            outcome.closeout, outcome.tickets, reads=reads, elapsed=time.monotonic() - started
        )

    async def _look(self, closeout_id: int) -> tuple[_Watch, int]:
        """One look at every ticket not finished: its writes, then its vendor ticket."""

        def load(
            c: Connection,
        ) -> tuple[list[CloseoutTicketRow], dict[int, LinkRow], dict[str, OutboxRow]]:
            client, client_name, complete = self._running
            # a vendor ticket created while the closeout runs gets its closing writes now
            self._catch_up(c, closeout_id, client, client_name, complete, self.clock.now())
            rows = co_store.tickets_of(c, closeout_id)
            found = co_store.links_by_id(c, [row.link_id for row in rows])
            keys = [
                key for link in found.values() if link.vendor_ticket_id for key in write_keys(link)
            ]
            return rows, found, co_store.outbox_by_key(c, keys)

        rows, found, writes = await self.store.run(load)
        watch = _Watch()
        updates: list[tuple[CloseoutTicketRow, dict[str, Any]]] = []
        reads = 0
        for row in rows:
            if row.state in FINISHED:
                watch.finished += 1
                continue
            link = found[row.link_id]
            if link.vendor_ticket_id is None:
                watch.waiting.append(row.id)
                continue
            mine = [writes[key] for key in write_keys(link) if key in writes]
            dead = [w for w in mine if w.state == "dead"]
            if dead:
                error = "; ".join(f"{w.operation}: {w.last_error}" for w in dead)
                updates.append((row, {"state": TicketState.REFUSED.value, "reason": error}))
                watch.refused.append(row.id)
                continue
            going = [w for w in mine if w.state in ("pending", "sending")]
            if going:
                failing = [w.last_error for w in going if w.last_error]
                reason = (
                    f"a closing write is waiting to be retried: {failing[0]}"
                    if failing
                    else "the closing writes are being sent"
                )
                updates.append((row, {"state": TicketState.QUEUED.value, "reason": reason}))
                watch.waiting.append(row.id)
                continue
            reads += 1
            try:
                ticket = await self._adapter(link).get_ticket(link.vendor_ticket_id)
            except AdapterError as exc:
                reason = f"the vendor ticket could not be read: {exc}"
                updates.append((row, {"state": TicketState.QUEUED.value, "reason": reason}))
                watch.waiting.append(row.id)
                continue
            if ticket.status_class.is_done:
                updates.append(
                    (
                        row,
                        {
                            "state": TicketState.CONFIRMED.value,
                            "vendor_status": ticket.status,
                            "reason": None,
                            "confirmed_at": self.clock.now(),
                        },
                    )
                )
                watch.finished += 1
            else:
                reason = (
                    f"the vendor ticket is still {ticket.status!r} "
                    f"({ticket.status_class.value}) after the closing writes"
                )
                updates.append(
                    (
                        row,
                        {
                            "state": TicketState.QUEUED.value,
                            "vendor_status": ticket.status,
                            "reason": reason,
                        },
                    )
                )
                watch.waiting.append(row.id)
        if updates:
            now = self.clock.now()

            def record(c: Connection) -> None:
                for row, values in updates:
                    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
                    if not changed:
                        continue
                    co_store.update_ticket(c, row.id, updated_at=now, **changed)
                    if changed.get("state") in (TicketState.CONFIRMED, TicketState.REFUSED):
                        repo.add_event(
                            c,
                            f"closeout_{changed['state']}",
                            now=now,
                            link_id=row.link_id,
                            closeout_id=closeout_id,
                            vendor_status=values.get("vendor_status"),
                            reason=values.get("reason"),
                        )

            await self.store.run(record)
        return watch, reads

    async def _finish(self, closeout_id: int, client: str, waited: float) -> Outcome:
        """Record the outcome: done when every ticket is finished, else which are open."""
        now = self.clock.now()

        def finish(c: Connection) -> tuple[CloseoutRow, Review]:
            rows = co_store.tickets_of(c, closeout_id)
            found = co_store.links_by_id(c, [row.link_id for row in rows])
            open_now = [link.id for link in co_store.client_links(c, client)]
            known = co_store.covered(c, open_now)
            late = [link_id for link_id in open_now if link_id not in known]
            problems: list[str] = []
            for row in rows:
                if row.state in FINISHED:
                    continue
                link = found[row.link_id]
                label = link.vendor_number or link.vendor_ticket_id or "(not created)"
                why = row.reason or "not confirmed"
                if row.state == TicketState.QUEUED:
                    why = f"no confirmation within {waited:g}s: {why}"
                    co_store.update_ticket(
                        c, row.id, state=TicketState.OPEN.value, reason=why, updated_at=now
                    )
                problems.append(
                    f"PSA ticket {link.psa_number or link.psa_ticket_id} "
                    f"({link.vendor_system} {label}): {why}"
                )
            if late:
                problems.append(f"{len(late)} ticket(s) opened during the closeout: run it again")
            done = not problems
            before = co_store.closeout_by_id(c, closeout_id)
            if before is not None and before.state != "done":  # a done one keeps its record
                reason = "\n".join(problems) or None
                co_store.finish(c, closeout_id, done=done, reason=reason, now=now)
                if done:
                    repo.add_event(
                        c, "closeout_done", now=now, closeout_id=closeout_id, client=client
                    )
            done_row = co_store.closeout_by_id(c, closeout_id)
            assert done_row is not None
            return done_row, review_in(c, self.adapters, client)

        row, result = await self.store.run(finish)
        log.info(
            "closeout_done" if row.state == "done" else "closeout_incomplete",
            client=client,
            closeout_id=closeout_id,
            reason=row.reason,
        )
        return Outcome(row, result.tickets)
