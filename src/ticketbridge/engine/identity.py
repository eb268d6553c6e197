"""The installation's marker secret: configured, or generated once and kept in the store."""

from __future__ import annotations

import secrets
from datetime import datetime

import structlog
from sqlalchemy.engine import Connection

from ticketbridge.config import TicketBridgeConfig
from ticketbridge.store import repo

__all__ = ["marker_secret", "warn_if_unconfigured"]

log = structlog.get_logger("ticketbridge.engine")

#: The installation setting that holds a generated marker secret.
SETTING = "marker_secret"


def marker_secret(config: TicketBridgeConfig, c: Connection, now: datetime) -> str:
    """``engine.marker_secret`` when configured; else the one generated for this store (made
    on first use, in the caller's transaction)."""
    if config.engine.marker_secret:
        return config.engine.marker_secret
    return repo.installation_value(c, SETTING, secrets.token_hex(32), now)


def warn_if_unconfigured(config: TicketBridgeConfig) -> None:
    """Say at start when the marker secret lives only in the store."""
    if config.engine.marker_secret:
        return
    log.warning(
        "marker_secret_in_store",
        detail="engine.marker_secret is not configured: the secret is generated and kept in "
        "the store; after a restore or a fresh store, earlier writes are recognised by "
        "author and body hash only",
        hint="set engine.marker_secret: {env: TB_MARKER_SECRET} (16 characters or more)",
    )
