"""The status sweep: every way a pending order ends, and lookups that fail on the way."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.config import Settings
from bot.domain import Order, OrderStatus, Payment
from bot.orders.poller import StatusPoller
from bot.sandbox.ipay import Fault, IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import MERCHANT_CHAT, Shop, WallClock, start_shop, stop_shop, with_settings


async def test_not_paid_several_times_then_paid(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")  # 0: the phone's holder decides
    spacings = []
    for _ in range(3):
        before = (await shop.order(order.id)).next_poll_at
        assert before is not None  # a pending order is always due again
        shop.clock.now = before
        await shop.sweep()
        pending = await shop.order(order.id)
        assert pending.status is OrderStatus.PENDING and pending.next_poll_at is not None
        spacings.append(pending.next_poll_at - shop.clock.now)
    assert spacings == [10.0, 20.0, 40.0]  # after the first 5 s: spaced out
    assert shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(40)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.poll_count == 3
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.HTML, Fault.TIMEOUT, Fault.NOT_JSON, Fault.RATE_LIMITED])
async def test_lookup_errors_are_retried_never_read_as_not_paid(shop: Shop, fault: Fault) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    told = len(shop.texts(customer.chat_id))
    shop.sandbox.faults.fail_next("/transaction/search", fault, times=2)
    for _ in range(2):
        shop.clock.advance(61)
        await shop.sweep()
        pending = await shop.order(order.id)
        assert pending.status is OrderStatus.PENDING and pending.last_error
    assert len(shop.texts(customer.chat_id)) == told  # nothing said while in doubt
    shop.clock.advance(61)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID


async def test_lookup_errors_past_the_timeout_do_not_expire_the_order(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.sandbox.faults.fail_next("/transaction/search", Fault.SERVER_ERROR, times=3)
    shop.clock.advance(3600)
    for _ in range(3):
        await shop.sweep()
        shop.clock.advance(61)
    assert (await shop.order(order.id)).status is OrderStatus.PENDING
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID  # the money had arrived


async def test_no_answer_until_our_timeout_expires_the_order(shop: Shop) -> None:
    shop.sandbox.prompt_lifetime = 10_000  # the phone never says it timed out
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    shop.clock.advance(599)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PENDING
    shop.clock.advance(2)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.EXPIRED
    assert shop.last(customer.chat_id).text.startswith("⌛ No payment arrived in time, so the order has expired.")


@pytest.mark.parametrize(
    ("phone", "status", "chat_says", "merchant_says"),
    [
        ("0712345671", OrderStatus.CANCELLED, "✖️ The payment was cancelled on the phone.", None),
        ("0712345672", OrderStatus.FAILED, "❌ The payment did not go through: a wrong PIN was entered", "FAILED"),
        ("0712345673", OrderStatus.FAILED, "❌ The payment did not go through: the balance was not enough", "FAILED"),
        ("0712345674", OrderStatus.EXPIRED, "⌛ The prompt timed out on the phone. If you paid anyway", None),
        (
            "0712345675",
            OrderStatus.UNDERPAID,
            "That is KES 50 less than the KES 500 asked: KES 50 is still to pay.",
            "UNDERPAID · KES 450 · (asked KES 500)",
        ),
        (
            "0712345676",
            OrderStatus.OVERPAID,
            "That is KES 50 more than the KES 500 asked: the shop will settle",
            "OVERPAID · KES 550 · (asked KES 500)",
        ),
    ],
)
async def test_each_outcome_is_recorded_and_told(
    shop: Shop, phone: str, status: OrderStatus, chat_says: str, merchant_says: str | None
) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone=phone)
    shop.clock.advance(61)
    await shop.sweep()
    assert (await shop.order(order.id)).status is status
    assert chat_says in shop.last(customer.chat_id).text
    merchant = shop.telegram.bot_messages(MERCHANT_CHAT)
    if merchant_says is None:
        assert merchant == []
    else:
        receipt = (await shop.order(order.id)).receipt_code
        said = merchant[-1].text
        assert said.removeprefix(f"{receipt} · ").startswith(merchant_says) and said.startswith(receipt or "")


async def test_finalising_twice_changes_nothing_and_tells_once(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.clock.advance(5)
    await shop.sweep()
    told = shop.texts(customer.chat_id)
    paid = await shop.order(order.id)
    assert not await shop.services.payments.finalise(paid, OrderStatus.EXPIRED, reason="late")
    assert not await shop.services.payments.finalise(paid, OrderStatus.PAID, payment=_payment(paid))
    await shop.settle()
    assert shop.texts(customer.chat_id) == told
    assert (await shop.order(order.id)).status is OrderStatus.PAID


def _payment(order: Order) -> Payment:
    assert order.receipt_code and order.payer_name and order.paid_amount and order.paid_at
    return Payment(order.receipt_code, order.payer_name, order.paid_amount, order.paid_at, "MPESA")


async def test_a_late_payment_after_expiry_is_still_recorded_and_told(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    assert await shop.services.payments.finalise(order, OrderStatus.EXPIRED, reason="no answer in time")
    late = Payment("QLATE12345", "JOHN DOE", 500, shop.clock(), "MPESA")
    assert await shop.services.payments.record_payment(order, late) is OrderStatus.PAID
    await shop.settle()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


async def test_the_job_queue_runs_the_sweep_on_its_own(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox
) -> None:
    sandbox.clock, sandbox.answer_delay = time.time, 0.0
    shop = await start_shop(with_settings(settings, poll_interval_seconds=0.05), telegram, sandbox, WallClock())
    try:
        customer = shop.customer()
        order = await shop.pay(customer)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if (await shop.order(order.id)).status is OrderStatus.PAID:
                break
        await shop.settle()
        assert (await shop.order(order.id)).status is OrderStatus.PAID
        assert " Confirmed. KES " in shop.last(customer.chat_id).text
    finally:
        await stop_shop(shop)


async def test_a_prompt_that_timed_out_is_told_but_watched_until_the_deadline(shop: Shop) -> None:
    """iPay's "transaction was timed out" means the prompt expired on the phone, not the order:
    the payer may still pay by Pay Bill until the payment timeout, and that money is told."""
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345674")  # 4: never answers the prompt
    shop.clock.advance(61)
    await shop.sweep()
    timed_out = await shop.order(order.id)
    assert timed_out.status is OrderStatus.EXPIRED and timed_out.next_poll_at is not None
    told = shop.last(customer.chat_id)
    assert told.text.startswith("⌛ The prompt timed out on the phone. If you paid anyway, I'll tell you here.")
    assert "Nothing was charged" not in told.text  # the prompt may still be answered, or Pay Bill used
    assert told.buttons == [[("📋 No prompt on your phone?", f"order:paybill:{order.id}")]]

    shop.clock.advance(120)
    shop.sandbox.pay_by_paybill(order.id)  # Lipa na M-PESA → Pay Bill → the order's account
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


async def test_a_timed_out_order_stops_being_watched_at_the_deadline(shop: Shop) -> None:
    order = await shop.pay(shop.customer(), phone="0712345674")
    for _ in range(15):
        shop.clock.advance(61)
        await shop.sweep()
    assert shop.clock.now > order.created_at + 600
    final = await shop.order(order.id)
    assert final.status is OrderStatus.EXPIRED and final.next_poll_at is None


async def test_no_second_prompt_while_a_timed_out_order_is_still_watched(shop: Shop) -> None:
    """iPay's "timed out" is not always the prompt's end: until the deadline the phone gets no
    second prompt (a button from before gets a pop-up saying why), then it does."""
    customer = shop.customer()
    first = await shop.pay(customer, phone="0712345674")
    shop.clock.advance(61)
    await shop.sweep()
    await shop.send(customer.press_data(shop.last(customer.chat_id), f"order:retry:{first.id}"))
    assert "still waiting for an answer" in shop.telegram.callback_answers[-1]["text"]
    assert [o.id for o in await shop.services.store.latest_chat_orders(customer.chat_id, 5)] == [first.id]
    assert (await shop.order(first.id)).next_poll_at is not None  # the first is still watched for Pay Bill money
    for _ in range(10):
        shop.clock.advance(60)
        await shop.sweep()
    await shop.send(customer.press_data(shop.last(customer.chat_id), f"order:retry:{first.id}"))
    again = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert again.id != first.id and again.status is OrderStatus.PENDING
    assert shop.sandbox.transactions[again.id].prompt is not None


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.HTML, Fault.TIMEOUT, Fault.NOT_JSON, Fault.RATE_LIMITED])
async def test_a_lookup_error_is_recorded_said_in_the_log_and_asked_again_after_the_backoff(
    shop: Shop, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    """What iPay's error was, and when the order is looked up again: the poll spacing with its
    jitter (0.8-1.2), or iPay's Retry-After (7 s from the sandbox) when that is longer. Not the
    poller's safety net for a bug in settling (an ERROR and "internal error")."""
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.sandbox.faults.fail_next("/transaction/search", fault)
    shop.clock.advance(5)
    due = await shop.order(order.id)
    assert due.next_poll_at is not None and due.next_poll_at <= shop.clock.now
    with caplog.at_level(logging.WARNING):
        await shop.sweep()
    now, spacing = shop.clock.now, shop.services.payments.poll_spacing(due.poll_count)
    pending = await shop.order(order.id)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert pending.status is OrderStatus.PENDING and pending.last_error and pending.last_error != "internal error"
    assert pending.next_poll_at is not None
    waited = pending.next_poll_at - now
    if fault is Fault.RATE_LIMITED:
        assert max(7.0, 0.8 * spacing) <= waited <= max(7.0, 1.2 * spacing)
    else:
        assert 0.8 * spacing <= waited <= 1.2 * spacing
    told = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"lookup of order {order.id} failed, will retry in {waited:.0f} s: {pending.last_error}" in told


async def test_an_order_expires_at_its_deadline_exactly_for_want_of_an_answer(shop: Shop) -> None:
    shop.sandbox.prompt_lifetime = 10_000  # the phone never says it timed out
    order = await shop.pay(shop.customer(), phone="0712345670")
    shop.clock.now = shop.services.payments.deadline(order)
    await shop.sweep()
    expired = await shop.order(order.id)
    assert expired.status is OrderStatus.EXPIRED and expired.last_error == "no_answer"


async def test_a_watched_order_is_looked_at_on_the_poll_spacing_until_its_watch_ends(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """A closed order still watched for late money (its prompt timed out on the phone) is looked
    up at the next poll spacing, never later than the end of its watch, then no more."""
    order = await shop.pay(shop.customer(), phone="0712345674")  # 4: never answers the prompt
    shop.clock.advance(61)
    await shop.sweep()
    with caplog.at_level(logging.WARNING):
        while True:
            watched = await shop.order(order.id)
            assert watched.status is OrderStatus.EXPIRED and watched.watch_until is not None
            if watched.next_poll_at is None:
                break
            shop.clock.now = watched.next_poll_at
            await shop.sweep()
            now, spacing = shop.clock.now, shop.services.payments.poll_spacing(watched.poll_count + 1)
            after = await shop.order(order.id)
            if now < watched.watch_until:
                assert after.next_poll_at == min(now + spacing, watched.watch_until)
            else:
                assert after.next_poll_at is None
    assert shop.clock.now == watched.watch_until == shop.services.payments.deadline(order)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_prompt_timed_out_before_the_deadline_is_next_looked_at_on_the_next_spacing(shop: Shop) -> None:
    """Its first lookup (5 s after the prompt) found the prompt timed out: watched from then,
    looked up again one spacing later (10 s, the second), until the deadline."""
    order = await shop.pay(shop.customer(), phone="0712345674")  # 4: never answers the prompt
    shop.clock.advance(61)
    await shop.sweep()
    watched = await shop.order(order.id)
    assert watched.status is OrderStatus.EXPIRED and watched.poll_count == 0
    assert watched.next_poll_at == shop.clock.now + 10.0  # the spacing after the first lookup's
    assert watched.watch_until == order.created_at + 600.0


async def test_a_prompt_found_timed_out_at_the_deadline_exactly_is_not_watched(shop: Shop) -> None:
    """At the deadline nothing is left to watch for: the order ends, and the payer may send it again."""
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345674")  # 4: never answers the prompt
    shop.clock.now = shop.services.payments.deadline(order)
    await shop.sweep()
    final = await shop.order(order.id)
    assert final.status is OrderStatus.EXPIRED and final.next_poll_at is None and final.watch_until is None
    assert shop.last(customer.chat_id).button_labels == ["🔁 Send the prompt again"]


async def test_lookups_answering_moments_apart_are_rescheduled_in_one_write(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load lookups answer milliseconds apart, and every write transaction waits for the
    disk: the reschedules of lookups that answer within the flush window share one transaction."""
    payers = [shop.customer(user_id=600 + n, name=f"Payer{n}") for n in range(10)]
    orders = [await shop.pay(payer, phone=f"07123456{n}0") for n, payer in enumerate(payers)]  # 0: no answer yet
    shop.clock.advance(5)  # every first lookup is due
    payments, store = shop.services.payments, shop.services.store
    place = {order.id: n for n, order in enumerate(orders)}
    lookup, schedule_polls = payments.lookup, store.schedule_polls
    writes: list[int] = []

    async def answering_moments_apart(order: Order) -> object:
        await asyncio.sleep(0.004 * place[order.id])
        return await lookup(order)

    async def counted(batch: list[object]) -> None:
        writes.append(len(batch))
        await schedule_polls(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(payments, "lookup", answering_moments_apart)
    monkeypatch.setattr(store, "schedule_polls", counted)
    lookups = await shop.services.poller.start_due()
    assert set(await asyncio.gather(*lookups)) == {OrderStatus.PENDING}
    await shop.services.poller.wait_idle()
    assert writes == [10]
    assert [(await shop.order(order.id)).poll_count for order in orders] == [1] * 10


async def test_orders_due_again_at_once_never_hide_the_orders_behind_them(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep whose reschedules cannot be written leaves the orders it looked up due at once,
    first in line: they must not fill every claim and end the sweep before the rest are looked up."""
    payers = [shop.customer(user_id=700 + n, name=f"Payer{n}") for n in range(4)]
    for n, payer in enumerate(payers):
        await shop.pay(payer, phone=f"07123457{n}0")  # 0: no answer yet
    shop.clock.advance(5)  # every first lookup is due

    async def cannot_write(batch: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(shop.services.store, "schedule_polls", cannot_write)
    poller = StatusPoller(shop.services.store, shop.services.payments, batch=2, clock=shop.clock)
    report = await poller.sweep()
    assert report.checked == 4 and report.outcomes == {OrderStatus.PENDING: 4}
