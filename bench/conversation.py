"""Benchmark 2: K customers run a whole /pay conversation at once.

Each customer sends /pay, a phone, an amount and presses Confirm, waiting for the bot's
answer each time, as a person would. Updates go onto the BotApplication's update queue (as the
Updater or the webhook puts them) and the replies come out of the in-process Bot API
emulation, so the numbers are our code's, not the network's. Beside it, the same harness
drives a bare python-telegram-bot echo bot, so the table shows our overhead as a ratio.

Equal terms: both bots get the same Bot API emulation, the same update processor (chats
at once, each chat in order) and no rate limiter (it would cap both at Telegram's 30
messages a second). pesabot's Confirm sends a real prompt to the iPay sandbox running as
its own process (`python -m bot.sandbox`, 150 ms a call) over the bot's production HTTP
client, so the sandbox's CPU is not counted as the bot's. CPU per update is this process's
CPU time over the run divided by the updates answered. Each bot first serves one untimed
customer (first-call costs); sizes under 200 run as rounds of K until 200 have been served.
The same conversations then run on Daraja: its stand-in answers in this process after the same
latency, so its CPU is counted with the bot's there (an upper bound on the bot's own).

    python bench/conversation.py [--users 10,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import SandboxServer, percentile, table
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import build_application
from bot.config import DarajaSettings, Settings
from bot.lifecycle import BotApplication, running
from bot.sandbox.daraja import BASE_URL as DARAJA_BASE_URL
from bot.sandbox.daraja import DarajaSandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser
from bot.telegram.updates import PerChatUpdateProcessor

MIN_CUSTOMERS = 200  # sizes below this run as several rounds of K customers, back to back


class Replies:
    """Resolves a waiting customer when the bot answers in their chat."""

    def __init__(self, api: FakeBotApi) -> None:
        self.waiting: dict[int, asyncio.Future[ChatMessage]] = {}
        api.listeners.append(self._on_message)

    def _on_message(self, event: str, message: ChatMessage) -> None:
        future = self.waiting.pop(message.chat_id, None)
        if future is not None and not future.done():
            future.set_result(message)

    async def send(
        self, app: BotApplication, api: FakeBotApi, update: dict[str, Any], chat_id: int
    ) -> tuple[float, ChatMessage]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[chat_id] = future
        started = time.perf_counter()
        await app.update_queue.put(Update.de_json(update, app.bot))
        message = await asyncio.wait_for(future, timeout=120)
        return time.perf_counter() - started, message


async def customer(
    app: BotApplication, api: FakeBotApi, replies: Replies, user: TelegramUser, phone: str
) -> list[float]:
    latencies = []
    for text in ("/pay", phone, "500"):
        seconds, last = await replies.send(app, api, user.text(text), user.chat_id)
        latencies.append(seconds)
    seconds, _ = await replies.send(app, api, user.press(last, "Confirm"), user.chat_id)
    latencies.append(seconds)
    return latencies


async def echo_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    button = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Confirm", callback_data="confirm")]])
    message = update.effective_message
    if message is None or message.text is None:  # the filter lets only text messages through
        return
    await message.reply_text(message.text, reply_markup=button)


async def echo_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:  # the handler runs on button presses only
        return
    await query.answer()
    await query.edit_message_text("pressed")


def echo_bot(api: FakeBotApi) -> BotApplication:
    app = (
        ApplicationBuilder()
        .token("1:echo")
        .request(api)
        .get_updates_request(api)
        .concurrent_updates(PerChatUpdateProcessor())
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo_text))
    app.add_handler(CallbackQueryHandler(echo_press))
    return app


async def run(users: int, make: Callable[[FakeBotApi, Path], BotApplication], scratch: Path) -> dict[str, float]:
    api = FakeBotApi()
    async with running(make(api, scratch)) as app:
        replies = Replies(api)
        warm_up = TelegramUser(api, 9_999, "Warm-up")
        await customer(app, api, replies, warm_up, "0799999999")  # first-call costs, untimed
        rounds = max(1, MIN_CUSTOMERS // users)  # a run of 40 updates is too short to time: repeat small sizes
        results: list[list[float]] = []
        started, cpu_started = time.perf_counter(), time.process_time()
        for round_ in range(rounds):
            people = [
                # Phones distinct across sizes too: the sandbox outlives a run, and a phone with a
                # prompt still open there is refused a second one.
                (TelegramUser(api, 10_000 + n, f"User{n}"), f"07{users * 10_000 + n:08d}")
                for n in range(round_ * users, (round_ + 1) * users)
            ]
            results += await asyncio.gather(*(customer(app, api, replies, person, phone) for person, phone in people))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    latencies = [seconds for result in results for seconds in result]
    return {
        "updates_per_s": len(latencies) / wall,
        "cpu_ms_per_update": 1000 * cpu / len(latencies),
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def pesabot(ipay_url: str) -> Callable[[FakeBotApi, Path], BotApplication]:
    def make(api: FakeBotApi, scratch: Path) -> BotApplication:
        settings = Settings(
            telegram_bot_token="1:bench",
            database_path=scratch / f"conv-{time.monotonic_ns()}.sqlite3",
            pay_limit_per_user=10,
            ipay_sandbox=False,
            ipay_base_url=ipay_url,
        )
        return build_application(settings, telegram_request=api, rate_limit=False)

    return make


class SlowTransport(httpx.AsyncBaseTransport):
    """An in-process transport whose every answer takes `latency` seconds, as a round trip would."""

    def __init__(self, inner: httpx.AsyncBaseTransport, latency: float) -> None:
        self._inner, self._latency = inner, latency

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self._latency)
        return await self._inner.handle_async_request(request)


def pesabot_on_daraja(latency: float) -> Callable[[FakeBotApi, Path], BotApplication]:
    def make(api: FakeBotApi, scratch: Path) -> BotApplication:
        stand_in = DarajaSandbox()
        settings = Settings(
            telegram_bot_token="1:bench",
            database_path=scratch / f"conv-daraja-{time.monotonic_ns()}.sqlite3",
            pay_limit_per_user=10,
            ipay_sandbox=False,
            daraja=DarajaSettings(
                consumer_key=stand_in.consumer_key,
                consumer_secret=stand_in.consumer_secret,
                shortcode=stand_in.shortcode,
                passkey=stand_in.passkey,
                callback_url="https://bench.invalid/daraja",
                base_url=DARAJA_BASE_URL,
            ),
        )
        transport = SlowTransport(stand_in.transport(), latency)
        return build_application(settings, telegram_request=api, ipay_transport=transport, rate_limit=False)

    return make


HEADERS = [
    "customers",
    "updates/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU ms/update",
    "echo bot updates/s",
    "echo p95 ms",
    "echo CPU ms/update",
    "ours / echo",
    "Daraja updates/s",
    "Daraja p95 ms",
    "Daraja CPU ms/update",
]


def table_row(count: int, ours: dict[str, float], echo: dict[str, float], daraja: dict[str, float]) -> list[object]:
    return [
        f"{count:,}",
        f"{ours['updates_per_s']:,.0f}",
        f"{ours['p50_ms']:.1f}",
        f"{ours['p95_ms']:.1f}",
        f"{ours['p99_ms']:.1f}",
        f"{ours['cpu_ms_per_update']:.2f}",
        f"{echo['updates_per_s']:,.0f}",
        f"{echo['p95_ms']:.1f}",
        f"{echo['cpu_ms_per_update']:.2f}",
        f"{ours['updates_per_s'] / echo['updates_per_s']:.2f}",
        f"{daraja['updates_per_s']:,.0f}",
        f"{daraja['p95_ms']:.1f}",
        f"{daraja['cpu_ms_per_update']:.2f}",
    ]


async def measure(users: list[int], latency: float) -> str:
    server = SandboxServer(latency=latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for count in users:
                ours = await run(count, pesabot(server.url), Path(scratch))
                echo = await run(count, lambda api, _: echo_bot(api), Path(scratch))
                daraja = await run(count, pesabot_on_daraja(latency), Path(scratch))
                rows.append(table_row(count, ours, echo, daraja))
    finally:
        server.stop()
    return "\n".join(
        [
            "**Conversations** (`python bench/conversation.py`): K customers each run `/pay`, phone, amount, Confirm "
            f"at once; Confirm's prompt goes to the iPay sandbox in its own process ({latency * 1000:.0f} ms a call); "
            "Daraja: the same conversations, its stand-in answering in this process after the same latency",
            "",
            table(HEADERS, rows),
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", default="10,100,1000")
    parser.add_argument("--latency", type=float, default=0.15)
    args = parser.parse_args()
    print(await measure([int(n) for n in args.users.split(",")], args.latency))


if __name__ == "__main__":
    asyncio.run(main())
