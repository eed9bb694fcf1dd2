"""REST API for payment requests: a link and a QR code for a fixed amount that anyone
may pay in Telegram, made by a website or a till.

Same keys, key scoping, error shape and strict JSON as `/api/payments` (bot/orders/api.py): a key reads
only the requests it made; `amount` and `expires_in` are JSON numbers without a fraction, `note`
a string; optional fields may be left out or be `null`, anything else is refused. The OpenAPI
document (`bot/api/openapi.json`) describes exactly this, and the contract tests generate requests
from it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.api.common import ApiError, Caller, Guard, read_json_body, whole_number
from bot.reports.export import iso_nairobi
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
