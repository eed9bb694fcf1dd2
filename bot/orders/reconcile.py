"""Reconcile a period's orders against iPay: what a shop runs when a customer says "I paid".

Every order of the period that reached iPay is looked up again. Where iPay's answer and the
order disagree, the difference is reported, and fixed where it can be: money iPay has on an
order without it is recorded through the one finalisation path (paid, and the payer and the shop
told), a pending order with a verdict is finished as the sweep would finish it. What cannot be
fixed (money recorded here that iPay does not show, a receipt that differs, no answer from iPay)
is reported for a person to look at; nothing is ever taken back.

`/reconcile <period>` (admins) and `python -m bot.reconcile --since 2026-12-01 [--until ...]`
(the operator, beside a running bot: the messages it queues are sent by the bot's notifier).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.domain import Order, OrderStatus, Payment
from bot.orders.service import PaymentService
from bot.providers.base import PaymentFailed, PaymentFound, ProviderError, SearchResult
from bot.store import Store

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

RECONCILE_CONCURRENCY = 8  # lookups at once: a period of a busy day should not crowd out the sweep


class ProviderSays(StrEnum):
    """The provider's answer about one order, as a reconciliation reports it."""

    PAID = "paid"
    NOT_PAID = "not_paid"
    FAILED = "failed"
    NO_ANSWER = "no_answer"


@dataclass(frozen=True)
class Difference:
    """One order whose state differs from the provider's answer. `now` is what the order became if it was
    fixed (None: left as it was, for a person to look at)."""

    order: Order
    provider: ProviderSays
    payment: Payment | None = None  # what the provider says was paid
    detail: str = ""  # the provider's failure text, or why it gave no answer (never a hash)
    now: OrderStatus | None = None


@dataclass(frozen=True)
class Reconciliation:
    checked: int  # orders looked up at iPay
    not_sent: int  # orders of the period iPay never heard of (nothing to look up)
    differences: list[Difference]

    @property
    def fixed(self) -> int:
        return sum(1 for d in self.differences if d.now is not None)


async def reconcile(store: Store, payments: PaymentService, start: float, end: float) -> Reconciliation:
    """Look every order created in [start, end) up at iPay again; report and fix differences."""
    orders = [order async for order in store.stream_orders(start, end)]
    sent = [order for order in orders if order.reached_provider]
    slots = asyncio.Semaphore(RECONCILE_CONCURRENCY)

    async def one(order: Order) -> Difference | None:
        async with slots:
            return await _reconcile_order(store, payments, order, await payments.lookup(order))

    found = await asyncio.gather(*(one(order) for order in sent))
    differences = [d for d in found if d is not None]
    result = Reconciliation(len(sent), len(orders) - len(sent), differences)
    log.info("reconciled %d orders with iPay: %d differ, %d fixed", len(sent), len(differences), result.fixed)
    return result


async def _reconcile_order(
    store: Store, payments: PaymentService, order: Order, result: SearchResult | ProviderError
) -> Difference | None:
    """Compare one order with iPay's answer; fix it if that can be done without taking anything back."""
    if isinstance(result, ProviderError):
        return Difference(order, ProviderSays.NO_ANSWER, detail=result.reason)
    if isinstance(result, PaymentFound):
        paid = result.payment
        if order.status.money_received:
            same = order.receipt_code == paid.receipt_code and order.paid_amount == paid.amount
            return None if same else Difference(order, ProviderSays.PAID, paid)
        await payments.record_payment(order, paid)  # paid and told; changes nothing if it moved meanwhile
        return Difference(order, ProviderSays.PAID, paid, now=await _status(store, order))
    says = ProviderSays.FAILED if isinstance(result, PaymentFailed) else ProviderSays.NOT_PAID
    detail = result.text if isinstance(result, PaymentFailed) else ""
    if order.status.money_received:
        return Difference(order, says, detail=detail)  # money here that iPay does not show: a person decides
    if order.status is OrderStatus.PENDING and payments.now() >= payments.deadline(order):
        await payments.act_on(order, result)  # finished as the sweep would (expired, failed)
        status = await _status(store, order)
        return Difference(order, says, detail=detail, now=status) if status is not OrderStatus.PENDING else None
    return None  # pending before its deadline, or ended without money as iPay says


async def _status(store: Store, order: Order) -> OrderStatus:
    stored = await store.get_order(order.id)
    return stored.status if stored is not None else order.status
