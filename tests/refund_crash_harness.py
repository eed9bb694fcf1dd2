"""A bot process for the refund crash test: the real Application, Telegram emulated in-process,
iPay reached over HTTP (the sandbox server, which outlives this process).

    python tests/refund_crash_harness.py --db D --ipay-url U refund
        a customer pays KES 500, then the admin refunds it (/refund, the confirm button); prints
        the order id first. With PESABOT_CRASH_AT=refund_answered the process kills itself
        after iPay answered and before the answer is recorded.
    python tests/refund_crash_harness.py --db D --ipay-url U restart ORDER_ID
        starts again on the same database, lets start-up do its work, and prints the refund's
        state and what each admin was told, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

# The repository root in place of this script's folder: tests/telegram/ must not hide python-telegram-bot.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update

from bot.app import build_application, services_of_app
from bot.config import Settings
from bot.lifecycle import BotApplication, running
from bot.sandbox.telegram import FakeBotApi, TelegramUser

ADMINS = (9001, 9003)
CUSTOMER = 4242


def _settings(db: str, ipay_url: str) -> Settings:
    return Settings(
        telegram_bot_token="123456789:AAH-refund-harness-abcdefghijklmn",
        ipay_vid="demo",
        ipay_hash_key="demoCHANGED",
        ipay_base_url=ipay_url,
        database_path=Path(db),
        admin_ids=frozenset(ADMINS),
        poll_interval_seconds=0.2,
    )


async def _send(app: BotApplication, update: dict[str, object]) -> None:
    await app.process_update(Update.de_json(update, app.bot))


async def refund(app: BotApplication, telegram: FakeBotApi) -> None:
    services = services_of_app(app)
    customer = TelegramUser(telegram, CUSTOMER, "Wanjiru")
    for line in ("/pay", "0712345677", "500"):
        await _send(app, customer.text(line))
    await _send(app, customer.press(telegram.bot_messages(CUSTOMER)[-1], "Confirm"))
    await services.payments.wait_idle()
    (order,) = await services.store.latest_chat_orders(CUSTOMER, 1)
    print(order.id, flush=True)
    for _ in range(200):
        await services.poller.sweep()
        if (current := await services.store.get_order(order.id)) is not None and current.status.money_received:
            break
        await asyncio.sleep(0.1)
    admin = TelegramUser(telegram, ADMINS[0], "Amina")
    await _send(app, admin.text(f"/refund {order.id}"))
    await _send(app, admin.press(telegram.bot_messages(ADMINS[0])[-1], "Refund KES"))
    assert services.refunds is not None
    await services.refunds.wait_idle()


async def restart(app: BotApplication, telegram: FakeBotApi, order_id: str) -> None:
    services = services_of_app(app)
    for _ in range(100):  # start-up marks the lapsed call; the notifier delivers what it queued
        await services.notifier.wait_idle()
        if all(telegram.bot_messages(admin) for admin in ADMINS):
            break
        await asyncio.sleep(0.1)
    refund_row = await services.store.get_refund(order_id)
    told = {admin: [m.text for m in telegram.bot_messages(admin)] for admin in ADMINS}
    print(json.dumps({"state": refund_row.state.value if refund_row else None, "told": told}), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--ipay-url", required=True)
    parser.add_argument("step", choices=["refund", "restart"])
    parser.add_argument("order_id", nargs="?")
    args = parser.parse_args()
    telegram = FakeBotApi()
    app = build_application(_settings(args.db, args.ipay_url), telegram_request=telegram)
    async with running(app):
        if args.step == "refund":
            await refund(app, telegram)
        else:
            await restart(app, telegram, args.order_id)


if __name__ == "__main__":
    asyncio.run(main())
