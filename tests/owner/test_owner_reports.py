"""What the shop owner reads in /summary, /orders, /export and the evening summary, in English
and Kiswahili, driven through Telegram updates. The shop's clock starts on Monday 24 Nov 2025
at 19:00 in Nairobi."""

# ruff: noqa: RUF001  (the owner reads a range of days with an en dash, as print has it)

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from telegram.ext import CallbackContext

from bot.app import daily_summary_job
from bot.config import Settings
from bot.domain import OrderStatus
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, ShopWith, readable, start_shop, stop_shop, with_settings

ADMIN, CASHIER, CUSTOMER = 9001, 9002, 501
DAY = 24 * 3600


STAFFED: dict[str, Any] = {"admin_ids": frozenset({ADMIN}), "staff_ids": frozenset({CASHIER})}


@pytest.fixture
def shop_settings(settings: Settings) -> Settings:
    return with_settings(settings, **STAFFED)


@pytest.fixture
async def owner_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(**STAFFED)


async def _ask(shop: Shop, language: str, command: str) -> str:
    """The admin (who speaks `language`) sends `command`; the bot's last answer to them."""
    await shop.send(shop.customer(ADMIN, "Owner", language_code=language).text(command))
    return shop.last(ADMIN).text


async def _take(shop: Shop, phone: str, amount: str) -> str:
    """The cashier takes one payment (the phone's last digit decides how it ends); its order id."""
    order = await shop.pay(shop.customer(CASHIER, "Cashier"), phone=phone, amount=amount)
    shop.clock.advance(5)
    await shop.sweep()
    return order.id


async def _a_busy_day(shop: Shop) -> None:
    await _take(shop, "0712345678", "500")  # paid
    await _take(shop, "0733345678", "300")  # paid, Airtel Money
    await _take(shop, "0712345675", "1,000")  # pays 900
    await _take(shop, "0712345672", "200")  # wrong PIN
    await _take(shop, "0712345674", "400")  # no answer yet


# -- /summary ---------------------------------------------------------------------------------

BUSY_DAY = {
    "en": [
        "Mon 24 Nov: KES 1,700 received from 3 payments (M-Pesa 1,400 · Airtel Money 300); 1 not paid; 1 still waiting",
        "Still owed: KES 100",
        "⚠️ paid less than asked · M-Pesa: 1 for KES 1,000 asked, KES 900 received",
        "✅ paid · M-Pesa: 1 for KES 500 asked, KES 500 received",
        "✅ paid · Airtel Money: 1 for KES 300 asked, KES 300 received",
        "⏳ waiting for payment · M-Pesa: 1 for KES 400 asked",
        "❌ failed · M-Pesa: 1 for KES 200 asked",
    ],
    "sw": [
        "Jumatatu 24 Novemba: KES 1,700 zimepokelewa kwa malipo 3 (M-Pesa 1,400 · Airtel Money 300); "
        "oda 1 haijalipwa; oda 1 bado inasubiri",
        "Bado zinadaiwa: KES 100",
        "⚠️ imelipwa chini ya kiasi kilichoombwa · M-Pesa: oda 1, KES 1,000 ziliombwa, KES 900 zimepokelewa",
        "✅ imelipwa · M-Pesa: oda 1, KES 500 ziliombwa, KES 500 zimepokelewa",
        "✅ imelipwa · Airtel Money: oda 1, KES 300 ziliombwa, KES 300 zimepokelewa",
        "⏳ inasubiri malipo · M-Pesa: oda 1, KES 400 ziliombwa",
        "❌ haikufanikiwa · M-Pesa: oda 1, KES 200 ziliombwa",
    ],
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_summary_opens_with_the_day_and_what_came_in_then_the_money_first(
    owner_shop: Shop, language: str
) -> None:
    await _a_busy_day(owner_shop)
    assert (await _ask(owner_shop, language, "/summary")).splitlines() == BUSY_DAY[language]


HEADLINES = {
    "en": {
        "/summary": "Mon 24 Nov: nothing received; 2 not paid",
        "/summary yesterday": "Sun 23 Nov: KES 500 received from 1 payment (M-Pesa 500)",
        "/summary week": "18–24 Nov: KES 500 received from 1 payment (M-Pesa 500); 2 not paid",
        "/summary month": "1–24 Nov: KES 500 received from 1 payment (M-Pesa 500); 2 not paid",
        "/summary 2025-10-28": "28 Oct – 24 Nov: KES 500 received from 1 payment (M-Pesa 500); 2 not paid",
        "/summary 2025-11-20 2025-11-22": "20–22 Nov: no orders.",
        "/summary 2024-12-30 2025-01-02": "30 Dec 2024 – 2 Jan 2025: no orders.",
        "/summary 2024-03-01 2024-03-01": "Fri 1 Mar 2024: no orders.",
        "/summary 2024-03-01 2024-03-05": "1–5 Mar 2024: no orders.",
    },
    "sw": {
        "/summary": "Jumatatu 24 Novemba: hakuna pesa iliyopokelewa; oda 2 hazijalipwa",
        "/summary yesterday": "Jumapili 23 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500)",
        "/summary week": "18–24 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500); oda 2 hazijalipwa",
        "/summary month": "1–24 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500); oda 2 hazijalipwa",
        "/summary 2025-10-28": (
            "28 Oktoba – 24 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500); oda 2 hazijalipwa"
        ),
        "/summary jana": "Jumapili 23 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500)",
        "/summary Wiki": "18–24 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500); oda 2 hazijalipwa",
        "/summary mwezi": "1–24 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500); oda 2 hazijalipwa",
        "/summary leo": "Jumatatu 24 Novemba: hakuna pesa iliyopokelewa; oda 2 hazijalipwa",
        "/summary 2025-11-20 2025-11-22": "20–22 Novemba: hakuna oda.",
        "/summary 2024-12-30 2025-01-02": "30 Desemba 2024 – 2 Januari 2025: hakuna oda.",
        "/summary 2024-03-01 2024-03-01": "Ijumaa 1 Machi 2024: hakuna oda.",
        "/summary 2024-03-01 2024-03-05": "1–5 Machi 2024: hakuna oda.",
    },
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_each_period_is_named_by_its_dates(owner_shop: Shop, language: str) -> None:
    shop = owner_shop
    shop.clock.advance(-DAY)  # Sunday: one payment
    await _take(shop, "0712345678", "500")
    shop.clock.advance(DAY)  # Monday: two that did not go through
    await _take(shop, "0712345671", "200")  # cancelled on the phone
    await _take(shop, "0712345673", "300")  # not enough money
    for command, headline in HEADLINES[language].items():
        assert (await _ask(shop, language, command)).splitlines()[0] == headline, command
    assert (await _ask(shop, language, "/summary")).splitlines()[1:] == NOT_PAID_ROWS[language]  # most asked first


NOT_PAID_ROWS = {
    "en": ["❌ failed · M-Pesa: 1 for KES 300 asked", "✖️ cancelled on the phone · M-Pesa: 1 for KES 200 asked"],
    "sw": [
        "❌ haikufanikiwa · M-Pesa: oda 1, KES 300 ziliombwa",
        "✖️ imeghairiwa kwenye simu · M-Pesa: oda 1, KES 200 ziliombwa",
    ],
}


DAILY = {
    "en": "📊 Mama Mboga · Mon 24 Nov: KES 500 received from 1 payment (M-Pesa 500); 1 not paid\n"
    "✅ paid · M-Pesa: 1 for KES 500 asked, KES 500 received\n"
    "❌ failed · M-Pesa: 1 for KES 200 asked",
    "sw": "📊 Mama Mboga · Jumatatu 24 Novemba: KES 500 zimepokelewa kwa malipo 1 (M-Pesa 500); oda 1 haijalipwa\n"
    "✅ imelipwa · M-Pesa: oda 1, KES 500 ziliombwa, KES 500 zimepokelewa\n"
    "❌ haikufanikiwa · M-Pesa: oda 1, KES 200 ziliombwa",
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_the_evening_summary_opens_with_the_shop_and_the_headline(
    shop_settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, language: str
) -> None:
    shop = await start_shop(with_settings(shop_settings, merchant_language=language), telegram, sandbox, clock)
    try:
        await _take(shop, "0712345672", "200")  # wrong PIN
        await _take(shop, "0712345678", "500")
        await daily_summary_job(CallbackContext(shop.app))
        await shop.settle()
        assert shop.last(MERCHANT_CHAT).text == DAILY[language]
    finally:
        await stop_shop(shop)


# -- what a command takes, said for the command typed ---------------------------------------

USAGE = {
    "en": {
        "orders": "Send /orders with a number of orders, or with today, yesterday, week, month or dates as "
        "YYYY-MM-DD (one date: from that day to today), for example /orders 20, /orders week or "
        "/orders 2025-11-01.",
        "summary": "Send /summary with today, yesterday, week, month or dates as YYYY-MM-DD (one date: from that "
        "day to today), for example /summary week or /summary 2025-11-01.",
        "export": "Send /export with dates as YYYY-MM-DD (one date: from that day to today; two: from the first "
        "to the last), or with today, yesterday, week or month, for example /export 2025-11-01 or "
        "/export 2025-11-01 2025-11-24.",
    },
    "sw": {
        "orders": "Tuma /orders pamoja na idadi ya oda, au leo, jana, wiki, mwezi au tarehe kama YYYY-MM-DD "
        "(tarehe moja: kuanzia siku hiyo hadi leo). Kwa mfano /orders 20, /orders wiki au /orders 2025-11-01.",
        "summary": "Tuma /summary pamoja na leo, jana, wiki, mwezi au tarehe kama YYYY-MM-DD (tarehe moja: kuanzia "
        "siku hiyo hadi leo). Kwa mfano /summary wiki au /summary 2025-11-01.",
        "export": "Tuma /export pamoja na tarehe kama YYYY-MM-DD (tarehe moja: kuanzia siku hiyo hadi leo; mbili: "
        "kuanzia ya kwanza hadi ya mwisho), au leo, jana, wiki au mwezi. Kwa mfano /export 2025-11-01 au "
        "/export 2025-11-01 2025-11-24.",
    },
}


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize(
    "typed",
    [
        "/orders lastweek",
        "/orders 2025-11-24 2025-11-01",  # the end before the start
        "/orders 1 2 3",
        "/summary lastweek",
        "/summary 2025-11-30",  # from a day still to come to today
        "/summary 5",  # a number of orders means nothing to totals
        "/export junk",
        "/export 24/11/2025",
        "/export 2025-11-01 2025-11-02 2025-11-03",
    ],
)
async def test_a_period_that_cannot_be_read_is_answered_with_that_commands_usage(
    owner_shop: Shop, language: str, typed: str
) -> None:
    command = typed.split()[0].removeprefix("/")
    assert await _ask(owner_shop, language, typed) == USAGE[language][command]
    assert not [m for m, _ in owner_shop.telegram.calls if m == "sendDocument"]


# -- /orders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_orders_takes_a_day_from_then_to_today_or_a_range_and_shows_receipts(
    owner_shop: Shop, language: str
) -> None:
    shop = owner_shop
    shop.clock.advance(-2 * DAY)  # Saturday
    saturday = await _take(shop, "0712345678", "500")
    shop.clock.advance(DAY)  # Sunday
    sunday = await _take(shop, "0712345672", "200")  # wrong PIN: no receipt
    shop.clock.advance(DAY)  # Monday
    monday = await _take(shop, "0733345679", "300")
    receipt = {order_id: (await shop.order(order_id)).receipt_code for order_id in (saturday, monday)}
    payer = {order_id: (await shop.order(order_id)).payer_name for order_id in (saturday, monday)}
    heading, receipt_word, failed = {
        "en": ("Orders ({period}, every chat):", "receipt", "❌ failed"),
        "sw": ("Oda ({period}, kila gumzo):", "risiti", "❌ haikufanikiwa"),
    }[language]
    rows = {
        saturday: f"{readable(saturday)} · 22 Nov 2025, 19:00 · KES 500 · 07** ***678 · ✅ paid · "
        f"{payer[saturday]} · receipt {receipt[saturday]}",
        sunday: f"{readable(sunday)} · 23 Nov 2025, 19:00 · KES 200 · 07** ***672 · ❌ failed",
        monday: f"{readable(monday)} · 24 Nov 2025, 19:00 · KES 300 · 07** ***679 · ✅ paid · "
        f"{payer[monday]} · receipt {receipt[monday]}",
    }
    if language == "sw":
        rows = {
            key: row.replace("Nov 2025", "Novemba 2025")
            .replace("✅ paid", "✅ imelipwa")
            .replace("❌ failed", failed)
            .replace("receipt", receipt_word)
            for key, row in rows.items()
        }
    expected = {
        "/orders 2025-11-23": ("23–24 Nov", [monday, sunday]),
        "/orders 2025-11-22 2025-11-23": ("22–23 Nov", [sunday, saturday]),
        "/orders yesterday": ("Sun 23 Nov", [sunday]),
        "/orders 2025-11-24": ("Mon 24 Nov", [monday]),
        "/orders week": ("18–24 Nov", [monday, sunday, saturday]),
    }
    names = {"23–24 Nov": "23–24 Novemba", "22–23 Nov": "22–23 Novemba", "Sun 23 Nov": "Jumapili 23 Novemba"}
    names |= {"Mon 24 Nov": "Jumatatu 24 Novemba", "18–24 Nov": "18–24 Novemba"}
    for command, (period, order_ids) in expected.items():
        period = names[period] if language == "sw" else period
        answer = await _ask(shop, language, command)
        assert answer.splitlines() == [heading.format(period=period)] + [rows[i] for i in order_ids], command


MORE = {
    "en": (
        "Only the newest 2 are listed. /export 2025-11-18 2025-11-24 sends them all.",
        "Only the newest 2 are listed. /export 2025-11-24 sends them all.",
        "Only the newest 2 are listed.",
    ),
    "sw": (
        "Oda 2 za karibuni tu ndizo zimeorodheshwa. Tuma /export 2025-11-18 2025-11-24 upate zote.",
        "Oda 2 za karibuni tu ndizo zimeorodheshwa. Tuma /export 2025-11-24 upate zote.",
        "Oda 2 za karibuni tu ndizo zimeorodheshwa.",
    ),
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_orders_says_when_a_period_holds_more_than_it_lists(
    owner_shop: Shop, monkeypatch: pytest.MonkeyPatch, language: str
) -> None:
    shop = owner_shop
    monkeypatch.setattr("bot.reports.service.MAX_LISTED", 2)  # fifty in real life
    customer = shop.customer(CUSTOMER, language_code=language)
    ids = [(await shop.pay(customer, phone=f"071234567{digit}", amount="100")).id for digit in (7, 8, 9)]
    week, today, own_chat = MORE[language]
    answer = (await _ask(shop, language, "/orders week")).splitlines()
    assert [line.split(" · ")[0] for line in answer[1:3]] == [readable(ids[2]), readable(ids[1])]
    assert answer[3] == week
    assert (await _ask(shop, language, "/orders today")).splitlines()[3] == today
    await shop.send(customer.text("/orders today"))  # not an admin: no /export to offer
    assert shop.last(CUSTOMER).text.splitlines()[3] == own_chat


# -- /export ---------------------------------------------------------------------------------

NOTHING = {
    "en": {
        "/export yesterday": "No orders on Sun 23 Nov: no file to send.",
        "/export 2025-11-20 2025-11-23": "No orders from Thu 20 Nov to Sun 23 Nov: no file to send.",
        "/export 2024-12-30 2025-01-02": "No orders from Mon 30 Dec 2024 to Thu 2 Jan: no file to send.",
    },
    "sw": {
        "/export yesterday": "Hakuna oda siku ya Jumapili 23 Novemba: hakuna faili la kutuma.",
        "/export 2025-11-20 2025-11-23": "Hakuna oda kuanzia Alhamisi 20 Novemba hadi Jumapili 23 Novemba: "
        "hakuna faili la kutuma.",
        "/export 2024-12-30 2025-01-02": "Hakuna oda kuanzia Jumatatu 30 Desemba 2024 hadi Alhamisi 2 Januari: "
        "hakuna faili la kutuma.",
    },
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_an_empty_export_is_said_not_sent_as_a_file(owner_shop: Shop, language: str) -> None:
    shop = owner_shop
    await _take(shop, "0712345678", "500")  # today's order is outside every period asked
    for command, answer in NOTHING[language].items():
        assert await _ask(shop, language, command) == answer, command
    assert not [m for m, _ in shop.telegram.calls if m == "sendDocument"]


async def test_an_empty_export_asked_in_a_group_is_said_privately(owner_shop: Shop) -> None:
    shop, group = owner_shop, -100555
    await shop.send(shop.customer(ADMIN, "Owner", chat_id=group).text("/export yesterday"))
    assert shop.texts(group) == [
        "I've sent that to you in our private chat: reports on every chat's orders stay out of groups."
    ]
    assert shop.texts(ADMIN) == ["No orders on Sun 23 Nov: no file to send."]


async def test_export_of_one_date_runs_to_today(owner_shop: Shop) -> None:
    shop = owner_shop
    shop.clock.advance(-2 * DAY)
    saturday = await _take(shop, "0712345678", "500")
    shop.clock.advance(2 * DAY)
    monday = await _take(shop, "0712345679", "300")
    for command, filename, caption, order_ids in (
        ("/export 2025-11-22", "orders-2025-11-22-to-2025-11-24.csv", "Orders 22–24 Nov: 2 rows", [saturday, monday]),
        ("/export 2025-11-24", "orders-2025-11-24.csv", "Orders Mon 24 Nov: 1 row", [monday]),
        ("/export week", "orders-2025-11-18-to-2025-11-24.csv", "Orders 18–24 Nov: 2 rows", [saturday, monday]),
    ):
        await shop.send(shop.customer(ADMIN).text(command))
        document = shop.last(ADMIN)
        assert document.document is not None and document.document["filename"] == filename
        assert document.text == f"{caption} (times in Africa/Nairobi, phones masked)."
        lines = document.document["content"].decode().splitlines()[1:]
        assert [line.split(",")[0] for line in lines] == order_ids
    assert (await shop.order(monday)).status is OrderStatus.PAID


async def test_the_export_caption_in_kiswahili(owner_shop: Shop) -> None:
    await _take(owner_shop, "0712345678", "500")
    assert await _ask(owner_shop, "sw", "/export 2025-11-22") == (
        "Oda 22–24 Novemba: safu 1 (saa za Africa/Nairobi, nambari za simu zimefichwa)."
    )


# -- /help -------------------------------------------------------------------------------------

ADMIN_HELP = {
    "en": "For the shop's admins. A period is today, yesterday, week (the last 7 days), month, a date (YYYY-MM-DD: "
    "from that day to today) or two dates (from the first to the last).\n"
    "/orders [N|period]: the latest orders of every chat, with receipts.\n"
    "/summary [period]: what came in, then totals by status and network.\n"
    "/export [period]: the orders as a CSV file.\n"
    "/reconcile [period]: every order looked up at iPay again; what differs is reported and fixed.",
    "sw": "Kwa wasimamizi wa duka. Kipindi ni leo, jana, wiki (siku 7 zilizopita), mwezi (tangu tarehe 1), "
    "tarehe moja (YYYY-MM-DD: kuanzia siku hiyo hadi leo) au tarehe mbili (kuanzia ya kwanza hadi "
    "ya mwisho).\n"
    "/orders [N|kipindi]: oda za karibuni za kila gumzo, pamoja na risiti.\n"
    "/summary [kipindi]: pesa zilizopokelewa, kisha jumla kwa hali na mtandao.\n"
    "/export [kipindi]: oda kama faili la CSV.\n"
    "/reconcile [kipindi]: kila oda inaangaliwa tena kwa iPay; tofauti zinaripotiwa na kurekebishwa.",
}

REFUND_HELP = {  # admins and staff, after the admins' part
    "en": "/refund <order id>: give a payment back in full (a cashier's /refund asks the admins).",
    "sw": "/refund <nambari ya oda>: rejesha malipo yote (/refund ya mhudumu inawaomba wasimamizi).",
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_help_tells_admins_what_a_period_is(owner_shop: Shop, language: str) -> None:
    help_text = await _ask(owner_shop, language, "/help")
    assert help_text.endswith("\n\n" + ADMIN_HELP[language] + "\n" + REFUND_HELP[language])
    await owner_shop.send(owner_shop.customer(CUSTOMER, language_code=language).text("/help"))
    assert ADMIN_HELP[language].splitlines()[1] not in owner_shop.last(CUSTOMER).text


# -- the evening summary's window -------------------------------------------------------------


async def test_a_summary_at_midnight_reports_the_whole_day_that_ended(
    shop_settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await start_shop(with_settings(shop_settings, daily_summary_time=time(0, 0)), telegram, sandbox, clock)
    try:
        await _take(shop, "0712345678", "500")  # Monday 19:00
        clock.advance(5 * 3600 - 5)  # Tuesday 00:00, as the job fires
        await daily_summary_job(CallbackContext(shop.app))
        await shop.settle()
        assert shop.last(MERCHANT_CHAT).text == (
            "📊 Mama Mboga · Mon 24 Nov: KES 500 received from 1 payment (M-Pesa 500)\n"
            "✅ paid · M-Pesa: 1 for KES 500 asked, KES 500 received"
        )
    finally:
        await stop_shop(shop)


async def test_an_order_after_the_summary_time_is_in_the_next_summary(owner_shop: Shop) -> None:
    shop = owner_shop
    await _take(shop, "0712345678", "500")  # Monday 19:00
    shop.clock.advance(2 * 3600 - 5)  # 21:00: Monday's summary
    await daily_summary_job(CallbackContext(shop.app))
    await _take(shop, "0733345678", "300")  # 21:00:05, Airtel Money
    shop.clock.advance(DAY - 5)  # Tuesday 21:00
    await daily_summary_job(CallbackContext(shop.app))
    await shop.settle()
    monday, tuesday = [text for text in shop.texts(MERCHANT_CHAT) if text.startswith("📊")]
    assert monday.startswith("📊 Mama Mboga · Mon 24 Nov: KES 500 received from 1 payment (M-Pesa 500)")
    assert tuesday.startswith("📊 Mama Mboga · Tue 25 Nov: KES 300 received from 1 payment (Airtel Money 300)")


async def test_a_restart_just_after_the_summary_time_sends_the_missed_summary_once(
    shop_settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    first = await start_shop(shop_settings, telegram, sandbox, clock)
    await _take(first, "0712345678", "500")  # Monday 19:00
    await stop_shop(first)
    clock.advance(2 * 3600)  # down across 21:00: Monday's summary was never sent
    for _ in range(2):  # started again, twice (or two instances): one summary
        again = await start_shop(shop_settings, telegram, sandbox, clock)
        await again.settle()
        await stop_shop(again)
    summaries = [text for text in shop_texts(telegram) if text.startswith("📊")]
    assert summaries == [
        "📊 Mama Mboga · Mon 24 Nov: KES 500 received from 1 payment (M-Pesa 500)\n"
        "✅ paid · M-Pesa: 1 for KES 500 asked, KES 500 received"
    ]


def shop_texts(telegram: FakeBotApi) -> list[str]:
    return [message.text for message in telegram.bot_messages(MERCHANT_CHAT)]
