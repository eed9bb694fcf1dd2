"""The SQLite back end (aiosqlite): the embedded default, one file, zero set-up.

Two aiosqlite connections to the file, used only through aiosqlite's public API. Every write that
must survive a power cut goes through the first, whose commits wait for the disk (`synchronous
= FULL`); conversation drafts, heartbeats and the like go through the second (`NORMAL`: a kill -9
keeps them, only a power cut could lose the last steps), and so do reads outside a transaction
(WAL shows them everything committed), so the first connection's queue holds writes only and a
transaction's steps never wait behind a busy moment's reads. Each connection runs its statements
one at a time, in the order asked, on its own thread; SQLite's file lock (WAL mode,
`busy_timeout`) orders the two connections' commits.

On the first connection, a write of one statement (a claim, a delivered message, a chat's order)
is a transaction by itself and joins the connection's queue at once. A transaction of several
statements (`_transaction`: `finalise`, `record_prompt_sent`, the daily summary...) holds a lock
from its `BEGIN IMMEDIATE` to its `COMMIT`, and one-statement writes wait only while one is
open, so nothing else runs inside it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aiosqlite

from bot.store.base import Row, Store, is_postgres_url
from bot.store.migrations import pending, statements
from bot.store.rows import _ORDER_COLUMNS, _ORDER_FIELDS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a write waits for the other connection's or another process's lock


class _SqliteTx:
    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self._db = db

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._db.executemany(sql, rows)

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return list(await self._db.execute_fetchall(sql, params))


async def _connect(path: str, synchronous: str) -> aiosqlite.Connection:
    """One connection in autocommit mode (transactions are begun explicitly), rows read by name."""
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    # These pragmas do not apply inside a transaction: set them first.
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute(f"PRAGMA synchronous = {synchronous}")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


class SqliteStore(Store):
    """Two aiosqlite connections (commits that wait for the disk, and drafts that need not);
    transactions of several statements hold a lock so nothing runs inside them."""

    _REFUSALS = (sqlite3.OperationalError,)  # locked by another process, disk full, read-only
    _INSERT_ORDER = (
        f"INSERT INTO orders ({_ORDER_COLUMNS}, api_key_id, seq) VALUES ({', '.join('?' * len(_ORDER_FIELDS))}, ?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM orders))"  # one writer at a time: no two get the same
    )

    def __init__(self, db: aiosqlite.Connection, drafts: aiosqlite.Connection) -> None:
        super().__init__()
        self._db = db
        self._drafts = drafts  # drafts and reads; the same connection for an in-memory database
        self._write_lock = asyncio.Lock()  # held from BEGIN to COMMIT of a multi-statement transaction
        self._no_transaction = asyncio.Event()  # cleared while one is open: single statements wait for it
        self._no_transaction.set()

    @staticmethod
    def _serves(target: Path | str) -> bool:
        return not is_postgres_url(target)

    @classmethod
    async def open(cls, target: Path | str) -> SqliteStore:
        path = str(target)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(Path(path))
        db = await _connect(path, "FULL")
        drafts = db if path == ":memory:" else await _connect(path, "NORMAL")
        store = cls(db, drafts)
        await store._migrate()
        return store

    async def close(self) -> None:
        if self._drafts is not self._db:
            await self._drafts.close()
        await self._db.close()

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """A read in one hop, on the second connection: it never queues behind the steps of an
        open write transaction (WAL shows it everything committed), nor they behind it."""
        return list(await self._drafts.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_SqliteTx]:
        """One write transaction of several statements, holding the write lock from its BEGIN to
        its COMMIT (or its ROLLBACK if the block raised).

        A write the database refuses (locked by another process, disk full) is remembered as
        `write_failure`, which the next successful write clears, and is raised as
        `StoreUnavailable`; a conflict the caller expects (IntegrityError) is not."""
        async with self._write_lock:
            self._no_transaction.clear()
            try:
                with self._write_bookkeeping():
                    await self._db.execute("BEGIN IMMEDIATE")
                    try:
                        yield _SqliteTx(self._db)
                        await self._db.execute("COMMIT")
                    except BaseException:
                        with suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction already
                            await self._db.execute("ROLLBACK")
                        raise
            finally:
                self._no_transaction.set()

    async def _single(self, connection: aiosqlite.Connection, sql: str, params: Sequence[object]) -> int:
        """One statement as its own transaction. On the first connection it waits while a
        multi-statement transaction is open (it would otherwise run inside it), then joins the
        connection's queue at once, without taking the lock itself: such writes never queue
        behind each other here, only on the database thread. (Checking and joining the queue
        happen with no await between them: aiosqlite queues a statement before it first waits.)"""
        if connection is self._db:
            while not self._no_transaction.is_set():
                await self._no_transaction.wait()
        cursor = await connection.execute(sql, params)
        return cursor.rowcount

    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement, committed waiting for the disk (FULL); failures as in `_transaction`."""
        with self._write_bookkeeping():
            return await self._single(self._db, sql, params)

    async def _draft_write(self, sql: str, params: Sequence[object]) -> int:
        """One statement, committed without waiting for the disk (NORMAL)."""
        return await self._single(self._drafts, sql, params)

    async def _stream(self, sql: str, params: Sequence[object]) -> AsyncIterator[Row]:
        cursor = await self._drafts.execute(sql, params)
        cursor.arraysize = 500
        async for row in cursor:
            yield row
        await cursor.close()

    async def claim_chats(self, now: float, limit: int) -> list[int]:
        """Chats with a due message. One process per SQLite file (a second poller is refused;
        several instances need PostgreSQL), so its workers are the only claim: writing claims
        would only queue the first delivery behind the write lock."""
        return await self.due_chats(now, limit)

    async def renew_chat(self, chat_id: int, now: float) -> bool:
        """Nothing was claimed (see `claim_chats`): the chat stays this process's."""
        return True

    async def release_chat(self, chat_id: int) -> None:
        """Nothing was claimed (see `claim_chats`)."""

    def _is_constraint_violation(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def _is_open_phone_violation(self, exc: Exception) -> bool:
        return "orders.phone" in str(exc)

    async def _migrate(self) -> None:
        """The steps this file lacks, each with its `PRAGMA user_version`, in one transaction
        (a second process opening the file waits on the write lock, then finds nothing to do)."""
        async with self._transaction() as db:
            ((version,),) = await db.rows("PRAGMA user_version")
            for target in pending(version):
                for statement in statements(target, "sqlite"):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {target}")


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
