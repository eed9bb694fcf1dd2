"""Corner cases of privacy, groups and logging, each as the shortest scenario that shows it (the
random run, `tests/test_random_run.py`, looks for them at large).

A case the bot does not handle yet is marked `xfail(strict=True)`: handling it makes it pass,
and strict makes that pass fail the suite until the mark is removed.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from telegram import Update

from bot.config import Settings
from bot.domain import OrderStatus
from bot.sandbox.ipay import Fault, IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import ManualClock, Shop, ShopWith, start_shop, stop_shop, with_settings
from tests.test_random_run import WatchedTransport

ADMIN = 900
CASHIER = 800  # staff: no per-person limit on prompts
GROUP = -1001


@pytest.fixture
async def admin_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(admin_ids=frozenset({ADMIN}))


async def _start(
    settings: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Shop:
    """`start_shop` without the rate limiter (it waits in wall-clock time: a group gets 20
    messages a minute), optionally with a watched iPay transport."""
    return await start_shop(settings, telegram, sandbox, clock, rate_limit=False, ipay_transport=transport)


async def test_a_busy_phone_does_not_show_another_chats_order_id(shop: Shop) -> None:
    first, second = shop.customer(501, "Wanjiru"), shop.customer(502, "Otieno")
    order = await shop.pay(first, phone="0722111330")  # …0: the prompt waits on the phone
    await shop.type(second, "/pay", "0722111330")
    refusal = shop.last(second.chat_id).text
    assert refusal.startswith("A payment prompt for 07** ***330 is still waiting for an answer. Please answer it")
    assert order.id not in refusal and order.id[:4] not in refusal


async def test_a_command_for_another_bot_during_pay_in_a_group_is_left_alone(shop: Shop) -> None:
    member = shop.customer(501, "Wanjiru", chat_id=GROUP)
    await shop.type(member, "/pay")
    before = len(shop.telegram.bot_messages(GROUP))
    await shop.type(member, "/status@otherbot")
    assert len(shop.telegram.bot_messages(GROUP)) == before, shop.texts(GROUP)[before:]


async def test_orders_50_after_a_busy_day_is_answered(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A cashier takes 50 payments in the shop's group, then asks for the group's last 50."""
    shop = await _start(with_settings(settings, staff_ids=frozenset({CASHIER})), telegram, sandbox, clock)
    try:
        cashier = shop.customer(CASHIER, "Cashier", chat_id=GROUP)
        for n in range(50):
            await shop.pay(cashier, phone=f"07221{n:05d}", amount="150000")
        await shop.type(cashier, "/orders 50")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        report = [
            m.text for m in shop.telegram.bot_messages(GROUP) if m.text.startswith("Orders (latest 50, this chat):")
        ]
        assert len(report) >= 2 and all(len(part) <= 4096 for part in report)  # in parts, under one heading
        assert sum(part.count("\n") for part in report) == 50  # every order, once
    finally:
        await stop_shop(shop)


async def test_admin_orders_in_a_group_shows_no_other_chats_orders(admin_shop: Shop) -> None:
    customer = admin_shop.customer(501, "Wanjiru")
    order = await admin_shop.pay(customer, phone="0722111337")
    admin = admin_shop.customer(ADMIN, "Boss", chat_id=GROUP)
    await admin_shop.type(admin, "/orders")
    assert order.id not in "\n".join(admin_shop.texts(GROUP))


async def test_export_of_the_widest_dates_logs_no_error(admin_shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    admin = admin_shop.customer(ADMIN, "Boss")
    await admin_shop.type(admin, "/export 0001-01-01 9999-12-31")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_help_from_a_group_posting_as_itself_logs_no_error(shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    group = {"id": GROUP, "type": "supergroup", "title": "Shop group"}
    message = {
        "message_id": 1,
        "date": 0,
        "chat": group,
        "sender_chat": group,
        "text": "/help",
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
    }
    await shop.send({"update_id": 1, "message": message})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("fault", [Fault.TIMEOUT, None], ids=["lookup times out", "lookup answers not paid yet"])
async def test_paid_after_cancel_during_a_lookup_is_told(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, fault: Fault | None
) -> None:
    """The payer cancels while a lookup is in flight, the prompt is still on the phone, and the
    holder pays a few seconds later: the cancel message promised to tell them."""
    transport = WatchedTransport(sandbox.transport())
    shop = await _start(settings, telegram, sandbox, clock, transport)
    app = shop.app
    try:
        customer = shop.customer()
        order = await shop.pay(customer, phone="0722111330")  # …0: waits for the holder
        clock.advance(5)
        if fault is not None:
            sandbox.faults.fail_next("/transaction/search", fault)
        gate = asyncio.Event()
        transport.gate = gate
        sweep = asyncio.ensure_future(shop.services.poller.sweep())
        await transport.held.wait()  # the lookup is in flight...
        cancel = customer.press(shop.last(customer.chat_id), "Cancel this payment")
        await app.process_update(Update.de_json(cancel, app.bot))  # ...when the payer cancels in the chat
        transport.gate = None
        gate.set()
        await sweep  # ...and then the lookup answers
        await shop.settle()
        assert (await shop.order(order.id)).status is OrderStatus.WITHDRAWN
        clock.advance(10)
        await shop.sweep()
        assert sandbox.answer("254722111330", approve=True)  # 15 s after the prompt, 10 s after the cancel
        for _ in range(12):
            clock.advance(60)
            await shop.sweep()
        assert (await shop.order(order.id)).status is OrderStatus.PAID
        assert " Confirmed. KES " in shop.texts(customer.chat_id)[-1]
    finally:
        await stop_shop(shop)
