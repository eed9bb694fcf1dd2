"""iPay's errors: the provider errors (`bot/providers/base.py`) as iPay raises them.

The split matters for money: `IpayRefused` is a definite "no" (nothing happened at iPay),
while `IpayUnavailable` and `IpayMalformedReply` mean "we do not know" and must never be
read as "not paid". Messages never carry the hash key or a hash.
"""

from __future__ import annotations

from bot.providers.base import (
    SIGNATURE_CUT,
    ProviderError,
    ProviderMalformedReply,
    ProviderRefused,
    ProviderUnavailable,
    ProviderUnverified,
    without_signatures,
)

__all__ = ["SIGNATURE_CUT", "without_signatures"]  # and the errors below


class IpayError(ProviderError):
    """Any failed exchange with iPay, with its reason in plain words (never a hash)."""


class IpayRefused(IpayError, ProviderRefused):
    """iPay answered clearly and said no (validation, hash, duplicate, open prompt)."""


class IpayUnavailable(IpayError, ProviderUnavailable):
    """No usable answer: connection error, timeout, 5xx, 429. Retry later (after `retry_after`, when iPay said)."""


class IpayMalformedReply(IpayError, ProviderMalformedReply):
    """An answer that does not follow the contract (HTML, missing fields, an unknown shape)."""


class IpayUnverified(IpayMalformedReply, ProviderUnverified):
    """A "paid" answer that cannot be trusted: its hash does not verify, or it names another
    order. Nothing is recorded from it; it counts as an errored lookup."""
