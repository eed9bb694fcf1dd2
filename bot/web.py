"""The bot's HTTP side: iPay's payment callback (served when IPAY_CALLBACK_URL is set).

A callback is unauthenticated, so it is never trusted by itself: it only makes the bot look
the order up at iPay at once (`/transaction/search`), and that answer decides, through the
same path as a poll. Unknown orders, replays and malformed queries get a 4xx and change
nothing. Polling stays on as the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.domain import OrderStatus
from bot.payments import PaymentService

log = logging.getLogger(__name__)

# iPay's callback status codes (shared/ipay-api.md, section 4).
CALLBACK_STATUS = {
    "aei7p7yrx4ae34": "success",
    "fe2707etr5s4wq": "failed",
    "bdi6p2yy76etrs": "pending",
    "cr5i3pgy9867e1": "used",
    "dtfi4p7yty45wq": "less",
    "eq3i7p5yt7645e": "more",
}
MONEY_CODES = {"aei7p7yrx4ae34", "dtfi4p7yty45wq", "eq3i7p5yt7645e", "cr5i3pgy9867e1"}
_ORDER_ID = re.compile(r"^[A-Za-z0-9]{1,34}$")
MIN_SECONDS_BETWEEN_CHECKS = 1.0  # a burst of callbacks for one order makes one lookup


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class CallbackEndpoint:
    def __init__(self, payments: PaymentService, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._payments = payments
        self._clock = clock
        self._last_check: dict[str, float] = {}

    async def handle(self, request: Request) -> JSONResponse:
        params = request.query_params
        order_id, code = params.get("id", ""), params.get("status", "")
        if not _ORDER_ID.match(order_id) or code not in CALLBACK_STATUS:
            return _error(400, "malformed_callback", "expected id=<order id> and a known status code")
        order = await self._payments.order(order_id)
        if order is None:
            log.warning("callback for unknown order %s", order_id)
            return _error(404, "unknown_order", "no such order")
        if order.status.money_received or (order.status is not OrderStatus.PENDING and code not in MONEY_CODES):
            return _error(409, "already_settled", f"order is {order.status.value}")
        now = self._clock()
        if now - self._last_check.get(order_id, float("-inf")) < MIN_SECONDS_BETWEEN_CHECKS:
            return JSONResponse({"order_id": order_id, "status": order.status.value, "checked": False}, status_code=202)
        self._last_check[order_id] = now
        log.info("callback for order %s says %s: looking it up", order_id, CALLBACK_STATUS[code])
        status = await self._payments.check(order)
        return JSONResponse({"order_id": order_id, "status": status.value, "checked": True})


def build_web_app(payments: PaymentService, callback_path: str) -> Starlette:
    return Starlette(routes=[Route(callback_path, CallbackEndpoint(payments).handle, methods=["GET"])])


class WebServer:
    """uvicorn in the bot's own event loop (no second loop), started and stopped with the bot."""

    def __init__(self, app: Starlette, port: int, host: str = "0.0.0.0") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (port taken, ...)
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
