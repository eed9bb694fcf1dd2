"""Safaricom's Daraja (M-Pesa Express): the async client, its signing and its errors (docs/daraja.md)."""

from bot.providers.daraja.client import PRODUCTION_BASE_URL, DarajaClient, DarajaSession
from bot.providers.daraja.errors import (
    DarajaError,
    DarajaMalformedReply,
    DarajaRefused,
    DarajaUnavailable,
    DarajaUnverified,
)

__all__ = [
    "PRODUCTION_BASE_URL",
    "DarajaClient",
    "DarajaError",
    "DarajaMalformedReply",
    "DarajaRefused",
    "DarajaSession",
    "DarajaUnavailable",
    "DarajaUnverified",
]
