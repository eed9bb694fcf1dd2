"""A bot process for the crash test: the real Application, Telegram emulated in-process,
iPay reached over HTTP (the sandbox server, which outlives this process).

Every message Telegram accepts is appended (and fsynced) to --chat-log, so the test can see
what each chat received across crashes.

    python tests/crash_harness.py --db D|postgresql://... --ipay-url U --chat-log L [--pay PHONE AMOUNT]

With --pay it runs one /pay conversation as a customer would; then it keeps running (sweeps,
deliveries) until every order is final and every message delivered, and exits 0. With
--webhook-port it serves webhook mode and the REST API until SIGTERM.

With --do (repeated: `say:TEXT` or `press:LABEL`) the customer takes those steps one by one,
on a chat restored from --chat-log (Telegram keeps the chat while the bot restarts, so a
button shown before a crash can be pressed after it); then the process stops, or with
--finish runs until every order is final, as above.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update  # noqa: E402
from telegram.ext import Application  # noqa: E402

from bot.app import build_application, run_webhook, services_of_app  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser  # noqa: E402
from bot.store import is_postgres_url  # noqa: E402

CUSTOMER_ID = 4242
API_KEY = "harness-api-key-0123456789abcdef"


def record(log_path: Path, event: str, message: ChatMessage) -> None:
    with log_path.open("a") as log:
        log.write(json.dumps({"event": event, "chat": message.chat_id, "id": message.message_id, "text": message.text,
                              "buttons": message.buttons}) + "\n")
        log.flush()
        os.fsync(log.fileno())


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--ipay-url", required=True)
    parser.add_argument("--chat-log", required=True)
    parser.add_argument("--pay", nargs=2, metavar=("PHONE", "AMOUNT"))
    parser.add_argument("--webhook-port", type=int, help="serve webhook mode (and the REST API) until SIGTERM")
    parser.add_argument("--do", action="append", help="a customer's step: say:TEXT or press:LABEL")
    parser.add_argument("--finish", action="store_true", help="after --do, run until every order is final")
    args = parser.parse_args()
    telegram = FakeBotApi()
    telegram.listeners.append(lambda event, message: record(Path(args.chat_log), event, message))
    settings = Settings(
        telegram_bot_token="123:crash-test-token", ipay_base_url=args.ipay_url,
        **({"database_url": args.db} if is_postgres_url(args.db) else {"database_path": Path(args.db)}),  # type: ignore[arg-type]
        poll_interval_seconds=0.2, payment_timeout_seconds=3.0, merchant_chat_id=-100900,
    )
    if args.webhook_port is not None:
        settings = dataclasses.replace(
            settings, webhook_url="https://bot.example", webhook_secret="harness-secret-0123456789",
            api_keys=(API_KEY,), port=args.webhook_port,
        )
        await run_webhook(settings, build_application(settings, telegram_request=telegram))
        return 0
    if args.do:
        restore_chats(telegram, Path(args.chat_log))
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
    if args.do:
        await converse(app, telegram, Path(args.chat_log), args.do)
    for _ in range(300 if not args.do or args.finish else 0):
        await asyncio.sleep(0.1)
        await services.payments.wait_idle()
        orders = await services.store.latest_orders(start=0, end=float("inf"), limit=1000)
        if orders and all(o.status.is_final for o in orders) and await services.store.pending_outbox_count() == 0:
            break
    await app.stop()
    await app.post_shutdown(app)  # type: ignore[misc]
    await app.shutdown()
    return 0


# -- conversation crash points ------------------------------------------------------------


def restore_chats(telegram: FakeBotApi, log_path: Path) -> None:
    """Telegram's side of the chats as the log left them: messages, edits, buttons."""
    if not log_path.exists():
        return
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        chat = telegram.messages(entry["chat"])
        known = [m for m in chat if m.message_id == entry["id"]]
        if known:
            known[0].text, known[0].buttons = entry["text"], [[tuple(b) for b in row] for row in entry["buttons"]]
        else:
            buttons = [[(label, data) for label, data in row] for row in entry["buttons"]]
            chat.append(ChatMessage(entry["id"], entry["chat"], entry["text"], entry["event"] != "user", buttons))
    for chat_id, chat in telegram.chats.items():
        telegram._message_ids[chat_id] = itertools.count(max(m.message_id for m in chat) + 1)


async def converse(
    app: Application, telegram: FakeBotApi, log_path: Path, steps: list[str]  # type: ignore[type-arg]
) -> None:
    """The customer's steps, each waiting for the bot, as a person would."""
    customer = TelegramUser(telegram, CUSTOMER_ID, "Crash")
    services = services_of_app(app)
    for step in steps:
        kind, _, what = step.partition(":")
        if kind == "say":
            update = customer.text(what)
            record(log_path, "user", telegram.messages(customer.chat_id)[-1])
        else:
            chat = telegram.bot_messages(customer.chat_id)
            shown = [m for m in chat if what.lower() in " ".join(m.button_labels).lower()]
            update = customer.press(shown[-1], what)
        await app.process_update(Update.de_json(update, app.bot))
        await services.payments.wait_idle()
        await services.notifier.wait_idle()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
