"""The menu button that opens the Mini App, set per chat for admins and staff only: customers
keep the command menu (`setChatMenuButton` without a chat changes everyone's, so it is never used)."""

from __future__ import annotations

import logging

from telegram import Bot, MenuButtonWebApp, WebAppInfo
from telegram.error import TelegramError

from bot.config import Settings
from bot.i18n import speaking
from bot.miniapp import sentences

log = logging.getLogger(__name__)
APP_PATH = "/app/"


def app_url(settings: Settings) -> str:
    return settings.miniapp_base.rstrip("/") + APP_PATH


async def set_menu_buttons(bot: Bot, settings: Settings, language: str) -> int:
    """The Mini App's button in each admin's and staff member's chat; how many were set. One who
    has not started the bot yet gets it at the next start-up."""
    if not settings.miniapp_base:
        return 0
    done = 0
    with speaking(language):
        button = MenuButtonWebApp(sentences.menu_button(), WebAppInfo(app_url(settings)))
    for user_id in sorted(settings.admin_ids | settings.staff_ids):
        try:
            await bot.set_chat_menu_button(chat_id=user_id, menu_button=button)
            done += 1
        except TelegramError as exc:
            log.info("no mini app menu button for %s: %s", user_id, exc)
    return done
