"""The Mini App's routes on the bot's one ASGI app: the page at `/app/`, its script and styles
under `/app/`, its JSON endpoints under `/app/api/`.

The page is a shell with no user data: Telegram hands the initData to the page's script, which
sends it with every call (`Authorization: tma <initData>`). The script then fetches the screen as
server-rendered HTML (`/app/api/view`), in the reader's language and for their role; a customer
gets the staff-only words and a 403. Payments go through the same `PaymentService` path as the
REST API (limits, one prompt per phone, an idempotency key per tap so a double tap sends one
prompt). Every response carries a strict Content-Security-Policy: scripts only from this
origin and Telegram's, no inline script, images only from here or as data URLs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from bot.api.common import ApiError, read_json_body
from bot.domain import Network, Notice, Order, OrderStatus, PaymentRequest, RefundState
from bot.i18n import current, speaking, supported
from bot.miniapp import sentences
from bot.miniapp.auth import InitDataRefused, Role, WebAppUser, from_header, role_of
from bot.orders import sentences as order_sentences
from bot.orders.reconcile import reconcile
from bot.orders.service import IdempotencyConflict, PaymentRefused
from bot.owner import sentences as owner_sentences
from bot.owner.service import CloseView, OwnerService, close_notice
from bot.pay.inputs import InputError, guess_network, parse_amount, parse_phone
from bot.refunds import sentences as refund_sentences
from bot.refunds.service import Person, RefundRefused, RefundService
from bot.reports import sentences as report_sentences
from bot.reports.service import Period, nairobi_today, named_period
from bot.requests.qr import link_png
from bot.services import Services
from bot.store import StoreUnavailable

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LATEST = 20  # the cashier's orders listed under the counter
RATE_WINDOW = 60.0
RATE_LIMIT = 120  # calls per user per minute: a status poll every 2 s is 30
PROMPT_LIMIT = 20  # prompts and links per user per minute
_KEY = re.compile(r"[A-Za-z0-9-]{8,64}")
_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,34}")
# Where a refund may start again from the counter's list: a cashier asks again after a "no";
# an admin also refunds over a cashier's waiting ask (as the chat's /orders buttons allow).
_OPEN_TO_ASK = frozenset({RefundState.DECLINED, RefundState.REFUSED})
_OPEN_TO_ADMINS = _OPEN_TO_ASK | {RefundState.ASKED}

Handler = Callable[[Request, WebAppUser, Role], Awaitable[Response]]


class RateLimit:
    """A sliding window per user, in memory: a runaway script or a leaked initData is slowed
    down here, before it reaches the store."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self._limit, self._window, self._clock = limit, window, clock
        self._calls: dict[int, list[float]] = {}

    def allow(self, user_id: int) -> bool:
        now = self._clock()
        recent = [t for t in self._calls.get(user_id, []) if t > now - self._window]
        if len(self._calls) > 10_000:
            self._calls.clear()
        self._calls[user_id] = recent
        if len(recent) >= self._limit:
            return False
        recent.append(now)
        return True


def content_security_policy(script_url: str) -> str:
    script = urlsplit(script_url)
    telegram = f"{script.scheme}://{script.netloc}" if script.netloc else ""
    return (
        f"default-src 'none'; script-src 'self' {telegram}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors https://web.telegram.org"
    ).replace("  ", " ")


class MiniApp:
    def __init__(self, services: Services, *, clock: Callable[[], float] = time.time) -> None:
        self._services = services
        self._settings = services.settings
        self._clock = clock
        self._jinja: Jinja2Templates | None = None
        self._csp = content_security_policy(self._settings.miniapp_script_url)
        self._calls = RateLimit(RATE_LIMIT, RATE_WINDOW, clock)
        self._prompts = RateLimit(PROMPT_LIMIT, RATE_WINDOW, clock)

    @property
    def _templates(self) -> Jinja2Templates:
        """The pages' templates, loaded with Jinja2 when the first page is served: a bot whose
        Mini App nobody opens does not carry Jinja2 (about 11 MiB)."""
        if self._jinja is None:
            from starlette.templating import Jinja2Templates

            self._jinja = Jinja2Templates(directory=str(HERE / "templates"))
        return self._jinja

    def routes(self) -> list[Route]:
        return [
            Route("/app/", self.page, methods=["GET"]),
            Route("/app/app.js", self._static("app.js", "text/javascript"), methods=["GET"]),
            Route("/app/app.css", self._static("app.css", "text/css"), methods=["GET"]),
            Route("/app/api/view", self._guarded(self.view, Role.STAFF), methods=["GET"]),
            Route("/app/api/network", self._guarded(self.network, Role.STAFF), methods=["GET"]),
            Route("/app/api/payments", self._guarded(self.create, Role.STAFF), methods=["POST"]),
            Route("/app/api/payments", self._guarded(self.latest, Role.STAFF), methods=["GET"]),
            Route("/app/api/payments/{order_id}", self._guarded(self.show, Role.STAFF), methods=["GET"]),
            Route("/app/api/requests", self._guarded(self.request_link, Role.STAFF), methods=["POST"]),
            Route("/app/api/chart", self._guarded(self.chart, Role.ADMIN), methods=["GET"]),
            Route("/app/api/refunds/{order_id}", self._guarded(self.refund, Role.ADMIN), methods=["POST"]),
            Route("/app/api/refunds/{order_id}/ask", self._guarded(self.ask_refund, Role.STAFF), methods=["POST"]),
            Route(
                "/app/api/refunds/{order_id}/approve", self._guarded(self.approve_refund, Role.ADMIN), methods=["POST"]
            ),
            Route(
                "/app/api/refunds/{order_id}/decline", self._guarded(self.decline_refund, Role.ADMIN), methods=["POST"]
            ),
            Route("/app/api/close", self._guarded(self.close_day, Role.ADMIN), methods=["POST"]),
            Route("/app/api/close/check", self._guarded(self.check_day, Role.ADMIN), methods=["POST"]),
        ]

    # -- plumbing -----------------------------------------------------------------------

    def _secure(self, response: Response) -> Response:
        response.headers["Content-Security-Policy"] = self._csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def _static(self, name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return self._secure(FileResponse(HERE / "static" / name, media_type=media_type))

        return endpoint

    async def page(self, request: Request) -> Response:
        """The shell: the scripts and an empty screen the script fills in."""
        context = {"script_url": self._settings.miniapp_script_url}
        return self._secure(self._templates.TemplateResponse(request, "shell.html", context))

    async def _language(self, user: WebAppUser) -> str:
        """Their /language choice once they have one, else the language their Telegram app uses."""
        try:
            return await self._services.languages.of_person(user.id, user.language_code)
        except StoreUnavailable:
            return supported(user.language_code)

    def _guarded(self, handler: Handler, needs: Role) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                user = from_header(
                    request.headers.get("authorization", ""),
                    self._settings.telegram_bot_token,
                    self._clock(),
                    self._settings.miniapp_max_age_seconds,
                )
            except InitDataRefused as refused:
                log.info("mini app call refused: %s", refused.reason)
                with speaking(supported(None)):
                    return self._secure(_problem(403, "forbidden", sentences.not_signed()))
            role = role_of(self._settings, user.id)
            language = await self._language(user)
            with speaking(language):
                if role is Role.CUSTOMER or (needs is Role.ADMIN and role is not Role.ADMIN):
                    return self._secure(self._staff_only(request, language))
                if not self._calls.allow(user.id):
                    return self._secure(_problem(429, "too_many_requests", sentences.too_fast()))
                try:
                    return self._secure(await handler(request, user, role))
                except ApiError as error:
                    return self._secure(error.response())
                except StoreUnavailable:
                    return self._secure(_problem(503, "unavailable", sentences.unavailable()))

        return endpoint

    def _staff_only(self, request: Request, language: str) -> Response:
        context = {"words": sentences.page_words(), "message": sentences.staff_only(), "lang": language}
        return self._templates.TemplateResponse(request, "staff_only.html", context, status_code=403)

    # -- the screen ---------------------------------------------------------------------

    async def view(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """The counter (and, for admins, the back office) as HTML in the reader's language."""
        orders = await self._services.payments.latest_chat_orders(user.id, LATEST)
        context: dict[str, Any] = {
            "words": sentences.page_words(),
            "orders": await self._counter_rows(orders, role),
            "networks": [(network.value, network.label) for network in self._services.payments.networks],
            "min_amount": self._settings.min_amount,
            "max_amount": self._settings.max_amount,
            "admin": role is Role.ADMIN,
            "close_offer": owner_sentences.close_offer(self._services.payments.provider_name),
            "check_label": owner_sentences.check_label(self._services.payments.provider_name),
            "lang": current(),
        }
        if role is Role.ADMIN:
            context.update(await self._back_office())
        return self._templates.TemplateResponse(request, "screen.html", context)

    async def _back_office(self) -> dict[str, Any]:
        now = self._services.reports.now()
        today = nairobi_today(now)
        periods = {
            "today": Period(today, today, today),
            "week": Period(today - timedelta(days=today.weekday()), today, today),
        }
        owner = OwnerService(self._services.store)
        totals = {}
        for name, period in periods.items():
            rows = await self._services.reports.summary(period)
            channels: dict[str, list[int]] = {}
            for row in rows:
                if row.status.money_received:
                    channel = channels.setdefault(row.network.label, [0, 0])
                    channel[0] += row.received
                    channel[1] += row.count
            cashiers = await owner.cashiers(period.start, period.end)
            totals[name] = {
                "received": sum(c[0] for c in channels.values()),
                "channels": sorted(channels.items()),
                "cashiers": [(c.name, c.received, c.payments) for c in cashiers],
            }
        pending = await self._services.store.latest_orders(start=0, end=now + 1, limit=200, chat_id=None)
        open_orders = [order for order in pending if order.status is OrderStatus.PENDING]
        made_today = await self._services.store.latest_orders(
            start=periods["today"].start, end=now + 1, limit=200, chat_id=None
        )
        paid = [order for order in made_today if order.status.money_received][:LATEST]
        refunds = {} if self._services.refunds is None else await self._services.refunds.refunds_of(o.id for o in paid)
        return {
            "totals": totals,
            "close": await self._close_state(periods["today"]),
            "waiting": await self._waiting_refunds(),
            "refunds": self._services.refunds is not None,
            "paid_today": [
                {
                    **_order_json(order),
                    "refund": (sentences.refund_state(refunds[order.id]) or refunds[order.id].state.value)
                    if order.id in refunds
                    else None,
                    "confirm": refund_sentences.confirm_label(order.paid_amount or order.amount),
                }
                for order in paid
            ],
            "in_doubt": [_order_json(order) for order in open_orders if order.in_doubt],
            "pending": [_order_json(order) for order in open_orders if not order.in_doubt],
        }

    async def _close_state(self, today: Period) -> str | None:
        """Who closed today and when, or None while it is open."""
        kept = await self._services.store.day_close(today.first.isoformat())
        return None if kept is None else sentences.closed_line(kept.closed_by, kept.closed_at)

    async def _waiting_refunds(self) -> list[dict[str, Any]]:
        """Cashiers' asks no admin has answered, each with the order's masked phone."""
        if self._services.refunds is None:
            return []
        waiting = []
        for refund in await self._services.refunds.waiting():
            order = await self._services.store.get_order(refund.order_id)
            phone = order.masked_phone if order is not None else ""
            waiting.append(
                {
                    "id": refund.order_id,
                    "line": f"{refund.order_id} · " + sentences.asked_by(refund.asked_by, refund.amount, phone),
                }
            )
        return waiting

    async def check_day(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """The close's optional first step, as /close offers it: today's orders looked up at the
        provider again (money it has and the bot missed is then counted), and what was found."""
        if not self._prompts.allow(user.id):  # every order of the day is looked up
            return _problem(429, "too_many_requests", sentences.too_fast())
        period = named_period("today", self._services.reports.now())
        provider = self._services.payments.provider_name
        result = await reconcile(self._services.store, self._services.payments, period.start, period.end)
        return JSONResponse(
            {"report": report_sentences.reconcile_report(result, report_sentences.period_words(period), provider)}
        )

    async def close_day(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """The back office's "Close the day": the same close as /close's button (the same
        service, figures and report, sent to the admin's chat with the bot through the outbox,
        in the close's own transaction). A day closed already is refused, and says by whom."""
        now = self._services.reports.now()
        today = nairobi_today(now)
        kept = await self._services.store.day_close(today.isoformat())
        if kept is not None:
            return _problem(409, "closed", sentences.closed_already(kept.closed_by, kept.closed_at))
        shop = self._settings.shop_name

        def tell(view: CloseView) -> list[Notice]:
            return [close_notice(view, user.id, user.id, shop)]

        closer = user.full_name or str(user.id)
        view = await OwnerService(self._services.store).close(today, closer, now, tell=tell)
        if not view.just_made:  # another admin or instance closed it meanwhile
            return _problem(409, "closed", sentences.closed_already(view.closed_by, view.closed_at))
        log.info("day %s closed from the mini app by user %s", view.day, user.id)
        self._services.notifier.kick()
        body = {"message": sentences.closed_now(), "state": sentences.closed_line(view.closed_by, view.closed_at)}
        return JSONResponse(body, status_code=201)

    async def chart(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """This week's chart, the same PNG the chat gets, as a data URL."""
        from bot.owner.summary import chart  # matplotlib only when a chart is drawn

        today = nairobi_today(self._services.reports.now())
        period = Period(today - timedelta(days=today.weekday()), today, today)
        drawn = await chart(self._services, period)
        return JSONResponse({"png": "data:image/png;base64," + base64.b64encode(drawn.png).decode()})

    async def refund(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """An admin's refund of a payment, after the screen's confirming second tap: the same
        claimed call to the provider as the chat's (`RefundService.approve`); the outcome is
        told in the admin's chat."""
        if self._services.refunds is None:
            return _problem(503, "unavailable", sentences.unavailable())
        order_id = request.path_params["order_id"].upper()
        if not _ORDER_ID.fullmatch(order_id):
            raise ApiError(404, "not_found", "no such order")
        admin = Person(user.id, user.requested_by, user.id)
        try:
            await self._services.refunds.approve(order_id, admin, answering_ask=False)
        except RefundRefused as refused:
            return _problem(409, refused.code, refund_sentences.refusal(refused.code, refused.data))
        return JSONResponse(
            {"message": refund_sentences.sending(self._services.refunds.provider_name)}, status_code=202
        )

    async def ask_refund(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """A cashier's ask, as their `/refund <order id>` in the chat: any paid order, written
        with a card to every admin; the cashier hears the outcome in their chat with the bot.
        An admin does not ask: their refund button is the confirmed refund."""
        if role is Role.ADMIN:
            raise ApiError(403, "forbidden", "an admin refunds directly, with POST /app/api/refunds/{order_id}")
        refunds, order_id = self._refunds_and_id(request)
        try:
            asked = await refunds.ask(order_id, Person(user.id, user.requested_by, user.id))
        except RefundRefused as refused:
            return _problem(409, refused.code, refund_sentences.refusal(refused.code, refused.data))
        return JSONResponse({"message": refund_sentences.asked_admins(asked.order_id, asked.amount)}, status_code=202)

    async def approve_refund(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """An admin's Approve on a cashier's waiting ask, as the card's button in the chat."""
        refunds, order_id = self._refunds_and_id(request)
        try:
            await refunds.approve(order_id, Person(user.id, user.requested_by, user.id), answering_ask=True)
        except RefundRefused as refused:
            return _problem(409, refused.code, refund_sentences.refusal(refused.code, refused.data))
        return JSONResponse({"message": refund_sentences.sending(refunds.provider_name)}, status_code=202)

    async def decline_refund(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """An admin's Decline on a cashier's waiting ask: nothing moves, the cashier is told."""
        refunds, order_id = self._refunds_and_id(request)
        try:
            await refunds.decline(order_id, Person(user.id, user.requested_by, user.id))
        except RefundRefused as refused:
            return _problem(409, refused.code, refund_sentences.refusal(refused.code, refused.data))
        return JSONResponse({"message": refund_sentences.declined_by_you()})

    def _refunds_and_id(self, request: Request) -> tuple[RefundService, str]:
        if self._services.refunds is None:
            raise ApiError(503, "unavailable", "refunds are not running")
        order_id = request.path_params["order_id"].upper()
        if not _ORDER_ID.fullmatch(order_id):
            raise ApiError(404, "not_found", "no such order")
        return self._services.refunds, order_id

    # -- the counter --------------------------------------------------------------------

    async def network(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """The network a phone number is guessed to be on, as the chat guesses it."""
        try:
            phone = parse_phone(request.query_params.get("phone", ""))
        except InputError:
            return JSONResponse({"network": None})
        return JSONResponse({"network": guess_network(phone).value})

    async def latest(self, request: Request, user: WebAppUser, role: Role) -> Response:
        orders = await self._services.payments.latest_chat_orders(user.id, LATEST)
        return JSONResponse({"orders": await self._counter_rows(orders, role)})

    async def _counter_rows(self, orders: list[Order], role: Role) -> list[dict[str, Any]]:
        """The cashier's orders, each with where its refund stands and whether the reader may
        start one: a cashier asks the admins (as `/refund` in the chat does), an admin refunds
        after a confirming tap (also over a cashier's waiting ask, as in the chat)."""
        refunds = (
            {} if self._services.refunds is None else await self._services.refunds.refunds_of(o.id for o in orders)
        )
        open_states = _OPEN_TO_ADMINS if role is Role.ADMIN else _OPEN_TO_ASK
        rows = []
        for order in orders:
            refund = refunds.get(order.id)
            startable = self._services.refunds is not None and order.status.money_received and bool(order.receipt_code)
            rows.append(
                {
                    **_order_json(order),
                    "refund": sentences.refund_state(refund) if refund is not None else "",
                    "can_refund": startable and (refund is None or refund.state in open_states),
                    "confirm": refund_sentences.confirm_label(order.paid_amount or order.amount),
                }
            )
        return rows

    async def show(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """One of this person's orders, for the screen's poll every 2 seconds."""
        order_id = request.path_params["order_id"]
        order = None
        if _ORDER_ID.fullmatch(order_id):
            order = await self._services.payments.chat_order(order_id.upper(), user.id)
        if order is None or order.user_id != user.id:
            raise ApiError(404, "not_found", "no such order")
        return JSONResponse(_order_json(order))

    async def create(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """ "Send prompt": the order written, then the prompt sent, as from the chat. The script
        sends one idempotency key per filled-in form, so a second tap answers the first order."""
        if not self._prompts.allow(user.id):
            return _problem(429, "too_many_requests", sentences.too_fast())
        body = await read_json_body(request)
        key = request.headers.get("idempotency-key", "")
        if not _KEY.fullmatch(key):
            raise ApiError(400, "invalid_idempotency_key", "send an Idempotency-Key of 8 to 64 letters, digits or -")
        try:
            phone = parse_phone(str(body.get("phone", "")))
            amount = parse_amount(str(body.get("amount", "")), self._settings.min_amount, self._settings.max_amount)
        except InputError:
            return _problem(422, "invalid_input", sentences.bad_input())
        network = Network(body["network"]) if body.get("network") in set(Network) else guess_network(phone)
        note = str(body.get("note") or "").strip()[:64] or None
        fields = [phone, network.value, amount, note]
        idempotency = (
            hashlib.sha256(f"miniapp:{user.id}:{key}".encode()).hexdigest(),
            hashlib.sha256(json.dumps(fields).encode()).hexdigest(),
        )
        if (replay := await self._replay(idempotency)) is not None:
            return replay
        asked = PaymentRequest(user.id, user.id, phone, network, amount, requested_by=user.requested_by, reference=note)
        try:
            order = await self._services.payments.create_order(asked, idempotency=idempotency)
        except (PaymentRefused, IdempotencyConflict) as refusal:
            replay = await self._replay(idempotency)  # the other tap won the race: its order answers
            if replay is not None:
                return replay
            if isinstance(refusal, PaymentRefused):
                words = order_sentences.refusal(refusal.code, refusal.data, user.id, user.id)
                return _problem(409, refusal.code, words)
            return _problem(409, "conflict", sentences.too_fast())
        self._services.payments.send_prompt_soon(order)
        return JSONResponse(_order_json(order), status_code=201)

    async def _replay(self, idempotency: tuple[str, str]) -> Response | None:
        found = await self._services.payments.idempotent_order(idempotency[0])
        if found is None:
            return None
        request_hash, order = found
        if request_hash != idempotency[1]:
            raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
        return JSONResponse(_order_json(order), status_code=201, headers={"Idempotent-Replayed": "true"})

    async def request_link(self, request: Request, user: WebAppUser, role: Role) -> Response:
        """A payment request for the amount typed, with its link and QR code."""
        if not self._prompts.allow(user.id):
            return _problem(429, "too_many_requests", sentences.too_fast())
        body = await read_json_body(request)
        try:
            amount = parse_amount(str(body.get("amount", "")), self._settings.min_amount, self._settings.max_amount)
        except InputError:
            return _problem(422, "invalid_input", sentences.bad_input())
        note = str(body.get("note") or "").strip()[:64]
        made = await self._services.requests.create(
            amount, note, source="chat", created_by=user.id, created_by_name=user.first_name, chat_id=user.id
        )
        link = self._services.requests.link(made)
        png = base64.b64encode(link_png(link)).decode()
        return JSONResponse({"id": made.id, "link": link, "qr": "data:image/png;base64," + png}, status_code=201)


def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _order_json(order: Order) -> dict[str, Any]:
    """What the screen shows of an order: never the full phone number."""
    return {
        "id": order.id,
        "status": order.status.value,
        "status_text": order_sentences.order_state_words(order),
        "final": order.status is not OrderStatus.PENDING,
        "paid": order.status.money_received,
        "amount": order.amount,
        "phone": order.masked_phone,
        "network": order.network.label,
        "receipt_code": order.receipt_code,
        "payer_name": order.payer_name,
        "reason": order_sentences.reason(order.last_error) if not order.status.money_received else "",
    }
