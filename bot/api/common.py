"""What every REST API endpoint shares: the error shape, the caller (an API key), the strict JSON
body and its checks. Each feature's endpoints (`bot/orders/api.py`, `bot/requests/api.py`,
`bot/refunds/api.py`) build on these public names only."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

API_BODY_LIMIT = 8 * 1024  # a payment request is a few hundred bytes, even with every character escaped
IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]{0,253}[!-~])?$"  # 1 to 255 visible ASCII characters, inner spaces
RETRY_AFTER_UNAVAILABLE = 5


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message}}, self.status, headers=self.headers)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json_object(request: Request, limit: int, code: str = "invalid_json") -> dict[str, Any]:
    """The body as one JSON object, else an `ApiError`: 413 past `limit` bytes (counted while
    reading, whatever Content-Length claims), 400 for anything else that is not a JSON object
    (a list, a number, `NaN`, bytes that are not UTF-8, nesting too deep to parse)."""
    too_large = ApiError(413, "body_too_large", f"the body must be at most {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        value = json.loads(bytes(body), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: `[[[[...` nested past the parser's depth
        raise ApiError(400, code, "the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise ApiError(400, code, "the body must be a JSON object")
    return value


@dataclass(frozen=True)
class Caller:
    """An API key as the API remembers it: its place in API_KEYS (for people) and an identifier
    derived from it (stored with its orders; the key itself is never stored)."""

    number: int
    key_id: str


def api_key_id(key: str) -> str:
    return hashlib.sha256(b"pesabot api key\0" + key.encode()).hexdigest()[:32]


Handler = Callable[[Request, Caller], Awaitable[Response]]  # JSON, or a payment request's QR PNG


Guard = Callable[[Handler], Callable[[Request], Awaitable[Response]]]  # checks the key, answers errors as JSON


async def read_json_body(request: Request) -> dict[str, Any]:
    """The body of a request that must be a JSON object sent as `application/json` (415 otherwise)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as JSON, with Content-Type: application/json")
    return await read_json_object(request, API_BODY_LIMIT)


def whole_number(value: Any, low: int, high: int) -> int | None:
    """A JSON number without a fraction in [low, high], else None. JSON Schema counts `10.0` as
    the integer 10 (an integer is a number without a fraction), so the API does too; `10.5`,
    `"500"` and `true` are not whole numbers."""
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )
    return int(value) if whole and low <= value <= high else None
