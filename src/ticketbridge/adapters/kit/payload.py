"""Checks on decoded JSON shared by the adapters.

A product that answers 2xx with a body of the wrong shape is treated like one
that answered garbage: a ``TransientError`` naming the request and the JSON
path that was wrong, so the caller retries later and the log says why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ticketbridge.errors import TransientError, WebhookPayloadError

__all__ = [
    "bad_shape",
    "expect_array",
    "expect_object",
    "expect_objects",
    "parse_utc",
    "text_or_none",
    "webhook_json",
]


def bad_shape(system: str, where: str, what: str, *, uncertain: bool = False) -> TransientError:
    """The error for a response whose JSON is not shaped as the product documents."""
    return TransientError(
        f"{where}: unexpected response shape: {what}", system=system, uncertain=uncertain
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"


def expect_object(
    value: Any, system: str, where: str, path: str = "$", *, uncertain: bool = False
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_shape(
            system, where, f"{path} should be an object, got {_kind(value)}", uncertain=uncertain
        )
    return value


def expect_array(value: Any, system: str, where: str, path: str = "$") -> list[Any]:
    if not isinstance(value, list):
        raise bad_shape(system, where, f"{path} should be an array, got {_kind(value)}")
    return value


def expect_objects(value: Any, system: str, where: str, path: str = "$") -> list[dict[str, Any]]:
    """An array whose every item is an object."""
    items = expect_array(value, system, where, path)
    for index, item in enumerate(items):
        expect_object(item, system, where, f"{path}[{index}]")
    return items


def text_or_none(value: Any) -> str | None:
    """A non-empty string, or ``None`` for null, empty and non-string values."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def parse_utc(value: Any, system: str, where: str, path: str) -> datetime:
    """An aware UTC datetime from ISO 8601 (``2024-05-01T10:00:00Z``) or ``2024-05-01 10:00:00``.

    Values without an offset are UTC: both products store and return UTC.
    """
    if not isinstance(value, str) or not value:
        raise bad_shape(system, where, f"{path} should be a timestamp, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_shape(system, where, f"{path} is not a timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def webhook_json(body: bytes, what: str = "webhook body") -> Any:
    """A webhook's body parsed as JSON; anything unparsable is a ``WebhookPayloadError`` (400),
    including JSON nested too deeply for the parser (which Python reports as a
    ``RecursionError``)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookPayloadError(f"{what} is not JSON") from None
    except RecursionError:
        raise WebhookPayloadError(f"{what} is nested too deeply") from None
