"""The simulators index notes by ticket (ConnectWise) and journal entries by record
(ServiceNow): per-ticket reads give the same rows in the same order as a full scan."""

from __future__ import annotations

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.servicenow import simulator as servicenow


def _cw_ticket(state: connectwise.ConnectWiseState, summary: str) -> int:
    ticket = state.create_ticket(
        {"summary": summary, "board": {"name": "Service Desk"}, "company": {"identifier": "ACME"}}
    )
    return int(ticket["id"])


def test_connectwise_notes_of_a_ticket_match_a_full_scan() -> None:
    state = connectwise.ConnectWiseState()
    a, b = _cw_ticket(state, "a"), _cw_ticket(state, "b")
    for i in range(6):
        state.add_note(a if i % 2 else b, {"text": f"n{i}", "detailDescriptionFlag": True})
    scan = [n for n in state.notes.values() if n["ticketId"] == a]
    assert [n["text"] for n in state.ticket_notes(a)] == ["n1", "n3", "n5"]
    assert state.ticket_notes(a) == scan
    first = state.ticket_notes(a)[0]
    state.patch_note(a, first["id"], [{"op": "replace", "path": "text", "value": "edited"}])
    assert [n["text"] for n in state.ticket_notes(a)] == ["edited", "n3", "n5"]
    assert [n["text"] for n in state.all_notes(a)] == ["edited", "n3", "n5"]
    state.delete_ticket(b)
    assert all(n["ticketId"] == a for n in state.notes.values())
    assert len(state.notes) == 3
    del state.notes[first["id"]]
    assert [n["text"] for n in state.ticket_notes(a)] == ["n3", "n5"]


def test_servicenow_journal_query_by_element_id_matches_a_full_scan() -> None:
    state = servicenow.ServiceNowState()
    one = state.insert("incident", {"short_description": "one"}, user_name="admin")
    two = state.insert("incident", {"short_description": "two"}, user_name="admin")
    for i in range(4):
        target = one if i % 2 == 0 else two
        state.update("incident", target["sys_id"], {"comments": f"c{i}"}, user_name="admin")
    rows = state.query("sys_journal_field", f"element_id={one['sys_id']}")
    assert [r["value"] for r in rows] == ["c0", "c2"]
    upper = state.query("sys_journal_field", f"element_id={one['sys_id'].upper()}")
    assert upper == rows  # the condition folds case, the index too
    both = state.query(
        "sys_journal_field", f"element_id={one['sys_id']}^ORelement_id={two['sys_id']}"
    )
    assert [r["value"] for r in both] == ["c0", "c1", "c2", "c3"]
    entry = rows[0]
    state.tables["sys_journal_field"][entry["sys_id"]] = {**entry, "element_id": two["sys_id"]}
    moved = state.query("sys_journal_field", f"element_id={two['sys_id']}")
    assert [r["value"] for r in moved] == ["c0", "c1", "c3"]  # in insertion order
    assert [sys_id for sys_id, _ in state.journal_stored_at] == [r["sys_id"] for r in both]
