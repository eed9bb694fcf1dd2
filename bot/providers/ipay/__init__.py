"""iPay Africa's REST API: the async client, its signing and its errors."""

from bot.providers.ipay.client import (
    IPAY_TIMEOUT,
    CheckoutSession,
    FailureKind,
    IpayClient,
    NotPaidYet,
    PaymentFailed,
    PaymentFound,
    RefundDone,
    SearchResult,
)
from bot.providers.ipay.errors import (
    IpayError,
    IpayMalformedReply,
    IpayRefused,
    IpayUnavailable,
    IpayUnverified,
    without_signatures,
)

__all__ = [
    "IPAY_TIMEOUT",
    "CheckoutSession",
    "FailureKind",
    "IpayClient",
    "IpayError",
    "IpayMalformedReply",
    "IpayRefused",
    "IpayUnavailable",
    "IpayUnverified",
    "NotPaidYet",
    "PaymentFailed",
    "PaymentFound",
    "RefundDone",
    "SearchResult",
    "without_signatures",
]
