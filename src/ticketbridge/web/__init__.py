"""HTTP surface: webhooks, health, readiness, metrics."""

from __future__ import annotations

from ticketbridge.web.app import create_app

__all__ = ["create_app"]
