"""Notification senders: e-mail (SMTP), Slack, Microsoft Teams and a generic signed webhook.

The engine's outbox dispatcher builds one sender per configured channel with
:func:`build_sender` and hands it :class:`Notification` rows; the senders hold
no rules logic.
"""

from __future__ import annotations

from ticketbridge.notify.base import CHANNELS, Notification, Sender, build_sender, settings_model
from ticketbridge.notify.chat import (
    SIGNATURE_HEADER,
    SlackSender,
    SlackSettings,
    TeamsSender,
    TeamsSettings,
    WebhookSender,
    WebhookSettings,
    sign_body,
)
from ticketbridge.notify.email import EmailSender, SmtpSettings, message_id_for

__all__ = [
    "CHANNELS",
    "SIGNATURE_HEADER",
    "EmailSender",
    "Notification",
    "Sender",
    "SlackSender",
    "SlackSettings",
    "SmtpSettings",
    "TeamsSender",
    "TeamsSettings",
    "WebhookSender",
    "WebhookSettings",
    "build_sender",
    "message_id_for",
    "settings_model",
    "sign_body",
]
