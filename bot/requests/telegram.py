"""Payment requests a merchant sends (/request, /requests, /qr, inline mode) and the Pay Bill
way round on an order's "Check your phone" message. Telegram only: the service does the rest.

The customer's side of a request (opening its link) is the /pay conversation's, in
`bot.pay.telegram.open_request`.
"""

from __future__ import annotations

import asyncio
import logging
import re

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
    Update,
    User,
)
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.buttons import PAYBILL_BUTTON_PATTERN, REQUEST_BUTTON_PATTERN, keyboard, request_cancel_button
from bot.config import Settings
from bot.i18n import speaking
from bot.lifecycle import BotApplication
from bot.pay.inputs import InputError, parse_amount
from bot.pay.telegram import open_request, pay_command
from bot.reports.telegram import deliver_report
from bot.requests import sentences
from bot.requests.qr import counter_sign_png, link_png
from bot.requests.service import (
    NOTE_LIMIT,
    STANDING_START,
    TOKEN_PATTERN,
    EditOutcome,
    MerchantRequest,
    MessageEditor,
    RequestState,
)
from bot.services import SERVICES_KEY, Services, services_of
from bot.telegram import sentences as chat_sentences

log = logging.getLogger(__name__)

REFRESH_EVERY = 2.0  # seconds: how late at most a request's message says "Paid" or "Expired"
LIST_LIMIT = 20
_CANCEL = re.compile(REQUEST_BUTTON_PATTERN)
_PAYBILL = re.compile(PAYBILL_BUTTON_PATTERN)
_REQUEST_ID = re.compile(r"R[A-Z0-9]{10}")
_TOKEN = re.compile(TOKEN_PATTERN)


def is_staff(settings: Settings, user: User | None) -> bool:
    return user is not None and (settings.is_admin(user.id) or user.id in settings.staff_ids)


def _name(user: User) -> str:
    handle = f"@{user.username}, " if user.username else ""
    return f"{user.full_name} ({handle}{user.id})"


def _amount_and_note(text: str, settings: Settings) -> tuple[int, str] | str:
    """`500 2 loaves` -> (500, "2 loaves"); otherwise what to say instead."""
    first, _, rest = text.strip().partition(" ")
    try:
        amount = parse_amount(first, settings.min_amount, settings.max_amount)
    except InputError as exc:
        if not first:
            return sentences.request_usage()
        return sentences.request_amount_problem(exc.problem, settings.min_amount, settings.max_amount)
    note = " ".join(rest.split())
    if len(note) > NOTE_LIMIT:
        return sentences.request_note_too_long()
    return amount, note


# -- /request, /requests, /qr -------------------------------------------------------------


async def request_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None:
        return
    services = services_of(context)
    if not is_staff(services.settings, user):
        await message.reply_text(sentences.request_staff_only())
        return
    assert user is not None  # a member of staff is a person
    parsed = _amount_and_note(" ".join(context.args or []), services.settings)
    if isinstance(parsed, str):
        await message.reply_text(parsed)
        return
    amount, note = parsed
    request = await services.requests.create(
        amount, note, source="chat", created_by=user.id, created_by_name=_name(user), chat_id=message.chat_id
    )
    link = services.requests.link(request)
    caption = chat_sentences.with_sandbox_tag(
        sentences.request_created(
            request.id, amount, note, request.expires_at, link, in_group=message.chat_id != user.id
        ),
        services.settings.ipay_sandbox,
    )
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(sentences.request_share_label(), switch_inline_query=request.id)],
            [InlineKeyboardButton(sentences.request_cancel_label(), callback_data=request_cancel_button(request.id))],
        ]
    )
    png = await asyncio.to_thread(link_png, link)  # a few ms of CPU: off the loop, other chats go on
    sent = await message.reply_photo(png, caption=caption, reply_markup=keyboard)
    await services.requests.attach_message(request.id, message_id=sent.message_id)


async def _staff_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Message | None:
    """The command's message if an admin or staff member sent it; anyone else is told who may."""
    message = update.effective_message
    if message is None:
        return None
    if not is_staff(services_of(context).settings, update.effective_user):
        await message.reply_text(sentences.request_staff_only())
        return None
    return message


async def requests_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = await _staff_message(update, context)
    if message is None:
        return
    services = services_of(context)
    text, keyboard = await _request_list(services)
    # Every chat's requests, with who paid them: in a group, sent to the asker's private chat.
    await deliver_report(
        update, context, lambda chat_id: context.bot.send_message(chat_id, text, reply_markup=keyboard)
    )


async def _request_list(services: Services) -> tuple[str, InlineKeyboardMarkup | None]:
    views = await services.requests.latest(LIST_LIMIT)
    if not views:
        return sentences.no_requests(), None
    lines, buttons = [], []
    now = services.requests.now()
    for view in views:
        request = view.request
        state = request.state.value
        if request.state is RequestState.OPEN and view.being_paid:
            state_line = sentences.request_state_line("paying", request.amount, request.note, None)
        else:
            if request.state is RequestState.OPEN and request.expires_at <= now:
                state = RequestState.EXPIRED.value
            payer = None if view.paid_by is None else sentences.payer_words(*view.paid_by)
            state_line = sentences.request_state_line(state, request.amount, request.note, payer, request.paid_amount)
            if state == RequestState.OPEN.value:
                buttons.append(
                    (
                        sentences.request_list_cancel_label(request.id, request.amount),
                        request_cancel_button(request.id),
                    )
                )
        lines.append(sentences.request_list_line(request.id, request.created_at, state_line))
    return sentences.requests_list(lines), keyboard(tuple(buttons))


async def request_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Cancel on a request's message or on the /requests list: admins and staff only."""
    query = update.callback_query
    if query is None:
        return
    services = services_of(context)
    match = _CANCEL.match(query.data or "")
    if match is None or not is_staff(services.settings, query.from_user):
        await query.answer(chat_sentences.not_your_button() if match else chat_sentences.stale_button())
        return
    if not await services.requests.cancel(match.group(1)):
        await query.answer(sentences.request_not_cancellable(), show_alert=True)
        return
    await query.answer(sentences.request_cancelled_answer())
    await services.requests.refresh(_editor(context))  # the request's own message says so now
    if isinstance(query.message, Message) and query.message.photo == ():  # the /requests list: show it anew
        text, keyboard = await _request_list(services)
        try:
            await query.edit_message_text(text, reply_markup=keyboard)
        except BadRequest as exc:
            log.info("could not refresh the request list: %s", exc.message)


async def qr_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The shop's standing QR code for the counter: it opens /pay, the payer says the amount."""
    message = await _staff_message(update, context)
    if message is None:
        return
    services = services_of(context)
    link = services.requests.standing_link()
    png = await asyncio.to_thread(
        counter_sign_png, services.settings.shop_name, link, services.payments.networks
    )  # ~45 ms of drawing
    await message.reply_document(png, filename="pay-qr.png", caption=sentences.qr_sign_caption(link))


# -- inline mode --------------------------------------------------------------------------


async def inline_query_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`@bot 500 2 loaves`: admins and staff get a request card; anyone else one card on how to
    pay the shop. Answers are personal and never cached: each card is its own request."""
    query = update.inline_query
    if query is None:
        return
    services = services_of(context)
    if not is_staff(services.settings, query.from_user):
        card = _pay_the_shop(services, context.bot.username)
    else:
        request = await _inline_request(services, query.query.strip(), query.from_user)
        card = _usage_card() if request is None else _request_card(services, request)
    await query.answer([card], cache_time=0, is_personal=True)


async def _inline_request(services: Services, text: str, user: User) -> MerchantRequest | None:
    """The request a staff member's inline query is about: an existing open one ("Share" on a
    /request message sends its id), or a new one from "500 2 loaves"; None if neither."""
    if _REQUEST_ID.fullmatch(text):
        request = await services.requests.get(text)
        if request is None or await services.requests.why_unavailable(request) is not None:
            return None
        return request
    parsed = _amount_and_note(text, services.settings)
    if isinstance(parsed, str):
        return None
    return await services.requests.inline_card(user.id, _name(user), *parsed)


def _usage_card() -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id="usage",
        title=sentences.inline_usage_title(),
        description=sentences.inline_usage_text(),
        input_message_content=InputTextMessageContent(sentences.inline_usage_text()),
    )


def _request_card(services: Services, request: MerchantRequest) -> InlineQueryResultArticle:
    """The card that posts the request into a chat, with its "Pay KES 500" button."""
    settings = services.settings
    card_text = sentences.request_card(
        settings.shop_name, request.amount, request.note, request.expires_at, services.payments.networks
    )
    return InlineQueryResultArticle(
        id=request.id,
        title=sentences.request_title(request.amount, request.note),
        description=sentences.request_asks(settings.shop_name, request.amount, request.note),
        input_message_content=InputTextMessageContent(
            chat_sentences.with_sandbox_tag(card_text, settings.ipay_sandbox)
        ),
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton(sentences.pay_button_label(request.amount), url=services.requests.link(request))]]
        ),
    )


def _pay_the_shop(services: Services, bot_username: str) -> InlineQueryResultArticle:
    shop = services.settings.shop_name
    text = sentences.inline_pay_shop_text(shop, bot_username, services.payments.networks)
    return InlineQueryResultArticle(
        id="pay-the-shop",
        title=sentences.inline_pay_shop_title(shop),
        description=text,
        input_message_content=InputTextMessageContent(text),
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton(sentences.inline_pay_shop_title(shop), url=services.requests.standing_link())]]
        ),
    )


async def chosen_inline_result_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A request card was posted (inline feedback on in @BotFather): remember its message, so it
    is edited to "Paid" later, and list the request in /requests."""
    chosen = update.chosen_inline_result
    if chosen is None or not _REQUEST_ID.fullmatch(chosen.result_id):
        return
    services = services_of(context)
    request = await services.requests.get(chosen.result_id)
    if request is None:
        return
    if request.created_by != chosen.from_user.id and not is_staff(services.settings, chosen.from_user):
        return
    await services.requests.attach_message(request.id, inline_message_id=chosen.inline_message_id)


# -- the Pay Bill way round ----------------------------------------------------------------


async def paybill_button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "No prompt on your phone?": the same order paid by hand, with the account and paybill
    numbers iPay's /transact gave this order. The sweep keeps watching it as usual."""
    query = update.callback_query
    if query is None or query.message is None:
        return
    match = _PAYBILL.match(query.data or "")
    payments = services_of(context).payments
    order = None if match is None else await payments.chat_order(match.group(1), query.message.chat.id)
    if order is None:
        await query.answer(chat_sentences.stale_button())
        return
    if order.status.money_received or (order.status.closed and order.next_poll_at is None):
        await query.answer(sentences.paybill_order_closed(), show_alert=True)
        return
    if order.reached_provider and order.paybill_account == "":  # iPay gave it none: no Pay Bill for this order
        await query.answer(sentences.paybill_no_account(payments.provider_name), show_alert=True)
        return
    if not order.paybill_account or not order.paybill_numbers:
        await query.answer(sentences.paybill_not_available(payments.provider_name), show_alert=True)
        return
    await query.answer()
    text = sentences.paybill_steps(order, dict(order.paybill_numbers), order.paybill_account)
    sandbox = services_of(context).settings.ipay_sandbox
    await context.bot.send_message(order.chat_id, chat_sentences.with_sandbox_tag(text, sandbox))


# -- keeping request messages up to date ---------------------------------------------------


def _editor(context: ContextTypes.DEFAULT_TYPE) -> MessageEditor:
    """Edits a request's message (or posted inline card) to say how it ended. Said where the
    request was posted (a group, a customer's chat): who paid is for the merchant's own notice
    and /requests, not for everyone there; in the language it was posted in, its creator's."""
    bot = context.bot
    services = services_of(context)

    async def edit(request: MerchantRequest) -> EditOutcome:
        with speaking(await services.languages.of_reader(request.created_by)):
            text = sentences.request_ended(
                services.settings.shop_name,
                request.state.value,
                request.amount,
                request.note,
                None,
                request.paid_amount,
            )
            text = chat_sentences.with_sandbox_tag(text, services.settings.ipay_sandbox)
        try:
            if request.inline_message_id is not None:
                await bot.edit_message_text(text, inline_message_id=request.inline_message_id, reply_markup=None)
            if request.message_id is not None:
                await bot.edit_message_caption(
                    chat_id=request.chat_id, message_id=request.message_id, caption=text, reply_markup=None
                )
        except BadRequest as exc:  # deleted, too old: the store and /requests still say it
            log.info("request %s: its message could not be edited: %s", request.id, exc.message)
            return EditOutcome.GIVEN_UP
        except TelegramError as exc:
            log.info("request %s: editing its message failed for now: %s", request.id, exc)
            return EditOutcome.RETRY
        return EditOutcome.SHOWN

    return edit


async def _refresh_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    await services_of(context).requests.refresh(_editor(context))


async def refresh_request_messages(application: BotApplication) -> int:
    """One round of the job: expire what is due, edit what changed (the console and tests)."""
    context = ContextTypes.DEFAULT_TYPE(application)
    services: Services = application.bot_data[SERVICES_KEY]
    return await services.requests.refresh(_editor(context))


def watch_payment_requests(application: BotApplication) -> None:
    """Expire requests on time and edit their messages when they end (also after a restart)."""
    if application.job_queue is not None and SERVICES_KEY in application.bot_data:
        application.job_queue.run_repeating(
            _refresh_job, interval=REFRESH_EVERY, first=REFRESH_EVERY, name="payment-requests"
        )


# -- deep links ----------------------------------------------------------------------------


async def start_with_link(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/start <parameter>`, as a t.me link opens the bot: `pay` (the counter QR code) starts
    /pay; a request's token opens that request; anything else is an unknown link."""
    message = update.effective_message
    start = (context.args or [""])[0]
    if start == STANDING_START:
        await pay_command(update, context)
    elif _TOKEN.fullmatch(start):
        await open_request(update, context, start)
    elif message is not None:
        await message.reply_text(sentences.request_link_unknown())
