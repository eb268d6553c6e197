"""The typed settings fields every adapter's settings model is built from."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from ticketbridge.adapters.base import AdapterSettings
from ticketbridge.adapters.connectwise.adapter import ConnectWiseSettings
from ticketbridge.adapters.kit.settings import (
    HeaderName,
    HostList,
    NonEmpty,
    PageSize,
    RequiredSecret,
    TableName,
    WebhookSecret,
)
from ticketbridge.adapters.servicenow.adapter import ServiceNowSettings


class AcmeSettings(AdapterSettings):
    """A new product's settings: a few lines."""

    username: NonEmpty
    password: RequiredSecret
    webhook_token: WebhookSecret = None
    webhook_header: HeaderName = "X-Token"
    table: TableName = "tickets"
    allowed_hosts: HostList = Field(default_factory=list)
    page_size: PageSize = Field(default=50, le=200)


def messages(**values: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        AcmeSettings.model_validate({"username": "u", "password": "p", **values})
    return {".".join(map(str, e["loc"][:1])): e["msg"] for e in info.value.errors()}


def test_valid_and_normalised() -> None:
    s = AcmeSettings(username="u", password="p", allowed_hosts=[" CW.Example.NET:8443 "])
    assert ["cw.example.net:8443"] == s.allowed_hosts
    assert 50 == s.page_size


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"password": ""}, "password"),
        ({"webhook_token": "  "}, "webhook_token"),
        ({"webhook_header": "X Token"}, "webhook_header"),
        ({"table": "Tick/ets"}, "table"),
        ({"allowed_hosts": ["https://evil.example"]}, "allowed_hosts"),
        ({"allowed_hosts": ["user@host"]}, "allowed_hosts"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 201}, "page_size"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_refused(values: dict[str, object], field: str) -> None:
    assert field in messages(**values)


def test_webhook_secret_fields_are_marked() -> None:
    assert ("webhook_token",) == AcmeSettings.webhook_secret_fields()
    assert ("webhook_token",) == ServiceNowSettings.webhook_secret_fields()
    assert () == ConnectWiseSettings.webhook_secret_fields()


def test_products_keep_their_page_size_maximum() -> None:
    with pytest.raises(ValidationError):
        ConnectWiseSettings.model_validate(
            {
                "company_id": "c",
                "public_key": "a",
                "private_key": "b",
                "client_id": "d",
                "page_size": 1001,
            }
        )
    s = ServiceNowSettings.model_validate({"username": "u", "password": "p", "page_size": 10000})
    assert 10000 == s.page_size
