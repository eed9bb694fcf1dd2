"""/status: one order of this chat, or this chat's latest orders."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import ContextTypes

from bot.orders import sentences as order_sentences
from bot.refunds import sentences as refund_sentences
from bot.services import services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.access import chat_of, message_of

LATEST = 5


async def status_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat_id = chat_of(update).id
    payments = services_of(context).payments
    sandbox = services_of(context).settings.ipay_sandbox
    message = message_of(update)
    if context.args:
        order_id = re.sub(r"[^A-Za-z0-9]", "", context.args[0]).upper()
        order = await payments.chat_order(order_id, chat_id) if order_id else None
        later = None
        if order is not None and order.retry_order_id is not None:
            later = await payments.chat_order(order.retry_order_id, chat_id)
        answer = order_sentences.order_status(order, later) if order else order_sentences.status_not_found()
        answer += await _refund_line(context, order.id) if order else ""
        await message.reply_text(chat_sentences.with_sandbox_tag(answer, sandbox))
        return
    orders = await payments.latest_chat_orders(chat_id, LATEST)
    answer = order_sentences.order_list(orders) if orders else order_sentences.status_no_orders()
    await message.reply_text(chat_sentences.with_sandbox_tag(answer, sandbox))


async def _refund_line(context: ContextTypes.DEFAULT_TYPE, order_id: str) -> str:
    """A refunded order (or one being refunded) says so."""
    refunds = services_of(context).refunds
    refund = await refunds.refund_of(order_id) if refunds is not None else None
    line = refund_sentences.status_line(refund) if refund is not None else None
    return "" if line is None else "\n" + line
