"""What a payment made by hand pays. A confirmation whose account is an order's reference pays
that order through the payment service's one finalisation path (`record_payment`: the amount
compared as with any payment, so short is underpaid); one that names no order the bot may pay is
kept and the shop is told it once, whatever repeats. Each receipt is kept once
(`Store.record_manual_payment`), so a confirmation sent again changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from bot.domain import ManualPaymentRecord, Notice, Order, OrderStatus
from bot.orders import notices
from bot.orders.service import PaymentService
from bot.providers.base import ManualPayment
from bot.store import Store

log = logging.getLogger(__name__)

UNMATCHED = "paybill_unmatched"  # to the merchant chat: money paid by hand that named no order
# An order that ended without money may still be paid by hand this long after it was written:
# a payer who saw "the prompt timed out" may go to Pay Bill with the order's reference later.
MATCH_WINDOW_SECONDS = 24 * 3600.0


class Taken(StrEnum):
    """What became of a confirmation."""

    PAID = "paid"  # it paid the order it named (paid, underpaid or overpaid)
    REPEATED = "repeated"  # its receipt was heard before: nothing changes
    UNMATCHED = "unmatched"  # kept and told to the shop, which settles it by hand


class ManualPaymentService:
    def __init__(
        self,
        store: Store,
        payments: PaymentService,
        *,
        merchant_chat_id: int | None,
        sandbox: bool = False,
        clock: Callable[[], float] = time.time,
        on_notices: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._payments = payments
        self._merchant = merchant_chat_id
        self._sandbox = sandbox
        self._clock = clock
        self._on_notices = on_notices

    async def take(self, manual: ManualPayment) -> Taken:
        """Pay the order the confirmation names, or keep it as unmatched; a receipt heard before
        only finishes what its first hearing started (its order's finalisation, which changes
        nothing when done)."""
        payment, now = manual.payment, self._clock()
        known = await self._store.manual_payment(payment.receipt_code)
        if known is not None:
            order = await self._store.get_order(known.order_id) if known.order_id else None
            if order is not None:
                await self._payments.record_payment(order, payment)
            return Taken.REPEATED
        order = await self._store.get_order(manual.account) if manual.account else None
        if order is not None and order.status.money_received and order.receipt_code == payment.receipt_code:
            await self._store.record_manual_payment(self._record(manual, order.id), now)
            return Taken.REPEATED
        if order is not None and self._payable(order, now):
            # Kept first, naming its order: a repeat after a crash here finishes the payment.
            await self._store.record_manual_payment(self._record(manual, order.id), now)
            status = await self._payments.record_payment(order, payment)
            log.info("payment made by hand %s paid order %s: %s", payment.receipt_code, order.id, status.value)
            return Taken.PAID
        record = self._record(manual, None)
        if await self._store.record_manual_payment(record, now, self._unmatched_notices(record)):
            log.warning("payment made by hand %s names no order the bot may pay: told to the shop", record.receipt)
            self._on_notices()
        return Taken.UNMATCHED

    async def unmatched(self, since: float, until: float) -> list[ManualPaymentRecord]:
        return await self._store.unmatched_payments(since, until)

    @staticmethod
    def _payable(order: Order, now: float) -> bool:
        """Open, or ended without money recently (failed, cancelled, expired, withdrawn)."""
        if order.status is OrderStatus.PENDING:
            return True
        return order.status.can_retry and now - order.created_at < MATCH_WINDOW_SECONDS

    @staticmethod
    def _record(manual: ManualPayment, order_id: str | None) -> ManualPaymentRecord:
        p = manual.payment
        return ManualPaymentRecord(p.receipt_code, manual.account, p.amount, p.payer_name, p.paid_at, order_id)

    def _unmatched_notices(self, record: ManualPaymentRecord) -> list[Notice]:
        if self._merchant is None:
            return []
        params = {
            "receipt": record.receipt,
            "account": record.account,
            "amount": record.amount,
            "payer": record.payer_name,
            "paid_at": record.paid_at,
            "sandbox": self._sandbox,
        }
        return [Notice(chat_id=self._merchant, kind=UNMATCHED, params=params, reader=notices.MERCHANT_READER)]
