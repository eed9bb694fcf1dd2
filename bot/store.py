"""SQLite storage for orders and the outbox: the only module with SQL.

Every state change is one `BEGIN IMMEDIATE` transaction that also queues the messages
telling it (the outbox), so a crash can never record a payment without its message or
send a message for a change that did not happen. State changes are conditional updates:
finalising an order twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterable, NamedTuple, Sequence

import aiosqlite

from bot.domain import (
    Network,
    Notice,
    Order,
    OrderStatus,
    OutboxEntry,
    Payment,
    SummaryRow,
)

SCHEMA_VERSION = 8

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE orders (
        id                TEXT PRIMARY KEY,
        chat_id           INTEGER NOT NULL,
        user_id           INTEGER NOT NULL,
        phone             TEXT NOT NULL,
        network           TEXT NOT NULL,
        amount            INTEGER NOT NULL CHECK (amount > 0),
        status            TEXT NOT NULL,
        ipay_sid          TEXT,
        prompt_sent_at    REAL,
        prompt_message_id INTEGER,
        receipt_code      TEXT,
        payer_name        TEXT,
        paid_amount       INTEGER,
        paid_at           REAL,
        created_at        REAL NOT NULL,
        updated_at        REAL NOT NULL,
        poll_count        INTEGER NOT NULL DEFAULT 0,
        next_poll_at      REAL,
        last_error        TEXT
    );
    CREATE INDEX orders_due ON orders (next_poll_at) WHERE status = 'pending';
    CREATE INDEX orders_by_chat ON orders (chat_id, created_at);
    CREATE INDEX orders_by_phone ON orders (phone, created_at);
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id        TEXT REFERENCES orders (id),
        chat_id         INTEGER NOT NULL,
        text            TEXT NOT NULL,
        buttons         TEXT NOT NULL DEFAULT '[]',
        edit_prompt     INTEGER NOT NULL DEFAULT 0,
        created_at      REAL NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        sent_at         REAL,
        last_error      TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
    """,
    # 2: "send the prompt again" links attempts; an order cancelled in the chat is still
    # looked up once more (money may arrive late), so "due" no longer means "pending".
    2: """
    ALTER TABLE orders ADD COLUMN retry_order_id TEXT REFERENCES orders (id);
    DROP INDEX orders_due;
    CREATE INDEX orders_due ON orders (next_poll_at) WHERE next_poll_at IS NOT NULL;
    """,
    # 3: merchant tools: who asked, per-user limits, reports by period.
    3: """
    ALTER TABLE orders ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
    CREATE INDEX orders_by_user ON orders (user_id, created_at);
    CREATE INDEX orders_by_time ON orders (created_at);
    """,
    # 4: the REST API: orders without a chat, the caller's reference and email, and
    # idempotency keys so a repeated request returns the same order instead of prompting twice.
    4: """
    ALTER TABLE orders ADD COLUMN source TEXT NOT NULL DEFAULT 'chat';
    ALTER TABLE orders ADD COLUMN reference TEXT;
    ALTER TABLE orders ADD COLUMN email TEXT;
    CREATE TABLE idempotency_keys (
        key_hash     TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        order_id     TEXT NOT NULL REFERENCES orders (id),
        created_at   REAL NOT NULL
    );
    """,
    # 8: the REST API reads only what its own key created (an identifier of the key, never the
    # key), and a table that /healthz writes to when it must know whether writes work again.
    8: """
    ALTER TABLE orders ADD COLUMN api_key_id TEXT;
    CREATE TABLE write_probe (
        id        INTEGER PRIMARY KEY,
        probed_at REAL NOT NULL,
        pad       BLOB
    );
    """,
}

_ORDER_COLUMNS = (
    "id, chat_id, user_id, phone, network, amount, status, created_at, updated_at, next_poll_at, "
    "poll_count, ipay_sid, prompt_sent_at, prompt_message_id, receipt_code, payer_name, paid_amount, "
    "paid_at, last_error, retry_order_id, requested_by, source, reference, email"
)


def _order(row: Sequence[object]) -> Order:
    values = list(row)
    values[4] = Network(values[4])
    values[6] = OrderStatus(values[6])
    return Order(*values)  # type: ignore[arg-type]


class Reschedule(NamedTuple):
    """When to look an order up again after a lookup without a verdict."""

    order_id: str
    next_poll_at: float | None
    error: str | None


# An order whose prompt may still be on the phone: pending, or cancelled in the chat and
# still watched (the prompt can outlive the cancel).
_OPEN_ON_PHONE = "phone = ? AND status IN ('pending', 'withdrawn') AND next_poll_at IS NOT NULL"


class PhoneBusy(Exception):
    """An order could not be written because its phone has an open prompt."""


class StoreUnavailable(sqlite3.OperationalError):
    """A write could not be made (the database is locked by another process, the disk is full,
    ...): the caller says "try again later", and health says unhealthy until a write works."""


@dataclass(frozen=True)
class WriteFailure:
    """The last write that failed, kept until a write succeeds again."""

    error: str
    at: float


class _AlreadyRetried(Exception):
    """Rolls back a retry whose original order was retried by someone else first."""


_PROBE_BYTES = 8192  # more than a page: the probe must allocate, as a new order does
BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's lock before giving up


class Store:
    """One aiosqlite connection; writes are serialised by a lock so transactions never interleave."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._write_lock = asyncio.Lock()
        self.write_failure: WriteFailure | None = None

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        # These pragmas do not apply inside a transaction: set them first.
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        store = cls(db)
        await store._migrate()
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Sequence[object]]:
        """A read in one hop to the database thread (execute and fetch together)."""
        return list(await self._db.execute_fetchall(sql, params))

    async def _row(self, sql: str, params: Sequence[object] = ()) -> Sequence[object] | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction. A write the database refuses (locked by another process, disk
        full) is remembered as `write_failure`, which the next successful write clears, and is
        raised as `StoreUnavailable`; a conflict the caller expects (IntegrityError) is not."""
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._write_failed(exc) from exc
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction already
                    await self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, StoreUnavailable):
                    raise self._write_failed(exc) from exc
                raise
            self.write_failure = None

    def _write_failed(self, exc: sqlite3.OperationalError) -> StoreUnavailable:
        self.write_failure = WriteFailure(str(exc), time.time())
        return StoreUnavailable(str(exc))

    async def probe_write(self, now: float) -> bool:
        """A real write, to learn whether writes work again after one failed. It takes the write
        lock and needs new space (a row bigger than a page, removed in the same transaction):
        a row updated in place could succeed on a full disk where a new order cannot."""
        try:
            async with self._transaction() as db:
                await db.execute(
                    "INSERT INTO write_probe (id, probed_at, pad) VALUES (1, ?, ?)", (now, bytes(_PROBE_BYTES))
                )
                await db.execute("DELETE FROM write_probe WHERE id = 1")
        except sqlite3.Error:
            return False
        return True

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            (version,) = await (await db.execute("PRAGMA user_version")).fetchone()  # type: ignore[misc]
            # Numbers may have gaps while branches hold numbers of their own: apply those present.
            for target in sorted(n for n in _MIGRATIONS if version < n <= SCHEMA_VERSION):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {target}")

    # -- orders -------------------------------------------------------------------------

    async def insert_order(
        self,
        order: Order,
        *,
        retry_of: str | None = None,
        idempotency: tuple[str, str] | None = None,
        api_key_id: str | None = None,
    ) -> bool:
        """Write a new order. With `retry_of`, only if that order has not been retried yet; with
        `idempotency` (key hash, request hash), only if that key has not been used yet;
        `api_key_id` names the REST API key that asked (only it may read the order).
        Raises `PhoneBusy` if the phone has an open prompt."""
        try:
            async with self._transaction() as db:
                # Checked again inside the write: two chats confirming the same phone at once
                # must not both get a prompt out (chats are processed concurrently).
                if await (await db.execute(f"SELECT 1 FROM orders WHERE {_OPEN_ON_PHONE}", (order.phone,))).fetchone():
                    raise PhoneBusy(order.phone)
                await db.execute(
                    f"INSERT INTO orders ({_ORDER_COLUMNS}, api_key_id) VALUES ({', '.join('?' * 25)})",
                    (
                        order.id, order.chat_id, order.user_id, order.phone, order.network.value, order.amount,
                        order.status.value, order.created_at, order.updated_at, order.next_poll_at, order.poll_count,
                        order.ipay_sid, order.prompt_sent_at, order.prompt_message_id, order.receipt_code,
                        order.payer_name, order.paid_amount, order.paid_at, order.last_error, order.retry_order_id,
                        order.requested_by, order.source, order.reference, order.email, api_key_id,
                    ),
                )
                if idempotency is not None:
                    await db.execute(
                        "INSERT INTO idempotency_keys (key_hash, request_hash, order_id, created_at) VALUES (?, ?, ?, ?)",
                        (*idempotency, order.id, order.created_at),
                    )
                if retry_of is not None:
                    cursor = await db.execute(
                        "UPDATE orders SET retry_order_id = ? WHERE id = ? AND retry_order_id IS NULL", (order.id, retry_of)
                    )
                    if cursor.rowcount != 1:
                        raise _AlreadyRetried
        except (_AlreadyRetried, sqlite3.IntegrityError):
            return False
        return True

    async def idempotent_order(self, key_hash: str) -> tuple[str, Order] | None:
        """The request hash and order an idempotency key was first used for."""
        row = await self._row(
            f"SELECT k.request_hash, {', '.join('o.' + c.strip() for c in _ORDER_COLUMNS.split(','))} "
            "FROM idempotency_keys k JOIN orders o ON o.id = k.order_id WHERE k.key_hash = ?",
            (key_hash,),
        )
        return (row[0], _order(row[1:])) if row else None

    async def count_pending(self) -> int:
        (count,) = await self._row("SELECT COUNT(*) FROM orders WHERE next_poll_at IS NOT NULL AND status = 'pending'")  # type: ignore[misc]
        return int(count)  # type: ignore[call-overload]

    async def get_order(self, order_id: str) -> Order | None:
        row = await self._row(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,))
        return _order(row) if row else None

    async def get_api_order(self, order_id: str, api_key_id: str) -> Order | None:
        """An order only as the REST API key that created it may see it; any other id is "not found"."""
        row = await self._row(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ? AND source = 'api' AND api_key_id = ?",
            (order_id, api_key_id),
        )
        return _order(row) if row else None

    async def get_chat_order(self, order_id: str, chat_id: int) -> Order | None:
        """An order only as the chat that made it may see it; another chat's id is "not found"."""
        row = await self._row(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ? AND chat_id = ?", (order_id, chat_id)
        )
        return _order(row) if row else None

    async def latest_chat_orders(self, chat_id: int, limit: int) -> list[Order]:
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE chat_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (chat_id, limit),
        )
        return [_order(row) for row in rows]

    async def due_orders(self, now: float, limit: int) -> list[Order]:
        """Orders whose next lookup is due, oldest first (an index range, not a scan)."""
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE next_poll_at IS NOT NULL AND next_poll_at <= ? "
            "ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        )
        return [_order(row) for row in rows]

    async def record_prompt_sent(
        self, order_id: str, sid: str, now: float, next_poll_at: float, notices: Iterable[Notice]
    ) -> bool:
        """The push went out (or may have): keep iPay's session id and start the lookups."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE orders SET ipay_sid = ?, prompt_sent_at = ?, next_poll_at = ?, updated_at = ? "
                "WHERE id = ? AND status = 'pending' AND prompt_sent_at IS NULL",
                (sid, now, next_poll_at, now, order_id),
            )
            if cursor.rowcount != 1:
                return False
            await self._queue(db, order_id, notices, now)
            return True

    async def schedule_polls(self, now: float, reschedules: Sequence[Reschedule]) -> None:
        """Count lookups that gave no verdict and set when to ask again (None: stop asking),
        for a whole batch of orders in one transaction."""
        if not reschedules:
            return
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE orders SET poll_count = poll_count + 1, next_poll_at = ?, updated_at = ?, "
                "last_error = COALESCE(?, last_error) WHERE id = ? AND next_poll_at IS NOT NULL",
                [(r.next_poll_at, now, r.error, r.order_id) for r in reschedules],
            )

    async def open_order_for_phone(self, phone: str) -> Order | None:
        """The order whose prompt may still be on this phone: pending, or cancelled in the chat
        and still being watched (the prompt can outlive the cancel)."""
        row = await self._row(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {_OPEN_ON_PHONE} ORDER BY created_at DESC LIMIT 1", (phone,)
        )
        return _order(row) if row else None

    async def orders_since(self, *, since: float, user_id: int | None = None, phone: str | None = None) -> list[float]:
        """Creation times of one user's or one phone's orders since `since`, oldest first (limits)."""
        column, value = ("user_id", user_id) if user_id is not None else ("phone", phone)
        rows = await self._rows(
            f"SELECT created_at FROM orders WHERE {column} = ? AND created_at > ? ORDER BY created_at", (value, since)
        )
        return [float(row[0]) for row in rows]  # type: ignore[arg-type]

    async def latest_orders(self, *, start: float, end: float, limit: int, chat_id: int | None = None) -> list[Order]:
        """Newest first, in [start, end); one chat's, or every chat's when `chat_id` is None."""
        chat_filter = "" if chat_id is None else " AND chat_id = ?"
        params: tuple[object, ...] = (start, end) + (() if chat_id is None else (chat_id,)) + (limit,)
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE created_at >= ? AND created_at < ?{chat_filter} "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?",
            params,
        )
        return [_order(row) for row in rows]

    async def summary(self, start: float, end: float) -> list[SummaryRow]:
        rows = await self._rows(
            "SELECT status, network, COUNT(*), SUM(amount), COALESCE(SUM(paid_amount), 0) FROM orders "
            "WHERE created_at >= ? AND created_at < ? GROUP BY status, network ORDER BY status, network",
            (start, end),
        )
        return [
            SummaryRow(OrderStatus(row[0]), Network(row[1]), int(row[2]), int(row[3]), int(row[4]))
            for row in rows
        ]

    async def stream_orders(self, start: float, end: float) -> AsyncIterator[Order]:
        """Every order in [start, end), oldest first, a few hundred rows at a time."""
        cursor = await self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE created_at >= ? AND created_at < ? ORDER BY created_at, rowid",
            (start, end),
        )
        cursor.arraysize = 500
        async for row in cursor:
            yield _order(row)
        await cursor.close()

    async def set_prompt_message(self, order_id: str, message_id: int) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE orders SET prompt_message_id = ? WHERE id = ?", (message_id, order_id))

    async def finalise(
        self,
        order_id: str,
        status: OrderStatus,
        now: float,
        notices: Iterable[Notice],
        *,
        payment: Payment | None = None,
        reason: str | None = None,
        recheck_at: float | None = None,
    ) -> bool:
        """Move an order to `status` and queue its notices, atomically. False if not allowed now.

        `recheck_at` keeps one more lookup scheduled (for money that may still arrive).
        """
        sources = status.sources()
        placeholders = ", ".join("?" * len(sources))
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE orders SET status = ?, updated_at = ?, next_poll_at = ?, "
                "last_error = COALESCE(?, last_error), receipt_code = COALESCE(?, receipt_code), "
                "payer_name = COALESCE(?, payer_name), paid_amount = COALESCE(?, paid_amount), "
                f"paid_at = COALESCE(?, paid_at) WHERE id = ? AND status IN ({placeholders})",
                (
                    status.value, now, recheck_at, reason,
                    payment.receipt_code if payment else None, payment.payer_name if payment else None,
                    payment.amount if payment else None, payment.paid_at if payment else None,
                    order_id, *(s.value for s in sources),
                ),
            )
            if cursor.rowcount != 1:
                return False
            await self._queue(db, order_id, notices, now)
            return True

    # -- outbox -------------------------------------------------------------------------

    async def _queue(self, db: aiosqlite.Connection, order_id: str | None, notices: Iterable[Notice], now: float) -> None:
        await db.executemany(
            "INSERT INTO outbox (order_id, chat_id, text, buttons, edit_prompt, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (order_id, n.chat_id, n.text, json.dumps([list(b) for b in n.buttons]), int(n.edit_prompt), now, now)
                for n in notices
            ],
        )

    async def queue_notices(self, notices: Iterable[Notice], now: float) -> None:
        """Queue messages that belong to no order (reports, summaries)."""
        async with self._transaction() as db:
            await self._queue(db, None, notices, now)

    async def due_outbox(self, now: float, limit: int) -> list[OutboxEntry]:
        rows = await self._rows(
            "SELECT outbox.id, outbox.order_id, outbox.chat_id, outbox.text, outbox.buttons, outbox.edit_prompt, "
            "orders.prompt_message_id, outbox.attempts FROM outbox LEFT JOIN orders ON orders.id = outbox.order_id "
            "WHERE outbox.sent_at IS NULL AND outbox.next_attempt_at <= ? ORDER BY outbox.id LIMIT ?",
            (now, limit),
        )
        return [
            OutboxEntry(
                id=row[0],
                order_id=row[1],
                notice=Notice(row[2], row[3], tuple(tuple(b) for b in json.loads(row[4])), bool(row[5])),  # type: ignore[misc]
                prompt_message_id=row[6],
                attempts=row[7],
            )
            for row in rows
        ]

    async def mark_sent(self, entry_id: int, now: float, note: str | None = None) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
                (now, note, entry_id),
            )

    async def postpone(self, entry_id: int, next_attempt_at: float, error: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                (next_attempt_at, error, entry_id),
            )

    async def pending_outbox_count(self) -> int:
        (count,) = await self._row("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")  # type: ignore[misc]
        return int(count)  # type: ignore[call-overload]
