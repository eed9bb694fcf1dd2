"""The SQLite back end (aiosqlite): the embedded default, one file, zero set-up.

One connection, whose statements run one at a time, in the order asked, on aiosqlite's thread.
A write that is whole in one step of that queue goes straight onto it: one statement (a draft,
a claim, a delivered message, a chat's order) is a transaction by itself, and a conditional
write with what follows from it (`record_prompt_sent`, `finalise`, the daily summary) runs
from `BEGIN IMMEDIATE` to `COMMIT` on the database thread. Transactions that need the event
loop between their statements (`_transaction`) hold a lock from begin to end, and the one-step
writes wait only while one of those is open, so nothing runs inside it. Each step a write
spends holding a lock is an event-loop turn every other write waits for: were every write to
take the lock, a busy /pay conversation would queue 13-15 writes deep for it.

Commits wait for the disk (`synchronous = FULL`), except conversation drafts (`NORMAL`: a
kill -9 keeps them, only a power cut could lose the last steps). The setting is changed on the
database thread in the same queue step as the write that needs it, so a write never commits
under the setting another write asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TypeVar

import aiosqlite

from bot.store.base import Row, Store, is_postgres_url
from bot.store.migrations import pending, statements
from bot.store.rows import _ORDER_COLUMNS, _ORDER_FIELDS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's lock before giving up

T = TypeVar("T")


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


class SqliteStore(Store):
    """One aiosqlite connection; transactions of several statements hold a lock so nothing runs
    inside them; single-statement writes wait for it only while one is open."""

    _REFUSALS = (sqlite3.OperationalError,)  # locked by another process, disk full, read-only
    _INSERT_ORDER = (
        f"INSERT INTO orders ({_ORDER_COLUMNS}, api_key_id, seq) VALUES ({', '.join('?' * len(_ORDER_FIELDS))}, ?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM orders))"  # one writer at a time: no two get the same
    )

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self._db = db
        self._write_lock = asyncio.Lock()  # held from BEGIN to COMMIT of a multi-statement transaction
        self._no_transaction = asyncio.Event()  # cleared while one is open: single statements wait for it
        self._no_transaction.set()
        self._flushing = True  # PRAGMA synchronous = FULL, as opened; read and set on the database thread only

    @staticmethod
    def _serves(target: Path | str) -> bool:
        return not is_postgres_url(target)

    @classmethod
    async def open(cls, target: Path | str) -> SqliteStore:
        path = target
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

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """A read in one hop to the database thread (execute and fetch together)."""
        return list(await self._db.execute_fetchall(sql, params))

    async def _in_db_thread(self, work: Callable[..., T], *args: object) -> T:
        """`work(connection, *args)` as one step of the connection's queue, on its thread: nothing
        else runs between its statements. aiosqlite (pinned in requirements.txt) offers this as
        `Connection._execute`, which each of its own methods (`execute`, `commit`...) is made of."""
        result: T = await self._db._execute(work, self._db._conn, *args)
        return result

    def _set_flushing(self, connection: sqlite3.Connection, flush: bool) -> None:
        """Whether commits wait for the disk (FULL) or not (NORMAL). On the database thread, in
        queue order: the setting is then the one the next statement in the queue asked for."""
        if flush != self._flushing:
            connection.execute(f"PRAGMA synchronous = {'FULL' if flush else 'NORMAL'}")
            self._flushing = flush

    def _begin(self, connection: sqlite3.Connection, flush: bool) -> None:
        self._set_flushing(connection, flush)
        connection.execute("BEGIN IMMEDIATE")

    def _one_statement(self, connection: sqlite3.Connection, flush: bool, sql: str, params: Sequence[object]) -> int:
        self._set_flushing(connection, flush)
        return connection.execute(sql, params).rowcount

    @asynccontextmanager
    async def _transaction(self, *, flush: bool = True) -> AsyncIterator[_SqliteTx]:
        """One write transaction of several statements, holding the write lock from its BEGIN
        (in one queue step with the flush setting) to its COMMIT.

        A write the database refuses (locked by another process, disk full) is remembered as
        `write_failure`, which the next successful write clears, and is raised as
        `StoreUnavailable`; a conflict the caller expects (IntegrityError) is not."""
        async with self._write_lock:
            self._no_transaction.clear()
            try:
                async with self._open_transaction(flush) as tx:
                    yield tx
            finally:
                self._no_transaction.set()

    @asynccontextmanager
    async def _open_transaction(self, flush: bool) -> AsyncIterator[_SqliteTx]:
        """BEGIN (in one queue step with the flush setting) ... COMMIT, or ROLLBACK if the block raised."""
        with self._write_bookkeeping():
            await self._in_db_thread(self._begin, flush)
            try:
                yield _SqliteTx(self._db)
                await self._db.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction already
                    await self._db.execute("ROLLBACK")
                raise

    async def _step(self, work: Callable[..., T], *args: object) -> T:
        """A write that is whole in one queue step (a statement, or a transaction run there from
        BEGIN to COMMIT). While a multi-step transaction is open it waits for that one to end (it
        would otherwise run inside it); then it joins the queue at once, ahead of any BEGIN to
        come, without taking the lock itself: such writes never queue behind each other here,
        only on the database thread. (Checking and joining the queue happen with no await
        between them.)"""
        while not self._no_transaction.is_set():
            await self._no_transaction.wait()
        return await self._in_db_thread(work, *args)

    async def _single(self, sql: str, params: Sequence[object], *, flush: bool) -> int:
        """One statement as its own transaction, in one queue step with its flush setting."""
        return await self._step(self._one_statement, flush, sql, params)

    async def _guarded_write(
        self, sql: str, params: Sequence[object], then: Sequence[tuple[str, Sequence[Sequence[object]]]]
    ) -> bool:
        """The whole transaction in one queue step (`_guarded`): BEGIN to COMMIT on the database
        thread, no lock held across event-loop turns; failures as in `_transaction`."""
        with self._write_bookkeeping():
            return await self._step(self._guarded, sql, params, then)

    def _guarded(
        self,
        connection: sqlite3.Connection,
        sql: str,
        params: Sequence[object],
        then: Sequence[tuple[str, Sequence[Sequence[object]]]],
    ) -> bool:
        self._begin(connection, True)
        try:
            if connection.execute(sql, params).rowcount != 1:
                connection.execute("ROLLBACK")  # nothing was changed: the condition did not hold
                return False
            for statement, rows in then:
                connection.executemany(statement, rows)
            connection.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction already
                connection.execute("ROLLBACK")
            raise
        return True

    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement, committed waiting for the disk (FULL); failures as in `_transaction`."""
        with self._write_bookkeeping():
            return await self._single(sql, params, flush=True)

    async def _draft_write(self, sql: str, params: Sequence[object]) -> int:
        """One statement, committed without waiting for the disk (NORMAL)."""
        return await self._single(sql, params, flush=False)

    async def _stream(self, sql: str, params: Sequence[object]) -> AsyncIterator[Row]:
        cursor = await self._db.execute(sql, params)
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
