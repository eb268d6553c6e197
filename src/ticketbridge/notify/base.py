"""What every notification sender offers, and the factory that builds one from settings.

A sender knows one delivery channel (e-mail, Slack, Teams, a generic webhook)
and nothing of rules: the engine's outbox dispatcher hands it a
:class:`Notification` carrying an idempotency key and maps the error it may
raise the way it maps adapter errors (see :mod:`ticketbridge.errors`):

* :class:`~ticketbridge.errors.TransientError` -- try again later; when
  ``uncertain`` is true the message may already have been delivered;
* :class:`~ticketbridge.errors.PermanentError` -- retrying will not help
  (bad address, refused credentials, malformed notification).

Senders never retry a delivery that may have gone through: the key makes a
repeat recognisable (e-mail ``Message-ID``, webhook ``Idempotency-Key``), it
does not make it free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ValidationError

from ticketbridge.errors import ConfigError, PermanentError

if TYPE_CHECKING:
    from ticketbridge.adapters.kit.http import RetrySettings

__all__ = [
    "CHANNELS",
    "Notification",
    "Sender",
    "build_sender",
    "check_key",
    "settings_model",
]

#: The channel kinds :func:`build_sender` knows.
CHANNELS = ("email", "slack", "teams", "webhook")

_KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True)
class Notification:
    """One message to deliver, as the outbox stores it."""

    #: The channel kind: ``email``, ``slack``, ``teams`` or ``webhook``.
    channel: str
    #: E-mail: one or more addresses separated by commas.  Chat and webhooks: a
    #: label only (the URL is a secret and lives in the channel's settings).
    target: str
    subject: str
    text: str
    #: The idempotency key: the same notification always carries the same key.
    key: str
    #: Extra data for the channel: ``event`` and ``ticket`` (generic webhook),
    #: ``blocks`` (Slack Block Kit blocks).
    context: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Sender(Protocol):
    """A delivery channel."""

    @property
    def channel(self) -> str:
        """The channel kind this sender delivers to."""
        ...

    async def deliver(self, notification: Notification) -> str:
        """Deliver ``notification``; return an identifier of what was sent."""
        ...

    async def aclose(self) -> None:
        """Release connections; the sender is unusable afterwards."""
        ...


def check_key(key: str) -> str:
    """``key`` if it can travel in a header (1-200 visible ASCII characters), else refuse it."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise PermanentError(
            "the idempotency key must be 1 to 200 visible ASCII characters", system="notify"
        )
    return key


def settings_model(channel: str) -> type[BaseModel]:
    """The settings model of a channel kind; ``ConfigError`` for an unknown kind."""
    from ticketbridge.notify.chat import SlackSettings, TeamsSettings, WebhookSettings
    from ticketbridge.notify.email import SmtpSettings

    models: dict[str, type[BaseModel]] = {
        "email": SmtpSettings,
        "slack": SlackSettings,
        "teams": TeamsSettings,
        "webhook": WebhookSettings,
    }
    try:
        return models[channel]
    except KeyError:
        raise ConfigError(
            [
                (
                    channel,
                    f"unknown notification channel {channel!r}",
                    f"one of: {', '.join(CHANNELS)}",
                )
            ]
        ) from None


def build_sender(
    channel: str,
    settings: BaseModel | Mapping[str, Any],
    *,
    retry: RetrySettings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Sender:
    """A sender for ``channel`` from its settings (a model or the raw mapping).

    ``retry`` and ``transport`` apply to the HTTP channels only.  Invalid
    settings raise :class:`ConfigError` listing every problem; secrets are
    never part of the messages.
    """
    from ticketbridge.notify.chat import (
        SlackSender,
        SlackSettings,
        TeamsSender,
        TeamsSettings,
        WebhookSender,
        WebhookSettings,
    )
    from ticketbridge.notify.email import EmailSender, SmtpSettings

    model = settings_model(channel)
    if isinstance(settings, BaseModel):
        if not isinstance(settings, model):
            raise ConfigError(
                [
                    (
                        channel,
                        f"{type(settings).__name__} does not configure a {channel} channel",
                        f"use {model.__name__}",
                    )
                ]
            )
        parsed: BaseModel = settings
    else:
        try:
            parsed = model.model_validate(dict(settings))
        except ValidationError as exc:
            raise ConfigError(
                [
                    (
                        ".".join([channel, *(str(part) for part in err["loc"])]),
                        err["msg"],
                        "",
                    )
                    for err in exc.errors()
                ]
            ) from None
    if isinstance(parsed, SmtpSettings):
        return EmailSender(parsed)
    if isinstance(parsed, SlackSettings):
        return SlackSender(parsed, retry=retry, transport=transport)
    if isinstance(parsed, TeamsSettings):
        return TeamsSender(parsed, retry=retry, transport=transport)
    if isinstance(parsed, WebhookSettings):
        return WebhookSender(parsed, retry=retry, transport=transport)
    raise AssertionError(f"no sender for {type(parsed).__name__}")  # pragma: no cover
