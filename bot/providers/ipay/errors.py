"""One exception hierarchy for everything that can go wrong talking to iPay.

The split matters for money: `IpayRefused` is a definite "no" (nothing happened at iPay),
while `IpayUnavailable` and `IpayMalformedReply` mean "we do not know" and must never be
read as "not paid". Messages never carry the hash key or a hash.
"""

from __future__ import annotations

from bot.providers.base import SIGNATURE_CUT, without_signatures

__all__ = ["SIGNATURE_CUT", "without_signatures"]  # and the errors below


class IpayError(Exception):
    """Base class: any failed exchange with iPay, with its reason in plain words (never a hash)."""

    def __init__(self, reason: str) -> None:
        reason = without_signatures(reason)
        super().__init__(reason)
        self.reason = reason


class IpayRefused(IpayError):
    """iPay answered clearly and said no (validation, hash, duplicate, open prompt)."""


class IpayUnavailable(IpayError):
    """No usable answer: connection error, timeout, 5xx, 429. Retry later (after `retry_after`, when iPay said)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class IpayMalformedReply(IpayError):
    """An answer that does not follow the contract (HTML, missing fields, an unknown shape)."""


class IpayUnverified(IpayMalformedReply):
    """A "paid" answer that cannot be trusted: its hash does not verify, or it names another
    order. Nothing is recorded from it; it counts as an errored lookup."""
