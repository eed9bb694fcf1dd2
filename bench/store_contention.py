"""Benchmark: the SQLite store's writes while many reads run, one process.

Tills that ask a payment's status at once keep the store reading thousands of times a second,
while the bot goes on writing: flushed writes (orders, sessions, payments) sharing their commits,
and draft writes that need not wait for the disk (the sending claim, the record that an API
order's push went out), each of which a new shared transaction waits for. This runs R readers
reading orders in a loop, 10 writers making flushed writes in a loop, and one draft write every
5 ms (300 of them), for R = 0 and 100: the draft write's time, the flushed writes' time and rate,
and the reads' rate.

    python bench/store_contention.py [--readers 0,100] [--drafts 300]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import pending_order, percentile, table

from bot.store.sqlite import SqliteStore

ORDERS = 200
WRITERS = 10
DRAFT_GAP = 0.005


async def contention(readers: int, drafts: int, scratch: Path) -> list[object]:
    store = await SqliteStore.open(scratch / f"contention-{readers}-{time.monotonic_ns()}.sqlite3")
    now = time.time()
    orders = [pending_order(n, now) for n in range(ORDERS)]
    for order in orders:
        await store.insert_order(order)
    ids = [order.id for order in orders]
    stop = asyncio.Event()
    reads = 0
    flushed: list[float] = []
    draft_times: list[float] = []

    async def reader(n: int) -> None:
        nonlocal reads
        while not stop.is_set():
            await store.get_order(ids[n % ORDERS])
            reads += 1

    async def writer(n: int) -> None:
        while not stop.is_set():
            began = time.perf_counter()
            await store.set_prompt_message(ids[n], n)  # one statement, waiting for the disk
            flushed.append(time.perf_counter() - began)

    background = [asyncio.ensure_future(reader(n)) for n in range(readers)]
    background += [asyncio.ensure_future(writer(n)) for n in range(WRITERS)]
    started = time.perf_counter()
    for n in range(drafts):
        began = time.perf_counter()
        await store.renew_sending(ids[n % ORDERS], now)  # one statement on the drafts connection
        draft_times.append(time.perf_counter() - began)
        await asyncio.sleep(DRAFT_GAP)
    seconds = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*background)
    await store.close()
    return [
        readers,
        f"{1000 * percentile(draft_times, 0.5):.2f}",
        f"{1000 * percentile(draft_times, 0.95):.2f}",
        f"{len(flushed) / seconds:,.0f}",
        f"{1000 * percentile(flushed, 0.5):.2f}",
        f"{reads / seconds:,.0f}",
    ]


HEADERS = ["readers", "draft write p50 ms", "draft write p95 ms", "flushed writes/s", "flushed write p50 ms", "reads/s"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", default="0,100")
    parser.add_argument("--drafts", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [await contention(int(r), args.drafts, Path(scratch)) for r in args.readers.split(",")]
    print(
        f"**The store under reads** (`python bench/store_contention.py`): SQLite, {WRITERS} writers making "
        f"flushed writes in a loop and a draft write every {DRAFT_GAP * 1000:.0f} ms ({args.drafts}), beside "
        "R readers reading orders in a loop, all in one process"
    )
    print()
    print(table(HEADERS, rows))


if __name__ == "__main__":
    asyncio.run(main())
