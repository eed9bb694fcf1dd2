"""/close at the Telegram edge: admins only (anyone else hears what an unknown command says).

`/close` on a day not yet closed offers "Check against iPay" first (so money iPay has and the
bot missed is counted) and "Close the day"; on a closed day it shows the close again with what
came after. The close goes where an admin report goes.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.orders.reconcile import reconcile
from bot.owner import sentences
from bot.owner.service import OwnerService
from bot.reports import sentences as report_sentences
from bot.reports.service import nairobi_today, named_period
from bot.reports.telegram import _is_admin, deliver_report
from bot.services import services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.access import chat_of, message_of, query_of, user_of
from bot.telegram.info import unknown_command

BUTTON_PATTERN = r"^owner:(check|close)$"
CHECK, CLOSE = "owner:check", "owner:close"


def _buttons(provider: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(sentences.check_label(provider), callback_data=CHECK)],
            [InlineKeyboardButton(sentences.close_label(), callback_data=CLOSE)],
        ]
    )


def _closer(update: Update) -> str:
    user = user_of(update)
    return user.full_name or str(user.id)


async def close_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    if not _is_admin(update, services):
        await unknown_command(update, context)
        return
    if context.args:
        await message_of(update).reply_text(sentences.close_usage())
        return
    now = services.reports.now()
    kept = await services.store.day_close(nairobi_today(now).isoformat())
    if kept is not None:  # closed already: the same close, and what came after it
        text = sentences.close_report(await OwnerService(services.store).again(kept, now), services.settings.shop_name)
        await deliver_report(update, context, lambda chat_id: context.bot.send_message(chat_id, text))
        return
    provider = services.payments.provider_name
    offer, markup = sentences.close_offer(provider), _buttons(provider)
    await deliver_report(update, context, lambda chat_id: context.bot.send_message(chat_id, offer, reply_markup=markup))


async def close_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The close's buttons, pressed in the chat its offer went to (an admin's only)."""
    query, services = query_of(update), services_of(context)
    if not _is_admin(update, services):
        await query.answer(chat_sentences.stale_button())
        return
    await query.answer()
    chat_id, now = chat_of(update).id, services.reports.now()
    if query.data == CHECK:
        period = named_period("today", now)
        when = report_sentences.period_words(period)
        provider = services.payments.provider_name
        await context.bot.send_message(chat_id, report_sentences.reconciling(when, provider))
        result = await reconcile(services.store, services.payments, period.start, period.end)
        parts = report_sentences.reconcile_report(result, when, provider)
        for number, text in enumerate(parts, start=1):
            last = number == len(parts)
            await context.bot.send_message(chat_id, text, reply_markup=_close_only() if last else None)
        return
    view = await OwnerService(services.store).close(nairobi_today(now), _closer(update), now)
    await context.bot.send_message(chat_id, sentences.close_report(view, services.settings.shop_name))


def _close_only() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(sentences.close_label(), callback_data=CLOSE)]])
