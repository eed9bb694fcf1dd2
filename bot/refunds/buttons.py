"""The refund buttons other messages carry (the merchant's payment line, /orders, a receipt).

Callback data `refund:<action>:<order id>`: `show` and `again` open the refund (an admin gets
the confirm card, a cashier asks the admins); `go` and `goagain` are an admin's confirm;
`ok` and `no` answer a cashier's ask. Labels are English msgids, translated when shown.
"""

from __future__ import annotations

from bot.domain import Order, OrderStatus
from bot.i18n import N_

BUTTON_PATTERN = r"^refund:(show|again|go|goagain|ok|no):([A-Z0-9]{1,34})$"
REFUND_LABEL = N_("↩️ Refund")
REFUND_ALL_AND_ASK_AGAIN_LABEL = N_("↩️ Refund all and ask again")
REFUND_WHAT_WAS_PAID_LABEL = N_("↩️ Refund what was paid")
APPROVE_LABEL = N_("✅ Approve the refund")
DECLINE_LABEL = N_("✖️ Decline")


def data(action: str, order_id: str) -> str:
    return f"refund:{action}:{order_id}"


def offered(order: Order, status: OrderStatus) -> tuple[tuple[str, str], ...]:
    """The refund button an order with money on it offers, worded for what went wrong: too much
    comes back whole and is asked for again (iPay documents full refunds only), too little
    comes back beside "Pay the rest"."""
    if not status.money_received:
        return ()
    if status is OrderStatus.OVERPAID:
        return ((REFUND_ALL_AND_ASK_AGAIN_LABEL, data("again", order.id)),)
    if status is OrderStatus.UNDERPAID:
        return ((REFUND_WHAT_WAS_PAID_LABEL, data("show", order.id)),)
    return ((REFUND_LABEL, data("show", order.id)),)
