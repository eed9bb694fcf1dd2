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
from dataclasses import dataclass

from telegram import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    User,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.buttons import (
    CANCEL,
    CONFIRM,
    SWITCH_NETWORK,
    SummaryPress,
    draft_summary_buttons,
    keyboard,
    share_contact_label,
    summary_press,
)
from bot.crashpoints import crash_point
from bot.domain import Network, PaymentRequest
from bot.i18n import formats, speaking
from bot.lifecycle import BotApplication
from bot.orders import sentences as order_sentences
from bot.orders.service import PaymentRefused
from bot.pay import sentences
from bot.pay.drafts import STILL_HERE, Draft, DraftChange, DraftStep, TimedOut, new_summary_key
from bot.pay.inputs import InputError, InputProblem, guess_network, parse_amount, parse_phone
from bot.requests import sentences as request_sentences
from bot.services import SERVICES_KEY, services_of
from bot.telegram import sentences as chat_sentences
from bot.telegram.info import nothing_to_cancel, stale_button
from bot.telegram.info import unknown_command as unknown_command_outside
from bot.telegram.stray import command_for_another_bot, stray_message

log = logging.getLogger(__name__)

TIMEOUT_SWEEP_EVERY = 1.0  # seconds: how late at most an idle payer hears that time is up
WAIT_GRACE = 120.0  # seconds past its time a waiting prompt keeps trying before giving up


def _sender(update: Update) -> tuple[Message, User] | None:
    """The message and who sent it; None for updates without either (channel posts)."""
    if update.effective_message is None or update.effective_user is None:
        return None
    return update.effective_message, update.effective_user


def _in_group(message: Message) -> bool:
    return message.chat.type != ChatType.PRIVATE


def _phone_question_markup(message: Message) -> ReplyKeyboardMarkup | ForceReply | ReplyKeyboardRemove:
    """How to answer "which phone?": the share-contact button, which Telegram offers in private
    chats only, or in a group a reply to the bot."""
    if _in_group(message):
        return _answer_markup(message, "0712 345 678")
    return ReplyKeyboardMarkup(
        [[KeyboardButton(share_contact_label(), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def _answer_markup(message: Message, placeholder: str) -> ForceReply | ReplyKeyboardRemove:
    """In a group, make the asker's client reply to the bot (so the bot sees the answer even
    in privacy mode) without bothering the other members."""
    if _in_group(message):
        return ForceReply(selective=True, input_field_placeholder=placeholder)
    return ReplyKeyboardRemove()


# -- the timeout ------------------------------------------------------------------------
# Judged from the draft's last write (see ConversationService.resume), so it keeps counting
# while the bot is down: a payer who comes back late is told the conversation was dropped.
# While the bot runs, a sweep also tells an idle payer when the time is up, as
# python-telegram-bot's conversation timeout did.


async def watch_conversation_timeouts(application: BotApplication) -> None:
    """Start the timeout sweep (and forget drafts abandoned long ago)."""
    conversations = application.bot_data[SERVICES_KEY].conversations
    await conversations.purge_abandoned()
    if application.job_queue is not None:
        every = min(TIMEOUT_SWEEP_EVERY, conversations.timeout_seconds / 4)
        application.job_queue.run_repeating(_timeout_sweep, interval=every, first=every, name="conversation-timeouts")


async def _timeout_sweep(context: ContextTypes.DEFAULT_TYPE) -> None:
    conversations = services_of(context).conversations
    languages = services_of(context).languages
    for draft in await conversations.waiting_due():
        try:
            with speaking(await languages.of_reader(draft.user_id)):
                await _send_when_free(context, draft)
        except Exception:  # one payer's fault never stops the others; the next sweep tries again
            log.exception("a prompt waiting for its phone could not be handled")
    for draft in await conversations.timed_out_since_start():
        if not await conversations.finish(draft):
            continue  # the payer took a step meanwhile
        try:
            with speaking(await languages.of_reader(draft.user_id)):
                await _tell_timed_out(context, draft)
        except TelegramError as exc:  # one chat's fault (blocked, gone) never stops the others
            log.info("could not tell a chat its conversation timed out: %s", exc)


async def _save(context: ContextTypes.DEFAULT_TYPE, draft: Draft, change: DraftChange = STILL_HERE) -> Draft | None:
    """Write the next step (or, with no change, that the payer is still here) before answering
    it. None: the draft was dropped meanwhile (the timeout fired and said so): no step taken."""
    saved = await services_of(context).conversations.advance(draft, change)
    if saved is not None:
        crash_point("draft_saved")
    return saved


async def _tell_timed_out(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    await context.bot.send_message(
        draft.chat_id, sentences.conversation_timed_out(), reply_markup=ReplyKeyboardRemove()
    )
    await _retire(context, draft)


async def _retire(context: ContextTypes.DEFAULT_TYPE, draft: Draft | None, note: str | None = None) -> None:
    """Take the buttons off the summary that answered `draft` once something else replaced it,
    so no old message invites a tap; with `note`, say below it what replaced it (as "Sent again as
    order …" does on an outcome message). A waiting Confirm's message, which promised a prompt,
    says instead that it was not sent. Best effort: the message may be gone, or the payer may
    have blocked the bot."""
    if draft is None or draft.message_id is None or draft.step not in (DraftStep.CONFIRM, DraftStep.WAITING):
        return
    try:
        if draft.step is DraftStep.WAITING:
            text = chat_sentences.with_sandbox_tag(
                sentences.waiting_not_sent(note or ""), services_of(context).settings.ipay_sandbox
            )
            await context.bot.edit_message_text(text, chat_id=draft.chat_id, message_id=draft.message_id)
        elif note is None:
            await context.bot.edit_message_reply_markup(draft.chat_id, draft.message_id, reply_markup=None)
        else:
            text = (await _summary(context, draft))[0] + "\n\n" + note
            await context.bot.edit_message_text(text, chat_id=draft.chat_id, message_id=draft.message_id)
    except TelegramError as exc:
        log.info("could not take the buttons off an older summary: %s", exc)


# -- /pay and the message steps -----------------------------------------------------------


async def pay_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    sender = _sender(update)
    if sender is None:
        return
    message, user = sender
    services = services_of(context)
    refusal = None
    if not services.settings.may_pay(user.id):
        refusal = order_sentences.pay_staff_only()
    else:
        try:
            await services.payments.ensure_user_may_prompt(user.id)
        except PaymentRefused as refused:
            refusal = order_sentences.refusal(refused.code, refused.data, message.chat_id)
    if refusal is not None:
        current = await services.conversations.current(message.chat_id, user.id)
        ended = current is not None and current.step is not DraftStep.WAITING and await _end(context, current)
        await message.reply_text(refusal)  # (a waiting Confirm stays: the refusal is about a new payment)
        if ended:
            await _retire(context, current)
        return
    _, replaced = await services.conversations.start(message.chat_id, user.id)
    crash_point("draft_saved")
    markup = _phone_question_markup(message)
    question = chat_sentences.with_sandbox_tag(sentences.ask_phone(), services.settings.ipay_sandbox)
    await message.reply_text(question, reply_markup=markup)
    crash_point("draft_answered")
    await _retire(context, replaced, sentences.replaced_by_new_payment())


async def message_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any message that is not a command: the next step of this person's conversation, or,
    outside one, a short answer saying what to do (never silence)."""
    sender = _sender(update)
    if sender is None:
        return
    draft = await _resume(context, *sender)
    message = sender[0]
    if isinstance(draft, TimedOut):
        return
    if draft is None:
        await stray_message(update, context)
    elif sentences.typed_answer(message.text or "") is False:  # "cancel", "hapana", "sitisha", at any step
        await _cancel(context, message, draft)
    elif draft.step is DraftStep.PHONE:
        await _phone_step(context, message, draft)
    elif draft.step is DraftStep.AMOUNT:
        await _amount_step(context, message, draft)
    elif draft.step is DraftStep.WAITING:
        await message.reply_text(sentences.still_waiting_to_send(draft.send_at or 0.0))
    else:
        await _summary_step(context, message, draft)


async def _resume(context: ContextTypes.DEFAULT_TYPE, message: Message, user: User) -> Draft | TimedOut | None:
    """This person's conversation in this chat, if any; one that timed out is told so here."""
    draft = await services_of(context).conversations.resume(message.chat_id, user.id)
    if isinstance(draft, TimedOut):
        await _tell_timed_out(context, draft.draft)
    return draft


async def _cancel(context: ContextTypes.DEFAULT_TYPE, message: Message, draft: Draft) -> None:
    """The payer stopped (/cancel, or "no" typed at any step): forget the draft and say so. A
    waiting prompt that the sweep took a moment ago is being sent: nothing is left to cancel."""
    if not await _stop(context, draft) and draft.step is DraftStep.WAITING:
        await message.reply_text(sentences.waiting_already_sent())
        return
    await message.reply_text(sentences.conversation_cancelled(), reply_markup=ReplyKeyboardRemove())
    await _retire(context, draft, sentences.summary_cancelled())


async def _phone_step(context: ContextTypes.DEFAULT_TYPE, message: Message, draft: Draft) -> None:
    if message.contact is not None:
        await _accept_phone(context, message, draft, message.contact.phone_number)
    elif message.text:
        await _accept_phone(context, message, draft, message.text)
    elif await _save(context, draft):
        await message.reply_text(sentences.not_text_phone())


async def _accept_phone(context: ContextTypes.DEFAULT_TYPE, message: Message, draft: Draft, raw: str) -> None:
    try:
        phone = parse_phone(raw)
    except InputError:
        if await _save(context, draft):
            await message.reply_text(sentences.phone_problem())
        return
    waits: _Wait | None = None
    try:
        await services_of(context).payments.ensure_phone_may_be_prompted(phone)
    except PaymentRefused as refusal:
        waits = _cancelled_by_this_payer(refusal, draft)
        if waits is None:
            if await _save(context, draft, DraftChange(step=DraftStep.PHONE)):
                refused = order_sentences.refusal(refusal.code, refusal.data, message.chat_id, draft.user_id)
                await message.reply_text(sentences.another_number_or_cancel(refused))
                await _retire(context, draft, sentences.replaced_below())
            return
    if draft.pay_request_id is not None:  # a merchant's request: the amount is fixed, on to the summary
        await _show_summary(context, message, draft, draft.amount, phone=phone, waits=waits)
        return
    saved = await _save(
        context,
        draft,
        DraftChange(
            step=DraftStep.AMOUNT,
            phone=phone,
            network=guess_network(phone),
            waits_for=None if waits is None else (waits.order_id, waits.until),
        ),
    )
    if saved is None:
        return
    settings = services_of(context).settings
    shown = formats.shown_phone(phone, saved.chat_id)
    question = sentences.ask_amount(shown, saved.network, settings.min_amount, settings.max_amount)
    if waits is not None:
        question = sentences.phone_free_at(waits.order_id, waits.cancelled_at, waits.until) + "\n\n" + question
    await message.reply_text(
        chat_sentences.with_sandbox_tag(question, settings.ipay_sandbox), reply_markup=_answer_markup(message, "500")
    )
    crash_point("draft_answered")
    await _retire(context, draft, sentences.replaced_below())


async def _amount_step(context: ContextTypes.DEFAULT_TYPE, message: Message, draft: Draft) -> None:
    settings = services_of(context).settings
    if message.contact is not None:  # a new phone after all
        await _accept_phone(context, message, draft, message.contact.phone_number)
        return
    if not message.text:
        if await _save(context, draft):
            await message.reply_text(sentences.not_text_amount())
        return
    try:
        amount = parse_amount(message.text, settings.min_amount, settings.max_amount)
    except InputError as exc:
        if _is_phone(message.text):  # the phone again (or a correction)
            await _accept_phone(context, message, draft, message.text)
        elif await _save(context, draft):
            await message.reply_text(sentences.amount_problem(exc.problem, settings.min_amount, settings.max_amount))
        return
    await _show_summary(context, message, draft, amount)


def _is_amount(text: str, minimum: int, maximum: int) -> bool:
    """An amount, even one that cannot be paid (a phone number is not one)."""
    if _is_phone(text):
        return False
    try:
        parse_amount(text, minimum, maximum)
    except InputError as exc:
        return exc.problem is not InputProblem.AMOUNT_NOT_A_NUMBER
    return True


def _is_phone(text: str) -> bool:
    try:
        parse_phone(text)
    except InputError:
        return False
    return True


async def _summary_step(context: ContextTypes.DEFAULT_TYPE, message: Message, draft: Draft) -> None:
    """Typing at the summary: yes (`ok`, `ndio`...) confirms and no (`hapana`, `sitisha`...)
    cancels, as the buttons do; an amount or a phone number corrects the draft (the payer may
    not have seen the summary if the bot crashed before sending it), an amount that cannot be
    paid is explained, and anything else shows the summary again with its buttons (the old
    one may have scrolled away)."""
    settings = services_of(context).settings
    text = message.text or ""
    if draft.pay_request_id is not None and _is_amount(text, settings.min_amount, settings.max_amount):
        if await _save(context, draft):  # a request's amount cannot be changed
            await message.reply_text(request_sentences.request_amount_fixed(draft.amount))
        return
    if sentences.typed_answer(text) is True:
        await _confirm_typed(context, message, draft)
        return
    try:
        amount = parse_amount(text, settings.min_amount, settings.max_amount)
    except InputError as exc:
        if _is_phone(text):
            await _accept_phone(context, message, draft, text)
        elif exc.problem is InputProblem.AMOUNT_NOT_A_NUMBER:
            await _show_summary(context, message, draft, draft.amount, again=True)
        elif await _save(context, draft):  # a new amount, but not one that can be paid
            await message.reply_text(sentences.amount_problem(exc.problem, settings.min_amount, settings.max_amount))
        return
    await _show_summary(context, message, draft, amount)


async def _show_summary(
    context: ContextTypes.DEFAULT_TYPE,
    message: Message,
    draft: Draft,
    amount: int,
    *,
    again: bool = False,
    phone: str | None = None,
    waits: _Wait | None = None,
) -> None:
    """The summary with its buttons; `again`: the same one re-sent below what the payer typed;
    `phone`: a request's payer gave the phone (busy until `waits`, perhaps), and the amount is
    the request's."""
    network = None if phone is None else guess_network(phone)
    saved = await _save(
        context,
        draft,
        DraftChange(
            step=DraftStep.CONFIRM,
            phone=phone,
            network=network,
            amount=amount,
            summary_key=new_summary_key(),
            waits_for=None if waits is None else (waits.order_id, waits.until),
        ),
    )
    if saved is None:
        return
    text, keyboard = await _summary(context, saved)
    if again:
        text = sentences.summary_again() + "\n\n" + text
    sent = await message.reply_text(text, reply_markup=keyboard)
    crash_point("draft_answered")
    await services_of(context).conversations.shown(saved, sent.message_id)
    await _retire(context, draft, sentences.replaced_below())


async def _summary(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> tuple[str, InlineKeyboardMarkup | None]:
    """The summary and its buttons (whom the money goes to and, for a merchant's request, what it
    is for); once confirmed to wait for the phone, what will happen and when, with the summary's
    Cancel button only."""
    services = services_of(context)
    shown = formats.shown_phone(draft.phone, draft.chat_id)
    switch = draft.network.other in services.payments.networks
    buttons = draft_summary_buttons(draft.summary_key or "", draft.network, draft.user_id, switch=switch)
    if draft.step is DraftStep.WAITING:
        text = sentences.waiting_to_send(shown, draft.network, draft.amount, draft.send_at or 0.0)
        buttons = buttons[-1:]
    else:
        request = None if draft.pay_request_id is None else await services.requests.get(draft.pay_request_id)
        note = "" if request is None else request.note
        text = sentences.summary(shown, draft.network, draft.amount, services.settings.shop_name, note)
        if draft.send_at is not None and draft.send_at > services.conversations.now():
            text += "\n\n" + sentences.summary_waits(draft.send_at)
    return chat_sentences.with_sandbox_tag(text, services.settings.ipay_sandbox), keyboard(buttons)


# -- the summary's buttons --------------------------------------------------------------


async def summary_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    press = summary_press(query.data or "")
    if press is None or query.message is None or press.owner != query.from_user.id:
        await stale_button(update, context)  # an old format, or someone else's: says which
        return
    chat_id = query.message.chat.id
    draft = await services_of(context).conversations.resume(chat_id, query.from_user.id)
    if isinstance(draft, TimedOut):
        await query.answer(chat_sentences.stale_button())
        await _tell_timed_out(context, draft.draft)
        return
    waiting_cancel = draft is not None and draft.step is DraftStep.WAITING and press.action == CANCEL
    answers_step = draft is not None and (draft.step is DraftStep.CONFIRM or waiting_cancel)
    if draft is None or not answers_step or draft.summary_key != press.summary_key:
        await query.answer(chat_sentences.stale_button())
        return
    if press.action == CONFIRM:
        await _confirm(context, query, draft, press)
    elif press.action == SWITCH_NETWORK:
        await _switch_network(context, query, draft, press)
    else:
        await _cancel_on_summary(context, query, draft)


async def _confirm(context: ContextTypes.DEFAULT_TYPE, query: CallbackQuery, draft: Draft, press: SummaryPress) -> None:
    """The order is written in the transaction that ends the draft, and only if the draft is
    still as it was read (`consumes`): a timeout that dropped it meanwhile wins, and the payer,
    told that, is told nothing else.

    The button's answer says the prompt is being sent, and the summary itself is edited once,
    straight to "check your phone" when the prompt is out (see `PaymentService._prompt_sent`):
    each Bot API call a payment makes counts against Telegram's limit for the whole bot."""
    services = services_of(context)
    request = _order_request(draft, press.network, _requested_by(query.from_user))
    summary_id = query.message.message_id if query.message is not None else None
    try:
        order = await services.payments.create_order(
            request, prompt_message_id=summary_id, consumes=draft, unless_paid=draft.after_order_id
        )
    except PaymentRefused as refusal:
        await query.answer()
        if refusal.code == "draft_gone":
            return  # timed out (and told) or replaced meanwhile: no order
        waits = _cancelled_by_this_payer(refusal, draft)
        if waits is not None:
            saved = await _wait_for_phone(
                context, draft, waits, _requested_by(query.from_user), summary_id, network=press.network
            )
            if saved is not None:
                text, keyboard = await _summary(context, saved)
                await query.edit_message_text(text, reply_markup=keyboard)
            return
        if await _end(context, draft):  # else timed out (and told) meanwhile
            await query.edit_message_text(
                order_sentences.refusal(refusal.code, refusal.data, draft.chat_id, draft.user_id)
            )
        return
    try:
        await query.answer(sentences.sending_prompt(order))
    finally:  # the order is written: its prompt goes out even if this answer failed
        services.payments.send_prompt_soon(order)


async def _confirm_typed(context: ContextTypes.DEFAULT_TYPE, message: Message, draft: Draft) -> None:
    """`yes`/`ndio` typed at the summary: Confirm, with the network the summary shows, written
    as the button's is (ending the draft, only if it is still there). The "sending" message is
    new (what was typed is below the summary), and is the one edited later."""
    services = services_of(context)
    user = message.from_user
    request = _order_request(draft, draft.network, _requested_by(user) if user is not None else "")
    try:
        order = await services.payments.create_order(request, consumes=draft, unless_paid=draft.after_order_id)
    except PaymentRefused as refusal:
        if refusal.code == "draft_gone":
            return  # timed out (and told) or replaced meanwhile: no order
        waits = _cancelled_by_this_payer(refusal, draft)
        if waits is not None:
            saved = await _wait_for_phone(context, draft, waits, request.requested_by, None)
            if saved is not None:
                text, keyboard = await _summary(context, saved)
                sent = await message.reply_text(text, reply_markup=keyboard)
                await services.conversations.shown(saved, sent.message_id)
                await _retire(context, draft)
            return
        if await _end(context, draft):  # else timed out (and told) meanwhile
            await message.reply_text(order_sentences.refusal(refusal.code, refusal.data, draft.chat_id, draft.user_id))
            await _retire(context, draft)
        return
    sending = chat_sentences.with_sandbox_tag(sentences.sending_prompt(order), services.settings.ipay_sandbox)
    try:
        sent = await message.reply_text(sending)
        order = await services.payments.attach_prompt_message(order, sent.message_id)
    finally:  # the order is written: its prompt goes out even if telling the chat failed
        services.payments.send_prompt_soon(order)
    await _retire(context, draft)  # the summary stays as what was confirmed, without its buttons


async def _end(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> bool:
    return await services_of(context).conversations.finish(draft)


async def _stop(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> bool:
    """End a conversation the payer stopped. A waiting Confirm a sweep took meanwhile (to give
    up on it) is stopped as it now is; one whose order the sweep wrote is gone: False."""
    if await _end(context, draft):
        return True
    if draft.step is not DraftStep.WAITING:
        return False
    now = await services_of(context).conversations.current(draft.chat_id, draft.user_id)
    if now is None or now.step is not DraftStep.WAITING or now.summary_key != draft.summary_key:
        return False
    return await _end(context, now)


# -- a prompt that waits for the phone ------------------------------------------------------
# The payer cancelled an order, but its prompt may stay on the phone until the payment timeout,
# and iPay takes one prompt per phone at a time. Instead of refusing the new payment, the
# conversation goes on; a Confirm then waits (step WAITING, kept in the store like any step)
# and the sweep sends the prompt once the phone is free, as the summary said it would.


@dataclass(frozen=True)
class _Wait:
    order_id: str
    cancelled_at: float
    until: float


def _cancelled_by_this_payer(refusal: PaymentRefused, draft: Draft) -> _Wait | None:
    """The phone is busy only with a prompt this person cancelled in this chat."""
    data = refusal.data
    if refusal.code != "phone_busy" or data.get("cancelled_at") is None:
        return None
    if data.get("order_chat") != draft.chat_id or data.get("order_user") != draft.user_id:
        return None
    return _Wait(str(data["order_id"]), float(data["cancelled_at"]), float(data["until"]))


async def _wait_for_phone(
    context: ContextTypes.DEFAULT_TYPE,
    draft: Draft,
    waits: _Wait,
    requested_by: str,
    message_id: int | None,
    *,
    network: Network | None = None,
) -> Draft | None:
    """Confirmed, to be sent at `waits.until` on the network the payer confirmed: written
    before the payer is told."""
    saved = await _save(
        context,
        draft,
        DraftChange(
            step=DraftStep.WAITING,
            network=network,
            send_at=waits.until,
            after_order_id=waits.order_id,
            requested_by=requested_by,
        ),
    )
    if saved is not None and message_id is not None:
        saved = await services_of(context).conversations.shown(saved, message_id)
    return saved


async def _send_when_free(context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> None:
    """A waiting Confirm whose time has come. The order is written in the same transaction that
    deletes the draft, and only if the cancelled order it waited for has no money: whichever
    comes first, the payer's Cancel (or new /pay) or the payment or this sweep, the others find
    it done, so a prompt never goes out after the payer was told it would not, nor twice, nor
    for a payment already made. A crash after the write leaves an unsent order, which the status
    sweep sends or fails and tells (`finish_unsent`). Past its time by more than the grace (the
    phone stayed busy, or the bot was down), it is not sent late: the payer is told."""
    services = services_of(context)
    if services.conversations.now() >= (draft.send_at or 0.0) + WAIT_GRACE:
        await _give_up_waiting(context, draft, sentences.waited_too_long(draft.send_at or 0.0))
        return
    request = _order_request(draft, draft.network, draft.requested_by)
    try:
        order = await services.payments.create_order(
            request, prompt_message_id=draft.message_id, consumes=draft, unless_paid=draft.after_order_id
        )
    except PaymentRefused as refusal:
        if refusal.code == "draft_gone" or _cancelled_by_this_payer(refusal, draft):
            return  # cancelled or replaced (and said so), or its phone still busy: the next sweep
        why = order_sentences.refusal(refusal.code, refusal.data, draft.chat_id, draft.user_id)
        if refusal.code != "paid_after_all":  # that one says itself that nothing was sent
            why = sentences.waiting_not_sent(why)
        await _give_up_waiting(context, draft, why)
        return
    try:
        sending = chat_sentences.with_sandbox_tag(sentences.sending_prompt(order), services.settings.ipay_sandbox)
        await _edit_waiting(context, draft, sending)
    finally:  # the order is written: its prompt goes out even if this edit failed
        services.payments.send_prompt_soon(order)


async def _give_up_waiting(context: ContextTypes.DEFAULT_TYPE, draft: Draft, why: str) -> None:
    """Taken first (a new revision, so another instance's sweep can no longer write its order),
    then told, then forgotten: if telling fails for now, the next sweep tries again."""
    taken = await services_of(context).conversations.advance(draft)
    if taken is None:
        return  # cancelled, replaced or handled meanwhile
    await _edit_waiting(context, taken, why)
    await _end(context, taken)


async def _edit_waiting(context: ContextTypes.DEFAULT_TYPE, draft: Draft, text: str) -> None:
    """The waiting message becomes what happened (a new message if it is gone). A payer who
    blocked the bot cannot be told: given up on, as the outbox does."""
    try:
        if draft.message_id is not None:
            try:
                await context.bot.edit_message_text(text, chat_id=draft.chat_id, message_id=draft.message_id)
                return
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    return
                log.info("could not edit a waiting prompt's message: %s", exc.message)
        await context.bot.send_message(draft.chat_id, text)
    except Forbidden as exc:
        log.info("a waiting prompt's payer cannot be told: %s", exc.message)


async def _switch_network(
    context: ContextTypes.DEFAULT_TYPE, query: CallbackQuery, draft: Draft, press: SummaryPress
) -> None:
    """Switches away from the network the pressed message shows, so pressing it twice (or after
    a crash that kept the switch but not the edit) shows what was asked for."""
    saved = await _save(context, draft, DraftChange(network=press.network.other))
    if saved is None:
        await query.answer(chat_sentences.stale_button())
        return
    await query.answer(sentences.switched_to(saved.network))
    text, keyboard = await _summary(context, saved)
    try:
        await query.edit_message_text(text, reply_markup=keyboard)
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():  # it already shows this network
            raise
    crash_point("draft_answered")


async def _cancel_on_summary(context: ContextTypes.DEFAULT_TYPE, query: CallbackQuery, draft: Draft) -> None:
    """Cancel on the summary, or on a waiting Confirm's message (unless the sweep wrote its
    order a moment ago: it is being sent, and its message says so). Pressed on a summary the
    waiting message replaced (a client still showing it), that message says so too."""
    if not await _stop(context, draft):
        await query.answer(chat_sentences.stale_button())
        return
    await query.answer()
    sandbox = services_of(context).settings.ipay_sandbox
    await query.edit_message_text(chat_sentences.with_sandbox_tag(sentences.conversation_cancelled(), sandbox))
    if query.message is not None and draft.message_id != query.message.message_id:
        await _retire(context, draft, sentences.summary_cancelled())


def _order_request(draft: Draft, network: Network, requested_by: str) -> PaymentRequest:
    """What a confirmed draft asks the payment service for, on the network that was confirmed."""
    return PaymentRequest(
        draft.chat_id,
        draft.user_id,
        draft.phone,
        network,
        draft.amount,
        requested_by=requested_by,
        pay_request_id=draft.pay_request_id,
    )


def _requested_by(user: User) -> str:
    handle = f"@{user.username}, " if user.username else ""
    return f"{user.full_name} ({handle}{user.id})"


# -- commands that depend on the conversation ---------------------------------------------


async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    sender = _sender(update)
    if sender is None:  # posted as a chat (no person): no conversation can be open
        await nothing_to_cancel(update, context)
        return
    draft = await _resume(context, *sender)
    if isinstance(draft, TimedOut):
        return
    if draft is None:
        await nothing_to_cancel(update, context)
    else:
        await _cancel(context, sender[0], draft)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command nobody knows: in the middle of a payment, say so and keep the step."""
    sender = _sender(update)
    if sender is None:  # posted as a chat (no person): no conversation can be open
        if update.effective_message is not None and not command_for_another_bot(update.effective_message, context.bot):
            await unknown_command_outside(update, context)
        return
    if command_for_another_bot(sender[0], context.bot):
        return
    message, user = sender
    if await services_of(context).conversations.live(message.chat_id, user.id) is None:
        await unknown_command_outside(update, context)
        return
    await message.reply_text(sentences.unknown_command_mid_payment())


# -- a merchant's payment request, opened by its link ---------------------------------------


async def open_request(update: Update, context: ContextTypes.DEFAULT_TYPE, token: str) -> None:
    """`/start <token>` from a request's link, QR code or card: the /pay conversation with the
    request's amount fixed (kept in the draft, so it survives a restart like any other step)."""
    sender = _sender(update)
    if sender is None:
        return
    message, user = sender
    services = services_of(context)
    request = await services.requests.by_token(token)
    why = None if request is None else await services.requests.why_unavailable(request)
    refusal = None if why is None else request_sentences.request_unavailable(why, services.settings.shop_name)
    if request is None:
        refusal = request_sentences.request_link_unknown()
    if refusal is None:
        try:
            await services.payments.ensure_user_may_prompt(user.id)
        except PaymentRefused as refused:
            refusal = order_sentences.refusal(refused.code, refused.data, message.chat_id)
    if refusal is not None or request is None:
        await message.reply_text(refusal or request_sentences.request_link_unknown())
        return
    _, replaced = await services.conversations.start(
        message.chat_id, user.id, pay_request_id=request.id, amount=request.amount
    )
    crash_point("draft_saved")
    markup = _phone_question_markup(message)
    text = request_sentences.request_start(services.settings.shop_name, request.amount, request.note)
    await message.reply_text(chat_sentences.with_sandbox_tag(text, services.settings.ipay_sandbox), reply_markup=markup)
    crash_point("draft_answered")
    await _retire(context, replaced, sentences.replaced_by_new_payment())
