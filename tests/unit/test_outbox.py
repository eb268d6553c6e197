"""Typed outbox operations: stored names and JSON forms, and refusing garbled rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ticketbridge.domain import Contact, FieldChange, TicketDraft, Visibility
from ticketbridge.engine.dispatch import HANDLERS
from ticketbridge.operations import (
    OPERATIONS,
    AddNote,
    CreateTicket,
    GarbledOperationError,
    Notify,
    Operation,
    UpdateTicket,
    parse_operation,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "ticketbridge"

DRAFT = TicketDraft(
    summary="Internet down",
    description="The main office lost its link.",
    priority="1",
    account={"company": "acme-sys-id"},
    contact=Contact("Dana Lee", "dana@acme.example", "555-0100"),
    company_name="Acme Dental",
    external_ref="PSA-42",
)

#: Payloads exactly as rows stored before the operations were typed.
#: Rows queued by releases before the neutral field names: read under the neutral names.
EARLIER: list[tuple[str, dict[str, Any], Operation]] = [
    ("update_ticket", {"link_value": "INC0010001"}, UpdateTicket.of(external_ref="INC0010001")),
    (
        "update_ticket",
        {"board": "Tier 2", "status": "Escalated", "owner": "jsmith", "team": "T2"},
        UpdateTicket(
            FieldChange(status="Escalated", queue="Tier 2", assignee="jsmith", group="T2")
        ),
    ),
]

STORED: list[tuple[str, dict[str, Any], Operation]] = [
    (
        "create_ticket",
        {
            "summary": "Internet down",
            "description": "The main office lost its link.",
            "priority": "1",
            "account": {"company": "acme-sys-id"},
            "contact": {"name": "Dana Lee", "email": "dana@acme.example", "phone": "555-0100"},
            "company_name": "Acme Dental",
            "external_ref": "PSA-42",
        },
        CreateTicket(DRAFT),
    ),
    (
        "add_note",
        {"text": "hello", "visibility": "public", "source_note_id": "n-1"},
        AddNote("hello", Visibility.PUBLIC, source_note_id="n-1"),
    ),
    (
        "add_note",
        {"text": "sla note", "visibility": "internal", "source_note_id": None},
        AddNote("sla note", Visibility.INTERNAL),
    ),
    ("update_ticket", {"external_ref": "INC0010001"}, UpdateTicket.of(external_ref="INC0010001")),
    (
        "update_ticket",
        {"queue": "Tier 2", "status": "Escalated", "assignee": "jsmith", "group": "T2"},
        UpdateTicket(
            FieldChange(status="Escalated", queue="Tier 2", assignee="jsmith", group="T2")
        ),
    ),
    (
        "update_ticket",
        {"status": "Vendor SLA Breach", "fields": {"SLA": "breached"}},
        UpdateTicket.of(status="Vendor SLA Breach", fields={"SLA": "breached"}),
    ),
    (
        "notify",
        {
            "channel": "email",
            "recipient": "noc@msp.example",
            "target": "noc@msp.example",
            "subject": "P1 breach",
            "text": "Look now.",
        },
        Notify(
            "email", "Look now.", "P1 breach", recipient="noc@msp.example", target="noc@msp.example"
        ),
    ),
    (
        "notify",
        {
            "channel": "slack",
            "recipient": "#noc",
            "target": {"env": "SLACK_URL"},
            "subject": "",
            "text": "Look now.",
        },
        Notify("slack", "Look now.", recipient="#noc", target={"env": "SLACK_URL"}),
    ),
]


class TestStoredForm:
    @pytest.mark.parametrize(("name", "payload", "expected"), STORED)
    def test_rows_already_stored_read_back(
        self, name: str, payload: dict[str, Any], expected: Operation
    ) -> None:
        """Rows written before the operations were typed parse to the same operation."""
        assert expected == parse_operation(name, payload)

    @pytest.mark.parametrize(("name", "payload", "expected"), EARLIER)
    def test_rows_queued_before_the_neutral_names_read_back(
        self, name: str, payload: dict[str, Any], expected: Operation
    ) -> None:
        """A write queued by an earlier release is delivered with the neutral field names."""
        assert expected == parse_operation(name, payload)

    @pytest.mark.parametrize(("name", "payload", "expected"), STORED)
    def test_written_form_is_unchanged(
        self, name: str, payload: dict[str, Any], expected: Operation
    ) -> None:
        """An operation stores its old name and payload, and survives a JSON round trip."""
        assert (name, payload) == (expected.op, expected.to_json())
        assert expected == parse_operation(expected.op, json.loads(json.dumps(expected.to_json())))

    def test_update_writes_only_the_fields_given(self) -> None:
        """Leave-alone fields are not written into the row (so nothing else is touched)."""
        assert {"priority": "2"} == UpdateTicket.of(priority="2", status=None).to_json()
        assert {} == UpdateTicket(FieldChange()).to_json()

    def test_every_operation_has_a_handler(self) -> None:
        """The handler table covers every operation type, and nothing else."""
        assert set(OPERATIONS.values()) == set(HANDLERS)

    def test_names_are_unique_and_stable(self) -> None:
        """The stored names are the ones rows in existing stores carry."""
        assert {"create_ticket", "add_note", "update_ticket", "notify"} == set(OPERATIONS)


class TestGarbled:
    @pytest.mark.parametrize(
        ("name", "payload", "reason"),
        [
            ("frobnicate", {}, r"unknown outbox operation 'frobnicate' \(known: add_note"),
            ("add_note", "not an object", r"payload of 'add_note' is str, not a JSON object"),
            ("add_note", None, r"is NoneType, not a JSON object"),
            ("add_note", {"visibility": "public"}, r"garbled 'add_note' payload: missing 'text'"),
            ("add_note", {"text": "x", "visibility": "secret"}, r"'secret' is not a valid"),
            ("add_note", {"text": 5, "visibility": "public"}, r"'text' must be text"),
            ("add_note", {"text": "x", "visibility": "public", "to": "y"}, r"unexpected keys"),
            ("create_ticket", {"summary": "x"}, r"missing 'description'"),
            ("create_ticket", {"summary": "x", "description": "y", "contact": 3}, r"garbled"),
            ("update_ticket", {"colour": "red"}, r"unexpected keys \['colour'\]"),
            ("update_ticket", {"fields": ["a"]}, r"'fields' must be an object"),
            ("notify", {"text": "x"}, r"missing 'channel'"),
            ("notify", {"channel": "slack", "target": {"env": "A", "file": "B"}}, r"exactly one"),
        ],
    )
    def test_refused_with_a_reason(self, name: str, payload: Any, reason: str) -> None:
        """Unknown names and payloads that do not fit raise one error that says what is wrong."""
        with pytest.raises(GarbledOperationError, match=reason):
            parse_operation(name, payload)


def test_production_code_reads_no_fault_variable() -> None:
    """Fault injection is a seam tests install; no source file reads a fault variable."""
    offenders = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if re.search(r"TICKETBRIDGE_FAULT|environ[^\n]*FAULT", path.read_text())
    ]
    assert [] == offenders
