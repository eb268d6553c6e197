"""Neutral ticket data: status classes and product words."""

from __future__ import annotations

import pytest

from ticketbridge.domain import FieldChange, StatusClass, Ticket, TicketRef, with_aliases


@pytest.mark.parametrize(
    ("status_class", "closed"),
    [
        (StatusClass.NEW, False),
        (StatusClass.WORKING, False),
        (StatusClass.WAITING_ON_CUSTOMER, False),
        (StatusClass.WAITING_ON_THIRD_PARTY, False),
        (StatusClass.RESOLVED, True),
        (StatusClass.CLOSED, True),
        (StatusClass.CANCELLED, True),
    ],
)
def test_closed_derives_from_the_class(status_class: StatusClass, closed: bool) -> None:
    """Resolved, closed and cancelled tickets are closed; the others are open."""
    ticket = Ticket(TicketRef("s", "1"), "x", status_class=status_class)
    assert (closed, closed) == (status_class.is_done, ticket.closed)


def test_a_move_is_not_empty() -> None:
    """Each neutral field alone makes a change worth sending."""
    changes = [
        FieldChange(queue="Q"),
        FieldChange(group="G"),
        FieldChange(assignee="A"),
        FieldChange(external_ref="R"),
    ]
    assert (True, [False] * 4) == (FieldChange().is_empty(), [c.is_empty() for c in changes])


def test_with_aliases_renames_own_keys_only() -> None:
    """Only top-level keys are renamed; a key given both ways stays for validation."""
    aliases = {"lane": "queue"}
    assert {"queue": "A", "nested": {"lane": "B"}} == with_aliases(
        {"lane": "A", "nested": {"lane": "B"}}, aliases
    )
    assert {"lane": "A", "queue": "B"} == with_aliases({"lane": "A", "queue": "B"}, aliases)
    assert ["lane"] == with_aliases(["lane"], aliases)
