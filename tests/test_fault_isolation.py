"""Faults stay local: one poisoned answer, one hanging lookup, one burst of prompts, one
cancel racing a slow lookup. Each must touch its own order only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import httpx
import pytest
from telegram import Update

from bot.app import build_application
from bot.config import Settings
from bot.domain import OrderStatus
from bot.lifecycle import running
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, with_settings


class SteeredTransport(httpx.AsyncBaseTransport):
    """The sandbox, with a hand on the lookups of chosen orders: hold them until released,
    or rewrite the paid amount iPay reports."""

    def __init__(self, sandbox: IpaySandbox) -> None:
        self._inner = sandbox.transport()
        self.gates: dict[str, asyncio.Event] = {}
        self.answer_when_released: dict[str, httpx.Response] = {}
        self.amounts: dict[str, object] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        oid = dict(parse_qsl(request.content.decode())).get("oid", "")
        searching = request.url.path.endswith("/transaction/search")
        if searching and oid in self.gates:
            await self.gates[oid].wait()
            if oid in self.answer_when_released:
                return self.answer_when_released.pop(oid)
        response = await self._inner.handle_async_request(request)
        if searching and oid in self.amounts and response.status_code == 200:
            body = json.loads(await response.aread())
            body["data"]["transaction_amount"] = self.amounts[oid]
            return httpx.Response(200, json=body)
        return response

    def hold(self, oid: str, then: httpx.Response | None = None) -> asyncio.Event:
        self.gates[oid] = asyncio.Event()
        if then is not None:
            self.answer_when_released[oid] = then
        return self.gates[oid]


@pytest.fixture
async def steered(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> AsyncIterator[tuple[Shop, SteeredTransport]]:
    transport = SteeredTransport(sandbox)
    app = build_application(settings, telegram_request=telegram, ipay_transport=transport, clock=clock)
    async with running(app):
        yield Shop(app, telegram, sandbox, clock), transport
        for gate in transport.gates.values():
            gate.set()


@pytest.mark.parametrize("poison", ["Infinity", "NaN", "1e400", "-500", "500.5", "", ["500"], None, True])
async def test_a_poisoned_amount_is_that_orders_problem_and_never_stops_the_sweep(
    steered: tuple[Shop, SteeredTransport], poison: object
) -> None:
    shop, transport = steered
    poisoned = await shop.pay(shop.customer(501, "Wanjiru"), phone="0712345678")
    healthy = await shop.pay(shop.customer(502, "Otieno"), phone="0712345679")
    transport.amounts[poisoned.id] = poison
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(healthy.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(502).text
    still = await shop.order(poisoned.id)
    assert still.status is OrderStatus.PENDING and still.next_poll_at is not None  # looked up again later
    assert "transaction_amount" in (still.last_error or "")

    del transport.amounts[poisoned.id]  # iPay answers sensibly again
    shop.clock.advance(60)
    await shop.sweep()
    assert (await shop.order(poisoned.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(501).text


async def test_a_lookup_that_hangs_holds_up_no_other_order(steered: tuple[Shop, SteeredTransport]) -> None:
    shop, transport = steered
    slow = await shop.pay(shop.customer(501, "Wanjiru"), phone="0712345678")
    quick = await shop.pay(shop.customer(502, "Otieno"), phone="0712345679")
    gate = transport.hold(slow.id)
    shop.clock.advance(5)
    started = await asyncio.wait_for(shop.services.poller.start_due(), timeout=2)  # the job returns at once
    assert len(started) == 2
    done, hanging = await asyncio.wait(started, timeout=2, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and len(hanging) == 1
    await shop.services.notifier.wait_idle()
    assert (await shop.order(quick.id)).status is OrderStatus.PAID  # told while the other still hangs
    assert "Confirmed. KES 500 paid to" in shop.last(502).text
    assert (await shop.order(slow.id)).status is OrderStatus.PENDING

    shop.clock.advance(1)
    assert await shop.services.poller.start_due() == []  # the hanging order is not looked up twice
    gate.set()
    await shop.settle()
    assert (await shop.order(slow.id)).status is OrderStatus.PAID


async def test_a_cancel_during_a_hung_lookup_keeps_its_promise(steered: tuple[Shop, SteeredTransport]) -> None:
    """The run that found it: a lookup hangs, the payer taps "Cancel this payment", the hung
    lookup then answers 504, and the payer pays 15 s after the cancel: it must be told."""
    shop, transport = steered
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")  # 0: waits for the holder
    prompt = shop.last(customer.chat_id)
    gate = transport.hold(order.id, then=httpx.Response(504, text="<html>Gateway Timeout</html>"))
    shop.clock.advance(5)
    hung = await shop.services.poller.start_due()
    await asyncio.sleep(0.01)
    cancel = customer.press(prompt, "Cancel this payment")
    await shop.app.process_update(Update.de_json(cancel, shop.app.bot))  # while the lookup hangs
    assert (await shop.order(order.id)).status is OrderStatus.WITHDRAWN
    gate.set()
    await asyncio.gather(*hung)
    await shop.settle()
    del transport.gates[order.id]

    shop.clock.advance(15)
    assert shop.sandbox.answer("254712345670", approve=True)  # paid after all
    for _ in range(12):
        shop.clock.advance(30)
        await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text
    assert " · PAID · " in shop.last(MERCHANT_CHAT).text


async def test_a_burst_of_confirms_queues_within_the_ipay_budget(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    settings = with_settings(settings, poll_concurrency=3)
    sandbox.faults.latency = 0.02  # a slow iPay: calls overlap
    app = build_application(settings, telegram_request=telegram, ipay_transport=sandbox.transport(), clock=clock)
    async with running(app):
        shop = Shop(app, telegram, sandbox, clock)
        customers = [shop.customer(600 + n, f"Payer {n}") for n in range(12)]
        summaries = [await shop.start_payment(c, phone=f"07123456{n:02d}") for n, c in enumerate(customers)]
        presses = [c.press(s, "Confirm") for c, s in zip(customers, summaries, strict=True)]
        await asyncio.gather(*(app.process_update(Update.de_json(p, app.bot)) for p in presses))
        await shop.settle()
        assert sandbox.stats.max_in_flight <= 3
        orders = [await shop.only_order(c.chat_id) for c in customers]
        assert all(o.prompt_sent_at is not None and o.status is OrderStatus.PENDING for o in orders)
        assert sandbox.stats.calls["/transact"] == 12
