"""Several instances on one database, in process: two whole bots (real Applications) on one
PostgreSQL database share the daily summary, a chat's conversation and its outbox; a second
long-polling bot is refused while the first lives, and starts at once when the first was killed.
The multi-process test with kill -9 is tests/store/test_multi_instance.py."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time

import pytest
from telegram.ext import CallbackContext

from bot.app import StartupRefused, daily_summary_job
from bot.config import Settings
from bot.domain import Notice
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi
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
        assert sum("Confirmed. KES 500 paid to" in text for text in one.texts(customer.chat_id)) == 1
        before = len(telegram.bot_messages(MERCHANT_CHAT))
        for shop in (one, two, one):
            await daily_summary_job(CallbackContext(shop.app))
            await shop.settle()
        summaries = [m for m in telegram.bot_messages(MERCHANT_CHAT)[before:] if m.text.startswith("📊 Mama Mboga · ")]
        assert len(summaries) == 1
    finally:
        await stop_shop(two)
        await stop_shop(one)


async def test_a_language_chosen_on_one_instance_is_spoken_by_the_other(
    shared: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    one = await start_shop(shared, telegram, sandbox, clock)
    two = await start_shop(shared, telegram, sandbox, clock)
    try:
        customer = one.customer(language_code="en")
        await one.send(customer.text("/help"))  # both instances have met the customer in English
        await two.send(customer.text("/help"))
        assert two.last(customer.chat_id).text.startswith("I take M-Pesa")
        await one.send(customer.text("/lugha"))  # ... who switches on the first
        await one.send(customer.press(one.last(customer.chat_id), "Kiswahili"))
        await two.send(customer.text("/help"))  # and is answered by the second
        assert two.last(customer.chat_id).text.startswith("Ninapokea malipo")
        await two.send(customer.text("/language"))  # and back, the other way round
        await two.send(customer.press(two.last(customer.chat_id), "English"))
        await one.send(customer.text("/cancel"))
        assert one.last(customer.chat_id).text.startswith("There is nothing to cancel")
    finally:
        await stop_shop(two)
        await stop_shop(one)


async def test_a_second_poller_is_refused_while_the_first_lives(
    settings: Settings,
    postgres_server: PostgresServer,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Store, "stale_after", 2.0)  # a dead poller is noticed sooner, for the test's sake
    polling = with_settings(settings, database_url=postgres_server.new_database_sync())
    first = await start_shop(polling, telegram, sandbox, time.time)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        with pytest.raises(StartupRefused, match=r"polling mode.*long polling must be the only one.*webhook mode"):
            await start_shop(polling, telegram, sandbox, time.time)  # type: ignore[arg-type]
        assert time.monotonic() - started < 5
    finally:
        await stop_shop(first)
    again = await start_shop(polling, telegram, sandbox, time.time)  # type: ignore[arg-type]  # a clean stop: at once
    await stop_shop(again)


async def test_a_killed_pollers_heartbeat_does_not_hold_up_its_restart(
    settings: Settings, postgres_server: PostgresServer, telegram: FakeBotApi, sandbox: IpaySandbox
) -> None:
    import socket

    url = postgres_server.new_database_sync()
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")  # a pid that no longer runs
    await dead.wait()
    store = await Store.open(url)
    store.instance_id = f"{socket.gethostname()}:{dead.pid}:killed"
    await store.heartbeat("polling", time.time())  # as a poller killed a moment ago left it
    await store.close()
    started = time.monotonic()
    shop = await start_shop(dataclasses.replace(settings, database_url=url), telegram, sandbox, time.time)  # type: ignore[arg-type]
    await stop_shop(shop)
    assert time.monotonic() - started < 2


async def test_a_second_instance_on_one_sqlite_file_is_refused(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Store, "stale_after", 2.0)
    webhook = with_settings(settings, database_url="", **WEBHOOK)  # SQLite, whatever the suite runs on
    first = await start_shop(webhook, telegram, sandbox, time.time)  # type: ignore[arg-type]
    try:
        with pytest.raises(StartupRefused, match=r"SQLite file, which serves one process.*DATABASE_URL"):
            await start_shop(webhook, telegram, sandbox, time.time)  # type: ignore[arg-type]
    finally:
        await stop_shop(first)


async def test_an_order_a_live_instance_is_sending_is_not_failed_by_another(
    shared: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The survivor's sweep finishes orders a dead instance left unsent, but not one a live
    instance is still sending (its /transact may be slow): that one is left to its sender
    until the sender stops; then it is failed and told."""
    one = await start_shop(shared, telegram, sandbox, clock)
    two = await start_shop(shared, telegram, sandbox, clock)
    try:
        customer = one.customer()
        await one.type(customer, "/pay", "0712 345 670", "500")
        payments = one.services.payments
        monkeypatch.setattr(payments, "send_prompt_soon", lambda order: None)  # /transact hangs
        await one.send(customer.press(one.last(customer.chat_id), "Confirm"))
        order = await one.only_order(customer.chat_id)
        assert await one.services.store.claim_sending(order.id, clock())  # one is calling /transact
        await one.services.store.heartbeat("webhook", clock() + 70)
        clock.advance(70)  # long past the late-send window
        await two.sweep()
        assert (await two.order(order.id)).status.value == "pending"  # its sender is alive
        monkeypatch.undo()
    finally:
        await stop_shop(one)  # the sender goes (a clean stop gives its claims up at once)
    try:
        await two.sweep()
        assert (await two.order(order.id)).status.value == "failed"
        assert "the bot restarted" in two.last(customer.chat_id).text
    finally:
        await stop_shop(two)


async def test_a_chat_claimed_while_its_worker_finishes_is_still_delivered(
    shared: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notifier is kicked (a sweep, a new notice) while the merchant group's worker sends its
    last waiting message, and its claim reaches the database just after that worker has let the
    chat go and another instance has queued the group a new line: the claim gets the chat. That
    instance must then deliver the line (or let the chat go): the other instances leave a chat
    alone while a live instance claims it, so a claim kept for nobody holds the group's
    messages back for the whole lease (two minutes)."""
    one = await start_shop(shared, telegram, sandbox, clock)
    try:
        store, notifier = one.services.store, one.services.notifier
        claim_chats, release_chat = store.claim_chats, store.release_chat
        released, claimed = asyncio.Event(), asyncio.Event()
        kicked_while_sending = False

        async def claim_after_the_release(now: float, limit: int) -> list[int]:
            if not kicked_while_sending:
                return await claim_chats(now, limit)
            await released.wait()
            chats = await claim_chats(now, limit)
            claimed.set()
            return chats

        async def release_as_another_instance_queues_a_line(chat_id: int) -> None:
            await release_chat(chat_id)
            if not released.is_set():
                await store.queue_notices([Notice(MERCHANT_CHAT, "second line")], clock())
                released.set()
                await claimed.wait()  # the release's answer comes after the claim's

        def kick_while_sending(event: str, message: ChatMessage) -> None:
            nonlocal kicked_while_sending
            if message.text.endswith("first line") and not kicked_while_sending:
                kicked_while_sending = True
                notifier.kick()

        monkeypatch.setattr(store, "claim_chats", claim_after_the_release)
        monkeypatch.setattr(store, "release_chat", release_as_another_instance_queues_a_line)
        telegram.listeners.append(kick_while_sending)
        await store.queue_notices([Notice(MERCHANT_CHAT, "first line")], clock())
        notifier.kick()
        await notifier.wait_idle()
        assert released.is_set()
        lines = [m.text for m in telegram.bot_messages(MERCHANT_CHAT) if m.text.endswith(" line")]
        assert len(lines) == 2 and lines[0].endswith("first line") and lines[1].endswith("second line")
    finally:
        await stop_shop(one)


async def test_two_instances_announce_an_order_in_doubt_once(
    shared: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    """Both instances sweep past the deadline while iPay answers in a shape nobody documents,
    and both read the order before either writes: the payer and the shop are told once."""
    from bot.providers.ipay import IpayMalformedReply
    from bot.sandbox.ipay import Quirk

    one = await start_shop(shared, telegram, sandbox, clock)
    two = await start_shop(shared, telegram, sandbox, clock)
    try:
        sandbox.quirks.add(Quirk.SEARCH_UNKNOWN_SHAPE)
        customer = one.customer()
        order = await one.pay(customer, phone="0712345678")
        clock.advance(601)
        snapshot = await one.order(order.id)
        await asyncio.gather(
            one.services.payments.settle(snapshot, IpayMalformedReply("unknown shape")),
            two.services.payments.settle(snapshot, IpayMalformedReply("unknown shape")),
        )
        for _ in range(3):  # and their sweeps go on, hours apart
            clock.advance(720)
            await one.sweep()
            await two.sweep()
        one.services.notifier.kick()
        await one.settle()
        await two.settle()
        assert sum("can't confirm the payment" in text for text in one.texts(customer.chat_id)) == 1
        assert sum("IN DOUBT" in text for text in one.texts(MERCHANT_CHAT)) == 1
        assert (await two.order(order.id)).in_doubt
    finally:
        await stop_shop(two)
        await stop_shop(one)
