"""The /pay conversation: phone, amount, summary, confirm.

Reads as one table (see `pay_conversation`): each state is a constant, each step a small
function that returns the next state. Handlers only talk to Telegram and call the payment
service; the order is written and iPay is called by the service, never here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from telegram import (
    ForceReply,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot import messages
from bot.domain import Network, PaymentRequest
from bot.handlers.info import help_command
from bot.handlers.status import status_command
from bot.inputs import InputError, guess_network, parse_amount, parse_phone
from bot.payments import PaymentRefused
from bot.services import services_of

PHONE, AMOUNT, CONFIRM = range(3)
END = ConversationHandler.END


@dataclass
class PaymentDraft:
    """What the payer has told us so far in this chat."""

    phone: str = ""
    network: Network = Network.MPESA
    amount: int = 0
    summary_message_id: int | None = None


def _draft(update: Update, context: ContextTypes.DEFAULT_TYPE, *, new: bool = False) -> PaymentDraft:
    # user_data is per user across chats; key drafts by chat so two chats never mix.
    drafts: dict[int, PaymentDraft] = context.user_data.setdefault("drafts", {})  # type: ignore[union-attr]
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    if new or chat_id not in drafts:
        drafts[chat_id] = PaymentDraft()
    return drafts[chat_id]


def _forget_draft(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    context.user_data.get("drafts", {}).pop(update.effective_chat.id, None)  # type: ignore[union-attr]


def _in_group(update: Update) -> bool:
    return update.effective_chat.type != ChatType.PRIVATE  # type: ignore[union-attr]


def _answer_markup(update: Update, placeholder: str) -> ForceReply | ReplyKeyboardRemove:
    """In a group, make the asker's client reply to the bot (so the bot sees the answer even
    in privacy mode) without bothering the other members."""
    return ForceReply(selective=True, input_field_placeholder=placeholder) if _in_group(update) else ReplyKeyboardRemove()


async def pay_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    settings = services_of(context).settings
    user_id = update.effective_user.id  # type: ignore[union-attr]
    message = update.effective_message
    if not settings.may_pay(user_id):
        await message.reply_text(messages.PAY_STAFF_ONLY)  # type: ignore[union-attr]
        return END
    try:
        await services_of(context).payments.ensure_user_may_prompt(user_id)
    except PaymentRefused as refusal:
        await message.reply_text(refusal.message)  # type: ignore[union-attr]
        return END
    _draft(update, context, new=True)
    markup: ReplyKeyboardMarkup | ForceReply | ReplyKeyboardRemove = _answer_markup(update, "0712 345 678")
    if not _in_group(update):
        # Telegram offers the share-contact button in private chats only.
        markup = ReplyKeyboardMarkup(
            [[KeyboardButton(messages.SHARE_CONTACT_LABEL, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    await message.reply_text(messages.ASK_PHONE, reply_markup=markup)  # type: ignore[union-attr]
    return PHONE


async def phone_typed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    return await _accept_phone(update, context, update.effective_message.text or "")  # type: ignore[union-attr]


async def phone_shared(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    return await _accept_phone(update, context, update.effective_message.contact.phone_number)  # type: ignore[union-attr]


async def _accept_phone(update: Update, context: ContextTypes.DEFAULT_TYPE, raw: str) -> int:
    message = update.effective_message
    try:
        phone = parse_phone(raw)
    except InputError:
        await message.reply_text(messages.PHONE_PROBLEM)  # type: ignore[union-attr]
        return PHONE
    try:
        await services_of(context).payments.ensure_phone_may_be_prompted(phone)
    except PaymentRefused as refusal:
        await message.reply_text(f"{refusal.message}\nYou can send another number, or /cancel.")  # type: ignore[union-attr]
        return PHONE
    draft = _draft(update, context)
    draft.phone, draft.network = phone, guess_network(phone)
    settings = services_of(context).settings
    shown = messages.shown_phone(phone, update.effective_chat.id)  # type: ignore[union-attr]
    await message.reply_text(  # type: ignore[union-attr]
        messages.ask_amount(shown, draft.network, settings.min_amount, settings.max_amount),
        reply_markup=_answer_markup(update, "500"),
    )
    return AMOUNT


async def phone_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await update.effective_message.reply_text(messages.NOT_TEXT_PHONE)  # type: ignore[union-attr]
    return PHONE


async def amount_typed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    settings = services_of(context).settings
    message = update.effective_message
    try:
        amount = parse_amount(message.text or "", settings.min_amount, settings.max_amount)  # type: ignore[union-attr]
    except InputError as exc:
        await message.reply_text(  # type: ignore[union-attr]
            messages.amount_problem(exc.problem, settings.min_amount, settings.max_amount)
        )
        return AMOUNT
    draft = _draft(update, context)
    draft.amount = amount
    summary = await message.reply_text(  # type: ignore[union-attr]
        _summary_text(update, draft, context), reply_markup=_summary_keyboard(update, draft)
    )
    draft.summary_message_id = summary.message_id
    return CONFIRM


async def amount_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await update.effective_message.reply_text(messages.NOT_TEXT_AMOUNT)  # type: ignore[union-attr]
    return AMOUNT


def _summary_text(update: Update, draft: PaymentDraft, context: ContextTypes.DEFAULT_TYPE) -> str:
    sandbox = services_of(context).settings.ipay_sandbox
    shown = messages.shown_phone(draft.phone, update.effective_chat.id)  # type: ignore[union-attr]
    return messages.with_sandbox_tag(messages.summary(shown, draft.network, draft.amount), sandbox)


def _summary_keyboard(update: Update, draft: PaymentDraft) -> InlineKeyboardMarkup | None:
    return messages.keyboard(messages.summary_buttons(draft.network, update.effective_user.id))  # type: ignore[union-attr]


def _requested_by(update: Update) -> str:
    user = update.effective_user
    handle = f"@{user.username}, " if user.username else ""  # type: ignore[union-attr]
    return f"{user.full_name} ({handle}{user.id})"  # type: ignore[union-attr]


async def _pressed_summary(update: Update, context: ContextTypes.DEFAULT_TYPE) -> PaymentDraft | None:
    """The draft whose current summary this button is on; an older summary's button is
    answered as stale here, and None tells the step to change nothing."""
    draft = _draft(update, context)
    message = update.callback_query.message  # type: ignore[union-attr]
    if message is None or message.message_id != draft.summary_message_id:
        await update.callback_query.answer(messages.STALE_BUTTON)  # type: ignore[union-attr]
        return None
    return draft


async def confirm_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    query = update.callback_query
    draft = await _pressed_summary(update, context)
    if draft is None:
        return None
    await query.answer()  # type: ignore[union-attr]
    service = services_of(context).payments
    _forget_draft(update, context)
    try:
        request = PaymentRequest(
            update.effective_chat.id, update.effective_user.id,  # type: ignore[union-attr]
            draft.phone, draft.network, draft.amount, requested_by=_requested_by(update),
        )
        order = await service.create_order(request, prompt_message_id=draft.summary_message_id)
    except PaymentRefused as refusal:
        await query.edit_message_text(refusal.message)  # type: ignore[union-attr]
        return END
    sandbox = services_of(context).settings.ipay_sandbox
    try:
        await query.edit_message_text(messages.with_sandbox_tag(messages.sending_prompt(order), sandbox))  # type: ignore[union-attr]
    finally:  # the order is written: its prompt goes out even if this edit failed
        service.send_prompt_soon(order)
    return END


async def switch_network_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    query = update.callback_query
    draft = await _pressed_summary(update, context)
    if draft is None:
        return None
    draft.network = draft.network.other
    await query.answer(f"Switched to {draft.network.label}")  # type: ignore[union-attr]
    await query.edit_message_text(_summary_text(update, draft, context), reply_markup=_summary_keyboard(update, draft))  # type: ignore[union-attr]
    return CONFIRM


async def cancel_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    query = update.callback_query
    if await _pressed_summary(update, context) is None:
        return None
    await query.answer()  # type: ignore[union-attr]
    _forget_draft(update, context)
    await query.edit_message_text(messages.CONVERSATION_CANCELLED)  # type: ignore[union-attr]
    return END


async def waiting_for_confirmation(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await update.effective_message.reply_text(  # type: ignore[union-attr]
        messages.still_waiting_for("Confirm or Cancel button on the summary above")
    )
    return CONFIRM


async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    _forget_draft(update, context)
    await update.effective_message.reply_text(messages.CONVERSATION_CANCELLED, reply_markup=ReplyKeyboardRemove())  # type: ignore[union-attr]
    return END


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the conversation does not know: say so and stay on the same step."""
    await update.effective_message.reply_text(  # type: ignore[union-attr]
        "I don't know that command. We're in the middle of a payment: answer my last question, or send /cancel."
    )


async def conversation_timed_out(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    _forget_draft(update, context)
    await context.bot.send_message(update.effective_chat.id, messages.CONVERSATION_TIMED_OUT, reply_markup=ReplyKeyboardRemove())  # type: ignore[union-attr]


def pay_conversation(timeout_seconds: float) -> ConversationHandler:  # type: ignore[type-arg]
    with warnings.catch_warnings():
        # Message steps and button steps mix on purpose, so per_message stays False.
        warnings.filterwarnings("ignore", message=r".*per_message=False.*", category=PTBUserWarning)
        return _conversation(timeout_seconds)


def _conversation(timeout_seconds: float) -> ConversationHandler:  # type: ignore[type-arg]
    not_command = ~filters.COMMAND
    return ConversationHandler(
        entry_points=[CommandHandler("pay", pay_start)],
        states={
            PHONE: [
                MessageHandler(filters.CONTACT, phone_shared),
                MessageHandler(filters.TEXT & not_command, phone_typed),
                MessageHandler(not_command, phone_not_text),
            ],
            AMOUNT: [
                MessageHandler(filters.TEXT & not_command, amount_typed),
                MessageHandler(not_command, amount_not_text),
            ],
            CONFIRM: [
                CallbackQueryHandler(confirm_pressed, pattern=rf"^{messages.CONFIRM}:\d+$"),
                CallbackQueryHandler(switch_network_pressed, pattern=rf"^{messages.SWITCH_NETWORK}:\d+$"),
                CallbackQueryHandler(cancel_pressed, pattern=rf"^{messages.CANCEL}:\d+$"),
                MessageHandler(not_command, waiting_for_confirmation),
            ],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, conversation_timed_out)],
        },
        fallbacks=[
            CommandHandler("cancel", cancel_command),
            CommandHandler(["help", "start"], help_command),
            CommandHandler("status", status_command),
            MessageHandler(filters.COMMAND, unknown_command),
        ],
        allow_reentry=True,
        conversation_timeout=timeout_seconds,
        name="pay",
    )
