"""Proof that a write took effect, read from the product's answer to it.

A 2xx alone proves little: a field the integration user may not write is
dropped silently by some products (a field ACL), which then answer 2xx with
the record still holding its old value.  Adapters compare what they sent with
what the answer shows (no extra read) using :func:`check_written`:

* the answer is about another record, or lacks a field we wrote: the write is
  unproven, ``TransientError(uncertain=True)`` (the next attempt looks it up),
  unless the product answers every field asked for that exists, when a missing
  field is refused (``missing_cause``);
* a field still holds its value from before the write: the product ignored
  it, ``PermanentError`` naming each field and the likely cause;
* a field holds a third value (the product normalised it, e.g. a reference
  given by name stored as an id): accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ticketbridge.errors import PermanentError, TransientError

__all__ = ["IGNORED_WRITE_CAUSE", "Ignored", "check_record", "check_written", "ignored_fields"]

#: The usual reason a product answers 2xx and keeps the old value.
IGNORED_WRITE_CAUSE = (
    "the integration user is probably not allowed to write it "
    "(a field ACL or security role), or a product rule reset it"
)

Compare = Callable[[str | None, str | None], bool]


def _exact(a: str | None, b: str | None) -> bool:
    return (a or None) == (b or None)


@dataclass(frozen=True)
class Ignored:
    """A field whose write the answer shows was not applied."""

    field: str
    sent: str | None
    kept: str | None

    def describe(self) -> str:
        return f"{self.field} (sent {self.sent!r}, still {self.kept!r})"


def ignored_fields(
    sent: Mapping[str, str | None],
    returned: Mapping[str, str | None],
    before: Mapping[str, str | None] | None,
    *,
    same: Compare = _exact,
) -> tuple[list[Ignored], list[str]]:
    """``(ignored, missing)``: fields whose answer kept the old value, fields not answered.

    ``before`` is the record as read before the write; ``None`` (a new record,
    nothing before) counts every difference as ignored.
    """
    ignored: list[Ignored] = []
    missing: list[str] = []
    for name, value in sent.items():
        if name not in returned:
            missing.append(name)
            continue
        got = returned[name]
        if same(got, value):
            continue
        if before is None or (name in before and same(got, before[name])):
            ignored.append(Ignored(name, value, got))
    return ignored, missing


def check_written(
    sent: Mapping[str, str | None],
    returned: Mapping[str, str | None],
    before: Mapping[str, str | None] | None,
    *,
    system: str,
    where: str,
    product: str,
    same: Compare = _exact,
    cause: str = IGNORED_WRITE_CAUSE,
    missing_cause: str | None = None,
) -> None:
    """Raise unless the answer to a write shows every field ``sent`` applied.

    Fields the answer lacks make the write unproven (uncertain), or refused with
    ``missing_cause`` when given (the product answers every existing field asked
    for, so a missing one does not exist for this user); fields it shows with
    their old value make it refused (``PermanentError``), naming them.
    """
    ignored, missing = ignored_fields(sent, returned, before, same=same)
    if missing and missing_cause is not None:
        raise PermanentError(
            f"{where}: {product}'s answer has no field {', '.join(missing)}: {missing_cause}",
            system=system,
        )
    if ignored:
        fields = "; ".join(item.describe() for item in ignored)
        plural = "s" if len(ignored) > 1 else ""
        raise PermanentError(
            f"{where}: {product} answered success but did not apply the field{plural} "
            f"{fields}: {cause}",
            system=system,
        )
    if missing:
        raise TransientError(
            f"{where}: the answer does not show the written field(s) {', '.join(missing)}: "
            "the write is not proven",
            system=system,
            uncertain=True,
        )


def check_record(returned_id: str | None, expected: str, *, system: str, where: str) -> None:
    """Raise an uncertain error unless the answer is about the record we wrote."""
    if returned_id != expected:
        got = "no record id" if returned_id is None else f"record {returned_id!r}"
        raise TransientError(
            f"{where}: the answer names {got}, not the record {expected!r} we wrote: "
            "the write is not proven",
            system=system,
            uncertain=True,
        )
