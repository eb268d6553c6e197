"""Typed fields for adapter settings models, so a product's settings are a few lines.

Each is an ``Annotated`` type carrying its own validation::

    class AcmeSettings(AdapterSettings):
        username: NonEmpty
        password: RequiredSecret
        webhook_token: WebhookSecret = None
        webhook_header: HeaderName = "X-Ticketbridge-Token"
        allowed_hosts: HostList = []
        page_size: PageSize = Field(default=100, le=500)   # the product's maximum

Config check knows a :data:`WebhookSecret` field by its marker: setting one for a
product that does not declare webhooks is refused there.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Field, SecretStr
from pydantic.fields import FieldInfo

__all__ = [
    "WEBHOOK_SECRET",
    "FieldName",
    "HeaderName",
    "HostList",
    "NonEmpty",
    "PageSize",
    "RequiredSecret",
    "TableName",
    "WebhookSecret",
    "host_entry",
    "is_webhook_secret",
]

_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_TABLE = re.compile(r"[a-z][a-z0-9_]*")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,79}")


class _Marker:
    """A named marker in a field's metadata."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Marks a settings field holding the secret that authenticates the product's webhooks.
WEBHOOK_SECRET: Final = _Marker("WEBHOOK_SECRET")


def host_entry(value: str) -> str:
    """A lower-cased ``host`` or ``host:port``; URLs, paths and credentials are refused."""
    entry = value.strip().lower()
    if not entry or any(ch in entry for ch in "/@?#") or "://" in entry:
        raise ValueError(f"{value!r} is not a host or host:port")
    return entry


def _hosts(values: list[str]) -> list[str]:
    return [host_entry(v) for v in values]


def _header(value: str) -> str:
    if not _HEADER.fullmatch(value):
        raise ValueError("must be an HTTP header name")
    return value


def _table(value: str) -> str:
    if not _TABLE.fullmatch(value):
        raise ValueError("must be a table name: lower-case letters, digits and _")
    return value


def _field(value: str) -> str:
    if not _FIELD.fullmatch(value):
        raise ValueError("must be a field name")
    return value


def _secret(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


def _optional_secret(value: SecretStr | None) -> SecretStr | None:
    return None if value is None else _secret(value)


def is_webhook_secret(info: FieldInfo) -> bool:
    """Whether a settings field is marked as a :data:`WebhookSecret`."""
    return any(item is WEBHOOK_SECRET for item in info.metadata)


#: A string that is not empty.
NonEmpty = Annotated[str, Field(min_length=1)]
#: A secret (password, key, token) that is not empty.
RequiredSecret = Annotated[SecretStr, AfterValidator(_secret)]
#: The optional secret that authenticates webhooks; only for products with webhooks.
WebhookSecret = Annotated[SecretStr | None, AfterValidator(_optional_secret), WEBHOOK_SECRET]
#: An HTTP header name (RFC 9110 token).
HeaderName = Annotated[str, AfterValidator(_header)]
#: A database table name such as ``incident``.
TableName = Annotated[str, AfterValidator(_table)]
#: A product field name.
FieldName = Annotated[str, AfterValidator(_field)]
#: ``host`` or ``host:port`` entries (e.g. hosts allowed to serve webhook keys).
HostList = Annotated[list[str], AfterValidator(_hosts)]
#: A page size of at least 1; give the product's maximum with ``Field(default=..., le=...)``.
PageSize = Annotated[int, Field(ge=1)]
