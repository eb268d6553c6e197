"""Pure decisions about a linked ticket: inputs built by hand, the plan asserted.  No store."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ticketbridge.config import ConnectionConfig
from ticketbridge.domain import (
    Note,
    StatusClass,
    Ticket,
    TicketRef,
    Visibility,
    idempotency_key,
    marker_for,
    note_key,
)
from ticketbridge.engine import mirror
from ticketbridge.operations import AddNote, UpdateTicket
from ticketbridge.plan import LinkUpdate, NoteCount, Plan
from ticketbridge.store.plan import LinkedTicket
from ticketbridge.store.rows import LinkRow

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
NOW = AT + timedelta(minutes=5)
SECRET = "an installation secret, 32 chars"


def conn(**kw: object) -> ConnectionConfig:
    base: dict[str, object] = {
        "name": "c",
        "psa": "cw",
        "vendor": "sn",
        "routing": {"queues": ["Vendor Escalations"]},
        "accounts": {"ACME": {"company": "abc"}},
        "status_map": {
            "psa_to_vendor": {"Waiting": "On Hold"},
            "vendor_to_psa": {"Resolved": "Done"},
        },
        "priority_map": {"psa_to_vendor": {"P1": "1", "P2": "2"}, "vendor_to_psa": {"1": "P1"}},
    }
    base.update(kw)
    return ConnectionConfig.model_validate(base)


def link(**kw: object) -> LinkRow:
    base: dict[str, object] = {
        "id": 9,
        "connection": "c",
        "psa_system": "cw",
        "psa_ticket_id": "42",
        "psa_number": "42",
        "vendor_system": "sn",
        "vendor_ticket_id": "v1",
        "vendor_number": "INC1",
        "state": "open",
        "origin": "routed",
        "company": "ACME",
        "psa_status": "New",
        "vendor_status": "New",
        "psa_priority": "P1",
        "vendor_priority": "1",
        "psa_status_written": None,
        "vendor_status_written": None,
        "vendor_assignee": "Beth",
        "psa_snapshot": None,
        "created_at": AT,
        "updated_at": AT,
    }
    base.update(kw)
    return LinkRow(**base)  # type: ignore[arg-type]


def psa_ticket(**kw: object) -> Ticket:
    base: dict[str, object] = {
        "ref": TicketRef("cw", "42", "42"),
        "summary": "Link down",
        "queue": "Vendor Escalations",
        "status": "New",
        "priority": "P1",
        "company": "ACME",
        "updated_at": AT,
    }
    base.update(kw)
    return Ticket(**base)  # type: ignore[arg-type]


def vendor_ticket(**kw: object) -> Ticket:
    base: dict[str, object] = {
        "ref": TicketRef("sn", "v1", "INC1"),
        "summary": "Link down",
        "status": "New",
        "priority": "1",
        "assignee": "Beth",
        "updated_at": AT,
    }
    base.update(kw)
    return Ticket(**base)  # type: ignore[arg-type]


def note(
    nid: str, text: str = "hello", vis: Visibility = Visibility.PUBLIC, system: str = "cw"
) -> Note:
    return Note(system, "42", nid, text, vis, AT + timedelta(seconds=int(nid)), author="Jo")


def linked(row: LinkRow | None = None, **kw: object) -> LinkedTicket:
    return LinkedTicket(row or link(), **kw)  # type: ignore[arg-type]


def key(nid: str, source: str = "cw") -> str:
    """The key of a note's mirror: the source's own identities, never the link id."""
    ticket, target = ("42", "sn") if source == "cw" else ("v1", "cw")
    return note_key(source, ticket, nid, target)


def synced(t: Ticket) -> LinkRow:
    """The link as it stands after ``t`` was seen (no field changes pending)."""
    return link(psa_snapshot=mirror.psa_snapshot(t))


class TestPsaNotes:
    def test_public_note_is_ledgered_queued_and_recorded(self):
        """A new public PSA note: a pending ledger entry, one add_note row keyed by link and
        note, a note_queued event; nothing else."""
        t = psa_ticket()
        plan = mirror.decide_psa_linked(
            conn(), linked(synced(t)), t, [note("7", "Client confirms")], psa_label="CW", now=NOW
        )
        assert [("pending", key("7"))] == [(e.state, e.key) for e in plan.ledger]
        assert 1 == len(plan.outbox)
        row = plan.outbox[0]
        assert ("sn", key("7"), NOW, AT + timedelta(seconds=7)) == (
            row.target_system,
            row.key,
            row.now,
            row.source_at,
        )
        assert isinstance(row.operation, AddNote)
        assert Visibility.PUBLIC == row.operation.visibility
        assert "Client confirms" in row.operation.text
        assert "[tb:" not in row.operation.text  # no visible marker by default
        assert not row.lookup  # a note newer than the link: nothing to adopt
        assert ["note_queued"] == [e.kind for e in plan.events]
        assert {"note_id": "7", "visibility": "public"} == dict(plan.events[0].detail)
        assert () == plan.link_updates
        assert (NoteCount("psa_to_vendor", "mirrored"),) == plan.notes

    def test_internal_note_is_withheld_by_default(self):
        """Deny by default: an internal note is ledgered as skipped and never queued."""
        t = psa_ticket()
        plan = mirror.decide_psa_linked(
            conn(),
            linked(synced(t)),
            t,
            [note("7", vis=Visibility.INTERNAL)],
            psa_label="CW",
            now=NOW,
        )
        assert [("skipped", "internal")] == [(e.state, e.reason) for e in plan.ledger]
        assert () == plan.outbox
        assert ["note_withheld"] == [e.kind for e in plan.events]
        assert (NoteCount("psa_to_vendor", "withheld"),) == plan.notes

    def test_known_notes_and_echoes_queue_nothing(self):
        """Notes already in the ledger are left alone; ours (by ledger, by author or by a
        marker signed with the secret for this ticket) are recorded as echoes, never
        queued."""
        t = psa_ticket()
        signed = marker_for("0123456789abcdef", SECRET, "cw", "42")
        notes = [
            note("1"),
            note("2"),
            note("3", f"mirrored {signed}"),
            replace(note("4"), by_us=True),
        ]
        plan = mirror.decide_psa_linked(
            conn(),
            linked(synced(t), known=frozenset({"1"}), ours=frozenset({"2"})),
            t,
            notes,
            psa_label="CW",
            now=NOW,
            secret=SECRET,
        )
        assert [("2", "echo"), ("3", "echo"), ("4", "echo")] == [
            (e.source_note_id, e.reason) for e in plan.ledger
        ]
        assert () == plan.outbox
        assert () == plan.events

    def test_text_shaped_like_a_marker_is_mirrored(self):
        """A person's note quoting an old marker, or a marker copied from another ticket,
        is not an echo: it is mirrored."""
        t = psa_ticket()
        elsewhere = marker_for("0123456789abcdef", SECRET, "cw", "43")
        notes = [
            note("1", "> quoted reply\n> [tb:0123456789abcdef]"),
            note("2", f"pasted log: {elsewhere}"),
        ]
        plan = mirror.decide_psa_linked(
            conn(), linked(synced(t)), t, notes, psa_label="CW", now=NOW, secret=SECRET
        )
        assert [key("1"), key("2")] == [r.key for r in plan.outbox]
        assert ["pending", "pending"] == [e.state for e in plan.ledger]

    def test_keys_survive_a_new_link_id(self):
        """The same note on a link re-established under another id gets the same key."""
        t = psa_ticket()
        one = mirror.decide_psa_linked(
            conn(), linked(synced(t)), t, [note("7")], psa_label="CW", now=NOW
        )
        again = mirror.decide_psa_linked(
            conn(), linked(replace(synced(t), id=77)), t, [note("7")], psa_label="CW", now=NOW
        )
        assert [key("7")] == [r.key for r in one.outbox] == [r.key for r in again.outbox]

    def test_notes_older_than_the_link_are_looked_up_first(self):
        """A link made after the note (a store lost or restored): the write may already be
        on the target, so it is looked up before it is made."""
        t = psa_ticket()
        young = replace(synced(t), created_at=AT + timedelta(hours=1))
        plan = mirror.decide_psa_linked(
            conn(), linked(young), t, [note("7")], psa_label="CW", now=NOW
        )
        assert [True] == [r.lookup for r in plan.outbox]

    def test_notes_are_planned_in_source_order(self):
        """Notes cross oldest first; the source's sequence breaks ties, not the id text."""
        t = psa_ticket()
        same = [replace(note(n), created_at=AT, sequence=int(n)) for n in ("10", "9", "11")]
        plan = mirror.decide_psa_linked(conn(), linked(synced(t)), t, same, psa_label="CW", now=NOW)
        assert [key("9"), key("10"), key("11")] == [r.key for r in plan.outbox]

    def test_same_second_notes_with_random_ids_keep_source_order(self):
        """Twenty vendor notes of one second with random ids (as journal ids are) cross in
        the source's sequence, whatever order they were handed over in; notes the source
        cannot tell apart keep the order they were listed in."""
        v = vendor_ticket()
        rng = random.Random(8)
        ids = [f"{rng.getrandbits(128):032x}" for _ in range(20)]
        notes = [
            Note("sn", "v1", nid, f"step {n}", Visibility.PUBLIC, AT, sequence=n)
            for n, nid in enumerate(ids)
        ]
        shuffled = notes[:]
        rng.shuffle(shuffled)
        plan = mirror.decide_vendor_linked(
            conn(),
            linked(vendor_seen=True),
            v,
            shuffled,
            vendor_label="SN",
            now=NOW,
        )
        assert [key(nid, "sn") for nid in ids] == [r.key for r in plan.outbox]
        tied = [replace(n, sequence=0) for n in notes]
        plan = mirror.decide_vendor_linked(
            conn(), linked(vendor_seen=True), v, tied, vendor_label="SN", now=NOW
        )
        assert [key(nid, "sn") for nid in ids] == [r.key for r in plan.outbox]

    def test_nothing_new_plans_nothing(self):
        """A ticket read again without changes makes an empty plan."""
        t = psa_ticket()
        plan = mirror.decide_psa_linked(
            conn(),
            linked(synced(t), known=frozenset({"7"})),
            t,
            [note("7")],
            psa_label="CW",
            now=NOW,
        )
        assert plan.empty
        assert Plan() == plan


class TestPsaFields:
    def test_status_change_is_carried_through_the_map(self):
        """A PSA status change is recorded and queued to the vendor under a key naming it."""
        t = psa_ticket(status="Waiting")
        plan = mirror.decide_psa_linked(
            conn(), linked(synced(psa_ticket())), t, [], psa_label="CW", now=NOW
        )
        why = f"status:Waiting:{AT}"
        assert [idempotency_key("cw", "42", why, "sn", "update_ticket")] == [
            r.key for r in plan.outbox
        ]
        assert UpdateTicket.of(status="On Hold") == plan.outbox[0].operation
        assert ["psa_status_changed"] == [e.kind for e in plan.events]
        assert {"old": "New", "new": "Waiting", "by_us": False} == {
            k: plan.events[0].detail[k] for k in ("old", "new", "by_us")
        }
        changes = plan.changes(9)
        assert ("Waiting", NOW) == (changes["psa_status"], changes["updated_at"])

    def test_own_status_write_is_not_echoed(self):
        """The status ticketbridge itself wrote is recorded, not sent back."""
        t = psa_ticket(status="Done")
        row = replace(synced(psa_ticket()), psa_status_written="Done")
        plan = mirror.decide_psa_linked(conn(), linked(row), t, [], psa_label="CW", now=NOW)
        assert () == plan.outbox
        assert True is plan.events[0].detail["by_us"]
        assert {"psa_status": "Done", "psa_status_written": None} == {
            k: plan.changes(9)[k] for k in ("psa_status", "psa_status_written")
        }

    def test_no_writes_while_the_vendor_ticket_is_created(self):
        """While the link is still creating, changes are recorded but nothing is queued."""
        t = psa_ticket(status="Waiting", priority="P2")
        row = replace(synced(psa_ticket()), state="creating")
        plan = mirror.decide_psa_linked(conn(), linked(row), t, [], psa_label="CW", now=NOW)
        assert () == plan.outbox
        assert ("Waiting", "P2") == (plan.changes(9)["psa_status"], plan.changes(9)["psa_priority"])

    def test_priority_change_is_queued(self):
        """A PSA priority change goes to the vendor through the priority map."""
        t = psa_ticket(priority="P2")
        plan = mirror.decide_psa_linked(
            conn(), linked(synced(psa_ticket())), t, [], psa_label="CW", now=NOW
        )
        assert [UpdateTicket.of(priority="2")] == [r.operation for r in plan.outbox]

    def test_closed_ticket_closes_the_link(self):
        """A PSA ticket closed on an open link: link closed, psa_ticket_closed recorded."""
        t = psa_ticket(status="Closed", status_class=StatusClass.CLOSED)
        plan = mirror.decide_psa_linked(
            conn(), linked(synced(psa_ticket())), t, [], psa_label="CW", now=NOW
        )
        assert "closed" == plan.changes(9)["state"]
        assert "psa_ticket_closed" == plan.events[-1].kind

    def test_snapshot_kept_current(self):
        """A changed summary updates the stored snapshot in one link update, with the
        ticket's own update time (a payload older than it is read again)."""
        t = replace(psa_ticket(summary="Link still down"), updated_at=NOW)
        plan = mirror.decide_psa_linked(
            conn(), linked(synced(psa_ticket())), t, [], psa_label="CW", now=NOW
        )
        snap = {**mirror.psa_snapshot(t), mirror.SNAPSHOT_TIME: NOW.isoformat()}
        assert (LinkUpdate(9, {"updated_at": NOW, "psa_snapshot": snap}),) == plan.link_updates

    def test_a_new_update_time_alone_writes_nothing(self):
        """The same fields at a later update time: the snapshot is not rewritten."""
        before = psa_ticket()
        stored = synced(before)
        stored = replace(stored, psa_snapshot=mirror.stamped_snapshot(before))
        later = replace(before, updated_at=NOW)
        plan = mirror.decide_psa_linked(conn(), linked(stored), later, [], psa_label="CW", now=NOW)
        assert "psa_snapshot" not in plan.changes(9)


class TestVendor:
    def test_vendor_note_lands_internal_and_is_recorded(self):
        """A vendor public comment: vendor_note (with excerpt) and note_queued events, an
        internal add_note to the PSA keyed by the vendor note."""
        v = vendor_ticket()
        plan = mirror.decide_vendor_linked(
            conn(),
            linked(vendor_seen=True),
            v,
            [note("5", "Engineer dispatched", system="sn")],
            vendor_label="SN",
            now=NOW,
        )
        assert ["vendor_note", "note_queued"] == [e.kind for e in plan.events]
        assert "Engineer dispatched" == plan.events[0].detail["excerpt"]
        assert [("cw", key("5", "sn"))] == [(r.target_system, r.key) for r in plan.outbox]
        assert [False] == [r.lookup for r in plan.outbox]
        assert isinstance(plan.outbox[0].operation, AddNote)
        assert Visibility.INTERNAL == plan.outbox[0].operation.visibility
        assert () == plan.link_updates

    def test_first_read_of_the_vendor_ticket_looks_up_first(self):
        """On the link's first read of the vendor ticket (a link re-established on a fresh
        store finds the vendor's notes already mirrored), each mirror is looked up first."""
        plan = mirror.decide_vendor_linked(
            conn(),
            linked(vendor_seen=False),
            vendor_ticket(),
            [note("5", "Engineer dispatched", system="sn")],
            vendor_label="SN",
            now=NOW,
        )
        assert [(key("5", "sn"), True)] == [(r.key, r.lookup) for r in plan.outbox]

    def test_private_vendor_note_keeps_no_excerpt(self):
        """The vendor's private notes never reach the history's excerpt."""
        plan = mirror.decide_vendor_linked(
            conn(),
            linked(vendor_seen=True),
            vendor_ticket(),
            [note("5", "secret", Visibility.INTERNAL, system="sn")],
            vendor_label="SN",
            now=NOW,
        )
        assert None is plan.events[0].detail["excerpt"]

    def test_first_read_number_and_assignee(self):
        """The first read is recorded once; a new number and assignee land on the link."""
        v = vendor_ticket(assignee="Ann")
        plan = mirror.decide_vendor_linked(
            conn(), linked(link(vendor_number=None)), v, [], vendor_label="SN", now=NOW
        )
        assert ["vendor_ticket_seen", "vendor_assigned"] == [e.kind for e in plan.events]
        assert {"updated_at": NOW, "vendor_number": "INC1", "vendor_assignee": "Ann"} == (
            plan.changes(9)
        )
        again = mirror.decide_vendor_linked(
            conn(), linked(vendor_seen=True), vendor_ticket(), [], vendor_label="SN", now=NOW
        )
        assert again.empty

    def test_vendor_status_goes_to_the_psa(self):
        """A mapped vendor status change is queued to the PSA."""
        v = vendor_ticket(status="Resolved")
        plan = mirror.decide_vendor_linked(
            conn(), linked(vendor_seen=True), v, [], vendor_label="SN", now=NOW
        )
        assert [("cw", UpdateTicket.of(status="Done"))] == [
            (r.target_system, r.operation) for r in plan.outbox
        ]
        assert "vendor_status_changed" == plan.events[0].kind


def test_plans_add_in_order():
    """Adding plans keeps each part's order, the left one's first."""
    t = psa_ticket()
    a = mirror.decide_psa_linked(conn(), linked(synced(t)), t, [note("1")], psa_label="CW", now=NOW)
    b = mirror.decide_psa_linked(conn(), linked(synced(t)), t, [note("2")], psa_label="CW", now=NOW)
    assert [key("1"), key("2")] == [r.key for r in (a + b).outbox]
