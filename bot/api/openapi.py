"""The OpenAPI document of the whole REST API (`/openapi.json`): each feature describes its own
paths, exactly as its endpoints check them; tests generate requests from it."""

from __future__ import annotations

from typing import Any

from bot.orders.api import payments_document
from bot.refunds.api import add_refund_paths
from bot.requests.api import add_request_paths


def openapi_document(min_amount: int, max_amount: int) -> dict[str, Any]:
    """The contract: payments, payment requests and refunds, with the shop's amount limits."""
    document = payments_document(min_amount, max_amount)
    add_request_paths(document, min_amount, max_amount)  # /api/payment-requests
    add_refund_paths(document)  # /api/payments/{order_id}/refund
    return document
