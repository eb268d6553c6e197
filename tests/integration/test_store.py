"""The store on SQLite and PostgreSQL: migrations, claims, the single-writer lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ticketbridge.store import Store, StoreLockedError, repo
from ticketbridge.store.tables import metadata

pytestmark = pytest.mark.integration
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _link(store: Store) -> int:
    with store.tx() as c:
        return repo.insert_link(
            c,
            connection="c",
            psa_system="psa",
            psa_ticket_id="1",
            vendor_system="v",
            state="open",
            origin="routed",
            created_at=NOW,
            updated_at=NOW,
        )


class TestMigrations:
    def test_migrations_match_the_tables(self, store: Store):
        """The Alembic migrations create exactly the schema the code declares."""
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []

    def test_upgrade_is_idempotent(self, store: Store):
        """Upgrading an up-to-date store changes nothing."""
        store.upgrade()
        assert store.current_revision() == "0008"


def test_replicas_starting_together_migrate_once(store_url: str):
    """Several processes upgrading one fresh store at once: one migrates, the others wait
    for it and find the schema done (on PostgreSQL two concurrent CREATE TABLEs clash)."""
    if store_url.startswith("sqlite"):
        pytest.skip("one writer on SQLite: a second process refuses to start")
    stores = [Store(store_url) for _ in range(3)]
    errors: list[BaseException] = []

    def upgrade(s: Store) -> None:
        try:
            s.upgrade()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert not any(t.is_alive() for t in threads), "an upgrade is stuck behind another"
        assert errors == []
        assert {s.current_revision() for s in stores} == {stores[0].current_revision()}
        assert stores[0].current_revision() is not None
    finally:
        for s in stores:
            s.close()


class TestTimes:
    def test_datetimes_come_back_aware_utc(self, store: Store):
        """Whatever the engine, stored datetimes are read back as aware UTC."""
        link_id = _link(store)
        with store.tx() as c:
            row = repo.link_by_id(c, link_id)
        assert row is not None
        assert row.created_at == NOW
        assert row.created_at.tzinfo is not None

    def test_naive_datetimes_are_refused(self, store: Store):
        """A naive datetime never reaches the store."""
        with pytest.raises(sa.exc.StatementError, match="naive"), store.tx() as c:
            repo.insert_link(
                c,
                connection="c",
                psa_system="p",
                psa_ticket_id="9",
                vendor_system="v",
                state="open",
                origin="routed",
                created_at=datetime(2026, 1, 1),
                updated_at=NOW,
            )


class TestOutboxClaims:
    def test_one_claim_per_ticket_in_order(self, store: Store):
        """Only the oldest open write of a (link, target) is claimed; others wait their turn."""
        link_id = _link(store)
        with store.tx() as c:
            for i in range(3):
                repo.enqueue(
                    c,
                    link_id=link_id,
                    target_system="v",
                    operation="add_note",
                    key=f"k{i}",
                    payload={"i": i},
                    now=NOW,
                )
            repo.enqueue(
                c,
                link_id=link_id,
                target_system="psa",
                operation="add_note",
                key="other-side",
                payload={},
                now=NOW,
            )
        with store.tx() as c:
            rows = repo.claim_outbox(
                c, NOW, limit=10, lease=timedelta(minutes=5), postgres=not store.is_sqlite
            )
        assert sorted(r.key for r in rows) == ["k0", "other-side"]
        with store.tx() as c:
            again = repo.claim_outbox(
                c, NOW, limit=10, lease=timedelta(minutes=5), postgres=not store.is_sqlite
            )
        assert again == []

    def test_expired_lease_is_reclaimed_as_uncertain(self, store: Store):
        """A row whose sender died is claimed again after its lease, marked uncertain."""
        link_id = _link(store)
        with store.tx() as c:
            repo.enqueue(
                c,
                link_id=link_id,
                target_system="v",
                operation="add_note",
                key="k",
                payload={},
                now=NOW,
            )
        with store.tx() as c:
            first = repo.claim_outbox(
                c, NOW, limit=1, lease=timedelta(seconds=30), postgres=not store.is_sqlite
            )
        assert first[0].uncertain is False
        later = NOW + timedelta(seconds=31)
        with store.tx() as c:
            second = repo.claim_outbox(
                c, later, limit=1, lease=timedelta(seconds=30), postgres=not store.is_sqlite
            )
        assert [(r.key, r.uncertain, r.attempts) for r in second] == [("k", True, 2)]

    def test_notifications_wait_on_nothing_and_hold_up_nothing(self, store: Store):
        """A dead notification blocks no other notification nor the ticket's notes; a live
        one is claimed beside the ticket's note.  A dead note still holds up the later
        writes of its own ticket and target (the order promise)."""
        link_id = _link(store)
        rows = [
            ("notify", "notify", "chat-dead"),
            ("notify", "notify", "mail-1"),
            ("notify", "notify", "mail-2"),
            ("v", "add_note", "note-dead"),
            ("v", "add_note", "note-after"),
            ("psa", "add_note", "psa-note"),
        ]
        with store.tx() as c:
            for target, operation, key in rows:
                repo.enqueue(
                    c,
                    link_id=link_id,
                    target_system=target,
                    operation=operation,
                    key=key,
                    payload={},
                    now=NOW,
                )
            ids = {r.key: r.id for r in repo.outbox_rows(c)}
            lease = timedelta(minutes=5)
            claimed = repo.claim_outbox(c, NOW, limit=10, lease=lease, postgres=not store.is_sqlite)
            by_key = {r.key: r for r in claimed}
            assert sorted(by_key) == ["chat-dead", "mail-1", "mail-2", "note-dead", "psa-note"]
            for key in ("chat-dead", "note-dead"):
                repo.outbox_dead(
                    c, ids[key], error="PermanentError: no", token=by_key[key].claim_token
                )
            for key in ("mail-1", "mail-2", "psa-note"):
                repo.outbox_done(c, ids[key], NOW, token=by_key[key].claim_token)
            repo.enqueue(
                c,
                link_id=link_id,
                target_system="notify",
                operation="notify",
                key="mail-3",
                payload={},
                now=NOW,
            )
            again = repo.claim_outbox(c, NOW, limit=10, lease=lease, postgres=not store.is_sqlite)
        assert [r.key for r in again] == ["mail-3"]

    def test_duplicate_keys_are_not_queued_twice(self, store: Store):
        """Enqueueing the same key twice keeps one row."""
        link_id = _link(store)
        with store.tx() as c:
            assert repo.enqueue(
                c,
                link_id=link_id,
                target_system="v",
                operation="x",
                key="same",
                payload={},
                now=NOW,
            )
            assert not repo.enqueue(
                c,
                link_id=link_id,
                target_system="v",
                operation="x",
                key="same",
                payload={},
                now=NOW,
            )
            assert len(repo.outbox_rows(c)) == 1


class TestInbox:
    def test_same_delivery_recorded_once(self, store: Store):
        """A webhook delivered five times is one hint."""
        with store.tx() as c:
            added = [
                repo.add_hint(c, system="cw", delivery_key="m-1", ticket_id="5", now=NOW)
                for _ in range(5)
            ]
            assert added == [True, False, False, False, False]
            assert repo.inbox_count(c) == 1


class TestSingleWriter:
    def test_second_daemon_on_same_sqlite_file_refused(self, tmp_path: Path):
        """Two processes never write one SQLite file: the second is refused."""
        url = f"sqlite:///{tmp_path / 'one.db'}"
        first, second = Store(url), Store(url)
        first.lock_single_writer()
        try:
            with pytest.raises(StoreLockedError, match="another ticketbridge"):
                second.lock_single_writer()
        finally:
            first.close()
            second.close()
        third = Store(url)
        third.lock_single_writer()
        third.close()
