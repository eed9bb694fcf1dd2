"""The owner's day, driven through Telegram updates: who took each payment, closing the day (by
hand and by the clock), what changes a closed day, a chart of a week or a month, and the
accountant's workbook. Two cashiers, Wanjiru and Otieno, work the counter; the owner is an
admin. The shop's clock starts on Monday 24 Nov 2025 at 19:00 in Nairobi."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from datetime import datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from PIL import Image
from telegram.ext import CallbackContext

from bot.app import daily_summary_job
from bot.config import Settings
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, ShopWith, readable, start_shop, stop_shop, with_settings
from tests.postgres_server import PostgresServer

OWNER, WANJIRU, OTIENO = 9001, 9002, 9003
DAY = 24 * 3600


STAFFED: dict[str, Any] = {"admin_ids": frozenset({OWNER}), "staff_ids": frozenset({WANJIRU, OTIENO})}


@pytest.fixture
def shop_settings(settings: Settings) -> Settings:
    return with_settings(settings, **STAFFED)


@pytest.fixture
async def owner_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(**STAFFED)


async def _take(shop: Shop, cashier: int, phone: str, amount: str) -> str:
    """A cashier takes one payment (the phone's last digit decides how it ends); its order id."""
    name = {WANJIRU: "Wanjiru", OTIENO: "Otieno"}[cashier]
    order = await shop.pay(shop.customer(cashier, name), phone=phone, amount=amount)
    shop.clock.advance(5)
    await shop.sweep()
    return order.id


async def _a_day_at_the_counter(shop: Shop) -> dict[str, str]:
    return {
        "w1": await _take(shop, WANJIRU, "0712345678", "1,500"),  # paid
        "w2": await _take(shop, WANJIRU, "0733345678", "300"),  # paid, Airtel Money
        "w3": await _take(shop, WANJIRU, "0712345672", "200"),  # wrong PIN
        "o1": await _take(shop, OTIENO, "0712345679", "700"),  # paid
        "o2": await _take(shop, OTIENO, "0712345675", "1,000"),  # pays 900
    }


async def _say(shop: Shop, user: int, text: str, language: str = "en", name: str = "Owner") -> ChatMessage:
    await shop.send(shop.customer(user, name, language_code=language).text(text))
    return shop.last(user)


async def _press(shop: Shop, user: int, message: ChatMessage, label: str) -> ChatMessage:
    await shop.send(shop.customer(user, "Owner").press(message, label))
    return shop.last(user)


# -- per cashier ------------------------------------------------------------------------------


BY_CASHIER = {
    "en": ["👤 By cashier:", "Wanjiru: KES 1,800 from 2 payments (1 not paid)", "Otieno: KES 1,600 from 2 payments"],
    "sw": [
        "👤 Kwa kila mhudumu:",
        "Wanjiru: KES 1,800 kutoka malipo 2 (oda 1 haijalipwa)",
        "Otieno: KES 1,600 kutoka malipo 2",
    ],
}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_the_owners_summary_says_who_took_what(owner_shop: Shop, language: str) -> None:
    await _a_day_at_the_counter(owner_shop)
    summary = await _say(owner_shop, OWNER, "/summary", language)
    assert summary.text.splitlines()[-3:] == BY_CASHIER[language]


async def test_a_cashier_sees_only_their_own_takings(owner_shop: Shop) -> None:
    await _a_day_at_the_counter(owner_shop)
    own = await _say(owner_shop, OTIENO, "/summary", name="Otieno")
    assert own.text == "Your takings Mon 24 Nov: Otieno: KES 1,600 from 2 payments"
    assert "Wanjiru" not in own.text
    own_week = await _say(owner_shop, WANJIRU, "/summary week", name="Wanjiru")
    assert own_week.text == "Your takings 18–24 Nov: Wanjiru: KES 1,800 from 2 payments (1 not paid)"  # noqa: RUF001
    nobody = await _say(owner_shop, 501, "/summary", name="Customer")  # not staff: nothing revealed
    assert "KES" not in nobody.text


async def test_orders_of_one_cashier(owner_shop: Shop) -> None:
    taken = await _a_day_at_the_counter(owner_shop)
    listed = await _say(owner_shop, OWNER, "/orders today otieno")
    assert readable(taken["o1"]) in listed.text and readable(taken["o2"]) in listed.text
    assert readable(taken["w1"]) not in listed.text


async def test_orders_of_one_cashier_at_a_press(owner_shop: Shop) -> None:
    taken = await _a_day_at_the_counter(owner_shop)
    listed = await _say(owner_shop, OWNER, "/orders today")
    assert listed.buttons[-1] == [(label, listed.button_data(label)) for label in ("👤 Wanjiru", "👤 Otieno")]
    assert sum(label.startswith("↩️") for label in listed.button_labels) == 4  # the refund buttons stay
    otieno = await _press(owner_shop, OWNER, listed, "👤 Otieno")
    assert readable(taken["o1"]) in otieno.text and readable(taken["o2"]) in otieno.text
    assert readable(taken["w1"]) not in otieno.text
    assert not any(label.startswith("👤") for label in otieno.button_labels)  # one cashier's: no row
    customer = await _say(owner_shop, 501, "/orders today", name="Customer")
    assert not any(label.startswith("👤") for label in customer.button_labels)  # admins only


async def test_the_csv_names_who_asked(owner_shop: Shop) -> None:
    await _a_day_at_the_counter(owner_shop)
    await _say(owner_shop, OWNER, "/export")
    document = owner_shop.last(OWNER).document
    assert document is not None
    rows = list(csv.reader(io.StringIO(document["content"].decode())))
    assert rows[0][-1] == "cashier"
    assert [row[-1] for row in rows[1:]] == ["Wanjiru"] * 3 + ["Otieno"] * 2


# -- closing the day --------------------------------------------------------------------------


async def test_the_owner_closes_the_day_after_checking_against_ipay(owner_shop: Shop) -> None:
    shop = owner_shop
    taken = await _a_day_at_the_counter(shop)
    waiting = (await shop.pay(shop.customer(WANJIRU, "Wanjiru"), phone="0712345670", amount="400")).id  # holder decides
    shop.clock.advance(5)
    offer = await _say(shop, OWNER, "/close")
    assert offer.text.startswith("🔒 Close the day? Check against iPay first")
    assert offer.button_labels == ["🔎 Check against iPay", "🔒 Close the day"]
    checked = await _press(shop, OWNER, offer, "Check against iPay")
    assert checked.button_labels == ["🔒 Close the day"]
    closed = await _press(shop, OWNER, checked, "Close the day")
    lines = closed.text.splitlines()
    assert lines[0] == "🔒 Mama Mboga · Mon 24 Nov closed by Owner at 19:00."
    assert lines[1].startswith("Mon 24 Nov: KES 3,400 received from 4 payments (M-Pesa 3,100 · Airtel Money 300)")
    assert "💰 Net takings: KES 3,400" in lines
    assert "Otieno: KES 1,600 from 2 payments" in lines
    assert f"⏳ 1 order still open: {readable(waiting)} (KES 400)" in lines
    record = await shop.services.store.day_close("2025-11-24")
    assert record is not None and record.closed_by == "Owner"

    # The payer approves after the close: the closed day's number is not changed silently.
    shop.clock.advance(20)
    assert shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(5)
    await shop.sweep()
    again = await _say(shop, OWNER, "/close")
    assert again.text.startswith("🔒 Mama Mboga · Mon 24 Nov was closed by Owner at 19:00; its figures then:")
    assert "Mon 24 Nov: KES 3,400 received from 4 payments" in again.text  # the same close
    after = again.text.split("🕓 Since this close:\n", 1)[1].splitlines()
    assert after[0] == f"💸 {readable(waiting)}: KES 400 received after the close"
    assert readable(taken["w1"]) not in again.text.split("🕓")[1]

    # The next evening's close (by the clock) lists it under "since the last close".
    shop.clock.advance(DAY + 2 * 3600)  # Tuesday 21:00
    await _take(shop, OTIENO, "0712345678", "250")
    await daily_summary_job(CallbackContext(shop.app))
    await shop.settle()
    evening = shop.last(MERCHANT_CHAT).text
    assert f"🕓 Since the last close:\n💸 {readable(waiting)}: KES 400 received after the close" in evening
    tuesday = await shop.services.store.day_close("2025-11-25")
    assert tuesday is not None and tuesday.closed_by == ""


async def test_the_clock_closes_the_day_once_whoever_runs_the_job(owner_shop: Shop) -> None:
    shop = owner_shop
    await _a_day_at_the_counter(shop)
    shop.clock.advance(2 * 3600 - 25)  # 21:00
    await daily_summary_job(CallbackContext(shop.app))
    await daily_summary_job(CallbackContext(shop.app))  # a second instance's job, a moment later
    await shop.settle()
    evening = [t for t in shop.texts(MERCHANT_CHAT) if t.startswith("📊")]
    assert len(evening) == 1 and "Wanjiru: KES 1,800 from 2 payments (1 not paid)" in evening[0]
    record = await shop.services.store.day_close("2025-11-24")
    assert record is not None and record.closed_by == ""
    shown = await _say(shop, OWNER, "/close")  # the owner's /close shows the clock's close
    assert shown.text.startswith("🔒 Mama Mboga · Mon 24 Nov closed automatically at 21:00.")
    assert "Otieno: KES 1,600 from 2 payments" in shown.text


EVENING_OPEN = {"en": "⏳ 1 order still open: {order} (KES 400)", "sw": "⏳ Oda 1 bado iko wazi: {order} (KES 400)"}


@pytest.mark.parametrize("language", ["en", "sw"])
async def test_the_clocks_close_names_the_orders_still_pending(shop_with: ShopWith, language: str) -> None:
    shop = await shop_with(**STAFFED, merchant_language=language)
    await _a_day_at_the_counter(shop)
    waiting = (await shop.pay(shop.customer(WANJIRU, "Wanjiru"), phone="0712345670", amount="400")).id
    shop.clock.advance(2 * 3600 - 30)  # 21:00: the payer has not answered yet
    await daily_summary_job(CallbackContext(shop.app))
    await shop.settle()
    evening = shop.last(MERCHANT_CHAT).text
    assert EVENING_OPEN[language].format(order=readable(waiting)) in evening.splitlines()


async def test_close_is_for_admins_only(owner_shop: Shop) -> None:
    await _a_day_at_the_counter(owner_shop)
    answer = await _say(owner_shop, WANJIRU, "/close", name="Wanjiru")
    assert "Close" not in answer.text and await owner_shop.services.store.day_close("2025-11-24") is None


async def test_a_refund_after_the_close_is_listed_since_it(owner_shop: Shop) -> None:
    shop = owner_shop
    taken = await _a_day_at_the_counter(shop)
    offer = await _say(shop, OWNER, "/close")
    await _press(shop, OWNER, offer, "Close the day")
    shop.clock.advance(60)
    await _say(shop, OWNER, f"/refund {readable(taken['o1'])}")
    await _press(shop, OWNER, shop.last(OWNER), "Refund KES")
    await shop.sweep()
    again = await _say(shop, OWNER, "/close")
    assert f"↩️ {readable(taken['o1'])}: KES 700 refunded" in again.text.split("🕓 Since this close:", 1)[1]


# -- the chart --------------------------------------------------------------------------------


def _read_png(photo: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(photo))
    image.load()
    return image


@pytest.mark.parametrize(
    ("language", "period", "title"), [("en", "week", "📈 Per day:"), ("sw", "mwezi", "📈 Kwa siku:")]
)
async def test_a_week_or_a_month_comes_with_a_chart_whose_figures_are_in_words(
    owner_shop: Shop, language: str, period: str, title: str
) -> None:
    shop = owner_shop
    await _a_day_at_the_counter(shop)
    shop.clock.advance(DAY)
    await _take(shop, OTIENO, "0733345678", "450")  # Tuesday, Airtel Money
    await _say(shop, OWNER, f"/summary {period}", language)
    photos = [m for m in shop.telegram.bot_messages(OWNER) if m.photo]
    assert len(photos) == 1
    image = _read_png(photos[0].photo)  # type: ignore[arg-type]
    assert image.format == "PNG" and image.width <= 1280 and image.height <= 1280
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20  # bars, text and axes: not a blank picture
    words = photos[0].text.splitlines()
    assert words[0] == title
    if language == "en":
        assert words[1:] == [
            "Mon 24 Nov: M-Pesa KES 3,100 · Airtel Money KES 300",
            "Tue 25 Nov: M-Pesa KES 0 · Airtel Money KES 450",
            "Total: KES 3,850",
        ]
    else:
        assert words[-1] == "Jumla: KES 3,850"
        assert words[1].startswith("Jumatatu 24 Novemba: M-Pesa KES 3,100")
    assert shop.last(OWNER).text.split(":")[0] != title  # the totals come last, as /summary says them


def test_charts_are_drawn_only_when_asked() -> None:
    import subprocess

    code = "import bot.app, sys; print('matplotlib' in sys.modules, 'openpyxl' in sys.modules)"
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert started.stdout.split() == ["False", "False"]


# -- the accountant's workbook ----------------------------------------------------------------


async def test_the_workbook_opens_with_numbers_and_dates_that_sum_to_the_close(owner_shop: Shop) -> None:
    shop = owner_shop
    await _a_day_at_the_counter(shop)
    await _say(shop, OWNER, "/export xlsx")
    document = shop.last(OWNER).document
    assert document is not None and document["filename"] == "orders-2025-11-24.xlsx"
    book = load_workbook(io.BytesIO(document["content"]))
    assert book.sheetnames == ["Orders", "Daily totals"]
    orders = list(book["Orders"].iter_rows(values_only=True))
    assert len(orders) == 6 and orders[0][:5] == ("order_id", "created_at (Nairobi)", "status", "channel", "cashier")
    first = orders[1]
    assert isinstance(first[1], datetime) and first[1] == datetime(2025, 11, 24, 19, 0)
    assert isinstance(first[6], int) and first[4] == "Wanjiru"
    daily = list(book["Daily totals"].iter_rows(values_only=True))[1:]
    assert {(row[1], row[2]) for row in daily} == {
        ("Wanjiru", "M-Pesa"),
        ("Wanjiru", "Airtel Money"),
        ("Otieno", "M-Pesa"),
    }
    assert all(row[0] == datetime(2025, 11, 24) and isinstance(row[4], int) for row in daily)
    offer = await _say(shop, OWNER, "/close")
    await _press(shop, OWNER, offer, "Close the day")
    assert "Mon 24 Nov: KES 3,400 received" in shop.last(OWNER).text
    assert sum(row[4] for row in daily if isinstance(row[4], int)) == 3_400  # the close's takings


async def test_sundays_close_comes_with_the_weeks_chart(owner_shop: Shop) -> None:
    shop = owner_shop
    await _take(shop, WANJIRU, "0712345678", "1,500")  # Monday
    shop.clock.advance(6 * DAY + 2 * 3600 - 10)  # Sunday 30 Nov, 21:00
    await _take(shop, OTIENO, "0733345678", "300")
    await daily_summary_job(CallbackContext(shop.app))
    await shop.settle()
    photos = [m for m in shop.telegram.bot_messages(MERCHANT_CHAT) if m.photo]
    assert len(photos) == 1
    assert _read_png(photos[0].photo).width <= 1280  # type: ignore[arg-type]
    assert photos[0].text.splitlines()[1:] == [
        "Mon 24 Nov: M-Pesa KES 1,500 · Airtel Money KES 0",
        "Sun 30 Nov: M-Pesa KES 0 · Airtel Money KES 300",
        "Total: KES 1,800",
    ]
    await daily_summary_job(CallbackContext(shop.app))  # another instance's job: no second chart
    await shop.settle()
    assert len([m for m in shop.telegram.bot_messages(MERCHANT_CHAT) if m.photo]) == 1


async def test_two_instances_on_one_database_close_the_day_once(
    shop_settings: Settings,
    postgres_server: PostgresServer,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
) -> None:
    shared = with_settings(
        shop_settings,
        database_url=postgres_server.new_database_sync(),
        webhook_url="https://bot.example",
        webhook_secret="owner-day-secret-0123456789",
        port=0,
    )
    one = await start_shop(shared, telegram, sandbox, clock)
    two = await start_shop(shared, telegram, sandbox, clock)
    try:
        await _take(one, WANJIRU, "0712345678", "1,500")
        await _take(two, OTIENO, "0712345679", "700")
        offers = [await _say(shop, OWNER, "/close") for shop in (one, two)]
        await asyncio.gather(
            *(shop.send(shop.customer(OWNER, "Owner").press(offers[0], "Close the day")) for shop in (one, two))
        )
        closes = [m.text for m in telegram.bot_messages(OWNER) if m.text.startswith("🔒 Mama Mboga")]
        assert len(closes) == 2  # each press answered: one made the close, the other shows it
        assert sum("Mon 24 Nov closed by Owner at " in text for text in closes) == 1
        assert sum(" was closed by Owner at " in text for text in closes) == 1
        clock.advance(2 * 3600)  # 21:00: both instances' evening jobs find the day closed by hand
        await asyncio.gather(*(daily_summary_job(CallbackContext(shop.app)) for shop in (one, two)))
        for shop in (one, two):  # whichever instance's notifier delivers it
            shop.services.notifier.kick()
            await shop.settle()
        assert len([t for t in one.texts(MERCHANT_CHAT) if t.startswith("📊")]) == 1
        kept = await one.services.store.day_close("2025-11-24")
        assert kept is not None and kept.closed_by == "Owner"
    finally:
        await stop_shop(two)
        await stop_shop(one)
