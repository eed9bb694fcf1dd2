"""iPay's callback: a hint that makes the bot look the order up at once, never a verdict."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.config import Settings
from bot.domain import OrderStatus
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.web import build_web_app
from tests.conftest import ManualClock, Shop, ShopWith, start_shop, stop_shop, with_settings

CALLBACK = "https://shop.example/ipay/callback"


@pytest.fixture
async def shop_with_callback(shop_with: ShopWith, sandbox: IpaySandbox) -> AsyncIterator[Shop]:
    running = await shop_with(ipay_callback_url=CALLBACK, port=0)
    web = build_web_app(running.services, running.app)
    sandbox.callback_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=web))
    yield running
    await sandbox.callback_client.aclose()


async def _callback(shop: Shop, **params: str) -> httpx.Response:
    assert shop.sandbox.callback_client is not None
    return await shop.sandbox.callback_client.get(CALLBACK, params=params)


async def test_a_callback_tells_the_chat_without_waiting_for_the_poll(shop_with_callback: Shop) -> None:
    shop = shop_with_callback
    customer = shop.customer()
    order = await shop.pay(customer)
    assert shop.sandbox.transactions[order.id].callback_url == CALLBACK  # cbk was sent to iPay
    shop.clock.advance(3)  # the payer answers; the next poll is still 2 s away
    assert await shop.sandbox.deliver_callbacks() == 1
    await shop.settle()
    assert shop.sandbox.callback_replies == [(order.id, 200)]
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


async def test_a_forged_success_changes_nothing(shop_with_callback: Shop) -> None:
    shop = shop_with_callback
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")  # the payer has not answered
    reply = await _callback(shop, id=order.id, status="aei7p7yrx4ae34", txncd="FAKE123456", mc="500.00")
    assert reply.status_code == 200 and reply.json() == {"order_id": order.id, "status": "pending", "checked": True}
    assert (await shop.order(order.id)).status is OrderStatus.PENDING


async def test_unknown_malformed_and_replayed_callbacks_get_4xx(shop_with_callback: Shop) -> None:
    shop = shop_with_callback
    customer = shop.customer()
    order = await shop.pay(customer)
    assert (await _callback(shop, id="NOSUCHORDER", status="aei7p7yrx4ae34")).status_code == 404
    assert (await _callback(shop, id=order.id, status="paid-trust-me")).status_code == 400
    assert (await _callback(shop, status="aei7p7yrx4ae34")).status_code == 400
    assert (await _callback(shop, id="../../etc", status="aei7p7yrx4ae34")).status_code == 400
    shop.clock.advance(3)
    await shop.sandbox.deliver_callbacks()
    await shop.settle()
    told = shop.texts(customer.chat_id)
    replay = await _callback(shop, **shop.sandbox.callback_query(shop.sandbox.transactions[order.id]))
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "already_settled"
    assert shop.texts(customer.chat_id) == told


async def test_a_burst_of_callbacks_makes_one_lookup(shop_with_callback: Shop) -> None:
    shop = shop_with_callback
    order = await shop.pay(shop.customer(), phone="0712345670")
    searches = shop.sandbox.stats.calls.get("/transaction/search", 0)
    replies = [await _callback(shop, id=order.id, status="bdi6p2yy76etrs") for _ in range(5)]
    assert [r.status_code for r in replies] == [200, 202, 202, 202, 202]
    assert shop.sandbox.stats.calls["/transaction/search"] == searches + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_bot_serves_the_callback_on_port(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hooks/ipay"
    shop = await start_shop(with_settings(settings, ipay_callback_url=url, port=port), telegram, sandbox, clock)
    sandbox.callback_client = httpx.AsyncClient()
    try:
        customer = shop.customer()
        order = await shop.pay(customer)
        clock.advance(3)
        await sandbox.deliver_callbacks()
        await shop.settle()
        assert sandbox.callback_replies == [(order.id, 200)]
        assert " Confirmed. KES " in shop.last(customer.chat_id).text
    finally:
        await sandbox.callback_client.aclose()
        await stop_shop(shop)
