"""Telegram handlers: the conversation and the commands. No SQL, no HTTP."""

from __future__ import annotations

from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import messages
from bot.handlers.info import (
    SENT_AS_A_CHAT,
    error_handler,
    help_command,
    nothing_to_cancel,
    sent_as_a_chat,
    stale_button,
    unknown_command,
)
from bot.handlers.merchant import export_command, orders_command, summary_command
from bot.handlers.orders import order_button_pressed
from bot.handlers.pay import pay_conversation
from bot.handlers.status import status_command


def register_handlers(application: Application, conversation_timeout: float) -> None:  # type: ignore[type-arg]
    # Commands with no person behind them (channel posts, anonymous admins) are sorted out first.
    application.add_handler(MessageHandler(filters.COMMAND & SENT_AS_A_CHAT, sent_as_a_chat), group=-1)
    application.add_handler(pay_conversation(conversation_timeout))
    application.add_handler(CommandHandler(["start", "help"], help_command))
    application.add_handler(CommandHandler("status", status_command))
    application.add_handler(CommandHandler("cancel", nothing_to_cancel))
    application.add_handler(CommandHandler("orders", orders_command))
    application.add_handler(CommandHandler("summary", summary_command))
    application.add_handler(CommandHandler("export", export_command))
    application.add_handler(MessageHandler(filters.COMMAND, unknown_command))
    application.add_handler(CallbackQueryHandler(order_button_pressed, pattern=messages.ORDER_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(stale_button))
    application.add_error_handler(error_handler)
