"""Benchmark 2: K customers run a whole /pay conversation at once.

Each customer sends /pay, a phone, an amount and presses Confirm, waiting for the bot's
answer each time, as a person would. Updates go onto the Application's update queue (as the
Updater or the webhook puts them) and the replies come out of the in-process Bot API
emulation, so the numbers are our code's, not the network's. Beside it, the same harness
drives a bare python-telegram-bot echo bot, so the table shows our overhead as a ratio.
Telegram's own rate limiter is off for both (it would cap both at 30 messages a second).

    python bench/conversation.py [--users 10,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from common import machine, percentile, table
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import build_application
from bot.config import Settings
from bot.sandbox.ipay import Faults, IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser


class Replies:
    """Resolves a waiting customer when the bot answers in their chat."""

    def __init__(self, api: FakeBotApi) -> None:
        self.waiting: dict[int, asyncio.Future[ChatMessage]] = {}
        api.listeners.append(self._on_message)

    def _on_message(self, event: str, message: ChatMessage) -> None:
        future = self.waiting.pop(message.chat_id, None)
        if future is not None and not future.done():
            future.set_result(message)

    async def send(self, app: Application, api: FakeBotApi, update: dict[str, Any], chat_id: int) -> tuple[float, ChatMessage]:  # type: ignore[type-arg]
        future = asyncio.get_running_loop().create_future()
        self.waiting[chat_id] = future
        started = time.perf_counter()
        await app.update_queue.put(Update.de_json(update, app.bot))
        message = await asyncio.wait_for(future, timeout=120)
        return time.perf_counter() - started, message


async def customer(app: Application, api: FakeBotApi, replies: Replies, user: TelegramUser, phone: str) -> list[float]:  # type: ignore[type-arg]
    latencies = []
    for text in ("/pay", phone, "500"):
        seconds, last = await replies.send(app, api, user.text(text), user.chat_id)
        latencies.append(seconds)
    seconds, _ = await replies.send(app, api, user.press(last, "Confirm"), user.chat_id)
    latencies.append(seconds)
    return latencies


async def echo_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    button = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Confirm", callback_data="confirm")]])
    await update.effective_message.reply_text(update.effective_message.text, reply_markup=button)  # type: ignore[union-attr]


async def echo_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.callback_query.answer()  # type: ignore[union-attr]
    await update.callback_query.edit_message_text("pressed")  # type: ignore[union-attr]


def echo_bot(api: FakeBotApi) -> Application:  # type: ignore[type-arg]
    app = ApplicationBuilder().token("1:echo").request(api).get_updates_request(api).build()
    app.add_handler(MessageHandler(filters.TEXT, echo_text))
    app.add_handler(CallbackQueryHandler(echo_press))
    return app


async def run(users: int, make: Callable[[FakeBotApi, Path], Application], scratch: Path) -> dict[str, float]:  # type: ignore[type-arg]
    api = FakeBotApi()
    app = make(api, scratch)
    await app.initialize()
    if app.post_init:
        await app.post_init(app)
    await app.start()
    replies = Replies(api)
    people = [TelegramUser(api, 10_000 + n, f"User{n}") for n in range(users)]
    started = time.perf_counter()
    results = await asyncio.gather(*(customer(app, api, replies, p, f"07{n:08d}"[:10]) for n, p in enumerate(people)))
    wall = time.perf_counter() - started
    await app.stop()
    if app.post_shutdown:
        await app.post_shutdown(app)
    await app.shutdown()
    latencies = [seconds for result in results for seconds in result]
    return {
        "updates_per_s": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def pesabot(api: FakeBotApi, scratch: Path) -> Application:  # type: ignore[type-arg]
    settings = Settings(
        telegram_bot_token="1:bench", database_path=scratch / f"conv-{time.monotonic_ns()}.sqlite3",
        pay_limit_per_user=10, ipay_sandbox=False, ipay_base_url="http://ipay.sandbox/payments/v2",
    )
    sandbox = IpaySandbox(faults=Faults(latency=0.15))
    return build_application(settings, telegram_request=api, ipay_transport=sandbox.transport(), rate_limit=False)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", default="10,100,1000")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for users in map(int, args.users.split(",")):
            ours = await run(users, pesabot, Path(scratch))
            echo = await run(users, lambda api, _: echo_bot(api), Path(scratch))
            rows.append([
                users, f"{ours['updates_per_s']:.0f}", f"{ours['p50_ms']:.1f}", f"{ours['p95_ms']:.1f}",
                f"{ours['p99_ms']:.1f}", f"{echo['updates_per_s']:.0f}", f"{echo['p95_ms']:.1f}",
                f"{ours['updates_per_s'] / echo['updates_per_s']:.2f}",
            ])
    print(f"/pay conversations (4 updates each), {machine()}")
    print(table(["users", "updates/s", "p50 ms", "p95 ms", "p99 ms", "echo bot updates/s", "echo p95 ms",
                 "ours / echo"], rows))


if __name__ == "__main__":
    asyncio.run(main())
