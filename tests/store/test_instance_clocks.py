"""Several instances on one PostgreSQL database whose clocks disagree, and a prompt held up on
its way to iPay: an order a live instance is sending is never failed by another, and an order
another instance failed ("nothing was charged") is never pushed after all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import Update

from bot.config import Settings
from bot.domain import Notice, Order
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi, TelegramUser
from bot.store import Store
from tests.conftest import ManualClock, Shop, start_shop, stop_shop, with_settings
from tests.postgres_server import PostgresServer

WEBHOOK = dict(webhook_url="https://bot.example", webhook_secret="instances-secret-0123456789", port=0)
NOT_SENT = "the bot restarted"  # how a failed unsent order is told ("... nothing was charged")


class Skewed(ManualClock):
    """Another host's clock: `base`'s time, `skew` seconds off."""

    def __init__(self, base: ManualClock, skew: float) -> None:
        super().__init__()
        self.base, self.skew = base, skew

    def __call__(self) -> float:
        return self.base() + self.skew


@pytest.fixture
def shared(settings: Settings, postgres_server: PostgresServer) -> Settings:
    return with_settings(settings, database_url=postgres_server.new_database_sync(), **WEBHOOK)


@pytest.fixture
def real_time(clock: ManualClock) -> ManualClock:
    """The manual clock set to now: the database's clock is the real one."""
    clock.now = time.time()
    return clock


class HeldTransact:
    """An instance's /transact calls wait until released (a slow iPay, a queue for a call slot)."""

    def __init__(self, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.released = asyncio.Event(), asyncio.Event()
        client = shop.services.payments._provider
        initiate = client.initiate

        async def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            await self.released.wait()
            return await initiate(*args, **kwargs)

        monkeypatch.setattr(client, "initiate", held)
        HELD.append(self)


HELD: list[HeldTransact] = []


async def stop_shops(*shops: Shop) -> None:
    """Whatever a test asserted, every held /transact is let go before its bot stops."""
    while HELD:
        HELD.pop().released.set()
    for shop in shops:
        await stop_shop(shop)


async def confirm_held(shop: Shop, held: HeldTransact) -> tuple[TelegramUser, Order]:
    """A payer confirms on `shop`, whose /transact is held: returns once it is on its way."""
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712 345 670", "500")
    confirm = customer.press(shop.last(customer.chat_id), "Confirm")
    await shop.app.process_update(Update.de_json(confirm, shop.app.bot))
    await asyncio.wait_for(held.entered.wait(), 5)
    return customer, await shop.only_order(customer.chat_id)


@pytest.fixture
async def two_shops(
    shared: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, real_time: ManualClock
) -> AsyncIterator[tuple[Shop, Shop]]:
    """Instance one on the test's clock, instance two on a clock 10 s ahead of it."""
    one = await start_shop(shared, telegram, sandbox, real_time)
    two = await start_shop(shared, telegram, sandbox, Skewed(real_time, 10.0))
    try:
        yield one, two
    finally:
        await stop_shops(two, one)


async def test_a_clock_ahead_does_not_fail_an_order_a_live_instance_is_sending(
    two_shops: tuple[Shop, Shop], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = two_shops
    held = HeldTransact(one, monkeypatch)
    customer, order = await confirm_held(one, held)
    await two.sweep()  # its clock says the order is 10 s old and one's heartbeat 10 s stale
    assert (await two.order(order.id)).status.value == "pending"
    held.released.set()
    await one.settle()
    assert (await one.order(order.id)).prompt_sent_at is not None
    assert not any(NOT_SENT in text for text in one.texts(customer.chat_id))


async def test_a_clock_ahead_does_not_take_a_chat_another_instance_is_delivering(
    shared: Settings, real_time: ManualClock
) -> None:
    one, two = await Store.open(shared.database_url), await Store.open(shared.database_url)
    try:
        now = real_time()
        await one.queue_notices([Notice(5, "one")], now)
        await one.heartbeat("webhook", now)
        assert await one.claim_chats(now, 10) == [5]
        await two.heartbeat("webhook", now + 10)
        assert await two.claim_chats(now + 10, 10) == []  # one's heartbeat is fresh by the database's clock
        assert await one.renew_chat(5, now)
    finally:
        await one.close()
        await two.close()


async def test_a_send_held_past_its_claim_is_not_failed_while_its_sender_lives(
    shared: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    real_time: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sending claim is renewed while the send goes on, however long iPay keeps it waiting."""
    monkeypatch.setattr(Store, "send_lease", 1.0, raising=False)
    one = await start_shop(shared, telegram, sandbox, real_time)
    two = await start_shop(shared, telegram, sandbox, real_time)
    try:
        held = HeldTransact(one, monkeypatch)
        customer, order = await confirm_held(one, held)
        await asyncio.sleep(2.5)  # past the 1 s claim by the database's clock
        real_time.advance(130)  # and past the 120 s one by the instances'
        await two.sweep()
        assert (await two.order(order.id)).status.value == "pending"
        held.released.set()
        await one.settle()
        assert (await one.order(order.id)).prompt_sent_at is not None
        assert not any(NOT_SENT in text for text in one.texts(customer.chat_id))
    finally:
        await stop_shops(two, one)


async def test_an_order_failed_by_another_instance_is_never_pushed(
    two_shops: tuple[Shop, Shop], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its sender's heartbeat stopped (a stalled process), so another instance failed the order
    and told the payer nothing was charged: when /transact answers at last, no push goes out."""
    one, two = two_shops
    monkeypatch.setattr(Store, "stale_after", 1.0)
    held = HeldTransact(one, monkeypatch)
    customer, order = await confirm_held(one, held)

    async def silent(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(one.services.store, "heartbeat", silent)
    await asyncio.sleep(1.5)
    one.clock.advance(70)  # past the late-send window
    await two.sweep()
    assert (await two.order(order.id)).status.value == "failed"
    held.released.set()
    await one.settle()
    assert one.sandbox.stats.calls.get("/transact/push/mpesa", 0) == 0
    assert (await one.order(order.id)).status.value == "failed"
    await two.settle()
    assert any(NOT_SENT in text for text in one.texts(customer.chat_id))  # and that stays true
