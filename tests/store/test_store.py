"""Storage: schema, pragmas, and conditional state changes (the full contract, on both back
ends, is tests/store/test_store_contract.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from bot.domain import Notice, Order, OrderStatus
from bot.store import SCHEMA_VERSION, Store, StoreUnavailable
from bot.store.sqlite import SqliteStore
from tests.conftest import an_order, another_process_holds_the_write_lock, query_plans


def _order(order_id: str = "ABC123", **changes: Any) -> Order:
    return an_order(order_id, **changes)


async def _pragma(store: SqliteStore, name: str) -> object:
    ((value,),) = await store._rows(f"PRAGMA {name}")
    return value


async def test_schema_and_pragmas(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "sub" / "db.sqlite3")
    try:
        assert await _pragma(store, "user_version") == SCHEMA_VERSION
        assert await _pragma(store, "journal_mode") == "wal"
        assert await _pragma(store, "foreign_keys") == 1
        assert await _pragma(store, "busy_timeout") == 5000
        await store.insert_order(_order())
    finally:
        await store.close()
    reopened = await SqliteStore.open(tmp_path / "sub" / "db.sqlite3")  # migrating again is a no-op
    try:
        assert await _pragma(reopened, "user_version") == SCHEMA_VERSION
        assert await reopened.get_order("ABC123") == _order()  # and keeps what was written
    finally:
        await reopened.close()


async def test_due_and_unsent_orders_are_index_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plans of the store's own queries, as the sweep runs them, never a scan of every order."""
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        due, unsent = await query_plans(
            store, monkeypatch, lambda: store.due_orders(1000.0, 500), lambda: store.unsent_orders(1000.0, 500)
        )
        assert "SEARCH orders USING INDEX orders_due (next_poll_at>? AND next_poll_at<?)" in due and "SCAN" not in due
        assert "SEARCH orders USING INDEX orders_unsent (created_at<?)" in unsent and "SCAN" not in unsent
    finally:
        await store.close()


async def test_finalise_is_conditional_and_queues_notices_atomically(store_target: Path | str) -> None:
    store = await Store.open(store_target)
    try:
        await store.insert_order(_order())
        assert await store.finalise("ABC123", OrderStatus.EXPIRED, 2000.0, [Notice(1, "expired")])
        assert not await store.finalise("ABC123", OrderStatus.FAILED, 2001.0, [Notice(1, "failed")])
        assert [e.notice.text for e in await store.due_outbox(3000.0, 10)] == ["expired"]
        order = await store.get_order("ABC123")
        assert order is not None and order.status is OrderStatus.EXPIRED and order.next_poll_at is None
        assert await store.due_orders(99999.0, 10) == []
    finally:
        await store.close()


async def test_postgresql_schema_types_and_indexes(postgres_server) -> None:  # type: ignore[no-untyped-def]
    """The same schema on PostgreSQL: 64-bit ids, double precision times, the same partial
    indexes, a sequence for `seq`, and the version recorded."""
    url = await postgres_server.new_database()
    store = await Store.open(url)
    try:
        columns = dict(
            await store._rows(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            )
        )
        assert columns["orders.chat_id"] == columns["outbox.chat_id"] == columns["drafts.user_id"] == "bigint"
        assert columns["orders.created_at"] == columns["orders.next_poll_at"] == "double precision"
        assert columns["outbox.id"] == "bigint" and columns["orders.amount"] == "integer"
        indexes = dict(await store._rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
        assert "WHERE (next_poll_at IS NOT NULL)" in indexes["orders_due"]
        assert indexes["orders_open_phone"].startswith("CREATE UNIQUE INDEX")
        assert "nextval('orders_seq_numbers'" in str(
            await store._rows(
                "SELECT column_default FROM information_schema.columns "
                "WHERE table_name = 'orders' AND column_name = 'seq'"
            )
        )
        assert await store.schema_version() == SCHEMA_VERSION  # type: ignore[attr-defined]
        await store.insert_order(_order("A", phone="254700000001"))
        await store.insert_order(_order("B", phone="254700000002"))
        assert [tuple(r) for r in await store._rows("SELECT id, seq FROM orders ORDER BY seq")] == [("A", 1), ("B", 2)]
    finally:
        await store.close()


async def test_postgresql_instances_starting_at_once_migrate_once(postgres_server) -> None:  # type: ignore[no-untyped-def]
    """Migrations run under an advisory lock: five instances opening a new database at the
    same moment all start, and each step is applied exactly once."""
    url = await postgres_server.new_database()
    stores = await asyncio.gather(*(Store.open(url) for _ in range(5)))
    try:
        connection = await asyncpg.connect(url)
        versions = [r[0] for r in await connection.fetch("SELECT version FROM schema_version ORDER BY version")]
        await connection.close()
        assert versions == sorted(set(versions)) and versions[-1] == SCHEMA_VERSION
    finally:
        for store in stores:
            await store.close()


async def test_reads_are_answered_while_a_draft_write_waits_for_the_lock(tmp_path: Path) -> None:
    """Reads have a connection of their own: one never queues behind a draft write waiting for
    SQLite's lock (here held by another process's transaction), nor a draft behind many reads."""
    path = tmp_path / "db.sqlite3"
    store = await SqliteStore.open(path)
    try:
        await store.insert_order(_order())
        with another_process_holds_the_write_lock(path):
            draft = asyncio.ensure_future(store.renew_sending("ABC123", 1001.0))
            await asyncio.sleep(0.1)  # the draft is waiting for the lock on its connection
            read = await asyncio.wait_for(store.get_order("ABC123"), timeout=1.0)
            assert read is not None and not draft.done()
        assert not await draft  # not this instance's to renew: what matters is that it ran
    finally:
        await store.close()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[aiosqlite.Connection]:
    """Every aiosqlite connection the store opens from now on, to see which are left open."""
    opened: list[aiosqlite.Connection] = []
    connect = aiosqlite.connect

    def recorded(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(aiosqlite, "connect", recorded)
    return opened


def _still_open(connections: list[aiosqlite.Connection]) -> list[aiosqlite.Connection]:
    return [c for c in connections if c._connection is not None]


async def test_exports_cancelled_at_any_moment_close_their_connections(
    tmp_path: Path, connections: list[aiosqlite.Connection]
) -> None:
    """An export given up (the owner's request cancelled) closes the connection it opened, even
    half way through opening it: none is left with its thread for the garbage collector."""
    store = await SqliteStore.open(tmp_path / "db.sqlite3")
    try:
        for n in range(600):
            await store.insert_order(_order(f"O{n}", phone=f"2547{n:08d}", status=OrderStatus.PAID))
        opened_by_the_store = len(connections)
        moments = random.Random(1)

        async def export() -> int:
            return len([order async for order in store.stream_orders(0, 2000.0)])

        for _ in range(200):
            task = asyncio.ensure_future(export())
            for _ in range(moments.randrange(0, 10)):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert len(connections) > opened_by_the_store + 100  # the exports opened their own
        assert _still_open(connections[opened_by_the_store:]) == []
    finally:
        await store.close()


async def test_a_store_that_cannot_migrate_leaves_no_connection_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: list[aiosqlite.Connection]
) -> None:
    path = tmp_path / "db.sqlite3"
    await (await SqliteStore.open(path)).close()
    monkeypatch.setattr("bot.store.sqlite.BUSY_TIMEOUT_MS", 100)
    with another_process_holds_the_write_lock(path), pytest.raises(StoreUnavailable):  # the migration needs it
        await SqliteStore.open(path)
    assert len(connections) == 6 and _still_open(connections) == []


async def test_an_api_orders_push_record_refused_is_the_store_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record that goes through the drafts connection is refused as any write is: health
    learns of it."""
    monkeypatch.setattr("bot.store.sqlite.BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "db.sqlite3"
    store = await SqliteStore.open(path)
    try:
        await store.insert_order(_order(chat_id=0, source="api"))
        assert await store.claim_sending("ABC123", 1001.0)
        assert await store.record_session("ABC123", "SID1", "ACC1", [])
        with another_process_holds_the_write_lock(path), pytest.raises(StoreUnavailable):
            await store.record_prompt_sent("ABC123", 1003.0, 1008.0, [])
        assert store.write_failure is not None
        assert await store.record_prompt_sent("ABC123", 1004.0, 1009.0, [])
        assert store.write_failure is None
    finally:
        await store.close()
