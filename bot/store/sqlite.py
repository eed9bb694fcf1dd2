"""The SQLite back end (aiosqlite): the embedded default, one file, zero set-up.

Three aiosqlite connections to the file, used only through aiosqlite's public API. Every write
that must survive a power cut goes through the first, whose commits wait for the disk
(`synchronous = FULL`); conversation drafts, heartbeats and the like go through the second
(`NORMAL`: a kill -9 keeps them, only a power cut could lose the last steps); reads outside a
transaction go through the third (WAL shows them everything committed). So the first
connection's queue holds writes only and a transaction's steps never wait behind a busy
moment's reads, and a draft write, which a new shared transaction waits for, never waits behind
them either. A long read (an export, the owner's totals) opens a connection for itself, so no
connection that writes or serves other reads keeps a read open across awaits (`_stream` says
why). Each connection runs its statements one at a time, in the order asked, on its own thread;
SQLite's file lock (WAL mode, `busy_timeout`) orders the connections' commits.

Writes on the first connection share their commits (group commit). A commit that waits for the
disk takes milliseconds, and SQLite has one writer: one commit per write would let a busy
moment's payments queue for the disk one by one. So the writes that queue while the disk is busy
run one after another in one transaction, each in a savepoint of its own (a write that fails
undoes only its own statements), and all return together once that transaction's one COMMIT
has reached the disk. No write returns before its commit is durable: "written before iPay is
called" holds for each of them, and a crash before the COMMIT loses only writes none of whose
callers has been answered. A write with nothing queued behind it commits alone, at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.crashpoints import crash_point
from bot.store.base import Row, Store, is_postgres_url
from bot.store.migrations import pending, statements
from bot.store.rows import _ORDER_COLUMNS, _ORDER_FIELDS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another connection's or another process's lock
SHARED_COMMIT_WRITES = 64  # writes one COMMIT takes at most: the first of them waits for no more


@dataclass(eq=False)
class _SharedCommit:
    """The open transaction the queued writes share, and the outcome of its one COMMIT."""

    done: asyncio.Future[None]
    members: int = 0  # writes whose statements ran in it and wait for its COMMIT
    committer: asyncio.Task[None] | None = None


async def _to_the_end(step: Awaitable[object]) -> bool:
    """Await `step` to its end even if the caller is cancelled meanwhile; whether it was (the
    caller raises CancelledError once its bookkeeping is done). The step's own error is raised."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while True:
        try:
            await asyncio.shield(task)
            return cancelled
        except asyncio.CancelledError:
            if task.done():  # the step itself was cancelled: the loop is closing
                raise
            cancelled = True


async def _wait_for_others(shared: _SharedCommit, failure: Exception) -> None:
    """A refused write waits for the COMMIT of the writes it shared a transaction with; if that
    COMMIT failed, its conflict was with writes that never happened: the database's refusal is
    what it raises instead (the caller says "try again later")."""
    try:
        await asyncio.shield(shared.done)
    except sqlite3.Error as refused:
        raise refused from failure


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
    try:
        db.row_factory = sqlite3.Row
        # These pragmas do not apply inside a transaction: set them first.
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute(f"PRAGMA synchronous = {synchronous}")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:  # refused or cancelled half way: closed, so its thread ends too
        await asyncio.shield(db.close())
        raise
    return db


async def _rows_of(db: aiosqlite.Connection, sql: str, params: Sequence[object]) -> AsyncIterator[Row]:
    cursor = await db.execute(sql, params)
    cursor.arraysize = 500
    async for row in cursor:
        yield row
    await cursor.close()


class SqliteStore(Store):
    """Three aiosqlite connections (commits that wait for the disk, drafts that need not, reads); the
    writes queued on the first share their transactions and commits (the module's docstring)."""

    _REFUSALS = (sqlite3.OperationalError,)  # locked by another process, disk full, read-only
    _INSERT_ORDER = (
        f"INSERT INTO orders ({_ORDER_COLUMNS}, api_key_id, seq) VALUES ({', '.join('?' * len(_ORDER_FIELDS))}, ?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM orders))"  # one writer at a time: no two get the same
    )

    def __init__(
        self,
        db: aiosqlite.Connection,
        drafts: aiosqlite.Connection,
        reads: aiosqlite.Connection,
        path: str,
    ) -> None:
        super().__init__()
        self._db = db
        self._drafts = drafts  # writes that need not wait for the disk; for an in-memory database, `db`
        self._reads = reads  # reads outside a transaction; for an in-memory database, `db`
        self._path = path  # where a long read opens a connection of its own (`_stream`)
        self._write_lock = asyncio.Lock()  # held while one write runs its statements, and for a COMMIT
        self._queued = 0  # writes waiting for the write lock
        self._shared: _SharedCommit | None = None  # the transaction the queued writes join
        self._none_shared = asyncio.Event()  # set while no shared transaction is open
        self._none_shared.set()
        self._drafting = 0  # draft writes under way on the second connection
        self._drafts_done = asyncio.Event()  # set when the last of them ends
        self._savepoints = itertools.count()  # each write's savepoint its own name
        self.durable_commits = 0  # commits that waited for the disk (tests count them)

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
        opened = [db]
        try:
            if path == ":memory:":
                store = cls(db, db, db, path)
            else:
                opened.append(drafts := await _connect(path, "NORMAL"))
                opened.append(reads := await _connect(path, "NORMAL"))
                store = cls(db, drafts, reads, path)
            await store._migrate()
        except BaseException:  # a later connection or the migration refused: none is left open
            for connection in opened:
                await asyncio.shield(connection.close())
            raise
        return store

    async def close(self) -> None:
        async with self._write_lock:  # writes already run are committed, not dropped
            if self._shared is not None and await _to_the_end(self._commit(self._shared)):
                raise asyncio.CancelledError
        for connection in (self._reads, self._drafts):
            if connection is not self._db:
                await connection.close()
        await self._db.close()

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """A read in one hop, on the reads connection: it never queues behind the steps of an
        open write transaction (WAL shows it everything committed), nor they behind it, and no
        draft write queues behind a busy moment's reads."""
        return list(await self._reads.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_SqliteTx]:
        """One write transaction of several statements: committed (with the writes queued beside
        it) when the block ends, its statements undone if it raises.

        A write the database refuses (locked by another process, disk full) is remembered as
        `write_failure`, which the next successful write clears, and is raised as
        `StoreUnavailable`; a conflict the caller expects (IntegrityError) is not."""
        with self._write_bookkeeping():
            async with self._member(one_statement=False):
                yield _SqliteTx(self._db)

    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement, committed waiting for the disk (FULL); failures as in `_transaction`.
        A failing statement undoes only itself (SQLite's statement journal): it needs no savepoint."""
        with self._write_bookkeeping():
            async with self._member(one_statement=True):
                cursor = await self._db.execute(sql, params)
                return cursor.rowcount

    @asynccontextmanager
    async def _member(self, *, one_statement: bool) -> AsyncIterator[None]:
        """Run the block's statements in the shared transaction, then wait for its COMMIT.

        The statements that open, mark, undo and end transactions run to their end even if the
        caller is cancelled meanwhile (aiosqlite runs a statement once asked, whoever waits for
        it), so what this object believes open is what SQLite has open.

        A block that raises waits for that COMMIT too before its error goes on: a conflict with a
        write of the same transaction (the phone's open order, an idempotency key) is then seen
        by the reads its caller makes next, as it would be had that write committed first; if
        that COMMIT failed, the conflict was with nothing, and the COMMIT's error is raised."""
        self._queued += 1
        try:
            await self._write_lock.acquire()
        finally:
            self._queued -= 1
        failure: BaseException | None = None
        try:
            await self._end_stray_transaction()
            if one_statement and self._shared is None and self._queued == 0:
                yield  # alone: the statement commits by itself before it returns
                self.durable_commits += 1
                return
            shared = await self._join()
            savepoint = None if one_statement or shared.members == 0 else f"write{next(self._savepoints)}"
            try:
                if savepoint is not None and await _to_the_end(self._db.execute(f"SAVEPOINT {savepoint}")):
                    raise asyncio.CancelledError
                yield
                if savepoint is not None and await _to_the_end(self._db.execute(f"RELEASE {savepoint}")):
                    failure = asyncio.CancelledError()  # too late to undo: it commits with the others
            except BaseException as exc:
                failure = asyncio.CancelledError() if await self._undo(shared, savepoint) else exc
            else:
                shared.members += 1
                if shared.committer is None:
                    # Queued for the lock behind the writes waiting now: they join before the COMMIT.
                    shared.committer = asyncio.ensure_future(self._commit_when_free(shared))
        finally:
            self._write_lock.release()
        if failure is None:
            await asyncio.shield(shared.done)
            return
        if isinstance(failure, Exception) and shared.committer is not None:
            await _wait_for_others(shared, failure)  # others' writes stay in it: wait for their COMMIT
        raise failure

    async def _end_stray_transaction(self) -> None:
        """What this object believes open and what SQLite has open agree again after a ROLLBACK
        or COMMIT that itself failed: a transaction SQLite ended fails its writes; one it keeps
        open that nobody owns is rolled back."""
        if self._shared is not None and not self._db.in_transaction:
            self._fail_shared(self._shared)
        elif self._shared is None and self._db.in_transaction:
            await _to_the_end(self._db.execute("ROLLBACK"))

    async def _join(self) -> _SharedCommit:
        """The open shared transaction, or a new one; a full one is committed first (its writes
        released) so the first write of a busy moment never waits on an endless queue. A new one
        waits for draft writes under way on the second connection: they would otherwise wait on
        SQLite's lock while shared transactions follow each other back to back."""
        shared = self._shared
        if shared is not None and shared.members >= SHARED_COMMIT_WRITES:
            if await _to_the_end(self._commit(shared)):
                raise asyncio.CancelledError
            shared = None
        if shared is None:
            while self._drafting:
                await self._drafts_done.wait()
            cancelled = await _to_the_end(self._db.execute("BEGIN IMMEDIATE"))
            shared = self._shared = _SharedCommit(asyncio.get_running_loop().create_future())
            self._none_shared.clear()
            if cancelled:  # nothing in it yet: rolled back whole
                await self._undo(shared, None)
                raise asyncio.CancelledError
        return shared

    async def _undo(self, shared: _SharedCommit, savepoint: str | None) -> bool:
        """A write's block raised: undo its statements and nobody else's; whether the caller was
        cancelled meanwhile. If SQLite ended the whole transaction itself (some I/O errors and a
        full disk do), or this write's savepoint cannot be undone, the writes that ran in it
        before fail too (none has returned), and the transaction is rolled back whole."""
        cancelled = False
        whole = shared.members == 0  # nothing else in it yet
        try:
            if not whole and savepoint is not None:
                cancelled |= await _to_the_end(self._db.execute(f"ROLLBACK TO {savepoint}"))
                cancelled |= await _to_the_end(self._db.execute(f"RELEASE {savepoint}"))
        except sqlite3.Error:
            whole = True
        if whole or not self._db.in_transaction:
            with suppress(sqlite3.Error):  # if it fails, the next write's _end_stray_transaction retries
                cancelled |= await _to_the_end(self._db.execute("ROLLBACK"))
            self._fail_shared(shared)
        return cancelled

    def _fail_shared(self, shared: _SharedCommit) -> None:
        """The shared transaction is gone without a COMMIT: its writes fail."""
        if self._shared is shared:
            self._shared = None
            self._none_shared.set()
        if shared.members and not shared.done.done():
            shared.done.set_exception(sqlite3.OperationalError("the shared transaction was rolled back"))

    async def _commit_when_free(self, shared: _SharedCommit) -> None:
        async with self._write_lock:
            if self._shared is shared:
                await self._commit(shared)

    async def _commit(self, shared: _SharedCommit) -> None:
        """COMMIT the shared transaction and release its writes with the outcome. Always run to
        its end (in a task of its own), so a cancelled caller never leaves the writes waiting."""
        self._shared = None
        try:
            if shared.members > 1:
                crash_point("shared_commit")
            await self._db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction already
                await self._db.execute("ROLLBACK")
            shared.done.set_exception(
                exc if isinstance(exc, Exception) else sqlite3.OperationalError("COMMIT cut short")
            )
            if not isinstance(exc, Exception):
                raise
        else:
            self.durable_commits += 1
            shared.done.set_result(None)
        finally:
            self._none_shared.set()

    async def _draft_write(self, sql: str, params: Sequence[object]) -> int:
        """One statement, committed without waiting for the disk (NORMAL). It goes between two
        shared transactions (the next waits for it), so it never sits on SQLite's lock while they
        follow each other. An in-memory database has one connection: its drafts join the writes."""
        if self._drafts is self._db:
            return await self._write(sql, params)
        while not self._none_shared.is_set():
            await self._none_shared.wait()
        self._drafting += 1
        self._drafts_done.clear()
        try:
            cursor = await self._drafts.execute(sql, params)
            return cursor.rowcount
        finally:
            self._drafting -= 1
            if not self._drafting:
                self._drafts_done.set()

    async def _stream(self, sql: str, params: Sequence[object]) -> AsyncIterator[Row]:
        """A long read on a connection of its own, opened for it: a cursor read a few hundred rows
        at a time keeps its connection's read transaction open between them. On a connection that
        writes, SQLite then refuses a write once another connection has committed (`database is
        locked`, at once, whatever `busy_timeout`): on the drafts connection, that could be the
        record that a push went out. On the reads connection, the reads made meanwhile would see
        the database as it was when the stream began. An in-memory database has one connection:
        its streams share it."""
        if self._drafts is self._db:
            async for row in _rows_of(self._db, sql, params):
                yield row
            return
        reader = await _connect(self._path, "NORMAL")
        try:
            async for row in _rows_of(reader, sql, params):
                yield row
        finally:
            await reader.close()

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
