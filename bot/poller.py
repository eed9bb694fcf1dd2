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
from bot.payments import PaymentService
from bot.store import Store

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
        concurrency: int = 20,
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
                for status in await asyncio.gather(*(self._check(o) for o in due)):
                    report.outcomes[status] = report.outcomes.get(status, 0) + 1
                report.checked += len(due)
            report.seconds = time.perf_counter() - started
            self.last_sweep_at = self._clock()
            return report

    async def _check(self, order: Order) -> OrderStatus:
        async with self._limit:
            try:
                return await self._payments.check(order)
            except Exception:  # one bad order must not stop the sweep for the others
                log.exception("checking order %s failed", order.id)
                return OrderStatus.PENDING
