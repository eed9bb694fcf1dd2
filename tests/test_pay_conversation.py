"""The /pay conversation, driven as a customer in Telegram drives it."""

from __future__ import annotations

import pytest

from bot.domain import Network, OrderStatus
from tests.conftest import MERCHANT_CHAT, Shop


async def test_happy_path_mpesa_from_pay_to_receipt(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/pay"))
    ask = shop.last(customer.chat_id)
    assert "Which phone" in ask.text
    assert ask.reply_keyboard[0][0]["request_contact"] is True

    await shop.send(customer.text("0712 345 678"))
    assert "254712345678 (M-Pesa)" in shop.last(customer.chat_id).text

    await shop.send(customer.text("KES 1,500"))
    summary = shop.last(customer.chat_id)
    assert "Amount: KES 1,500" in summary.text and "Pay with: M-Pesa" in summary.text
    assert summary.button_labels == ["✅ Confirm", "🔁 Use Airtel Money instead", "✖️ Cancel"]

    await shop.send(customer.press(summary, "Confirm"))
    order = await shop.only_order(customer.chat_id)
    assert order.status is OrderStatus.PENDING and order.amount == 1500 and order.network is Network.MPESA
    # The summary became the "check your phone" message, edited in place, buttons gone.
    assert summary.text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 1,500")
    assert order.id in summary.text and summary.buttons == []
    assert shop.sandbox.open_prompt("254712345678") is not None

    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID
    assert paid.paid_amount == 1500 and paid.receipt_code and len(paid.receipt_code) == 10
    receipt = shop.last(customer.chat_id)
    assert receipt is not summary
    assert receipt.text.startswith("✅ Paid: KES 1,500 by M-Pesa.")
    assert f"Receipt: {paid.receipt_code}" in receipt.text and f"Order: {order.id}" in receipt.text
    merchant = shop.last(MERCHANT_CHAT).text
    assert merchant.startswith("PAID · KES 1,500 · M-Pesa · 2547****678") and order.id in merchant
