"""The /pay conversation, driven as a customer in Telegram drives it."""

from __future__ import annotations

import pytest

from bot.domain import Network, OrderStatus
from tests.conftest import MERCHANT_CHAT, Shop, readable


async def test_happy_path_mpesa_from_pay_to_receipt(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/pay"))
    ask = shop.last(customer.chat_id)
    assert "Which phone" in ask.text
    assert ask.reply_keyboard[0][0]["request_contact"] is True

    await shop.send(customer.text("0712 345 678"))
    assert "0712 345 678 (M-Pesa)" in shop.last(customer.chat_id).text

    await shop.send(customer.text("KES 1,500"))
    summary = shop.last(customer.chat_id)
    assert "Amount: KES 1,500" in summary.text and "Pay with: M-Pesa" in summary.text
    assert summary.button_labels == ["✅ Confirm", "🔁 Use Airtel Money instead", "✖️ Cancel"]

    await shop.send(customer.press(summary, "Confirm"))
    order = await shop.only_order(customer.chat_id)
    assert order.status is OrderStatus.PENDING and order.amount == 1500 and order.network is Network.MPESA
    # The summary became the "check your phone" message, edited in place: cancel, or the Pay Bill way round.
    assert summary.text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 1,500")
    assert readable(order.id) in summary.text
    assert summary.button_labels == ["✖️ Cancel this payment", "📋 No prompt on your phone?"]
    assert shop.sandbox.open_prompt("254712345678") is not None

    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID
    assert paid.paid_amount == 1500 and paid.receipt_code and len(paid.receipt_code) == 10
    code, payer = shop.ipay_payment(order.id)
    receipt = shop.last(customer.chat_id)
    assert receipt is not summary
    # Shaped like M-PESA's own confirmation: the receipt code first, to whom, from whom, when.
    assert receipt.text == (
        f"{code} Confirmed. KES 1,500 paid to Mama Mboga from 0712 345 678 ({payer}) "
        f"on 24/11/25 at 7:00 PM. Order {readable(order.id)}."
    )
    assert receipt.buttons == []
    # The receipt is the one message that says paid: "check your phone" stays as it was.
    assert summary.text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 1,500")
    assert shop.last(MERCHANT_CHAT).text == (
        f"{code} · PAID · KES 1,500 · M-Pesa · 07** ***678 · received from {payer} · "
        f"order {readable(order.id)} · asked by Wanjiru (501)"
    )


async def test_happy_path_airtel_guessed_from_the_prefix(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="+254 733-123-457", amount="250/=")
    assert order.phone == "254733123457" and order.network is Network.AIRTEL and order.amount == 250
    assert shop.sandbox.stats.calls.get("/transact/push/airtel") == 1
    assert "Airtel Money PIN" in shop.last(customer.chat_id).text
    shop.clock.advance(5)
    await shop.sweep()
    assert "Confirmed. KES 250 paid to" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_phone_shared_with_the_contact_button(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/pay"))
    await shop.send(customer.contact("+254712345678"))
    assert "0712 345 678 (M-Pesa)" in shop.last(customer.chat_id).text


async def test_payer_switches_the_network_on_the_summary(shop: Shop) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer, phone="0712345678")
    await shop.send(customer.press(summary, "Airtel"))
    assert "Pay with: Airtel Money" in summary.text
    assert summary.button_labels[1] == "🔁 Use M-Pesa instead"
    await shop.send(customer.press(summary, "Confirm"))
    assert shop.sandbox.stats.calls == {"/transact": 1, "/transact/push/airtel": 1}
    assert (await shop.only_order(customer.chat_id)).network is Network.AIRTEL


@pytest.mark.parametrize(
    "bad_phone", ["12345", "0812345678", "07123456789", "+1 555 123 4567", "zero seven one two", "📱📱", "2547123456"]
)
@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_each_bad_phone_gets_an_explanation_and_another_try(shop: Shop, bad_phone: str) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", bad_phone)
    assert shop.last(customer.chat_id).text.startswith("That doesn't look like a Kenyan mobile number.")
    await shop.send(customer.text("0112345678"))
    assert "0112 345 678" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_sticker_instead_of_a_phone_is_asked_again(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/pay"))
    await shop.send(customer.sticker())
    assert shop.last(customer.chat_id).text.startswith("Please type the phone number")


@pytest.mark.parametrize(
    ("bad_amount", "explanation"),
    [
        ("abc", "I couldn't read that as an amount."),
        ("-5", "The smallest amount I can take is KES 10."),
        ("0", "The smallest amount I can take is KES 10."),
        ("5", "The smallest amount I can take is KES 10."),
        ("12.50", "whole shillings only"),
        ("1e9", "I couldn't read that as an amount."),
        ("💰💰", "I couldn't read that as an amount."),
        ("150001", "The largest amount I can take is KES 150,000."),
        ("99999999999999999999999", "The largest amount I can take is KES 150,000."),
        ("١٠٠", "I couldn't read that as an amount."),
    ],
)
@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_each_bad_amount_gets_an_explanation_and_another_try(
    shop: Shop, bad_amount: str, explanation: str
) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712345678", bad_amount)
    assert explanation in shop.last(customer.chat_id).text
    await shop.send(customer.text("1,000"))
    assert "Amount: KES 1,000" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_cancel_at_the_phone_step(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "/cancel")
    assert shop.last(customer.chat_id).text.startswith("Cancelled.")
    await shop.send(customer.text("0712345678"))  # no longer in a conversation: not taken as a phone
    assert shop.last(customer.chat_id).text == "To pay Mama Mboga, send /pay. /help lists everything."


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_cancel_at_the_amount_step(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712345678", "/cancel")
    assert shop.last(customer.chat_id).text.startswith("Cancelled.")
    assert shop.sandbox.stats.calls == {}


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_cancel_at_the_summary_with_the_command_and_the_button(shop: Shop) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer)
    confirm = summary.button_data("Confirm")
    await shop.send(customer.text("/cancel"))
    assert shop.last(customer.chat_id).text.startswith("Cancelled.")
    assert (
        summary.buttons == []
        and summary.text.startswith("Please check:")
        and summary.text.endswith("PIN.\n\nCancelled.")
    )
    await shop.send(customer.press_data(summary, confirm))  # a client that still shows it
    assert shop.telegram.callback_answers[-1]["text"] == "That button is no longer active."

    summary = await shop.start_payment(customer)
    await shop.send(customer.press(summary, "Cancel"))
    assert summary.text.startswith("Cancelled.") and summary.buttons == []
    assert shop.sandbox.stats.calls == {}
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 5) == []


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_cancel_outside_a_payment(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.text("/cancel"))
    assert shop.last(customer.chat_id).text == "There is nothing to cancel. Send /pay to make a payment."


async def test_confirm_pressed_twice_makes_one_order_and_one_prompt(shop: Shop) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer)
    await shop.send(customer.press(summary, "Confirm"))
    summary.buttons = [[("✅ Confirm", f"pay:confirm:{customer.user_id}")]]  # a slow client still shows it
    await shop.send(customer.press(summary, "Confirm"))
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 1
    assert shop.sandbox.stats.calls.get("/transact/push/mpesa") == 1
    assert shop.telegram.callback_answers[-1]["text"] == "That button is no longer active."


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_commands_mid_conversation_answer_and_keep_the_step(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712345678", "/status")
    assert shop.last(customer.chat_id).text.startswith("This chat has no orders yet.")
    await shop.send(customer.text("/help"))
    assert "/pay" in shop.last(customer.chat_id).text
    await shop.send(customer.text("/dance"))
    assert shop.last(customer.chat_id).text.startswith("I don't know that command.")
    await shop.send(customer.text("700"))
    assert "Amount: KES 700" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_pay_again_mid_conversation_starts_over(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712345678", "/pay")
    assert "Which phone" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_typing_at_the_summary_points_to_the_buttons(shop: Shop) -> None:
    customer = shop.customer()
    await shop.start_payment(customer)
    await shop.send(customer.text("which one?"))
    assert "Confirm or Cancel" in shop.last(customer.chat_id).text


async def test_ipay_refuses_initiate_order_fails_with_the_reason(shop: Shop) -> None:
    shop.sandbox._key = "the-key-ipay-has-on-file"  # the merchant configured a wrong hash key
    customer = shop.customer()
    order = await shop.pay(customer)
    failed = await shop.order(order.id)
    assert failed.status is OrderStatus.FAILED and "Invalid hash" in (failed.last_error or "")
    assert shop.last(customer.chat_id).text.startswith(
        "❌ The payment did not go through: iPay refused it (Invalid hash"
    )
    assert "FAILED" in shop.last(MERCHANT_CHAT).text
    assert failed.next_poll_at is None  # nothing left dangling


async def test_ipay_unreachable_at_initiate_fails_plainly(shop: Shop) -> None:
    from bot.sandbox.ipay import Fault

    shop.sandbox.faults.fail_next("/transact", Fault.DISCONNECT)
    customer = shop.customer()
    order = await shop.pay(customer)
    assert (await shop.order(order.id)).status is OrderStatus.FAILED
    assert "couldn't reach iPay, so no prompt was sent and nothing was charged" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_phone_with_an_open_prompt_is_told_to_wait_and_until_when(shop: Shop) -> None:
    first, second = shop.customer(501), shop.customer(502)
    order = await shop.pay(first, phone="0712345670")  # ends in 0: the prompt stays open
    await shop.type(second, "/pay", "0712 345 670")
    told = shop.last(second.chat_id).text
    # Another chat's prompt: the phone is named (masked), that chat's order is not.
    assert told.startswith("A payment prompt for 07** ***670 is still waiting for an answer. Please answer it")
    assert readable(order.id) not in told
    assert "try again after 19:10" in told  # created 19:00 Nairobi time, expires 10 minutes later
    await shop.send(second.text("0712345678"))  # another number is fine
    assert "0712 345 678 (M-Pesa)" in shop.last(second.chat_id).text


async def test_push_answered_500_by_ipay_is_watched_until_its_deadline(shop: Shop) -> None:
    """iPay answers a push to a phone with another open prompt HTTP 500 / header_status 500, as it
    answers a push that may have gone out anyway: the order is watched, the payer offered the Pay
    Bill way round, and it ends only when nothing was paid by its deadline."""

    from bot.providers.ipay import IpayClient

    # Another shop's prompt is open on the phone: iPay refuses a second one.
    transport = shop.sandbox.transport()
    other_shop = IpayClient(
        transport, vid="shop42", hash_key="test-hash-key-SECRET-42", live=False, base_url="http://ipay.test/payments/v2"
    )
    session = await other_shop.initiate("OTHERSHOP1", 100, "254712345670")
    await other_shop.push(Network.MPESA, "254712345670", session.sid)
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    assert (await shop.order(order.id)).status is OrderStatus.PENDING
    assert "did not confirm that the prompt reached" in shop.last(customer.chat_id).text
    assert shop.last(customer.chat_id).button_labels == ["✖️ Cancel this payment", "📋 No prompt on your phone?"]
    shop.sandbox.prompt_lifetime = 10_000
    shop.clock.advance(601)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.EXPIRED
    assert shop.last(customer.chat_id).button_labels == ["🔁 Send the prompt again"]


async def test_push_without_an_answer_keeps_the_order_open_and_search_decides(shop: Shop) -> None:
    from bot.sandbox.ipay import Fault

    shop.sandbox.faults.fail_next("/transact/push/mpesa", Fault.TIMEOUT)
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    assert (await shop.order(order.id)).status is OrderStatus.PENDING
    assert "did not confirm that the prompt reached" in shop.last(customer.chat_id).text
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PENDING  # the lookup: no answer on the phone yet
    shop.sandbox.pay_by_paybill(order.id)  # no prompt reached the phone: the payer pays the order's account
    shop.clock.advance(10)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID  # the lookup's answer decides
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_an_idle_conversation_times_out_with_a_message(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from tests.conftest import start_shop, stop_shop, with_settings

    shop = await start_shop(with_settings(settings, conversation_timeout_seconds=0.2), telegram, sandbox, clock)
    try:
        customer = shop.customer()
        await shop.type(customer, "/pay", "0712345678")
        shop.clock.advance(0.2)
        for _ in range(50):
            await asyncio.sleep(0.05)
            if shop.last(customer.chat_id).text.startswith("I stopped waiting"):
                break
        assert shop.last(customer.chat_id).text.startswith("I stopped waiting")
        await shop.send(customer.text("500"))  # the conversation is over: not taken as an amount
        assert shop.last(customer.chat_id).text == "To pay Mama Mboga, send /pay. /help lists everything."
    finally:
        await stop_shop(shop)


async def test_two_chats_confirming_the_same_phone_at_once_make_one_prompt(shop: Shop) -> None:
    import asyncio

    from telegram import Update

    first, second = shop.customer(501), shop.customer(502)
    summaries = [await shop.start_payment(user, phone="0712345670") for user in (first, second)]
    presses = [user.press(summary, "Confirm") for user, summary in zip((first, second), summaries, strict=True)]
    await asyncio.gather(*(shop.app.process_update(Update.de_json(p, shop.app.bot)) for p in presses))
    await shop.settle()
    orders = [o for chat in (501, 502) for o in await shop.services.store.latest_chat_orders(chat, 5)]
    assert len(orders) == 1
    assert shop.sandbox.stats.calls.get("/transact/push/mpesa") == 1
    refused = summaries[1] if orders[0].chat_id == 501 else summaries[0]
    assert refused.text.startswith("A payment prompt for 07** ***670 is still waiting for an answer")
