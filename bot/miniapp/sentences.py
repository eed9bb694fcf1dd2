"""What the Mini App says: the page's labels, in the reader's language (called inside `speaking`)."""

from __future__ import annotations

from bot.i18n import _


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
    }


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
