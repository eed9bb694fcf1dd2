"""Benchmark: whole payments per second over HTTP, pesabot's REST API beside the tutorial's own server.

The peer is the original tutorial's code (`bench/tutorial/`: its Flask + requests app, copied as
published, changed only to reach the sandbox), served as its users run it: Flask's threaded server.
pesabot is one instance on SQLite (`bench/payments.py --serve`, its REST API and iPay callback on a
port, Telegram emulated in-process; no chat is involved). Both talk to the same iPay stand-in, a
fresh `python -m bot.sandbox` process per run at 150 ms a call, whose payer approves at once.

One load generator drives both the same way: N payments from N distinct phones, C clients at
once, each starting a payment, then asking its status every 50 ms until it is paid, then taking
the next. The tutorial's status call asks iPay each time; pesabot's reads its store, and learns
of the payment by iPay's callback and its own lookup. Reported per run: payments per second,
the server's CPU per payment (its process's user + system time over the run), and the median
and p95 time from asking to pay to seeing it paid. Each server runs `--repeats` times at each
size, the three taking turns (a drift in the machine's load then hits each alike), and the run
with the median payments per second is shown.

The burst: 4,000 payments asked for at once (200 requests at a time), while the sandbox's
latency rises from 150 ms to 1 s once half of them are paid: the time from each order written to
its prompt sent (the wait for an iPay slot included) and to its payment recorded, read from the
bot's database, so no client polls compete with the bot's own work.

    python bench/payments.py [--payments 1000] [--single 40] [--clients 50,200] [--repeats 3] [--burst 4000]

The peer needs `pip install -r bench/requirements.txt` (Flask, requests); BENCH_PEER_PYTHON names
another interpreter to run it with, if they are installed elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from common import ROOT, SandboxServer, free_port, median_run, percentile, table

BENCH = Path(__file__).resolve().parent
API_KEY = "bench-" + "k" * 30
POLL_GAP = 0.05  # between one client's status questions
WAIT = 30  # seconds a waiting status question may wait for the outcome (`?wait=`)


@dataclass
class Peer:
    """A server under load: how to start a payment and how to ask whether it is paid."""

    name: str
    process: subprocess.Popen[bytes]
    base: str
    start: Callable[[aiohttp.ClientSession, str], Awaitable[str | None]]  # phone -> order id (None: refused)
    paid: Callable[[aiohttp.ClientSession, str], Awaitable[bool]]
    database: Path | None = None  # pesabot's SQLite file

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def tutorial(ipay_url: str) -> Peer:
    port = free_port()
    python = os.environ.get("BENCH_PEER_PYTHON", sys.executable)
    process = subprocess.Popen(
        [python, "app.py", str(port)],
        cwd=BENCH / "tutorial",
        env={**os.environ, "TUTORIAL_IPAY_BASE_URL": ipay_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "the tutorial's Flask app")

    async def start(http: aiohttp.ClientSession, phone: str) -> str | None:
        payment = {"phone": phone, "email": "payer@example.com", "amount": "100"}
        async with http.post("/send_stk", json=payment) as reply:
            body = await reply.json()
        return str(body["message"]).rsplit(" ", 1)[1] if body.get("success") else None

    async def paid(http: aiohttp.ClientSession, order_id: str) -> bool:
        async with http.post("/check", json={"order_id": order_id}) as reply:
            return bool((await reply.json()).get("success"))

    return Peer("tutorial", process, f"http://127.0.0.1:{port}", start, paid)


def pesabot(ipay_url: str, scratch: Path, concurrency: int, wait: int = 0, database_url: str = "") -> Peer:
    """`wait`: each status question waits up to this many seconds for the outcome (`?wait=`);
    0 asks and is answered at once, as the tutorial's status call is. `database_url`: a
    PostgreSQL database instead of a fresh SQLite file (bench/postgres.py: several instances)."""
    port = free_port()
    database = database_url or scratch / f"api-{time.monotonic_ns()}.sqlite3"
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "payments.py"), "--serve", str(port), ipay_url, str(database), str(concurrency)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "pesabot")
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def start(http: aiohttp.ClientSession, phone: str) -> str | None:
        async with http.post("/api/payments", json={"phone": phone, "amount": 100}, headers=headers) as reply:
            return str((await reply.json())["order_id"]) if reply.status == 201 else None

    query = {"wait": str(wait)} if wait else {}

    async def paid(http: aiohttp.ClientSession, order_id: str) -> bool:
        async with http.get(f"/api/payments/{order_id}", headers=headers, params=query) as reply:
            return bool((await reply.json())["status"] == "paid")

    return Peer("pesabot", process, f"http://127.0.0.1:{port}", start, paid, None if database_url else Path(database))


@dataclass
class Run:
    paid: int
    refused: int
    seconds: float
    cpu: float
    waits: list[float]

    @property
    def per_second(self) -> float:
        return self.paid / self.seconds


async def drive(
    peer: Peer,
    payments: int,
    clients: int,
    *,
    first_phone: int,
    poll_gap: float = POLL_GAP,
    halfway: Callable[[], Awaitable[None]] | None = None,
) -> Run:
    """`payments` payments from distinct phones, `clients` at a time, each until it is paid."""
    phones = iter(f"2547{(first_phone + n) % 10**7:07d}8" for n in range(payments))  # 8: the payer pays
    waits: list[float] = []
    refused = 0

    async def asks_paid(http: aiohttp.ClientSession, order_id: str) -> bool:
        try:
            return await peer.paid(http, order_id)
        except aiohttp.ClientError:  # asked again after the gap, as a client would
            return False

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal refused
        for phone in phones:
            asked = time.perf_counter()
            try:
                order_id = await peer.start(http, phone)
            except aiohttp.ClientError:  # the server dropped the request: counted, not retried
                order_id = None
            if order_id is None:
                refused += 1
                continue
            while not await asks_paid(http, order_id):  # noqa: ASYNC110  (a client polls, as the tutorial's do)
                await asyncio.sleep(poll_gap)
            waits.append(time.perf_counter() - asked)
            if halfway is not None and len(waits) == payments // 2:
                await halfway()

    # aiohttp's client: the load generator shares the machine, so it spends as little CPU as it can.
    # Idle connections are dropped before the servers' 5 s keep-alive could close them under a call.
    connector = aiohttp.TCPConnector(limit=clients, keepalive_timeout=2.0)
    timeout = aiohttp.ClientTimeout(total=120.0)
    async with aiohttp.ClientSession(peer.base, connector=connector, timeout=timeout) as http:
        cpu_before, started = peer.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds, cpu = time.perf_counter() - started, peer.cpu_seconds() - cpu_before
    return Run(len(waits), refused, seconds, cpu, waits)


async def one_run(
    kind: str, payments: int, clients: int, latency: float, scratch: Path, concurrency: int, first_phone: int
) -> Run:
    """One peer, one size, against a sandbox of its own (so neither inherits the other's records)."""
    sandbox = SandboxServer(latency=latency, answer_delay=0.0)
    if kind == "tutorial":
        peer = tutorial(sandbox.url)
    else:
        peer = pesabot(sandbox.url, scratch, concurrency, wait=WAIT if kind == "pesabot waiting" else 0)
    try:
        return await drive(peer, payments, clients, first_phone=first_phone)
    finally:
        peer.stop()
        sandbox.stop()


@dataclass
class Burst:
    created: int
    paid: int
    seconds: float
    switched_at: float
    prompt_waits: list[float]  # from the order written to its prompt sent: the wait for an iPay slot, and the calls
    paid_waits: list[float]  # from the order written to the payment recorded
    cpu: float


def _orders(database: Path) -> list[tuple[str, float, float | None, float]]:
    """(status, created_at, prompt_sent_at, updated_at) of every order, read beside the running bot."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT status, created_at, prompt_sent_at, updated_at FROM orders").fetchall()


async def burst(payments: int, latency: float, slow: float, scratch: Path, concurrency: int) -> Burst:
    """`payments` asked for at once (200 requests at a time), then watched in the bot's database
    (no client polling: at this size the polls, not iPay, would be what the bot spends its time on);
    iPay's latency goes to `slow` once half are paid."""
    sandbox = SandboxServer(latency=latency, answer_delay=0.0)
    peer = pesabot(sandbox.url, scratch, concurrency)
    assert peer.database is not None
    phones = iter(f"2547{(5_000_000 + n) % 10**7:07d}8" for n in range(payments))
    created = 0

    async def creator(http: aiohttp.ClientSession) -> None:
        nonlocal created
        for phone in phones:
            with contextlib.suppress(aiohttp.ClientError):
                order_id = await peer.start(http, phone)
                created += order_id is not None  # after the await: `+=` reads before it

    try:
        cpu_before, started = peer.cpu_seconds(), time.perf_counter()
        switched_at = 0.0
        async with aiohttp.ClientSession(peer.base, connector=aiohttp.TCPConnector(limit=200)) as http:
            await asyncio.gather(*(creator(http) for _ in range(200)))
            while time.perf_counter() - started < 600:
                paid = sum(row[0] == "paid" for row in await asyncio.to_thread(_orders, peer.database))
                if not switched_at and paid >= payments // 2:
                    switched_at = time.perf_counter() - started
                    url = f"http://127.0.0.1:{sandbox.port}/sandbox/latency"
                    async with http.post(url, params={"seconds": str(slow)}):
                        pass
                if paid >= created:
                    break
                await asyncio.sleep(0.5)
        seconds, cpu = time.perf_counter() - started, peer.cpu_seconds() - cpu_before
        rows = _orders(peer.database)
    finally:
        peer.stop()
        sandbox.stop()
    return Burst(
        created,
        sum(row[0] == "paid" for row in rows),
        seconds,
        switched_at,
        [sent - made for _, made, sent, _ in rows if sent is not None],
        [done - made for status, made, _, done in rows if status == "paid"],
        cpu,
    )


HEADERS = ["server", "clients", "payments paid", "payments/s", "server CPU ms/payment", "p50 s", "p95 s", "x tutorial"]


def row(name: str, clients: int, run: Run, baseline: Run | None) -> list[object]:
    ratio = f"{run.per_second / baseline.per_second:.2f}" if baseline else ""
    return [
        name,
        clients,
        f"{run.paid:,}" + (f" ({run.refused} refused or dropped)" if run.refused else ""),
        f"{run.per_second:.1f}",
        f"{1000 * run.cpu / max(1, run.paid):.2f}",
        f"{percentile(run.waits, 0.5):.2f}",
        f"{percentile(run.waits, 0.95):.2f}",
        ratio,
    ]


async def measure(args: argparse.Namespace) -> str:
    clients = [int(c) for c in args.clients.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        single = await one_run("tutorial", args.single, 1, args.latency, scratch, args.concurrency, 0)
        rows.append(row("tutorial's Flask app", 1, single, None))
        for n, count in enumerate(clients, 1):
            runs: dict[str, list[Run]] = {kind: [] for kind in ("tutorial", "pesabot", "pesabot waiting")}
            for _ in range(args.repeats):  # the servers take turns, so a drift in the machine's load hits each alike
                for kind, kept in runs.items():
                    kept.append(
                        await one_run(kind, args.payments, count, args.latency, scratch, args.concurrency, n * 10**5)
                    )
            theirs, ours, waiting = (median_run(kept, lambda run: run.per_second) for kept in runs.values())
            rows.append(row("tutorial's Flask app", count, theirs, single))
            rows.append(row("pesabot REST API", count, ours, theirs))
            rows.append(row(f"pesabot REST API, `?wait={WAIT}`", count, waiting, theirs))
        burst_rows: list[list[object]] = []
        if args.burst:
            b = await burst(args.burst, args.latency, args.slow, scratch, args.concurrency)
            burst_rows.append(
                [
                    f"{b.created:,}",
                    f"{b.paid:,}",
                    f"{b.seconds:.1f}",
                    f"{b.switched_at:.1f}",
                    f"{percentile(b.prompt_waits, 0.5):.1f}",
                    f"{percentile(b.prompt_waits, 0.95):.1f}",
                    f"{percentile(b.paid_waits, 0.5):.1f}",
                    f"{percentile(b.paid_waits, 0.95):.1f}",
                    f"{1000 * b.cpu / max(1, b.paid):.2f}",
                ]
            )
    lines = [
        f"**Payments over HTTP** (`python bench/payments.py`): {args.payments:,} payments from distinct phones "
        f"({args.single} for one client), each started and then asked about every {POLL_GAP * 1000:.0f} ms "
        f"until paid, the median of {args.repeats} runs for each row at 50 clients or more (the servers taking "
        f"turns); iPay is a sandbox process at {args.latency * 1000:.0f} ms a call whose payer approves at "
        f"once; pesabot is one instance on SQLite, `POLL_CONCURRENCY={args.concurrency}`; its `?wait={WAIT}` "
        "row asks the same way, but each question waits for the outcome instead of being answered at once. "
        "x tutorial: against the tutorial at the same clients (its own row: against one client).",
        "",
        table(HEADERS, rows),
    ]
    if burst_rows:
        lines += [
            "",
            f"**Burst** (same script): {args.burst:,} payments asked for at once through the REST API, iPay's "
            f"latency rising from {args.latency * 1000:.0f} ms to {args.slow * 1000:.0f} ms once half are paid; "
            "times from each order written to its prompt sent and to its payment recorded, read from the bot's "
            "database (no client polls).",
            "",
            table(
                [
                    "asked",
                    "paid",
                    "total s",
                    "latency raised at s",
                    "prompt sent p50 s",
                    "prompt sent p95 s",
                    "paid p50 s",
                    "paid p95 s",
                    "server CPU ms/payment",
                ],
                burst_rows,
            ),
        ]
    return "\n".join(lines)


async def serve(port: int, ipay_url: str, database: str, concurrency: int) -> None:
    """pesabot as one instance: its REST API and iPay callback on `port`, Telegram emulated;
    `database` a SQLite file or a PostgreSQL URL (then in webhook mode, as several instances on one
    database must be: Telegram's updates would come to `/telegram`, and none do here)."""
    from bot.app import build_application
    from bot.config import Settings
    from bot.lifecycle import running
    from bot.sandbox.telegram import FakeBotApi

    postgres = database.startswith("postgres")
    settings = Settings(
        telegram_bot_token="1:bench",
        database_path=Path("unused.sqlite3") if postgres else Path(database),
        database_url=database if postgres else "",
        webhook_url="https://bench.example" if postgres else "",
        webhook_secret="bench-webhook-secret-0123456789" if postgres else "",
        ipay_sandbox=False,
        ipay_base_url=ipay_url,
        ipay_callback_url=f"http://127.0.0.1:{port}/ipay/callback",
        api_keys=(API_KEY,),
        port=port,
        poll_concurrency=concurrency,
    )
    async with running(build_application(settings, telegram_request=FakeBotApi(), rate_limit=False)):
        await asyncio.Event().wait()  # until the benchmark terminates the process


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        port, url, database, concurrency = sys.argv[2:6]
        # uvloop, as bot.py runs it: chosen when `common` was imported.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(int(port), url, database, int(concurrency)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--single", type=int, default=40, help="payments the one-client tutorial run makes")
    parser.add_argument("--clients", default="50,200")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each server at each size; the median is shown")
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--slow", type=float, default=1.0, help="the burst's latency once half are paid")
    parser.add_argument("--burst", type=int, default=4000, help="payments in the burst (0: none)")
    parser.add_argument("--concurrency", type=int, default=200, help="pesabot's POLL_CONCURRENCY")
    print(asyncio.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
