"""The bot's HTTP side, one ASGI app on one port: the Telegram webhook, iPay's callback,
the health check, the REST API (`bot.orders.api`) and the Mini App (`bot.miniapp.web`).

A callback is unauthenticated, so it is never trusted by itself: it only makes the bot look
the order up at iPay at once (`/transaction/search`), and that answer decides, through the
same path as a poll. Unknown orders, replays and malformed queries get a 4xx and change
nothing. Polling stays on as the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Update

from bot.api.common import ApiError, read_json_object
from bot.api.openapi import openapi_document
from bot.domain import OrderStatus
from bot.lifecycle import BotApplication
from bot.miniapp.web import MiniApp
from bot.orders.api import PaymentsApi
from bot.orders.poller import StatusPoller
from bot.orders.service import PaymentService
from bot.providers.base import RefundResult
from bot.refunds.api import RefundsApi
from bot.requests.api import PaymentRequestsApi
from bot.store import Store

if TYPE_CHECKING:
    import uvicorn

    from bot.services import Services

log = logging.getLogger(__name__)

MIN_SECONDS_BETWEEN_CHECKS = 1.0  # a burst of callbacks for one order makes one lookup
WEBHOOK_PATH = "/telegram"
CALLBACK_BODY_LIMIT = 64 << 10  # a provider's callback is well under 2 KiB
TELEGRAM_BODY_LIMIT = 1 << 20  # an update is a few KiB; 1 MiB is generous
HEALTH_PROBE_WAIT = 2.0  # how long /healthz waits for its write probe before answering from what it knows


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class CallbackEndpoint:
    def __init__(self, payments: PaymentService, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._payments = payments
        self._clock = clock
        self._last_check: dict[str, float] = {}

    async def handle(self, request: Request) -> JSONResponse:
        """A provider's callback: read by the provider (query, path and body), then the order is
        looked up; only the lookup decides, through the payment service's one finalisation path."""
        params = {**request.query_params, **request.path_params}
        body = await request.body() if request.method == "POST" else b""
        callback = self._payments.read_callback(params, body[:CALLBACK_BODY_LIMIT])
        if callback is None:
            return _error(400, "malformed_callback", "not a callback this bot can read")
        order_id = callback.order_id
        order = await self._payments.order(order_id)
        if order is None:
            log.warning("callback for unknown order %s", order_id)
            return _error(404, "unknown_order", "no such order")
        if order.status.money_received and callback.money and not order.receipt_code:
            await self._payments.keep_callback(callback)  # it names the receipt the query could not
            learned = await self._payments.learn_receipt(order)
            return JSONResponse({"order_id": order_id, "status": order.status.value, "receipt_learned": learned})
        if order.status.money_received or (order.status is not OrderStatus.PENDING and not callback.money):
            return _error(409, "already_settled", f"order is {order.status.value}")
        await self._payments.keep_callback(callback)  # kept even when this instance does not look it up now
        now = self._clock()
        if now - self._last_check.get(order_id, float("-inf")) < MIN_SECONDS_BETWEEN_CHECKS:
            return JSONResponse({"order_id": order_id, "status": order.status.value, "checked": False}, status_code=202)
        if len(self._last_check) >= 1000:  # only recent checks matter: keep the map small
            self._last_check = {k: t for k, t in self._last_check.items() if now - t < MIN_SECONDS_BETWEEN_CHECKS}
        self._last_check[order_id] = now
        log.info("callback for order %s says %s: looking it up", order_id, callback.says)
        status = await self._payments.check(order)
        return JSONResponse({"order_id": order_id, "status": status.value, "checked": True})


_ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}  # Daraja's C2B: the payment is taken


class ManualPaymentEndpoint:
    """Daraja's C2B confirmations (and validations) under an unguessable path: each one read by the
    provider, then matched to the order it names or kept as unmatched (`ManualPaymentService`).
    Daraja is answered "accepted" once the payment is kept; a body it cannot read is a 400."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def confirmation(self, request: Request) -> JSONResponse:
        paybill = self._services.paybill
        body = await request.body()
        manual = self._services.payments.read_manual_payment(dict(request.path_params), body[:CALLBACK_BODY_LIMIT])
        if manual is None or paybill is None:
            return _error(400, "malformed_confirmation", "not a confirmation this bot can read")
        taken = await paybill.take(manual)
        log.info("payment made by hand %s: %s", manual.payment.receipt_code, taken.value)
        return JSONResponse(_ACCEPTED)

    async def validation(self, request: Request) -> JSONResponse:
        """Every payment is accepted: the money is the payer's choice, and one naming no order is
        still the shop's (shown to it as unmatched)."""
        return JSONResponse(_ACCEPTED)


class RefundResultEndpoint:
    """A provider's later result of an accepted refund (Daraja's reversal ResultURL and
    QueueTimeOutURL), under an unguessable path per order: read by the provider, finished by
    the refund service through its one path. A repeat is answered alike and changes nothing."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def result(self, request: Request) -> JSONResponse:
        return await self._take(request, {})

    async def timeout(self, request: Request) -> JSONResponse:
        return await self._take(request, {"kind": "timeout"})

    async def _take(self, request: Request, extra: dict[str, str]) -> JSONResponse:
        refunds = self._services.refunds
        read = getattr(self._services.payments.provider, "read_refund_result", None)
        body = await request.body()
        params = {**request.path_params, **extra}
        result = read(params, body[:CALLBACK_BODY_LIMIT]) if read is not None else None
        if not isinstance(result, RefundResult) or refunds is None:
            return _error(400, "malformed_result", "not a refund result this bot can read")
        recorded = await refunds.take_result(result)
        log.info("refund result for order %s: %s (%s)", result.order_id, result.outcome.value, recorded)
        return JSONResponse(_ACCEPTED)


class TelegramWebhook:
    """python-telegram-bot's documented custom-webhook pattern: the update goes on the
    Application's own queue, after the secret header is checked (constant time)."""

    def __init__(self, application: BotApplication, secret: str) -> None:
        self._application = application
        self._secret = secret.encode()

    async def handle(self, request: Request) -> Response:
        given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
        if not hmac.compare_digest(given, self._secret):
            return _error(403, "forbidden", "wrong or missing secret token")
        try:
            body = await read_json_object(request, TELEGRAM_BODY_LIMIT, "malformed_update")
        except ApiError as error:
            return error.response()
        try:
            update = Update.de_json(body, self._application.bot)
        except Exception:  # any object that python-telegram-bot cannot read is a malformed update, not a 500
            return _error(400, "malformed_update", "the body is not a Telegram update")
        await self._application.update_queue.put(update)
        return Response(status_code=200)


class HealthCheck:
    """200 while the database answers, accepts writes and the status sweep keeps running; 503 otherwise.

    Writes are judged by the store's record of the last failed write (cleared by the next one
    that works). While a failure is on record, /healthz itself tries a write that needs room as a
    new order does (`Store.probe_write`), so health comes back when writes do, even if nothing
    else writes; one probe at a time, and an answer within `HEALTH_PROBE_WAIT` seconds whatever
    the probe does.
    """

    def __init__(self, store: Store, poller: StatusPoller, poll_interval: float, clock: Callable[[], float]) -> None:
        self._store, self._poller, self._interval, self._clock = store, poller, poll_interval, clock
        self._started = clock()
        self._probe: asyncio.Task[bool] | None = None

    async def handle(self, request: Request) -> JSONResponse:
        try:
            pending = await self._store.count_pending()
            in_doubt: int | None = await self._store.count_in_doubt()
            database = True
        except Exception:  # any failure to read is "unhealthy", never a crash of the check
            pending, in_doubt, database = None, None, False
        writable = database and await self._writable()
        failure = self._store.write_failure
        last = self._poller.last_sweep_at if self._poller.last_sweep_at is not None else self._started
        since = max(0.0, self._clock() - last)
        healthy = database and writable and since <= 3 * self._interval
        body = {
            "status": "ok" if healthy else "unhealthy",
            "database": database,
            "writable": writable,
            "last_write_error": None
            if failure is None
            else {
                "error": failure.error,
                "at": datetime.fromtimestamp(failure.at, UTC).isoformat(),
            },
            "seconds_since_sweep": round(since, 1),
            "pending_orders": pending,
            "orders_in_doubt": in_doubt,  # past their deadline with no answer from iPay the bot can trust
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def _writable(self) -> bool:
        if self._store.write_failure is None:
            return True
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._store.probe_write(self._clock()))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._probe), HEALTH_PROBE_WAIT)
        return self._store.write_failure is None


def _serve(document: dict[str, Any]) -> Callable[[Request], Awaitable[JSONResponse]]:
    """An endpoint answering a fixed JSON document (the OpenAPI contract)."""

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(document)

    return endpoint


def build_web_app(
    services: Services,
    application: BotApplication | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Every route the settings ask for, on one app."""
    settings = services.settings
    routes = [
        Route("/healthz", HealthCheck(services.store, services.poller, settings.poll_interval_seconds, clock).handle)
    ]
    if settings.daraja is not None:  # POSTed JSON to an unguessable path per order
        path = settings.daraja.callback_path.rstrip("/") + "/{order}/{token}"
        routes.append(Route(path, CallbackEndpoint(services.payments).handle, methods=["POST"]))
        if services.paybill is not None:  # payments made by hand: <callback path>/c2b/<token>/confirmation
            c2b = settings.daraja.callback_path.rstrip("/") + "/c2b/{token}"
            endpoint = ManualPaymentEndpoint(services)
            routes.append(Route(c2b + "/confirmation", endpoint.confirmation, methods=["POST"]))
            routes.append(Route(c2b + "/validation", endpoint.validation, methods=["POST"]))
        reversal = settings.daraja.callback_path.rstrip("/") + "/reversal/{order}/{token}"
        results = RefundResultEndpoint(services)
        routes.append(Route(reversal, results.result, methods=["POST"]))
        routes.append(Route(reversal + "/timeout", results.timeout, methods=["POST"]))
    elif settings.ipay_callback_url:
        routes.append(Route(settings.callback_path, CallbackEndpoint(services.payments).handle, methods=["GET"]))
    if settings.webhook_url and application is not None:
        routes.append(
            Route(WEBHOOK_PATH, TelegramWebhook(application, settings.webhook_secret).handle, methods=["POST"])
        )
    if settings.api_keys:
        refunds_api = None
        if services.refunds is not None:
            refunds_api = RefundsApi(services.refunds, services.payments, enabled=settings.api_refunds)
        api = PaymentsApi(
            services.payments,
            settings.api_keys,
            settings.min_amount,
            settings.max_amount,
            refund_of=refunds_api.view if refunds_api is not None else None,
        )
        routes.extend(api.routes())
        document = openapi_document(settings.min_amount, settings.max_amount)
        routes.append(Route("/openapi.json", _serve(document), methods=["GET"]))
        if refunds_api is not None:
            routes.extend(refunds_api.routes(api.guarded))  # /api/payments/{order_id}/refund
        requests_api = PaymentRequestsApi(services.requests, api.guarded, settings.min_amount, settings.max_amount)
        routes.extend(requests_api.routes())  # /api/payment-requests: same keys and error shape
    if settings.miniapp_base:
        routes.extend(MiniApp(services, clock=clock).routes())  # /app/: the Telegram Mini App
    return Starlette(routes=routes)


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn without its own signal handling: the bot decides how to stop. uvicorn is imported
    here, when HTTP is served: a bot that only polls Telegram does not carry it."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return _Server(config)


class WebServer:
    """uvicorn in the bot's own event loop (no second loop), started and stopped with the bot."""

    def __init__(self, app: Starlette, port: int, host: str = "0.0.0.0") -> None:
        # log_config=None: uvicorn keeps its hands off logging, so its records reach the bot's filtered handler.
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None, lifespan="off")
        self._server = _server(config)
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
