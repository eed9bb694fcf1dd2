"""At the counter and on the first day: what a cashier, a customer and a newcomer meet,
word for word in both languages.

The clock starts at 19:00:00 on 24 Nov 2025 in Nairobi; the sandbox answers a prompt 3 s after it
arrives (phones ending in 3 have too little balance).
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from bot.app import build_application
from bot.config import Settings
from bot.i18n import formats, speaking
from bot.requests import sentences as request_sentences
from bot.requests.qr import counter_sign_png
from bot.requests.telegram import refresh_request_messages
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import ManualClock, Shop, readable, start_shop, stop_shop, with_settings

# -- 1. the counter lockout -------------------------------------------------------------------------

LOCKED = {
    "en": "❌ The payment did not go through: the balance was not enough. Nothing was charged.\n"
    "Order {id} (KES 500). Top up your M-Pesa balance (or use Fuliza) and tap the button to try again, "
    "or send /pay to pay from another number.\n"
    "This phone has had all the prompts it may get within an hour: the next can go out after 20:01. "
    "To pay now, pay the shop directly instead: cash, or the shop's own till or Pay Bill number.",
    "sw": "❌ Malipo hayakufanikiwa: salio halitoshi. Hakuna pesa iliyokatwa.\n"
    "Oda {id} (KES 500). Ongeza salio la M-Pesa (au tumia Fuliza) kisha bonyeza kitufe kujaribu tena, "
    "au tuma /pay kulipa kwa nambari nyingine.\n"
    "Simu hii imeshapata jumbe zote za PIN inazoruhusiwa ndani ya saa moja: ujumbe unaofuata unaweza "
    "kutumwa baada ya 20:01. Kulipa sasa, lipa dukani moja kwa moja: pesa taslimu, au nambari ya till au "
    "Paybill ya duka lenyewe.",
}

REFUSED = {
    "en": "07** ***673 has had 3 PIN prompts in the last hour, the most one phone may get, so that nobody can "
    "flood a stranger's phone with prompts. The next can go out after 20:01. "
    "To pay now, pay the shop directly instead: cash, or the shop's own till or Pay Bill number.",
    "sw": "07** ***673 imepata jumbe za PIN mara 3 ndani ya saa moja, idadi ya juu kwa simu moja, ili mtu "
    "yeyote asiweze kujaza simu ya mtu mwingine jumbe za PIN. Ujumbe unaofuata unaweza kutumwa baada ya "
    "20:01. Kulipa sasa, lipa dukani moja kwa moja: pesa taslimu, au nambari ya till au Paybill ya duka "
    "lenyewe.",
}


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_the_last_prompt_of_the_hour_offers_no_button_but_a_way_to_pay(shop: Shop, lang: str) -> None:
    cashier = shop.customer(language_code=lang)
    shop.clock.advance(30)  # the first prompt at 19:00:30: its hour ends at 20:00:30
    for _ in range(3):
        order = await shop.pay(cashier, phone="0712345673")  # too little balance, three times
        shop.clock.advance(5)
        await shop.sweep()
    told = shop.last(cashier.chat_id)
    assert told.text == LOCKED[lang].format(id=readable(order.id))
    assert told.button_labels == []

    await shop.type(cashier, "/pay", "0712345673")
    assert shop.last(cashier.chat_id).text.startswith(REFUSED[lang])

    shop.clock.advance(60 * 60 - 16)  # 20:00:29: still within the hour of the first prompt
    await shop.type(cashier, "/pay", "0712345673")
    assert shop.last(cashier.chat_id).text.startswith(REFUSED[lang])
    shop.clock.advance(31)  # 20:01, the time it said (rounded up, never too early): taken
    await shop.type(cashier, "/pay", "0712345673")
    assert "0712 345 673" in shop.last(cashier.chat_id).text


# -- 4. the counter sign says what it is --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", ("Scan with your phone's camera: it opens Telegram", "then pay with M-PESA or Airtel Money")),
        ("sw", ("Skani kwa kamera ya simu yako: itafungua Telegram", "kisha lipa na M-PESA au Airtel Money")),
    ],
)
def test_the_counter_sign_says_to_scan_with_the_camera_and_that_it_opens_telegram(
    lang: str, said: tuple[str, str]
) -> None:
    with speaking(lang):
        assert request_sentences.qr_caption_lines() == said
        assert counter_sign_png("Mama Mboga", "https://t.me/shop_bot?start=shop").startswith(b"\x89PNG")


# -- 7. the Pay Bill way round ---------------------------------------------------------------------

PAYBILL_STEPS = {
    "en": "No prompt on your phone? Pay the same order by hand:\n{first}\n{second}\n"
    "If the prompt appears later, do not enter your PIN: you would pay twice.\n"
    "Order {id}. I'll tell you here as soon as it is paid.",
    "sw": "Ujumbe wa PIN haujafika? Lipa oda hii mwenyewe kupitia menyu ya simu:\n{first}\n{second}\n"
    "Ujumbe wa PIN ukitokea baadaye, usiweke PIN yako: utakuwa umelipa mara mbili.\n"
    "Oda {id}. Nitakujulisha hapa mara tu itakapolipwa.",
}
MPESA_STEP = {
    "en": "M-PESA → Lipa na M-PESA → Pay Bill → Business no. 261144 → Account {account} → KES 500",
    "sw": "M-PESA → Lipa na M-PESA → Pay Bill → Nambari ya biashara 261144 → Nambari ya akaunti {account} → KES 500",
}
AIRTEL_STEP = {
    "en": "Airtel Money → Make Payments → Paybill → Business no. 510800 → Reference {account} → KES 500",
    "sw": "Airtel Money → Make Payments → Paybill → Nambari ya biashara 510800 → Nambari ya kumbukumbu {account} → "
    "KES 500",
}


@pytest.mark.parametrize("lang", ["en", "sw"])
@pytest.mark.parametrize("phone", ["0712345674", "0733345674"])  # M-Pesa, Airtel Money: never answered
async def test_paybill_steps_warn_against_paying_twice_and_start_with_the_payers_network(
    shop: Shop, lang: str, phone: str
) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone=phone)
    await shop.send(customer.press(shop.last(customer.chat_id), "📋"))
    account = (await shop.order(order.id)).paybill_account
    mpesa, airtel = MPESA_STEP[lang].format(account=account), AIRTEL_STEP[lang].format(account=account)
    first, second = (mpesa, airtel) if phone.startswith("071") else (airtel, mpesa)
    said = PAYBILL_STEPS[lang].format(first=first, second=second, id=order.id)
    assert shop.last(customer.chat_id).text == said


# -- 8. what the merchant and /orders say ----------------------------------------------------------

ROW = {
    "en": "{id} · 24 Nov 2025, 19:00 · KES 500 · 07** ***675 · ⚠️ paid less than asked · KES 450 received · {payer} · "
    "receipt {receipt}",
    "sw": "{id} · 24 Novemba 2025, 19:00 · KES 500 · 07** ***675 · ⚠️ imelipwa chini ya kiasi kilichoombwa · "
    "KES 450 zimepokelewa · {payer} · risiti {receipt}",
}
ASKING = {
    "en": "💳 Asking for the remaining KES 50: order {id}.",
    "sw": "💳 Ninaomba kiasi kilichobaki, KES 50: oda {id}.",
}


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_orders_shows_what_was_received_and_from_whom_and_pay_the_rest_says_what_it_asks(
    shop: Shop, lang: str
) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone="0712345675")  # pays KES 450 of 500
    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    receipt = shop.last(customer.chat_id)
    await shop.type(customer, "/orders")
    row = ROW[lang].format(id=readable(order.id), payer=paid.payer_name, receipt=paid.receipt_code)
    assert row in shop.last(customer.chat_id).text.splitlines()

    await shop.send(customer.press(receipt, "💳"))
    rest = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert receipt.text.endswith("\n" + ASKING[lang].format(id=readable(rest.id)))


# -- 3. whom and what the payer pays; 6. the shop's name ----------------------------------------------

STAFF = 901


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_settings(settings, staff_ids=frozenset({STAFF}))


async def request_link(shop: Shop, command: str = "/request 500 2 loaves") -> str:
    """A member of staff sends /request: the token of its link."""
    await shop.type(shop.customer(STAFF, "Amina"), command)
    found = re.search(r"\?start=([A-Za-z0-9_-]+)", shop.last(STAFF).text)
    assert found is not None
    return found.group(1)


SUMMARY = {
    "en": "Please check:\nTo: Mama Mboga\n{for_line}Amount: KES 500\nPhone: 0712 345 677\nPay with: M-Pesa\n\n"
    "Tap Confirm and your phone will ask for your PIN.",
    "sw": "Tafadhali hakikisha:\nMpokeaji: Mama Mboga\n{for_line}Kiasi: KES 500\nNambari ya simu: 0712 345 677\n"
    "Njia ya kulipa: M-Pesa\n\nBonyeza Thibitisha, kisha simu yako itaomba PIN yako.",
}
FOR_LINE = {"en": "For: 2 loaves\n", "sw": "Malipo ya: 2 loaves\n"}
RECEIPT = {
    "en": "{receipt} Confirmed. KES 500 paid to Mama Mboga from 0712 345 677 ({payer}) on 24/11/25 at 7:00 PM. "
    "For: 2 loaves. Order {id}.",
    "sw": "{receipt} Imethibitishwa. KES 500 zimelipwa kwa Mama Mboga kutoka 0712 345 677 ({payer}) tarehe "
    "24/11/25 saa 7:00 PM. Malipo ya: 2 loaves. Oda {id}.",
}


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_the_summary_names_the_shop_and_a_requests_note_and_so_does_its_receipt(shop: Shop, lang: str) -> None:
    customer = shop.customer(language_code=lang)
    await shop.type(customer, "/pay", "0712 345 677", "500")
    assert shop.last(customer.chat_id).text == SUMMARY[lang].format(for_line="")

    token = await request_link(shop)
    await shop.type(customer, "/cancel", f"/start {token}", "0712 345 677")
    summary = shop.last(customer.chat_id)
    assert summary.text == SUMMARY[lang].format(for_line=FOR_LINE[lang])
    await shop.send(customer.press(summary, "✅"))
    order = await shop.only_order(customer.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    said = RECEIPT[lang].format(receipt=paid.receipt_code, payer=paid.payer_name, id=readable(order.id))
    assert shop.last(customer.chat_id).text == said


@pytest.mark.parametrize(
    ("lang", "paid_to", "stray"),
    [
        ("en", "Confirmed. KES 500 paid to the shop from", "To pay the shop, send /pay."),
        ("sw", "Imethibitishwa. KES 500 zimelipwa kwa duka kutoka", "Kulipa duka, tuma /pay."),
    ],
)
async def test_without_a_shop_name_the_shop_is_named_in_the_readers_language(
    settings: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
    lang: str,
    paid_to: str,
    stray: str,
) -> None:
    shop = await start_shop(with_settings(settings, shop_name=""), telegram, sandbox, clock)
    try:
        customer = shop.customer(language_code=lang)
        await shop.pay(customer, phone="0712345677")
        shop.clock.advance(5)
        await shop.sweep()
        assert paid_to in shop.last(customer.chat_id).text
        await shop.type(customer, "hello")
        assert shop.last(customer.chat_id).text.startswith(stray)
    finally:
        await stop_shop(shop)


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", "Mama Mboga cancelled this payment request. Please ask for a new one."),
        ("sw", "Ombi hili la malipo limeghairiwa na Mama Mboga. Tafadhali omba ombi jipya."),
    ],
)
async def test_a_cancelled_request_names_the_shop_that_cancelled_it(shop: Shop, lang: str, said: str) -> None:
    token = await request_link(shop)
    staff = shop.customer(STAFF, "Amina")
    await shop.type(staff, "/requests")
    await shop.send(staff.press(shop.last(STAFF), "Cancel R"))
    customer = shop.customer(language_code=lang)
    await shop.type(customer, f"/start {token}")
    assert shop.last(customer.chat_id).text.startswith(said)


def test_a_live_bot_without_a_shop_name_warns_at_start_up(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    build_application(with_settings(settings, ipay_live=True, ipay_sandbox=False, shop_name="Mama Mboga"))
    assert "SHOP_NAME" not in caplog.text
    build_application(with_settings(settings, ipay_live=True, ipay_sandbox=False, shop_name=""))
    assert 'SHOP_NAME is not set: customers read "the shop" ("duka" in Kiswahili)' in caplog.text


# -- 5. every edit in the language the message was written in ---------------------------------------


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", "🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves."),
        ("sw", "🧾 Mama Mboga: ✅ Limelipwa: KES 500 kwa 2 loaves."),
    ],
)
async def test_a_request_card_stays_in_its_language_when_paid(shop: Shop, lang: str, said: str) -> None:
    await shop.type(shop.customer(STAFF, "Amina", language_code=lang), "/start")  # the merchant's language
    token = await request_link(shop)
    card = shop.last(STAFF)
    customer = shop.customer(language_code="en" if lang == "sw" else "sw")  # the payer speaks the other
    await shop.type(customer, f"/start {token}", "0712 345 677")
    await shop.send(customer.press(shop.last(customer.chat_id), "✅"))
    shop.clock.advance(5)
    await shop.sweep()
    await refresh_request_messages(shop.app)
    assert card.text == said


async def test_the_kiswahili_walk_through_has_nothing_left_to_correct(shop: Shop) -> None:
    customer = shop.customer(language_code="sw")
    await shop.type(customer, "/help")
    assert "\n/orders [leo|wiki|N]: " in shop.last(customer.chat_id).text
    await shop.type(customer, "/lugha")
    await shop.send(customer.press(shop.last(customer.chat_id), "Kiswahili"))
    assert shop.telegram.bot_messages(customer.chat_id)[-1].text == (
        "Nitazungumza nawe kwa Kiswahili. Tuma /language kubadilisha lugha."
    )
    await shop.type(customer, "/pay", "0712 345 677", "mia tano")
    assert shop.last(customer.chat_id).text.startswith("Sijaelewa kiasi hicho.")
    await shop.type(customer, "500")
    assert "\nNjia ya kulipa: M-Pesa\n" in shop.last(customer.chat_id).text
    order = await shop.pay(customer, phone="0712345677")
    shop.clock.advance(5)
    await shop.sweep()
    await shop.type(customer, f"/status {order.id}")
    assert "\nTarehe: 24 Novemba 2025, 19:00" in shop.last(customer.chat_id).text
    with speaking("sw"):
        assert formats.nairobi_date(1_796_600_000.0) == "7 Desemba 2026"  # no leading zero


# -- 9. the thousands shorthand --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", "Amounts: 500, 1,000, or the shorthand 1k and 1.5k, in whole shillings."),
        ("sw", "Kiasi: 500, 1,000, au kwa ufupi 1k na 1.5k, kwa shilingi kamili."),
    ],
)
async def test_1k_and_1_5k_are_amounts_and_help_says_so(shop: Shop, lang: str, said: str) -> None:
    customer = shop.customer(language_code=lang)
    await shop.type(customer, "/help")
    assert said in shop.last(customer.chat_id).text
    for typed, amount in (("1.5k", "KES 1,500"), ("2K", "KES 2,000"), ("ksh 1.25k", "KES 1,250")):
        await shop.type(customer, "/pay", "0712 345 677", typed)
        assert f"\n{'Amount' if lang == 'en' else 'Kiasi'}: {amount}\n" in shop.last(customer.chat_id).text
    await shop.type(customer, "/pay", "0712 345 677", "1.5m")
    assert shop.last(customer.chat_id).text.startswith(("I couldn't read that", "Sijaelewa kiasi hicho."))


# -- 2. a sale and its follow-ups are one sale ----------------------------------------------------


ADMIN = 9001

ONE_SALE = {
    "en": [
        "Mon 24 Nov: KES 999 received from 1 payment (M-Pesa 999)",
        "Still owed: KES 1",
        "⚠️ paid less than asked · M-Pesa: 1 for KES 1,000 asked, KES 999 received",
    ],
    "sw": [
        "Jumatatu 24 Novemba: KES 999 zimepokelewa kwa malipo 1 (M-Pesa 999)",
        "Bado zinadaiwa: KES 1",
        "⚠️ imelipwa chini ya kiasi kilichoombwa · M-Pesa: oda 1, KES 1,000 ziliombwa, KES 999 zimepokelewa",
    ],
}
ONE_ROW = {
    "en": "{a} · 24 Nov 2025, 19:00 · KES 1,000 · 07** ***675 · ⚠️ paid less than asked · KES 999 received · "
    "Still owed: KES 1 · {payer} · receipts {receipts} · then orders {b}, {c}",
    "sw": "{a} · 24 Novemba 2025, 19:00 · KES 1,000 · 07** ***675 · ⚠️ imelipwa chini ya kiasi kilichoombwa · "
    "KES 999 zimepokelewa · Bado zinadaiwa: KES 1 · {payer} · risiti {receipts} · kisha oda {b}, {c}",
}


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_a_sale_and_its_pay_the_rest_orders_count_once(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, lang: str
) -> None:
    shop = await start_shop(with_settings(settings, admin_ids=frozenset({ADMIN})), telegram, sandbox, clock)
    try:
        customer = shop.customer()
        await shop.pay(customer, phone="0712345675", amount="1000")  # pays 900, then 90 of 100, then 9 of 10
        for _ in range(3):
            shop.clock.advance(5)
            await shop.sweep()
            receipt = shop.last(customer.chat_id)
            if receipt.button_labels:
                await shop.send(customer.press(receipt, "💳"))
        a, b, c = reversed(await shop.services.store.latest_chat_orders(customer.chat_id, 5))
        assert [o.paid_amount for o in (await shop.order(a.id), await shop.order(b.id), await shop.order(c.id))] == [
            900,
            90,
            9,
        ]
        admin = shop.customer(ADMIN, "Owner", language_code=lang)
        await shop.type(admin, "/summary")
        assert shop.last(ADMIN).text.splitlines() == ONE_SALE[lang]
        await shop.type(admin, "/orders")
        orders = [await shop.order(o.id) for o in (a, b, c)]
        row = ONE_ROW[lang].format(
            a=readable(a.id),
            b=readable(b.id),
            c=readable(c.id),
            payer=orders[0].payer_name,
            receipts=", ".join(o.receipt_code or "" for o in orders),
        )
        assert shop.last(ADMIN).text.splitlines()[1:] == [row]
        await shop.type(admin, "/export")
        document = shop.last(ADMIN).document
        assert document is not None
        rows = list(csv.reader(io.StringIO(document["content"].decode("utf-8"))))
        link = rows[0].index("next_order_id")
        assert [(r[0], r[link]) for r in rows[1:]] == [(a.id, b.id), (b.id, c.id), (c.id, "")]
    finally:
        await stop_shop(shop)
