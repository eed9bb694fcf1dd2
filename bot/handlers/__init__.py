"""Telegram handlers: the conversation and the commands. No SQL, no HTTP.

Every message and button gets an answer: a conversation step, a command, a stale button's
pop-up, or (for anything the bot cannot place) a short line saying what to do.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    CallbackQueryHandler,
    ChosenInlineResultHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import messages
from bot.handlers.info import SENT_AS_A_CHAT, error_handler, help_command, sent_as_a_chat
from bot.handlers.language import language_button_pressed, language_command, speak_senders_language
from bot.handlers.merchant import export_command, orders_command, summary_command
from bot.handlers.orders import order_button_pressed
from bot.handlers.pay import (
    cancel_command,
    message_received,
    pay_command,
    summary_button_pressed,
    unknown_command,
    watch_conversation_timeouts,
)
from bot.handlers.requests import (
    chosen_inline_result_received,
    inline_query_received,
    paybill_button_pressed,
    qr_command,
    request_button_pressed,
    request_command,
    requests_command,
    start_with_link,
    watch_payment_requests,
)
from bot.handlers.status import status_command
from bot.handlers.stray import stray_button
from bot.lifecycle import BotApplication
from bot.refunds.buttons import BUTTON_PATTERN as REFUND_BUTTON_PATTERN
from bot.refunds.telegram import refund_button_pressed, refund_command

__all__ = ["ALLOWED_UPDATES", "register_handlers", "watch_conversation_timeouts", "watch_payment_requests"]

# What the bot asks Telegram for (polling and webhook alike): inline mode needs the last two.
ALLOWED_UPDATES = ["message", "callback_query", "inline_query", "chosen_inline_result"]


def register_handlers(application: BotApplication) -> None:
    # Everything the bot says to an update is in its sender's language.
    application.add_handler(TypeHandler(Update, speak_senders_language), group=-2)
    # Commands with no person behind them (channel posts, anonymous admins) are sorted out first.
    application.add_handler(MessageHandler(filters.COMMAND & SENT_AS_A_CHAT, sent_as_a_chat), group=-1)
    application.add_handler(CommandHandler("pay", pay_command))
    application.add_handler(CommandHandler("cancel", cancel_command))
    application.add_handler(CommandHandler("start", start_with_link, has_args=True))  # t.me/<bot>?start=...
    application.add_handler(CommandHandler(["start", "help"], help_command))
    application.add_handler(CommandHandler("request", request_command))
    application.add_handler(CommandHandler("requests", requests_command))
    application.add_handler(CommandHandler("qr", qr_command))
    application.add_handler(CommandHandler("status", status_command))
    application.add_handler(CommandHandler("orders", orders_command))
    application.add_handler(CommandHandler("summary", summary_command))
    application.add_handler(CommandHandler("export", export_command))
    application.add_handler(CommandHandler("refund", refund_command))
    application.add_handler(CommandHandler(["language", "lugha"], language_command))
    application.add_handler(MessageHandler(filters.COMMAND, unknown_command))
    # New messages people write: not edits of old ones, not service messages (a pin, a join).
    said = filters.UpdateType.MESSAGE & ~filters.COMMAND & ~filters.StatusUpdate.ALL
    application.add_handler(MessageHandler(said, message_received))
    application.add_handler(CallbackQueryHandler(summary_button_pressed, pattern=messages.SUMMARY_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(order_button_pressed, pattern=messages.ORDER_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(language_button_pressed, pattern=messages.LANGUAGE_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(paybill_button_pressed, pattern=messages.PAYBILL_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(request_button_pressed, pattern=messages.REQUEST_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(refund_button_pressed, pattern=REFUND_BUTTON_PATTERN))
    application.add_handler(InlineQueryHandler(inline_query_received))
    application.add_handler(ChosenInlineResultHandler(chosen_inline_result_received))
    application.add_handler(CallbackQueryHandler(stray_button))
    application.add_error_handler(error_handler)
