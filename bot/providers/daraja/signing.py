"""What Daraja's requests are built from: the STK password and its timestamp, and the token that
makes each order's callback path unguessable (docs/daraja.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from bot.domain import NAIROBI


def timestamp(at: float) -> str:
    """`YYYYMMDDHHmmss` in Nairobi time, as Daraja checks it against its own clock."""
    return datetime.fromtimestamp(at, NAIROBI).strftime("%Y%m%d%H%M%S")


def password(shortcode: str, passkey: str, stamp: str) -> str:
    """base64(shortcode + passkey + timestamp): the STK push's and query's `Password`."""
    return base64.b64encode(f"{shortcode}{passkey}{stamp}".encode()).decode()


def callback_token(secret: str, order_id: str) -> str:
    """The part of an order's callback path no one can guess without the shop's secrets: Daraja's
    callbacks carry no signature, so a forged one must at least name a path it cannot know."""
    return hmac.new(secret.encode(), f"daraja-callback:{order_id}".encode(), hashlib.sha256).hexdigest()[:32]


def same_token(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
