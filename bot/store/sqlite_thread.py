"""SQLite's one connection on its own thread: the functions given to it run there one at a time,
in the order given, as datasette's write thread runs `execute_write_fn`'s functions.

`run(work, *args)` is the single writer's one entry: `work(connection, *args)` is one step of
the queue, and nothing else touches the connection until it returns, so a whole transaction
(BEGIN to COMMIT, with the conditions between) written as one function is atomic to every
other caller without a lock held across event-loop turns. A caller joins the queue when its
`run` is awaited, before the first suspension, so the order of awaits is the order of steps.
The statement helpers (`execute`, `executemany`, `execute_fetchall`) are each one step.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Step = tuple["asyncio.Future[Any]", Callable[[], Any]]


class Result:
    """What one statement gave: the rows it returned (fetched in its step) and its row count."""

    def __init__(self, rows: list[sqlite3.Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    async def fetchall(self) -> list[sqlite3.Row]:
        return self.rows


class SqliteThread:
    """One sqlite3 connection, used on one thread only, fed by a queue of functions."""

    def __init__(self, connection: sqlite3.Connection, queue: SimpleQueue[_Step | None], thread: threading.Thread):
        self._connection = connection
        self._queue = queue
        self._thread = thread
        self._closed = False

    @classmethod
    async def connect(cls, path: str) -> SqliteThread:
        """The connection, made on its thread (autocommit: transactions are the store's BEGINs),
        with rows readable by column name."""
        queue: SimpleQueue[_Step | None] = SimpleQueue()
        thread = threading.Thread(target=_serve, args=(queue,), name="sqlite", daemon=True)
        thread.start()

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(path, isolation_level=None)
            connection.row_factory = sqlite3.Row
            return connection

        future: asyncio.Future[sqlite3.Connection] = asyncio.get_running_loop().create_future()
        queue.put_nowait((future, connect))
        return cls(await future, queue, thread)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """`work(connection, *args)` as one step of the queue, on the connection's thread; once
        closed, refused as sqlite3 refuses a closed connection."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((future, lambda: work(self._connection, *args)))
        return await future

    async def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        return await self.run(_execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self.run(lambda connection: connection.executemany(sql, rows))

    async def execute_fetchall(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        return (await self.execute(sql, params)).rows

    async def set_trace_callback(self, handler: Callable[[str], object] | None) -> None:
        await self.run(lambda connection: connection.set_trace_callback(handler))

    async def close(self) -> None:
        """Close the connection after every step queued before, then end the thread."""
        if self._closed:
            return
        self._closed = True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((future, self._connection.close))
        self._queue.put_nowait(None)
        await future
        await asyncio.to_thread(self._thread.join)


def _execute(connection: sqlite3.Connection, sql: str, params: Sequence[object]) -> Result:
    cursor = connection.execute(sql, params)
    rows = cursor.fetchall()
    return Result(rows, cursor.rowcount)


def _serve(queue: SimpleQueue[_Step | None]) -> None:
    """The connection's thread: each step in turn, its outcome handed back to the caller's loop."""
    while (step := queue.get()) is not None:
        future, work = step
        try:
            result = work()
        except BaseException as exc:  # the caller's to handle, on its loop
            future.get_loop().call_soon_threadsafe(_set_exception, future, exc)
        else:
            future.get_loop().call_soon_threadsafe(_set_result, future, result)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a caller cancelled while waiting: the step ran, nobody reads it
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
