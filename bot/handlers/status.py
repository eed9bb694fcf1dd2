"""/status: one order of this chat, or this chat's latest orders."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import ContextTypes

from bot import messages
from bot.services import services_of

LATEST = 5


async def status_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    payments = services_of(context).payments
    sandbox = services_of(context).settings.ipay_sandbox
    message = update.effective_message
    if context.args:
        order_id = re.sub(r"[^A-Za-z0-9]", "", context.args[0]).upper()
        order = await payments.chat_order(order_id, chat_id) if order_id else None
        answer = messages.order_status(order) if order else messages.status_not_found()
        await message.reply_text(messages.with_sandbox_tag(answer, sandbox))  # type: ignore[union-attr]
        return
    orders = await payments.latest_chat_orders(chat_id, LATEST)
    answer = messages.order_list(orders) if orders else messages.status_no_orders()
    await message.reply_text(messages.with_sandbox_tag(answer, sandbox))  # type: ignore[union-attr]
