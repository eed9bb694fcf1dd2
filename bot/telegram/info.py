"""/start, /help, and the answers for things that arrive outside any conversation."""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, ContextTypes
from telegram.ext.filters import MessageFilter

from bot.buttons import button_owner
from bot.orders import sentences as order_sentences
from bot.refunds import sentences as refund_sentences
from bot.requests import sentences as request_sentences
from bot.services import services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.access import message_of, query_of, user_of

log = logging.getLogger(__name__)


class _SentAsAChat(MessageFilter):
    """A message with no person behind it: a channel post, or a message an anonymous group admin
    posts as the group (`sender_chat`; Telegram then puts no `from`, or GroupAnonymousBot, shared
    by every anonymous admin there)."""

    def filter(self, message: Message) -> bool:
        return message.sender_chat is not None or message.from_user is None


SENT_AS_A_CHAT = _SentAsAChat(name="SENT_AS_A_CHAT")


def _command_for_me(message: Message | None, bot_username: str | None) -> str | None:
    """`/pay@pesabot 500` -> `pay`; None for a command meant for another bot (/start@otherbot)."""
    word = (message.text or "").split()[0] if message and message.text else ""
    command, _, addressee = word.lstrip("/").partition("@")
    if addressee and addressee.lower() != (bot_username or "").lower():
        return None
    return command.lower()


async def sent_as_a_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Runs before every other handler for a command sent as a chat. Channels (and their posts
    forwarded into a discussion group) are left alone: the bot never talks to subscribers. In a
    group, /pay needs a person (limits, the buttons' owner, "asked by"), so it is refused with a
    pointer; every other command needs only the chat and goes on to its usual handler."""
    message = update.effective_message
    chat = update.effective_chat
    channel = chat is not None and chat.type == ChatType.CHANNEL
    if channel or (message is not None and message.is_automatic_forward):
        log.debug("left alone: a command posted by channel %s", chat.id if chat else None)
        raise ApplicationHandlerStop
    if message is not None and _command_for_me(message, context.bot.username) == "pay":
        await message.reply_text(order_sentences.pay_needs_a_person())
        raise ApplicationHandlerStop


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    settings = services.settings
    user = update.effective_user
    text = chat_sentences.help_text(
        settings.shop_name, user is not None and settings.may_pay(user.id), services.payments.networks
    )
    if user is not None and (settings.is_admin(user.id) or user.id in settings.staff_ids):
        text += request_sentences.requests_help()  # payment requests: admins and staff
    if user is not None and settings.is_admin(user.id):
        text += chat_sentences.admin_help(services.payments.provider_name)
    if user is not None and (settings.is_admin(user.id) or user.id in settings.staff_ids):
        text += "\n" + refund_sentences.help_line()  # staff ask, admins approve
    await message_of(update).reply_text(chat_sentences.with_sandbox_tag(text, settings.ipay_sandbox))


async def nothing_to_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await message_of(update).reply_text(order_sentences.nothing_to_cancel())


async def stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button from a finished, timed-out or someone else's conversation: change nothing."""
    query = query_of(update)
    owner = button_owner(query.data or "")
    mine = owner is None or owner == user_of(update).id
    await query.answer(chat_sentences.stale_button() if mine else chat_sentences.not_your_button())


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Also what a non-admin hears for an admin command: it reveals nothing.

    In a group, commands meant for other bots (/start@otherbot) are left alone.
    """
    message = message_of(update)
    if _command_for_me(message, context.bot.username) is None:
        return
    await message.reply_text(chat_sentences.unknown_command())


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the fault and tell the user plainly, instead of leaving them without an answer."""
    log.error("update failed: %s", type(context.error).__name__, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, chat_sentences.something_went_wrong())
        except Exception:  # the error handler must never raise
            log.warning("could not tell chat about the fault")
