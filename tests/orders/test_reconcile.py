"""Reconciling a period against iPay: what a shop runs when a customer says "I paid".

`/reconcile` (admins) and `python -m bot.reconcile` look every order of the period up at iPay
again, report each one whose state differs from iPay's answer, and fix what can be fixed:
money found is recorded and told through the usual finalisation.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.config import Settings
from bot.domain import NAIROBI, OrderStatus
from bot.reconcile import run
from bot.sandbox.ipay import Fault
from tests.conftest import MERCHANT_CHAT, Shop, ShopWith, readable

ADMIN = 9001
TODAY = "Mon 24 Nov"  # the test clock's day, as /summary names it


@pytest.fixture
async def owner_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(admin_ids=frozenset({ADMIN}))


async def _expired_then_paid_by_hand(shop: Shop, user_id: int, phone: str) -> str:
    """An order nobody paid by its deadline (so no longer looked up), then paid by Pay Bill."""
    shop.sandbox.prompt_lifetime = 10_000
    order = await shop.pay(shop.customer(user_id, "Payer"), phone=phone)
    shop.clock.advance(601)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.EXPIRED
    shop.sandbox.pay_by_paybill(order.id)
    return order.id


async def test_reconcile_finds_money_on_an_expired_order_records_it_and_tells_everyone(owner_shop: Shop) -> None:
    shop = owner_shop
    agrees = await shop.pay(shop.customer(502, "Amina"), phone="0712345678")
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(agrees.id)).status is OrderStatus.PAID
    late = await _expired_then_paid_by_hand(shop, 501, "0712345670")

    admin = shop.customer(ADMIN, "Owner")
    await shop.type(admin, "/reconcile today")
    report = shop.last(ADMIN).text
    assert report.startswith(f"Reconciled {TODAY} with iPay: 2 orders looked up, 1 differ, 1 fixed.")
    lines = report.splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith(f"{readable(late)} · KES 500 · 07** ***670 · here: ⌛ expired")
    assert "iPay: paid KES 500, receipt " in lines[0] and lines[0].endswith("fixed: now ✅ paid")
    paid = await shop.order(late)
    assert paid.status is OrderStatus.PAID and paid.receipt_code
    assert paid.receipt_code in shop.last(501).text
    assert shop.last(MERCHANT_CHAT).text.startswith(f"{paid.receipt_code} · PAID · KES 500")

    await shop.type(admin, "/reconcile today")  # again: nothing left to fix
    assert shop.last(ADMIN).text == (
        f"Reconciled {TODAY} with iPay: 2 orders looked up, 0 differ, 0 fixed.\nEvery order agrees with iPay."
    )


async def test_reconcile_reports_what_it_cannot_fix(owner_shop: Shop) -> None:
    shop = owner_shop
    paid = await shop.pay(shop.customer(502, "Amina"), phone="0712345678")
    shop.clock.advance(5)
    await shop.sweep()
    del shop.sandbox.transactions[paid.id]  # iPay no longer shows the money recorded here
    admin = shop.customer(ADMIN, "Owner")
    await shop.type(admin, "/reconcile today")
    assert shop.last(ADMIN).text == (
        f"Reconciled {TODAY} with iPay: 1 order looked up, 1 differ, 0 fixed.\n"
        f"{readable(paid.id)} · KES 500 · 07** ***678 · here: ✅ paid · iPay: no payment record · "
        "not changed: please check by hand"
    )
    assert (await shop.order(paid.id)).status is OrderStatus.PAID  # nothing is ever taken back

    shop.sandbox.faults.fail_next("/transaction/search", Fault.SERVER_ERROR)
    await shop.type(admin, "/reconcile today")
    assert shop.last(ADMIN).text.endswith(
        "here: ✅ paid · iPay: no answer (/transaction/search answered HTTP 502) · try again later"
    )


async def test_reconcile_is_for_admins_only(owner_shop: Shop) -> None:
    customer = owner_shop.customer()
    await owner_shop.type(customer, "/reconcile today")
    assert "Looking up" not in owner_shop.last(customer.chat_id).text
    assert "Reconciled" not in owner_shop.last(customer.chat_id).text


async def test_reconcile_with_a_period_it_cannot_read_says_how(owner_shop: Shop) -> None:
    await owner_shop.type(owner_shop.customer(ADMIN, "Owner"), "/reconcile someday")
    assert owner_shop.last(ADMIN).text.startswith("Send /reconcile with today, yesterday, week, month or dates")


async def test_the_command_line_reconciles_beside_the_running_bot(
    owner_shop: Shop, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = owner_shop
    late = await _expired_then_paid_by_hand(shop, 501, "0712345670")
    today = datetime.fromtimestamp(shop.clock.now, NAIROBI).date().isoformat()
    code = await run(["--since", today], settings=settings, clock=shop.clock, ipay_transport=shop.sandbox.transport())
    assert code == 0
    out = capsys.readouterr().out
    assert "1 order looked up, 1 differ, 1 fixed." in out and f"{readable(late)} · KES 500" in out
    assert (await shop.order(late)).status is OrderStatus.PAID
    shop.services.notifier.kick()  # the running bot sends what the command line queued
    await shop.settle()
    assert "KES 500 paid" in shop.last(501).text
