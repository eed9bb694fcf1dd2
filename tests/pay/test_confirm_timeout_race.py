"""A Confirm against the conversation's timeout: one of the two wins, and the payer is told only
what happened. Either the order is written (and the draft ended) and the timeout finds nothing
to drop, or the timeout drops the draft and the Confirm writes no order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.config import Settings
from bot.pay.sentences import conversation_timed_out
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import Shop, WallClock, start_shop, stop_shop, with_settings

TIMED_OUT = conversation_timed_out()


def told(shop: Shop, chat_id: int) -> tuple[bool, bool]:
    """(told the conversation timed out, told to check the phone)."""
    texts = [m.text for m in shop.telegram.messages(chat_id)]
    return any(TIMED_OUT in t for t in texts), any("Check your phone" in t for t in texts)


async def one_outcome(shop: Shop, chat_id: int) -> None:
    """Exactly one of: the order written and its prompt sent, or the timeout told and no order."""
    orders = await shop.services.store.latest_chat_orders(chat_id, 10)
    timed_out, check_phone = told(shop, chat_id)
    transacts = shop.sandbox.stats.calls.get("/transact", 0)
    if orders:
        assert len(orders) == 1 and check_phone and not timed_out and transacts == 1
    else:
        assert timed_out and not check_phone and transacts == 0


async def test_a_confirm_pressed_as_the_real_sweep_times_it_out_is_either_sent_or_timed_out(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox
) -> None:
    """The real clock, the real sweep (every 0.75 s for a 3 s timeout), and Telegram taking 1.6 s
    to answer the button pressed 2.2 s into the step: a sweep falls while the Confirm waits."""
    sandbox.clock = time.time
    telegram.slow["answerCallbackQuery"] = 1.6
    shop = await start_shop(with_settings(settings, conversation_timeout_seconds=3.0), telegram, sandbox, WallClock())
    try:
        customer = shop.customer()
        summary = await shop.start_payment(customer)
        shown_at = time.monotonic()
        await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - shown_at)))
        await shop.send(customer.press(summary, "✅"))
        await asyncio.sleep(1.6)  # a sweep or two more
        await shop.settle()
        await one_outcome(shop, customer.chat_id)
    finally:
        await stop_shop(shop)


def sweep_first(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeout falls at the moment the order is written: just before, the clock passes the
    timeout and the conversation sweep (the real job) runs."""
    payments = shop.services.payments
    create_order: Callable[..., Awaitable[Any]] = payments.create_order

    async def after_the_sweep(*args: Any, **kwargs: Any) -> Any:
        shop.clock.advance(shop.services.conversations.timeout_seconds + 1)
        await shop.conversation_sweep()
        return await create_order(*args, **kwargs)

    monkeypatch.setattr(payments, "create_order", after_the_sweep)


async def test_a_confirm_button_the_timeout_beat_writes_no_order(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer)
    sweep_first(shop, monkeypatch)
    await shop.send(customer.press(summary, "✅"))
    await one_outcome(shop, customer.chat_id)
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 10) == []
    assert TIMED_OUT in shop.last(customer.chat_id).text  # and nothing said after it


async def test_a_typed_yes_the_timeout_beat_writes_no_order(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    customer = shop.customer()
    await shop.start_payment(customer)
    sweep_first(shop, monkeypatch)
    await shop.type(customer, "yes")
    await one_outcome(shop, customer.chat_id)
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 10) == []
    assert TIMED_OUT in shop.last(customer.chat_id).text


async def test_a_confirm_that_wins_is_not_timed_out_by_the_sweep_after_it(shop: Shop) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer)
    shop.clock.advance(shop.services.conversations.timeout_seconds - 1)
    await shop.send(customer.press(summary, "✅"))
    shop.clock.advance(2)
    await shop.conversation_sweep()
    await one_outcome(shop, customer.chat_id)
