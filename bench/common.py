"""Shared pieces for the benchmarks: the sandbox as a server process, seeded databases,
the bot wired to an emulated Telegram, and a few numbers helpers. Prints, never asserts."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.domain import Network, Order, OrderStatus, PaymentRequest, new_order_id  # noqa: E402
from bot.eventloop import use_fast_event_loop  # noqa: E402
from bot.memory import tune_garbage_collector  # noqa: E402
from bot.orders.service import PaymentService  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402

T = TypeVar("T")

# Every benchmark runs the bot's code as bot.py runs it: on its event loop (uvloop where
# installed), with its garbage collector's settings.
use_fast_event_loop()
tune_garbage_collector()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxServer:
    """`python -m bot.sandbox` in its own process, so its CPU is not counted as ours."""

    def __init__(self, latency: float = 0.15, answer_delay: float = 3.0, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.sandbox",
                "--port",
                str(self.port),
                "--latency",
                str(latency),
                "--answer-delay",
                str(answer_delay),
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sandbox did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/payments/v2"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


_SEED_COLUMNS = (
    "id", "chat_id", "user_id", "phone", "network", "amount", "status", "created_at", "updated_at", "next_poll_at",
    "prompt_sent_at",
)  # fmt: skip


async def seed_pending(
    path: Path, count: int, *, due_at: float, session: Callable[[str, int], str] | None = None
) -> None:
    """`count` pending orders, all due at `due_at`, written in large transactions; `session`
    gives each its provider session (order id, number) where the provider's lookup needs one."""
    store = await SqliteStore.open(path)
    now = time.time()
    rows = [_pending_row(n, now, due_at) for n in range(count)]
    columns: tuple[str, ...] = _SEED_COLUMNS
    if session is not None:
        rows = [(*row, session(str(row[0]), n)) for n, row in enumerate(rows)]
        columns = (*columns, "session_ref")
    db = store._db  # seeding only: one transaction per 5,000 rows instead of one per order
    insert = f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    for start in range(0, count, 5000):
        await db.execute("BEGIN IMMEDIATE")
        await db.executemany(insert, rows[start : start + 5000])
        await db.execute("COMMIT")
    await store.close()


def pending_order(n: int, now: float, **changes: Any) -> Order:
    """Customer number `n`'s pending M-Pesa order of KES 100, written `now` (not yet sent)."""
    order = Order(
        id=new_order_id(),
        chat_id=100_000 + n,
        user_id=100_000 + n,
        phone=f"2547{n:08d}",
        network=Network.MPESA,
        amount=100,
        status=OrderStatus.PENDING,
        created_at=now,
        updated_at=now,
        next_poll_at=None,
    )
    return dataclasses.replace(order, **changes)


def _pending_row(n: int, now: float, due_at: float) -> tuple[object, ...]:
    """Order number `n`, its prompt sent `now` and a lookup due at `due_at`, as the table holds it."""
    order = pending_order(n, now, next_poll_at=due_at, prompt_sent_at=now)
    values = {**vars(order), "network": order.network.value, "status": order.status.value}
    return tuple(values[column] for column in _SEED_COLUMNS)


class RssWatch:
    """The most resident memory this process had while the block ran, sampled every 20 ms.

    (`ru_maxrss` is the peak of the whole process life, so a later, smaller run would report
    an earlier, bigger one's peak.)"""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mib(self.pid))
            if self._stop.wait(0.02):
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_run(runs: Sequence[T], measure: Callable[[T], float]) -> T:
    """The run with the median `measure` (the middle one of an odd number): runs repeated
    minutes apart on a shared machine differ by a fifth or more, and one run shows the middle."""
    return sorted(runs, key=measure)[len(runs) // 2]


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    """CPU model, cores and Python: what a reader needs to compare a run with theirs."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


async def start_payments(payments: PaymentService, count: int, *, first_user: int, gap: float) -> dict[str, int]:
    """`count` payments, `gap` seconds apart, each from its own chat and phone; returns each order's chat."""
    chats = {}
    for n in range(count):
        user = first_user + n
        order = await payments.create_order(PaymentRequest(user, user, f"2547{n:07d}8", Network.MPESA, 100))
        chats[order.id] = order.chat_id
        payments.send_prompt_soon(order)
        await asyncio.sleep(gap)
    return chats
