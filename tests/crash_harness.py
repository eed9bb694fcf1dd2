"""A bot process for the crash test: the real Application, Telegram emulated in-process,
iPay reached over HTTP (the sandbox server, which outlives this process).

Every message Telegram accepts is appended (and fsynced) to --chat-log, so the test can see
what each chat received across crashes.

    python tests/crash_harness.py --db D --ipay-url U --chat-log L [--pay PHONE AMOUNT]

With --pay it runs one /pay conversation as a customer would; then it keeps running (sweeps,
deliveries) until every order is final and every message delivered, and exits 0. With
--webhook-port it serves webhook mode and the REST API until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update  # noqa: E402

from bot.app import build_application, run_webhook, services_of_app  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser  # noqa: E402

CUSTOMER_ID = 4242
API_KEY = "harness-api-key-0123456789abcdef"


def record(log_path: Path, event: str, message: ChatMessage) -> None:
    with log_path.open("a") as log:
        log.write(json.dumps({"event": event, "chat": message.chat_id, "id": message.message_id, "text": message.text}) + "\n")
        log.flush()
        os.fsync(log.fileno())


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--ipay-url", required=True)
    parser.add_argument("--chat-log", required=True)
    parser.add_argument("--pay", nargs=2, metavar=("PHONE", "AMOUNT"))
    parser.add_argument("--webhook-port", type=int, help="serve webhook mode (and the REST API) until SIGTERM")
    args = parser.parse_args()
    telegram = FakeBotApi()
    telegram.listeners.append(lambda event, message: record(Path(args.chat_log), event, message))
    settings = Settings(
        telegram_bot_token="123:crash-test-token", ipay_base_url=args.ipay_url, database_path=Path(args.db),
        poll_interval_seconds=0.2, payment_timeout_seconds=3.0, merchant_chat_id=-100900,
    )
    if args.webhook_port is not None:
        settings = dataclasses.replace(
            settings, webhook_url="https://bot.example", webhook_secret="harness-secret-0123456789",
            api_keys=(API_KEY,), port=args.webhook_port,
        )
        await run_webhook(settings, build_application(settings, telegram_request=telegram))
        return 0
    app = build_application(settings, telegram_request=telegram)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    await app.start()
    services = services_of_app(app)
    if args.pay:
        customer = TelegramUser(telegram, CUSTOMER_ID, "Crash")
        for line in ("/pay", args.pay[0], args.pay[1]):
            await app.process_update(Update.de_json(customer.text(line), app.bot))
        summary = telegram.bot_messages(customer.chat_id)[-1]
        await app.process_update(Update.de_json(customer.press(summary, "Confirm"), app.bot))
    for _ in range(300):
        await asyncio.sleep(0.1)
        await services.payments.wait_idle()
        orders = await services.store.latest_orders(start=0, end=float("inf"), limit=1000)
        if orders and all(o.status.is_final for o in orders) and await services.store.pending_outbox_count() == 0:
            break
    await app.stop()
    await app.post_shutdown(app)  # type: ignore[misc]
    await app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
