"""Benchmark: the owner's month, with 10,000 orders in it.

A month of paid orders (M-Pesa and Airtel Money, three cashiers, a refund in fifty) in a SQLite
store; then, as /summary month and `/export month xlsx` do it: the takings per day read from
the store and the chart drawn (the first time including matplotlib's import), and the
workbook built. Time and peak resident memory of each, in this process.

    python bench/owner_reports.py [--orders 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from common import RssWatch, pending_order, rss_mib, table

from bot.domain import Network, OrderStatus, Refund, RefundState
from bot.owner import summary
from bot.owner.service import OwnerService
from bot.reports.service import Period, _midnight
from bot.store import Store
from bot.store.rows import _ORDER_COLUMNS, _ORDER_FIELDS, _REFUND_COLUMNS, _REFUND_FIELDS, _order_values, _refund_values

FIRST, LAST = date(2025, 11, 1), date(2025, 11, 30)
CASHIERS = ("Wanjiru (@wanjiru, 9002)", "Otieno (9003)", "API key #1")


async def seed(store: Store, count: int) -> None:
    start, span = _midnight(FIRST), _midnight(LAST + timedelta(days=1)) - _midnight(FIRST)
    orders, refunds = [], []
    for n in range(count):
        made = start + span * n / count
        order = pending_order(
            n,
            made,
            status=OrderStatus.PAID,
            network=Network.AIRTEL if n % 4 == 0 else Network.MPESA,
            amount=100 + n % 900,
            paid_amount=100 + n % 900,
            paid_at=made + 20,
            receipt_code=f"R{n:08d}",
            payer_name="JOHN DOE",
            user_id=9002 + n % 3,
            requested_by=CASHIERS[n % 3],
        )
        orders.append(order)
        if n % 50 == 0:
            refunds.append(
                Refund(
                    order.id,
                    RefundState.DONE,
                    order.amount,
                    order.receipt_code or "",
                    9001,
                    "Owner",
                    9001,
                    made + 60,
                    made + 90,
                    done_at=made + 90,
                )
            )
    insert = f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({', '.join('?' * len(_ORDER_FIELDS))})"
    insert_refund = f"INSERT INTO refunds ({_REFUND_COLUMNS}) VALUES ({', '.join('?' * len(_REFUND_FIELDS))})"
    async with store._transaction() as db:
        await db.executemany(insert, [_order_values(o) for o in orders])
        await db.executemany(insert_refund, [_refund_values(r) for r in refunds])


async def measure(count: int) -> list[list[object]]:
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.sqlite3")
        await seed(store, count)
        period = Period(FIRST, LAST, LAST)
        services = dataclasses.make_dataclass("S", ["store"])(store)
        rows: list[list[object]] = [["idle, orders seeded", "", f"{rss_mib_now():.0f}"]]
        for label in ("month's chart, first (imports matplotlib)", "month's chart, again"):
            with RssWatch() as watch:
                began = time.perf_counter()
                days = await OwnerService(store).daily(period)
                png = await summary.draw_chart(days, "Nov 2025", period)
                took = time.perf_counter() - began
            rows.append([label, f"{took * 1000:.0f} ms ({len(png) // 1024} KiB PNG)", f"{watch.peak:.0f}"])
        with RssWatch() as watch:
            began = time.perf_counter()
            content, orders = await summary.workbook(services, period)
            took = time.perf_counter() - began
        rows.append(
            [
                f"month's workbook, {orders:,} orders",
                f"{took * 1000:.0f} ms ({len(content) // 1024} KiB)",
                f"{watch.peak:.0f}",
            ]
        )
        await store.close()
        return rows


def rss_mib_now() -> float:
    import os

    return rss_mib(os.getpid())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.orders))
    print(f"**Owner's month** ({args.orders:,} paid orders over 30 days, 3 cashiers, 1 in 50 refunded; SQLite)\n")
    print(table(["step", "time", "peak RSS (MiB)"], rows))


if __name__ == "__main__":
    main()
