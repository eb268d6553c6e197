"""Typed outbox operations: what a queued write asks the dispatcher to do.

Each operation is a frozen dataclass with a stable ``op`` name (stored in the outbox
row's ``operation`` column) and a JSON object form (its ``payload`` column).  The stored
form is the one rows have always had, so rows queued before these types existed read
back unchanged:

==================  ==========================================================
``create_ticket``   the ticket draft: ``summary``, ``description``, ``priority``,
                    ``account``, ``contact``, ``company_name``, ``external_ref``
``add_note``        ``text``, ``visibility``, ``source_note_id``
``update_ticket``   only the fields to set (``status``, ``priority``, ``fields``, ...)
``notify``          ``channel``, ``recipient``, ``target``, ``subject``, ``text``
==================  ==========================================================

:func:`parse_operation` turns a stored row back into its type and raises
:class:`GarbledOperationError` (naming what is wrong) for an unknown name or a payload
that does not fit, so the dispatcher can dead-letter the row instead of crashing.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from ticketbridge.domain import (
    Contact,
    FieldChange,
    NoteDraft,
    TicketDraft,
    Visibility,
    with_aliases,
)

__all__ = [
    "OPERATIONS",
    "AddNote",
    "CreateTicket",
    "GarbledOperationError",
    "Notify",
    "Operation",
    "UpdateTicket",
    "draft_from_payload",
    "draft_payload",
    "parse_operation",
]


class GarbledOperationError(ValueError):
    """An outbox row whose operation name or payload cannot be read."""


class Operation(ABC):
    """One kind of queued write; subclasses are frozen dataclasses."""

    #: The name stored in the outbox row; never change it for an existing operation.
    op: ClassVar[str]

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The row's payload: a JSON object."""

    @classmethod
    @abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The operation a row's payload describes; ``KeyError``/``TypeError``/``ValueError``
        when it does not fit (:func:`parse_operation` turns those into one error)."""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be text, not {type(value).__name__}")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise TypeError(f"{key!r} must be text, not {type(value).__name__}")
    return str(value)


def _no_extra(data: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(f"unexpected keys {extra}")


def draft_payload(draft: TicketDraft) -> dict[str, Any]:
    """The JSON form of a ticket draft."""
    contact = draft.contact
    return {
        "summary": draft.summary,
        "description": draft.description,
        "priority": draft.priority,
        "account": dict(draft.account),
        "contact": None
        if contact is None
        else {"name": contact.name, "email": contact.email, "phone": contact.phone},
        "company_name": draft.company_name,
        "external_ref": draft.external_ref,
    }


def draft_from_payload(payload: Mapping[str, Any]) -> TicketDraft:
    """The ticket draft :func:`draft_payload` wrote."""
    contact = payload.get("contact")
    return TicketDraft(
        summary=payload["summary"],
        description=payload["description"],
        priority=payload.get("priority"),
        account=payload.get("account") or {},
        contact=Contact(**contact) if contact else None,
        company_name=payload.get("company_name"),
        external_ref=payload.get("external_ref"),
    )


@dataclass(frozen=True, slots=True)
class CreateTicket(Operation):
    """Open a ticket at the target (the vendor ticket of a link)."""

    op: ClassVar[str] = "create_ticket"
    draft: TicketDraft

    def to_json(self) -> dict[str, Any]:
        return draft_payload(self.draft)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        _text(data, "summary")
        _text(data, "description")
        return cls(draft_from_payload(data))


@dataclass(frozen=True, slots=True)
class AddNote(Operation):
    """Add a note to the linked ticket at the target; ``source_note_id`` is the mirrored
    note's id (``None`` for notes ticketbridge writes itself).  ``not_before``: when the
    write is looked up on the target, an earlier copy of it is not older than this (a
    repeated rule step writes the same words each run; only this run's copy counts)."""

    op: ClassVar[str] = "add_note"
    text: str
    visibility: Visibility
    source_note_id: str | None = None
    not_before: datetime | None = None

    @property
    def draft(self) -> NoteDraft:
        return NoteDraft(self.text, self.visibility)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "visibility": self.visibility.value,
            "source_note_id": self.source_note_id,
        }
        if self.not_before is not None:
            data["not_before"] = self.not_before.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        _no_extra(data, {"text", "visibility", "source_note_id", "not_before"})
        not_before = _optional_text(data, "not_before")
        try:
            since = None if not_before is None else datetime.fromisoformat(not_before)
        except ValueError:
            raise GarbledOperationError(f"not_before is not a timestamp: {not_before!r}") from None
        return cls(
            text=_text(data, "text"),
            visibility=Visibility(data["visibility"]),
            source_note_id=_optional_text(data, "source_note_id"),
            not_before=since,
        )


_CHANGE_FIELDS = tuple(f.name for f in dataclasses.fields(FieldChange))
#: The keys rows queued before the neutral field names carry, read under the neutral
#: name, so a write queued across an upgrade is still delivered.
_EARLIER_KEYS = {
    "link_value": "external_ref",
    "board": "queue",
    "owner": "assignee",
    "team": "group",
}


@dataclass(frozen=True, slots=True)
class UpdateTicket(Operation):
    """Set fields of the linked ticket at the target; only the fields given are written."""

    op: ClassVar[str] = "update_ticket"
    change: FieldChange

    @classmethod
    def of(cls, **values: Any) -> UpdateTicket:
        """From :class:`FieldChange` keywords, dropping the ``None`` ones."""
        return cls(FieldChange(**{k: v for k, v in values.items() if v is not None}))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _CHANGE_FIELDS:
            value = getattr(self.change, name)
            if name == "fields":
                if value:
                    out[name] = dict(value)
            elif value is not None:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        data = with_aliases(data, _EARLIER_KEYS)
        _no_extra(data, set(_CHANGE_FIELDS))
        values: dict[str, Any] = {}
        for name in _CHANGE_FIELDS:
            if name == "fields":
                fields = data.get("fields") or {}
                if not isinstance(fields, Mapping):
                    raise TypeError("'fields' must be an object")
                values[name] = {str(k): str(v) for k, v in fields.items()}
            else:
                values[name] = _optional_text(data, name)
        return cls(FieldChange(**values))


@dataclass(frozen=True, slots=True)
class Notify(Operation):
    """Send an e-mail or chat message a rule asked for.  ``target`` is the address, URL, or a
    ``{env|file: name}`` reference to a secret URL; ``recipient`` is the label logged."""

    op: ClassVar[str] = "notify"
    channel: str
    text: str
    subject: str = ""
    recipient: str | None = None
    target: str | dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "recipient": self.recipient,
            "target": dict(self.target) if isinstance(self.target, Mapping) else self.target,
            "subject": self.subject,
            "text": self.text,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        _no_extra(data, {"channel", "recipient", "target", "subject", "text"})
        target = data.get("target")
        if isinstance(target, Mapping):
            if len(target) != 1:
                raise ValueError("a secret 'target' names exactly one of env or file")
            target = {str(k): str(v) for k, v in target.items()}
        elif target is not None:
            target = str(target)
        return cls(
            channel=_text(data, "channel"),
            text=str(data.get("text") or ""),
            subject=str(data.get("subject") or ""),
            recipient=_optional_text(data, "recipient"),
            target=target,
        )


#: Every operation by its stored name.
OPERATIONS: Mapping[str, type[Operation]] = {
    cls.op: cls for cls in (CreateTicket, AddNote, UpdateTicket, Notify)
}


def parse_operation(name: str, payload: Any) -> Operation:
    """The typed operation of a stored row; :class:`GarbledOperationError` saying why not."""
    kind = OPERATIONS.get(name)
    if kind is None:
        known = ", ".join(sorted(OPERATIONS))
        raise GarbledOperationError(f"unknown outbox operation {name!r} (known: {known})")
    if not isinstance(payload, Mapping):
        raise GarbledOperationError(
            f"the payload of {name!r} is {type(payload).__name__}, not a JSON object"
        )
    try:
        return kind.from_json(payload)
    except (KeyError, TypeError, ValueError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise GarbledOperationError(f"garbled {name!r} payload: {what}") from None
