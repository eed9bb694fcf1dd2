"""Several instances on one database, in process: two whole bots (real Applications) on one
PostgreSQL database share the daily summary, a chat's conversation and its outbox; a second
long-polling bot is refused while the first lives, and starts at once when the first was killed.
The multi-process test with kill -9 is tests/test_multi_instance.py."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest
from telegram.ext import CallbackContext

from bot.app import StartupRefused, daily_summary_job
from bot.config import Settings
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.store.base import Store
from tests.conftest import MERCHANT_CHAT, ManualClock, start_shop, stop_shop, with_settings
from tests.postgres_server import PostgresServer

WEBHOOK = dict(webhook_url="https://bot.example", webhook_secret="instances-secret-0123456789", port=0)


@pytest.fixture
def shared(settings: Settings, postgres_server: PostgresServer) -> Settings:
    """Webhook-mode settings on a PostgreSQL database of the test's own."""
    return with_settings(settings, database_url=postgres_server.new_database_sync(), **WEBHOOK)


async def test_two_instances_share_a_conversation_its_outbox_and_the_daily_summary(
    shared: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    one = await start_shop(shared, telegram, sandbox, clock)
    two = await start_shop(shared, telegram, sandbox, clock)
    try:
        customer = one.customer()
        await one.type(customer, "/pay")  # each step lands on another instance
        await two.type(customer, "0712 345 678")
        await one.type(customer, "500")
        summary = one.last(customer.chat_id)
        assert "Amount: KES 500" in summary.text
        await two.send(customer.press(summary, "Confirm"))
        order = await one.only_order(customer.chat_id)
        assert order.status.value == "pending" and len(sandbox.transactions) == 1
        clock.advance(10)
        await one.sweep()
        await two.sweep()
        await one.settle()
        assert sum("✅ Paid: KES 500" in text for text in one.texts(customer.chat_id)) == 1
        before = len(telegram.bot_messages(MERCHANT_CHAT))
        for shop in (one, two, one):
            await daily_summary_job(CallbackContext(shop.app))
            await shop.settle()
        summaries = [m for m in telegram.bot_messages(MERCHANT_CHAT)[before:] if m.text.startswith("📊 Today")]
        assert len(summaries) == 1
    finally:
        await stop_shop(two)
        await stop_shop(one)


async def test_a_second_poller_is_refused_while_the_first_lives(
    settings: Settings, postgres_server: PostgresServer, telegram: FakeBotApi, sandbox: IpaySandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Store, "stale_after", 2.0)  # a dead poller is noticed sooner, for the test's sake
    polling = with_settings(settings, database_url=postgres_server.new_database_sync())
    first = await start_shop(polling, telegram, sandbox, time.time)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        with pytest.raises(StartupRefused, match="already long polling on this database.*webhook mode"):
            await start_shop(polling, telegram, sandbox, time.time)  # type: ignore[arg-type]
        assert time.monotonic() - started < 5
    finally:
        await stop_shop(first)
    again = await start_shop(polling, telegram, sandbox, time.time)  # a clean stop lets the next start at once
    await stop_shop(again)


async def test_a_killed_pollers_heartbeat_does_not_hold_up_its_restart(
    settings: Settings, postgres_server: PostgresServer, telegram: FakeBotApi, sandbox: IpaySandbox
) -> None:
    import socket

    url = postgres_server.new_database_sync()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = await Store.open(url)
    store.instance_id = f"{socket.gethostname()}:{dead.pid}:killed"
    await store.heartbeat("polling", time.time())  # as a poller killed a moment ago left it
    await store.close()
    started = time.monotonic()
    shop = await start_shop(dataclasses.replace(settings, database_url=url), telegram, sandbox, time.time)  # type: ignore[arg-type]
    await stop_shop(shop)
    assert time.monotonic() - started < 2
