"""Typed access to the parts of an update a handler needs, narrowed once per callback.

python-telegram-bot types `effective_message`, `effective_chat`, `effective_user` and
`callback_query` as optional because not every update has them. Each handler is registered
for updates that do (a command or text message, a button press), so it narrows once, as the
PTB team's own bot does with `cast`, instead of an ignore on every use.
"""

from __future__ import annotations

from typing import cast

from telegram import CallbackQuery, Chat, Message, Update, User
from telegram.ext import BaseHandler, ContextTypes


def message_of(update: Update) -> Message:
    """The message a command or text handler answers (its filters only let messages in)."""
    return cast(Message, update.effective_message)


def chat_of(update: Update) -> Chat:
    """The chat of a message or button press."""
    return cast(Chat, update.effective_chat)


def user_of(update: Update) -> User:
    """Who pressed a button (a callback query always has a sender)."""
    return cast(User, update.effective_user)


def query_of(update: Update) -> CallbackQuery:
    """The button press a CallbackQueryHandler callback answers."""
    return cast(CallbackQuery, update.callback_query)


class PressedOnInlineMessage(BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]):
    """A button pressed on a message posted inline ("via @bot"): Telegram sends its
    `inline_message_id` but neither the message nor its chat. The bot's buttons act on a chat
    (its orders, its drafts), so such a press is answered with a pop-up here, once, before any
    button's handler runs: every handler after it may take the pressed message and chat as given."""

    def check_update(self, update: object) -> bool:
        return (
            isinstance(update, Update) and update.callback_query is not None and update.callback_query.message is None
        )
