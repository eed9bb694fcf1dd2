"""Never silent: a message or button the bot cannot place gets a short answer saying what to do.

For a customer, silence looks like a broken shop. But a chatty person, or a group where people
talk among themselves, must not get an answer to every line: the answer goes out at most once
a minute per chat, and in a group only to a message addressed to the bot (a reply to one of
its messages, or an @mention).

The limit is kept in memory: after a restart a chat may get one more answer within the minute,
which is harmless, and it keeps a database write off every stray line.
"""

from __future__ import annotations

from telegram import Bot, Message, Update
from telegram.constants import ChatType, MessageEntityType
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.orders import sentences as order_sentences
from bot.services import services_of
from bot.telegram import sentences as chat_sentences

STRAY_EVERY = 60.0  # seconds: at most one "what to do" answer per chat in this window
_THROTTLE_KEY = "stray_throttle"


class ChatThrottle:
    """At most one answer per chat per window; forgets chats whose window has passed."""

    def __init__(self, window: float = STRAY_EVERY) -> None:
        self.window = window
        self._last: dict[int, float] = {}
        self._prune_at = 1024

    def allow(self, chat_id: int, now: float) -> bool:
        last = self._last.get(chat_id)
        if last is not None and now - last < self.window:
            return False
        if len(self._last) >= self._prune_at:  # keep only the chats answered within the window
            self._last = {chat: at for chat, at in self._last.items() if now - at < self.window}
            self._prune_at = max(1024, 2 * len(self._last))  # amortised: not on every call
        self._last[chat_id] = now
        return True

    def __len__(self) -> int:
        return len(self._last)


def _throttle(context: ContextTypes.DEFAULT_TYPE) -> ChatThrottle:
    throttle: ChatThrottle = context.application.bot_data.setdefault(_THROTTLE_KEY, ChatThrottle())
    return throttle


def _what_to_do(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    """Send /pay; or, where only the shop's staff may send prompts, ask a cashier."""
    settings = services_of(context).settings
    user = update.effective_user
    if user is not None and not settings.may_pay(user.id):
        return order_sentences.pay_staff_only()
    return chat_sentences.stray(settings.shop_name)


def addressed_to_bot(message: Message, bot: Bot) -> bool:
    """In a group: a reply to the bot's message, or a message that @mentions the bot."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
        return True
    username = f"@{bot.username}".lower() if bot.username else None
    for entity, text in [*message.parse_entities().items(), *message.parse_caption_entities().items()]:
        if entity.type == MessageEntityType.MENTION and username and text.lower() == username:
            return True
        if entity.type == MessageEntityType.TEXT_MENTION and entity.user is not None and entity.user.id == bot.id:
            return True
    return False


def command_for_another_bot(message: Message, bot: Bot) -> bool:
    """/start@otherbot in a group: not ours to answer."""
    command = (message.text or "").split()[0] if message.text else ""
    return "@" in command and command.split("@", 1)[1].lower() != (bot.username or "").lower()


async def stray_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A message outside any conversation ("hello", "thanks", a sticker)."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    if chat.type != ChatType.PRIVATE and not addressed_to_bot(message, context.bot):
        return  # people talking among themselves
    if _throttle(context).allow(chat.id, services_of(context).conversations.now()):
        await message.reply_text(_what_to_do(update, context))


async def stray_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button whose data the bot does not know (an old keyboard, another version of the bot).

    The query is always answered, so the client stops its spinner; the pop-up says what to do
    at most once a minute per chat, like the answer to a stray message.
    """
    query = update.callback_query
    if query is None:
        return
    chat = update.effective_chat
    chat_id = chat.id if chat is not None else query.from_user.id
    allowed = _throttle(context).allow(chat_id, services_of(context).conversations.now())
    await query.answer(_what_to_do(update, context) if allowed else None)


async def pressed_on_inline_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button on a message posted inline: no chat to act in, so a pop-up says where buttons
    work, and no other handler sees the press."""
    query = update.callback_query
    if query is not None:
        await query.answer(chat_sentences.button_needs_a_chat(), show_alert=True)
    raise ApplicationHandlerStop
