"""/start, /help, and the answers for things that arrive outside any conversation."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot import messages
from bot.services import services_of

log = logging.getLogger(__name__)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    settings = services_of(context).settings
    text = messages.help_text(settings.shop_name)
    if settings.is_admin(update.effective_user.id):  # type: ignore[union-attr]
        text += messages.ADMIN_HELP
    await update.effective_message.reply_text(messages.with_sandbox_tag(text, settings.ipay_sandbox))  # type: ignore[union-attr]


async def nothing_to_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(messages.NOTHING_TO_CANCEL)  # type: ignore[union-attr]


async def stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button from a finished, timed-out or someone else's conversation: change nothing."""
    query = update.callback_query
    owner = messages.button_owner(query.data or "")  # type: ignore[union-attr]
    mine = owner is None or owner == update.effective_user.id  # type: ignore[union-attr]
    await query.answer(messages.STALE_BUTTON if mine else messages.NOT_YOUR_BUTTON)  # type: ignore[union-attr]


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Also what a non-admin hears for an admin command: it reveals nothing.

    In a group, commands meant for other bots (/start@otherbot) are left alone.
    """
    message = update.effective_message
    command = (message.text or "").split()[0] if message and message.text else ""  # type: ignore[union-attr]
    if "@" in command and command.split("@", 1)[1].lower() != (context.bot.username or "").lower():
        return
    await message.reply_text(messages.UNKNOWN_COMMAND)  # type: ignore[union-attr]


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the fault and tell the user plainly, instead of leaving them without an answer."""
    log.error("update failed: %s", type(context.error).__name__, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, messages.SOMETHING_WENT_WRONG)
        except Exception:  # the error handler must never raise
            log.warning("could not tell chat about the fault")
