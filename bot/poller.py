"""The status sweep: one repeating job asks iPay about every pending order that is due.

Due orders come from an index range (`orders_due`), in batches, and are checked
concurrently with a bound so a thousand due orders take seconds, not a thousand round
trips one after another, and iPay never sees more than `concurrency` calls at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from bot.domain import Order, OrderStatus
from bot.ipay import IpayError, SearchResult
from bot.payments import PaymentService
from bot.store import Reschedule, Store

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    checked: int = 0
    outcomes: dict[OrderStatus, int] = field(default_factory=dict)
    seconds: float = 0.0


class StatusPoller:
    def __init__(
        self,
        store: Store,
        payments: PaymentService,
        *,
        concurrency: int = 50,
        batch: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._payments = payments
        self._limit = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._clock = clock
        self._lock = asyncio.Lock()
        self.last_sweep_at: float | None = None

    async def sweep(self) -> SweepReport:
        """Check every order due now. Overlapping calls wait for the running sweep."""
        async with self._lock:
            started = time.perf_counter()
            report = SweepReport()
            seen: set[str] = set()
            while True:
                due = [o for o in await self._store.due_orders(self._clock(), self._batch) if o.id not in seen]
                if not due:
                    break
                seen.update(o.id for o in due)
                results = await asyncio.gather(*(self._lookup(o) for o in due))
                reschedules = []
                for order, result in zip(due, results):
                    status, reschedule = await self._settle(order, result)
                    report.outcomes[status] = report.outcomes.get(status, 0) + 1
                    if reschedule is not None:
                        reschedules.append(reschedule)
                await self._store.schedule_polls(self._clock(), reschedules)  # one transaction a batch
                report.checked += len(due)
            report.seconds = time.perf_counter() - started
            self.last_sweep_at = self._clock()
            return report

    async def _lookup(self, order: Order) -> SearchResult | IpayError:
        async with self._limit:
            return await self._payments.lookup(order)

    async def _settle(self, order: Order, result: SearchResult | IpayError) -> tuple[OrderStatus, Reschedule | None]:
        try:
            return await self._payments.settle(order, result)
        except Exception:  # one bad order must not stop the sweep for the others
            log.exception("settling order %s failed", order.id)
            return order.status, None
