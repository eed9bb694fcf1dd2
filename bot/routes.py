"""Every Telegram handler registered, in one place: each feature's conversation, commands and
buttons (`bot/<feature>/telegram.py`) and the shared edge (`bot/telegram/`). No SQL, no HTTP.

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

from bot.buttons import (
    LANGUAGE_BUTTON_PATTERN,
    ORDER_BUTTON_PATTERN,
    PAYBILL_BUTTON_PATTERN,
    REQUEST_BUTTON_PATTERN,
    SUMMARY_BUTTON_PATTERN,
)
from bot.lifecycle import BotApplication
from bot.miniapp.menu import give_menu_button
from bot.orders.status import status_command
from bot.orders.telegram import order_button_pressed
from bot.owner.summary import CASHIER_BUTTON_PATTERN
from bot.owner.telegram import BUTTON_PATTERN as CLOSE_BUTTON_PATTERN
from bot.owner.telegram import close_button_pressed, close_command
from bot.pay.telegram import (
    cancel_command,
    message_received,
    pay_command,
    summary_button_pressed,
    unknown_command,
    watch_conversation_timeouts,
)
from bot.refunds.buttons import BUTTON_PATTERN as REFUND_BUTTON_PATTERN
from bot.refunds.telegram import refund_button_pressed, refund_command
from bot.reports.telegram import (
    cashier_button_pressed,
    export_command,
    orders_command,
    reconcile_command,
    summary_command,
)
from bot.requests.telegram import (
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
from bot.telegram.access import PressedOnInlineMessage
from bot.telegram.info import SENT_AS_A_CHAT, error_handler, help_command, sent_as_a_chat
from bot.telegram.language import language_button_pressed, language_command, speak_senders_language
from bot.telegram.stray import pressed_on_inline_message, stray_button
from bot.telegram.updates import drop_repeats

__all__ = ["ALLOWED_UPDATES", "register_handlers", "watch_conversation_timeouts", "watch_payment_requests"]

# What the bot asks Telegram for (polling and webhook alike): inline mode needs the last two.
ALLOWED_UPDATES = ["message", "callback_query", "inline_query", "chosen_inline_result"]


# What the message handlers accept: new messages only. An edit of a message already handled is
# not a new command or answer (an edited /cancel must not cancel), whatever ALLOWED_UPDATES
# lets through later; channel posts have no person behind them.
NEW_MESSAGE = filters.UpdateType.MESSAGE


def register_handlers(application: BotApplication) -> None:
    # An update Telegram delivered again is dropped before anything else sees it.
    application.add_handler(TypeHandler(Update, drop_repeats), group=-3)
    # Everything the bot says to an update is in its sender's language.
    application.add_handler(TypeHandler(Update, speak_senders_language), group=-2)
    # Commands with no person behind them (anonymous admins, a channel's posts forwarded into its
    # group) are sorted out first; a channel's own posts reach no handler.
    application.add_handler(MessageHandler(NEW_MESSAGE & filters.COMMAND & SENT_AS_A_CHAT, sent_as_a_chat), group=-1)
    # A button pressed on a message posted inline has no chat: answered here, once, for every button.
    application.add_handler(PressedOnInlineMessage(pressed_on_inline_message), group=-1)
    # Admins and staff who first write after start-up get the Mini App's menu button.
    application.add_handler(TypeHandler(Update, give_menu_button), group=-1)
    application.add_handler(CommandHandler("pay", pay_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("cancel", cancel_command, filters=NEW_MESSAGE))
    application.add_handler(
        CommandHandler("start", start_with_link, filters=NEW_MESSAGE, has_args=True)
    )  # t.me/<bot>?start=...
    application.add_handler(CommandHandler(["start", "help"], help_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("request", request_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("requests", requests_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("qr", qr_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("status", status_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("orders", orders_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("summary", summary_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("export", export_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("reconcile", reconcile_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("refund", refund_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler("close", close_command, filters=NEW_MESSAGE))
    application.add_handler(CommandHandler(["language", "lugha"], language_command, filters=NEW_MESSAGE))
    application.add_handler(MessageHandler(NEW_MESSAGE & filters.COMMAND, unknown_command))
    # Messages people write: not service messages (a pin, a join).
    said = NEW_MESSAGE & ~filters.COMMAND & ~filters.StatusUpdate.ALL
    application.add_handler(MessageHandler(said, message_received))
    application.add_handler(CallbackQueryHandler(summary_button_pressed, pattern=SUMMARY_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(order_button_pressed, pattern=ORDER_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(language_button_pressed, pattern=LANGUAGE_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(paybill_button_pressed, pattern=PAYBILL_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(request_button_pressed, pattern=REQUEST_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(refund_button_pressed, pattern=REFUND_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(close_button_pressed, pattern=CLOSE_BUTTON_PATTERN))
    application.add_handler(CallbackQueryHandler(cashier_button_pressed, pattern=CASHIER_BUTTON_PATTERN))
    application.add_handler(InlineQueryHandler(inline_query_received))
    application.add_handler(ChosenInlineResultHandler(chosen_inline_result_received))
    application.add_handler(CallbackQueryHandler(stray_button))
    application.add_error_handler(error_handler)
