"""The PostgreSQL back end (asyncpg): the way past one machine.

Several instances can share one database: every query is the shared one in `bot/store/base.py`
with its `?` placeholders numbered `$1, $2, ...` here (one translation, cached); migrations
run under `pg_advisory_xact_lock`, so two instances starting at once migrate one after the
other. Draft writes commit with `synchronous_commit = off` (PostgreSQL's equivalent of
SQLite's `synchronous = NORMAL`: a crash of the bot keeps them, a crash of the server may
lose the last fraction of a second of drafts, never an order).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.store.base import Row, Store, is_postgres_url
from bot.store.migrations import pending, statements
from bot.store.rows import _ORDER_COLUMNS, _ORDER_FIELDS

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x70657361  # "pesa": the advisory lock every instance takes to migrate
POOL_SIZE = 10
LOCK_POOL_SIZE = 20  # chats whose updates this instance handles at the same moment, across instances
CHAT_LOCK_SPACE = 0x63686174  # "chat": the advisory locks (space, chat) that serialise a chat's updates


def _int32(chat_id: int) -> int:
    """A chat id (64 bits) folded to the 32-bit key of a two-key advisory lock. Two chats that
    fold alike merely take turns."""
    folded = (chat_id ^ (chat_id >> 32)) & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (the store's SQL has no `?` in literals)."""
    parts = sql.split("?")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, start=1))


# The server cannot take writes now (as opposed to a bug or a constraint the caller expects).
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.OperatorInterventionError,  # the server is shutting down or restarting
    asyncpg.ReadOnlySQLTransactionError,  # a replica, or a primary being failed over
)


def _changed(status: str) -> int:
    """Rows a statement changed, from its status ("UPDATE 3", "INSERT 0 1", "DELETE 0")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PostgresTx:
    def __init__(self, conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return _changed(await self._conn.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        rows = list(rows)
        if rows:
            await self._conn.executemany(numbered(sql), rows)

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return list(await self._conn.fetch(numbered(sql), *params))


class PostgresStore(Store):
    """A pool of asyncpg connections; transactions are the server's, so instances never step
    on each other's writes (conditional updates and unique indexes decide every race)."""

    shareable = True
    _REFUSALS = _UNAVAILABLE
    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    _FOR_UPDATE = " FOR UPDATE"
    _INSERT_ORDER = (
        f"INSERT INTO orders ({_ORDER_COLUMNS}, api_key_id) VALUES ({', '.join('?' * (len(_ORDER_FIELDS) + 1))})"
    )

    def __init__(self, pool: asyncpg.Pool, locks: asyncpg.Pool) -> None:
        super().__init__()
        self._pool = pool
        self._locks = locks  # connections holding a chat's lock while its update is handled

    @staticmethod
    def _serves(target: Path | str) -> bool:
        return is_postgres_url(target)

    @classmethod
    async def open(cls, target: Path | str, *, pool_size: int = POOL_SIZE) -> PostgresStore:
        pool = await asyncpg.create_pool(str(target), min_size=1, max_size=pool_size)
        try:
            locks = await asyncpg.create_pool(str(target), min_size=0, max_size=LOCK_POOL_SIZE)
        except BaseException:
            await pool.close()
            raise
        store = cls(pool, locks)
        try:
            await store._migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self._locks.close()
        await self._pool.close()

    @asynccontextmanager
    async def chat_lock(self, chat_id: int) -> AsyncIterator[None]:
        """A transaction-scoped advisory lock on the chat, held on a connection of its own pool
        (so handlers waiting for a lock never starve the queries of the handler holding one):
        an update handled by one instance finishes before the chat's next starts on another.
        If this instance dies, the server ends its session and the lock with it."""
        async with self._locks.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", CHAT_LOCK_SPACE, _int32(chat_id))
            yield

    async def database_now(self, given: float) -> float:
        """The database server's clock, which every instance shares (see `Store.database_now`)."""
        row = await self._row("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
        return float(row[0]) if row is not None else given

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return list(await self._pool.fetch(numbered(sql), *params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_PostgresTx]:
        """One transaction. A write the server cannot take (unreachable, disk full, shutting
        down) is remembered as `write_failure` until a write works again, and raised as
        `StoreUnavailable`; a conflict the caller expects (a constraint) is not."""
        with self._write_bookkeeping():
            async with self._pool.acquire() as conn, conn.transaction():
                yield _PostgresTx(conn)

    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement outside an explicit transaction (the server runs it as one): one round
        trip instead of BEGIN, the statement and COMMIT; failures as in `_transaction`."""
        with self._write_bookkeeping():
            return _changed(await self._pool.execute(numbered(sql), *params))

    async def _draft_write(self, sql: str, params: Sequence[object]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            return _changed(await conn.execute(numbered(sql), *params))

    async def _stream(self, sql: str, params: Sequence[object]) -> AsyncIterator[Row]:
        async with self._pool.acquire() as conn, conn.transaction():
            async for row in conn.cursor(numbered(sql), *params, prefetch=500):
                yield row

    def _is_constraint_violation(self, exc: Exception) -> bool:
        return isinstance(exc, asyncpg.IntegrityConstraintViolationError)

    def _is_open_phone_violation(self, exc: Exception) -> bool:
        return getattr(exc, "constraint_name", None) == "orders_open_phone"

    async def _migrate(self) -> None:
        """The steps this database lacks, in one transaction under an advisory lock: a second
        instance starting at the same moment waits, then finds nothing left to do."""
        async with self._transaction() as db:
            await db.rows("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
            )
            ((version,),) = await db.rows("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            for target in pending(version):
                for statement in statements(target, "postgres"):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, now())", (target,))
                log.info("database migrated to version %d", target)

    async def schema_version(self) -> int:
        ((version,),) = await self._rows("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(version)
