"""Who is waiting to hear that an order changed: a till asking "paid yet?" with `?wait=`.

The one finalisation path (`PaymentService.finalise`) says when this process recorded an order's
outcome, and every waiter for that order is woken at once. A change another instance records
(PostgreSQL) is not heard here: waiters read the order again every so often as well
(`bot/orders/api.py`). Closing wakes everyone and makes every later wait return at once, so a
stopping web server is never held open by a till's question.
"""

from __future__ import annotations

import asyncio


class OrderChanges:
    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._closed = False

    def changed(self, order_id: str) -> None:
        for waiter in self._waiting.pop(order_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, order_id: str, at_most: float) -> bool:
        """Until `order_id` changes here, `at_most` seconds pass, or closing; False once closed."""
        if self._closed:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiting.setdefault(order_id, [])
        waiters.append(waiter)
        try:
            await asyncio.wait((waiter,), timeout=at_most)
        finally:
            if not waiter.done():
                waiter.cancel()
                waiters.remove(waiter)
                if not waiters and self._waiting.get(order_id) is waiters:
                    del self._waiting[order_id]
        return not self._closed

    def close(self) -> None:
        self._closed = True
        for order_id in list(self._waiting):
            self.changed(order_id)
