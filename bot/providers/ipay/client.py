"""The async iPay client: initiate, push the PIN prompt, search. Nothing about Telegram.

Every call goes through one shared httpx transport with timeouts set, is signed as the
contract says, and ends in a typed result or an `IpayError`. A lookup that cannot be read
is an error, never "not paid".

Calls go straight to the transport (httpx's transport API: `httpx.Request` in, `httpx.Response`
out), not through an `httpx.AsyncClient`: the client's layers (cookies, redirects, auth, merging
its defaults into every request, parsing the URL again) are work iPay's API never needs, and
through them a status lookup costs about half as much CPU again (bench/README.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.domain import NAIROBI, Network, Payment
from bot.providers.base import (
    Callback,
    CheckoutSession,
    FailureKind,
    NotPaidYet,
    PaymentFailed,
    PaymentFound,
    RefundDone,
    SearchResult,
    json_object,
)
from bot.providers.ipay import signing
from bot.providers.ipay.callback import read_callback
from bot.providers.ipay.errors import (
    IpayMalformedReply,
    IpayRefused,
    IpayUnavailable,
    IpayUnverified,
    without_signatures,
)

log = logging.getLogger(__name__)

# /transact answers slowly at times (4-15 s): give reads room, but never wait forever.
IPAY_TIMEOUT = httpx.Timeout(connect=5.0, read=25.0, write=10.0, pool=5.0)
# Every call is a form post (docs/ipay.md).
FORM_HEADERS = (("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "*/*"))
# A lookup is asked again soon anyway: a slow one should not hold its slot much longer than
# the spacing between lookups (the wiring passes twice the poll interval, within these bounds).
SEARCH_READ_TIMEOUT = (5.0, 25.0)


_FAILURE_TEXTS = (
    (re.compile(r"cancel", re.I), FailureKind.CANCELLED),
    (re.compile(r"\bpin\b", re.I), FailureKind.WRONG_PIN),
    (re.compile(r"insufficient|balance", re.I), FailureKind.INSUFFICIENT_FUNDS),
    (re.compile(r"timed?\s*-?out|expired", re.I), FailureKind.TIMED_OUT),
)


class IpayClient:
    """One vendor's view of iPay. Shares the caller's httpx transport; never closes it."""

    networks: tuple[Network, ...] = (Network.MPESA, Network.AIRTEL)
    name: str = "iPay"  # what payers and shops know it by: iPay Africa's own name
    notes_callbacks: bool = False  # a lookup says all there is: nothing to keep from a callback
    refunds_ready: bool = True  # the vendor id and key that take payments refund them too

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        vid: str,
        hash_key: str,
        live: bool,
        base_url: str,
        callback_url: str = "",
        customer_email: str = "",
        search_read_timeout: float = 10.0,
    ) -> None:
        """Calls in flight are capped by whoever calls: the bot's payment and refund services share
        one adaptive budget (`bot/providers/limiter.py`), which also keeps prompts ahead of lookups."""
        self._transport = transport
        self._vid = vid.lower()
        self._key = hash_key
        self._live = "1" if live else "0"
        self._base_url = base_url.rstrip("/")
        self._callback_url = callback_url
        self._email = customer_email
        low, high = SEARCH_READ_TIMEOUT
        self._timeout = IPAY_TIMEOUT.as_dict()
        self._search_timeout = self._timeout | {
            "read": min(max(search_read_timeout, low), high, self._timeout["read"] or high)
        }
        self._endpoints: dict[str, tuple[httpx.URL, str]] = {}  # each endpoint's URL and Host, worked out once
        self._shapes_seen: set[tuple[str, int, str, str]] = set()  # unrecognised answers already logged
        self._unverified_logged: dict[str, None] = {}  # orders whose unverified reply was logged

    async def initiate(self, oid: str, amount: int, phone: str, email: str | None = None) -> CheckoutSession:
        fields = {
            "live": self._live,
            "oid": oid,
            "inv": oid,
            "amount": str(amount),
            "tel": phone,
            "eml": email or self._email,
            "vid": self._vid,
            "curr": "KES",
            "p1": "",
            "p2": "",
            "p3": "",
            "p4": "",
            "cbk": self._callback_url,
            "cst": "1",
            "crl": "0",
            "autopay": "1",
        }
        fields["hash"] = signing.transact_hash(self._key, fields)
        reply = await self._post("/transact", fields)
        body = self._json_object("/transact", reply)
        if reply.status_code == 200 and body.get("status") == 1 and isinstance(body.get("data"), dict):
            return self._checkout_session(oid, body["data"])
        raise _refusal_or_unavailable(reply, body)

    def _checkout_session(self, oid: str, data: Mapping[str, Any]) -> CheckoutSession:
        sid, account, amount = data.get("sid"), data.get("account"), data.get("amount")
        if not isinstance(sid, str) or not sid:
            raise IpayMalformedReply("/transact reply has no sid")
        if data.get("oid") not in (None, oid):
            raise IpayMalformedReply("/transact reply is for another order")
        if not isinstance(account, str) or not isinstance(amount, (str, int)) or isinstance(amount, bool):
            raise IpayMalformedReply("/transact reply has no account or amount")
        paybills = _payment_channels(data.get("payment_channels"))
        by_name = dict(paybills)
        if any(name not in by_name for name in signing.SIGNED_CHANNELS):
            raise IpayMalformedReply("/transact reply lacks the MPESA or AIRTEL channel")
        expected = signing.transact_reply_hash(self._key, account, str(amount), oid, sid, by_name)
        if not signing.same_hash(expected, data.get("hash")):
            raise IpayMalformedReply("/transact reply hash does not match")
        return CheckoutSession(oid=oid, sid=sid, account=account, paybills=paybills)

    async def push(self, network: Network, phone: str, sid: str) -> None:
        """Send the PIN prompt to the phone. Raises `IpayRefused` if iPay says no."""
        fields = {
            "phone": phone,
            "sid": sid,
            "vid": self._vid,
            "hash": signing.push_hash(self._key, phone, self._vid, sid),
        }
        path = f"/transact/push/{network.value}"
        reply = await self._post(path, fields)
        body = self._json_object(path, reply)
        if reply.status_code == 200 and body.get("status") == 1:
            return
        if 400 <= reply.status_code < 500 and reply.status_code != 429:
            raise IpayRefused(_error_text(body) or f"iPay said no (HTTP {reply.status_code})")
        # A 5xx (iPay's own 500 included), a 429, a 200 that is not a success: the prompt may have
        # gone out all the same (docs/ipay.md §8), so it is no refusal; the lookups decide.
        if reply.status_code == 200:
            self._note_shape(path, reply, body)
        raise IpayUnavailable(
            f"{path} answered HTTP {reply.status_code}: {_error_text(body) or 'no text'}",
            _retry_after(reply) if reply.status_code == 429 else None,
        )

    async def search(self, oid: str, sid: str | None = None, note: str | None = None) -> SearchResult:
        """Where is this order? Only a clean answer becomes a result; anything else raises."""
        fields = {"oid": oid, "vid": self._vid, "hash": signing.search_hash(self._key, oid, self._vid)}
        path = "/transaction/search"
        reply = await self._post(path, fields, self._search_timeout)
        if reply.status_code >= 500:
            raise IpayUnavailable(f"{path} answered HTTP {reply.status_code}")
        if reply.status_code == 429:
            raise IpayUnavailable(f"{path} is rate limited", _retry_after(reply))
        body = self._json_object(path, reply)
        if reply.status_code == 200 and body.get("status") == 1 and isinstance(body.get("data"), dict):
            return PaymentFound(self._payment(oid, body))
        text = str(body.get("message") or body.get("text") or "")
        if reply.status_code == 404 and body.get("status") == 0 and "no payment record" in text.lower():
            return NotPaidYet()
        if reply.status_code >= 400:
            for pattern, kind in _FAILURE_TEXTS:
                if pattern.search(text):
                    return PaymentFailed(kind, text)
        self._note_shape(path, reply, body)
        raise IpayMalformedReply(f"{path} answered HTTP {reply.status_code} that is not a verdict")

    async def refund(self, code: str, amount: int = 0, order_id: str = "") -> RefundDone:
        """Give a payment back in full, by its transaction code (docs/ipay.md §6).

        Only `status` 200 with "Refund done" is done; any other clean JSON answer is iPay's
        refusal (`IpayRefused`, nothing moved). A call without a clean answer (a timeout, a 5xx,
        a 429, a reply that is not JSON) raises `IpayUnavailable` or `IpayMalformedReply`: the
        money may have moved, so the caller must not take it for a refusal.
        """
        fields = {"code": code, "vid": self._vid, "hash": signing.refund_hash(self._key, code, self._vid)}
        reply = await self._post("/transaction/refund", fields)
        if reply.status_code >= 500:
            raise IpayUnavailable(f"/transaction/refund answered HTTP {reply.status_code}")
        if reply.status_code == 429:
            raise IpayUnavailable("/transaction/refund is rate limited", _retry_after(reply))
        body = _json_object(reply)
        if str(body.get("status")) == "200" and str(body.get("text") or "").strip().lower() == "refund done":
            if body.get("code") not in (None, "", code):
                raise IpayMalformedReply("/transaction/refund reply is for another payment")
            return RefundDone(
                code=code,
                amount=str(body.get("amount") or ""),
                c2b_funds=str(body.get("c2bfunds") or ""),
                b2c_funds=str(body.get("b2cfunds") or ""),
            )
        raise IpayRefused(_error_text(body) or f"iPay did not refund it (status {body.get('status')})")

    def read_callback(self, params: Mapping[str, str], body: bytes = b"") -> Callback | None:
        return read_callback(params)

    def _payment(self, oid: str, body: Mapping[str, Any]) -> Payment:
        """A paid record, only if its hash verifies and it is this order's. Its amount is
        compared with the order by the caller; zero or less is no payment at all."""
        record = body["data"]
        if record.get("oid") != oid:
            raise self._unverified(oid, "/transaction/search reply is for another order")
        if not signing.same_hash(signing.search_reply_hash(self._key, record), body.get("hash")):
            raise self._unverified(oid, "/transaction/search reply hash does not verify")
        code = record.get("transaction_code")
        if not isinstance(code, str) or not code:
            raise IpayMalformedReply("/transaction/search reply has no transaction_code")
        name = " ".join(str(record.get(part) or "").strip() for part in ("firstname", "lastname")).strip()
        return Payment(
            receipt_code=code,
            payer_name=name,
            amount=_shillings(record.get("transaction_amount")),
            paid_at=_paid_at(record.get("paid_at")),
            channel=str(record.get("payment_mode") or ""),
        )

    def _unverified(self, oid: str, reason: str) -> IpayUnverified:
        """The error for a paid reply that cannot be trusted, logged at ERROR once per order (it is
        looked up again and again until iPay answers properly)."""
        if oid not in self._unverified_logged:
            self._unverified_logged[oid] = None
            if len(self._unverified_logged) > LOGGED_ORDERS_KEPT:
                del self._unverified_logged[next(iter(self._unverified_logged))]
            log.error("order %s: %s; nothing recorded from it", oid, reason)
        return IpayUnverified(reason)

    def _json_object(self, path: str, reply: httpx.Response) -> dict[str, Any]:
        try:
            return _json_object(reply)
        except IpayMalformedReply:
            self._note_shape(path, reply, None)
            raise

    def _note_shape(self, path: str, reply: httpx.Response, body: Mapping[str, Any] | None) -> None:
        """Log the first answer of each unrecognised kind (endpoint, HTTP status, `status`, keys),
        with its shape and words but never a phone number or a hash, so it can be reported."""
        if body is None:
            status, keys, text = "not JSON", reply.headers.get("content-type", ""), reply.text[:200]
        else:
            status, keys, text = repr(body.get("status")), ", ".join(sorted(map(str, body))), _error_text(body)[:200]
        kind = (path, reply.status_code, status, keys)
        if kind in self._shapes_seen:
            return
        self._shapes_seen.add(kind)
        log.warning(
            "iPay answered %s in a shape the bot does not know: HTTP %s, status %s, keys [%s], text %r",
            path,
            reply.status_code,
            status,
            keys,
            masked_text(text),
        )

    async def _post(
        self, path: str, fields: Mapping[str, str], http_timeout: Mapping[str, float | None] | None = None
    ) -> httpx.Response:
        """One form post, its reply read whole before it returns (so the connection goes back to
        the pool at once); any failure of the wire is `IpayUnavailable`."""
        url, host = self._endpoint(path)
        body = urlencode(fields).encode()
        request = httpx.Request(
            "POST",
            url,
            # The body as a finished stream and every header set here: httpx has nothing left to
            # work out (with `content=` it would encode the body and add Host and Content-Length).
            stream=httpx.ByteStream(body),
            headers=[("Host", host), *FORM_HEADERS, ("Content-Length", str(len(body)))],
            extensions={"timeout": http_timeout or self._timeout},
        )
        request.read()  # `request.content` then works for any transport, as it does after `content=`
        try:
            reply = await self._transport.handle_async_request(request)
            try:
                await reply.aread()
            finally:
                await reply.aclose()
            return reply
        except httpx.TimeoutException:
            raise IpayUnavailable(f"{path} timed out") from None
        except httpx.HTTPError as exc:
            raise IpayUnavailable(f"{path} could not be reached ({type(exc).__name__})") from None

    def _endpoint(self, path: str) -> tuple[httpx.URL, str]:
        """An endpoint's URL and Host header, worked out once."""
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            url = httpx.URL(self._base_url + path)
            endpoint = self._endpoints[path] = (url, url.netloc.decode("ascii"))
        return endpoint


LOGGED_ORDERS_KEPT = 10_000  # orders remembered as logged (the oldest forgotten first)
_PHONE_DIGITS = re.compile(r"\+?\d[\d ]{7,}\d")


def masked_text(text: str) -> str:
    """Words from iPay as they may be logged: no hash, no phone number (nor any long number)."""
    return _PHONE_DIGITS.sub("[number removed]", without_signatures(text))


def _json_object(reply: httpx.Response) -> dict[str, Any]:
    return json_object(reply, "iPay", IpayUnavailable, IpayMalformedReply)


def _refusal_or_unavailable(reply: httpx.Response, body: Mapping[str, Any]) -> IpayRefused | IpayUnavailable:
    """Turn a non-success answer to /transact or a push into the right exception."""
    if reply.status_code == 429:
        return IpayUnavailable("iPay is rate limiting", _retry_after(reply))
    text = _error_text(body)
    if reply.status_code >= 500 and body.get("header_status") != 500:
        return IpayUnavailable(f"iPay answered HTTP {reply.status_code}")
    return IpayRefused(text or f"iPay said no (HTTP {reply.status_code})")


def _error_text(body: Mapping[str, Any]) -> str:
    errors = body.get("error")
    if isinstance(errors, list):
        return "; ".join(str(e.get("text", "")) for e in errors if isinstance(e, dict)).strip()
    return str(body.get("text") or body.get("message") or "").strip()


def _payment_channels(raw: object) -> tuple[tuple[str, str], ...]:
    """The reply's channels as (name, paybill), first entry per name; anything else is malformed."""
    if not isinstance(raw, list):
        raise IpayMalformedReply("/transact reply has no payment_channels list")
    channels: dict[str, str] = {}
    for entry in raw:
        if not isinstance(entry, dict):
            raise IpayMalformedReply("/transact reply has a payment channel that is not an object")
        name, paybill = entry.get("name"), entry.get("paybill")
        if not isinstance(name, str) or not isinstance(paybill, (str, int)) or isinstance(paybill, bool):
            raise IpayMalformedReply("/transact reply has a payment channel without name or paybill")
        channels.setdefault(name, str(paybill))
    return tuple(channels.items())


def _retry_after(reply: httpx.Response) -> float | None:
    try:
        return max(0.0, float(reply.headers.get("retry-after", "")))
    except ValueError:
        return None


MAX_PLAUSIBLE_AMOUNT = 10**9  # far above any M-Pesa or Airtel limit: anything larger is no amount


def _shillings(raw: object) -> int:
    """A paid amount as whole shillings. Anything that is not a plain, finite, positive whole
    number ("10.00" is fine; 0, Infinity, NaN, 1e400, -5, 10.5, "", a list are not) makes the
    reply malformed: no payment and no verdict, retried later like any errored lookup (and in
    doubt past the deadline), never recorded."""
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValueError
        value = Decimal(str(raw).strip())
        if not value.is_finite() or value <= 0 or value > MAX_PLAUSIBLE_AMOUNT or value != value.to_integral_value():
            raise ValueError
        return int(value)
    except (InvalidOperation, ValueError, ArithmeticError):
        raise IpayMalformedReply("/transaction/search reply has no readable transaction_amount") from None


def _paid_at(raw: object) -> float:
    try:
        return datetime.strptime(str(raw), "%Y-%m-%d %H:%M:%S").replace(tzinfo=NAIROBI).timestamp()
    except ValueError:
        raise IpayMalformedReply("/transaction/search reply has no readable paid_at") from None
