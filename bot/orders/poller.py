"""The status sweep: one repeating job starts a lookup for every order that is due.

Due orders come from an index range (`orders_due`), claimed for this instance with a lease
(`Store.claim_due_orders`): with several instances on one PostgreSQL database each due order
is looked up by one of them, and a dead instance's claims lapse for the others. Each lookup runs on its own: the sweep
starts it and returns, so one lookup hanging for the read timeout occupies one slot of the
provider call budget (`CallBudget`) and never the cadence of the others. An order
is looked up by one task at a time; lookups without a verdict are rescheduled in batches,
one write transaction for every lookup that finished within `FLUSH_WINDOW` of the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.domain import Order, OrderStatus
from bot.orders.service import PaymentService
from bot.store import Reschedule, Store

log = logging.getLogger(__name__)

# How long the first lookup without a verdict waits for others to share its write transaction.
# Under load lookups answer milliseconds apart, and each transaction waits for the disk: written a
# window at a time, a 1,000-order sweep is about 24 transactions rather than about 114. The wait
# changes nothing a payer sees (the next lookup is seconds away), and a crash inside it only means
# those orders are looked up again once their claim lapses.
FLUSH_WINDOW = 0.1


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
        batch: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._payments = payments
        self._batch = batch  # at most this many lookups started and not yet finished
        self._clock = clock
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[OrderStatus]] = set()
        self._reschedules: list[Reschedule] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()  # `wait_idle` wants the reschedules written without the window
        self.last_sweep_at: float | None = None

    async def start_due(self, skip: frozenset[str] = frozenset()) -> list[asyncio.Task[OrderStatus]]:
        """Finish orders a restart left unsent, then start a lookup for every due order that
        is not being looked up already (nor in `skip`). Returns at once with the lookups started.

        Claims as many orders as there is room for. Orders in `skip` that are due again (their
        reschedule could not be written, say) come first: if they are all a claim holds, they
        are given back and a larger claim looks past them, so they never hide the orders behind."""
        await self._payments.finish_unsent()
        room = self._batch - len(self._in_flight)
        limit, chosen = room, []
        while limit > 0:
            due = await self._store.claim_due_orders(self._clock(), limit)
            chosen = [order for order in due if order.id not in self._in_flight and order.id not in skip][:room]
            if len(chosen) < len(due):  # claimed but not looked up here after all: free for the next call
                looked_up = {order.id for order in chosen}
                await self._store.release_orders([order.id for order in due if order.id not in looked_up])
            if chosen or len(due) < limit:  # orders to look up, or none due beyond those claimed
                break
            limit += room
        started = [self._start(order) for order in chosen]
        self.last_sweep_at = self._clock()
        return started

    async def sweep(self) -> SweepReport:
        """Look up every order due now and wait for the answers (tests, benchmarks)."""
        started_at = time.perf_counter()
        report = SweepReport()
        seen: set[str] = set()  # once per sweep, even if an order is due again at once
        while tasks := await self.start_due(frozenset(seen)):
            seen.update(self._in_flight)
            for status in await asyncio.gather(*tasks):
                report.outcomes[status] = report.outcomes.get(status, 0) + 1
            report.checked += len(tasks)
            await self.wait_idle()
        report.seconds = time.perf_counter() - started_at
        return report

    async def wait_idle(self) -> None:
        """Wait until every lookup started has finished and been written (at once, not after
        the flush window)."""
        self._flush_now.set()
        try:
            while self._tasks or (self._flusher is not None and not self._flusher.done()):
                await asyncio.gather(*self._tasks, *([self._flusher] if self._flusher else []), return_exceptions=True)
        finally:
            self._flush_now.clear()

    def _start(self, order: Order) -> asyncio.Task[OrderStatus]:
        self._in_flight.add(order.id)
        task = asyncio.get_running_loop().create_task(self._check(order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _check(self, order: Order) -> OrderStatus:
        reschedule: Reschedule | None
        try:
            status, reschedule = await self._payments.settle(order, await self._payments.lookup(order))
        except Exception:  # one bad order must not stop the others: look again later
            log.exception("checking order %s failed", order.id)
            retry_at = self._clock() + self._payments.poll_spacing(order.poll_count)
            status, reschedule = order.status, Reschedule(order.id, retry_at, "internal error", order.schedule_version)
        if reschedule is None:
            self._in_flight.discard(order.id)
        else:
            self._reschedules.append(reschedule)
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return status

    async def _flush(self) -> None:
        """Write the reschedules that have piled up, one transaction for the lot: the first waits
        up to `FLUSH_WINDOW` for others, unless a batch is full or `wait_idle` wants them now."""
        while self._reschedules:
            if len(self._reschedules) < self._batch and not self._flush_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_WINDOW):
                        await self._flush_now.wait()
            batch, self._reschedules = self._reschedules, []
            try:
                await self._store.schedule_polls(batch)
            except Exception:  # the orders stay due and are looked up again
                log.exception("rescheduling %d lookups failed", len(batch))
            finally:
                self._in_flight.difference_update(r.order_id for r in batch)
