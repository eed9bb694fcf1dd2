"""What payers and shop owners read: the exact words and buttons, in both languages.

The clock starts at 19:00:00 on 24 Nov 2025 in Nairobi; the sandbox answers a prompt 3 s after it
arrives (phones ending in 0 wait for the test to approve or decline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.domain import Order, OrderStatus, local_phone, mask_phone
from bot.orders.service import UNSENT_GRACE
from bot.sandbox.ipay import RECEIPT_ALPHABET, receipt_code
from bot.sandbox.telegram import ChatMessage, TelegramUser
from tests.conftest import MERCHANT_CHAT, Shop, readable

# -- 1. receipts shaped like M-PESA's own -----------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_the_receipt_reads_like_m_pesas_own(shop: Shop, lang: str) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone="0712 345 677")
    shop.clock.advance(5)
    await shop.sweep()
    code, payer = shop.ipay_payment(order.id)
    said = {
        "en": f"{code} Confirmed. KES 500 paid to Mama Mboga from 0712 345 677 ({payer}) "
        f"on 24/11/25 at 7:00 PM. Order {readable(order.id)}.",
        "sw": f"{code} Imethibitishwa. KES 500 zimelipwa kwa Mama Mboga kutoka 0712 345 677 "
        f"({payer}) tarehe 24/11/25 saa 7:00 PM. Oda {readable(order.id)}.",
    }
    assert shop.last(customer.chat_id).text == said[lang]
    assert shop.last(MERCHANT_CHAT).text.startswith(
        f"{code} · PAID · KES 500 · M-Pesa · 07** ***677 · received from {payer} · order "
    )


# -- 2. cancelled, then locked out ------------------------------------------------------------------


async def cancelled_then_paid_again(shop: Shop, customer: TelegramUser) -> tuple[Order, ChatMessage, str]:
    """Pay 0712345670 (the prompt waits on the phone), cancel it at 19:00:30, then /pay the
    same phone for KES 300: returns the cancelled order, the new summary and the amount question."""
    order = await shop.pay(customer, phone="0712345670")
    shop.clock.advance(30)
    await shop.send(customer.press(shop.last(customer.chat_id), "✖️"))
    await shop.type(customer, "/pay", "0712345670")
    asked = shop.last(customer.chat_id).text
    await shop.type(customer, "300")
    return order, shop.last(customer.chat_id), asked


def pushes(shop: Shop) -> int:
    return shop.sandbox.stats.calls.get("/transact/push/mpesa", 0)


async def sweeps_until(shop: Shop, done: Callable[[], bool]) -> None:
    """Run the conversation sweep until `done` (a sweep sends, then the prompt's own task runs)."""
    for _ in range(20):
        if done():
            return
        await shop.conversation_sweep()
        await asyncio.sleep(0.01)
    assert done()


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_a_new_pay_after_cancelling_says_what_is_true_and_offers_to_wait(shop: Shop, lang: str) -> None:
    customer = shop.customer(language_code=lang)
    order, summary, asked = await cancelled_then_paid_again(shop, customer)
    said = {
        "en": f"You cancelled order {readable(order.id)} at 19:01; the phone may still show its prompt until 19:10. "
        "Go on: if it is still showing then, I'll send the new prompt by itself at 19:10.\n\nPhone: 0712 345 670",
        "sw": f"Ulighairi oda {readable(order.id)} mnamo 19:01. Simu inaweza kuendelea kuonyesha ujumbe wake wa PIN "
        "hadi 19:10. Endelea: kama bado unaonekana wakati huo, nitatuma ujumbe mpya wa PIN moja kwa moja ifikapo "
        "19:10.\n\n"
        "Nambari ya simu: 0712 345 670",
    }
    assert asked.startswith(said[lang])
    waits = {
        "en": "\n\n⏳ The phone is busy until 19:10: Confirm, and the prompt goes out by itself then.",
        "sw": "\n\n⏳ Simu inatumika hadi 19:10: Thibitisha, na ujumbe wa PIN utatumwa moja kwa moja wakati huo.",
    }
    assert summary.text.endswith(waits[lang])
    await shop.send(customer.press(summary, "✅"))
    waiting = {
        "en": "⏳ Confirmed. I'll send the M-Pesa prompt for KES 300 to 0712 345 670 at 19:10, when the phone is "
        "free. Nothing is charged until you enter your PIN.",
        "sw": "⏳ Imethibitishwa. Nitatuma ujumbe wa PIN wa M-Pesa wa KES 300 kwa 0712 345 670 ifikapo 19:10, simu "
        "itakapokuwa tayari. "
        "Hakuna pesa itakayokatwa hadi uweke PIN yako.",
    }
    assert summary.text == waiting[lang]
    assert summary.button_labels == ["✖️ Cancel" if lang == "en" else "✖️ Ghairi"]
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 1  # not written yet

    shop.clock.advance(570)  # 19:10:00: the cancelled prompt's time is over
    await shop.sweep()  # its last lookup ends the watch
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    new = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert (new.amount, new.phone, new.prompt_message_id) == (300, "254712345670", summary.message_id)
    assert summary.text.startswith("📲")  # sent, and its message moved on as any order's does


async def test_a_waiting_prompt_is_not_sent_when_the_cancelled_order_was_paid_after_all(shop: Shop) -> None:
    customer = shop.customer()
    order, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.send(customer.press(summary, "✅"))
    assert shop.sandbox.answer("254712345670", approve=True)  # the old prompt, answered after all
    shop.clock.advance(570)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    await sweeps_until(shop, lambda: "paid after all" in summary.text)
    assert summary.text == (
        f"Order {readable(order.id)} was paid after all, so I did not send the new prompt. Nothing more was charged."
    )
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 1
    assert pushes(shop) == 1


async def test_a_waiting_prompt_can_be_cancelled_and_is_then_never_sent(shop: Shop) -> None:
    customer = shop.customer()
    _, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.send(customer.press(summary, "✅"))
    await shop.type(customer, "hello")
    assert shop.last(customer.chat_id).text == (
        "Your prompt goes out at 19:10, when the phone is free. Send /cancel to stop it."
    )
    await shop.send(customer.press(summary, "✖️"))
    assert summary.text.startswith("Cancelled. Nothing was charged.")
    shop.clock.advance(570)
    await shop.sweep()
    await shop.conversation_sweep()
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 1
    assert pushes(shop) == 1


async def test_two_sweeps_at_once_send_a_waiting_prompt_once(shop: Shop) -> None:
    customer = shop.customer()
    _, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.type(customer, "ok")  # typed yes: the waiting message is a new one
    waiting = shop.last(customer.chat_id)
    assert waiting.text.startswith("⏳ Confirmed.") and summary.buttons == []
    shop.clock.advance(570)
    await shop.sweep()
    assert shop.app.job_queue is not None
    job = shop.app.job_queue.get_jobs_by_name("conversation-timeouts")[0]
    await asyncio.gather(job.run(shop.app), job.run(shop.app), job.run(shop.app))
    await sweeps_until(shop, lambda: waiting.text.startswith("📲"))
    await shop.conversation_sweep()  # and a sweep later
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 2
    assert pushes(shop) == 2


@pytest.mark.parametrize(
    ("lang", "end"),
    [("en", "\nPaid after all (you had cancelled it)."), ("sw", "\nImelipwa hata hivyo (ulikuwa umeighairi).")],
)
async def test_money_after_a_cancel_says_so_after_the_receipt(shop: Shop, lang: str, end: str) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone="0712345670")
    await shop.send(customer.press(shop.last(customer.chat_id), "✖️"))
    assert shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(91)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID
    told = shop.last(customer.chat_id).text
    assert told.startswith(f"{paid.receipt_code} ") and told.endswith(
        f"Order {readable(order.id)}.{end}".replace("Order", "Order" if lang == "en" else "Oda")
    )


# -- 3. under- and overpayment: the next step -------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "lang", "said", "merchant"),
    [
        (
            "0712345675",
            "en",
            "That is KES 50 less than the KES 500 asked: KES 50 is still to pay.",
            "{receipt} · UNDERPAID · KES 450 · (asked KES 500) · M-Pesa · 07** ***675 · received from {payer} · "
            "KES 50 still to pay",
        ),
        ("0712345675", "sw", "Umelipa KES 50 chini ya kiasi kilichoombwa cha KES 500: bado unadaiwa KES 50.", None),
        (
            "0712345676",
            "en",
            "That is KES 50 more than the KES 500 asked: the shop will settle the extra KES 50 with you.",
            "{receipt} · OVERPAID · KES 550 · (asked KES 500) · M-Pesa · 07** ***676 · received from {payer} · "
            "refund of KES 50 due",
        ),
        (
            "0712345676",
            "sw",
            "Umelipa KES 50 zaidi ya kiasi kilichoombwa cha KES 500: duka litakurudishia KES 50 hizo.",
            None,
        ),
    ],
)
async def test_under_and_overpayment_say_what_happens_next(
    shop: Shop, phone: str, lang: str, said: str, merchant: str | None
) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone=phone)
    shop.clock.advance(5)
    await shop.sweep()
    assert shop.last(customer.chat_id).text.endswith(
        f" {said} {'Order' if lang == 'en' else 'Oda'} {readable(order.id)}."
    )
    if merchant is not None:
        receipt, payer = shop.ipay_payment(order.id)
        assert shop.last(MERCHANT_CHAT).text.startswith(merchant.format(receipt=receipt, payer=payer))


# -- 4. failure advice that fits --------------------------------------------------------------------

ADVICE = {
    ("0712345673", "en"): "❌ The payment did not go through: the balance was not enough. Nothing was charged.\n"
    "Order {id} (KES 500). Top up your M-Pesa balance (or use Fuliza) and tap the button to try "
    "again, or send /pay to pay from another number.\nThis phone may get 2 more prompts this hour.",
    ("0712345673", "sw"): "❌ Malipo hayakufanikiwa: salio halitoshi. Hakuna pesa iliyokatwa.\n"
    "Oda {id} (KES 500). Ongeza salio la M-Pesa (au tumia Fuliza) kisha bonyeza kitufe kujaribu "
    "tena, au tuma /pay kulipa kwa nambari nyingine.\nSimu hii inaweza kupata ujumbe wa PIN mara 2 zaidi ndani "
    "ya saa moja.",
    ("0712345672", "en"): "❌ The payment did not go through: a wrong PIN was entered. Nothing was charged.\n"
    "Order {id} (KES 500). Tap the button to try again, and enter your M-Pesa PIN carefully.\n"
    "This phone may get 2 more prompts this hour.",
    (
        "0712345674",
        "en",
    ): "⌛ The prompt timed out on the phone. If you paid anyway, I'll tell you here.\nOrder {id} (KES 500). "
    "You can still pay this same order by Pay Bill (tap the button). A new prompt can go to this phone once "
    "this order has ended.",
    (
        "0712345674",
        "sw",
    ): "⌛ Muda wa ujumbe wa PIN umeisha kwenye simu. Ukilipa hata hivyo, nitakujulisha hapa.\nOda {id} (KES 500). "
    "Bado unaweza kulipa oda hii kwa Paybill (bonyeza kitufe). Ujumbe mpya wa PIN unaweza kutumwa kwa simu hii "
    "oda hii ikishaisha.",
}


@pytest.mark.parametrize(("phone", "lang"), list(ADVICE))
async def test_failure_advice_fits_the_failure_and_counts_the_prompts_left(shop: Shop, phone: str, lang: str) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone=phone)
    shop.clock.advance(61)
    await shop.sweep()
    told = shop.last(customer.chat_id)
    assert told.text == ADVICE[(phone, lang)].format(id=readable(order.id))
    retry = {"en": "🔁 Send the prompt again", "sw": "🔁 Tuma ujumbe wa PIN tena"}[lang]
    paybill = {"en": "📋 No prompt on your phone?", "sw": "📋 Ujumbe wa PIN haujafika?"}[lang]
    # Timed out on the phone before the deadline: still watched, so no second prompt is offered.
    assert told.button_labels == [paybill if phone.endswith("4") else retry]


async def test_the_last_prompt_of_the_hour_is_said_before_the_limit_is_hit(shop: Shop) -> None:
    customer = shop.customer()
    for _ in range(3):
        await shop.pay(customer, phone="0712345673")  # too little balance, three times
        shop.clock.advance(5)
        await shop.sweep()
    assert "\nThis phone has had all the prompts it may get within an hour: the next can go out after 20:00. " in (
        shop.last(customer.chat_id).text
    )


# -- 5. phones written one way; 7. readable ids and codes -------------------------------------------


def test_phones_are_written_one_way() -> None:
    assert local_phone("254712345670") == "0712 345 670"
    assert mask_phone("254712345670") == "07** ***670"
    assert mask_phone("254112345670") == "01** ***670"


async def test_ids_are_grouped_for_reading_and_status_takes_them_either_way(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345677")
    assert f"Order {readable(order.id)}." in shop.last(customer.chat_id).text
    assert len(readable(order.id)) == 14 and readable(order.id).count("-") == 2
    for typed in (readable(order.id), order.id, readable(order.id).lower()):
        await shop.send(customer.text(f"/status {typed}"))
        assert shop.last(customer.chat_id).text.startswith(f"Order {readable(order.id)}: ")


def test_sandbox_receipt_codes_have_no_look_alikes_and_do_not_repeat() -> None:
    codes = {receipt_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(code) == 10 and code[0].isalpha() and set(code) <= set(RECEIPT_ALPHABET) for code in codes)
    assert not set("01IOL") & set(RECEIPT_ALPHABET)


# -- 6. old buttons go away -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "note"), [("en", "🔁 Sent again as order {id}."), ("sw", "🔁 Imetumwa tena kama oda {id}.")]
)
async def test_sending_again_retires_the_old_messages_button(shop: Shop, lang: str, note: str) -> None:
    customer = shop.customer(language_code=lang)
    await shop.pay(customer, phone="0712345672")  # a wrong PIN
    shop.clock.advance(5)
    await shop.sweep()
    failed = shop.last(customer.chat_id)
    before = failed.text
    await shop.send(customer.press(failed, "🔁"))
    again = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert failed.text == f"{before}\n\n{note.format(id=readable(again.id))}"
    assert failed.buttons == []


@pytest.mark.parametrize(
    ("lang", "note"), [("en", "Replaced by a new payment."), ("sw", "Imebadilishwa na malipo mapya.")]
)
async def test_a_second_pay_retires_the_unfinished_summary(shop: Shop, lang: str, note: str) -> None:
    customer = shop.customer(language_code=lang)
    summary = await shop.start_payment(customer)
    before = summary.text
    await shop.type(customer, "/pay")
    assert summary.text == f"{before}\n\n{note}"
    assert summary.buttons == []


async def test_every_way_off_a_summary_takes_its_buttons_away(shop: Shop) -> None:
    """A new amount (a new summary), a new phone, junk typed (the summary again), yes typed,
    /cancel, the timeout: each leaves exactly one message with live buttons, or none."""
    customer = shop.customer()

    def live_summaries() -> list[str]:
        return [m.text for m in shop.telegram.bot_messages(customer.chat_id) if m.buttons and "Please check" in m.text]

    first = await shop.start_payment(customer)
    await shop.type(customer, "700")
    assert first.text.endswith("PIN.\n\nReplaced by your answer below.") and first.buttons == []
    await shop.type(customer, "what?")  # the summary again, below
    await shop.type(customer, "0733 123 457")  # a new phone: the amount question
    assert live_summaries() == []
    await shop.type(customer, "300", "ok")  # a summary, then yes typed: the order
    assert live_summaries() == []
    assert (await shop.only_order(customer.chat_id)).amount == 300
    shop.clock.advance(5)
    await shop.sweep()
    await shop.start_payment(customer, phone="0712 345 671")
    assert len(live_summaries()) == 1
    shop.clock.advance(shop.services.conversations.timeout_seconds + 1)
    await shop.type(customer, "ok")  # after the timeout
    assert shop.last(customer.chat_id).text.startswith("I stopped waiting")
    assert live_summaries() == []


# -- 10. smaller --------------------------------------------------------------------------------------


async def test_in_sandbox_mode_every_step_carries_the_tag(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import start_shop, stop_shop, with_settings

    shop = await start_shop(with_settings(settings, ipay_sandbox=True), telegram, sandbox, clock)
    try:
        customer = shop.customer()
        await shop.type(customer, "/pay")
        assert shop.last(customer.chat_id).text.startswith("🧪 SANDBOX: no real money moves. Which phone")
        await shop.type(customer, "0712345677")
        assert shop.last(customer.chat_id).text.startswith("🧪 SANDBOX: no real money moves. Phone: 0712 345 677")
        await shop.type(customer, "500")
        summary = shop.last(customer.chat_id)
        await shop.send(customer.press(summary, "✖️"))
        assert (
            summary.text == "🧪 SANDBOX: no real money moves. Cancelled. Nothing was charged. Send /pay to start again."
        )
        await shop.type(customer, "/status")
        assert shop.last(customer.chat_id).text.startswith("🧪 SANDBOX: no real money moves. This chat has no orders")
    finally:
        await stop_shop(shop)


async def test_help_offers_pay_only_to_who_may_use_it(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import start_shop, stop_shop, with_settings

    shop = await start_shop(
        with_settings(settings, pay_access="staff", staff_ids=frozenset({42})), telegram, sandbox, clock
    )
    try:
        await shop.type(shop.customer(501), "/help")
        text = shop.last(501).text
        assert "/pay:" not in text and "Payments here are taken by the shop's staff" in text
        assert "/status alone: the latest 5, in short." in text and "/orders [today|week|N]: a list" in text
        await shop.type(shop.customer(42, "Cashier"), "/help")
        assert "\n\n/pay: pay with your phone." in shop.last(42).text
    finally:
        await stop_shop(shop)


async def test_an_amount_written_with_a_space_is_an_amount(shop: Shop) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer, phone="0712345677", amount="1 000")
    assert "Amount: KES 1,000" in summary.text


@pytest.mark.parametrize(("lang", "label"), [("en", "💳 Pay the rest"), ("sw", "💳 Lipa kiasi kilichobaki")])
async def test_paid_less_offers_a_button_for_exactly_the_rest(shop: Shop, lang: str, label: str) -> None:
    customer = shop.customer(language_code=lang)
    first = await shop.pay(customer, phone="0712345675")  # …5 pays KES 450 of 500
    shop.clock.advance(5)
    await shop.sweep()
    told = shop.last(customer.chat_id)
    assert told.button_labels == [label]
    tap, second_tap = (customer.press(told, "💳") for _ in range(2))
    await shop.send(tap)
    rest = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert (rest.amount, rest.phone, rest.status) == (50, "254712345675", OrderStatus.PENDING)
    assert (await shop.order(first.id)).retry_order_id == rest.id  # linked to the first
    assert told.buttons == []
    await shop.send(second_tap)  # asked for once only
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 2


async def test_a_crash_after_writing_the_waiting_order_sends_that_order_and_no_other(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep dies right after writing the order (the draft went in the same transaction):
    no sweep writes a second one, and the status sweep sends the unsent order late, as it does
    for any order whose sender died."""
    customer = shop.customer()
    _, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.send(customer.press(summary, "✅"))
    payments = shop.services.payments
    create_order = payments.create_order
    crashes: list[Order] = []

    async def crash_once(*args: Any, **kwargs: Any) -> Order:
        order = await create_order(*args, **kwargs)
        if not crashes:
            crashes.append(order)
            raise RuntimeError("the process died here")
        return order

    monkeypatch.setattr(payments, "create_order", crash_once)
    shop.clock.advance(570)
    await shop.sweep()
    await sweeps_until(shop, lambda: bool(crashes))
    assert await shop.services.conversations.current(customer.chat_id, customer.user_id) is None
    assert pushes(shop) == 1  # written, not sent
    shop.clock.advance(UNSENT_GRACE + 1)
    await shop.sweep()  # the status sweep finds the unsent order
    assert pushes(shop) == 2
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 2
    assert summary.text.startswith("📲")


async def test_a_waiting_prompt_gives_up_if_the_phone_stays_busy(shop: Shop) -> None:
    customer = shop.customer()
    _, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.send(customer.press(summary, "✅"))
    shop.clock.advance(570 + 60)  # due, but the cancelled order is still watched (no lookup ran)
    await shop.conversation_sweep()
    assert summary.text.startswith("⏳ Confirmed.")  # still waiting, within the grace
    shop.clock.advance(61)
    await sweeps_until(shop, lambda: not summary.text.startswith("⏳"))
    assert summary.text == (
        "I could not send the prompt soon after 19:10, so I did not send it late. Nothing was charged. "
        "Send /pay to try again."
    )
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 1


async def test_the_time_of_cancelling_stays_while_the_cancelled_order_is_looked_up(shop: Shop) -> None:
    """Lookups that find nothing are not changes: the cancel's time is still 19:01 three minutes on."""
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    shop.clock.advance(30)
    await shop.send(customer.press(shop.last(customer.chat_id), "✖️"))
    for _ in range(6):
        shop.clock.advance(30)
        await shop.sweep()
    assert shop.sandbox.stats.calls["/transaction/search"] >= 3
    await shop.type(customer, "/pay", "0712345670")
    assert shop.last(customer.chat_id).text.startswith(f"You cancelled order {readable(order.id)} at 19:01;")
