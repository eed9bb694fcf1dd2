"""Every sentence a user sees, in one place, so wording and translation stay together.

Plain text (no parse mode): nothing a user types can break the formatting.
"""

from __future__ import annotations

from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import Network, Order, OrderStatus, Payment, mask_phone
from bot.inputs import InputProblem
from bot.ipay.client import NAIROBI

SANDBOX_TAG = "🧪 SANDBOX: no real money moves. "

COMMANDS = (
    ("pay", "Pay with M-Pesa or Airtel Money"),
    ("status", "Check an order: /status <order id>"),
    ("cancel", "Stop what we are doing"),
    ("help", "What this bot does"),
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


def summary_buttons(network: Network) -> tuple[tuple[str, str], ...]:
    return (("✅ Confirm", CONFIRM), (f"🔁 Use {network.other.label} instead", SWITCH_NETWORK), ("✖️ Cancel", CANCEL))


def sending_again(order: Order) -> str:
    return f"Sending the {order.network.label} prompt again for {money(order.amount)} to {order.phone}… (order {order.id})"


def sending_prompt(order: Order) -> str:
    return f"Sending the {order.network.label} prompt for {money(order.amount)} to {order.phone}… (order {order.id})"


def check_phone(order: Order) -> str:
    return (
        f"📲 Check your phone and enter your {order.network.label} PIN to pay {money(order.amount)}.\n"
        f"Order {order.id}. I'll tell you here as soon as it is paid."
    )


def prompt_unconfirmed(order: Order) -> str:
    return (
        f"⏳ iPay did not confirm that the prompt reached {order.phone}. If your phone shows it, "
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
    return f"Order {order.id}: {money(order.amount)} from {order.phone} by {order.network.label}: {STATUS_WORDS[status]}."


def phone_busy(order: Order, until: float) -> str:
    return (
        f"A payment prompt for {order.masked_phone} is still waiting for an answer (order {order.id}). "
        f"Please answer it on the phone, or try again after {nairobi_time(until)[-5:]} when it has expired."
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
    return " · ".join(parts)


FAILURE_REASONS = {
    "cancelled": "the payer cancelled the prompt",
    "wrong_pin": "a wrong PIN was entered",
    "insufficient_funds": "the balance was not enough",
    "timed_out": "the prompt timed out",
}

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
