"""The /pay conversation: phone, amount, summary, confirm; every step kept in the database.

The conversation's state (its step and the draft: phone, network, amount, which summary was
shown) lives in the store, not in memory: each step is written *before* the bot answers it, so
a restart, even kill -9, resumes at the last step the payer saw answered, and a crash can only
lose a step whose answer never arrived. If a crash falls between writing a step and answering
it, the payer simply says it again: a phone number at the amount step, or an amount at the
summary, is taken as a correction.

The summary's buttons carry the summary's key and the network it shows, so a press always
does what the message showed, even after a crash between writing a network switch and
editing the message. Handlers talk to Telegram and call the services, never the store.
"""

from __future__ import annotations

import logging

from telegram import (
    CallbackQuery,
    InlineKeyboardMarkup,
    ForceReply,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, ContextTypes

from bot import messages
from bot.conversations import Draft, DraftStep, TimedOut, new_summary_key
from bot.crashpoints import crash_point
from bot.domain import Network, PaymentRequest
from bot.handlers.info import nothing_to_cancel, stale_button
from bot.handlers.info import unknown_command as unknown_command_outside
from bot.handlers.stray import command_for_another_bot, stray_message
from bot.inputs import InputError, guess_network, parse_amount, parse_phone
from bot.payments import PaymentRefused
from bot.services import SERVICES_KEY, services_of

log = logging.getLogger(__name__)

TIMEOUT_SWEEP_EVERY = 1.0  # seconds: how late at most an idle payer hears that time is up


def _who(update: Update) -> tuple[int, int]:
    return update.effective_chat.id, update.effective_user.id  # type: ignore[union-attr]


def _in_group(update: Update) -> bool:
    return update.effective_chat.type != ChatType.PRIVATE  # type: ignore[union-attr]


def _answer_markup(update: Update, placeholder: str) -> ForceReply | ReplyKeyboardRemove:
    """In a group, make the asker's client reply to the bot (so the bot sees the answer even
    in privacy mode) without bothering the other members."""
    return ForceReply(selective=True, input_field_placeholder=placeholder) if _in_group(update) else ReplyKeyboardRemove()


# -- the timeout ------------------------------------------------------------------------
# Judged from the draft's last write (see ConversationService.resume), so it keeps counting
# while the bot is down: a payer who comes back late is told the conversation was dropped.
# While the bot runs, a sweep also tells an idle payer when the time is up, as
# python-telegram-bot's conversation timeout did.


async def watch_conversation_timeouts(application: Application) -> None:  # type: ignore[type-arg]
    """Start the timeout sweep (and forget drafts abandoned long ago)."""
    conversations = application.bot_data[SERVICES_KEY].conversations
    await conversations.purge_abandoned()
    if application.job_queue is not None:
        every = min(TIMEOUT_SWEEP_EVERY, conversations.timeout_seconds / 4)
        application.job_queue.run_repeating(_timeout_sweep, interval=every, first=every, name="conversation-timeouts")


async def _timeout_sweep(context: ContextTypes.DEFAULT_TYPE) -> None:
    conversations = services_of(context).conversations
    for draft in await conversations.timed_out_since_start():
        if not await conversations.finish(draft):
            continue  # the payer took a step meanwhile
        try:
            await context.bot.send_message(draft.chat_id, messages.CONVERSATION_TIMED_OUT, reply_markup=ReplyKeyboardRemove())
        except TelegramError as exc:  # one chat's fault (blocked, gone) never stops the others
            log.info("could not tell a chat its conversation timed out: %s", exc)


async def _save(
    context: ContextTypes.DEFAULT_TYPE,
    draft: Draft,
    *,
    step: DraftStep | None = None,
    phone: str | None = None,
    network: Network | None = None,
    amount: int | None = None,
    summary_key: str | None = None,
) -> Draft | None:
    """Write the next step (or, with no changes, that the payer is still here) before answering
    it. None: the draft was dropped meanwhile (the timeout fired and said so): no step taken."""
    conversations = services_of(context).conversations
    saved = await conversations.advance(
        draft, step=step, phone=phone, network=network, amount=amount, summary_key=summary_key
    )
    if saved is not None:
        crash_point("draft_saved")
    return saved


async def _tell_timed_out(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.bot.send_message(
        update.effective_chat.id, messages.CONVERSATION_TIMED_OUT, reply_markup=ReplyKeyboardRemove()  # type: ignore[union-attr]
    )


# -- /pay and the message steps -----------------------------------------------------------


async def pay_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    chat_id, user_id = _who(update)
    message = update.effective_message
    refusal = None
    if not services.settings.may_pay(user_id):
        refusal = messages.PAY_STAFF_ONLY
    else:
        try:
            await services.payments.ensure_user_may_prompt(user_id)
        except PaymentRefused as refused:
            refusal = refused.message
    if refusal is not None:
        await services.conversations.forget(chat_id, user_id)
        await message.reply_text(refusal)  # type: ignore[union-attr]
        return
    await services.conversations.start(chat_id, user_id)
    crash_point("draft_saved")
    markup: ReplyKeyboardMarkup | ForceReply | ReplyKeyboardRemove = _answer_markup(update, "0712 345 678")
    if not _in_group(update):
        # Telegram offers the share-contact button in private chats only.
        markup = ReplyKeyboardMarkup(
            [[KeyboardButton(messages.SHARE_CONTACT_LABEL, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    await message.reply_text(messages.ASK_PHONE, reply_markup=markup)  # type: ignore[union-attr]
    crash_point("draft_answered")


async def message_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any message that is not a command: the next step of this person's conversation, or,
    outside one, a short answer saying what to do (never silence)."""
    if update.effective_user is None or update.effective_chat is None:
        return
    draft = await services_of(context).conversations.resume(*_who(update))
    if isinstance(draft, TimedOut):
        await _tell_timed_out(update, context)
    elif draft is None:
        await stray_message(update, context)
    elif draft.step is DraftStep.PHONE:
        await _phone_step(update, context, draft)
    elif draft.step is DraftStep.AMOUNT:
        await _amount_step(update, context, draft)
    else:
        await _summary_step(update, context, draft)


async def _phone_step(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    message = update.effective_message
    if message.contact is not None:  # type: ignore[union-attr]
        await _accept_phone(update, context, draft, message.contact.phone_number)  # type: ignore[union-attr]
    elif message.text:  # type: ignore[union-attr]
        await _accept_phone(update, context, draft, message.text)  # type: ignore[union-attr]
    elif await _save(context, draft):
        await message.reply_text(messages.NOT_TEXT_PHONE)  # type: ignore[union-attr]


async def _accept_phone(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft, raw: str) -> None:
    message = update.effective_message
    try:
        phone = parse_phone(raw)
    except InputError:
        if await _save(context, draft):
            await message.reply_text(messages.PHONE_PROBLEM)  # type: ignore[union-attr]
        return
    try:
        await services_of(context).payments.ensure_phone_may_be_prompted(phone)
    except PaymentRefused as refusal:
        if await _save(context, draft, step=DraftStep.PHONE):
            await message.reply_text(f"{refusal.message}\nYou can send another number, or /cancel.")  # type: ignore[union-attr]
        return
    saved = await _save(context, draft, step=DraftStep.AMOUNT, phone=phone, network=guess_network(phone))
    if saved is None:
        return
    settings = services_of(context).settings
    shown = messages.shown_phone(phone, saved.chat_id)
    await message.reply_text(  # type: ignore[union-attr]
        messages.ask_amount(shown, saved.network, settings.min_amount, settings.max_amount),
        reply_markup=_answer_markup(update, "500"),
    )
    crash_point("draft_answered")


async def _amount_step(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    settings = services_of(context).settings
    message = update.effective_message
    if message.contact is not None:  # type: ignore[union-attr]  # a new phone after all
        await _accept_phone(update, context, draft, message.contact.phone_number)  # type: ignore[union-attr]
        return
    if not message.text:  # type: ignore[union-attr]
        if await _save(context, draft):
            await message.reply_text(messages.NOT_TEXT_AMOUNT)  # type: ignore[union-attr]
        return
    try:
        amount = parse_amount(message.text, settings.min_amount, settings.max_amount)  # type: ignore[union-attr]
    except InputError as exc:
        if _is_phone(message.text):  # type: ignore[union-attr]  # the phone again (or a correction)
            await _accept_phone(update, context, draft, message.text)  # type: ignore[union-attr]
        elif await _save(context, draft):
            await message.reply_text(messages.amount_problem(exc.problem, settings.min_amount, settings.max_amount))  # type: ignore[union-attr]
        return
    await _show_summary(update, context, draft, amount)


def _is_phone(text: str) -> bool:
    try:
        parse_phone(text)
    except InputError:
        return False
    return True


async def _summary_step(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    """Typing at the summary: an amount or a phone number corrects the draft (the payer may
    not have seen the summary if the bot crashed before sending it); anything else points to
    the buttons."""
    settings = services_of(context).settings
    message = update.effective_message
    text = message.text or ""  # type: ignore[union-attr]
    try:
        amount = parse_amount(text, settings.min_amount, settings.max_amount)
    except InputError:
        if _is_phone(text):
            await _accept_phone(update, context, draft, text)
        elif await _save(context, draft):
            await message.reply_text(  # type: ignore[union-attr]
                messages.still_waiting_for("Confirm or Cancel button on the summary above")
            )
        return
    await _show_summary(update, context, draft, amount)


async def _show_summary(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft, amount: int) -> None:
    saved = await _save(context, draft, step=DraftStep.CONFIRM, amount=amount, summary_key=new_summary_key())
    if saved is None:
        return
    text, keyboard = _summary(context, saved)
    await update.effective_message.reply_text(text, reply_markup=keyboard)  # type: ignore[union-attr]
    crash_point("draft_answered")


def _summary(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> tuple[str, InlineKeyboardMarkup | None]:
    sandbox = services_of(context).settings.ipay_sandbox
    shown = messages.shown_phone(draft.phone, draft.chat_id)
    text = messages.with_sandbox_tag(messages.summary(shown, draft.network, draft.amount), sandbox)
    buttons = messages.draft_summary_buttons(draft.summary_key or "", draft.network, draft.user_id)
    return text, messages.keyboard(buttons)


# -- the summary's buttons --------------------------------------------------------------


async def summary_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query: CallbackQuery = update.callback_query  # type: ignore[assignment]
    press = messages.summary_press(query.data or "")
    if press is None or query.message is None or press.owner != update.effective_user.id:  # type: ignore[union-attr]
        await stale_button(update, context)  # an old format, or someone else's: says which
        return
    draft = await services_of(context).conversations.resume(*_who(update))
    if isinstance(draft, TimedOut):
        await query.answer(messages.STALE_BUTTON)
        await _tell_timed_out(update, context)
        return
    if draft is None or draft.step is not DraftStep.CONFIRM or draft.summary_key != press.summary_key:
        await query.answer(messages.STALE_BUTTON)
        return
    if press.action == messages.CONFIRM:
        await _confirm(update, context, draft, press)
    elif press.action == messages.SWITCH_NETWORK:
        await _switch_network(update, context, draft, press)
    else:
        await _cancel_on_summary(update, context, draft)


async def _confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft, press: messages.SummaryPress) -> None:
    """The order is written (by the service) before the draft is forgotten: a crash between the
    two leaves a Confirm that the one-open-prompt-per-phone rule refuses, never a lost order."""
    query: CallbackQuery = update.callback_query  # type: ignore[assignment]
    await query.answer()
    services = services_of(context)
    request = PaymentRequest(
        draft.chat_id, draft.user_id, draft.phone, press.network, draft.amount, requested_by=_requested_by(update)
    )
    try:
        order = await services.payments.create_order(request, prompt_message_id=query.message.message_id)  # type: ignore[union-attr]
    except PaymentRefused as refusal:
        await _end(context, draft)
        await query.edit_message_text(refusal.message)
        return
    await _end(context, draft)
    try:
        await query.edit_message_text(messages.with_sandbox_tag(messages.sending_prompt(order), services.settings.ipay_sandbox))
    finally:  # the order is written: its prompt goes out even if this edit failed
        services.payments.send_prompt_soon(order)


async def _end(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    await services_of(context).conversations.finish(draft)


async def _switch_network(
    update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft, press: messages.SummaryPress
) -> None:
    """Switches away from the network the pressed message shows, so pressing it twice (or after
    a crash that kept the switch but not the edit) shows what was asked for."""
    query: CallbackQuery = update.callback_query  # type: ignore[assignment]
    saved = await _save(context, draft, network=press.network.other)
    if saved is None:
        await query.answer(messages.STALE_BUTTON)
        return
    await query.answer(f"Switched to {saved.network.label}")
    text, keyboard = _summary(context, saved)
    try:
        await query.edit_message_text(text, reply_markup=keyboard)
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():  # it already shows this network
            raise
    crash_point("draft_answered")


async def _cancel_on_summary(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    query: CallbackQuery = update.callback_query  # type: ignore[assignment]
    await query.answer()
    await _end(context, draft)
    await query.edit_message_text(messages.CONVERSATION_CANCELLED)


def _requested_by(update: Update) -> str:
    user = update.effective_user
    handle = f"@{user.username}, " if user.username else ""  # type: ignore[union-attr]
    return f"{user.full_name} ({handle}{user.id})"  # type: ignore[union-attr]


# -- commands that depend on the conversation ---------------------------------------------


async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    draft = await services_of(context).conversations.resume(*_who(update))
    if isinstance(draft, TimedOut):
        await _tell_timed_out(update, context)
    elif draft is None:
        await nothing_to_cancel(update, context)
    else:
        await _end(context, draft)
        await update.effective_message.reply_text(messages.CONVERSATION_CANCELLED, reply_markup=ReplyKeyboardRemove())  # type: ignore[union-attr]


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command nobody knows: in the middle of a payment, say so and keep the step."""
    message = update.effective_message
    if message is None or command_for_another_bot(message, context.bot):
        return
    if await services_of(context).conversations.live(*_who(update)) is None:
        await unknown_command_outside(update, context)
        return
    await message.reply_text(messages.UNKNOWN_COMMAND_MID_PAYMENT)
