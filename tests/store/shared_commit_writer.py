"""A process writing orders to a SQLite file in bursts, for the shared-commit crash test.

    python tests/store/shared_commit_writer.py DATABASE ACK_LOG BURST

Each burst is BURST orders written at once, every other one with an idempotency key (a
transaction of two statements) and the rest alone (one statement). As each write returns, its
order id is appended to ACK_LOG and fsynced: what the process has told its caller is written.
It writes one order alone, then bursts until it is killed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path

sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.store.sqlite import SqliteStore
from tests.conftest import an_order


async def write(store: SqliteStore, number: int, ack: int) -> None:
    order = an_order(f"W{number:07d}", phone=f"2547{number:08d}")
    keyed = number % 2 == 0
    idempotency = (f"key-{number}", f"request-{number}") if keyed else None
    assert await store.insert_order(order, idempotency=idempotency)
    os.write(ack, f"{order.id} {'keyed' if keyed else 'alone'}\n".encode())
    os.fsync(ack)


async def main(database: str, ack_log: str, burst: int) -> None:
    store = await SqliteStore.open(database)
    ack = os.open(ack_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    numbers = itertools.count()
    await write(store, next(numbers), ack)  # alone: committed by itself
    while True:
        await asyncio.gather(*(write(store, next(numbers), ack) for _ in range(burst)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
