"""The REST API for a shop's website or till: request a payment, then read its status.

It creates orders through the same
`PaymentService` as the chat (same limits, same merchant announcements, same poller), and a key
reads only the orders it created.

The contract is strict JSON, and the OpenAPI document (`bot/api/openapi.json`) describes exactly it: `amount` is a JSON
number with no fraction, `phone` a string of digits in one of the usual Kenyan forms, `network`
one of two exact words; optional fields may be left out or be `null`. The forgiving parsing of
what people type (`KES 1,000`, `0712 345 678`) belongs to the chat, not to programs. Patterns
are written once, for JSON Schema (ECMA-262, where `$` is the end of the text), and matched
here with `fullmatch`, which means the same (Python's `$` alone would let `"INV42\n"` pass).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.api.common import (
    IDEMPOTENCY_KEY_PATTERN,
    RETRY_AFTER_UNAVAILABLE,
    ApiError,
    Caller,
    Handler,
    api_key_id,
    read_json_body,
    whole_number,
)
from bot.domain import Network, Order, OrderStatus, PaymentRequest
from bot.i18n import ENGLISH, speaking
from bot.orders import sentences as order_sentences
from bot.orders.service import IdempotencyConflict, PaymentRefused, PaymentService
from bot.pay.inputs import guess_network, parse_phone
from bot.reports.export import iso_nairobi
from bot.store import StoreUnavailable

PHONE_PATTERN = r"^(?:\+?254|0)?[17][0-9]{8}$"
EMAIL_PATTERN = r"^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$"
REFERENCE_PATTERN = r"^[A-Za-z0-9_ .:/#-]{1,64}$"
_PHONE, _EMAIL = re.compile(PHONE_PATTERN), re.compile(EMAIL_PATTERN)
_REFERENCE, _IDEMPOTENCY_KEY = re.compile(REFERENCE_PATTERN), re.compile(IDEMPOTENCY_KEY_PATTERN)
_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,34}")
_FIELDS = ("phone", "amount", "network", "email", "reference")
_REQUIRED = ("phone", "amount")
_NETWORKS = tuple(network.value for network in Network)
MAX_WAIT_SECONDS = 30  # under the usual 60 s proxy and client timeouts
WAIT_RECHECK_SECONDS = 1.0  # how soon a waiting question sees an outcome another instance recorded


@dataclass(frozen=True)
class _Payment:
    phone: str
    network: Network
    amount: int
    email: str | None
    reference: str | None


def _idempotency(caller: Caller, key: str, payment: _Payment) -> tuple[str, str]:
    """(key hash, request hash): the key is scoped to the API key that sent it, and a replay must
    carry the same request."""
    request = [payment.phone, payment.network.value, payment.amount, payment.email, payment.reference]
    request_hash = hashlib.sha256(json.dumps(request).encode()).hexdigest()
    return hashlib.sha256(f"{caller.key_id}:{key}".encode()).hexdigest(), request_hash


class PaymentsApi:
    def __init__(
        self,
        payments: PaymentService,
        api_keys: tuple[str, ...],
        min_amount: int,
        max_amount: int,
        *,
        refund_of: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None,
    ) -> None:
        self._payments = payments
        self._refund_of = refund_of  # a payment's refund, shown with it (`bot.refunds.api`)
        self._keys = tuple((key.encode(), Caller(n, api_key_id(key))) for n, key in enumerate(api_keys, 1))
        self._min, self._max = min_amount, max_amount

    def routes(self) -> list[Route]:
        return [
            Route("/api/payments", self._guarded(self.create), methods=["POST"]),
            Route("/api/payments/{order_id}", self._guarded(self.show), methods=["GET"]),
        ]

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that checks the API key and answers errors in the API's shape (payment
        requests use it too)."""
        return self._guarded(handler)

    def _guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, self._caller(request))
            except ApiError as error:
                return error.response()
            except StoreUnavailable:  # nothing was written: safe to retry (with the same Idempotency-Key)
                return ApiError(
                    503,
                    "unavailable",
                    "the payment store cannot record payments right now; try again shortly",
                    {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)},
                ).response()

        return endpoint

    def _caller(self, request: Request) -> Caller:
        """Which API key signed this request; 401 otherwise."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            for key, caller in self._keys:
                if hmac.compare_digest(token.strip().encode(), key):
                    return caller
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>", {"WWW-Authenticate": "Bearer"})

    async def create(self, request: Request, caller: Caller) -> JSONResponse:
        body, key = await self._json_body_and_key(request)
        payment = self._validate(body)
        idempotency = None if key is None else _idempotency(caller, key, payment)
        if idempotency is not None and (replay := await self._replay(idempotency)) is not None:
            return replay
        asked = PaymentRequest(
            0,
            0,
            payment.phone,
            payment.network,
            payment.amount,
            requested_by=f"API key #{caller.number}",
            source="api",
            reference=payment.reference,
            email=payment.email,
        )
        try:
            order = await self._payments.create_order(asked, idempotency=idempotency, api_key_id=caller.key_id)
        except (PaymentRefused, IdempotencyConflict) as refusal:
            # A concurrent request with the same key may have won the race: its order is the
            # answer to this one too, not "a prompt is open on this phone".
            replay = None if idempotency is None else await self._replay(idempotency)
            if replay is not None:
                return replay
            if isinstance(refusal, PaymentRefused):
                raise self._refusal(refusal) from None
            raise ApiError(409, "conflict", "please retry the request") from None
        self._payments.send_prompt_soon(order)
        return JSONResponse(_created(order), status_code=201)

    @staticmethod
    async def _json_body_and_key(request: Request) -> tuple[dict[str, Any], str | None]:
        """The JSON object sent, and its Idempotency-Key if any; anything else is refused."""
        body = await read_json_body(request)
        key = request.headers.get("idempotency-key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters")
        return body, key

    async def _replay(self, idempotency: tuple[str, str]) -> JSONResponse | None:
        found = await self._payments.idempotent_order(idempotency[0])
        if found is None:
            return None
        request_hash, order = found
        if request_hash != idempotency[1]:
            raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
        return JSONResponse(_created(order), status_code=201, headers={"Idempotent-Replayed": "true"})

    async def show(self, request: Request, caller: Caller) -> JSONResponse:
        """Only the key that created an order may read it; chat orders and other keys' are "not found".

        `?wait=N` (seconds, up to `MAX_WAIT_SECONDS`): while the payment is pending, answer as soon
        as it is not, or after N seconds with it still pending. A till then asks once and hears
        "paid" the moment it is recorded, instead of asking again and again."""
        order_id = request.path_params["order_id"]
        wait = _wait_seconds(request.query_params.get("wait"))
        order = None
        if _ORDER_ID.fullmatch(order_id):
            order = await self._payments.api_order(order_id.upper(), caller.key_id)
        if order is None:
            raise ApiError(404, "not_found", "no such payment")
        deadline = time.monotonic() + wait
        while order.status is OrderStatus.PENDING and (left := deadline - time.monotonic()) > 0:
            # Woken at once by an outcome this process records; one another instance records is
            # read at the next recheck.
            still_serving = await self._payments.changes.wait(order.id, min(left, WAIT_RECHECK_SECONDS))
            order = await self._payments.api_order(order.id, caller.key_id) or order
            if not still_serving:
                break
        details = _details(order)
        if self._refund_of is not None:
            # Only money received can be refunded: a pending order, asked about every few moments
            # by a till, costs one read.
            details["refund"] = await self._refund_of(order.id) if order.status.money_received else None
        return JSONResponse(details)

    def _validate(self, body: dict[str, Any]) -> _Payment:
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            raise ApiError(422, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
        missing = [name for name in _REQUIRED if name not in body]
        if missing:
            raise ApiError(422, "missing_field", f"{' and '.join(missing)} required")
        phone = body["phone"]
        if not isinstance(phone, str) or not _PHONE.fullmatch(phone):
            raise ApiError(
                422, "invalid_phone", "phone must be a string like 0712345678, 254712345678 or +254712345678"
            )
        phone = parse_phone(phone)
        amount = self._amount(body["amount"])
        network = body.get("network")
        if network is not None and (not isinstance(network, str) or network not in _NETWORKS):
            raise ApiError(422, "invalid_network", 'network must be "mpesa" or "airtel" (or left out)')
        email, reference = body.get("email"), body.get("reference")
        if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email)):
            raise ApiError(422, "invalid_email", "email must be a string holding an email address")
        if reference is not None and (not isinstance(reference, str) or not _REFERENCE.fullmatch(reference)):
            raise ApiError(422, "invalid_reference", "reference must be 1 to 64 letters, digits, spaces or . : / # - _")
        return _Payment(phone, Network(network) if network else guess_network(phone), amount, email, reference)

    def _amount(self, value: Any) -> int:
        amount = whole_number(value, self._min, self._max)
        if amount is None:
            raise ApiError(
                422, "invalid_amount", f"amount must be a whole number of shillings from {self._min} to {self._max}"
            )
        return amount

    def _refusal(self, refusal: PaymentRefused) -> ApiError:
        wait = None if refusal.retry_at is None else max(1, math.ceil(refusal.retry_at - self._payments.now()))
        retry = {} if wait is None else {"Retry-After": str(wait)}
        status = {"phone_busy": 409, "network_not_taken": 422}.get(refusal.code, 429)
        with speaking(ENGLISH):  # the API's messages are English; its codes are for machines
            text = order_sentences.refusal(refusal.code, refusal.data)
        return ApiError(status, refusal.code, text, retry)


def _wait_seconds(raw: str | None) -> float:
    """`?wait=` as seconds: absent is 0; anything but a number from 0 to `MAX_WAIT_SECONDS` is a 422."""
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # NaN fails both
        raise ApiError(422, "invalid_wait", f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}")
    return seconds


def _created(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "status": order.status.value,
        "network": order.network.value,
        "amount": order.amount,
        "reference": order.reference,
    }


def _reason(code: str | None) -> str | None:
    """The stored reason code in English words: the API speaks English whoever calls it."""
    if code is None:
        return None
    with speaking(ENGLISH):
        return order_sentences.reason(code)


def _details(order: Order) -> dict[str, Any]:
    return {
        **_created(order),
        "paid_amount": order.paid_amount,
        "receipt_code": order.receipt_code,
        "paid_at": iso_nairobi(order.paid_at) or None,
        "created_at": iso_nairobi(order.created_at),
        "reason": _reason(order.last_error) if not order.status.money_received else None,
    }
