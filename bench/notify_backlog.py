"""Benchmark 4: payers' receipts while the merchant group is held to Telegram's 20 messages a minute.

N payments (default 200), started 5 a second, each payer approving 2 s after the prompt; every
payment also sends a line to MERCHANT_CHAT_ID, a group. The rate limiter is ON, as in
production (python-telegram-bot's AIORateLimiter: 30 messages/s overall, 20/min per group), in
real time; Telegram is the in-process emulation, iPay the in-process sandbox (150 ms a call).
Prints each payer's delay from "paid at iPay" to "✅ Paid" in their chat, and what the merchant
group received. Stops when every payer is told and the outbox is empty, or at --deadline.

    python bench/notify_backlog.py [--payments 200] [--deadline 900]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import machine, percentile, start_payments, table

from bot.app import build_application, services_of_app
from bot.config import Settings
from bot.lifecycle import BotApplication, running
from bot.sandbox.ipay import Faults, IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi

ANSWER_DELAY = 2.0
MERCHANT_GROUP = -100777


@dataclass
class Backlog:
    """What the chats received, and when."""

    told: dict[int, float] = field(default_factory=dict)  # payer chat -> when "✅ Paid" arrived
    merchant_messages: list[tuple[float, str]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    unsent: int = 0
    elapsed: float = 0.0

    def on_message(self, event: str, message: ChatMessage) -> None:
        if event != "message":
            return
        if message.chat_id == MERCHANT_GROUP:
            self.merchant_messages.append((time.time(), message.text))
        elif message.text.startswith("✅ Paid"):
            self.told.setdefault(message.chat_id, time.time())

    @property
    def merchant_lines(self) -> int:
        return sum(1 for _, text in self.merchant_messages for line in text.splitlines() if "order " in line)


async def run(payments: int, deadline_s: float, scratch: Path) -> Backlog:
    settings = Settings(
        telegram_bot_token="1:bench",
        database_path=scratch / "backlog.sqlite3",
        ipay_base_url="http://ipay.sandbox/payments/v2",
        poll_interval_seconds=1.0,
        merchant_chat_id=MERCHANT_GROUP,
        pay_limit_per_phone=10,
    )
    sandbox = IpaySandbox(answer_delay=ANSWER_DELAY, faults=Faults(latency=0.15))
    telegram = FakeBotApi()
    backlog = Backlog()
    telegram.listeners.append(backlog.on_message)
    app = build_application(settings, telegram_request=telegram, ipay_transport=sandbox.transport())  # rate limiter on
    app.post_shutdown = close_without_waiting
    async with running(app):
        services = services_of_app(app)
        started = time.monotonic()
        chats = await start_payments(services.payments, payments, first_user=30_000, gap=0.2)
        while time.monotonic() < started + deadline_s:
            if len(backlog.told) == payments and await services.store.pending_outbox_count() == 0:
                break
            await asyncio.sleep(0.5)
        backlog.elapsed = time.monotonic() - started
        backlog.unsent = await services.store.pending_outbox_count()
    now = time.time()
    for oid, txn in sandbox.transactions.items():
        if txn.prompt is not None:
            paid_at = txn.prompt.sent_at + ANSWER_DELAY
            backlog.delays.append(backlog.told.get(chats[oid], now) - paid_at)  # untold: late by at least this much
    return backlog


async def close_without_waiting(app: BotApplication) -> None:
    """Instead of the bot's own close: do not wait out the limiter's backlog, the numbers are taken."""
    services = services_of_app(app)
    await services.http.aclose()
    await services.store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=900.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = await run(args.payments, args.deadline, Path(scratch))
    delays = result.delays
    print(
        f"{args.payments} payments 0.2 s apart, merchant group limited to 20 messages/min by the rate limiter, "
        f"{machine()}"
    )
    print(
        table(
            [
                "payers told",
                "receipt delay p50 s",
                "p95 s",
                "latest s",
                "merchant messages",
                "merchant lines in them",
                "unsent at end",
                "run s",
            ],
            [
                [
                    f"{len(result.told)}/{args.payments}",
                    f"{percentile(delays, 0.5):.1f}",
                    f"{percentile(delays, 0.95):.1f}",
                    f"{max(delays):.1f}",
                    len(result.merchant_messages),
                    result.merchant_lines,
                    result.unsent,
                    f"{result.elapsed:.0f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
