"""The REST API's refunds: `POST /api/payments/{order_id}/refund`, and the refund in `GET`.

An API key may refund the payments it created, when the shop allows it (API_REFUNDS=1): there
is no admin to approve a program's refund, so the setting is the approval. An Idempotency-Key
is required (iPay offers none, and a refund repeated by a retrying client would pay twice):
the same key answers with the same refund, marked `Idempotent-Replayed`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.api.common import IDEMPOTENCY_KEY_PATTERN, ApiError, Caller, Guard
from bot.domain import Refund
from bot.i18n import ENGLISH, speaking
from bot.orders.service import PaymentService
from bot.refunds import sentences
from bot.refunds.service import RefundRefused, RefundService
from bot.reports.export import iso_nairobi

_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,34}")
STATES = ["asked", "declined", "sending", "done", "refused", "unknown"]


def refund_body(refund: Refund | None) -> dict[str, Any] | None:
    """A refund as the API shows it (None: the payment has none)."""
    if refund is None:
        return None
    return {
        "state": refund.state.value,
        "amount": refund.amount,
        "asked_at": iso_nairobi(refund.asked_at),
        "done_at": iso_nairobi(refund.done_at) or None,
        "reason": refund.reason,
    }


class RefundsApi:
    def __init__(self, refunds: RefundService, payments: PaymentService, *, enabled: bool) -> None:
        self._refunds = refunds
        self._payments = payments
        self._enabled = enabled

    def routes(self, guarded: Guard) -> list[Route]:
        return [Route("/api/payments/{order_id}/refund", guarded(self.refund), methods=["POST"])]

    async def view(self, order_id: str) -> dict[str, Any] | None:
        """The refund of an order the caller may already read (`GET /api/payments/{order_id}`)."""
        return refund_body(await self._refunds.refund_of(order_id))

    async def refund(self, request: Request, caller: Caller) -> JSONResponse:
        if not self._enabled:
            raise ApiError(
                403, "refunds_disabled", "refunds through the API are off; the shop turns them on with API_REFUNDS=1"
            )
        key = request.headers.get("idempotency-key")
        if key is None or not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ApiError(
                400, "idempotency_key_required", "send an Idempotency-Key of 1 to 255 visible ASCII characters"
            )
        order_id = request.path_params["order_id"]
        order = (
            await self._payments.api_order(order_id.upper(), caller.key_id) if _ORDER_ID.fullmatch(order_id) else None
        )
        if order is None:
            raise ApiError(404, "not_found", "no such payment")
        key_hash = hashlib.sha256(f"{caller.key_id}:refund:{key}".encode()).hexdigest()
        try:
            refund, replayed = await self._refunds.api_refund(order, f"API key #{caller.number}", key_hash)
        except RefundRefused as refusal:
            with speaking(ENGLISH):  # the API's messages are English; its codes are for machines
                text = sentences.refusal(refusal.code, refusal.data)
            status = 422 if refusal.code in ("not_paid", "too_old") else 409
            code = refusal.code if status == 422 else f"refund_{refusal.code}"
            raise ApiError(status, code, text) from None
        body = {"order_id": order.id, "refund": refund_body(refund)}
        return JSONResponse(body, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else None)
