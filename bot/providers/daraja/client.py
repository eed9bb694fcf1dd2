"""The async Daraja (M-Pesa Express) client: token, STK push, query, callbacks. Nothing about Telegram.

Every call goes through the caller's `httpx.AsyncClient` with timeouts set and ends in a typed
result or a `DarajaError`. A query that cannot be read is an error, never "not paid"; a query
Daraja is still processing (HTTP 500 `500.001.1001`) is "not paid yet", never failed. A callback
is never believed by itself: it only prompts a query, and its receipt number is taken once the
query agrees (docs/daraja.md). What a callback said travels as its `note` (kept in the database
by the bot, so any instance's query can confirm it), never in this client's memory.

What the order keeps as its session (`sid`, opaque above the seam) is this client's own:
`<order id>:<amount>` before the push, `<order id>:<amount>:<CheckoutRequestID>:<MerchantRequestID>`
after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from bot.domain import NAIROBI, Network, Payment
from bot.providers.base import (
    Callback,
    CheckoutSession,
    FailureKind,
    ManualPayment,
    NotPaidYet,
    PaymentFailed,
    PaymentFound,
    RefundAccepted,
    RefundDone,
    RefundOutcome,
    RefundResult,
    SearchResult,
    json_object,
)
from bot.providers.daraja import signing
from bot.providers.daraja.errors import (
    DarajaMalformedReply,
    DarajaRefused,
    DarajaUnavailable,
    DarajaUnverified,
)

log = logging.getLogger(__name__)

DARAJA_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=5.0)
PRODUCTION_BASE_URL = "https://api.safaricom.co.ke"
TOKEN_PATH = "/oauth/v1/generate?grant_type=client_credentials"
STK_PATH = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"
C2B_REGISTER_PATH = "/mpesa/c2b/v1/registerurl"
REVERSAL_PATH = "/mpesa/reversal/v1/request"
REVERSAL_REMARKS = "Refund"  # Daraja wants some remark (at most 100 characters)
NOT_SET_UP = "refunds through M-PESA need DARAJA_INITIATOR and DARAJA_SECURITY_CREDENTIAL"
C2B_TOKEN_NAME = "c2b"  # the confirmations' path token is derived from this as an order's is from its id
TOKEN_RENEW_MARGIN = 60.0  # renew this long before Daraja says the token expires
INVALID_TOKEN = "404.001.03"
BEING_PROCESSED = "500.001.1001"  # at the query: pending; at the push: the payer's phone is busy
TRANSACTION_DESC = "Payment"  # at most 13 characters

# Daraja's result codes as the payer hears them with iPay too (docs/daraja.md). The prompt never
# reached a decision for 1037, 1001, 1019, 1025 and 9999: like a prompt that timed out, the order
# stays watched until its deadline (the payer may still pay by Pay Bill).
RESULT_FAILURES: dict[str, FailureKind] = {
    "1": FailureKind.INSUFFICIENT_FUNDS,
    "1032": FailureKind.CANCELLED,
    "1037": FailureKind.TIMED_OUT,
    "2001": FailureKind.WRONG_PIN,
    "1001": FailureKind.TIMED_OUT,
    "1019": FailureKind.TIMED_OUT,
    "1025": FailureKind.TIMED_OUT,
    "9999": FailureKind.TIMED_OUT,
}
PAID = "0"


@dataclass(frozen=True)
class DarajaSession:
    """The order's session as this client keeps it in the order's `sid`."""

    oid: str
    amount: int
    checkout_id: str = ""
    merchant_id: str = ""

    def encode(self) -> str:
        head = f"{self.oid}:{self.amount}"
        return f"{head}:{self.checkout_id}:{self.merchant_id}" if self.checkout_id else head

    @classmethod
    def decode(cls, sid: str | None) -> DarajaSession | None:
        parts = (sid or "").split(":")
        if len(parts) not in (2, 4) or not parts[0] or not parts[1].isdigit():
            return None
        checkout_id, merchant_id = parts[2:] if len(parts) == 4 else ("", "")
        return cls(parts[0], int(parts[1]), checkout_id, merchant_id)


@dataclass(frozen=True)
class StkCallback:
    """What a callback said, kept (as a `Callback.note`) until a query agrees with it."""

    checkout_id: str
    result_code: str
    receipt: str
    paid_at: float | None

    def encode(self) -> str:
        return json.dumps(
            {"checkout": self.checkout_id, "code": self.result_code, "receipt": self.receipt, "at": self.paid_at}
        )

    @classmethod
    def decode(cls, note: str | None) -> StkCallback | None:
        """The note back; None for no note or one this client did not write."""
        try:
            data = json.loads(note or "")
            paid_at = data["at"]
            return cls(
                str(data["checkout"]),
                str(data["code"]),
                str(data["receipt"]),
                float(paid_at) if isinstance(paid_at, (int, float)) else None,
            )
        except (ValueError, KeyError, TypeError):
            return None


class DarajaClient:
    """One shop's view of Daraja. Shares the caller's `httpx.AsyncClient`; never closes it."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        consumer_key: str,
        consumer_secret: str,
        shortcode: str,
        passkey: str,
        callback_url: str,
        till_number: str = "",
        manual_payments: bool = False,
        initiator: str = "",
        security_credential: str = "",
        base_url: str = PRODUCTION_BASE_URL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._key = consumer_key
        self._secret = consumer_secret
        self._shortcode = shortcode
        self._passkey = passkey
        self._till = till_number
        self._manual = manual_payments  # C2B confirmations are registered: Pay Bill by hand is seen
        self._initiator = initiator
        self._credential = security_credential
        self._callback_url = callback_url.rstrip("/")
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._monotonic = monotonic
        self._token: str | None = None
        self._token_expires = float("-inf")
        self._token_lock = asyncio.Lock()
        self._token_secret = f"{consumer_secret}:{passkey}"
        self.token_requests = 0  # how many tokens were asked for (tests and the log read it)

    networks: tuple[Network, ...] = (Network.MPESA,)
    # What the payer and the shop know this as: the prompt, the SMS and the receipt all say M-PESA,
    # and "Daraja" is a developer portal's name that a shop owner would not recognise.
    name: str = "M-PESA"
    notes_callbacks: bool = True  # the receipt comes only in the callback: kept until a query agrees

    @property
    def refunds_ready(self) -> bool:
        """A reversal is made as the shop's API operator: without one, refunds are refused."""
        return bool(self._initiator and self._credential)

    # -- the seam -----------------------------------------------------------------------

    async def initiate(self, oid: str, amount: int, phone: str, email: str | None = None) -> CheckoutSession:
        """Nothing to open at Daraja before the push: the session is the order and the amount the
        push asks for. The Pay Bill way round (account = the order's reference, business number =
        the shortcode) is offered only where the bot sees such a payment: C2B confirmations
        registered, and a Paybill (a Till's Buy Goods payment names no account, so it could not be
        told from any other). Otherwise the account is "" and no way round is offered: a payer
        must never pay where the bot cannot see it."""
        session = DarajaSession(oid, amount).encode()
        if not self._manual or self._till:
            return CheckoutSession(oid=oid, sid=session, account="")
        return CheckoutSession(oid=oid, sid=session, account=oid[:12], paybills=(("MPESA", self._shortcode),))

    async def push(self, network: Network, phone: str, sid: str) -> str | None:
        """The STK push. Returns the session to keep from now on (with Daraja's ids)."""
        if network is not Network.MPESA:
            raise DarajaRefused("Daraja takes M-Pesa only")
        session = DarajaSession.decode(sid)
        if session is None:
            raise DarajaMalformedReply("the order's session is not a Daraja one")
        oid = session.oid
        stamp = signing.timestamp(self._clock())
        body = {
            "BusinessShortCode": self._shortcode,
            "Password": signing.password(self._shortcode, self._passkey, stamp),
            "Timestamp": stamp,
            "TransactionType": "CustomerBuyGoodsOnline" if self._till else "CustomerPayBillOnline",
            "Amount": session.amount,
            "PartyA": phone,
            "PartyB": self._till or self._shortcode,
            "PhoneNumber": phone,
            "CallBackURL": self.callback_url(oid),
            "AccountReference": oid[:12],
            "TransactionDesc": TRANSACTION_DESC,
        }
        reply = await self._call(STK_PATH, body)
        data = _json_object(reply)
        if reply.status_code == 200 and str(data.get("ResponseCode")) == "0":
            checkout_id, merchant_id = data.get("CheckoutRequestID"), data.get("MerchantRequestID")
            if not isinstance(checkout_id, str) or not checkout_id or ":" in checkout_id:
                raise DarajaMalformedReply("the STK push reply has no CheckoutRequestID")
            merchant = merchant_id.replace(":", "") if isinstance(merchant_id, str) else ""
            return DarajaSession(oid, session.amount, checkout_id, merchant).encode()
        code = str(data.get("errorCode") or data.get("ResponseCode") or "")
        words = str(data.get("errorMessage") or data.get("ResponseDescription") or "no text")
        if reply.status_code == 429 or (reply.status_code >= 500 and code != BEING_PROCESSED):
            # The prompt may have gone out all the same: no refusal, the lookups decide.
            raise DarajaUnavailable(f"the STK push answered HTTP {reply.status_code} {code}: {words}")
        raise DarajaRefused(f"{code}: {words}" if code else words)

    async def search(self, oid: str, sid: str | None = None, note: str | None = None) -> SearchResult:
        """The STK query for this order's checkout (the session's, or else the one its callback
        named). Only a clean answer is a result."""
        session = DarajaSession.decode(sid)
        heard = StkCallback.decode(note)
        checkout_id = session.checkout_id if session else ""
        if not checkout_id and heard is not None:
            checkout_id = heard.checkout_id  # the push gave no answer, but its callback named it
        if session is not None and session.oid != oid:
            raise DarajaUnverified("the order's session names another order")
        if session is None or not checkout_id:
            raise DarajaUnavailable("no CheckoutRequestID is known for this order yet")
        stamp = signing.timestamp(self._clock())
        body = {
            "BusinessShortCode": self._shortcode,
            "Password": signing.password(self._shortcode, self._passkey, stamp),
            "Timestamp": stamp,
            "CheckoutRequestID": checkout_id,
        }
        reply = await self._call(QUERY_PATH, body)
        data = _json_object(reply)
        if reply.status_code >= 500 and str(data.get("errorCode")) == BEING_PROCESSED:
            return NotPaidYet()
        if reply.status_code >= 500 or reply.status_code == 429:
            raise DarajaUnavailable(f"the STK query answered HTTP {reply.status_code} {data.get('errorCode') or ''}")
        if reply.status_code != 200 or "ResultCode" not in data:
            raise DarajaMalformedReply(f"the STK query answered HTTP {reply.status_code} that is not a verdict")
        if data.get("CheckoutRequestID") not in (None, checkout_id):
            raise DarajaUnverified("the STK query reply is for another checkout")
        code, words = str(data.get("ResultCode")).strip(), str(data.get("ResultDesc") or "")
        if code == PAID:
            confirmed = (
                heard if heard is not None and heard.checkout_id == checkout_id and heard.result_code == PAID else None
            )
            return PaymentFound(
                Payment(
                    receipt_code=confirmed.receipt if confirmed else "",
                    payer_name="",
                    amount=session.amount,  # an STK prompt asks for exactly this amount
                    paid_at=(confirmed.paid_at if confirmed and confirmed.paid_at else self._clock()),
                    channel="MPESA",
                )
            )
        if code in RESULT_FAILURES:
            return PaymentFailed(RESULT_FAILURES[code], f"{code}: {words}")
        raise DarajaMalformedReply(f"the STK query answered an unknown ResultCode {code}")

    async def refund(self, code: str, amount: int = 0, order_id: str = "") -> RefundDone | RefundAccepted:
        """A reversal of the payment with receipt `code`. Daraja only accepts it here; its result
        comes later to `reversal_url(order_id)` (`read_refund_result`)."""
        if not self.refunds_ready:
            raise DarajaRefused(NOT_SET_UP)
        result_url = self.reversal_url(order_id)
        body = {
            "Initiator": self._initiator,
            "SecurityCredential": self._credential,
            "CommandID": "TransactionReversal",
            "TransactionID": code,
            "Amount": amount,
            "ReceiverParty": self._shortcode,
            "RecieverIdentifierType": "11",  # spelled so by Daraja
            "ResultURL": result_url,
            "QueueTimeOutURL": result_url + "/timeout",
            "Remarks": REVERSAL_REMARKS,
            "Occasion": order_id,
        }
        reply = await self._call(REVERSAL_PATH, body)
        data = _json_object(reply)
        if reply.status_code == 200 and str(data.get("ResponseCode")) == "0":
            reference = data.get("ConversationID") or data.get("OriginatorConversationID") or ""
            return RefundAccepted(reference=str(reference))
        error = str(data.get("errorCode") or data.get("ResponseCode") or "")
        words = str(data.get("errorMessage") or data.get("ResponseDescription") or "no text")
        if reply.status_code >= 500 or reply.status_code == 429:
            raise DarajaUnavailable(f"the reversal answered HTTP {reply.status_code} {error}: {words}")
        raise DarajaRefused(f"{error}: {words}" if error else words)

    def reversal_url(self, oid: str) -> str:
        """Where a reversal's result comes, under a token no one can guess for the order."""
        return f"{self._callback_url}/reversal/{oid}/{signing.callback_token(self._token_secret, 'reversal:' + oid)}"

    def read_refund_result(self, params: Mapping[str, str], body: bytes = b"") -> RefundResult | None:
        """A reversal's result (or its queue timeout, `params["kind"] == "timeout"`), POSTed to
        `reversal_url(order id)`; None unless the token is the order's and the body reads."""
        oid, token = params.get("order", ""), params.get("token", "")
        expected = signing.callback_token(self._token_secret, "reversal:" + oid)
        if not oid or not signing.same_token(expected, token):
            return None
        if params.get("kind") == "timeout":
            return RefundResult(oid, "", RefundOutcome.UNKNOWN, "the reversal timed out in Daraja's queue")
        try:
            result = json.loads(body)["Result"]
            code, words = str(result["ResultCode"]).strip(), str(result.get("ResultDesc") or "no text")
        except (ValueError, KeyError, TypeError):
            return None
        reference = str(result.get("ConversationID") or "")
        outcome = RefundOutcome.DONE if code == PAID else RefundOutcome.REFUSED
        return RefundResult(oid, reference, outcome, f"{code}: {words}")

    def read_callback(self, params: Mapping[str, str], body: bytes = b"") -> Callback | None:
        """A callback POSTed to `<callback URL>/<order id>/<token>`; None unless its token is the
        order's and its body is an `stkCallback`. What it says is its note, for the query to confirm."""
        oid, token = params.get("order", ""), params.get("token", "")
        if not oid or not signing.same_token(signing.callback_token(self._token_secret, oid), token):
            return None
        try:
            stk = json.loads(body)["Body"]["stkCallback"]
            checkout_id, code = str(stk["CheckoutRequestID"]), str(stk["ResultCode"])
        except (ValueError, KeyError, TypeError):
            return None
        items = stk.get("CallbackMetadata", {}).get("Item", []) if isinstance(stk.get("CallbackMetadata"), dict) else []
        values = (
            {i.get("Name"): i.get("Value") for i in items if isinstance(i, dict)} if isinstance(items, list) else {}
        )
        heard = StkCallback(
            checkout_id, code, str(values.get("MpesaReceiptNumber") or ""), _paid_at(values.get("TransactionDate"))
        )
        return Callback(oid, f"ResultCode {code}", code == PAID, note=heard.encode())

    # -- payments made by hand (C2B) -----------------------------------------------------

    def c2b_url(self, kind: str) -> str:
        """Where Daraja sends C2B `confirmation`s (and `validation`s), under an unguessable token."""
        return f"{self._callback_url}/c2b/{signing.callback_token(self._token_secret, C2B_TOKEN_NAME)}/{kind}"

    async def register_manual_payments(self) -> None:
        """Register the C2B URLs for the shortcode (Daraja keeps them until registered again)."""
        body = {
            "ShortCode": self._shortcode,
            "ResponseType": "Completed",
            "ConfirmationURL": self.c2b_url("confirmation"),
            "ValidationURL": self.c2b_url("validation"),
        }
        reply = await self._call(C2B_REGISTER_PATH, body)
        data = _json_object(reply)
        if reply.status_code == 200 and str(data.get("ResponseCode", "")).strip("0") == "":
            return
        code = str(data.get("errorCode") or data.get("ResponseCode") or "")
        words = str(data.get("errorMessage") or data.get("ResponseDescription") or "no text")
        if reply.status_code >= 500 or reply.status_code == 429:
            raise DarajaUnavailable(f"the C2B registration answered HTTP {reply.status_code} {code}: {words}")
        raise DarajaRefused(f"the C2B registration was refused: {code}: {words}")

    def read_manual_payment(self, params: Mapping[str, str], body: bytes = b"") -> ManualPayment | None:
        """A C2B confirmation POSTed to `c2b_url("confirmation")`; None unless its token is right and
        it names a receipt and a whole amount. The account is as the payer typed it, tidied
        (spaces out, capitals), as order references are written."""
        expected = signing.callback_token(self._token_secret, C2B_TOKEN_NAME)
        if not signing.same_token(expected, params.get("token", "")):
            return None
        try:
            data = json.loads(body)
            receipt, raw_amount = str(data["TransID"]).strip(), str(data["TransAmount"]).strip()
        except (ValueError, KeyError, TypeError):
            return None
        amount = _whole_shillings(raw_amount)
        if not receipt or amount is None or amount <= 0:
            return None
        account = "".join(str(data.get("BillRefNumber") or "").split()).upper()
        names = (str(data.get(part) or "").strip() for part in ("FirstName", "MiddleName", "LastName"))
        payment = Payment(
            receipt_code=receipt,
            payer_name=" ".join(n for n in names if n),
            amount=amount,
            paid_at=_paid_at(data.get("TransTime")) or self._clock(),
            channel="MPESA",
        )
        return ManualPayment(account=account, payment=payment)

    def callback_url(self, oid: str) -> str:
        return f"{self._callback_url}/{oid}/{signing.callback_token(self._token_secret, oid)}"

    # -- the token ----------------------------------------------------------------------

    async def _bearer(self) -> str:
        """The cached token, renewed before it expires; concurrent callers share one renewal."""
        if self._token is not None and self._monotonic() < self._token_expires:
            return self._token
        async with self._token_lock:
            if self._token is not None and self._monotonic() < self._token_expires:
                return self._token
            self._token, self._token_expires = await self._new_token()
            return self._token

    def _forget_token(self, token: str) -> None:
        if self._token == token:
            self._token, self._token_expires = None, float("-inf")

    async def _new_token(self) -> tuple[str, float]:
        self.token_requests += 1
        try:
            reply = await self._http.get(
                self._base_url + TOKEN_PATH, auth=(self._key, self._secret), timeout=DARAJA_TIMEOUT
            )
        except httpx.TimeoutException:
            raise DarajaUnavailable("the token request timed out") from None
        except httpx.HTTPError as exc:
            raise DarajaUnavailable(f"the token request could not be made ({type(exc).__name__})") from None
        if reply.status_code != 200:
            raise DarajaUnavailable(f"the token request answered HTTP {reply.status_code}")
        data = _json_object(reply)
        token, expires_in = data.get("access_token"), str(data.get("expires_in") or "")
        if not isinstance(token, str) or not token or not expires_in.isdigit():
            raise DarajaMalformedReply("the token reply has no access_token or expires_in")
        return token, self._monotonic() + max(int(expires_in) - TOKEN_RENEW_MARGIN, 0.0)

    async def _call(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """POST with the token; once more with a new token if Daraja says it is invalid."""
        for attempt in (1, 2):
            token = await self._bearer()
            try:
                reply = await self._http.post(
                    self._base_url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=DARAJA_TIMEOUT,
                )
            except httpx.TimeoutException:
                raise DarajaUnavailable(f"{path} timed out") from None
            except httpx.HTTPError as exc:
                raise DarajaUnavailable(f"{path} could not be reached ({type(exc).__name__})") from None
            if reply.status_code == 401 or _error_code(reply) == INVALID_TOKEN:
                self._forget_token(token)
                if attempt == 1:
                    continue
                raise DarajaUnavailable(f"{path} refused a fresh token")
            return reply
        raise AssertionError("unreachable")


def _error_code(reply: httpx.Response) -> str:
    try:
        data = reply.json()
    except ValueError:
        return ""
    return str(data.get("errorCode") or "") if isinstance(data, dict) else ""


def _json_object(reply: httpx.Response) -> dict[str, Any]:
    return json_object(reply, "Daraja", DarajaUnavailable, DarajaMalformedReply)


def _whole_shillings(raw: str) -> int | None:
    """`100`, `100.00` or `100.` as 100; a fraction of a shilling is no amount this bot takes."""
    whole, _, cents = raw.partition(".")
    if not whole.isdigit() or (cents and cents.strip("0")) or (cents and not cents.isdigit()):
        return None
    return int(whole)


def _paid_at(raw: object) -> float | None:
    try:
        return datetime.strptime(str(raw), "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI).timestamp()
    except ValueError:
        return None
