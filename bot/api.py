"""The REST API for a shop's website or till: request a payment, then read its status.

The original tutorial's `/send_stk` and `/check`, grown up. It validates with the chat's own
functions (`bot.inputs`), creates orders through the same `PaymentService` (same limits,
same merchant announcements, same poller), and never sees another chat's orders.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import messages
from bot.domain import Order, PaymentRequest
from bot.i18n import ENGLISH, speaking
from bot.inputs import (
    InputError,
    InputProblem,
    parse_amount,
    parse_network,
    parse_phone,
)
from bot.payments import IdempotencyConflict, PaymentRefused, PaymentService
from bot.reports import iso_nairobi

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}$")
_REFERENCE = re.compile(r"^[\w .:/#-]{1,64}$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9]{1,34}$")
_FIELDS = {"phone", "amount", "network", "email", "reference"}
_PROBLEM_CODES = {
    InputProblem.PHONE_FORMAT: ("invalid_phone", "phone must be a Kenyan mobile number, e.g. 0712345678 or 254712345678"),
    InputProblem.NETWORK_UNKNOWN: ("invalid_network", "network must be mpesa or airtel"),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message}}, self.status, headers=self.headers)


def _field_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ApiError(422, f"invalid_{name}", f"{name} must be a string")
    return str(value)


class PaymentsApi:
    def __init__(self, payments: PaymentService, api_keys: tuple[str, ...], min_amount: int, max_amount: int) -> None:
        self._payments = payments
        self._keys = api_keys
        self._min, self._max = min_amount, max_amount

    def routes(self) -> list[Route]:
        return [
            Route("/api/payments", self._guarded(self.create), methods=["POST"]),
            Route("/api/payments/{order_id}", self._guarded(self.show), methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

    def _guarded(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return await handler(request, self._caller(request))
            except ApiError as error:
                return error.response()

        return endpoint

    def _caller(self, request: Request) -> int:
        """Which API key (by position) signed this request; 401 otherwise."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            for index, key in enumerate(self._keys):
                if hmac.compare_digest(token.strip().encode(), key.encode()):
                    return index
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>", {"WWW-Authenticate": "Bearer"})

    async def create(self, request: Request, caller: int) -> JSONResponse:
        body = await self._json_object(request)
        phone, network, amount, email, reference = self._validate(body)
        key = request.headers.get("idempotency-key")
        idempotency = None
        if key is not None:
            if not 1 <= len(key) <= 255:
                raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters")
            request_hash = hashlib.sha256(json.dumps([phone, network.value, amount, email, reference]).encode()).hexdigest()
            idempotency = (hashlib.sha256(f"{caller}:{key}".encode()).hexdigest(), request_hash)
            replay = await self._replay(idempotency)
            if replay is not None:
                return replay
        try:
            request = PaymentRequest(
                0, 0, phone, network, amount, requested_by=f"API key #{caller + 1}", source="api",
                reference=reference, email=email,
            )
            order = await self._payments.create_order(request, idempotency=idempotency)
        except PaymentRefused as refusal:
            raise self._refusal(refusal) from None
        except IdempotencyConflict:
            replay = await self._replay(idempotency)  # type: ignore[arg-type]
            if replay is None:
                raise ApiError(409, "conflict", "please retry the request") from None
            return replay
        self._payments.send_prompt_soon(order)
        return JSONResponse(_created(order), status_code=201)

    async def _replay(self, idempotency: tuple[str, str]) -> JSONResponse | None:
        found = await self._payments.idempotent_order(idempotency[0])
        if found is None:
            return None
        request_hash, order = found
        if request_hash != idempotency[1]:
            raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
        return JSONResponse(_created(order), status_code=201, headers={"Idempotent-Replayed": "true"})

    async def show(self, request: Request, caller: int) -> JSONResponse:
        order_id = request.path_params["order_id"]
        order = await self._payments.order(order_id.upper()) if _ORDER_ID.match(order_id) else None
        if order is None or order.source != "api":  # chat orders are not the API's to read
            raise ApiError(404, "not_found", "no such payment")
        return JSONResponse(_details(order))

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(openapi_document(self._min, self._max))

    async def _json_object(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object")
        return body

    def _validate(self, body: dict[str, Any]) -> tuple[str, Any, int, str | None, str | None]:
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise ApiError(422, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
        phone_text, amount_text = _field_text(body, "phone"), _field_text(body, "amount")
        if phone_text is None or amount_text is None:
            raise ApiError(422, "missing_field", "phone and amount are required")
        try:
            phone = parse_phone(phone_text)
            network = parse_network(_field_text(body, "network"), phone)
            amount = parse_amount(amount_text, self._min, self._max)
        except InputError as exc:
            code, message = _PROBLEM_CODES.get(
                exc.problem, ("invalid_amount", f"amount must be whole shillings from {self._min} to {self._max}")
            )
            raise ApiError(422, code, message) from None
        email, reference = _field_text(body, "email"), _field_text(body, "reference")
        if email is not None and not _EMAIL.match(email):
            raise ApiError(422, "invalid_email", "email must be an email address")
        if reference is not None and not _REFERENCE.match(reference):
            raise ApiError(422, "invalid_reference", "reference must be 1 to 64 letters, digits, spaces or . : / # - _")
        return phone, network, amount, email, reference

    def _refusal(self, refusal: PaymentRefused) -> ApiError:
        wait = None if refusal.retry_at is None else max(1, math.ceil(refusal.retry_at - self._payments.now()))
        retry = {} if wait is None else {"Retry-After": str(wait)}
        status = 409 if refusal.code == "phone_busy" else 429
        with speaking(ENGLISH):  # the API's messages are English; its codes are for machines
            text = messages.refusal(refusal.code, refusal.data)
        return ApiError(status, refusal.code, text, retry)


def _created(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.id, "status": order.status.value, "network": order.network.value, "amount": order.amount,
        "reference": order.reference,
    }


def _reason(code: str | None) -> str | None:
    """The stored reason code in English words, as the API has always said it."""
    if code is None:
        return None
    with speaking(ENGLISH):
        return messages.reason(code)


def _details(order: Order) -> dict[str, Any]:
    return {
        **_created(order),
        "paid_amount": order.paid_amount,
        "receipt_code": order.receipt_code,
        "paid_at": iso_nairobi(order.paid_at) or None,
        "created_at": iso_nairobi(order.created_at),
        "reason": _reason(order.last_error) if not order.status.money_received else None,
    }


def openapi_document(min_amount: int, max_amount: int) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    errors = {
        str(code): {"description": text, "content": {"application/json": {"schema": error}}}
        for code, text in (
            (400, "Malformed body or header"), (401, "Missing or wrong API key"), (404, "No such payment"),
            (409, "A prompt is already open on this phone, or the Idempotency-Key was used for another request"),
            (422, "A field is invalid"), (429, "Too many prompts to this phone; see Retry-After"),
        )
    }
    statuses = ["pending", "paid", "underpaid", "overpaid", "cancelled", "failed", "expired", "withdrawn"]
    created = {
        "type": "object",
        "required": ["order_id", "status", "network", "amount"],
        "properties": {
            "order_id": {"type": "string", "pattern": "^[A-Z0-9]{12}$"},
            "status": {"type": "string", "enum": statuses},
            "network": {"type": "string", "enum": ["mpesa", "airtel"]},
            "amount": {"type": "integer"},
            "reference": {"type": ["string", "null"]},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "pesabot payments API", "version": "1.0.0",
                 "description": "Request an M-Pesa or Airtel Money payment prompt and read its status."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "PaymentRequest": {
                    "type": "object",
                    "required": ["phone", "amount"],
                    "additionalProperties": False,
                    "properties": {
                        "phone": {"type": "string", "examples": ["0712345678", "+254712345678"]},
                        "amount": {"type": "integer", "minimum": min_amount, "maximum": max_amount},
                        "network": {"type": "string", "enum": ["mpesa", "airtel"]},
                        "email": {"type": "string", "format": "email"},
                        "reference": {"type": "string", "maxLength": 64},
                    },
                },
                "PaymentCreated": created,
                "Payment": {
                    "allOf": [created],
                    "properties": {
                        "paid_amount": {"type": ["integer", "null"]},
                        "receipt_code": {"type": ["string", "null"]},
                        "paid_at": {"type": ["string", "null"], "format": "date-time"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "reason": {"type": ["string", "null"]},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}},
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/payments": {
                "post": {
                    "summary": "Send a payment prompt to a phone",
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                    "schema": {"type": "string", "maxLength": 255}}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/PaymentRequest"}}}},
                    "responses": {
                        "201": {"description": "Order created and prompt on its way (or the same order, replayed)",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentCreated"}}}},
                        **{k: v for k, v in errors.items() if k != "404"},
                    },
                }
            },
            "/api/payments/{order_id}": {
                "get": {
                    "summary": "A payment's status, amounts and receipt",
                    "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "The payment",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Payment"}}}},
                        **{k: v for k, v in errors.items() if k in ("401", "404")},
                    },
                }
            },
        },
    }
