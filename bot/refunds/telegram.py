"""The refunds' Telegram edge: /refund, the "↩️ Refund" buttons, and the admins' cards.

An admin gets the order and a confirm button "↩️ Refund KES <amount>"; nothing moves until it
is pressed. A cashier's /refund (or button) asks every admin, privately, with Approve and
Decline; the cashier hears the outcome. To anyone else /refund answers as an unknown command.
"""

from __future__ import annotations

import logging
import re

from telegram import Message, Update, User
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.buttons import keyboard
from bot.refunds import buttons, sentences
from bot.refunds.service import Person, RefundRefused, RefundService
from bot.reports.telegram import deliver_report
from bot.services import Services, services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.access import chat_of, message_of, query_of, user_of
from bot.telegram.info import unknown_command

log = logging.getLogger(__name__)
_PATTERN = re.compile(buttons.BUTTON_PATTERN)


def _refunds(services: Services) -> RefundService:
    if services.refunds is None:
        raise RuntimeError("the refund service is opened with the others in post_init")
    return services.refunds


def _person(user: User, chat_id: int) -> Person:
    handle = f"@{user.username}, " if user.username else ""
    return Person(user.id, f"{user.full_name} ({handle}{user.id})", chat_id)


def _order_id(words: list[str]) -> str:
    """The id as shown (`X4HC-C6BK-BRUB`) or typed without dashes, in any case."""
    return re.sub(r"[^A-Za-z0-9]", "", words[0]).upper()[:34] if words else ""


async def refund_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    user = update.effective_user
    settings = services.settings
    if user is None or not (settings.is_admin(user.id) or user.id in settings.staff_ids):
        await unknown_command(update, context)
        return
    message = message_of(update)
    order_id = _order_id(context.args or [])
    if not order_id:
        await message.reply_text(sentences.usage())
        return
    await _open(update, context, order_id, ask_again=False, reply=message)


async def _open(
    update: Update, context: ContextTypes.DEFAULT_TYPE, order_id: str, *, ask_again: bool, reply: Message | None
) -> None:
    """An admin gets the confirm card; a cashier's ask goes to the admins."""
    services = services_of(context)
    refunds = _refunds(services)
    user, chat = user_of(update), chat_of(update)

    async def say(text: str) -> None:
        if reply is not None:
            await reply.reply_text(text)
        else:
            await context.bot.send_message(chat.id, text)

    try:
        if not services.settings.is_admin(user.id):
            asked = await refunds.ask(order_id, _person(user, chat.id), ask_again=ask_again)
            await say(sentences.asked_admins(asked.order_id, asked.amount))
            return
        order, _refund = await refunds.refundable(order_id)
    except RefundRefused as refusal:
        await say(sentences.refusal(refusal.code, refusal.data))
        return
    amount = order.paid_amount or 0
    text = sentences.card_for(order, amount, ask_again, services.settings.ipay_sandbox, refunds.provider_name)
    action = "goagain" if ask_again else "go"
    markup = keyboard(((sentences.confirm_label(amount), buttons.data(action, order.id)),))
    here = chat.type == ChatType.PRIVATE or chat.id == services.settings.merchant_chat_id
    if here:  # the card names the payer: a group other than the merchant chat never sees it
        await context.bot.send_message(chat.id, text, reply_markup=markup)
        return
    await deliver_report(update, context, lambda chat_id: context.bot.send_message(chat_id, text, reply_markup=markup))


async def refund_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = query_of(update)
    match = _PATTERN.match(query.data or "")
    services = services_of(context)
    user = user_of(update)
    admin = services.settings.is_admin(user.id)
    staff = user.id in services.settings.staff_ids
    if match is None or not (admin or (staff and match.group(1) in ("show", "again"))):
        await query.answer(chat_sentences.stale_button())
        return
    action, order_id = match.groups()
    if action in ("show", "again"):
        await query.answer()
        await _open(update, context, order_id, ask_again=action == "again", reply=None)
        return
    refunds = _refunds(services)
    person = _person(user, chat_of(update).id)
    try:
        if action == "no":
            await refunds.decline(order_id, person)
            note = sentences.declined_by_you()
        else:
            await refunds.approve(order_id, person, answering_ask=action == "ok", ask_again=action == "goagain")
            note = sentences.sending(refunds.provider_name)
    except RefundRefused as refusal:
        await query.answer(sentences.refusal(refusal.code, refusal.data), show_alert=True)
        return
    await query.answer(note)
    old = query.message
    if isinstance(old, Message) and old.text:
        try:  # the card no longer invites a tap
            await query.edit_message_text(f"{old.text}\n\n{note}", reply_markup=None)
        except TelegramError as exc:
            log.info("could not close the refund card: %s", exc)
