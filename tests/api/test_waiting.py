"""A till asks once and waits (`GET /api/payments/{id}?wait=N`): it hears the outcome the moment
it is recorded, or "pending" after N seconds, instead of asking again and again."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot.domain import OrderStatus
from bot.web import build_web_app
from tests.conftest import ManualClock, Shop, ShopWith

API_KEY = "shop-till-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


async def _till(shop_with: ShopWith, clock: ManualClock) -> tuple[Shop, httpx.AsyncClient]:
    shop = await shop_with(api_keys=(API_KEY,), port=0)
    web = httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock))
    return shop, httpx.AsyncClient(transport=web, base_url="http://bot", headers=HEADERS)


async def _pay(client: httpx.AsyncClient, phone: str = "0712345678") -> str:
    created = await client.post("/api/payments", json={"phone": phone, "amount": 100})
    assert created.status_code == 201, created.text
    return str(created.json()["order_id"])


async def test_a_waiting_till_hears_paid_the_moment_it_is_recorded(shop_with: ShopWith, clock: ManualClock) -> None:
    shop, client = await _till(shop_with, clock)
    async with client:
        order_id = await _pay(client)
        await shop.settle()
        asked = time.monotonic()
        waiting = asyncio.create_task(client.get(f"/api/payments/{order_id}", params={"wait": "20"}))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # pending: the question waits
        clock.advance(5)
        await shop.sweep()  # the payer approved: the lookup records the payment
        answer = await asyncio.wait_for(waiting, 2)
    assert answer.json()["status"] == "paid"
    assert answer.json()["receipt_code"]
    assert time.monotonic() - asked < 2


async def test_a_payment_still_pending_is_said_so_when_the_wait_is_over(
    shop_with: ShopWith, clock: ManualClock
) -> None:
    shop, client = await _till(shop_with, clock)
    async with client:
        order_id = await _pay(client, phone="0712345674")  # the payer never answers
        await shop.settle()
        asked = time.monotonic()
        answer = await client.get(f"/api/payments/{order_id}", params={"wait": "0.3"})
    assert answer.status_code == 200
    assert answer.json()["status"] == "pending"
    assert 0.3 <= time.monotonic() - asked < 1.5


async def test_an_outcome_another_instance_records_is_heard_at_the_next_recheck(
    shop_with: ShopWith, clock: ManualClock
) -> None:
    """On PostgreSQL another instance may record the outcome: this one hears nothing, so the waiting
    question reads the order again every second."""
    shop, client = await _till(shop_with, clock)
    async with client:
        order_id = await _pay(client, phone="0712345674")
        await shop.settle()
        waiting = asyncio.create_task(client.get(f"/api/payments/{order_id}", params={"wait": "20"}))
        await asyncio.sleep(0.2)
        # Recorded straight in the store, as another process would: no word reaches this one.
        assert await shop.services.store.finalise(order_id, OrderStatus.FAILED, clock(), [], reason="cancelled")
        answer = await asyncio.wait_for(waiting, 2.5)
    assert answer.json()["status"] == "failed"


async def test_closing_answers_every_waiting_till_at_once(shop_with: ShopWith, clock: ManualClock) -> None:
    shop, client = await _till(shop_with, clock)
    async with client:
        order_id = await _pay(client, phone="0712345674")
        await shop.settle()
        waiting = asyncio.create_task(client.get(f"/api/payments/{order_id}", params={"wait": "20"}))
        await asyncio.sleep(0.2)
        shop.services.payments.changes.close()  # the web server is stopping
        answer = await asyncio.wait_for(waiting, 1)
        again = await client.get(f"/api/payments/{order_id}", params={"wait": "20"})  # no wait once closed
    assert answer.json()["status"] == again.json()["status"] == "pending"


@pytest.mark.parametrize("wait", ["soon", "-1", "31", "nan", "inf", ""])
async def test_a_wait_that_is_not_seconds_up_to_30_is_refused(
    shop_with: ShopWith, clock: ManualClock, wait: str
) -> None:
    _, client = await _till(shop_with, clock)
    async with client:
        order_id = await _pay(client)
        answer = await client.get(f"/api/payments/{order_id}", params={"wait": wait})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_wait"
