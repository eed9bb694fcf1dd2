"""The menu button that opens the Mini App, set per chat for admins and staff only: customers
keep the command menu (`setChatMenuButton` without a chat changes everyone's, so it is never used).

It is set at start-up for everyone who has started the bot, and the first time someone who had
not writes to it; each person once per process."""

from __future__ import annotations

import logging

from telegram import Bot, MenuButtonWebApp, Update, WebAppInfo
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.config import Settings
from bot.i18n import current, speaking
from bot.lifecycle import BotApplication
from bot.miniapp import sentences
from bot.services import services_of

log = logging.getLogger(__name__)
APP_PATH = "/app/"
GIVEN_KEY = "miniapp_menu_buttons"  # the user ids whose chat has the button, in this process


def app_url(settings: Settings) -> str:
    return settings.miniapp_base.rstrip("/") + APP_PATH


def _wanted(settings: Settings, user_id: int) -> bool:
    return bool(settings.miniapp_base) and (user_id in settings.admin_ids or user_id in settings.staff_ids)


async def _give(bot: Bot, settings: Settings, user_id: int, language: str) -> bool:
    with speaking(language):
        button = MenuButtonWebApp(sentences.menu_button(), WebAppInfo(app_url(settings)))
    try:
        await bot.set_chat_menu_button(chat_id=user_id, menu_button=button)
    except TelegramError as exc:  # they have not started the bot yet: done when they first write
        log.info("no mini app menu button for %s: %s", user_id, exc)
        return False
    return True


async def set_menu_buttons(application: BotApplication, settings: Settings) -> int:
    """At start-up: the button in each admin's and staff member's chat; how many were set."""
    given: set[int] = application.bot_data.setdefault(GIVEN_KEY, set())
    for user_id in sorted(settings.admin_ids | settings.staff_ids):
        if _wanted(settings, user_id) and await _give(application.bot, settings, user_id, settings.merchant_language):
            given.add(user_id)
    return len(given)


async def give_menu_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An admin or staff member writing in their own chat gets the button, once, in their language."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or chat.type != ChatType.PRIVATE:
        return
    settings = services_of(context).settings
    given: set[int] = context.application.bot_data.setdefault(GIVEN_KEY, set())
    if user.id in given or not _wanted(settings, user.id):
        return
    given.add(user.id)  # one try per process, even if Telegram says no
    await _give(context.bot, settings, user.id, current())
