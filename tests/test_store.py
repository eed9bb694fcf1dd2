"""Storage: schema, pragmas, and conditional state changes."""

from __future__ import annotations

from pathlib import Path

from bot.domain import Network, Notice, Order, OrderStatus
from bot.store import SCHEMA_VERSION, Store


def _order(order_id: str = "ABC123", **changes: object) -> Order:
    base = dict(id=order_id, chat_id=1, user_id=1, phone="254712345678", network=Network.MPESA, amount=100,
                status=OrderStatus.PENDING, created_at=1000.0, updated_at=1000.0, next_poll_at=1005.0)
    base.update(changes)
    return Order(**base)  # type: ignore[arg-type]


async def test_schema_and_pragmas(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "sub" / "db.sqlite3")
    try:
        db = store._db
        assert (await (await db.execute("PRAGMA user_version")).fetchone())[0] == SCHEMA_VERSION
        assert (await (await db.execute("PRAGMA journal_mode")).fetchone())[0] == "wal"
        assert (await (await db.execute("PRAGMA foreign_keys")).fetchone())[0] == 1
        assert (await (await db.execute("PRAGMA busy_timeout")).fetchone())[0] == 5000
    finally:
        await store.close()
    reopened = await Store.open(tmp_path / "sub" / "db.sqlite3")  # migrating again is a no-op
    await reopened.close()


async def test_due_orders_use_the_index(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        plan = await (await store._db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM orders WHERE status = 'pending' AND next_poll_at <= ? ORDER BY next_poll_at LIMIT 10",
            (0,),
        )).fetchall()
        assert "USING INDEX orders_due" in " ".join(str(row[-1]) for row in plan)
    finally:
        await store.close()


async def test_finalise_is_conditional_and_queues_notices_atomically(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
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
