"""Benchmark 3: from iPay marking an order paid to the chat receiving the receipt.

200 payments, started 20 a second, each payer answering 2 s after the prompt. iPay is the
sandbox (150 ms a call, in-process); Telegram is the in-process emulation. Run once with
polling alone (POLL_INTERVAL_SECONDS, default 5: the first lookup 5 s after the prompt),
once with the callback (the sandbox calls the bot's IPAY_CALLBACK_URL over real HTTP).

    python bench/notify_latency.py [--payments 200] [--poll-interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port, percentile, start_payments, table

from bot.app import build_application, services_of_app
from bot.config import Settings
from bot.lifecycle import running
from bot.sandbox.ipay import Faults, IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi

ANSWER_DELAY = 2.0


def latency_settings(scratch: Path, poll_interval: float, callback: bool) -> Settings:
    port = free_port()
    return Settings(
        telegram_bot_token="1:bench",
        database_path=scratch / f"latency-{callback}.sqlite3",
        ipay_base_url="http://ipay.sandbox/payments/v2",
        poll_interval_seconds=poll_interval,
        ipay_callback_url=f"http://127.0.0.1:{port}/ipay/callback" if callback else "",
        port=port,
        pay_limit_per_phone=10,
    )


async def run(payments: int, poll_interval: float, callback: bool, scratch: Path) -> list[float]:
    settings = latency_settings(scratch, poll_interval, callback)
    sandbox = IpaySandbox(answer_delay=ANSWER_DELAY, faults=Faults(latency=0.15))
    telegram = FakeBotApi()
    told: dict[int, float] = {}
    everyone_told = asyncio.Event()

    def on_message(event: str, message: ChatMessage) -> None:
        if event == "message" and " Confirmed. " in message.text:  # "<receipt> Confirmed. KES 500 paid to …"
            told.setdefault(message.chat_id, time.time())
            if len(told) == payments:
                everyone_told.set()

    telegram.listeners.append(on_message)
    app = build_application(settings, telegram_request=telegram, ipay_transport=sandbox.transport(), rate_limit=False)
    async with running(app):
        if callback:
            sandbox.auto_callbacks = True
            sandbox.callback_client = httpx.AsyncClient(timeout=10)
        chats = await start_payments(services_of_app(app).payments, payments, first_user=20_000, gap=0.05)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone_told.wait(), timeout=60)
    if sandbox.callback_client:
        await sandbox.callback_client.aclose()
    latencies = []
    for oid, txn in sandbox.transactions.items():
        if txn.prompt is not None and chats[oid] in told:
            latencies.append(told[chats[oid]] - (txn.prompt.sent_at + ANSWER_DELAY))
    return latencies


async def measure(payments: int, poll_interval: float) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for callback in (False, True):
            latencies = await run(payments, poll_interval, callback, Path(scratch))
            rows.append(
                [
                    "callback" if callback else f"polling (first lookup {poll_interval:g} s after the prompt)",
                    f"{len(latencies)}/{payments}",
                    f"{percentile(latencies, 0.5):.2f}",
                    f"{percentile(latencies, 0.95):.2f}",
                    f"{max(latencies, default=float('nan')):.2f}",
                ]
            )
    return "\n".join(
        [
            f"**Time to tell the payer** (`python bench/notify_latency.py`): {payments} payments, the payer answering "
            f"{ANSWER_DELAY:g} s after the prompt; from paid at iPay to the receipt in the chat",
            "",
            table(["mode", "told", "p50 s", "p95 s", "max s"], rows),
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    print(await measure(args.payments, args.poll_interval))


if __name__ == "__main__":
    asyncio.run(main())
