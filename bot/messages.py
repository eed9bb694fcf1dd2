"""Every sentence a user sees, in one place, so wording and translation stay together.

Plain text (no parse mode): nothing a user types can break the formatting.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import Network, Order, OrderStatus, Payment, SummaryRow, mask_phone
from bot.inputs import InputProblem
from bot.ipay.client import NAIROBI

SANDBOX_TAG = "🧪 SANDBOX: no real money moves. "

COMMANDS = (
    ("pay", "Pay with M-Pesa or Airtel Money"),
    ("status", "Check an order: /status <order id>"),
    ("cancel", "Stop what we are doing"),
    ("help", "What this bot does"),
    ("orders", "This chat's latest orders"),
)
ADMIN_COMMANDS = (
    ("request", "Request a payment: /request 500 2 loaves"),
    ("requests", "Open and recent payment requests"),
    ("qr", "The shop's QR code for the counter"),
    ("summary", "Totals: /summary [today|week|month]"),
    ("export", "CSV of orders: /export [from] [to]"),
)

# Button labels and their callback data (the conversation and /status share them).
CONFIRM, SWITCH_NETWORK, CANCEL = "pay:confirm", "pay:switch", "pay:cancel"
SHARE_CONTACT_LABEL = "📱 Share my number"
CANCEL_ORDER, RETRY_ORDER = "order:cancel", "order:retry"
CANCEL_ORDER_LABEL = "✖️ Cancel this payment"
RETRY_LABEL = "🔁 Send the prompt again"
ORDER_BUTTON_PATTERN = r"^order:(cancel|retry):([A-Z0-9]{1,34})$"


def order_button(action: str, order_id: str) -> str:
    return f"{action}:{order_id}"


def keyboard(buttons: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    """One button per row, from (label, callback data) pairs."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)] for label, data in buttons])


def with_sandbox_tag(text: str, sandbox: bool) -> str:
    return SANDBOX_TAG + text if sandbox else text


def money(amount: int) -> str:
    return f"KES {amount:,}"


def nairobi_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, NAIROBI).strftime("%d %b %Y, %H:%M")


def help_text(shop_name: str) -> str:
    return (
        f"I take M-Pesa and Airtel Money payments for {shop_name} through iPay Africa.\n\n"
        "/pay: pay with your phone. I ask for the number and the amount, you confirm, and your "
        "phone asks for your PIN.\n"
        "/status <order id>: where an order is. /status alone lists this chat's latest orders.\n"
        "/orders [today|week|N]: this chat's orders, with their status.\n"
        "/cancel: stop a payment you are setting up.\n"
        "/help: this message."
    )


ASK_PHONE = (
    "Which phone should get the payment prompt?\n"
    "Type the number (for example 0712 345 678) or tap the button below to share yours.\n"
    "Send /cancel to stop."
)

PHONE_PROBLEM = (
    "That doesn't look like a Kenyan mobile number. I accept forms like 0712345678, "
    "0112345678, +254712345678 or 254712345678 (spaces and dashes are fine).\n"
    "Please send the number again, or /cancel."
)

NOT_TEXT_PHONE = "Please type the phone number (or share your contact with the button), or send /cancel."
NOT_TEXT_AMOUNT = "Please type the amount in shillings as digits, for example 500, or send /cancel."


def ask_amount(phone: str, network: Network, minimum: int, maximum: int) -> str:
    return (
        f"Phone: {phone} ({network.label}).\n"
        f"How much? Send whole shillings between {money(minimum)} and {money(maximum)}, for example 500."
    )


def amount_problem(problem: InputProblem, minimum: int, maximum: int) -> str:
    if problem is InputProblem.AMOUNT_NOT_WHOLE:
        first = "M-Pesa and Airtel Money take whole shillings only, no cents."
    elif problem is InputProblem.AMOUNT_TOO_SMALL:
        first = f"The smallest amount I can take is {money(minimum)}."
    elif problem is InputProblem.AMOUNT_TOO_LARGE:
        first = f"The largest amount I can take is {money(maximum)}."
    else:
        first = "I couldn't read that as an amount."
    return f"{first} Please send a whole number of shillings, for example 500 or 1,000, or /cancel."


def summary(phone: str, network: Network, amount: int) -> str:
    return (
        "Please check:\n"
        f"Amount: {money(amount)}\n"
        f"Phone: {phone}\n"
        f"Pay with: {network.label}\n\n"
        "Tap Confirm and your phone will ask for your PIN."
    )


def summary_buttons(network: Network, user_id: int) -> tuple[tuple[str, str], ...]:
    """The summary's buttons carry the payer's user id, so a group can tell whose they are."""
    return (
        ("✅ Confirm", f"{CONFIRM}:{user_id}"),
        (f"🔁 Use {network.other.label} instead", f"{SWITCH_NETWORK}:{user_id}"),
        ("✖️ Cancel", f"{CANCEL}:{user_id}"),
    )


def button_owner(callback_data: str) -> int | None:
    """The user id a button was made for, if it carries one (summary buttons do)."""
    owner = callback_data.rsplit(":", 1)[-1]
    return int(owner) if callback_data.startswith("pay:") and owner.isdigit() else None


def shown_phone(phone: str, chat_id: int) -> str:
    """The full number in the payer's private chat; masked where others could read it (groups)."""
    return phone if chat_id > 0 else mask_phone(phone)


def _phone(order: Order) -> str:
    return shown_phone(order.phone, order.chat_id)


def sending_again(order: Order) -> str:
    return f"Sending the {order.network.label} prompt again for {money(order.amount)} to {_phone(order)}… (order {order.id})"


def sending_prompt(order: Order) -> str:
    return f"Sending the {order.network.label} prompt for {money(order.amount)} to {_phone(order)}… (order {order.id})"


def check_phone(order: Order) -> str:
    return (
        f"📲 Check your phone and enter your {order.network.label} PIN to pay {money(order.amount)}.\n"
        f"Order {order.id}. I'll tell you here as soon as it is paid."
    )


def prompt_unconfirmed(order: Order) -> str:
    return (
        f"⏳ iPay did not confirm that the prompt reached {_phone(order)}. If your phone shows it, "
        f"enter your PIN to pay {money(order.amount)}; I'll tell you here when it is paid.\n"
        f"Order {order.id}."
    )


def paid(order: Order, payment: Payment) -> str:
    return (
        f"✅ Paid: {money(payment.amount)} by {order.network.label}.\n"
        f"Receipt: {payment.receipt_code}\n"
        f"Time: {nairobi_time(payment.paid_at)}\n"
        f"Order: {order.id}"
    )


def paid_wrong_amount(order: Order, payment: Payment) -> str:
    word = "less" if payment.amount < order.amount else "more"
    return (
        f"⚠️ Paid {word} than asked: {money(payment.amount)} received, {money(order.amount)} asked.\n"
        f"Receipt: {payment.receipt_code}\n"
        f"Time: {nairobi_time(payment.paid_at)}\n"
        f"Order: {order.id}. The shop has been told."
    )


def not_paid(order: Order, status: OrderStatus, reason: str) -> str:
    if status is OrderStatus.CANCELLED:
        head = "✖️ The payment was cancelled on the phone. Nothing was charged."
    elif status is OrderStatus.EXPIRED and reason == FAILURE_REASONS["timed_out"]:
        head = "⌛ The prompt timed out on the phone. Nothing was charged. If it is paid anyway, I'll tell you here."
    elif status is OrderStatus.EXPIRED:
        head = "⌛ No payment arrived in time, so the order has expired. Nothing was charged."
    elif status is OrderStatus.WITHDRAWN:
        return (
            f"✖️ You cancelled order {order.id} ({money(order.amount)}). If the phone still shows the prompt, "
            "ignore it: nothing is charged unless the PIN is entered. If it is paid anyway, I'll tell you here."
        )
    else:
        head = f"❌ The payment did not go through: {reason}"
    return f"{head}\nOrder {order.id} ({money(order.amount)}). Tap the button to send the prompt again, or /pay for a new payment."


def outcome(order: Order, status: OrderStatus, payment: Payment | None, reason: str | None) -> str:
    """The new message that tells the chat how an order ended."""
    if payment is None:
        return not_paid(order, status, reason or "")
    return paid(order, payment) if status is OrderStatus.PAID else paid_wrong_amount(order, payment)


def prompt_outcome(order: Order, status: OrderStatus) -> str:
    """What the "check your phone" message becomes once the order has moved on."""
    return f"Order {order.id}: {money(order.amount)} from {_phone(order)} by {order.network.label}: {STATUS_WORDS[status]}."


def phone_busy(order: Order, until: float) -> str:
    return (
        f"A payment prompt for {order.masked_phone} is still waiting for an answer (order {order.id}). "
        f"Please answer it on the phone, or try again after {_clock_time(until)} when it has expired."
    )


def _clock_time(timestamp: float) -> str:
    return nairobi_time(timestamp)[-5:]


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return "hour" if minutes == 60 else f"{minutes} minutes"


def user_limit(limit: int, window: float, until: float) -> str:
    return (
        f"You have asked for {limit} payment prompts in the last {_minutes(window)}, the most I send for one "
        f"person. Please try again after {_clock_time(until)}."
    )


def phone_limit(phone: str, limit: int, until: float) -> str:
    return (
        f"{mask_phone(phone)} has had {limit} payment prompts in the last hour. To protect the phone's owner "
        f"I won't send another before {_clock_time(until)}."
    )


PAY_STAFF_ONLY = "Payments here are taken by the shop's staff. Please ask a cashier to send you the payment prompt."
UNKNOWN_COMMAND = "I don't know that command. Send /help to see what I can do."
PAY_NEEDS_A_PERSON = (
    "To take a payment I need to know who asks: send /pay from your own account, not as a group or channel."
)


def retry_not_needed(order: Order) -> str:
    if order.status.money_received:
        return "This order is already paid."
    if order.status is OrderStatus.PENDING:
        return "This order is still waiting for payment."
    if order.retry_order_id:
        return f"The prompt was already sent again (order {order.retry_order_id})."
    if order.next_poll_at is not None:
        return "I'm still checking whether this order was paid. Please try again in a minute."
    return STALE_BUTTON


def merchant_notice(order: Order, status: OrderStatus, payment: Payment | None, reason: str | None) -> str:
    parts = [status.value.upper(), money(payment.amount if payment else order.amount)]
    if payment and payment.amount != order.amount:
        parts.append(f"(asked {money(order.amount)})")
    parts += [order.network.label, mask_phone(order.phone)]
    if payment:
        parts.append(f"receipt {payment.receipt_code}")
    if reason and not payment:
        parts.append(f"({reason})")
    parts.append(f"order {order.id}")
    if order.requested_by:
        parts.append(f"asked by {order.requested_by}")
    return " · ".join(parts)


FAILURE_REASONS = {
    "cancelled": "the payer cancelled the prompt",
    "wrong_pin": "a wrong PIN was entered",
    "insufficient_funds": "the balance was not enough",
    "timed_out": "the prompt timed out",
}

NOT_SENT = "the bot restarted before the prompt was sent, so no prompt was sent and nothing was charged."
IPAY_UNREACHABLE = "I couldn't reach iPay, so no prompt was sent and nothing was charged. Please try again in a minute."


def ipay_refused(reason: str) -> str:
    return f"iPay refused it ({reason})."


CONVERSATION_CANCELLED = "Cancelled. Nothing was charged. Send /pay to start again."
CONVERSATION_TIMED_OUT = "I stopped waiting, so that payment was not sent. Send /pay to start again."
NOTHING_TO_CANCEL = "There is nothing to cancel. Send /pay to make a payment."
SOMETHING_WENT_WRONG = "Sorry, something went wrong on my side. Nothing was charged by this message; please try again."
STALE_BUTTON = "That button is no longer active."
NOT_YOUR_BUTTON = "This button belongs to someone else's payment."


def still_waiting_for(step: str) -> str:
    return f"I'm still waiting for the {step}. Send it, or /cancel to stop."


STATUS_NOT_FOUND = "I couldn't find that order in this chat. Check the id, or send /status to list your orders."
STATUS_NO_ORDERS = "This chat has no orders yet. Send /pay to make one."

STATUS_WORDS = {
    OrderStatus.PENDING: "⏳ waiting for payment",
    OrderStatus.PAID: "✅ paid",
    OrderStatus.UNDERPAID: "⚠️ paid less than asked",
    OrderStatus.OVERPAID: "⚠️ paid more than asked",
    OrderStatus.CANCELLED: "✖️ cancelled on the phone",
    OrderStatus.FAILED: "❌ failed",
    OrderStatus.EXPIRED: "⌛ expired",
    OrderStatus.WITHDRAWN: "✖️ cancelled in the chat",
}


def order_status(order: Order) -> str:
    lines = [
        f"Order {order.id}: {STATUS_WORDS[order.status]}",
        f"Amount: {money(order.amount)} by {order.network.label}",
        f"Phone: {order.masked_phone}",
        f"Created: {nairobi_time(order.created_at)}",
    ]
    if order.receipt_code:
        lines.append(f"Receipt: {order.receipt_code}")
    if order.paid_amount is not None and order.paid_amount != order.amount:
        lines.append(f"Received: {money(order.paid_amount)}")
    if order.status is OrderStatus.FAILED and order.last_error:
        lines.append(f"Reason: {order.last_error}")
    return "\n".join(lines)


def order_list(orders: list[Order]) -> str:
    rows = [f"{o.id} · {money(o.amount)} · {STATUS_WORDS[o.status]}" for o in orders]
    return "Your latest orders:\n" + "\n".join(rows) + "\n\nSend /status <order id> for details."


# -- merchant tools ---------------------------------------------------------------------

ADMIN_HELP = (
    "\n\nFor the shop's admins:\n"
    "/orders [today|week|N]: the latest orders of every chat.\n"
    "/summary [today|week|month]: totals by status and network.\n"
    "/export [from] [to]: a CSV of the orders between two dates (YYYY-MM-DD)."
)
BAD_PERIOD = "Say today, week or month (or a number of orders for /orders), for example /summary week."
BAD_DATES = "Send dates as YYYY-MM-DD, from first to last, for example /export 2026-11-01 2026-11-29."


def orders_report(label: str, orders: list[Order], every_chat: bool) -> str:
    scope = "every chat" if every_chat else "this chat"
    if not orders:
        return f"No orders ({label}, {scope})."
    rows = [
        f"{o.id} · {nairobi_time(o.created_at)} · {money(o.amount)} · {o.masked_phone} · {STATUS_WORDS[o.status]}"
        for o in orders
    ]
    return f"Orders ({label}, {scope}):\n" + "\n".join(rows)


def summary_report(title: str, rows: list[SummaryRow]) -> str:
    if not rows:
        return f"{title}: no orders."
    lines = [f"{title}:"]
    for row in rows:
        line = f"{STATUS_WORDS[row.status]} · {row.network.label}: {row.count} for {money(row.amount)} asked"
        if row.status.money_received:
            line += f", {money(row.received)} received"
        lines.append(line)
    received = sum(r.received for r in rows if r.status.money_received)
    paid_count = sum(r.count for r in rows if r.status.money_received)
    lines.append(f"Received in all: {money(received)} from {paid_count} of {sum(r.count for r in rows)} orders.")
    return "\n".join(lines)


def export_caption(label: str, rows: int) -> str:
    return f"Orders {label}: {rows} row{'s' if rows != 1 else ''} (times in Africa/Nairobi, phones masked)."


# Admin reports cover every chat's orders: asked in a group, they go to the admin's private chat.
REPORT_SENT_PRIVATELY = "I've sent that to you in our private chat: reports on every chat's orders stay out of groups."


def open_private_chat_first(bot_username: str) -> str:
    return (
        f"Reports on every chat's orders stay out of groups: open a private chat with @{bot_username}, send /start, "
        "then ask again."
    )


# -- the merchant chat's digest ---------------------------------------------------------

MESSAGE_LIMIT = 4096  # Telegram's longest text message, in characters


def merchant_digest(lines: list[str], since: float) -> list[tuple[int, str]]:
    """Merchant lines that queued up while the merchant chat was behind, folded into as few
    messages as fit Telegram's limit: "12 payments since 14:05:" and one line each, in order.

    Returns (how many lines, text) per message, so each message's lines can be marked sent
    when it is. The sandbox tag is said once, not on every line.
    """
    tag = SANDBOX_TAG if any(line.startswith(SANDBOX_TAG) for line in lines) else ""
    bare = [line.removeprefix(SANDBOX_TAG) for line in lines]
    head = f"{len(lines)} payments since {nairobi_time(since)[-5:]}"
    room = MESSAGE_LIMIT - len(tag) - len(head) - len(" (999/999):")  # what the lines of one message may use
    chunks: list[list[str]] = [[]]
    used = 0
    for line in bare:
        line = line if len(line) < room else line[: room - 2] + "…"
        if chunks[-1] and used + 1 + len(line) > room:
            chunks.append([])
            used = 0
        chunks[-1].append(line)
        used += 1 + len(line)
    if len(chunks) == 1:
        return [(len(chunks[0]), f"{tag}{head}:\n" + "\n".join(chunks[0]))]
    return [
        (len(chunk), f"{tag}{head} ({n}/{len(chunks)}):\n" + "\n".join(chunk)) for n, chunk in enumerate(chunks, 1)
    ]


# -- conversations that survive a restart; never silent ---------------------------------

SUMMARY_BUTTON_PATTERN = r"^pay:"
UNKNOWN_COMMAND_MID_PAYMENT = (
    "I don't know that command. We're in the middle of a payment: answer my last question, or send /cancel."
)


def stray(shop_name: str) -> str:
    """The answer to a message or button the bot cannot place: what to do instead of silence."""
    return f"To pay {shop_name}, send /pay. /help lists everything."


class SummaryPress(NamedTuple):
    """What a summary button says: which summary, the network it showed, whose it is."""

    action: str  # CONFIRM, SWITCH_NETWORK or CANCEL
    summary_key: str
    network: Network
    owner: int


def draft_summary_buttons(summary_key: str, network: Network, user_id: int) -> tuple[tuple[str, str], ...]:
    """The summary's buttons carry what the payer sees on it (its key and network) and the payer's
    id, so a press does what the message showed even if the bot restarted since."""
    tail = f"{summary_key}:{network.value}:{user_id}"
    return (
        ("✅ Confirm", f"{CONFIRM}:{tail}"),
        (f"🔁 Use {network.other.label} instead", f"{SWITCH_NETWORK}:{tail}"),
        ("✖️ Cancel", f"{CANCEL}:{tail}"),
    )


def summary_press(callback_data: str) -> SummaryPress | None:
    """The summary button behind `callback_data`; None for anything else (older formats too)."""
    parts = callback_data.split(":")
    if len(parts) != 5 or f"{parts[0]}:{parts[1]}" not in (CONFIRM, SWITCH_NETWORK, CANCEL):
        return None
    _, _, key, network, owner = parts
    if network not in (n.value for n in Network) or not owner.isdigit():
        return None
    return SummaryPress(f"{parts[0]}:{parts[1]}", key, Network(network), int(owner))


# -- payment requests a merchant sends, and the Pay Bill way round (issue 15) -------------
# Kept together, as functions of whole sentences (a note is never glued on as a fragment), so they
# move into the gettext catalogues in one piece.

REQUEST_BUTTON_PATTERN = r"^preq:cancel:([A-Z0-9]{1,20})$"
PAYBILL_BUTTON_LABEL = "📋 No prompt on your phone?"  # kept in the outbox with the order's buttons
PAYBILL_BUTTON_PATTERN = r"^order:paybill:([A-Z0-9]{1,34})$"


def request_cancel_button(request_id: str) -> str:
    return f"preq:cancel:{request_id}"


def paybill_button(order_id: str) -> str:
    return f"order:paybill:{order_id}"


def request_staff_only() -> str:
    return "Only the shop's admins and staff can send payment requests. To pay, send /pay."


def request_usage() -> str:
    return "Send the amount and, if you like, a note of up to 100 characters, for example: /request 500 2 loaves"


def request_note_too_long() -> str:
    return "The note can be at most 100 characters. Please send it shorter, for example: /request 500 2 loaves"


def request_share_label() -> str:
    return "📤 Share"


def request_cancel_label() -> str:
    return "✖️ Cancel request"


def qr_caption_line() -> str:
    return "Scan to pay with M-PESA or Airtel Money"


def request_cancelled_answer() -> str:
    return "Request cancelled."


def request_not_cancellable() -> str:
    return "This request can't be cancelled now: it is paid, being paid, or has already ended."


def request_link_unknown() -> str:
    return "I don't know that payment link. Please ask the shop for a new one, or send /pay."


def no_requests() -> str:
    return "No payment requests yet. Send /request 500 2 loaves to make one."


def inline_usage_title() -> str:
    return "Type an amount and a note"


def inline_usage_text() -> str:
    return "Type the amount and a note after my name, for example: 500 2 loaves"


def request_what(amount: int, note: str) -> str:
    """`KES 500 for 2 loaves`, or `KES 500` without a note."""
    return f"{money(amount)} for {note}" if note else money(amount)


def request_title(amount: int, note: str) -> str:
    """The inline card's title: "Request KES 500 — 2 loaves"."""
    return f"Request {money(amount)} — {note}" if note else f"Request {money(amount)}"


def request_asks(shop_name: str, amount: int, note: str) -> str:
    """What the payer reads first: "Mama Mboga asks KES 500 for 2 loaves."."""
    if note:
        return f"{shop_name} asks {money(amount)} for {note}."
    return f"{shop_name} asks {money(amount)}."


def request_created(request_id: str, amount: int, note: str, expires_at: float, link: str) -> str:
    return (
        f"🧾 Payment request {request_id}: {request_what(amount, note)}\n"
        f"Valid until {nairobi_time(expires_at)}.\n"
        f"Link: {link}\n\n"
        "Send the link or show the QR code: the customer opens it, gives a phone number and confirms. "
        "Tap Share to post it in another chat. I'll tell you here when it is paid."
    )


def request_card(shop_name: str, amount: int, note: str, expires_at: float) -> str:
    """The message an inline card posts into a chat."""
    return (
        f"🧾 {request_asks(shop_name, amount, note)}\n"
        f"Tap the button to pay with M-PESA or Airtel Money (valid until {nairobi_time(expires_at)})."
    )


def pay_button_label(amount: int) -> str:
    return f"Pay {money(amount)}"


def request_start(shop_name: str, amount: int, note: str) -> str:
    return f"{request_asks(shop_name, amount, note)}\n\n{ASK_PHONE}"


def request_amount_problem(problem: InputProblem, minimum: int, maximum: int) -> str:
    """/request with an amount that cannot be asked for: why, and how to write it."""
    if problem is InputProblem.AMOUNT_NOT_WHOLE:
        first = "Requests are in whole shillings, no cents."
    elif problem is InputProblem.AMOUNT_TOO_SMALL:
        first = f"The smallest amount I can request is {money(minimum)}."
    elif problem is InputProblem.AMOUNT_TOO_LARGE:
        first = f"The largest amount I can request is {money(maximum)}."
    else:
        first = "I couldn't read that as an amount."
    return f"{first}\n{request_usage()}"


def request_amount_fixed(amount: int) -> str:
    return (
        f"The amount of this request is fixed at {money(amount)}. Tap Confirm on the summary above, "
        "send another phone number, or /cancel."
    )


def request_state_line(state: str, amount: int, note: str, payer: str | None) -> str:
    """A request's state and what it asks: on /requests, and on its message once it has ended."""
    what = request_what(amount, note)
    if state == "open":
        return f"⏳ open: {what}"
    if state == "paying":
        return f"⏳ being paid: {what}"
    if state == "paid":
        return f"✅ Paid by {payer}: {what}" if payer else f"✅ Paid: {what}"
    if state == "expired":
        return f"⌛ Expired: {what}"
    return f"✖️ Cancelled: {what}"


def request_ended(shop_name: str, state: str, amount: int, note: str, payer: str | None) -> str:
    return f"🧾 {shop_name}: {request_state_line(state, amount, note, payer)}."


def request_unavailable(state: str, being_paid: bool) -> str:
    """Why a request cannot be paid now (opening its link, or confirming it)."""
    if state == "paid":
        return "This payment request has already been paid. Nothing more to pay."
    if state == "open" and being_paid:
        return "Someone is already paying this request. If it isn't paid in a few minutes, ask the shop."
    if state == "cancelled":
        return "The shop cancelled this payment request. Please ask the shop for a new one."
    return "This payment request has expired. Please ask the shop for a new one."


def request_paid_notice(request_id: str, amount: int, note: str, payer: str, phone: str, receipt: str) -> str:
    return (
        f"✅ Request {request_id} paid: {request_what(amount, note)}\n"
        f"By {payer} ({phone}). Receipt: {receipt}"
    )


def requests_list(lines: list[str]) -> str:
    return "Payment requests (open and last 7 days):\n" + "\n".join(lines)


def request_list_line(request_id: str, created_at: float, state_line: str) -> str:
    return f"{request_id} · {nairobi_time(created_at)} · {state_line}"


def request_list_cancel_label(request_id: str, amount: int) -> str:
    return f"✖️ Cancel {request_id} ({money(amount)})"


def inline_pay_shop_title(shop_name: str) -> str:
    return f"Pay {shop_name}"


def inline_pay_shop_text(shop_name: str, bot_username: str) -> str:
    return f"To pay {shop_name} with M-PESA or Airtel Money, open @{bot_username} and send /pay, or tap the button."


def paybill_steps(order: Order, paybills: dict[str, str], account: str) -> str:
    """How to pay the same order by hand, from its own /transact answer (never hard-coded)."""
    lines = ["No prompt on your phone? Pay the same order by hand:"]
    if "MPESA" in paybills:
        lines.append(
            f"M-PESA → Lipa na M-PESA → Pay Bill → Business no. {paybills['MPESA']} → Account {account} "
            f"→ {money(order.amount)}"
        )
    if "AIRTEL" in paybills:
        lines.append(
            f"Airtel Money → Make Payments → Paybill → Business no. {paybills['AIRTEL']} → Reference {account} "
            f"→ {money(order.amount)}"
        )
    lines.append(f"Order {order.id}. I'll tell you here as soon as it is paid.")
    return "\n".join(lines)


def paybill_not_available() -> str:
    return "iPay has not given this order a Pay Bill account yet. Please wait a moment and try again."


def paybill_order_closed() -> str:
    return "This order is no longer waiting for a payment."


def qr_sign_caption(link: str) -> str:
    return f"Your counter QR code: print it and put it where customers pay. It opens {link}, where they say the amount."


def requests_help() -> str:
    return (
        "\n\nFor the shop's staff:\n"
        "/request 500 2 loaves: a payment request with a link and a QR code; the customer pays in two taps.\n"
        "/requests: open and recent requests, with a Cancel button.\n"
        "/qr: the shop's QR code for the counter.\n"
        "In any chat, type @ and my name, then an amount and a note, to post a request card."
    )
