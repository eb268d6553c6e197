"""State store: SQLite by default, PostgreSQL for several replicas (SQLAlchemy Core + Alembic)."""

from __future__ import annotations

from ticketbridge.store.db import Store, StoreLockedError

__all__ = ["Store", "StoreLockedError"]
