"""Refunds: a shop gives a payment back from the chat, with an admin's approval, once only.

Driven as the shop uses it: Telegram updates into the running bot, iPay as the sandbox (its
refund endpoint, with vendor balances that can run out), over HTTP for the API.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from telegram.ext import CallbackContext

from bot.app import build_application, daily_summary_job
from bot.config import ConfigError, Settings, load_settings
from bot.domain import OrderStatus, RefundState
from bot.lifecycle import running
from bot.providers.ipay import signing
from bot.providers.limiter import Lane, SlotHold
from bot.sandbox.ipay import Fault, IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.web import build_web_app
from tests.api.test_web import API_KEY, OTHER_KEY, _auth
from tests.conftest import (
    MERCHANT_CHAT,
    ManualClock,
    Restarts,
    Shop,
    ShopWith,
    readable,
    start_shop,
    stop_shop,
    with_settings,
)

ADMIN, ADMIN2, STAFF, CUSTOMER = 9001, 9003, 9002, 501
ROOT = Path(__file__).resolve().parents[2]
REFUND = "/transaction/refund"


STAFFED: dict[str, Any] = {"admin_ids": frozenset({ADMIN, ADMIN2}), "staff_ids": frozenset({STAFF})}


@pytest.fixture
def shop_settings(settings: Settings) -> Settings:
    return with_settings(settings, **STAFFED)


@pytest.fixture
async def merchant_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(**STAFFED)


async def _paid(shop: Shop, phone: str = "0712 345 678", amount: str = "500", user_id: int = CUSTOMER) -> str:
    order = await shop.pay(shop.customer(user_id), phone=phone, amount=amount)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status.money_received
    return order.id


async def _settled(shop: Shop) -> None:
    """Refund calls in flight answered, and what they queued delivered."""
    assert shop.services.refunds is not None
    await shop.services.refunds.wait_idle()
    shop.services.notifier.kick()
    await shop.settle()


def _refund_calls(shop: Shop) -> int:
    return shop.sandbox.stats.calls.get(REFUND, 0)


async def _admin_refunds(shop: Shop, order_id: str, admin: int = ADMIN) -> None:
    """/refund <id> in the admin's private chat, then the confirm button."""
    user = shop.customer(admin)
    await shop.send(user.text(f"/refund {readable(order_id)}"))
    card = shop.last(admin)
    await shop.send(user.press(card, "Refund KES"))
    await _settled(shop)


# -- an admin refunds -----------------------------------------------------------------------


async def test_an_admin_refunds_a_payment_and_the_payer_and_the_shop_are_told(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    admin = shop.customer(ADMIN)
    await shop.send(admin.text(f"/refund {readable(order_id).lower()}"))
    card = shop.last(ADMIN)
    assert card.text.startswith(f"↩️ Refund order {readable(order_id)}?")
    assert "KES 500 paid by" in card.text and "07** ***678" in card.text
    assert card.button_labels == ["↩️ Refund KES 500"]
    assert _refund_calls(shop) == 0  # nothing moves until the button is pressed

    await shop.send(admin.press(card, "Refund KES"))
    await _settled(shop)

    assert _refund_calls(shop) == 1
    order = await shop.order(order_id)
    assert order.receipt_code in shop.sandbox.refunded
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.state is RefundState.DONE
    assert refund.asked_by.startswith("Wanjiru") and refund.approved_by_id == ADMIN and refund.done_at is not None
    assert shop.last(CUSTOMER).text == (
        f"KES 500 for order {readable(order_id)} is being refunded to 07** ***678. M-PESA will send you an SMS."
    )
    assert shop.last(MERCHANT_CHAT).text.startswith(f"↩️ Refunded KES 500 for order {readable(order_id)}")
    assert shop.last(ADMIN).text.startswith("✅ Refund done: KES 500")
    assert "Sending the refund to iPay" in shop.telegram.bot_messages(ADMIN)[-2].text  # the card, closed
    assert shop.telegram.bot_messages(ADMIN)[-2].buttons == []

    await shop.send(admin.text(f"/refund {order_id}"))  # once only
    assert shop.last(ADMIN).text.startswith(f"Order {readable(order_id)} was refunded already")
    await shop.send(shop.customer(CUSTOMER).text(f"/status {order_id}"))
    assert "Refunded: KES 500" in shop.last(CUSTOMER).text


async def test_an_admin_refund_end_to_end_with_the_sandbox_over_http(
    shop_settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    """The same refund with iPay reached over a socket (the bot's own provider transport), the
    sandbox served by uvicorn as `python -m bot.sandbox` serves it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(sandbox.asgi, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    for _ in range(1000):  # uvicorn says it is listening by a flag, not an event
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        configured = with_settings(shop_settings, ipay_base_url=f"http://127.0.0.1:{port}/payments/v2")
        app = build_application(configured, telegram_request=telegram, clock=clock)
        async with running(app):
            shop = Shop(app, telegram, sandbox, clock)
            order_id = await _paid(shop)
            await _admin_refunds(shop, order_id)
            assert _refund_calls(shop) == 1 and (await shop.order(order_id)).receipt_code in sandbox.refunded
            assert shop.last(CUSTOMER).text.endswith("is being refunded to 07** ***678. M-PESA will send you an SMS.")
            assert shop.last(ADMIN).text.startswith("✅ Refund done: KES 500")
    finally:
        server.should_exit = True
        await serving


async def test_a_refund_call_takes_a_slot_in_the_providers_call_budget(
    merchant_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refunds share the payment service's budget of calls in flight (in the prompts' lane: a
    person waits on it), so that budget is the one cap on calls to the provider."""
    shop = merchant_shop
    order_id = await _paid(shop)
    budget = shop.services.payments.budget
    lanes: list[Lane] = []
    slot = budget.slot

    def counted(lane: Lane) -> SlotHold:
        lanes.append(lane)
        return slot(lane)

    monkeypatch.setattr(budget, "slot", counted)
    await _admin_refunds(shop, order_id)
    await _settled(shop)
    assert _refund_calls(shop) == 1
    assert lanes == [Lane.PROMPT]
    assert budget.in_flight == 0


async def test_the_payer_is_told_in_their_language(merchant_shop: Shop) -> None:
    shop = merchant_shop
    payer = shop.customer(CUSTOMER, language_code="sw")
    order = await shop.pay(payer, phone="0712 345 678", amount="500")
    shop.clock.advance(5)
    await shop.sweep()
    await _admin_refunds(shop, order.id)
    assert shop.last(CUSTOMER).text == (
        f"KES 500 za oda {readable(order.id)} zinarejeshwa kwa 07** ***678. M-PESA itakutumia SMS."
    )
    assert shop.last(ADMIN).text.startswith("✅ Refund done")  # the admin reads their own language


async def test_the_refund_button_on_the_shops_payment_line_opens_the_card(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    line = shop.last(MERCHANT_CHAT)
    assert line.button_labels == ["↩️ Refund"]
    admin_there = shop.customer(ADMIN, chat_id=MERCHANT_CHAT)
    await shop.send(admin_there.press(line, "Refund"))
    card = shop.last(MERCHANT_CHAT)
    assert card.button_labels == ["↩️ Refund KES 500"]
    await shop.send(admin_there.press(card, "Refund KES"))
    await _settled(shop)
    assert _refund_calls(shop) == 1
    refund_lines = [t for t in shop.texts(MERCHANT_CHAT) if "Refund done" in t or "Refunded" in t]
    assert len(refund_lines) == 1 and refund_lines[0].startswith("✅ Refund done: KES 500")  # told there once
    assert (await shop.services.store.get_refund(order_id)).state is RefundState.DONE  # type: ignore[union-attr]


async def test_a_customer_is_refused_like_any_admin_command(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    customer = shop.customer(CUSTOMER)
    await shop.send(customer.text("/frobnicate"))
    unknown = shop.last(CUSTOMER).text
    await shop.send(customer.text(f"/refund {order_id}"))
    assert shop.last(CUSTOMER).text == unknown
    await shop.send(customer.press_data(shop.last(CUSTOMER), f"refund:go:{order_id}"))  # a forged button
    await _settled(shop)
    assert _refund_calls(shop) == 0
    assert await shop.services.store.get_refund(order_id) is None


async def test_refund_without_an_id_and_of_an_unpaid_or_unknown_order(merchant_shop: Shop) -> None:
    shop = merchant_shop
    admin = shop.customer(ADMIN)
    await shop.send(admin.text("/refund"))
    assert shop.last(ADMIN).text.startswith("Send /refund followed by the order id")
    await shop.send(admin.text("/refund NOPE-NOPE-NOPE"))
    assert shop.last(ADMIN).text == "Order NOPE-NOPE-NOPE was not found."
    declined = await shop.pay(shop.customer(CUSTOMER), phone="0712 345 671")  # …1 cancels the prompt
    shop.clock.advance(5)
    await shop.sweep()
    await shop.send(admin.text(f"/refund {declined.id}"))
    assert shop.last(ADMIN).text.startswith(f"Order {readable(declined.id)} has no payment to refund")


async def test_a_payment_older_than_refund_max_age_days_is_refused_with_a_clear_answer(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    shop.clock.advance(31 * 86_400)
    await shop.send(shop.customer(ADMIN).text(f"/refund {order_id}"))
    assert "older than 30 days is refunded from iPay's dashboard" in shop.last(ADMIN).text
    assert _refund_calls(shop) == 0


# -- staff ask, admins approve ----------------------------------------------------------------


async def test_a_cashier_asks_every_admin_approves_privately_and_the_cashier_hears(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    cashier = shop.customer(STAFF, "Otieno")
    await shop.send(cashier.text(f"/refund {readable(order_id)}"))
    await _settled(shop)
    assert shop.last(STAFF).text.startswith(
        f"I've asked the shop's admins to approve a refund of order {readable(order_id)} (KES 500)."
    )
    cards = [shop.last(ADMIN), shop.last(ADMIN2)]
    for card in cards:
        assert card.text.startswith(f"↩️ Otieno (9002) asks for a refund of order {readable(order_id)}.")
        assert card.button_labels == ["✅ Approve the refund", "✖️ Decline"]
    assert _refund_calls(shop) == 0

    await shop.send(shop.customer(ADMIN2).press(cards[1], "Approve"))
    await _settled(shop)
    assert _refund_calls(shop) == 1
    assert shop.last(STAFF).text.startswith("✅ Refund done: KES 500")
    assert shop.last(ADMIN2).text.startswith("✅ Refund done: KES 500")
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.asked_by_id == STAFF and refund.approved_by_id == ADMIN2

    await shop.send(shop.customer(ADMIN).press(cards[0], "Approve"))  # the other admin, too late
    await _settled(shop)
    assert _refund_calls(shop) == 1
    assert shop.telegram.calls[-1][0] == "answerCallbackQuery"


async def test_an_admin_declines_a_cashiers_ask_and_nothing_moves(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    cashier = shop.customer(STAFF, "Otieno")
    await shop.send(cashier.text(f"/refund {order_id}"))
    await _settled(shop)
    await shop.send(shop.customer(ADMIN).press(shop.last(ADMIN), "Decline"))
    await _settled(shop)
    assert shop.last(STAFF).text.startswith(f"✖️ Wanjiru (9001) declined the refund of order {readable(order_id)}")
    assert _refund_calls(shop) == 0
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.state is RefundState.DECLINED
    await shop.send(shop.customer(ADMIN2).press(shop.last(ADMIN2), "Approve"))  # the card declined already
    await _settled(shop)
    assert _refund_calls(shop) == 0
    await shop.send(cashier.text(f"/refund {order_id}"))  # asked again: a new card
    await _settled(shop)
    assert shop.last(ADMIN).button_labels == ["✅ Approve the refund", "✖️ Decline"]


# -- once only --------------------------------------------------------------------------------


async def test_a_double_tap_and_two_admins_at_once_make_one_call(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    admin = shop.customer(ADMIN)
    await shop.send(admin.text(f"/refund {order_id}"))
    card = shop.last(ADMIN)
    shop.sandbox.faults.latency = 0.05  # both presses land while the first call is on its way
    taps = [admin.press(card, "Refund KES"), admin.press(card, "Refund KES")]
    await asyncio.gather(*(shop.app.process_update(shop_update(shop, t)) for t in taps))
    await _settled(shop)
    assert _refund_calls(shop) == 1

    second = await _paid(shop, phone="0712 345 679")
    await shop.send(shop.customer(STAFF).text(f"/refund {second}"))
    await _settled(shop)
    presses = [shop.customer(a).press(shop.last(a), "Approve") for a in (ADMIN, ADMIN2)]
    await asyncio.gather(*(shop.app.process_update(shop_update(shop, p)) for p in presses))
    await _settled(shop)
    assert _refund_calls(shop) == 2
    assert (await shop.services.store.get_refund(second)).state is RefundState.DONE  # type: ignore[union-attr]


def shop_update(shop: Shop, update: dict) -> object:  # type: ignore[type-arg]
    from telegram import Update

    return Update.de_json(update, shop.app.bot)


async def test_a_call_without_an_answer_is_outcome_unknown_and_never_sent_again(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    shop.sandbox.faults.fail_next(REFUND, Fault.TIMEOUT)
    await _admin_refunds(shop, order_id)
    assert _refund_calls(shop) == 1
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.state is RefundState.UNKNOWN
    for admin in (ADMIN, ADMIN2):
        assert shop.last(admin).text.startswith(f"⚠️ Refund outcome unknown for order {readable(order_id)}")
        assert "iPay's answer did not arrive" in shop.last(admin).text
    assert not any("being refunded" in t for t in shop.texts(CUSTOMER))
    await shop.send(shop.customer(ADMIN).text(f"/refund {order_id}"))
    assert "unknown outcome: check iPay's dashboard" in shop.last(ADMIN).text
    assert _refund_calls(shop) == 1


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.HTML, Fault.NOT_JSON, Fault.DISCONNECT])
async def test_an_errored_refund_call_is_never_a_refusal(merchant_shop: Shop, fault: Fault) -> None:
    """A 5xx, an HTML page, a reply that is not JSON or a dropped connection says nothing about
    whether the money moved: outcome unknown, never "refused" (which would invite a retry)."""
    shop = merchant_shop
    order_id = await _paid(shop)
    shop.sandbox.faults.fail_next(REFUND, fault)
    await _admin_refunds(shop, order_id)
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.state is RefundState.UNKNOWN and refund.reason == "no_answer"
    assert shop.last(ADMIN).text.startswith("⚠️ Refund outcome unknown")


async def test_a_crash_between_the_call_and_its_answer_leaves_outcome_unknown(
    shop_settings: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Restarts(shop_settings, telegram, sandbox, clock)
    shop = await bot.start()
    order_id = await _paid(shop)

    async def dies_before_recording(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("killed")  # the process is gone: iPay answered, nothing was recorded

    monkeypatch.setattr(shop.services.store, "finish_refund", dies_before_recording)
    await _admin_refunds(shop, order_id)
    assert _refund_calls(shop) == 1
    assert (await shop.services.store.get_refund(order_id)).state is RefundState.SENDING  # type: ignore[union-attr]

    shop = await bot.restart(downtime=10)
    await _settled(shop)
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.state is RefundState.UNKNOWN
    for admin in (ADMIN, ADMIN2):
        assert "the bot stopped before it recorded iPay's answer" in shop.last(admin).text
    assert shop.services.refunds is not None
    assert await shop.services.refunds.sweep_lapsed() == 0
    await shop.send(shop.customer(ADMIN).text(f"/refund {order_id}"))
    await _settled(shop)
    assert _refund_calls(shop) == 1
    await stop_shop(shop)


async def test_a_refusal_for_a_low_balance_is_told_in_plain_words_and_a_retry_works(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop)
    shop.sandbox.empty_balances()
    await _admin_refunds(shop, order_id)
    refused = shop.last(ADMIN)
    assert refused.text.startswith(f"❌ iPay did not refund order {readable(order_id)} (KES 500)")
    assert "Top up your iPay balance and try again." in refused.text
    assert not any("refund" in t.lower() for t in shop.texts(CUSTOMER))  # the payer hears nothing of it
    assert (await shop.services.store.get_refund(order_id)).state is RefundState.REFUSED  # type: ignore[union-attr]

    shop.sandbox.top_up(1000)
    await _admin_refunds(shop, order_id)
    assert _refund_calls(shop) == 2
    assert (await shop.services.store.get_refund(order_id)).state is RefundState.DONE  # type: ignore[union-attr]
    assert "being refunded" in shop.last(CUSTOMER).text
    assert shop.sandbox.b2c_balance == 500  # 500 paid in went to settlement; the top-up paid it back


# -- overpaid and underpaid -------------------------------------------------------------------


async def test_an_overpayment_is_refunded_whole_and_asked_again(merchant_shop: Shop) -> None:
    shop = merchant_shop
    cashier = shop.customer(STAFF, "Otieno")
    order = await shop.pay(cashier, phone="0712 345 676", amount="500")  # …6 pays 10% more
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.OVERPAID
    receipt = shop.last(STAFF)
    assert "↩️ Refund all and ask again" in receipt.button_labels
    assert "↩️ Refund all and ask again" in shop.last(MERCHANT_CHAT).button_labels
    await shop.send(cashier.press(receipt, "Refund all"))  # the cashier asks
    await _settled(shop)
    card = shop.last(ADMIN)
    assert "send the prompt again for KES 500" in card.text
    await shop.send(shop.customer(ADMIN).press(card, "Approve"))
    await _settled(shop)
    told = shop.last(STAFF)
    assert any("is being refunded" in t for t in shop.texts(STAFF)) and _refund_calls(shop) == 1
    payer_notice = next(m for m in reversed(shop.telegram.bot_messages(STAFF)) if "being refunded" in m.text)
    assert "KES 550" in payer_notice.text
    await shop.send(cashier.press(payer_notice, "Send the prompt again"))
    again = await shop.services.store.latest_chat_orders(STAFF, 1)
    assert again[0].id != order.id and again[0].amount == 500
    assert told is not None


async def test_an_underpayment_offers_the_refund_beside_pay_the_rest(merchant_shop: Shop) -> None:
    shop = merchant_shop
    cashier = shop.customer(STAFF, "Otieno")
    order = await shop.pay(cashier, phone="0712 345 675", amount="500")  # …5 pays 10% less
    shop.clock.advance(5)
    await shop.sweep()
    receipt = shop.last(STAFF)
    assert receipt.button_labels == ["💳 Pay the rest", "↩️ Refund what was paid"]
    await shop.send(shop.customer(ADMIN, chat_id=MERCHANT_CHAT).press(shop.last(MERCHANT_CHAT), "Refund what"))
    card = shop.last(MERCHANT_CHAT)
    assert card.button_labels == ["↩️ Refund KES 450"]
    await shop.send(shop.customer(ADMIN, chat_id=MERCHANT_CHAT).press(card, "Refund KES"))
    await _settled(shop)
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.state is RefundState.DONE and refund.amount == 450


async def test_a_paid_customers_own_receipt_carries_no_refund_button(merchant_shop: Shop) -> None:
    shop = merchant_shop
    await _paid(shop, phone="0712 345 676")  # overpaid, asked by a customer
    assert not any("Refund" in label for label in shop.last(CUSTOMER).button_labels)


# -- totals are net ------------------------------------------------------------------------------


async def test_summary_daily_summary_and_export_show_refunds(merchant_shop: Shop) -> None:
    shop = merchant_shop
    refunded = await _paid(shop, phone="0712 345 678", amount="500")
    await _paid(shop, phone="0712 345 679", amount="700")
    await _admin_refunds(shop, refunded)
    admin = shop.customer(ADMIN)
    await shop.send(admin.text("/summary"))
    summary = shop.last(ADMIN).text
    assert summary.startswith("Mon 24 Nov: KES 1,200 received from 2 payments")
    assert summary.endswith("↩️ Refunded: 1 payment, KES 500; net takings KES 700")

    shop.clock.advance(60)  # the evening summary runs later: its stretch ends when it runs
    await daily_summary_job(CallbackContext(shop.app))
    await shop.settle()
    assert shop.last(MERCHANT_CHAT).text.endswith("↩️ Refunded: 1 payment, KES 500; net takings KES 700")

    await shop.send(admin.text("/export"))
    rows = list(csv.reader(io.StringIO(shop.last(ADMIN).document["content"].decode("utf-8"))))  # type: ignore[index]
    header = rows[0]
    assert header[-6:-1] == ["refund_state", "refund_amount", "refund_at", "refund_asked_by", "refund_approved_by"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert by_id[refunded]["refund_state"] == "done" and by_id[refunded]["refund_amount"] == "500"
    assert by_id[refunded]["refund_at"].startswith("2025-11-24T")
    assert by_id[refunded]["refund_asked_by"].startswith("Wanjiru (9001)")
    assert by_id[refunded]["refund_approved_by"] == "Wanjiru (9001)"
    assert [row["refund_state"] for order_id, row in by_id.items() if order_id != refunded] == [""]


async def test_orders_lists_a_refund_button_for_each_payment_not_yet_refunded(merchant_shop: Shop) -> None:
    shop = merchant_shop
    refunded = await _paid(shop, phone="0712 345 678", amount="500")
    other = await _paid(shop, phone="0712 345 679", amount="700")
    await _admin_refunds(shop, refunded)
    admin = shop.customer(ADMIN)
    await shop.send(admin.text("/orders"))
    listing = shop.last(ADMIN)
    assert listing.button_labels == [f"↩️ Refund {readable(other)} (KES 700)"]
    await shop.send(admin.press(listing, "Refund"))
    assert shop.last(ADMIN).button_labels == ["↩️ Refund KES 700"]
    await shop.send(shop.customer(CUSTOMER).text("/orders"))
    assert shop.last(CUSTOMER).button_labels == []  # a customer's own listing offers nothing


# -- the hash -----------------------------------------------------------------------------------


def test_refund_settings_default_to_30_days_and_no_api_refunds() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "1:abc"})
    assert (settings.refund_max_age_days, settings.api_refunds) == (30, False)
    chosen = load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "REFUND_MAX_AGE_DAYS": "7", "API_REFUNDS": "1"})
    assert (chosen.refund_max_age_days, chosen.api_refunds) == (7, True)
    with pytest.raises(ConfigError, match="REFUND_MAX_AGE_DAYS expects a whole number of days above 0"):
        load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "REFUND_MAX_AGE_DAYS": "0"})
    with pytest.raises(ConfigError, match="API_REFUNDS expects 1"):
        load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "API_REFUNDS": "maybe"})


def test_the_refund_hash_matches_openssl() -> None:
    message = "code=QCH4XXXXXX&vid=demo"
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", "demoCHANGED"], input=message.encode(), capture_output=True, check=True
    )
    expected = openssl.stdout.decode().split()[-1]
    assert signing.refund_hash("demoCHANGED", "QCH4XXXXXX", "demo") == expected
    assert expected == "2c77a7a1e8df62b62414726b61ce5b45409fda5e4e4b647631b4d3de43cce43b"


# -- the REST API --------------------------------------------------------------------------------


async def test_the_api_refunds_its_own_payment_once_per_idempotency_key(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    configured = with_settings(settings, api_keys=(API_KEY, OTHER_KEY), api_refunds=True, port=0)
    shop = await start_shop(configured, telegram, sandbox, clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    try:
        made = await client.post("/api/payments", json={"phone": "0712345678", "amount": 500}, headers=_auth())
        order_id = made.json()["order_id"]
        await shop.settle()
        clock.advance(5)
        await shop.sweep()
        path = f"/api/payments/{order_id}/refund"

        assert (await client.post(path, headers=_auth())).status_code == 400  # an Idempotency-Key is required
        other = await client.post(path, headers={**_auth(OTHER_KEY), "Idempotency-Key": "r1"})
        assert other.status_code == 404  # another key's payment
        first = await client.post(path, headers={**_auth(), "Idempotency-Key": "r1"})
        assert first.status_code == 202 and first.json()["refund"]["state"] == "sending"
        assert first.json()["refund"]["amount"] == 500
        await _settled(shop)
        again = await client.post(path, headers={**_auth(), "Idempotency-Key": "r1"})
        assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["refund"]["state"] == "done"
        another = await client.post(path, headers={**_auth(), "Idempotency-Key": "r2"})
        assert another.status_code == 409 and another.json()["error"]["code"] == "refund_done"
        assert _refund_calls(shop) == 1
        shown = await client.get(f"/api/payments/{order_id}", headers=_auth())
        assert shown.json()["refund"]["state"] == "done" and shown.json()["refund"]["done_at"]
        assert "/api/payments/{order_id}/refund" in (await client.get("/openapi.json")).json()["paths"]
    finally:
        await client.aclose()
        await stop_shop(shop)


async def test_the_api_refuses_refunds_unless_api_refunds_is_on(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await start_shop(with_settings(settings, api_keys=(API_KEY,), port=0), telegram, sandbox, clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    try:
        made = await client.post("/api/payments", json={"phone": "0712345678", "amount": 500}, headers=_auth())
        await shop.settle()
        clock.advance(5)
        await shop.sweep()
        refused = await client.post(
            f"/api/payments/{made.json()['order_id']}/refund", headers={**_auth(), "Idempotency-Key": "r1"}
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "refunds_disabled"
        assert _refund_calls(shop) == 0
        shown = await client.get(f"/api/payments/{made.json()['order_id']}", headers=_auth())
        assert shown.json()["refund"] is None
    finally:
        await client.aclose()
        await stop_shop(shop)


# -- a real crash -------------------------------------------------------------------------------


def test_sigkill_after_ipay_answered_leaves_outcome_unknown_and_no_second_call(tmp_path: Path) -> None:
    """The process is killed (SIGKILL, crash point `refund_answered`) after iPay refunded and
    before the answer was recorded; the next start marks the refund "outcome unknown", tells
    every admin, and sends nothing again (a second call would find it refunded already and be
    recorded as refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sandbox_server = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", str(port), "--answer-delay", "0.3"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        harness = [sys.executable, str(ROOT / "tests" / "refund_crash_harness.py"), "--db", str(tmp_path / "db")]
        harness += ["--ipay-url", f"http://127.0.0.1:{port}/payments/v2"]
        env = {**os.environ, "PESABOT_CRASH_AT": "refund_answered"}
        crashed = subprocess.run([*harness, "refund"], env=env, capture_output=True, text=True, timeout=60)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        order_id = crashed.stdout.split()[0]
        clean = {k: v for k, v in os.environ.items() if k != "PESABOT_CRASH_AT"}
        after = subprocess.run([*harness, "restart", order_id], env=clean, capture_output=True, text=True, timeout=60)
        assert after.returncode == 0, after.stderr
        seen = json.loads(after.stdout.splitlines()[-1])
        assert seen["state"] == "unknown"
        for admin_messages in seen["told"].values():
            assert any("the bot stopped before it recorded iPay's answer" in text for text in admin_messages)
    finally:
        sandbox_server.terminate()
        sandbox_server.wait(timeout=10)
