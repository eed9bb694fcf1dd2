"""Benchmark 1: one status sweep over 1,000 / 5,000 (or more) due orders.

iPay is the sandbox server (another process) answering every call after 150 ms, like a
round trip from Nairobi; the bot's own process does the sweep. Each size is swept in one run
over each of these (the first two `--repeats` times, taking turns, the median shown): the bot's
transport (its own HTTP/1.1 wire under httpx's API, `bot/providers/transport.py`); aiohttp's
wire under the same API (`bench/aiohttp_transport.py`), as the bot had it before; httpx's own
transport with the same pool limits, as the bot had it before that; httpx's own with its
default pool; and iPay answered in memory (what is left is our code and SQLite). Then the same
sweep on Daraja: its client (token, STK query) against a stand-in answering in memory after
the same latency ("still being processed"), over httpx's API and the same pool limits.
Reports wall time, our CPU time per order polled, peak RSS, the most iPay calls in flight
at once, and the query plan that finds the due orders.

Then prompts beside a sweep: payments asked for one after another with no lookups due, and
while a sweep of `--prompt-sweep` (10,000) due orders fills the lookups' share of the window;
each order's time from written to its prompt sent. A prompt that queued behind the lookups
would show it here.

    python bench/sweep.py [--sizes 1000,5000] [--latency 0.15] [--concurrency 50] [--repeats 3]
                          [--prompt-sweep 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

import httpx
from aiohttp_transport import AiohttpTransport
from common import RssWatch, SandboxServer, median_run, percentile, seed_pending, table

from bot.domain import Network, PaymentRequest
from bot.orders.poller import StatusPoller
from bot.orders.service import PaymentPolicy, PaymentService
from bot.providers.daraja import DarajaClient, DarajaSession
from bot.providers.ipay import IpayClient
from bot.providers.limiter import CallBudget
from bot.providers.transport import default_transport
from bot.store.sqlite import SqliteStore


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

    async def aclose(self) -> None:
        await self.inner.aclose()


PROMPTER = 500_000  # the chats (and users) asking for the prompts: none of the seeded orders'
IDLE_PROMPTS, IDLE_PROMPT_GAP = 20, 0.1  # the baseline: prompts with no lookups due
PROMPT_GAP = 0.5  # between prompts asked beside the sweep


def not_paid_yet(request: httpx.Request) -> httpx.Response:
    """iPay's "not paid yet", answered in memory: what is left is our own code's cost."""
    return httpx.Response(404, json={"header_status": 404, "status": 0, "text": "no payment record found"})


TRANSPORTS = ("wire", "aiohttp", "httpx", "httpx-default", "memory")
# Swept `--repeats` times each, taking turns, the median run shown: the two the text compares,
# whose CPU a lookup moves by a fifth between runs minutes apart on a shared machine.
REPEATED = ("wire", "aiohttp")


def make_transport(kind: str, concurrency: int) -> httpx.AsyncBaseTransport:
    """The bot's transport now (with the pool `bot/app.py` gives it); aiohttp's and httpx's own
    with that same pool, as the bot had them before; httpx's own with httpx's default pool
    (100 connections, 20 kept alive); or iPay answered in memory."""
    limits = httpx.Limits(max_connections=concurrency + 20, max_keepalive_connections=concurrency)
    if kind == "wire":
        return default_transport(limits)
    if kind == "aiohttp":
        return AiohttpTransport(limits)
    if kind == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    if kind == "httpx-default":
        return httpx.AsyncHTTPTransport()
    return httpx.MockTransport(not_paid_yet)


async def one_sweep(size: int, ipay_url: str, scratch: Path, concurrency: int, kind: str) -> dict[str, object]:
    path = scratch / f"sweep-{size}-{kind}-{time.monotonic_ns()}.sqlite3"
    await seed_pending(path, size, due_at=time.time() - 1)
    store = await SqliteStore.open(path)
    transport = CountingTransport(make_transport(kind, concurrency))
    async with transport:
        ipay = IpayClient(transport, vid="demo", hash_key="demoCHANGED", live=False, base_url=ipay_url)
        policy = PaymentPolicy(poll_interval=5, payment_timeout=600, merchant_chat_id=None, sandbox=True)
        payments = PaymentService(store, ipay, policy)
        poller = StatusPoller(store, payments)
        plan = await (
            await store._db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM orders WHERE next_poll_at IS NOT NULL AND next_poll_at <= ? "
                "ORDER BY next_poll_at LIMIT 500",
                (time.time(),),
            )
        ).fetchall()
        with RssWatch() as rss:
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            report = await poller.sweep()
            cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    await store.close()
    return {
        "orders": size,
        "checked": report.checked,
        "wall_s": wall,
        "cpu_ms_per_order": 1000 * cpu / max(1, report.checked),
        "peak_rss_mib": rss.peak,
        "max_in_flight": transport.max_in_flight,
        "plan": " / ".join(str(row[-1]) for row in plan),
    }


def daraja_answers(latency: float) -> Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]:
    """Daraja's token, and every STK query answered "still being processed" after `latency`."""

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v1/generate":
            return httpx.Response(200, json={"access_token": "bench-token", "expires_in": "3599"})
        await asyncio.sleep(latency)
        return httpx.Response(
            500,
            json={"requestId": "1", "errorCode": "500.001.1001", "errorMessage": "The transaction is being processed"},
        )

    return answer


async def one_daraja_sweep(size: int, latency: float, scratch: Path, concurrency: int) -> dict[str, object]:
    """The same sweep on Daraja: each order with the checkout its push was answered with."""
    path = scratch / f"sweep-{size}-daraja.sqlite3"

    def session(order_id: str, n: int) -> str:
        return DarajaSession(order_id, 100, f"ws_CO_{n}", f"m-{n}").encode()

    await seed_pending(path, size, due_at=time.time() - 1, session=session)
    store = await SqliteStore.open(path)
    limits = httpx.Limits(max_connections=concurrency + 20, max_keepalive_connections=concurrency)
    transport = CountingTransport(httpx.MockTransport(daraja_answers(latency)))
    async with httpx.AsyncClient(transport=transport, limits=limits) as http:
        daraja = DarajaClient(
            http,
            consumer_key="bench",
            consumer_secret="bench",
            shortcode="174379",
            passkey="bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
            callback_url="https://bench.invalid/daraja",
            base_url="https://daraja.invalid",
        )
        policy = PaymentPolicy(poll_interval=5, payment_timeout=600, merchant_chat_id=None, sandbox=True)
        poller = StatusPoller(store, PaymentService(store, daraja, policy))
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        report = await poller.sweep()
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    await store.close()
    return {"checked": report.checked, "wall_s": wall, "cpu_ms_per_order": 1000 * cpu / max(1, report.checked)}


async def prompts_beside_a_sweep(
    due: int, ipay_url: str, scratch: Path, concurrency: int, *, gap: float, count: int | None = None
) -> dict[str, object]:
    """Payments asked for `gap` seconds apart while a sweep of `due` due orders runs (`count` of
    them if given, else as long as the sweep lasts; `due` 0: no sweep, the baseline), on the bot's
    transport and call budget: each order's time from written to its prompt sent (two iPay calls
    and their waits for a slot), and the most iPay calls in flight while they were asked."""
    path = scratch / f"prompts-{due}-{time.monotonic_ns()}.sqlite3"
    await seed_pending(path, due, due_at=time.time() - 1)
    store = await SqliteStore.open(path)
    transport = CountingTransport(make_transport("wire", concurrency))
    order_ids: list[str] = []
    async with transport:
        ipay = IpayClient(transport, vid="demo", hash_key="demoCHANGED", live=False, base_url=ipay_url)
        # The prompts' own first lookups fall after the sweep, so it sweeps the seeded orders only.
        policy = PaymentPolicy(poll_interval=3600, payment_timeout=7200, merchant_chat_id=None, sandbox=True)
        payments = PaymentService(store, ipay, policy, budget=CallBudget(concurrency))
        sweep = asyncio.ensure_future(StatusPoller(store, payments).sweep()) if due else None
        await asyncio.sleep(0.5)  # the lookups take their share of the window first
        calls_in_flight = transport.in_flight
        while (len(order_ids) < count) if count is not None else (sweep is not None and not sweep.done()):
            n = len(order_ids)  # phones 2547990…: none of the seeded orders' (2547000…)
            asked = PaymentRequest(PROMPTER + n, PROMPTER + n, f"254799{n:05d}8", Network.MPESA, 100)
            order = await payments.create_order(asked)
            payments.send_prompt_soon(order)
            order_ids.append(order.id)
            calls_in_flight = max(calls_in_flight, transport.in_flight)
            await asyncio.sleep(gap)
        await payments.wait_idle()
        report = await sweep if sweep is not None else None
    orders = [await store.get_order(order_id) for order_id in order_ids]
    await store.close()
    waits = [o.prompt_sent_at - o.created_at for o in orders if o is not None and o.prompt_sent_at is not None]
    return {
        "due": due,
        "looked_up": report.checked if report is not None else 0,
        "calls_in_flight": calls_in_flight,
        "asked": len(order_ids),
        "sent": len(waits),
        "p50": percentile(waits, 0.5),
        "p95": percentile(waits, 0.95),
        "max": max(waits),
    }


PROMPTS_HEADERS = [
    "lookups due",
    "looked up",
    "iPay calls in flight",
    "prompts asked",
    "prompts sent",
    "written to prompt sent p50 s",
    "p95 s",
    "max s",
]


def prompts_row(run: dict[str, object]) -> list[object]:
    return [
        f"{run['due']:,}",
        f"{run['looked_up']:,}",
        run["calls_in_flight"],
        run["asked"],
        run["sent"],
        *(f"{run[key]:.2f}" for key in ("p50", "p95", "max")),
    ]


def _cpu_per_order(run: dict[str, object]) -> float:
    return float(run["cpu_ms_per_order"])  # type: ignore[arg-type]


HEADERS = [
    "due orders",
    "checked",
    "latency floor s",
    "wall s",
    "wall s, aiohttp",
    "wall s, httpx",
    "wall s, httpx default pool",
    "CPU ms/order",
    "CPU ms/order, aiohttp",
    "CPU ms/order, httpx",
    "CPU ms/order, httpx default pool",
    "CPU ms/order, iPay in memory",
    "peak RSS MiB",
    "iPay calls in flight",
    "Daraja: checked",
    "Daraja: wall s",
    "Daraja: CPU ms/order",
]


def table_row(size: int, floor: float, runs: dict[str, dict[str, object]], daraja: dict[str, object]) -> list[object]:
    """One size's line: our transport, the ones before it, and iPay in memory."""
    ours = runs["wire"]
    over_the_wire = [runs[kind] for kind in TRANSPORTS if kind != "memory"]
    return [
        f"{size:,}",
        f"{ours['checked']:,}",
        f"{floor:.1f}",
        *(f"{run['wall_s']:.2f}" for run in over_the_wire),
        *(f"{runs[kind]['cpu_ms_per_order']:.2f}" for kind in TRANSPORTS),
        f"{ours['peak_rss_mib']:.0f}",
        ours["max_in_flight"],
        f"{daraja['checked']:,}",
        f"{daraja['wall_s']:.2f}",
        f"{daraja['cpu_ms_per_order']:.2f}",
    ]


async def measure(sizes: list[int], latency: float, concurrency: int, repeats: int, prompt_sweep: int) -> str:
    """Every size with each transport in turn, against one sandbox process: the markdown to print."""
    server = SandboxServer(latency=latency)
    rows, plan = [], ""
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for size in sizes:
                repeated: dict[str, list[dict[str, object]]] = {kind: [] for kind in REPEATED}
                for _ in range(repeats):
                    for kind, kept in repeated.items():
                        kept.append(await one_sweep(size, server.url, Path(scratch), concurrency, kind))
                runs = {kind: median_run(kept, _cpu_per_order) for kind, kept in repeated.items()}
                for kind in TRANSPORTS:
                    if kind not in runs:
                        runs[kind] = await one_sweep(size, server.url, Path(scratch), concurrency, kind)
                daraja = await one_daraja_sweep(size, latency, Path(scratch), concurrency)
                floor = size / concurrency * latency
                rows.append(table_row(size, floor, runs, daraja))
                plan = str(runs[TRANSPORTS[0]]["plan"])
            idle = await prompts_beside_a_sweep(
                0, server.url, Path(scratch), concurrency, gap=IDLE_PROMPT_GAP, count=IDLE_PROMPTS
            )
            busy = await prompts_beside_a_sweep(prompt_sweep, server.url, Path(scratch), concurrency, gap=PROMPT_GAP)
    finally:
        server.stop()
    return "\n".join(
        [
            f"**Status sweep** (`python bench/sweep.py`): iPay latency {latency * 1000:.0f} ms, "
            f"concurrency {concurrency} (`POLL_CONCURRENCY`), the sandbox in its own process; the bot's "
            f"transport and aiohttp's each the median of {repeats} sweeps (taking turns), the others one; "
            "Daraja: the same sweep over its client, its answers in memory after the same latency",
            "",
            table(HEADERS, rows),
            "",
            f"Query plan for the due orders: `{plan}`.",
            "",
            f"**Prompts beside a sweep** (same script): payments asked for one after another, with no "
            f"lookups due ({IDLE_PROMPTS}, {IDLE_PROMPT_GAP:g} s apart) and while a sweep of {prompt_sweep:,} "
            f"due orders runs (one every {PROMPT_GAP:g} s until it ends); the bot's transport and call budget "
            f"(`POLL_CONCURRENCY` {concurrency}, a tenth kept for prompts); from each order written to its prompt "
            f"sent (/transact and the push, {2 * latency * 1000:.0f} ms at the sandbox, and their waits for a slot)",
            "",
            table(PROMPTS_HEADERS, [prompts_row(idle), prompts_row(busy)]),
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="sweeps of each REPEATED transport; the median is shown")
    parser.add_argument("--prompt-sweep", type=int, default=10_000, help="due orders swept while prompts are asked")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    print(await measure(sizes, args.latency, args.concurrency, args.repeats, args.prompt_sweep))


if __name__ == "__main__":
    asyncio.run(main())
