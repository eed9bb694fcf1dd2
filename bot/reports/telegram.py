"""The shop owner's commands: /orders for everyone (own chat), /summary, /export and /reconcile
for admins.

To anyone else an admin command answers exactly as an unknown command does: nothing revealed.
An admin's report covers every chat's orders, so when it is asked for in a group it goes to the
admin's private chat and the group hears one line: other chats' orders never reach a group.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date

from telegram import InlineKeyboardMarkup, InputFile, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

from bot.orders.reconcile import reconcile
from bot.owner import summary as owner
from bot.paybill import sentences as paybill_sentences
from bot.refunds import sentences as refund_sentences
from bot.refunds.listing import refund_buttons_for
from bot.reports import sentences as report_sentences
from bot.reports.export import write_csv
from bot.reports.service import Listing, Period, PeriodError, nairobi_today, parse_period
from bot.services import Services, services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.access import chat_of, message_of, query_of
from bot.telegram.info import unknown_command

log = logging.getLogger(__name__)

SPOOL_IN_MEMORY = 1 << 20  # an export larger than 1 MiB goes to a temporary file


def _is_admin(update: Update, services: Services) -> bool:
    """Only a person can be an admin: a message sent as a chat (no `from`) never is."""
    user = update.effective_user
    return user is not None and services.settings.is_admin(user.id)


async def deliver_report(
    update: Update, context: ContextTypes.DEFAULT_TYPE, send: Callable[[int], Awaitable[object]], *, here: bool = False
) -> None:
    """Send an admin report with `send(chat_id)`: in a private chat (or where `here` allows it)
    to this chat; in a group to the admin's private chat, with one line to the group."""
    chat, message, admin = update.effective_chat, update.effective_message, update.effective_user
    if chat is None or message is None or admin is None:  # a command always has them; an admin is a person
        return
    if chat.type == ChatType.PRIVATE or here:
        await send(chat.id)
        return
    try:
        await send(admin.id)
    except (Forbidden, BadRequest) as exc:
        if isinstance(exc, BadRequest) and "chat not found" not in exc.message.lower():
            raise
        # Telegram lets a bot write only to people who have started it.
        log.info("admin report not delivered privately: %s", exc.message)
        await message.reply_text(chat_sentences.open_private_chat_first(context.bot.username))
        return
    await message.reply_text(chat_sentences.report_sent_privately())


async def orders_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    admin = _is_admin(update, services)
    words, cashier = owner.split_cashier(context.args or []) if admin else (context.args or [], None)
    try:
        listing = await services.reports.latest(words, None if admin else chat.id)
    except PeriodError:
        await message.reply_text(report_sentences.orders_usage(nairobi_today(services.reports.now())))
        return
    if cashier is not None:  # `/orders today wanjiru`: that cashier's among the period's newest
        listing = dataclasses.replace(listing, orders=owner.by_cashier(listing.orders, cashier))
    parts = report_sentences.orders_report(listing, admin)
    # An admin's listing carries the refund buttons and, unfiltered, a button per cashier.
    buttons = await _listing_buttons(services, listing, cashiers=cashier is None) if admin else None

    async def send(chat_id: int) -> None:
        for number, text in enumerate(parts, start=1):  # the buttons under the last part
            await context.bot.send_message(chat_id, text, reply_markup=buttons if number == len(parts) else None)

    if not admin:  # this chat's own orders, answered in this chat
        await send(chat.id)
        return
    await deliver_report(update, context, send)


async def _listing_buttons(services: Services, listing: Listing, *, cashiers: bool) -> InlineKeyboardMarkup | None:
    refunds = await refund_buttons_for(services, listing.orders)
    rows = [list(row) for row in refunds.inline_keyboard] if refunds is not None else []
    if cashiers:
        rows += await owner.cashier_rows(services, listing)
    return InlineKeyboardMarkup(rows) if rows else None


async def cashier_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A cashier's button under an admin's /orders: the period's orders that cashier asked for,
    in the chat the listing went to (an admin's only)."""
    query, services = query_of(update), services_of(context)
    if not _is_admin(update, services):
        await query.answer(chat_sentences.stale_button())
        return
    await query.answer()
    period, user_id = owner.cashier_pressed(query.data or "", nairobi_today(services.reports.now()))
    listing = await services.reports.of_period(period, None)
    listing = dataclasses.replace(listing, orders=owner.of_cashier(listing.orders, user_id))
    parts = report_sentences.orders_report(listing, True)
    buttons = await _listing_buttons(services, listing, cashiers=False)
    for number, text in enumerate(parts, start=1):
        last = number == len(parts)
        await context.bot.send_message(chat_of(update).id, text, reply_markup=buttons if last else None)


async def _period_asked(
    update: Update, context: ContextTypes.DEFAULT_TYPE, usage: Callable[[date], str]
) -> Period | None:
    """The period typed after an admin command; None, once the command's usage has been said, if
    it cannot be read."""
    now = services_of(context).reports.now()
    try:
        return parse_period(context.args or [], now)
    except PeriodError:
        await message_of(update).reply_text(usage(nairobi_today(now)))
        return None


async def summary_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Totals hold no customer's data, but they are the shop's takings: they go where an admin
    report goes, except in the merchant chat, which gets the same totals every evening anyway."""
    services = services_of(context)
    if not _is_admin(update, services):
        await _own_summary(update, context)
        return
    period = await _period_asked(update, context, report_sentences.summary_usage)
    if period is None:
        return
    rows = await services.reports.summary(period)
    text = report_sentences.summary_report(report_sentences.period_words(period), rows)
    text = refund_sentences.with_refunds(text, rows, await services.reports.refunds(period))
    text = await owner.cashier_text(services, text, period)
    if services.paybill is not None:  # money paid by hand that named no order: the shop settles it
        text = paybill_sentences.with_unmatched(text, await services.paybill.unmatched(period.start, period.end))
    merchant_chat = update.effective_chat is not None and update.effective_chat.id == services.settings.merchant_chat_id
    chart = await owner.chart(services, period) if owner.wants_chart(context.args or []) else None

    async def send(chat_id: int) -> None:
        if chart is not None:  # the picture with its figures in words, then the totals
            await owner.send_chart(context.bot, chat_id, chart)
        await context.bot.send_message(chat_id, text)

    await deliver_report(update, context, send, here=merchant_chat)


async def _own_summary(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A cashier's /summary: their own takings, where an admin report goes (a group does not
    hear them); anyone else hears what an unknown command says."""
    services, user = services_of(context), update.effective_user
    if user is None or user.id not in services.settings.staff_ids:
        await unknown_command(update, context)
        return
    text = await owner.own_text(services, context.args or [], user.id)
    if text is None:
        await message_of(update).reply_text(report_sentences.summary_usage(nairobi_today(services.reports.now())))
        return
    await deliver_report(update, context, lambda chat_id: context.bot.send_message(chat_id, text))


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The period's orders as a CSV document; an empty period is said in one line, not sent as
    a file with only a header. Either goes where an admin report goes."""
    services = services_of(context)
    if not _is_admin(update, services):
        await unknown_command(update, context)
        return
    words, as_workbook = owner.split_workbook(context.args or [])
    context.args = words
    period = await _period_asked(update, context, report_sentences.export_usage)
    if period is None:
        return
    if as_workbook:
        await _export_workbook(update, context, period)
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as sink:
        rows = await write_csv(services.reports, period, sink)
        sink.seek(0)
        # python-telegram-bot reads an upload whole; the rows themselves streamed from the store.
        content = sink.read()
    await _send_export(update, context, period, content, rows, "csv")


async def _export_workbook(update: Update, context: ContextTypes.DEFAULT_TYPE, period: Period) -> None:
    """`/export [period] xlsx`: the accountant's workbook (orders, daily totals by cashier and
    channel) instead of the CSV."""
    services = services_of(context)
    content, rows = await owner.workbook(services, period)
    await _send_export(update, context, period, content, rows, "xlsx")


async def _send_export(
    update: Update, context: ContextTypes.DEFAULT_TYPE, period: Period, content: bytes, rows: int, extension: str
) -> None:
    """An export as a document named for its period (`orders-2025-11-24.csv`), where an admin
    report goes; an empty period is said in one line, not sent as a file with only a header."""
    if not rows:
        empty = report_sentences.nothing_to_export(period)
        await deliver_report(update, context, lambda chat_id: context.bot.send_message(chat_id, empty))
        return
    days = period.first.isoformat() if period.first == period.last else f"{period.first}-to-{period.last}"
    caption = report_sentences.export_caption(report_sentences.period_words(period), rows)
    await deliver_report(
        update,
        context,
        lambda chat_id: context.bot.send_document(
            chat_id, InputFile(content, filename=f"orders-{days}.{extension}"), caption=caption
        ),
    )


async def reconcile_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every order of the period looked up at iPay again; what differs is reported (where an
    admin report goes) and fixed where it can be: money found is recorded and told as usual."""
    services = services_of(context)
    if not _is_admin(update, services):
        await unknown_command(update, context)
        return
    period = await _period_asked(update, context, report_sentences.reconcile_usage)
    if period is None:
        return
    when = report_sentences.period_words(period)
    provider = services.payments.provider_name
    await message_of(update).reply_text(report_sentences.reconciling(when, provider))
    result = await reconcile(services.store, services.payments, period.start, period.end)
    parts = report_sentences.reconcile_report(result, when, provider)

    async def send(chat_id: int) -> None:
        for text in parts:
            await context.bot.send_message(chat_id, text)

    await deliver_report(update, context, send)
