"""What a status question costs the store: a till asks every few moments while the payer
reaches for the phone, so each question is one read while the payment is pending."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.store import Store
from bot.web import build_web_app
from tests.conftest import ManualClock, ShopWith

API_KEY = "shop-till-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


class ReadCounter:
    """Counts the store's reads outside a transaction (every `get_*` goes through `_rows`)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        monkeypatch.setattr(store, "_rows", self._counted(store._rows))

    def _counted(self, read: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await read(*args, **kwargs)

        return counted


async def test_asking_about_a_pending_payment_is_one_read(
    shop_with: ShopWith, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await shop_with(api_keys=(API_KEY,), port=0, api_refunds=True)
    web = httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock))
    async with httpx.AsyncClient(transport=web, base_url="http://bot") as client:
        created = await client.post("/api/payments", json={"phone": "0712345678", "amount": 100}, headers=HEADERS)
        await shop.settle()
        reads = ReadCounter(shop.services.store, monkeypatch)
        pending = await client.get(f"/api/payments/{created.json()['order_id']}", headers=HEADERS)
    assert pending.json()["status"] == "pending"
    assert pending.json()["refund"] is None  # no money came: nothing to refund, nothing to read
    assert reads.count == 1


async def test_a_paid_payment_still_shows_its_refund(
    shop_with: ShopWith, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await shop_with(api_keys=(API_KEY,), port=0, api_refunds=True)
    web = httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock))
    async with httpx.AsyncClient(transport=web, base_url="http://bot") as client:
        created = await client.post("/api/payments", json={"phone": "0712345678", "amount": 100}, headers=HEADERS)
        order_id = created.json()["order_id"]
        await shop.settle()
        clock.advance(5)
        await shop.sweep()
        refund_headers = {**HEADERS, "Idempotency-Key": "refund-1"}
        refunded = await client.post(f"/api/payments/{order_id}/refund", headers=refund_headers)
        assert refunded.status_code in (200, 201, 202), refunded.text
        paid = await client.get(f"/api/payments/{order_id}", headers=HEADERS)
    assert paid.json()["status"] == "paid"
    assert paid.json()["refund"]["state"] == "sending"  # asked: its state shows with the payment
