"""Languages: every update is answered in its sender's language; /language and /lugha switch it."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import ContextTypes

from bot.buttons import LANGUAGE_BUTTON_PATTERN, keyboard, language_buttons
from bot.i18n import ENGLISH, set_language
from bot.services import services_of
from bot.telegram import sentences as chat_sentences

_PATTERN = re.compile(LANGUAGE_BUTTON_PATTERN)


async def speak_senders_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Runs first for every update: what the handlers then say is in the sender's language
    (Telegram's `language_code` the first time we meet them, their own choice after that)."""
    user = update.effective_user
    if user is None or user.is_bot:  # posted as a chat, a channel: no person to ask
        set_language(ENGLISH)
        return
    set_language(await services_of(context).languages.of_person(user.id, user.language_code))


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    await message.reply_text(chat_sentences.choose_language(), reply_markup=keyboard(language_buttons()))


async def language_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The choice is kept in the store; the answer is already in the new language."""
    query = update.callback_query
    if query is None:
        return
    match = _PATTERN.match(query.data or "")
    if match is None:
        await query.answer(chat_sentences.stale_button())
        return
    set_language(await services_of(context).languages.choose(query.from_user.id, match.group(1)))
    await query.answer(chat_sentences.language_chosen())
    await query.edit_message_text(chat_sentences.language_chosen())
