"""An accepted order is never left to expire silently: the process may die after the order
is written and before (or while) its prompt is sent. After a restart each such order is
sent late while the payer still waits, or failed and told, and never prompted twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bot.domain import Order, OrderStatus
from bot.orders.service import PaymentService
from bot.sandbox.telegram import TelegramUser
from bot.web import build_web_app
from tests.conftest import Shop, ShopWith, start_shop, stop_shop

API_KEY = "shop-till-key-0123456789abcdef"


async def _confirm_then_die(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, dies_in: Any = None
) -> tuple[TelegramUser, Order]:
    """Run /pay to Confirm; the process "dies" where `dies_in` stops (default: before /transact)."""
    customer = shop.customer()
    with monkeypatch.context() as patch:
        patch.setattr(
            PaymentService,
            "send_prompt_soon",
            lambda self, order: self._background.spawn(dies_in(self, order)) if dies_in else None,
        )
        order = await shop.pay(customer, phone="0712345678")
    return customer, order


async def _restart(shop: Shop) -> Shop:
    """Stop the bot and start a new one on the same database (the fixture stops the new one)."""
    settings = shop.services.settings
    await stop_shop(shop)
    shop.app = (await start_shop(settings, shop.telegram, shop.sandbox, shop.clock)).app
    return shop


@pytest.mark.parametrize("waited", [6, 60])
async def test_an_order_never_sent_is_sent_after_a_restart_while_the_payer_waits(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, waited: float
) -> None:
    customer, order = await _confirm_then_die(shop, monkeypatch)
    assert order.id not in shop.sandbox.transactions
    shop.clock.advance(waited)
    restarted = await _restart(shop)
    await restarted.sweep()
    sent = await restarted.order(order.id)
    assert sent.status is OrderStatus.PENDING and sent.prompt_sent_at is not None
    assert shop.sandbox.transactions[order.id].prompt is not None
    assert shop.sandbox.stats.calls["/transact"] == 1
    assert restarted.last(customer.chat_id).text.startswith("📲 Check your phone")
    shop.clock.advance(5)
    await restarted.sweep()
    assert (await restarted.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in restarted.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_an_order_never_sent_and_too_old_to_send_is_failed_and_told(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, order = await _confirm_then_die(shop, monkeypatch)
    shop.clock.advance(61)  # past the late-send window: the payer has given up waiting
    restarted = await _restart(shop)
    await restarted.sweep()
    assert (await restarted.order(order.id)).status is OrderStatus.FAILED
    told = restarted.last(customer.chat_id)
    assert told.text.startswith(
        "❌ The payment did not go through: the bot restarted before the prompt was sent, so no prompt was sent "
        "and nothing was charged."
    )
    assert told.buttons == [[("🔁 Send the prompt again", f"order:retry:{order.id}")]]
    assert order.id not in shop.sandbox.transactions  # iPay never heard of it


async def _transact_then_die(service: PaymentService, order: Order) -> None:
    """The process dies after iPay answered /transact and before the answer was recorded."""
    assert await service._store.claim_sending(order.id, service.now())
    await service._provider.initiate(order.id, order.amount, order.phone)


async def _record_then_die(service: PaymentService, order: Order) -> None:
    """The process dies after recording /transact's answer, just before the push."""
    assert await service._store.claim_sending(order.id, service.now())
    session = await service._provider.initiate(order.id, order.amount, order.phone)
    assert await service._store.record_session(order.id, session.sid, session.account, session.paybills)


async def test_a_crash_between_transact_and_recording_its_answer_never_prompts(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, order = await _confirm_then_die(shop, monkeypatch, dies_in=_transact_then_die)
    assert shop.sandbox.transactions[order.id].prompt is None
    restarted = await _restart(shop)
    shop.clock.advance(6)  # still young, but /transact was already asked: never asked twice
    await restarted.sweep()
    assert (await restarted.order(order.id)).status is OrderStatus.FAILED
    assert "nothing was charged" in restarted.last(customer.chat_id).text
    assert shop.sandbox.stats.calls["/transact"] == 1
    assert shop.sandbox.transactions[order.id].prompt is None  # no push, so no prompt, ever


async def test_a_crash_just_before_the_push_is_watched_and_never_pushed_twice(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, order = await _confirm_then_die(shop, monkeypatch, dies_in=_record_then_die)
    restarted = await _restart(shop)
    shop.clock.advance(6)
    await restarted.sweep()
    watched = await restarted.order(order.id)
    assert watched.status is OrderStatus.PENDING and watched.prompt_sent_at is not None
    assert watched.paybill_account and dict(watched.paybill_numbers)["MPESA"] == "261144"
    assert restarted.last(customer.chat_id).text.startswith("⏳ iPay did not confirm that the prompt reached")
    shop.clock.advance(600)
    await restarted.sweep()
    assert (await restarted.order(order.id)).status is OrderStatus.EXPIRED
    assert shop.sandbox.stats.calls.get("/transact/push/mpesa", 0) == 0


async def test_an_api_payment_whose_prompt_record_a_power_cut_lost_is_watched_and_paid(
    shop_with: ShopWith, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record that the push went out does not wait for the disk on an API order: a power cut
    may lose it. What remains is a pushed order with no prompt recorded, and after the restart
    its payment is still found and the till told "paid"."""
    shop = await shop_with(api_keys=(API_KEY,))

    async def lost_to_a_power_cut(*args: Any) -> bool:
        return True  # committed without waiting for the disk, then lost with the power

    headers = {"Authorization": f"Bearer {API_KEY}"}
    with monkeypatch.context() as patch:
        patch.setattr(shop.services.store, "record_prompt_sent", lost_to_a_power_cut)
        async with _till(shop) as till:
            created = await till.post("/api/payments", json={"phone": "0712345678", "amount": 250}, headers=headers)
        await shop.settle()
    order_id = created.json()["order_id"]
    assert shop.sandbox.transactions[order_id].prompt is not None  # the push went out
    assert (await shop.order(order_id)).prompt_sent_at is None
    restarted = await _restart(shop)
    shop.clock.advance(6)
    await restarted.sweep()  # recovery watches it as a push that may have gone out
    shop.clock.advance(5)
    await restarted.sweep()  # the payer approved: the lookup finds the payment
    async with _till(restarted) as till:
        status = (await till.get(f"/api/payments/{order_id}", headers=headers)).json()
    assert status["status"] == "paid" and status["amount"] == 250
    assert shop.sandbox.stats.calls["/transact/push/mpesa"] == 1


@asynccontextmanager
async def _till(shop: Shop) -> AsyncIterator[httpx.AsyncClient]:
    """A till's HTTP client on the shop's REST API."""
    web = httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=shop.clock))
    async with httpx.AsyncClient(transport=web, base_url="http://bot") as client:
        yield client


async def test_sending_is_claimed_so_two_senders_make_one_prompt(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    _customer, order = await _confirm_then_die(shop, monkeypatch)
    service = shop.services.payments
    import asyncio

    await asyncio.gather(service.send_prompt(order), service.send_prompt(order))
    assert shop.sandbox.stats.calls["/transact"] == 1
    assert shop.sandbox.stats.calls["/transact/push/mpesa"] == 1


async def test_a_sent_order_keeps_the_account_and_paybills_from_transact(shop: Shop) -> None:
    order = await shop.order((await shop.pay(shop.customer())).id)
    txn = shop.sandbox.transactions[order.id]
    assert order.paybill_account == txn.account
    assert order.paybill_numbers == (("MPESA", "261144"), ("AIRTEL", "510800"), ("EQUITEL", "510800"))
