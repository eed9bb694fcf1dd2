"""/status: a chat sees its own orders, and only its own."""

from __future__ import annotations

import pytest

from tests.conftest import Shop, readable


@pytest.fixture(params=["ipay", "daraja"])
def provider(request: pytest.FixtureRequest) -> str:
    """Each test runs on both providers: the behaviour is the same."""
    return str(request.param)


async def test_status_of_an_own_paid_order(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, amount="1,200")
    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    await shop.send(customer.text(f"/status {order.id.lower()}"))
    text = shop.last(customer.chat_id).text
    assert text.startswith(f"Order {readable(order.id)}: ✅ paid")
    assert "Amount: KES 1,200 by M-Pesa" in text and "Phone: 07** ***678" in text
    assert f"Receipt: {paid.receipt_code}" in text and "254712345678" not in text


async def test_another_chats_order_is_not_found(shop: Shop) -> None:
    owner, stranger = shop.customer(501), shop.customer(777)
    order = await shop.pay(owner)
    await shop.send(stranger.text(f"/status {order.id}"))
    assert shop.last(stranger.chat_id).text.startswith("I couldn't find that order in this chat.")
    await shop.send(stranger.text("/status"))
    assert shop.last(stranger.chat_id).text.startswith("This chat has no orders yet.")


async def test_status_alone_lists_the_latest_orders(shop: Shop) -> None:
    customer = shop.customer()
    first = await shop.pay(customer, phone="0712345670", amount="100")
    second = await shop.pay(customer, phone="0722345678", amount="200")
    await shop.send(customer.text("/status"))
    text = shop.last(customer.chat_id).text
    assert text.startswith("Your latest orders:")
    assert text.index(readable(second.id)) < text.index(readable(first.id))
    assert "KES 100 · ⏳ waiting for payment" in text


async def test_status_with_nonsense_is_not_found(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/status 💥'; DROP TABLE orders;--"))
    assert shop.last(customer.chat_id).text.startswith("I couldn't find that order")


async def test_start_and_help_explain_and_menu_is_registered(shop: Shop, provider: str) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/start"))
    intro = {
        "ipay": "I take M-Pesa and Airtel Money payments for Mama Mboga through iPay Africa.",
        "daraja": "I take M-Pesa payments for Mama Mboga.",  # the shop's own M-PESA: nobody in between
    }[provider]
    assert shop.last(customer.chat_id).text.startswith(intro)
    assert [c["command"] for c in shop.telegram.commands] == [
        "pay",
        "status",
        "cancel",
        "help",
        "orders",
        "language",
        "lugha",
    ]
