"""What one chat payment costs in Bot API calls.

Telegram takes about 30 messages a second from a bot, so every call a payment makes caps how
many payments a second the chat can carry. A whole payment (/pay, phone, amount, Confirm, paid)
makes at most six calls to the payer's chat (three questions answered, the button's answer, the
summary edited to "check your phone", the receipt) and one line to the merchant chat: a change
that adds a call fails here.
"""

from __future__ import annotations

from typing import Any

from bot.domain import OrderStatus
from tests.conftest import MERCHANT_CHAT, Shop, readable

MAX_PAYER_CALLS = 6


def _calls_to(shop: Shop, chat_id: int, since: int) -> list[str]:
    """The Bot API methods called about `chat_id` since call number `since` (a callback answer
    names no chat: it counts for the chat whose button was pressed)."""
    calls: list[tuple[str, dict[str, Any]]] = shop.telegram.calls[since:]
    return [
        method
        for method, params in calls
        if str(params.get("chat_id")) == str(chat_id) or (method == "answerCallbackQuery" and chat_id != MERCHANT_CHAT)
    ]


async def test_a_chat_payment_makes_at_most_six_bot_api_calls(shop: Shop) -> None:
    customer = shop.customer()
    before = len(shop.telegram.calls)

    summary = await shop.start_payment(customer, amount="1500")
    await shop.send(customer.press(summary, "Confirm"))
    assert summary.text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 1,500")
    shop.clock.advance(5)
    await shop.sweep()

    order = await shop.only_order(customer.chat_id)
    assert order.status is OrderStatus.PAID
    code, payer = shop.ipay_payment(order.id)
    assert shop.texts(customer.chat_id)[-1] == (
        f"{code} Confirmed. KES 1,500 paid to Mama Mboga from 0712 345 678 ({payer}) "
        f"on 24/11/25 at 7:00 PM. Order {readable(order.id)}."
    )
    payer_calls = _calls_to(shop, customer.chat_id, before)
    assert payer_calls == [
        "sendMessage",  # which phone?
        "sendMessage",  # how much?
        "sendMessage",  # the summary
        "answerCallbackQuery",  # Confirm
        "editMessageText",  # the summary becomes "check your phone"
        "sendMessage",  # the receipt, the one message that says paid
    ]
    assert len(payer_calls) <= MAX_PAYER_CALLS
    assert _calls_to(shop, MERCHANT_CHAT, before) == ["sendMessage"]  # the merchant's line


async def test_the_buttons_left_on_check_your_phone_say_the_order_is_paid(shop: Shop) -> None:
    """The receipt is the one message that says paid: the "check your phone" message keeps its
    buttons, and a press on them, late, changes nothing and says why."""
    customer = shop.customer()
    order = await shop.pay(customer)
    prompt = shop.last(customer.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    receipts = len(shop.texts(customer.chat_id))

    await shop.send(customer.press(prompt, "Cancel this payment"))
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert shop.telegram.callback_answers[-1]["text"] == "This order is already paid."
    await shop.send(customer.press(prompt, "No prompt"))
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert shop.telegram.callback_answers[-1]["text"] == "This order is no longer waiting for a payment."
    assert len(shop.texts(customer.chat_id)) == receipts  # nothing new in the chat
