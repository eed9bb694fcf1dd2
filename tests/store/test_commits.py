"""How many times an API payment waits for the disk, from the request to "paid".

Every commit that waits for the disk is a few milliseconds during which no other write of the
process moves (one SQLite file, one writer), so this count bounds the payments a second one
instance can take. It may shrink; it must not grow unnoticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bot.store import Store
from bot.store.sqlite import SqliteStore
from bot.web import build_web_app
from tests.conftest import ManualClock, Shop, ShopWith

API_KEY = "shop-till-key-0123456789abcdef"
# The order (before iPay hears of it), what /transact answered (before the push), the payment
# recorded. (The claim to send it and the prompt sent are not flushed: `Store.claim_sending` and
# `Store.record_prompt_sent` say why.)
FLUSHED_COMMITS_PER_API_PAYMENT = 3
PAYMENTS_TOGETHER = 20


class FlushCounter:
    """Counts the store's writes that wait for the disk: whole transactions, single statements and
    guarded writes (a write inside another counts once); drafts and heartbeats do not wait."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._depth = 0
        for name in ("_write", "_guarded_write"):
            monkeypatch.setattr(store, name, self._counted(getattr(store, name)))
        # The sweep claims every due order in one transaction: a share of one per sweep, not one a payment.
        monkeypatch.setattr(store, "claim_due_orders", self._counted(store.claim_due_orders, counts=False))
        transaction = store._transaction

        @asynccontextmanager
        async def counted_transaction(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            flushed = kwargs.get("flush", True)
            self._enter(flushed)
            try:
                async with transaction(*args, **kwargs) as tx:
                    yield tx
            finally:
                self._depth -= 1

        monkeypatch.setattr(store, "_transaction", counted_transaction)

    def _enter(self, flushed: bool) -> None:
        if self._depth == 0 and flushed:
            self.count += 1
        self._depth += 1

    def _counted(self, write: Callable[..., Any], *, counts: bool = True) -> Callable[..., Any]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._enter(counts)
            try:
                return await write(*args, **kwargs)
            finally:
                self._depth -= 1

        return counted


async def pay_through_the_api(shop: Shop, clock: ManualClock, phones: list[str]) -> tuple[list[int], list[str]]:
    """Tills ask for payments from `phones` at once; the payers approve and the sweep finds the
    payments. What each request to create one answered, and each payment's status after."""
    web = httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock))
    async with httpx.AsyncClient(transport=web, base_url="http://bot") as client:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        replies = await asyncio.gather(
            *(client.post("/api/payments", json={"phone": phone, "amount": 100}, headers=headers) for phone in phones)
        )
        await shop.settle()
        clock.advance(5)
        await shop.sweep()  # the payers approved: the lookups find the payments
        paid = [await client.get(f"/api/payments/{reply.json()['order_id']}", headers=headers) for reply in replies]
    return [reply.status_code for reply in replies], [reply.json()["status"] for reply in paid]


async def test_an_api_payment_waits_for_the_disk_no_more_often_than_it_did(
    shop_with: ShopWith, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await shop_with(api_keys=(API_KEY,), port=0)
    counter = FlushCounter(shop.services.store, monkeypatch)
    created, statuses = await pay_through_the_api(shop, clock, ["0712345678"])
    assert created == [201]
    assert statuses == ["paid"]
    assert counter.count <= FLUSHED_COMMITS_PER_API_PAYMENT, counter.count


async def test_api_payments_arriving_together_share_their_waits_for_the_disk(
    shop_with: ShopWith, clock: ManualClock
) -> None:
    """Twenty tills asking at once: their orders, answers and payments share commits, so
    the disk is waited on fewer times than once a write."""
    shop = await shop_with(api_keys=(API_KEY,), port=0)
    store = shop.services.store
    assert isinstance(store, SqliteStore)
    before = store.durable_commits
    phones = [f"0712{number:05d}8" for number in range(PAYMENTS_TOGETHER)]
    created, statuses = await pay_through_the_api(shop, clock, phones)
    assert created == [201] * PAYMENTS_TOGETHER
    assert statuses == ["paid"] * PAYMENTS_TOGETHER
    commits = store.durable_commits - before
    assert commits <= PAYMENTS_TOGETHER * FLUSHED_COMMITS_PER_API_PAYMENT / 4, commits
