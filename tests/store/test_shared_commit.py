"""SQLite's shared commits: writes arriving together share one COMMIT, and none returns before
that COMMIT is made; a write that fails undoes only its own statements; a crash loses no write
that returned."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.crashpoints import STORE_CRASH_POINTS
from bot.domain import PhoneBusy
from bot.store import StoreUnavailable
from bot.store.sqlite import SqliteStore
from tests.conftest import an_order

WRITER = Path(__file__).with_name("shared_commit_writer.py")


def committed(database: Path, order_id: str) -> bool:
    """Whether another connection sees the order: only what is committed is visible to it."""
    with sqlite3.connect(database) as other:
        return other.execute("SELECT 1 FROM orders WHERE id = ?", (order_id,)).fetchone() is not None


def phone(number: int) -> str:
    return f"2547{number:08d}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "db.sqlite3")
    yield opened
    await opened.close()


async def test_writes_arriving_together_share_commits_and_each_returns_committed(
    store: SqliteStore, tmp_path: Path
) -> None:
    seen_on_return: list[bool] = []

    async def write(number: int) -> None:
        order = an_order(f"O{number:04d}", phone=phone(number))
        keyed = (f"key-{number}", f"request-{number}") if number % 2 else None  # a transaction, or one statement
        assert await store.insert_order(order, idempotency=keyed)
        seen_on_return.append(committed(tmp_path / "db.sqlite3", order.id))

    before = store.durable_commits
    await asyncio.gather(*(write(number) for number in range(40)))
    assert seen_on_return == [True] * 40
    assert store.durable_commits - before <= 4, store.durable_commits - before  # one alone, the rest shared
    assert not store._db.in_transaction


async def test_a_write_that_fails_undoes_its_own_statements_and_no_one_elses(store: SqliteStore) -> None:
    original = an_order("ORIG", phone=phone(999))
    await store.insert_order(original)
    assert await store.insert_order(an_order("RETRY1", phone=phone(998)), retry_of="ORIG")

    async def write(number: int) -> bool:
        order = an_order(f"O{number:04d}", phone=phone(number))
        if number in (1, 5):  # the shared transaction's first write, and one in a savepoint
            return await store.insert_order(order, retry_of="ORIG")  # its insert runs, then it is refused
        return await store.insert_order(order, idempotency=(f"key-{number}", f"request-{number}"))

    results = await asyncio.gather(*(write(number) for number in range(10)))
    assert results == [number not in (1, 5) for number in range(10)]
    for number in range(10):
        assert (await store.get_order(f"O{number:04d}") is None) == (number in (1, 5))
    assert (await store.get_order("ORIG")).retry_order_id == "RETRY1"  # type: ignore[union-attr]
    assert not store._db.in_transaction


async def test_a_conflict_with_a_write_of_the_same_commit_is_seen_once_it_is_raised(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Two prompts for one phone at once: the second is refused, and by then the first is
    committed, so the caller's next read ("which order holds the phone?") finds it."""
    first = an_order("FIRST", phone=phone(1))
    second = an_order("SECOND", phone=phone(1))
    seen: list[bool] = []

    async def refused() -> None:
        with pytest.raises(PhoneBusy):
            await store.insert_order(second, idempotency=("key-2", "request-2"))
        seen.append(committed(tmp_path / "db.sqlite3", "FIRST"))

    await asyncio.gather(
        store.insert_order(an_order("LEADER", phone=phone(9))),  # commits alone; the others queue
        store.insert_order(first, idempotency=("key-1", "request-1")),
        refused(),
    )
    assert seen == [True]


async def test_a_commit_the_disk_refuses_fails_every_write_in_it(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing(store, monkeypatch, "COMMIT", times=1)

    async def write(number: int) -> object:
        order = an_order(f"O{number:04d}", phone=phone(number))
        try:
            return await store.insert_order(order, idempotency=(f"key-{number}", f"request-{number}"))
        except StoreUnavailable as refused:
            return refused

    results = await asyncio.gather(*(write(number) for number in range(8)))
    assert all(isinstance(result, StoreUnavailable) for result in results), results
    remembered = store.write_failure  # health says unhealthy until a write works
    assert [await store.get_order(f"O{number:04d}") for number in range(8)] == [None] * 8
    assert await store.insert_order(an_order("AFTER", phone=phone(100)))  # the next write works
    assert remembered is not None and store.write_failure is None
    assert not store._db.in_transaction


async def test_writes_cancelled_while_queued_or_waiting_leave_the_others_to_commit(store: SqliteStore) -> None:
    async def write(number: int) -> None:
        await store.insert_order(an_order(f"O{number:04d}", phone=phone(number)), idempotency=(f"k{number}", "r"))

    tasks = [asyncio.ensure_future(write(number)) for number in range(30)]
    for turns, task in enumerate(tasks[::3]):  # cancelled after 0, 1, 2... turns of the loop
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=10)
    assert not pending
    kept = [task for task in tasks if not task.cancelled()]
    assert all(task.exception() is None for task in kept)
    assert len(kept) >= 20
    for number, task in enumerate(tasks):
        if not task.cancelled():
            assert await store.get_order(f"O{number:04d}") is not None
    await asyncio.sleep(0.05)
    assert not store._db.in_transaction  # nothing left open, holding SQLite's write lock


def run_writer(tmp_path: Path, *, crash_at: str | None = None, kill_after: float | None = None) -> list[str]:
    """Run the writer until it dies (at a crash point or by SIGKILL); the acknowledged lines."""
    acks = tmp_path / "acks.log"
    env = {**os.environ, "PESABOT_CRASH_AT": crash_at or ""}
    writer = subprocess.Popen([sys.executable, str(WRITER), str(tmp_path / "db.sqlite3"), str(acks), "12"], env=env)
    try:
        if kill_after is not None:
            deadline = time.monotonic() + 20
            while not (acks.exists() and acks.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.01)  # started and writing
            time.sleep(kill_after)
            writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        writer.kill()
    return acks.read_text().splitlines() if acks.exists() else []


def on_disk(database: Path) -> tuple[set[str], set[str]]:
    with sqlite3.connect(database) as db:
        orders = {row[0] for row in db.execute("SELECT id FROM orders")}
        keyed = {row[0] for row in db.execute("SELECT order_id FROM idempotency_keys")}
    return orders, keyed


def test_sigkill_before_a_shared_commit_loses_only_writes_not_yet_answered(tmp_path: Path) -> None:
    (crash_at,) = STORE_CRASH_POINTS
    acked = run_writer(tmp_path, crash_at=crash_at)
    orders, keyed = on_disk(tmp_path / "db.sqlite3")
    # The first write and the burst's first committed alone; the rest of the burst was in flight.
    assert acked == ["W0000000 keyed", "W0000001 alone"]
    assert orders == {"W0000000", "W0000001"} and keyed == {"W0000000"}


@pytest.mark.parametrize("kill_after", [0.05, 0.2, 0.5])
def test_sigkill_at_any_moment_loses_no_write_that_returned(tmp_path: Path, kill_after: float) -> None:
    acked = run_writer(tmp_path, kill_after=kill_after)
    orders, keyed = on_disk(tmp_path / "db.sqlite3")
    assert len(acked) >= 12
    assert {line.split()[0] for line in acked} <= orders  # every write answered is on disk
    assert keyed == {order for order in orders if int(order[1:]) % 2 == 0}  # each transaction whole or not at all


# -- cancellations and failures of the statements that open, mark, undo and end transactions --


@pytest.fixture
async def table(store: SqliteStore) -> SqliteStore:
    async with store._transaction() as tx:
        await tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return store


def rows_on_disk(database: Path) -> list[int]:
    with sqlite3.connect(database) as other:
        return sorted(row[0] for row in other.execute("SELECT id FROM t"))


def when_asked(store: SqliteStore, monkeypatch: pytest.MonkeyPatch, actions: dict[str, Callable[[], object]]) -> None:
    """Run each action once its statement is first queued on the database thread (it will run)."""
    execute = store._db.execute

    async def watched(statement: str, *args: Any) -> Any:
        running = asyncio.ensure_future(execute(statement, *args))
        await asyncio.sleep(0)
        if (action := actions.pop(statement, None)) is not None:
            action()
        return await running

    monkeypatch.setattr(store._db, "execute", watched)


def refusing(store: SqliteStore, monkeypatch: pytest.MonkeyPatch, start: str, times: int | None = None) -> None:
    """The statements beginning with `start` fail as a disk error would: the first `times`, or all."""
    execute = store._db.execute
    refusals = itertools.count() if times is None else iter(range(times))

    async def refused(statement: str, *args: Any) -> Any:
        if statement.startswith(start) and next(refusals, None) is not None:
            raise sqlite3.OperationalError("disk I/O error")
        return await execute(statement, *args)

    monkeypatch.setattr(store._db, "execute", refused)


async def insert(store: SqliteStore, *ids: int) -> None:
    async with store._transaction() as tx:
        for row_id in ids:
            await tx.execute("INSERT INTO t VALUES (?, 'x')", (row_id,))


async def test_close_cancelled_during_its_commit_still_releases_the_writes(
    table: SqliteStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inside, go_on = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with table._transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1, 'a')")
            inside.set()
            await go_on.wait()

    written = asyncio.ensure_future(writer())
    await inside.wait()
    closing = asyncio.ensure_future(table.close())  # queued for the lock ahead of the COMMIT
    await asyncio.sleep(0.01)
    when_asked(table, monkeypatch, {"COMMIT": closing.cancel})
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await asyncio.wait_for(written, 3)
    assert rows_on_disk(tmp_path / "db.sqlite3") == [1]


async def test_a_write_cancelled_during_its_undo_leaves_the_next_write_whole(
    table: SqliteStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def refused() -> None:
        async with table._transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1, 'x')")
            raise ValueError("refused after its statement ran")

    victim = asyncio.ensure_future(refused())
    when_asked(table, monkeypatch, {"ROLLBACK": victim.cancel})
    with pytest.raises(asyncio.CancelledError):
        await victim
    assert not table._db.in_transaction
    await insert(table, 2, 3)
    assert rows_on_disk(tmp_path / "db.sqlite3") == [2, 3]


async def test_writes_cancelled_at_their_savepoints_undo_only_themselves(
    table: SqliteStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    writes = {row_id: asyncio.ensure_future(insert(table, row_id)) for row_id in (1, 2, 3, 4)}
    # 1 opens the transaction; 2, 3 and 4 join it, each in a savepoint.
    when_asked(table, monkeypatch, {"SAVEPOINT write0": writes[2].cancel, "RELEASE write2": writes[4].cancel})
    await asyncio.wait(writes.values(), timeout=5)
    returned = {row_id for row_id, write in writes.items() if not write.cancelled()}
    assert returned == {1, 3}
    on_disk = set(rows_on_disk(tmp_path / "db.sqlite3"))
    assert returned <= on_disk and 2 not in on_disk  # 4's RELEASE had run: it commits, cancelled or not
    assert not table._db.in_transaction


async def test_a_write_cancelled_while_another_process_holds_the_lock_leaves_no_transaction_open(
    table: SqliteStore, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.5, lambda: other.execute("COMMIT"))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(insert(table, 1), 0.1)
    await asyncio.sleep(0.8)  # the other process let go; the BEGIN ran, and was rolled back
    assert not table._db.in_transaction
    assert await table._write("INSERT INTO t VALUES (2, 'y')") == 1
    assert rows_on_disk(tmp_path / "db.sqlite3") == [2]
    other.close()


async def test_a_conflict_with_a_write_whose_commit_failed_is_a_refusal_to_retry(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing(store, monkeypatch, "COMMIT")

    async def confirm(order_id: str) -> str:
        try:
            await store.insert_order(an_order(order_id, phone=phone(1)), idempotency=(order_id, order_id))
        except Exception as refused:
            return type(refused).__name__
        return "written"

    # Serially the second would have been written after the first's rollback: not "phone busy".
    assert list(await asyncio.gather(confirm("A"), confirm("B"))) == ["StoreUnavailable", "StoreUnavailable"]


async def test_a_savepoint_that_cannot_be_undone_fails_the_whole_transaction(
    table: SqliteStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    refusing(table, monkeypatch, "ROLLBACK TO")

    async def refused() -> None:
        async with table._transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2, 'must be undone')")
            raise RuntimeError("refused after its statement ran")

    outcomes = await asyncio.gather(insert(table, 1), refused(), return_exceptions=True)
    # The refused write decided on a transaction that then failed: "try again", like the other.
    assert [type(outcome).__name__ for outcome in outcomes] == ["StoreUnavailable", "StoreUnavailable"]
    assert rows_on_disk(tmp_path / "db.sqlite3") == []
    assert not table._db.in_transaction


async def test_draft_writes_are_not_starved_by_shared_transactions(table: SqliteStore) -> None:
    stop = time.monotonic() + 1.5
    waits: list[float] = []

    async def durable() -> None:
        while time.monotonic() < stop:
            async with table._transaction() as tx:
                await tx.execute("INSERT INTO t (v) VALUES ('x')")
                await tx.execute("INSERT INTO t (v) VALUES ('y')")

    async def drafts() -> None:
        chat = 0
        while time.monotonic() < stop:
            chat += 1
            started = time.monotonic()
            await table.first_delivery(chat, 1.0)
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.02)

    await asyncio.gather(*(durable() for _ in range(40)), drafts())
    assert len(waits) >= 20 and max(waits) < 1.0, (len(waits), max(waits))
