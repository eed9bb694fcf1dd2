"""Buttons on an order's messages: cancel it while the prompt waits, or send the prompt again."""

from __future__ import annotations

import logging
import re

from telegram import CallbackQuery, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.buttons import ORDER_BUTTON_PATTERN
from bot.orders import sentences as order_sentences
from bot.orders.service import PaymentRefused
from bot.services import services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.access import chat_of, query_of, user_of

_PATTERN = re.compile(ORDER_BUTTON_PATTERN)
log = logging.getLogger(__name__)


async def order_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = query_of(update)
    match = _PATTERN.match(query.data or "")
    if match is None:
        await query.answer(chat_sentences.stale_button())
        return
    action, order_id = match.groups()
    chat_id, user_id = chat_of(update).id, user_of(update).id
    payments = services_of(context).payments
    try:
        if action == "cancel":
            await payments.withdraw(order_id, chat_id, user_id)
            await query.answer(order_sentences.order_cancelled_popup())
            return
        order = await payments.retry(order_id, chat_id, user_id, rest=action == "rest")
    except PaymentRefused as refusal:
        await query.answer(order_sentences.refusal(refusal.code, refusal.data, chat_id, user_id), show_alert=True)
        return
    await query.answer()
    sandbox = services_of(context).settings.ipay_sandbox
    try:
        sending = chat_sentences.with_sandbox_tag(order_sentences.sending_again(order), sandbox)
        sent = await context.bot.send_message(chat_id, sending)
        order = await payments.attach_prompt_message(order, sent.message_id)
    finally:  # the order is written: its prompt goes out even if telling the chat failed
        payments.send_prompt_soon(order)
    if query is not None:
        note = order_sentences.asking_for_rest(order) if action == "rest" else order_sentences.sent_again_as(order.id)
        await _replaced(query, note)


async def _replaced(query: CallbackQuery, note: str) -> None:
    """The pressed message no longer invites a tap: its button goes, and it says what replaced it."""
    old = query.message
    if not isinstance(old, Message) or not old.text:
        return
    try:
        await query.edit_message_text(f"{old.text}\n\n{note}", reply_markup=None)
    except TelegramError as exc:  # too old to edit, or gone: the new message stands on its own
        log.info("could not mark the old message as replaced: %s", exc)
