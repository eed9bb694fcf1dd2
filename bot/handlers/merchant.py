"""The shop owner's commands: /orders for everyone (own chat), /summary and /export for admins.

To anyone else an admin command answers exactly as an unknown command does: nothing revealed.
"""

from __future__ import annotations

import tempfile

from telegram import InputFile, Update
from telegram.ext import ContextTypes

from bot import messages
from bot.handlers.info import unknown_command
from bot.reports import PeriodError, date_range, named_period
from bot.services import services_of

SPOOL_IN_MEMORY = 1 << 20  # an export larger than 1 MiB goes to a temporary file


async def orders_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    admin = services.settings.is_admin(update.effective_user.id)  # type: ignore[union-attr]
    argument = context.args[0].lower() if context.args else None
    try:
        label, orders = await services.reports.latest(argument, None if admin else update.effective_chat.id)  # type: ignore[union-attr]
    except PeriodError:
        await update.effective_message.reply_text(messages.BAD_PERIOD)  # type: ignore[union-attr]
        return
    await update.effective_message.reply_text(messages.orders_report(label, orders, admin))  # type: ignore[union-attr]


async def summary_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    if not services.settings.is_admin(update.effective_user.id):  # type: ignore[union-attr]
        await unknown_command(update, context)
        return
    word = context.args[0].lower() if context.args else "today"
    try:
        period = named_period(word, services.reports.now())
    except PeriodError:
        await update.effective_message.reply_text(messages.BAD_PERIOD)  # type: ignore[union-attr]
        return
    rows = await services.reports.summary(period)
    await update.effective_message.reply_text(messages.summary_report(f"Summary ({word})", rows))  # type: ignore[union-attr]


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    if not services.settings.is_admin(update.effective_user.id):  # type: ignore[union-attr]
        await unknown_command(update, context)
        return
    args = context.args or []
    try:
        period = date_range(args[0] if args else None, args[1] if len(args) > 1 else None, services.reports.now())
    except PeriodError:
        await update.effective_message.reply_text(messages.BAD_DATES)  # type: ignore[union-attr]
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as sink:
        rows = await services.reports.write_csv(period, sink)  # type: ignore[arg-type]
        sink.seek(0)
        filename = f"orders-{period.label.replace(' to ', '-to-')}.csv"
        await update.effective_message.reply_document(  # type: ignore[union-attr]
            # python-telegram-bot reads an upload whole; the rows themselves streamed from SQLite.
            InputFile(sink.read(), filename=filename), caption=messages.export_caption(period.label, rows)
        )
