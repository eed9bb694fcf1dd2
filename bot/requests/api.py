"""REST API for payment requests: a link and a QR code for a fixed amount that anyone
may pay in Telegram, made by a website or a till.

Same keys, key scoping, error shape and strict JSON as `/api/payments` (bot/orders/api.py): a key reads
only the requests it made; `amount` and `expires_in` are JSON numbers without a fraction, `note`
a string; optional fields may be left out or be `null`, anything else is refused. The OpenAPI
document describes exactly this (`add_request_paths`), and the contract tests generate requests
from it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.api.common import API_BODY_LIMIT, ApiError, Caller, Guard, read_json_body, whole_number
from bot.reports.service import iso_nairobi
from bot.requests.qr import link_png
from bot.requests.service import NOTE_LIMIT, RequestService, RequestState, RequestView

NOTE_PATTERN = r"^[^\u0000-\u001f\u007f]{1,100}$"  # one line of text, no control characters
MIN_EXPIRES_IN, MAX_EXPIRES_IN = 60, 30 * 86_400
_NOTE = re.compile(NOTE_PATTERN)
_REQUEST_ID = re.compile(r"R[A-Z0-9]{10}")
_FIELDS = ("amount", "note", "expires_in")
_STATES = [state.value for state in RequestState]


class PaymentRequestsApi:
    def __init__(self, requests: RequestService, guard: Guard, min_amount: int, max_amount: int) -> None:
        self._requests = requests
        self._guard = guard
        self._min, self._max = min_amount, max_amount

    def routes(self) -> list[Route]:
        return [
            Route("/api/payment-requests", self._guard(self.create), methods=["POST"]),
            Route("/api/payment-requests/{request_id}", self._guard(self.show), methods=["GET"]),
            Route("/api/payment-requests/{request_id}/qr.png", self._guard(self.qr), methods=["GET"]),
        ]

    async def create(self, request: Request, caller: Caller) -> Response:
        body = await read_json_body(request)
        amount, note, expires_in = self._validate(body)
        made = await self._requests.create(
            amount,
            note,
            source="api",
            created_by=0,
            created_by_name=f"API key #{caller.number}",
            chat_id=0,
            expires_in=expires_in,
            api_key_id=caller.key_id,
        )
        return JSONResponse(
            {
                "request_id": made.id,
                "link": self._requests.link(made),
                "qr_url": _qr_url(request, made.id),
                "expires_at": iso_nairobi(made.expires_at),
            },
            status_code=201,
        )

    async def _view(self, request: Request, caller: Caller) -> RequestView:
        request_id = request.path_params["request_id"]
        view = None
        if _REQUEST_ID.fullmatch(request_id):
            view = await self._requests.api_request(request_id, caller.key_id)
        if view is None:
            raise ApiError(404, "not_found", "no such payment request")
        return view

    async def show(self, request: Request, caller: Caller) -> Response:
        view = await self._view(request, caller)
        made, order = view.request, view.order
        state = made.state
        if state is RequestState.OPEN and not view.being_paid and made.expires_at <= self._requests.now():
            state = RequestState.EXPIRED
        paid = order is not None and order.status.money_received
        return JSONResponse(
            {
                "request_id": made.id,
                "state": state.value,
                "amount": made.amount,
                "note": made.note or None,
                "link": self._requests.link(made),
                "qr_url": _qr_url(request, made.id),
                "created_at": iso_nairobi(made.created_at),
                "expires_at": iso_nairobi(made.expires_at),
                "order_id": order.id if order is not None else None,
                "order_status": order.status.value if order is not None else None,
                "receipt_code": order.receipt_code if paid and order is not None else None,
                "paid_at": (iso_nairobi(order.paid_at) or None) if paid and order is not None else None,
                "paid_amount": made.paid_amount,
                "missing_amount": made.missing,
                "excess_amount": made.excess,
            }
        )

    async def qr(self, request: Request, caller: Caller) -> Response:
        view = await self._view(request, caller)
        png = await asyncio.to_thread(link_png, self._requests.link(view.request))  # off the event loop
        return Response(png, media_type="image/png")

    def _validate(self, body: dict[str, Any]) -> tuple[int, str, float | None]:
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            raise ApiError(422, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
        if "amount" not in body:
            raise ApiError(422, "missing_field", "amount required")
        amount = whole_number(body["amount"], self._min, self._max)
        if amount is None:
            raise ApiError(
                422, "invalid_amount", f"amount must be a whole number of shillings from {self._min} to {self._max}"
            )
        note = body.get("note")
        if note is not None and (not isinstance(note, str) or not _NOTE.fullmatch(note)):
            raise ApiError(422, "invalid_note", f"note must be 1 to {NOTE_LIMIT} characters on one line (or left out)")
        expires_in = body.get("expires_in")
        seconds = None if expires_in is None else whole_number(expires_in, MIN_EXPIRES_IN, MAX_EXPIRES_IN)
        if expires_in is not None and seconds is None:
            raise ApiError(
                422, "invalid_expires_in", f"expires_in must be whole seconds from {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}"
            )
        return amount, note or "", None if seconds is None else float(seconds)


def _qr_url(request: Request, request_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/payment-requests/{request_id}/qr.png"


def add_request_paths(document: dict[str, Any], min_amount: int, max_amount: int) -> None:
    """The payment requests' part of the OpenAPI document (`bot/api/openapi.py`)."""
    schemas, paths = document["components"]["schemas"], document["paths"]
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    optional = "May be left out or null."
    schemas["PaymentRequestNew"] = {
        "type": "object",
        "required": ["amount"],
        "additionalProperties": False,
        "properties": {
            "amount": {
                "type": "integer",
                "minimum": min_amount,
                "maximum": max_amount,
                "description": "Whole shillings the payer pays (cannot be changed by the payer).",
            },
            "note": {
                "type": ["string", "null"],
                "pattern": NOTE_PATTERN,
                "minLength": 1,
                "maxLength": NOTE_LIMIT,
                "description": f"What it is for, shown to the payer: one line of text. {optional}",
            },
            "expires_in": {
                "type": ["integer", "null"],
                "minimum": MIN_EXPIRES_IN,
                "maximum": MAX_EXPIRES_IN,
                "description": f"Seconds until it expires; REQUEST_TTL_HOURS when not given. {optional}",
            },
        },
    }
    schemas["PaymentRequestCreated"] = {
        "type": "object",
        "required": ["request_id", "link", "qr_url", "expires_at"],
        "properties": {
            "request_id": {"type": "string", "pattern": "^R[A-Z0-9]{10}$"},
            "link": {"type": "string", "description": "https://t.me/<bot>?start=<token>: opens the bot at the request"},
            "qr_url": {"type": "string", "description": "The link as a QR code PNG (same API key)"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    }
    schemas["PaymentRequestStatus"] = {
        "type": "object",
        "required": [
            "request_id",
            "state",
            "amount",
            "note",
            "link",
            "qr_url",
            "created_at",
            "expires_at",
            "order_id",
            "order_status",
            "receipt_code",
            "paid_at",
            "paid_amount",
            "missing_amount",
            "excess_amount",
        ],
        "properties": {
            "request_id": {"type": "string"},
            "state": {
                "type": "string",
                "enum": _STATES,
                "description": "part_paid: money came, less than `amount` (see `missing_amount`); paid: "
                "the money on it reached `amount`",
            },
            "amount": {"type": "integer"},
            "paid_amount": {
                "type": "integer",
                "description": "Shillings received on it, over every order that paid it",
            },
            "missing_amount": {"type": "integer", "description": "Shillings still to pay on a part-paid request"},
            "excess_amount": {"type": "integer", "description": "Shillings paid over `amount`"},
            "note": {"type": ["string", "null"]},
            "link": {"type": "string"},
            "qr_url": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": "string", "format": "date-time"},
            "order_id": {"type": ["string", "null"], "description": "The order that pays (or is paying) it"},
            "order_status": {"type": ["string", "null"]},
            "receipt_code": {"type": ["string", "null"]},
            "paid_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    path_id = [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    reads = {
        "401": {"description": "Missing or wrong API key", **error},
        "404": {"description": "No such payment request (or not created with this key)", **error},
        "503": {"description": "The store cannot answer right now; retry after Retry-After seconds", **error},
    }
    paths["/api/payment-requests"] = {
        "post": {
            "summary": "Make a payment request: a link and a QR code anyone may pay in Telegram, once",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentRequestNew"}}},
            },
            "responses": {
                "201": {
                    "description": "The request",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentRequestCreated"}}},
                },
                "400": {"description": "The body is not a JSON object", **error},
                "401": reads["401"],
                "413": {"description": f"The body is larger than {API_BODY_LIMIT} bytes", **error},
                "415": {"description": "The Content-Type is not application/json", **error},
                "422": {"description": "A field is missing, unknown or invalid", **error},
                "503": {"description": "Requests cannot be recorded right now (nothing was written)", **error},
            },
        }
    }
    paths["/api/payment-requests/{request_id}"] = {
        "get": {
            "summary": "A payment request's state and the order that paid it",
            "parameters": path_id,
            "responses": {
                "200": {
                    "description": "The request",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentRequestStatus"}}},
                },
                **reads,
            },
        }
    }
    paths["/api/payment-requests/{request_id}/qr.png"] = {
        "get": {
            "summary": "The request's link as a QR code PNG",
            "parameters": path_id,
            "responses": {"200": {"description": "A PNG image", "content": {"image/png": {}}}, **reads},
        }
    }
