"""Daraja's errors: the provider errors (`bot/providers/base.py`) as the Daraja client raises them.

`DarajaRefused` is a definite "no" (nothing happened at Safaricom); `DarajaUnavailable` and
`DarajaMalformedReply` mean "we do not know" and are never read as "not paid". Their words never
carry a key, a secret, a token or a password.
"""

from __future__ import annotations

from bot.providers.base import (
    ProviderError,
    ProviderMalformedReply,
    ProviderRefused,
    ProviderUnavailable,
    ProviderUnverified,
)


class DarajaError(ProviderError):
    """Any failed exchange with Daraja, with its reason in plain words."""


class DarajaRefused(DarajaError, ProviderRefused):
    """Daraja answered clearly and said no (a bad request, the payer's phone locked by another prompt)."""


class DarajaUnavailable(DarajaError, ProviderUnavailable):
    """No usable answer: connection error, timeout, 5xx, 429, no token. Retry later."""


class DarajaMalformedReply(DarajaError, ProviderMalformedReply):
    """An answer that does not follow Daraja's contract (HTML, missing fields, an unknown result code)."""


class DarajaUnverified(DarajaMalformedReply, ProviderUnverified):
    """A "paid" answer that cannot be trusted (it names another checkout). Nothing is recorded from it."""
