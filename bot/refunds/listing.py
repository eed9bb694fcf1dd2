"""The "↩️ Refund" buttons under an admin's /orders: one per listed payment that may be refunded."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import Order, RefundState
from bot.refunds import buttons, sentences
from bot.services import Services

OPEN_TO_ADMINS = (RefundState.ASKED, RefundState.DECLINED, RefundState.REFUSED)
MAX_BUTTONS = 10  # the newest ones; /refund <order id> reaches any other


async def refund_buttons_for(services: Services, orders: Sequence[Order]) -> InlineKeyboardMarkup | None:
    """Buttons for the listed orders with money on them and no refund under way or done (a
    cashier's ask still waiting may be refunded by the admin directly)."""
    if services.refunds is None:
        return None
    paid = [order for order in orders if order.status.money_received and order.receipt_code]
    refunds = await services.refunds.refunds_of(order.id for order in paid)
    offered = [o for o in paid if o.id not in refunds or refunds[o.id].state in OPEN_TO_ADMINS][:MAX_BUTTONS]
    if not offered:
        return None
    rows = [
        [
            InlineKeyboardButton(
                sentences.listing_label(o.id, o.paid_amount or 0), callback_data=buttons.data("show", o.id)
            )
        ]
        for o in offered
    ]
    return InlineKeyboardMarkup(rows)
