"""The OpenAPI document of the whole REST API (`/openapi.json`), kept as data in
`bot/api/openapi.json`: payments, payment requests and refunds, each described exactly as its
endpoint checks it (the contract tests generate requests from it and hold every endpoint to it).

The document says `"$min_amount"` and `"$max_amount"` where the shop's amount limits go
(`MIN_AMOUNT`, `MAX_AMOUNT`); `openapi_document` fills them in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DOCUMENT = Path(__file__).with_name("openapi.json")


def openapi_document(min_amount: int, max_amount: int) -> dict[str, Any]:
    """The contract with the shop's amount limits filled in (a fresh copy each call)."""
    filled = _filled(
        json.loads(DOCUMENT.read_text(encoding="utf-8")), {"$min_amount": min_amount, "$max_amount": max_amount}
    )
    assert isinstance(filled, dict)
    return filled


def _filled(node: Any, values: dict[str, int]) -> Any:
    if isinstance(node, dict):
        return {key: _filled(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_filled(item, values) for item in node]
    if isinstance(node, str) and node in values:
        return values[node]
    return node
