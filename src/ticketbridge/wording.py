"""Validation errors said in an administrator's terms rather than the validation library's.

Used by the configuration check (:mod:`ticketbridge.config`) and the rule files' check
(:mod:`ticketbridge.rules.models`), so both say "must be a whole number" where pydantic
says "Input should be a valid integer, unable to parse string as an integer".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["plain_message"]

#: pydantic error type -> the same said in an administrator's terms (``{...}`` from its ctx).
_PLAIN_WORDS: Mapping[str, str] = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "dict_type": "must be a group of settings (key: value lines)",
    "model_type": "must be a group of settings (key: value lines)",
    "model_attributes_type": "must be a group of settings (key: value lines)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "literal_error": "must be one of: {expected}",
    "enum": "must be one of: {expected}",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must list at least {min_length}",
    "too_long": "must list at most {max_length}",
    "string_pattern_mismatch": "has characters that are not allowed here",
}


def plain_message(err: Mapping[str, Any]) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in plain words.

    Errors of a kind not listed keep their own message, without pydantic's
    "Value error, " lead (those are ticketbridge's own words already)."""
    kind = str(err.get("type", ""))
    ctx = dict(err.get("ctx") or {})
    if kind == "missing":
        return "is required"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"must be at least {ctx.get('min_length')} characters"
    template = _PLAIN_WORDS.get(kind)
    if template is not None:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            pass
    message = str(err.get("msg", ""))
    for lead in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(lead)
    return message
