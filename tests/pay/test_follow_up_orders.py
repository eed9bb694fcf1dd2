"""Paying the rest: when the order "💳 Pay the rest" started is paid, the payer's
receipt and the shop owner's line name the first order too, say what was paid on it, and whether
the amount first asked is now paid in full, still short, or over.

The clock starts at 19:00:00 on 24 Nov 2025 in Nairobi. The sandbox's phones ending in 0 wait for
their holder (who pays in full, or pays a different amount by Pay Bill); phones ending in 5 pay 10%
less than asked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.domain import Order, OrderStatus
from bot.sandbox.telegram import TelegramUser
from bot.store import Store
from tests.conftest import MERCHANT_CHAT, Shop, ShopWith, query_plans, readable

HOLDER = "0712345670"  # waits for its holder to pay
PAYS_LESS = "0712345675"  # pays 10% less than asked


@pytest.fixture(params=["en", "sw"])
async def shop_in(request: pytest.FixtureRequest, shop_with: ShopWith) -> Shop:
    """A shop whose owner reads the merchant chat in the language the payer speaks."""
    return await shop_with(merchant_language=request.param)


async def underpaid(shop: Shop, customer: TelegramUser, phone: str, paid_by_paybill: int | None = None) -> Order:
    """/pay KES 500 from `phone`, paid short (by Pay Bill for `paid_by_paybill`, else by the phone)."""
    first = await shop.pay(customer, phone=phone)
    if paid_by_paybill is not None:
        shop.sandbox.pay_by_paybill(first.id, paid_by_paybill)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(first.id)).status is OrderStatus.UNDERPAID
    return first


async def pay_the_rest(shop: Shop, customer: TelegramUser, pay: Callable[[Order], None] | None = None) -> Order:
    """Press "💳 Pay the rest" on the last receipt; the phone's holder pays (`pay`, else as the phone does)."""
    await shop.send(customer.press(shop.last(customer.chat_id), "💳"))
    rest = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    if pay is not None:
        pay(rest)
    shop.clock.advance(5)
    await shop.sweep()
    return await shop.order(rest.id)


def approve(shop: Shop) -> Callable[[Order], None]:
    return lambda order: None if shop.sandbox.answer(order.phone, approve=True) else pytest.fail("no prompt open")


def by_paybill(shop: Shop, amount: int) -> Callable[[Order], None]:
    return lambda order: shop.sandbox.pay_by_paybill(order.id, amount)


async def test_the_rest_paid_in_full_names_the_first_order_on_the_receipt_and_the_owners_line(shop_in: Shop) -> None:
    shop, lang = shop_in, shop_in.services.settings.merchant_language
    customer = shop.customer(language_code=lang)
    first = await underpaid(shop, customer, HOLDER, paid_by_paybill=300)
    rest = await pay_the_rest(shop, customer, approve(shop))
    first = await shop.order(first.id)
    assert (rest.amount, rest.paid_amount, rest.status) == (200, 200, OrderStatus.PAID)
    a, b = readable(first.id), readable(rest.id)
    (r1, _), (r2, p2) = shop.ipay_payment(first.id), shop.ipay_payment(rest.id)
    said = {
        "en": f"{r2} Confirmed. KES 200 paid to Mama Mboga from 0712 345 670 ({p2}) on 24/11/25 "
        f"at 7:00 PM. KES 300 of KES 500 paid earlier on order {a} (receipt {r1}), KES 200 now: "
        f"KES 500 paid in full. Order {b}.",
        "sw": f"{r2} Imethibitishwa. KES 200 zimelipwa kwa Mama Mboga kutoka 0712 345 670 ({p2}) "
        f"tarehe 24/11/25 saa 7:00 PM. KES 300 kati ya KES 500 zililipwa awali kwa oda {a} (risiti {r1}). "
        f"Sasa KES 200: KES 500 zimelipwa kikamilifu. Oda {b}.",
    }
    line = {
        "en": f"{r2} · PAID · KES 200 · M-Pesa · 07** ***670 · received from {p2} · "
        f"order {b} · KES 300 of KES 500 paid earlier on order {a} (receipt {r1}) · order {a} now paid in full · "
        "asked by Wanjiru (501)",
        "sw": f"{r2} · IMELIPWA · KES 200 · M-Pesa · 07** ***670 · imepokelewa kutoka kwa {p2} · "
        f"oda {b} · KES 300 kati ya KES 500 zililipwa awali kwa oda {a} (risiti {r1}) · "
        f"oda {a} sasa imelipwa kikamilifu · imeombwa na Wanjiru (501)",
    }
    assert shop.last(customer.chat_id).text == said[lang]
    assert shop.last(customer.chat_id).buttons == []  # nothing more to do
    assert shop.last(MERCHANT_CHAT).text == line[lang]


async def test_the_rest_paid_short_again_says_what_is_still_to_pay_and_offers_the_rest_again(shop_in: Shop) -> None:
    shop, lang = shop_in, shop_in.services.settings.merchant_language
    customer = shop.customer(language_code=lang)
    first = await underpaid(shop, customer, HOLDER, paid_by_paybill=300)
    rest = await pay_the_rest(shop, customer, by_paybill(shop, 150))  # KES 150 of the 200 left
    first = await shop.order(first.id)
    assert (rest.amount, rest.paid_amount, rest.status) == (200, 150, OrderStatus.UNDERPAID)
    a, b = readable(first.id), readable(rest.id)
    (r1, _), (r2, p2) = shop.ipay_payment(first.id), shop.ipay_payment(rest.id)
    said = {
        "en": f"{r2} Confirmed. KES 150 paid to Mama Mboga from 0712 345 670 ({p2}) on 24/11/25 "
        f"at 7:00 PM. KES 300 of KES 500 paid earlier on order {a} (receipt {r1}), KES 150 now: "
        f"KES 450 of KES 500 paid, KES 50 is still to pay. Order {b}.",
        "sw": f"{r2} Imethibitishwa. KES 150 zimelipwa kwa Mama Mboga kutoka 0712 345 670 ({p2}) "
        f"tarehe 24/11/25 saa 7:00 PM. KES 300 kati ya KES 500 zililipwa awali kwa oda {a} (risiti {r1}). "
        f"Sasa KES 150: KES 450 kati ya KES 500 zimelipwa, bado unadaiwa KES 50. Oda {b}.",
    }
    line = {
        "en": f"{r2} · UNDERPAID · KES 150 · (asked KES 200) · M-Pesa · 07** ***670 · received from "
        f"{p2} · order {b} · KES 300 of KES 500 paid earlier on order {a} (receipt {r1}) · "
        f"KES 50 still to pay on order {a} · asked by Wanjiru (501)",
        "sw": f"{r2} · IMELIPWA PUNGUFU · KES 150 · (kiasi kilichoombwa KES 200) · M-Pesa · 07** ***670 · "
        f"imepokelewa kutoka kwa {p2} · oda {b} · KES 300 kati ya KES 500 zililipwa awali kwa "
        f"oda {a} (risiti {r1}) · KES 50 bado zinadaiwa kwa oda {a} · imeombwa na Wanjiru (501)",
    }
    told = shop.last(customer.chat_id)
    assert told.text == said[lang]
    assert told.button_labels == [{"en": "💳 Pay the rest", "sw": "💳 Lipa kiasi kilichobaki"}[lang]]
    assert shop.last(MERCHANT_CHAT).text == line[lang]


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_a_rest_too_small_for_a_prompt_is_not_asked_for_by_prompt(shop: Shop, lang: str) -> None:
    """iPay sends no prompt for less than KES 10: the button would only fail and use up a prompt."""
    customer = shop.customer(language_code=lang)
    first = await underpaid(shop, customer, PAYS_LESS)  # KES 450 of 500
    rest = await pay_the_rest(shop, customer)  # KES 45 of the 50 left: KES 5 is left
    first = await shop.order(first.id)
    assert (rest.amount, rest.paid_amount, rest.status) == (50, 45, OrderStatus.UNDERPAID)
    a, b, (r1, _) = readable(first.id), readable(rest.id), shop.ipay_payment(first.id)
    said = {
        "en": f" KES 450 of KES 500 paid earlier on order {a} (receipt {r1}), KES 45 now: KES 495 of KES 500 paid, "
        "KES 5 is still to pay. KES 5 is too little for a prompt (the least is KES 10): please pay it to the shop "
        f"directly. Order {b}.",
        "sw": f" KES 450 kati ya KES 500 zililipwa awali kwa oda {a} (risiti {r1}). Sasa KES 45: KES 495 kati ya "
        "KES 500 zimelipwa, bado unadaiwa KES 5. KES 5 ni kiasi kidogo mno kwa ujumbe wa PIN (kiwango cha "
        f"chini ni KES 10): tafadhali lipa kiasi hicho moja kwa moja dukani. Oda {b}.",
    }
    told = shop.last(customer.chat_id)
    assert told.text.endswith(said[lang])
    assert told.buttons == []
    assert shop.last(MERCHANT_CHAT).text.endswith(f" · KES 5 still to pay on order {a} · asked by Wanjiru (501)")


async def test_a_first_order_paid_short_by_less_than_a_prompt_can_ask_says_so_too(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone=PAYS_LESS, amount="10")  # pays KES 9
    shop.clock.advance(5)
    await shop.sweep()
    told = shop.last(customer.chat_id)
    assert told.text.endswith(
        " That is KES 1 less than the KES 10 asked: KES 1 is still to pay. KES 1 is too little for a prompt "
        f"(the least is KES 10): please pay it to the shop directly. Order {readable(order.id)}."
    )
    assert told.buttons == []


async def test_after_two_short_payments_the_receipt_names_both_earlier_orders(shop: Shop) -> None:
    customer = shop.customer()
    first = await underpaid(shop, customer, HOLDER, paid_by_paybill=300)
    second = await pay_the_rest(shop, customer, by_paybill(shop, 150))  # KES 150 of the 200 left
    third = await pay_the_rest(shop, customer, approve(shop))  # the last KES 50
    first = await shop.order(first.id)
    assert (second.status, third.amount, third.status) == (OrderStatus.UNDERPAID, 50, OrderStatus.PAID)
    a, b, c = readable(first.id), readable(second.id), readable(third.id)
    (r1, _), (r2, _), (r3, p3) = (shop.ipay_payment(o.id) for o in (first, second, third))
    assert shop.last(customer.chat_id).text == (
        f"{r3} Confirmed. KES 50 paid to Mama Mboga from 0712 345 670 ({p3}) on 24/11/25 at 7:00 PM. "
        f"KES 450 of KES 500 paid earlier on orders {a}, {b} (receipts {r1}, {r2}), KES 50 now: KES 500 paid in full. "
        f"Order {c}."
    )
    assert shop.last(MERCHANT_CHAT).text == (
        f"{r3} · PAID · KES 50 · M-Pesa · 07** ***670 · received from {p3} · order {c} · "
        f"KES 450 of KES 500 paid earlier on orders {a}, {b} (receipts {r1}, {r2}) · order {a} now paid in full · "
        "asked by Wanjiru (501)"
    )


async def test_the_rest_paid_over_says_the_extra_and_the_refund_due_on_the_first_order(shop: Shop) -> None:
    customer = shop.customer()
    first = await underpaid(shop, customer, HOLDER, paid_by_paybill=300)
    rest = await pay_the_rest(shop, customer, by_paybill(shop, 250))  # KES 250 for the 200 left
    first = await shop.order(first.id)
    assert rest.status is OrderStatus.OVERPAID
    a, b, (r1, _) = readable(first.id), readable(rest.id), shop.ipay_payment(first.id)
    assert shop.last(customer.chat_id).text.endswith(
        f" KES 300 of KES 500 paid earlier on order {a} (receipt {r1}), KES 250 now: KES 550 paid, KES 50 more than "
        f"the KES 500 asked: the shop will settle the extra KES 50 with you. Order {b}."
    )
    assert shop.last(MERCHANT_CHAT).text.endswith(
        f" · order {b} · KES 300 of KES 500 paid earlier on order {a} (receipt {r1}) · "
        f"order {a} overpaid, refund of KES 50 due · asked by Wanjiru (501)"
    )
    assert "refund of KES 50 due · receipt" not in shop.last(MERCHANT_CHAT).text  # told once, about the first


async def test_sending_the_prompt_again_after_no_money_keeps_the_plain_receipt(shop: Shop) -> None:
    customer = shop.customer()
    first = await shop.pay(customer, phone=HOLDER)
    assert shop.sandbox.answer("254712345670", approve=False)  # declined on the phone
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(first.id)).status is OrderStatus.CANCELLED
    await shop.send(customer.press(shop.last(customer.chat_id), "🔁"))
    again = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(5)
    await shop.sweep()
    code, payer = shop.ipay_payment(again.id)
    assert shop.last(customer.chat_id).text == (
        f"{code} Confirmed. KES 500 paid to Mama Mboga from 0712 345 670 ({payer}) "
        f"on 24/11/25 at 7:00 PM. Order {readable(again.id)}."
    )
    assert shop.last(MERCHANT_CHAT).text == (
        f"{code} · PAID · KES 500 · M-Pesa · 07** ***670 · received from {payer} · "
        f"order {readable(again.id)} · asked by Wanjiru (501)"
    )


async def test_an_orders_earlier_attempts_are_an_index_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read at every payment's finalisation: never a scan of every order (SQLite's plan)."""
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        (plan,) = await query_plans(store, monkeypatch, lambda: store.earlier_attempts("NOSUCH"))
    finally:
        await store.close()
    assert "SEARCH orders USING INDEX orders_retried_by (retry_order_id=?)" in plan
    assert "SEARCH o USING INDEX orders_retried_by (retry_order_id=?)" in plan
    assert "SCAN orders" not in plan and "SCAN o /" not in plan


@pytest.mark.parametrize(("second", "status"), [(500, OrderStatus.PAID), (450, OrderStatus.UNDERPAID)])
async def test_money_on_both_attempts_says_the_first_was_paid_too_and_the_extra_is_owed(
    shop: Shop, second: int, status: OrderStatus
) -> None:
    """No prompt showed, so the payer sent it again once the first had ended, then paid both
    orders by Pay Bill. Even when the second is paid short, nothing more is asked: the first
    covered it."""
    customer = shop.customer()
    first = await shop.pay(customer, phone="0712345674")  # the prompt times out on the phone
    for _ in range(11):  # watched until its deadline (no second prompt meanwhile), then ended
        shop.clock.advance(60)
        await shop.sweep()
    assert (await shop.order(first.id)).status is OrderStatus.EXPIRED
    assert (await shop.order(first.id)).next_poll_at is None
    await shop.send(customer.press_data(shop.last(customer.chat_id), f"order:retry:{first.id}"))
    again = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    shop.sandbox.pay_by_paybill(first.id)  # the first one is paid after all, and iPay calls back
    await shop.services.payments.check(await shop.order(first.id))
    await shop.settle()
    assert (await shop.order(first.id)).status is OrderStatus.PAID
    shop.sandbox.pay_by_paybill(again.id, second)  # and so is the second, which timed out on the phone too
    shop.clock.advance(120)
    await shop.sweep()
    first, again = await shop.order(first.id), await shop.order(again.id)
    assert again.status is status
    a, b, r1, extra = readable(first.id), readable(again.id), first.receipt_code, f"KES {second:,}"
    told = shop.last(customer.chat_id)
    assert told.text.endswith(
        f" KES 500 of KES 500 paid earlier on order {a} (receipt {r1}), {extra} now: KES {500 + second:,} paid, "
        f"{extra} more than the KES 500 asked: the shop will settle the extra {extra} with you. Order {b}."
    )
    assert told.buttons == []
    assert shop.last(MERCHANT_CHAT).text.endswith(
        f" · order {b} · KES 500 of KES 500 paid earlier on order {a} (receipt {r1}) · "
        f"order {a} overpaid, refund of {extra} due · asked by Wanjiru (501)"
    )


async def test_an_old_pay_the_rest_button_for_a_rest_too_small_explains_instead_of_prompting(shop: Shop) -> None:
    """A "Pay the rest" button shown before such rests lost it: pressing it prompts nobody."""
    customer = shop.customer()
    order = await shop.pay(customer, phone=PAYS_LESS, amount="10")  # pays KES 9
    shop.clock.advance(5)
    await shop.sweep()
    told = shop.last(customer.chat_id)
    await shop.send(customer.press_data(told, f"order:rest:{order.id}"))
    assert shop.telegram.callback_answers[-1]["text"] == (
        "KES 1 is too little for a prompt (the least is KES 10): please pay it to the shop directly."
    )
    assert len(await shop.services.store.latest_chat_orders(customer.chat_id, 5)) == 1


@pytest.mark.parametrize(
    ("lang", "line"),
    [("en", "The rest: order {b}, KES 50: ✅ paid"), ("sw", "Kiasi kilichobaki: oda {b}, KES 50: ✅ imelipwa")],
)
async def test_status_of_the_first_order_names_the_order_that_paid_the_rest(shop: Shop, lang: str, line: str) -> None:
    customer = shop.customer(language_code=lang)
    first = await underpaid(shop, customer, PAYS_LESS, paid_by_paybill=450)
    rest = await pay_the_rest(shop, customer, approve(shop))
    await shop.type(customer, f"/status {readable(first.id)}")
    assert shop.last(customer.chat_id).text.endswith("\n" + line.format(b=readable(rest.id)))
