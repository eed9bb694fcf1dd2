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
import logging
import os
import signal
import sys
import time
from pathlib import Path

# The repository root in place of this script's folder: tests/telegram/ must not hide python-telegram-bot.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update

from bot.app import build_application, run_webhook, services_of_app
from bot.config import Settings
from bot.eventloop import use_fast_event_loop
from bot.lifecycle import BotApplication, running
from bot.memory import tune_garbage_collector
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser
from bot.store import Store, is_postgres_url

CUSTOMER_ID = 4242
API_KEY = "harness-api-key-0123456789abcdef"


def record(log_path: Path, event: str, message: ChatMessage) -> None:
    with log_path.open("a") as log:
        log.write(
            json.dumps(
                {
                    "event": event,
                    "chat": message.chat_id,
                    "id": message.message_id,
                    "text": message.text,
                    "buttons": message.buttons,
                }
            )
            + "\n"
        )
        log.flush()
        os.fsync(log.fileno())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--ipay-url", required=True)
    parser.add_argument("--chat-log", required=True)
    parser.add_argument("--pay", nargs=2, metavar=("PHONE", "AMOUNT"))
    parser.add_argument("--webhook-port", type=int, help="serve webhook mode (and the REST API) until SIGTERM")
    parser.add_argument("--do", action="append", help="a customer's step: say:TEXT or press:LABEL")
    parser.add_argument("--finish", action="store_true", help="after --do, run until every order is final")
    parser.add_argument("--stale-after", type=float, help="seconds of silence after which an instance counts as dead")
    parser.add_argument("--log-info", action="store_true", help="log at INFO, timestamped, to stdout")
    args = parser.parse_args()
    if args.stale_after is not None:
        Store.stale_after = args.stale_after
    return args


def harness_settings(args: argparse.Namespace) -> Settings:
    settings = Settings(
        telegram_bot_token="123:crash-test-token",
        ipay_base_url=args.ipay_url,
        poll_interval_seconds=0.2,
        payment_timeout_seconds=3.0,
        merchant_chat_id=-100900,
    )
    if is_postgres_url(args.db):
        settings = dataclasses.replace(settings, database_url=args.db)
    else:
        settings = dataclasses.replace(settings, database_path=Path(args.db))
    if args.webhook_port is None:
        return settings
    return dataclasses.replace(
        settings,
        webhook_url="https://bot.example",
        webhook_secret="harness-secret-0123456789",
        api_keys=(API_KEY,),
        port=args.webhook_port,
    )


def dump_tasks() -> None:
    """Every asyncio task's stack to stdout (SIGUSR1): where a stuck instance is waiting."""
    out = sys.stdout
    out.write(f"--- tasks of {os.getpid()} at {time.time():.3f} ---\n")
    for task in asyncio.all_tasks():
        out.write(f"{task!r}\n")
        task.print_stack(limit=30, file=out)
    out.flush()


async def main() -> int:
    args = parse_args()
    if args.log_info:  # timestamped, for a test that dumps the instances' logs when it fails
        logging.basicConfig(
            level=logging.INFO, stream=sys.stdout, format="%(created).3f %(levelname)s %(name)s: %(message)s"
        )
        for chatty in ("httpx", "apscheduler"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    telegram = FakeBotApi()
    telegram.listeners.append(lambda event, message: record(Path(args.chat_log), event, message))
    settings = harness_settings(args)
    if args.webhook_port is not None:
        await run_webhook(settings, build_application(settings, telegram_request=telegram))
        return 0
    if args.do:
        restore_chats(telegram, Path(args.chat_log))
    async with running(build_application(settings, telegram_request=telegram)) as app:
        if args.pay:
            await pay(app, telegram, phone=args.pay[0], amount=args.pay[1])
        if args.do:
            await converse(app, telegram, Path(args.chat_log), args.do)
        if not args.do or args.finish:
            await run_until_settled(app)
    return 0


async def pay(app: BotApplication, telegram: FakeBotApi, *, phone: str, amount: str) -> None:
    """One /pay conversation up to Confirm, as the customer types it."""
    customer = TelegramUser(telegram, CUSTOMER_ID, "Crash")
    for line in ("/pay", phone, amount):
        await app.process_update(Update.de_json(customer.text(line), app.bot))
    summary = telegram.bot_messages(customer.chat_id)[-1]
    await app.process_update(Update.de_json(customer.press(summary, "Confirm"), app.bot))


async def run_until_settled(app: BotApplication, *, seconds: float = 30.0) -> None:
    """Sweeps and deliveries go on until every order is final and every message delivered."""
    services = services_of_app(app)
    for _ in range(int(seconds / 0.1)):
        await asyncio.sleep(0.1)
        await services.payments.wait_idle()
        orders = await services.store.latest_orders(start=0, end=float("inf"), limit=1000)
        if orders and all(o.status.closed for o in orders) and await services.store.pending_outbox_count() == 0:
            return


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


async def converse(app: BotApplication, telegram: FakeBotApi, log_path: Path, steps: list[str]) -> None:
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
    use_fast_event_loop()  # as bot.py runs it
    tune_garbage_collector()
    sys.exit(asyncio.run(main()))
