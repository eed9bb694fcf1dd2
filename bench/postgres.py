"""Benchmark: PostgreSQL, and more than one instance.

1. A status sweep of 10,000 due orders on one PostgreSQL database by 1, 2 and 3 instances
   (each its own process, started together, each with the bot's iPay concurrency of 50 and
   its own sandbox process answering every call after 150 ms, as iPay's servers would scale):
   wall time until every order was looked up, and lookups per order, which must stay 1.0
   (each due order is claimed by one instance with `FOR UPDATE SKIP LOCKED`).
2. Payments over the REST API by 1, 2 and 3 instances on one PostgreSQL database, each
   instance with its own sandbox process (150 ms a call, the payer approving at once) and
   `API_CLIENTS` clients of its own asking with `?wait=30` (bench/payments.py's load generator):
   payments per second in all and by each instance, and the instances' CPU per payment. Few
   enough clients that one instance is bound by iPay's latency, not by this 2-core machine's
   CPU, so what the instances cost each other (the shared database) shows as a shortfall from
   the sum, not the machine running out of cores.
3. Orders created per second, SQLite against PostgreSQL in the same run: `Store.insert_order`
   one after another (each its own transaction, flushed to disk), and 20 at a time.

PostgreSQL is a throwaway cluster (fsync on, as in production) on this machine, or the
server at PESABOT_BENCH_POSTGRES_URL (a database the benchmark may fill and empty).

    python bench/postgres.py [--orders 10000] [--instances 1,2,3] [--api-payments 400] [--create 2000] [--latency 0.15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import payments
from common import ROOT, SandboxServer, pending_order, percentile, table

sys.path.insert(0, str(ROOT))

from bot.domain import new_order_id
from bot.orders.poller import StatusPoller
from bot.orders.service import PaymentPolicy, PaymentService
from bot.providers.ipay import IpayClient
from bot.providers.transport import default_transport
from bot.store import Store
from tests.postgres_server import PostgresServer

CONCURRENCY = 50
API_CLIENTS = 20  # each instance's clients: 20 / (3 calls x 150 ms) = 44 payments a second at most


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.searches = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/transaction/search"):
            self.searches += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def instance(url: str, ipay_url: str, start_at: float) -> dict[str, float]:
    """One instance's share of the sweep: claim due orders and look them up until none is left."""
    store = await Store.open(url)
    limits = httpx.Limits(max_connections=CONCURRENCY + 20, max_keepalive_connections=CONCURRENCY)
    transport = CountingTransport(default_transport(limits))
    async with transport:
        ipay = IpayClient(transport, vid="demo", hash_key="demoCHANGED", live=False, base_url=ipay_url)
        # A lookup without a verdict is asked again a minute later: after this run.
        policy = PaymentPolicy(poll_interval=600, payment_timeout=3600, merchant_chat_id=None, sandbox=True)
        poller = StatusPoller(store, PaymentService(store, ipay, policy))
        await store.heartbeat("webhook", time.time())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu = time.process_time()
        while True:
            await store.heartbeat("webhook", time.time())
            started = await poller.start_due()
            if not started:
                await poller.wait_idle()
                if not await store.due_orders(time.time(), 1):
                    break
                await asyncio.sleep(0.05)
                continue
            await asyncio.sleep(0.05)  # room frees as lookups finish; claim more then, as the sweep job does
        await poller.wait_idle()
        finished = time.time()
        cpu = time.process_time() - cpu
    await store.leave(time.time())
    await store.close()
    return {"finished": finished, "searches": transport.searches, "cpu": cpu}


async def seed(url: str, count: int) -> None:
    """`count` orders whose prompt went out and whose first lookup is due now."""
    store = await Store.open(url)
    await store.close()
    connection = await asyncpg.connect(url)
    now = time.time()
    await connection.execute("TRUNCATE orders, outbox, idempotency_keys, chat_claims, instances CASCADE")
    await connection.executemany(
        "INSERT INTO orders (id, chat_id, user_id, phone, network, amount, status, created_at, updated_at, "
        "next_poll_at, prompt_sent_at) VALUES ($1, $2, $3, $4, 'mpesa', 100, 'pending', $5, $5, $6, $5)",
        [(new_order_id(), 100_000 + n, 100_000 + n, f"2547{n:08d}", now, now - 1) for n in range(count)],
    )
    await connection.close()


def sweep(url: str, orders: int, instances: int, latency: float) -> dict[str, Any]:
    asyncio.run(seed(url, orders))
    servers = [SandboxServer(latency=latency) for _ in range(instances)]
    start_at = time.time() + 1.5  # every instance connected and ready before the clock starts
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, "--instance", url, server.url, str(start_at)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for server in servers
        ]
        results = [json.loads(w.communicate(timeout=600)[0].strip().splitlines()[-1]) for w in workers]
    finally:
        for server in servers:
            server.stop()
    searches = sum(r["searches"] for r in results)
    return {
        "instances": instances,
        "wall": max(r["finished"] for r in results) - start_at,
        "searches": searches,
        "per_order": searches / orders,
        "shares": [r["searches"] for r in results],
        "cpu_ms": 1000 * sum(r["cpu"] for r in results) / max(1, searches),
    }


async def api_payments(url: str, instances: int, payments_each: int, latency: float) -> dict[str, Any]:
    """Each instance taking `payments_each` payments from its own clients at once, all on `url`."""
    await seed(url, 0)
    sandboxes = [SandboxServer(latency=latency, answer_delay=0.0) for _ in range(instances)]
    peers: list[payments.Peer] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for sandbox in sandboxes:
                peers.append(payments.pesabot(sandbox.url, Path(scratch), 200, wait=payments.WAIT, database_url=url))
            started = time.perf_counter()
            runs = await asyncio.gather(
                *(
                    payments.drive(peer, payments_each, API_CLIENTS, first_phone=n * 10**5)
                    for n, peer in enumerate(peers)
                )
            )
            seconds = time.perf_counter() - started
    finally:
        for peer in peers:
            peer.stop()
        for sandbox in sandboxes:
            sandbox.stop()
    paid = sum(run.paid for run in runs)
    waits = [wait for run in runs for wait in run.waits]
    return {
        "instances": instances,
        "paid": paid,
        "refused": sum(run.refused for run in runs),
        "per_second": paid / seconds,
        "shares": [run.per_second for run in runs],
        "cpu_ms": 1000 * sum(run.cpu for run in runs) / max(1, paid),
        "p50": percentile(waits, 0.5),
        "p95": percentile(waits, 0.95),
    }


async def creation(target: Path | str, count: int, parallel: int) -> float:
    """Orders written per second through `Store.insert_order`, `parallel` at a time."""
    store = await Store.open(target)
    now = time.time()
    orders = [pending_order(n, now) for n in range(count)]
    queue = iter(orders)

    async def writer() -> None:
        for order in queue:
            await store.insert_order(order)

    began = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(parallel)))
    took = time.perf_counter() - began
    await store.close()
    return count / took


async def fresh_database(server_url: str, name: str) -> str:
    admin = await asyncpg.connect(server_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return server_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--api-payments", type=int, default=400, help="REST API payments each instance takes")
    parser.add_argument("--create", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--instance", nargs=3, help=argparse.SUPPRESS)  # url ipay_url start_at: one worker
    args = parser.parse_args()
    if args.instance:
        url, ipay_url, start_at = args.instance
        print(json.dumps(asyncio.run(instance(url, ipay_url, float(start_at)))))
        return
    own = os.environ.get("PESABOT_BENCH_POSTGRES_URL", "")
    server = None if own else PostgresServer(fsync=True).start()
    base = own or server.url  # type: ignore[union-attr]
    try:
        sweep_url = own or asyncio.run(fresh_database(base, "bench_sweep"))
        runs = [sweep(sweep_url, args.orders, int(n), args.latency) for n in args.instances.split(",")]
        api_url = own or asyncio.run(fresh_database(base, "bench_api"))
        api_runs = [
            asyncio.run(api_payments(api_url, int(n), args.api_payments, args.latency))
            for n in args.instances.split(",")
        ]
        created = []
        with tempfile.TemporaryDirectory() as scratch:
            for parallel in (1, 20):
                sqlite = asyncio.run(creation(Path(scratch) / f"create-{parallel}.sqlite3", args.create, parallel))
                pg_url = own or asyncio.run(fresh_database(base, f"bench_create_{parallel}"))
                if own:
                    asyncio.run(seed(pg_url, 0))
                postgres = asyncio.run(creation(pg_url, args.create, parallel))
                created.append([parallel, f"{sqlite:,.0f}", f"{postgres:,.0f}"])
    finally:
        if server is not None:
            server.stop()
    floor = args.orders / CONCURRENCY * args.latency
    print(
        "\n".join(
            [
                f"**Several instances on PostgreSQL** (`python bench/postgres.py`): a sweep of {args.orders:,} "
                f"due orders by 1, 2 and 3 instances (processes) on one PostgreSQL 15 database, each with "
                f"{CONCURRENCY} iPay calls in "
                f"flight and its own sandbox process at {args.latency * 1000:.0f} ms a call",
                "",
                table(
                    [
                        "instances",
                        "wall s",
                        "one instance's latency floor s / instances",
                        "lookups",
                        "lookups per order",
                        "lookups by each instance",
                        "CPU ms/lookup",
                    ],
                    [
                        [
                            r["instances"],
                            f"{r['wall']:.1f}",
                            f"{floor / r['instances']:.1f}",
                            f"{r['searches']:,}",
                            f"{r['per_order']:.2f}",
                            " / ".join(f"{s:,}" for s in r["shares"]),
                            f"{r['cpu_ms']:.2f}",
                        ]
                        for r in runs
                    ],
                ),
                "",
                f"**REST API payments on PostgreSQL**: {args.api_payments:,} payments taken by each of 1, 2 "
                f"and 3 instances at once on one database, each instance with {API_CLIENTS} clients of its own "
                f"asking with `?wait={payments.WAIT}` and its own sandbox process at {args.latency * 1000:.0f} ms "
                f"a call; one instance's ceiling here is {API_CLIENTS} / (3 x {args.latency * 1000:.0f} ms) = "
                f"{API_CLIENTS / (3 * args.latency):.0f} payments a second",
                "",
                table(
                    [
                        "instances",
                        "payments paid",
                        "payments/s",
                        "x one instance",
                        "payments/s by each instance",
                        "server CPU ms/payment",
                        "p50 s",
                        "p95 s",
                    ],
                    [
                        [
                            r["instances"],
                            f"{r['paid']:,}" + (f" ({r['refused']} refused)" if r["refused"] else ""),
                            f"{r['per_second']:.1f}",
                            f"{r['per_second'] / api_runs[0]['per_second']:.2f}",
                            " / ".join(f"{s:.1f}" for s in r["shares"]),
                            f"{r['cpu_ms']:.2f}",
                            f"{r['p50']:.2f}",
                            f"{r['p95']:.2f}",
                        ]
                        for r in api_runs
                    ],
                ),
                "",
                f"**Order creation** (`Store.insert_order`, {args.create:,} orders, "
                "each its own transaction flushed to disk)",
                "",
                table(["writers at once", "SQLite orders/s", "PostgreSQL orders/s"], created),
            ]
        )
    )


if __name__ == "__main__":
    main()
