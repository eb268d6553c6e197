"""The operator's dashboard, served on the admin listener (``admin:``)."""

from __future__ import annotations

from ticketbridge.web.admin.app import AdminService, create_admin_app
from ticketbridge.web.admin.auth import Authenticator

__all__ = ["AdminService", "Authenticator", "create_admin_app"]
