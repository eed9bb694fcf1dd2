"""Typed access to the parts of an update a handler needs, narrowed once per callback.

python-telegram-bot types `effective_message`, `effective_chat`, `effective_user` and
`callback_query` as optional because not every update has them. Each handler is registered
for updates that do (a command or text message, a button press), so it narrows once, as the
PTB team's own bot does with `cast`, instead of an ignore on every use.
"""

from __future__ import annotations

from typing import cast

from telegram import CallbackQuery, Chat, Message, Update, User


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
