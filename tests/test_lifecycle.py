"""Every path an order can take after Confirm: buttons, late money, Telegram faults, restarts."""

from __future__ import annotations

from bot.config import Settings
from bot.domain import OrderStatus
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi, TelegramUser
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, readable, start_shop, stop_shop


async def test_cancel_in_chat_then_nothing_is_paid(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    prompt = shop.last(customer.chat_id)
    await shop.send(customer.press(prompt, "Cancel this payment"))
    withdrawn = await shop.order(order.id)
    assert withdrawn.status is OrderStatus.WITHDRAWN
    assert shop.last(customer.chat_id).text.startswith(f"✖️ You cancelled order {readable(order.id)}")
    assert prompt.text.endswith("✖️ cancelled in the chat.")
    shop.clock.advance(91)
    await shop.sweep()  # no money yet, but Pay Bill works until the payment timeout: keep looking
    assert (await shop.order(order.id)).next_poll_at is not None
    while (await shop.order(order.id)).next_poll_at is not None:
        shop.clock.advance(60)
        await shop.sweep()
    assert shop.clock.now >= order.created_at + 600  # looked until the payment timeout, then stopped
    assert (await shop.order(order.id)).status is OrderStatus.WITHDRAWN


async def test_cancel_in_chat_but_paid_on_the_phone_anyway_is_recorded_and_told(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    await shop.send(customer.press(shop.last(customer.chat_id), "Cancel this payment"))
    assert shop.sandbox.answer("254712345670", approve=True)  # the PIN was entered anyway
    shop.clock.advance(91)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text
    assert " · PAID · " in shop.last(MERCHANT_CHAT).text


async def test_send_the_prompt_again_after_a_failure(shop: Shop) -> None:
    customer = shop.customer()
    first = await shop.pay(customer, phone="0712345671", amount="750")  # 1: the payer cancels
    shop.clock.advance(5)
    await shop.sweep()
    failed_message = shop.last(customer.chat_id)
    assert failed_message.text.startswith("✖️ The payment was cancelled on the phone.")
    tap = customer.press(failed_message, "Send the prompt again")
    double_tap = customer.press(failed_message, "Send the prompt again")  # a second tap already on its way
    await shop.send(tap)
    orders = await shop.services.store.latest_chat_orders(customer.chat_id, 5)
    second = orders[0]
    assert len(orders) == 2 and second.id != first.id
    assert (second.phone, second.amount, second.status) == ("254712345671", 750, OrderStatus.PENDING)
    assert (await shop.order(first.id)).retry_order_id == second.id
    assert shop.last(customer.chat_id).text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 750.")
    assert shop.sandbox.transactions[second.id].prompt is not None

    await shop.send(double_tap)  # pressed twice
    assert (
        shop.telegram.callback_answers[-1]["text"]
        == f"The prompt was already sent again (order {readable(second.id)})."
    )
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 2


async def test_send_again_twice_after_the_retry_ended_makes_no_third_order(shop: Shop) -> None:
    customer = shop.customer()
    await shop.pay(customer, phone="0712345672")  # 2: wrong PIN, every time
    shop.clock.advance(5)
    await shop.sweep()
    failed_message = shop.last(customer.chat_id)
    tap, late_tap = (customer.press(failed_message, "Send the prompt again") for _ in range(2))
    await shop.send(tap)
    shop.clock.advance(5)
    await shop.sweep()
    await shop.send(late_tap)  # an old client still showing the button
    assert shop.telegram.callback_answers[-1]["text"].startswith("The prompt was already sent again (order ")
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 2


async def test_buttons_of_a_paid_order_change_nothing(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    prompt = shop.last(customer.chat_id)
    stale = TelegramUser(shop.telegram, customer.user_id, chat_id=customer.chat_id).press(prompt, "Cancel this payment")
    shop.clock.advance(5)
    await shop.sweep()
    await shop.send(stale)
    assert shop.telegram.callback_answers[-1]["text"] == "This order is already paid."
    assert (await shop.order(order.id)).status is OrderStatus.PAID


async def test_another_group_members_button_press_is_refused(shop: Shop) -> None:
    group = -100123
    cashier, bystander = shop.customer(501, "Cashier", chat_id=group), shop.customer(502, "Bystander", chat_id=group)
    order = await shop.pay(cashier)
    await shop.send(bystander.press(shop.last(group), "Cancel this payment"))
    assert shop.telegram.callback_answers[-1]["text"] == "This button belongs to someone else's payment."
    assert (await shop.order(order.id)).status is OrderStatus.PENDING


async def test_a_telegram_rate_limit_is_waited_out_and_the_message_sent(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.telegram.rate_limit_next("sendMessage", retry_after=1, chat_id=customer.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    receipt_sends = [
        p
        for m, p in shop.telegram.calls
        if m == "sendMessage" and p["chat_id"] == customer.chat_id and " Confirmed. " in str(p["text"])
    ]
    assert len(receipt_sends) == 2  # refused once with 429, then sent again by the rate limiter and accepted
    assert [t for t in shop.texts(customer.chat_id) if " Confirmed. " in t] == [receipt_sends[-1]["text"]]
    assert await shop.services.store.pending_outbox_count() == 0


async def test_telegram_network_errors_postpone_the_message_until_it_goes_through(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.telegram.fail_next("sendMessage", 502, "Bad Gateway", chat_id=customer.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert await shop.services.store.pending_outbox_count() == 1
    shop.clock.advance(2)
    await shop.sweep()
    assert " Confirmed. KES " in shop.last(customer.chat_id).text
    assert await shop.services.store.pending_outbox_count() == 0


async def test_a_customer_who_blocked_the_bot_does_not_stop_the_others(shop: Shop) -> None:
    blocker, other = shop.customer(501), shop.customer(502)
    await shop.pay(blocker, phone="0712345678")
    await shop.pay(other, phone="0722345678")
    shop.telegram.blocked_chats.add(blocker.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    assert " Confirmed. KES " in shop.last(other.chat_id).text
    assert await shop.services.store.pending_outbox_count() == 0  # given up on, not retried forever
    assert len(shop.telegram.bot_messages(MERCHANT_CHAT)) == 2


async def test_telegram_down_then_restart_delivers_what_was_not_sent(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await start_shop(settings, telegram, sandbox, clock)
    customer = shop.customer()
    order = await shop.pay(customer)
    for _ in range(20):
        telegram.fail_next("sendMessage", 502, "Bad Gateway")
    clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert " Confirmed. KES " not in shop.last(customer.chat_id).text
    await stop_shop(shop)

    telegram._faults.clear()
    clock.advance(3)  # past the outbox's back-off
    restarted = await start_shop(settings, telegram, sandbox, clock)
    try:
        await restarted.settle()
        assert " Confirmed. KES " in restarted.last(customer.chat_id).text
        assert await restarted.services.store.pending_outbox_count() == 0
    finally:
        await stop_shop(restarted)


async def test_pending_orders_resume_after_a_restart(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await start_shop(settings, telegram, sandbox, clock)
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    await stop_shop(shop)
    sandbox.answer("254712345670", approve=True)
    clock.advance(5)
    restarted = await start_shop(settings, telegram, sandbox, clock)
    try:
        await restarted.sweep()
        assert (await restarted.order(order.id)).status is OrderStatus.PAID
        assert " Confirmed. KES " in restarted.last(customer.chat_id).text
    finally:
        await stop_shop(restarted)
