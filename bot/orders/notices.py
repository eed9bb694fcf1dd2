"""Outbox notices as a kind plus parameters: what happened, not how it is said.

The payment service queues these in the same transaction as the change they tell; the notifier
renders them (`bot.orders.notifier.render_notice`) in the recipient's language when it sends them, so a
payer who switches language while a payment is pending gets the receipt in the new language.
Parameters are plain JSON values: an order and a payment are stored as they were when queued.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bot.domain import Network, Notice, Order, OrderStatus, Payment, SummaryRow
from bot.providers.base import DEFAULT_PROVIDER_NAME

PROMPT_SENT = "prompt_sent"  # "check your phone" (or "iPay did not confirm"), edits the summary
PROMPT_OUTCOME = "prompt_outcome"  # what the "check your phone" message becomes
OUTCOME = "outcome"  # the new message telling the chat how an order ended
MERCHANT_LINE = "merchant_line"  # the merchant chat's line about an order
DAILY_SUMMARY = "daily_summary"  # the day's totals to the merchant chat
REQUEST_PAID = "request_paid"  # to the merchant who made a payment request: who paid it
IN_DOUBT = "in_doubt"  # to the payer: the payment cannot be confirmed yet, they will hear
MERCHANT_DOUBT = "merchant_doubt"  # the merchant chat's line about an order in doubt, and why
KINDS = (PROMPT_SENT, PROMPT_OUTCOME, OUTCOME, MERCHANT_LINE, DAILY_SUMMARY, REQUEST_PAID, IN_DOUBT, MERCHANT_DOUBT)

# Who reads a notice: a user id (their own language), or the merchant chat (MERCHANT_LANGUAGE).
MERCHANT_READER = None


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def order_params(order: Order) -> dict[str, Any]:
    return {field.name: _plain(getattr(order, field.name)) for field in dataclasses.fields(Order)}


# Outbox entries queued by a release that named these fields after iPay still read.
_RENAMED = {"ipay_sid": "session_ref", "ipay_account": "paybill_account", "ipay_paybills": "paybill_numbers"}


def order_from(params: Mapping[str, Any]) -> Order:
    values = {_RENAMED.get(name, name): value for name, value in params.items()}
    values["network"] = Network(values["network"])
    values["status"] = OrderStatus(values["status"])
    values["paybill_numbers"] = tuple(tuple(pair) for pair in values.get("paybill_numbers") or ())
    known = {field.name for field in dataclasses.fields(Order)}
    return Order(**{k: v for k, v in values.items() if k in known})


def payment_params(payment: Payment | None) -> dict[str, Any] | None:
    return None if payment is None else dataclasses.asdict(payment)


def payment_from(params: Mapping[str, Any] | None) -> Payment | None:
    return None if params is None else Payment(**params)


@dataclass(frozen=True)
class EarlierPayment:
    """Money paid on an earlier order of the same chain (order id, receipt code, amount)."""

    order_id: str
    receipt_code: str
    amount: int


@dataclass(frozen=True)
class FollowUp:
    """What an order follows on from ("Pay the rest", or a retry after money came anyway): the
    amount the first paid order asked, and every payment made on the chain before this one."""

    asked: int
    payments: tuple[EarlierPayment, ...]

    @property
    def first_order_id(self) -> str:
        return self.payments[0].order_id

    @property
    def paid_before(self) -> int:
        return sum(p.amount for p in self.payments)


def follow_up(order: Order, earlier: list[Order]) -> FollowUp | None:
    """From `order`'s earlier attempts (oldest first, `Store.earlier_attempts`): the money paid on
    them, or None if none was. The first paid one asked the original amount: "Send the prompt
    again" keeps the amount and "Pay the rest" asks what is left, so later ones ask less. Only the
    order's own chat's orders are told (a retry is always made in the chat of what it retries)."""
    paid = [
        o
        for o in earlier
        if o.chat_id == order.chat_id and o.status.money_received and o.paid_amount is not None and o.receipt_code
    ]
    if not paid:
        return None
    payments = tuple(EarlierPayment(o.id, o.receipt_code or "", o.paid_amount or 0) for o in paid)
    return FollowUp(paid[0].amount, payments)


def follow_up_params(follow: FollowUp | None) -> dict[str, Any] | None:
    return None if follow is None else dataclasses.asdict(follow)


def follow_up_from(params: Mapping[str, Any] | None) -> FollowUp | None:
    if params is None:
        return None
    return FollowUp(params["asked"], tuple(EarlierPayment(**p) for p in params["payments"]))


def about_order(
    kind: str,
    chat_id: int,
    order: Order,
    *,
    status: OrderStatus | None = None,
    payment: Payment | None = None,
    reason: str | None = None,
    sandbox: bool = False,
    reader: int | None = MERCHANT_READER,
    buttons: tuple[tuple[str, str], ...] = (),
    edit_prompt: bool = False,
    provider: str = DEFAULT_PROVIDER_NAME,
    **extra: Any,
) -> Notice:
    """A notice about one order. Button labels are English msgids, translated when rendered. The
    running provider's name rides along, so the notice names it whenever it is said."""
    params = {
        "provider": provider,
        "order": order_params(order),
        "status": (status or order.status).value,
        "payment": payment_params(payment),
        "reason": reason,
        "sandbox": sandbox,
        **extra,
    }
    return Notice(chat_id, "", buttons, edit_prompt, kind=kind, params=params, reader=reader)


def provider_of(params: Mapping[str, Any]) -> str:
    """The provider a notice names: the one it was queued under (iPay for a notice queued before
    notices carried it)."""
    provider = params.get("provider")
    return provider if isinstance(provider, str) and provider else DEFAULT_PROVIDER_NAME


def summary_rows_params(rows: list[SummaryRow]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in dataclasses.asdict(row).items()} for row in rows]


def summary_rows_from(params: list[Mapping[str, Any]]) -> list[SummaryRow]:
    return [
        SummaryRow(
            OrderStatus(r["status"]),
            Network(r["network"]),
            r["count"],
            r["amount"],
            r["received"],
            r.get("owed", 0),
            r.get("refund", 0),
        )
        for r in params
    ]


def daily_summary(
    chat_id: int,
    shop_name: str,
    at: float,
    rows: list[SummaryRow],
    in_doubt: list[Order] | None = None,
    provider: str = DEFAULT_PROVIDER_NAME,
) -> Notice:
    """The day's totals, and the orders in doubt now (whatever day they were made), by id and amount."""
    params: dict[str, Any] = {"shop": shop_name, "at": at, "rows": summary_rows_params(rows), "provider": provider}
    if in_doubt:
        params["in_doubt"] = [[order.id, order.amount] for order in in_doubt]
    return Notice(chat_id, "", kind=DAILY_SUMMARY, params=params, reader=MERCHANT_READER)
