"""The seam between the bot and a payment provider: what the order and refund services ask of
one (`PaymentProvider`) and the domain values it answers with. A provider is a folder beside
this module (`ipay/`, `daraja/`) holding its client, signing and errors; its own names (session ids,
accounts, channels) stay inside that folder and in the store's columns for it.

What a provider's lookup says is one of three clean answers (`SearchResult`); anything it
cannot read is an error, never "not paid". The errors split for money's sake: `ProviderRefused`
is a definite "no" (nothing happened at the provider), while `ProviderUnavailable` and
`ProviderMalformedReply` mean "we do not know". Their words never carry a key or a hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

import httpx

from bot.domain import Network, Payment

# A provider's refusal of a bad request hash may name the hash it expected, a valid signature
# (iPay's does: docs/ipay.md). Any run of 32 or more hex digits in a provider's words is cut
# before they are kept, logged or shown.
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{32,}")
SIGNATURE_CUT = "[hash removed]"


def without_signatures(text: str) -> str:
    """`text` from a provider with every hash-like run of hex digits cut out."""
    return _SIGNATURE.sub(SIGNATURE_CUT, text)


class ProviderError(Exception):
    """Any failed exchange with a payment provider, with its reason in plain words (never a hash)."""

    def __init__(self, reason: str) -> None:
        reason = without_signatures(reason)
        super().__init__(reason)
        self.reason = reason


class ProviderRefused(ProviderError):
    """The provider answered clearly and said no (validation, signature, duplicate, open prompt)."""


class ProviderUnavailable(ProviderError):
    """No usable answer: connection error, timeout, 5xx, 429. Retry later (after `retry_after`,
    when the provider said)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ProviderMalformedReply(ProviderError):
    """An answer that does not follow the provider's contract (HTML, missing fields, an unknown shape)."""


class ProviderUnverified(ProviderMalformedReply):
    """A "paid" answer that cannot be trusted: its signature does not verify, or it names another
    order. Nothing is recorded from it; it counts as an errored lookup."""


def json_object(
    reply: httpx.Response,
    provider: str,
    unavailable: type[ProviderUnavailable],
    malformed: type[ProviderMalformedReply],
) -> dict[str, Any]:
    """A provider's answer as the JSON object it should be; otherwise the provider is unavailable
    (a 5xx: try again later) or its answer is malformed (never read as a verdict)."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if reply.status_code >= 500:
            raise unavailable(f"{provider} answered HTTP {reply.status_code}")
        raise malformed(f"{provider} answered HTTP {reply.status_code} without a JSON object")
    return body


@dataclass(frozen=True)
class CheckoutSession:
    """An open checkout: the session the push needs, and what a payer needs to pay the same
    order by hand (Pay Bill: business number per channel, account)."""

    oid: str
    sid: str
    account: str
    paybills: tuple[tuple[str, str], ...] = ()  # (channel name, paybill number), as listed


class FailureKind(StrEnum):
    CANCELLED = "cancelled"
    WRONG_PIN = "wrong_pin"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class NotPaidYet:
    """The provider's one clean "no payment record found"."""


@dataclass(frozen=True)
class PaymentFound:
    payment: Payment


@dataclass(frozen=True)
class PaymentFailed:
    kind: FailureKind
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", without_signatures(self.text))


SearchResult: TypeAlias = NotPaidYet | PaymentFound | PaymentFailed


@dataclass(frozen=True)
class RefundDone:
    """A refund done: the payment refunded, how much, and the merchant's balances left."""

    code: str
    amount: str
    c2b_funds: str
    b2c_funds: str


@dataclass(frozen=True)
class RefundAccepted:
    """A refund the provider took but answers later (Daraja's reversal): its result arrives as a
    `RefundResult`; until then nothing is known to have moved. `reference` is the provider's name
    for the request (Daraja's ConversationID)."""

    reference: str


class RefundOutcome(StrEnum):
    DONE = "done"  # the money went back
    REFUSED = "refused"  # the provider said no: nothing moved
    UNKNOWN = "unknown"  # the provider gave up on it without a verdict (Daraja's queue timeout)


@dataclass(frozen=True)
class RefundResult:
    """A provider's later answer to an accepted refund: which order's, what came of it, in words."""

    order_id: str
    reference: str
    outcome: RefundOutcome
    words: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", without_signatures(self.words))


class RefundResults(Protocol):
    """A provider whose refunds answer later (`RefundAccepted`), at a URL the bot serves."""

    def read_refund_result(self, params: Mapping[str, str], body: bytes = b"") -> RefundResult | None:
        """A result request (its path parameters and body); None if it is not one."""
        ...


@dataclass(frozen=True)
class Callback:
    """A provider's notice that an order's payment moved: which order, what it says (in words, for
    the log), and whether money may have been received. Only a lookup decides the outcome."""

    order_id: str
    says: str
    money: bool
    # What the provider wants kept from this callback until a lookup agrees with it (Daraja: its
    # checkout id, result and receipt), opaque above the seam; the store keeps it for every
    # instance, and `search` gets it back as `note`.
    note: str = ""


# The name a notice or stored reason written before sentences named the provider is said with
# (iPay was then the only one).
DEFAULT_PROVIDER_NAME = "iPay"


def provider_name(provider: PaymentProvider) -> str:
    """The name payers and shops know the running provider by (its `name`), which sentences say
    wherever they name who takes the payment ("{provider} refused it", "Check against {provider}")."""
    return provider.name


@dataclass(frozen=True)
class ManualPayment:
    """A payment made by hand (Pay Bill) the provider told the bot of: the account the payer typed
    (an order's reference, or anything else) and the payment itself."""

    account: str
    payment: Payment


class ManualPayments(Protocol):
    """A provider that tells the bot of payments made by hand as they happen (Daraja's C2B
    confirmations) rather than answering them in a lookup (iPay's)."""

    async def register_manual_payments(self) -> None:
        """Ask the provider to send the confirmations here (once, at start-up)."""
        ...

    def read_manual_payment(self, params: Mapping[str, str], body: bytes = b"") -> ManualPayment | None:
        """A confirmation request (its path parameters and body); None if it is not one."""
        ...


class PaymentProvider(Protocol):
    """Start a payment, push its PIN prompt, look it up, refund it. Each call ends in one of the
    values above or raises the provider's error (a definite refusal, or "we do not know")."""

    networks: tuple[Network, ...]  # the mobile-money networks it can prompt (Daraja: M-Pesa only)
    name: str  # the name its payers and shops know it by ("iPay", "M-PESA"), said in sentences
    notes_callbacks: bool  # its callbacks carry a `note` its lookups need back (`search`'s `note`)

    @property
    def refunds_ready(self) -> bool:
        """False: refunds need settings the shop has not given (`refund` would refuse)."""
        ...

    async def initiate(self, oid: str, amount: int, phone: str, email: str | None = None) -> CheckoutSession:
        """Open a checkout for order `oid` (written before this call)."""
        ...

    async def push(self, network: Network, phone: str, sid: str) -> str | None:
        """Send the PIN prompt for an open checkout to the phone. A provider whose prompt is what
        names the payment (Daraja's CheckoutRequestID) answers the session to keep from now on."""
        ...

    async def search(self, oid: str, sid: str | None = None, note: str | None = None) -> SearchResult:
        """Where is this order's payment (its session as last kept, and the `note` of its latest
        callback, if one came)? Only a clean answer is a result."""
        ...

    async def refund(self, code: str, amount: int = 0, order_id: str = "") -> RefundDone | RefundAccepted:
        """Give a payment back in full, by its receipt (transaction) code (`amount` shillings, of
        order `order_id`): done now, or accepted with its result to come."""
        ...

    def read_callback(self, params: Mapping[str, str], body: bytes = b"") -> Callback | None:
        """The provider's callback request (its query and path parameters, its body) as a
        `Callback`; None if it is not one."""
        ...
