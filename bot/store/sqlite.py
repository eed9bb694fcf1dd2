"""SQLite storage for orders and the outbox (aiosqlite).

Every state change is one `BEGIN IMMEDIATE` transaction that also queues the messages
telling it (the outbox), so a crash can never record a payment without its message or
send a message for a change that did not happen. State changes are conditional updates:
finalising an order twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import AsyncIterator, Iterable, Sequence

import aiosqlite

from bot.domain import Network, Notice, Order, OrderStatus, OutboxEntry, Payment, SummaryRow
from bot.store.migrations import _MIGRATIONS, SCHEMA_VERSION
from bot.store.rows import (
    _DRAFT_COLUMNS,
    _DRAFT_UPSERT,
    _OPEN_ON_PHONE,
    _ORDER_COLUMNS,
    _ORDER_FIELDS,
    _OUTBOX_COLUMNS,
    _REQUEST_COLUMNS,
    _REQUEST_FIELDS,
    Draft,
    PayRequest,
    PhoneBusy,
    RequestState,
    RequestTaken,
    Reschedule,
    StoreUnavailable,
    WriteFailure,
    _AlreadyRetried,
    _draft,
    _draft_values,
    _order,
    _order_values,
    _outbox_entry,
    _pay_request,
    _pay_request_values,
)

log = logging.getLogger(__name__)

# A request with no payment on the way: never claimed, or its claiming order ended without money
# and is no longer watched for late money.
_REQUEST_FREE = (
    "(order_id IS NULL OR order_id IN (SELECT id FROM orders WHERE status IN "
    "('cancelled', 'failed', 'expired', 'withdrawn') AND next_poll_at IS NULL))"
)


_PROBE_BYTES = 8192  # more than a page: the probe must allocate, as a new order does
BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's lock before giving up


class Store:
    """One aiosqlite connection; writes are serialised by a lock so transactions never interleave."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._write_lock = asyncio.Lock()
        self._flushing = True  # PRAGMA synchronous = FULL, as opened
        self.write_failure: WriteFailure | None = None

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(Path(path))
        db = await aiosqlite.connect(str(path), isolation_level=None)
        db.row_factory = sqlite3.Row  # rows are read by column name
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

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        """A read in one hop to the database thread (execute and fetch together)."""
        return list(await self._db.execute_fetchall(sql, params))

    async def _row(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def _transaction(self, *, flush: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction. `flush=False` (conversation drafts only) commits without waiting
        for the disk: it survives the bot's own crash (kill -9), not a power cut.

        A write the database refuses (locked by another process, disk full) is remembered as
        `write_failure`, which the next successful write clears, and is raised as
        `StoreUnavailable`; a conflict the caller expects (IntegrityError) is not."""
        async with self._write_lock:
            await self._flush_on_commit(flush)
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
                if isinstance(exc, sqlite3.OperationalError):
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
        except (StoreUnavailable, sqlite3.Error):
            return False
        return True

    async def _flush_on_commit(self, flush: bool) -> None:
        """Whether commits wait for the disk (FULL) or not (NORMAL); called under the write lock."""
        if flush != self._flushing:
            await self._db.execute(f"PRAGMA synchronous = {'FULL' if flush else 'NORMAL'}")
            self._flushing = flush

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
                    f"INSERT INTO orders ({_ORDER_COLUMNS}, api_key_id, seq) "
                    f"VALUES ({', '.join('?' * len(_ORDER_FIELDS))}, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM orders))",
                    (*_order_values(order), api_key_id),
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
                if order.pay_request_id is not None:
                    await self._claim_request(db, order, retry_of)
        except (_AlreadyRetried, sqlite3.IntegrityError):
            return False
        return True

    async def idempotent_order(self, key_hash: str) -> tuple[str, Order] | None:
        """The request hash and order an idempotency key was first used for."""
        row = await self._row(
            f"SELECT k.request_hash, {', '.join('o.' + name for name in _ORDER_FIELDS)} "
            "FROM idempotency_keys k JOIN orders o ON o.id = k.order_id WHERE k.key_hash = ?",
            (key_hash,),
        )
        return (row["request_hash"], _order(row)) if row else None

    async def count_pending(self) -> int:
        (count,) = await self._row("SELECT COUNT(*) FROM orders WHERE status = 'pending'")  # type: ignore[misc]
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
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE chat_id = ? ORDER BY created_at DESC, seq DESC LIMIT ?",
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

    async def claim_sending(self, order_id: str, now: float) -> bool:
        """Claim the right to call /transact for a pending order: true for exactly one caller."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE orders SET initiate_at = ? WHERE id = ? AND status = 'pending' AND initiate_at IS NULL",
                (now, order_id),
            )
            return cursor.rowcount == 1

    async def record_session(self, order_id: str, sid: str, account: str, paybills: Sequence[tuple[str, str]]) -> None:
        """What /transact answered, kept before the push: iPay's session, and the account and
        paybill numbers a payer can use to pay the same order by hand."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE orders SET ipay_sid = ?, ipay_account = ?, ipay_paybills = ? WHERE id = ? AND ipay_sid IS NULL",
                (sid, account, json.dumps([list(pair) for pair in paybills]), order_id),
            )

    async def unsent_orders(self, created_before: float, limit: int) -> list[Order]:
        """Pending orders whose prompt was never recorded as sent, oldest first."""
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = 'pending' AND prompt_sent_at IS NULL "
            "AND created_at <= ? ORDER BY created_at LIMIT ?",
            (created_before, limit),
        )
        return [_order(row) for row in rows]

    async def record_prompt_sent(self, order_id: str, now: float, next_poll_at: float, notices: Iterable[Notice]) -> bool:
        """The push went out (or may have): start the lookups, and tell the chat."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE orders SET prompt_sent_at = ?, next_poll_at = ?, schedule_version = schedule_version + 1, "
                "updated_at = ? WHERE id = ? AND status = 'pending' AND prompt_sent_at IS NULL",
                (now, next_poll_at, now, order_id),
            )
            if cursor.rowcount != 1:
                return False
            await self._queue(db, order_id, notices, now)
            return True

    async def schedule_polls(self, now: float, reschedules: Sequence[Reschedule]) -> None:
        """Count lookups that gave no verdict and set when to ask again (None: stop asking),
        for a whole batch of orders in one transaction. A reschedule whose order's schedule
        moved since its lookup started is stale and changes nothing."""
        if not reschedules:
            return
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE orders SET poll_count = poll_count + 1, next_poll_at = ?, schedule_version = schedule_version + 1, "
                "updated_at = ?, last_error = COALESCE(?, last_error) "
                "WHERE id = ? AND schedule_version = ? AND next_poll_at IS NOT NULL",
                [(r.next_poll_at, now, r.error, r.order_id, r.version) for r in reschedules],
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
            "ORDER BY created_at DESC, seq DESC LIMIT ?",
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
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE created_at >= ? AND created_at < ? ORDER BY created_at, seq",
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
        watch: tuple[float, float] | None = None,
    ) -> bool:
        """Move an order to `status` and queue its notices, atomically. False if not allowed now.

        `watch` (next look, look until) keeps looking the order up after it closed, for money
        that may still arrive; without it the order is never looked up again.
        """
        sources = status.sources()
        placeholders = ", ".join("?" * len(sources))
        next_poll_at, watch_until = watch if watch is not None else (None, None)
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE orders SET status = ?, updated_at = ?, next_poll_at = ?, watch_until = ?, "
                "schedule_version = schedule_version + 1, "
                "last_error = COALESCE(?, last_error), receipt_code = COALESCE(?, receipt_code), "
                "payer_name = COALESCE(?, payer_name), paid_amount = COALESCE(?, paid_amount), "
                f"paid_at = COALESCE(?, paid_at) WHERE id = ? AND status IN ({placeholders})",
                (
                    status.value, now, next_poll_at, watch_until, reason,
                    payment.receipt_code if payment else None, payment.payer_name if payment else None,
                    payment.amount if payment else None, payment.paid_at if payment else None,
                    order_id, *(s.value for s in sources),
                ),
            )
            if cursor.rowcount != 1:
                return False
            if status.money_received:  # the request this order claimed is paid (late money too)
                await db.execute(
                    "UPDATE pay_requests SET state = 'paid', shown_state = NULL, updated_at = ? "
                    "WHERE order_id = ? AND state <> 'paid'",
                    (now, order_id),
                )
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
        """Due entries of every chat, oldest first."""
        rows = await self._rows(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox LEFT JOIN orders ON orders.id = outbox.order_id "
            "WHERE outbox.sent_at IS NULL AND outbox.next_attempt_at <= ? ORDER BY outbox.id LIMIT ?",
            (now, limit),
        )
        return [_outbox_entry(row) for row in rows]

    async def due_chats(self, now: float, limit: int) -> list[int]:
        """Chats whose oldest unsent entry is due, the longest due first.

        A chat whose oldest entry was postponed is not listed even if later entries are due:
        a chat's messages go out in the order they were queued.
        """
        rows = await self._rows(
            "SELECT o.chat_id FROM outbox o WHERE o.sent_at IS NULL AND o.next_attempt_at <= ? AND NOT EXISTS "
            "(SELECT 1 FROM outbox e WHERE e.chat_id = o.chat_id AND e.sent_at IS NULL AND e.id < o.id) "
            "ORDER BY o.next_attempt_at, o.id LIMIT ?",  # by due time: a range of outbox_due, not a scan of history
            (now, limit),
        )
        return [chat_id for chat_id, *_ in rows if isinstance(chat_id, int)]

    async def chat_outbox(self, chat_id: int, now: float, limit: int) -> list[OutboxEntry]:
        """One chat's unsent entries in the order they were queued, up to the first not yet due."""
        rows = await self._rows(
            f"SELECT {_OUTBOX_COLUMNS}, outbox.next_attempt_at FROM outbox "
            "LEFT JOIN orders ON orders.id = outbox.order_id "
            "WHERE outbox.chat_id = ? AND outbox.sent_at IS NULL ORDER BY outbox.id LIMIT ?",
            (chat_id, limit),
        )
        entries = []
        for row in rows:
            next_attempt_at = row[-1]
            if not isinstance(next_attempt_at, (int, float)) or next_attempt_at > now:
                break
            entries.append(_outbox_entry(row[:-1]))
        return entries

    async def mark_sent(self, entry_id: int, now: float, note: str | None = None) -> None:
        await self.mark_many_sent([entry_id], now, note)

    async def mark_many_sent(self, entry_ids: Sequence[int], now: float, note: str | None = None) -> None:
        """Entries one message delivered (a digest) or that will never be delivered, in one transaction."""
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = ? "
                "WHERE id = ? AND sent_at IS NULL",
                [(now, note, entry_id) for entry_id in entry_ids],
            )

    async def postpone(self, entry_id: int, next_attempt_at: float, error: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ? AND sent_at IS NULL",
                (next_attempt_at, error, entry_id),
            )

    async def pending_outbox_count(self) -> int:
        (count,) = await self._row("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")  # type: ignore[misc]
        return int(count)  # type: ignore[call-overload]

    # -- conversation drafts ------------------------------------------------------------
    # Each write is one statement, atomic by itself: one hop to the database thread under the
    # write lock (a BEGIN/COMMIT pair would hold the lock for three). Drafts commit without
    # waiting for the disk: a kill -9 keeps them, only a power cut could lose the last steps.

    async def _draft_write(self, sql: str, params: Sequence[object]) -> int:
        async with self._write_lock:
            await self._flush_on_commit(False)
            cursor = await self._db.execute(sql, params)
            return cursor.rowcount

    async def get_draft(self, chat_id: int, user_id: int) -> Draft | None:
        row = await self._row(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        )
        return _draft(row) if row else None

    async def put_draft(self, draft: Draft, *, replacing: str | None = None) -> bool:
        """Write a draft. Without `replacing` it is a new conversation and replaces whatever
        this person had in this chat; with it, only if the stored draft is still at that
        revision (False if it was dropped or changed meanwhile, e.g. by the timeout)."""
        if replacing is None:
            await self._draft_write(
                f"INSERT INTO drafts ({_DRAFT_COLUMNS}) VALUES ({', '.join('?' * 10)}) "
                f"ON CONFLICT (chat_id, user_id) DO UPDATE SET {_DRAFT_UPSERT}",
                _draft_values(draft),
            )
            return True
        changed = await self._draft_write(
            "UPDATE drafts SET step = ?, revision = ?, updated_at = ?, phone = ?, network = ?, amount = ?, "
            "summary_key = ?, pay_request_id = ? WHERE chat_id = ? AND user_id = ? AND revision = ?",
            (*_draft_values(draft)[2:], draft.chat_id, draft.user_id, replacing),
        )
        return changed == 1

    async def drop_draft(self, chat_id: int, user_id: int, *, revision: str | None = None) -> bool:
        """Forget a conversation; with `revision`, only if nothing was written to it since."""
        condition = "" if revision is None else " AND revision = ?"
        params: tuple[object, ...] = (chat_id, user_id) + (() if revision is None else (revision,))
        return await self._draft_write(f"DELETE FROM drafts WHERE chat_id = ? AND user_id = ?{condition}", params) == 1

    async def drafts_written_between(self, after: float, until: float, limit: int = 500) -> list[Draft]:
        """Drafts last written in (after, until], oldest first (an index range)."""
        rows = await self._rows(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE updated_at > ? AND updated_at <= ? ORDER BY updated_at LIMIT ?",
            (after, until, limit),
        )
        return [_draft(row) for row in rows]

    async def purge_drafts(self, before: float) -> int:
        """Forget drafts abandoned long ago (their payer never came back to be told)."""
        return await self._draft_write("DELETE FROM drafts WHERE updated_at < ?", (before,))


    # -- payment requests a merchant sends (issue 15) -----------------------------------
    # A request is claimed by the order of the first Confirm, in that order's own insert
    # transaction, so two payers racing one request can never both be prompted.

    async def _claim_request(self, db: aiosqlite.Connection, order: Order, retry_of: str | None) -> None:
        """Point the order's request at it, if the request is open, unexpired and has no payment
        on the way (a retry may take over from the attempt it retries). Raises `RequestTaken`."""
        cursor = await db.execute(
            "UPDATE pay_requests SET order_id = ?, updated_at = ? WHERE id = ? AND state = 'open' AND expires_at > ? "
            f"AND amount = ? AND ({_REQUEST_FREE} OR order_id = ?)",  # the payer cannot change the amount
            (order.id, order.created_at, order.pay_request_id, order.created_at, order.amount, retry_of),
        )
        if cursor.rowcount != 1:
            raise RequestTaken(order.pay_request_id)

    async def insert_pay_request(self, request: PayRequest) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO pay_requests ({_REQUEST_COLUMNS}) VALUES ({', '.join('?' * len(_REQUEST_FIELDS))})",
                _pay_request_values(request),
            )

    async def get_pay_request(self, request_id: str) -> PayRequest | None:
        row = await self._row(f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE id = ?", (request_id,))
        return _pay_request(row) if row else None

    async def pay_request_by_token(self, token: str) -> PayRequest | None:
        row = await self._row(f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE token = ?", (token,))
        return _pay_request(row) if row else None

    async def get_api_pay_request(self, request_id: str, api_key_id: str) -> PayRequest | None:
        """A request only as the REST API key that created it may see it."""
        row = await self._row(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE id = ? AND source = 'api' AND api_key_id = ?",
            (request_id, api_key_id),
        )
        return _pay_request(row) if row else None

    async def inline_offer(self, created_by: int, amount: int, note: str, since: float) -> PayRequest | None:
        """An inline card this person was offered lately for the same amount and note, not yet
        posted: offered again instead of a new request for every keystroke."""
        row = await self._row(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE created_by = ? AND source = 'inline' AND posted = 0 "
            "AND state = 'open' AND amount = ? AND note = ? AND created_at > ? ORDER BY created_at DESC LIMIT 1",
            (created_by, amount, note, since),
        )
        return _pay_request(row) if row else None

    async def set_request_message(
        self, request_id: str, *, message_id: int | None = None, inline_message_id: str | None = None
    ) -> None:
        """The message (or posted inline card) that shows the request: edited when it changes."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE pay_requests SET message_id = COALESCE(?, message_id), "
                "inline_message_id = COALESCE(?, inline_message_id), posted = 1 WHERE id = ?",
                (message_id, inline_message_id, request_id),
            )

    async def cancel_pay_request(self, request_id: str, now: float) -> bool:
        """Open, with no payment on the way -> cancelled. False otherwise (paid, being paid, ended)."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE pay_requests SET state = 'cancelled', shown_state = NULL, updated_at = ? "
                f"WHERE id = ? AND state = 'open' AND {_REQUEST_FREE}",
                (now, request_id),
            )
            return cursor.rowcount == 1

    async def expire_pay_requests(self, now: float) -> int:
        """Open requests past their time with no payment on the way -> expired (an index range)."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE pay_requests SET state = 'expired', shown_state = NULL, updated_at = ? "
                f"WHERE state = 'open' AND expires_at <= ? AND {_REQUEST_FREE}",
                (now, now),
            )
            return cursor.rowcount

    async def requests_to_show(self, limit: int = 100) -> list[PayRequest]:
        """Requests whose message does not show their state yet, oldest change first."""
        rows = await self._rows(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE shown_state IS NULL ORDER BY updated_at LIMIT ?",
            (limit,),
        )
        return [_pay_request(row) for row in rows]

    async def mark_request_shown(self, request_id: str, state: RequestState) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE pay_requests SET shown_state = ? WHERE id = ? AND state = ?", (state.value, request_id, state.value)
            )

    async def latest_pay_requests(self, since: float, limit: int) -> list[PayRequest]:
        """Open requests and those made since `since`, newest first (inline cards never posted left out)."""
        rows = await self._rows(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE posted = 1 AND (state = 'open' OR created_at >= ?) "
            "ORDER BY created_at DESC LIMIT ?",
            (since, limit),
        )
        return [_pay_request(row) for row in rows]


def _owner_only(database: Path) -> None:
    """The database holds full phone numbers: readable by its owner only, whatever the umask.
    SQLite gives the -wal and -shm files the database file's mode, so creating the database 0600
    covers them; files an older version left world-readable are narrowed too."""
    os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            if file.exists() and file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)
        except PermissionError as exc:  # not our file to change: say so, but it still opens
            log.warning("could not make %s owner-only: %s", file.name, exc.strerror)
