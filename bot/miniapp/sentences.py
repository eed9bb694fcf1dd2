"""What the Mini App says: the page's labels, in the reader's language (called inside `speaking`)."""

from __future__ import annotations

from bot.domain import Refund, RefundState
from bot.i18n import _
from bot.i18n.formats import clock_time, money
from bot.owner.sentences import close_label
from bot.refunds.buttons import APPROVE_LABEL, DECLINE_LABEL
from bot.refunds.sentences import status_line


def page_words() -> dict[str, str]:
    return {
        "title": _("Shop counter"),
        "counter": _("Counter"),
        "phone": _("Phone number"),
        "network": _("Network"),
        "amount": _("Amount (KES)"),
        "note": _("Note (optional)"),
        "send": _("Send prompt"),
        "request_link": _("Request link"),
        "latest": _("Your latest orders"),
        "none": _("No orders yet."),
        "receipt": _("Receipt"),
        "payer": _("Paid by"),
        "back_office": _("Back office"),
        "today": _("Today"),
        "week": _("This week"),
        "by_channel": _("By channel"),
        "by_cashier": _("By cashier"),
        "in_doubt": _("Orders in doubt"),
        "pending": _("Pending orders"),
        "nothing": _("Nothing here."),
        "received": _("received"),
        "payments": _("payments"),
        "scan": _("The customer scans this code or opens the link to pay."),
        "loading": _("Loading…"),
        "paid_today": _("Paid today"),
        "refund": _("Refund"),
        "again": _("Send the prompt again"),
        "ask_refund": _("Ask for a refund"),
        "waiting_refunds": _("Refunds awaiting approval"),
        "approve": _(APPROVE_LABEL),
        "decline": _(DECLINE_LABEL),
        "close": _("Close of the day"),
        "close_day": close_label(),
        "close_confirm": _("Tap again to close today: its totals are kept as they are now."),
        "still_open": _("Today is still open."),
    }


def refund_state(refund: Refund) -> str:
    """Where a refund stands, beside the order in the counter's list ("" when nothing is said)."""
    if refund.state is RefundState.ASKED:
        return _("Refund asked: waiting for an admin.")
    if refund.state is RefundState.DECLINED:
        return _("Refund declined by {who}.").format(who=refund.approved_by or "")
    return status_line(refund) or ""


def asked_by(name: str, amount: int, phone: str) -> str:
    """A waiting ask in the back office: `Otieno (700) asks: KES 500 · 07** ***678`."""
    return _("{who} asks: {amount} · {phone}").format(who=name, amount=money(amount), phone=phone)


def closed_line(who: str, at: float) -> str:
    """Today's close in the back office: by whom and when (`who` empty: by the clock)."""
    if not who:
        return _("Today was closed automatically at {time}.").format(time=clock_time(at))
    return _("Today was closed by {who} at {time}.").format(who=who, time=clock_time(at))


def closed_already(who: str, at: float) -> str:
    """A second close of the day is refused: the first one stands."""
    return _("{closed} A day is closed once: its figures stay as they were.").format(closed=closed_line(who, at))


def closed_now() -> str:
    return _("Today is closed. Its report is in your chat with the bot.")


def staff_only() -> str:
    return _("This app is for the shop's staff. To pay, send /pay to the bot.")


def not_signed() -> str:
    return _("Open this app from the bot's menu button in Telegram.")


def too_fast() -> str:
    return _("Too many requests: wait a moment and try again.")


def bad_input() -> str:
    return _("Check the phone number and the amount.")


def menu_button() -> str:
    return _("Counter")


def unavailable() -> str:
    return _("The payment records cannot be reached right now: try again in a moment.")
