"""Benchmark 1: one status sweep over 1,000 / 10,000 / 50,000 due orders.

iPay is the sandbox server (another process) answering every call after 150 ms, like a
round trip from Nairobi; the bot's own process does the sweep. Reports wall time, our CPU
time per order polled, peak RSS, the most iPay calls in flight at once, and the query plan
that finds the due orders.

    python bench/sweep.py [--sizes 1000,10000,50000] [--latency 0.15]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from common import SandboxServer, machine, peak_rss_mib, seed_pending, table

from bot.ipay import IpayClient
from bot.payments import PaymentPolicy, PaymentService
from bot.poller import StatusPoller
from bot.store import Store


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts iPay calls in flight on our side of the wire."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


def not_paid_yet(request: httpx.Request) -> httpx.Response:
    """iPay's "not paid yet", answered in memory: what is left is our own code's cost."""
    return httpx.Response(404, json={"header_status": 404, "status": 0, "text": "no payment record found"})


async def one_sweep(size: int, ipay_url: str, scratch: Path, concurrency: int, in_memory: bool = False) -> dict[str, object]:
    path = scratch / f"sweep-{size}-{in_memory}.sqlite3"
    await seed_pending(path, size, due_at=time.time() - 1)
    store = await Store.open(path)
    transport = CountingTransport(httpx.MockTransport(not_paid_yet) if in_memory else httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(transport=transport) as http:
        ipay = IpayClient(http, vid="demo", hash_key="demoCHANGED", live=False, base_url=ipay_url)
        policy = PaymentPolicy(poll_interval=5, payment_timeout=600, merchant_chat_id=None, sandbox=True)
        payments = PaymentService(store, ipay, policy)
        poller = StatusPoller(store, payments)
        plan = await (await store._db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM orders WHERE next_poll_at IS NOT NULL AND next_poll_at <= ? "
            "ORDER BY next_poll_at LIMIT 500", (time.time(),))).fetchall()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        report = await poller.sweep()
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    await store.close()
    return {
        "orders": size, "checked": report.checked, "wall_s": round(wall, 2),
        "cpu_ms_per_order": round(1000 * cpu / max(1, report.checked), 3),
        "peak_rss_mib": round(peak_rss_mib(), 1), "max_in_flight": transport.max_in_flight,
        "plan": " / ".join(str(row[-1]) for row in plan),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    server = SandboxServer(latency=args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for size in map(int, args.sizes.split(",")):
                real = await one_sweep(size, server.url, Path(scratch), args.concurrency)
                mine = await one_sweep(size, server.url, Path(scratch), args.concurrency, in_memory=True)
                rows.append([size, real["checked"], real["wall_s"], real["cpu_ms_per_order"], mine["cpu_ms_per_order"],
                             real["peak_rss_mib"], real["max_in_flight"]])
    finally:
        server.stop()
    print(f"Status sweep, iPay latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, {machine()}")
    print(table(["due orders", "checked", "sweep wall s", "CPU ms/order", "CPU ms/order without sockets",
                 "peak RSS MiB", "max iPay calls in flight"], rows))
    print(f"query plan for the due orders: {real['plan']}")
    print("CPU ms/order counts the whole process (our code, SQLite, httpx); the next column answers iPay in")
    print("memory (httpx.MockTransport), leaving our code, SQLite and httpx's request building.")


if __name__ == "__main__":
    asyncio.run(main())
