"""A stand-in for Safaricom's Daraja (M-Pesa Express) that speaks the contract in `docs/daraja.md`.

It issues tokens that expire, checks the Bearer token and the STK password, answers queries the
way Daraja does (HTTP 500 `500.001.1001` while the payer has not answered), and POSTs callbacks
to the push's `CallBackURL`. It takes C2B URL registrations and, when a test or the console pays
by hand (`pay_by_hand`), POSTs the confirmation to the registered URL. It accepts reversals and
POSTs their results when asked (`deliver_reversal_results`): success, or `reversal_result_code`.
The payer's phone behaves as in the iPay sandbox: the last digit of the phone number decides
(`OUTCOME_BY_LAST_DIGIT`); an STK prompt asks for a fixed amount, so "pays less/more" pays in
full here. Time is read from
`clock`; no network, no money.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.domain import NAIROBI
from bot.providers.daraja import signing
from bot.sandbox.ipay import OUTCOME_BY_LAST_DIGIT, PhoneOutcome, Prompt

RESULT_BY_OUTCOME = {
    PhoneOutcome.PAY: ("0", "The service request is processed successfully."),
    PhoneOutcome.PAY_LESS: ("0", "The service request is processed successfully."),
    PhoneOutcome.PAY_MORE: ("0", "The service request is processed successfully."),
    PhoneOutcome.CANCEL: ("1032", "Request cancelled by user"),
    PhoneOutcome.WRONG_PIN: ("2001", "The initiator information is invalid."),
    PhoneOutcome.INSUFFICIENT: ("1", "The balance is insufficient for the transaction."),
    PhoneOutcome.NO_ANSWER: ("1037", "DS timeout user cannot be reached"),
}
BASE_URL = "http://daraja.sandbox"


@dataclass
class StkRequest:
    checkout_id: str
    merchant_id: str
    shortcode: str
    party_b: str
    phone: str
    amount: int
    account: str
    callback_url: str
    sent_at: float
    outcome: PhoneOutcome
    answered: PhoneOutcome | None = None
    result: PhoneOutcome | None = None
    receipt: str = ""
    concluded_at: float = 0.0


@dataclass
class Reversal:
    conversation_id: str
    receipt: str
    amount: int
    result_url: str
    timeout_url: str
    initiator: str
    result_sent: bool = False


REVERSAL_FAILURES = {
    "R000001": "The transaction has already been reversed.",
    "R000002": "The OriginalTransactionID is invalid.",
    "2001": "The initiator information is invalid.",
}


class DarajaSandbox:
    def __init__(
        self,
        *,
        consumer_key: str = "sandbox-key",
        consumer_secret: str = "sandbox-secret",
        shortcode: str = "174379",
        passkey: str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
        shop_name: str = "the shop",
        clock: Callable[[], float] = time.time,
        answer_delay: float = 3.0,
        prompt_lifetime: float = 60.0,
        token_lifetime: int = 3599,
    ) -> None:
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.shortcode, self.passkey = shortcode, passkey
        self.shop_name = shop_name
        self.prompt_listeners: list[Callable[[Prompt], None]] = []  # the console shows each prompt
        self.clock = clock
        self.answer_delay = answer_delay
        self.prompt_lifetime = prompt_lifetime
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token -> when it expires
        self.requests: dict[str, StkRequest] = {}  # by CheckoutRequestID
        self.calls: dict[str, int] = {}
        self.timeouts_next: dict[str, int] = {}  # path -> how many next calls time out (after acting)
        self.callback_client: httpx.AsyncClient | None = None
        self.callback_replies: list[tuple[str, int]] = []
        self.auto_callbacks = False  # whoever drives the sandbox calls back before each sweep
        self._callbacks_sent: set[str] = set()
        self.c2b_urls: dict[str, str] = {}  # the registered ConfirmationURL and ValidationURL
        self.confirmation_replies: list[tuple[str, int]] = []  # (TransID, the bot's HTTP status)
        self.reversals: list[Reversal] = []  # every reversal accepted, in order
        self.reversal_result_code = "0"  # what the next results say: "0" reversed, else a failure
        self.result_replies: list[tuple[str, int]] = []  # (ConversationID, the bot's HTTP status)
        self.asgi = Starlette(
            routes=[
                Route("/oauth/v1/generate", self._token, methods=["GET"]),
                Route("/mpesa/stkpush/v1/processrequest", self._push, methods=["POST"]),
                Route("/mpesa/stkpushquery/v1/query", self._query, methods=["POST"]),
                Route("/mpesa/c2b/v1/registerurl", self._register_c2b, methods=["POST"]),
                Route("/mpesa/reversal/v1/request", self._reversal, methods=["POST"]),
            ]
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        return _Transport(self)

    # -- the test's levers ----------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (Daraja's 401 `404.001.03`)."""
        self.tokens.clear()

    def open_prompt(self, phone: str) -> StkRequest | None:
        for stk in self.requests.values():
            self._settle(stk)
            if stk.phone == phone and stk.result is None:
                return stk
        return None

    def answer(self, phone: str, approve: bool) -> bool:
        stk = self.open_prompt(phone)
        if stk is None:
            return False
        stk.answered = PhoneOutcome.PAY if approve else PhoneOutcome.CANCEL
        self._settle(stk)
        return True

    def by_account(self, account: str) -> StkRequest | None:
        return next((stk for stk in self.requests.values() if stk.account == account), None)

    def confirmation_body(
        self, account: str, amount: int, phone: str = "254712345678", first_name: str = "WANJIRU", trans_id: str = ""
    ) -> dict[str, object]:
        """A C2B confirmation as Daraja sends it (MSISDN hashed, as Daraja now sends it)."""
        return {
            "TransactionType": "Pay Bill",
            "TransID": trans_id or "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10)),
            "TransTime": datetime.fromtimestamp(self.clock(), NAIROBI).strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount}.00",
            "BusinessShortCode": self.shortcode,
            "BillRefNumber": account,
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": hashlib.sha256(phone.encode()).hexdigest(),
            "FirstName": first_name,
        }

    async def pay_by_hand(
        self, account: str, amount: int, phone: str = "254712345678", first_name: str = "WANJIRU", trans_id: str = ""
    ) -> dict[str, object]:
        """A payer pays the Paybill by hand with this account: the confirmation is POSTed to the
        registered URL (the bot's status kept in `confirmation_replies`); returns what was sent."""
        body = self.confirmation_body(account, amount, phone, first_name, trans_id)
        await self.send_confirmation(body)
        return body

    async def send_confirmation(self, body: dict[str, object]) -> int:
        """POST one confirmation (again, to repeat one); the bot's HTTP status, 0 if unreachable."""
        url, client = self.c2b_urls.get("ConfirmationURL"), self.callback_client
        if url is None or client is None:
            raise RuntimeError("no C2B confirmation URL is registered")
        try:
            status = (await client.post(url, json=body)).status_code
        except httpx.HTTPError:
            status = 0
        self.confirmation_replies.append((str(body["TransID"]), status))
        return status

    async def deliver_reversal_results(self, *, queue_timeout: bool = False) -> int:
        """POST the result of every accepted reversal not yet answered (with `queue_timeout`, to its
        QueueTimeOutURL instead), saying `reversal_result_code`; returns how many."""
        client, sent = self.callback_client, 0
        if client is None:
            return 0
        for reversal in self.reversals:
            if reversal.result_sent:
                continue
            reversal.result_sent, sent = True, sent + 1
            code = self.reversal_result_code
            body = {
                "Result": {
                    "ResultType": 0,
                    "ResultCode": int(code) if code.isdigit() else code,
                    "ResultDesc": "The service request is processed successfully."
                    if code == "0"
                    else REVERSAL_FAILURES.get(code, "The reversal failed."),
                    "OriginatorConversationID": f"{secrets.randbelow(10**5)}-{secrets.randbelow(10**7)}-1",
                    "ConversationID": reversal.conversation_id,
                    "TransactionID": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10)),
                }
            }
            url = reversal.timeout_url if queue_timeout else reversal.result_url
            try:
                status = (await client.post(url, json=body)).status_code
            except httpx.HTTPError:
                status = 0
            self.result_replies.append((reversal.conversation_id, status))
        return sent

    # -- the phone ------------------------------------------------------------------------

    def _settle(self, stk: StkRequest) -> None:
        if stk.result is not None:
            return
        now = self.clock()
        if stk.answered is not None:
            self._conclude(stk, stk.answered, now)
        elif (
            stk.outcome not in (PhoneOutcome.ASK_HOLDER, PhoneOutcome.NO_ANSWER)
            and now >= stk.sent_at + self.answer_delay
        ):
            self._conclude(stk, stk.outcome, stk.sent_at + self.answer_delay)
        elif now >= stk.sent_at + self.prompt_lifetime:
            self._conclude(stk, PhoneOutcome.NO_ANSWER, now)

    def _conclude(self, stk: StkRequest, outcome: PhoneOutcome, at: float) -> None:
        stk.result, stk.concluded_at = outcome, at
        if RESULT_BY_OUTCOME[outcome][0] == "0":
            stk.receipt = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))

    # -- callbacks ------------------------------------------------------------------------

    def callback_body(self, stk: StkRequest) -> dict[str, object]:
        assert stk.result is not None
        code, words = RESULT_BY_OUTCOME[stk.result]
        body: dict[str, object] = {
            "MerchantRequestID": stk.merchant_id,
            "CheckoutRequestID": stk.checkout_id,
            "ResultCode": int(code),
            "ResultDesc": words,
        }
        if code == "0":
            stamp = int(datetime.fromtimestamp(stk.concluded_at, NAIROBI).strftime("%Y%m%d%H%M%S"))
            body["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": stk.amount},
                    {"Name": "MpesaReceiptNumber", "Value": stk.receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": stamp},
                    {"Name": "PhoneNumber", "Value": int(stk.phone)},
                ]
            }
        return {"Body": {"stkCallback": body}}

    async def deliver_callbacks(self) -> int:
        """POST the callback of every concluded prompt not yet called back."""
        client = self.callback_client
        due = []
        for stk in self.requests.values():
            self._settle(stk)
            if stk.result is not None and stk.checkout_id not in self._callbacks_sent:
                due.append(stk)
        if client is None:
            return 0
        for stk in due:
            self._callbacks_sent.add(stk.checkout_id)
            try:
                reply = await client.post(stk.callback_url, json=self.callback_body(stk))
                self.callback_replies.append((stk.checkout_id, reply.status_code))
            except httpx.HTTPError:
                self.callback_replies.append((stk.checkout_id, 0))
        return len(due)

    async def send_callbacks_forever(self, every: float = 0.2) -> None:
        """Call back as outcomes happen, as Daraja does, reversal results too (the console runs this)."""
        while True:
            await asyncio.sleep(every)
            await self.deliver_callbacks()
            await self.deliver_reversal_results()

    # -- the endpoints --------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse(
                {"requestId": "", "errorCode": "400.008.01", "errorMessage": "Invalid Authentication passed"}, 400
            )
        token = secrets.token_urlsafe(20)
        self.tokens[token] = self.clock() + self.token_lifetime
        return JSONResponse({"access_token": token, "expires_in": str(self.token_lifetime)})

    def _authorised(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return self.tokens.get(token, float("-inf")) > self.clock()

    def _password_problem(self, body: dict[str, object]) -> str | None:
        stamp = str(body.get("Timestamp", ""))
        if body.get("BusinessShortCode") != self.shortcode:
            return "Invalid BusinessShortCode"
        if body.get("Password") != signing.password(self.shortcode, self.passkey, stamp):
            return "Invalid Password"
        try:
            at = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI).timestamp()
        except ValueError:
            return "Invalid Timestamp"
        return None if abs(at - self.clock()) < 3600 else "Invalid Timestamp"

    async def _push(self, request: Request) -> Response:
        if not self._authorised(request):
            return _invalid_token()
        body = await request.json()
        problem = self._password_problem(body)
        phone = str(body.get("PhoneNumber", ""))
        if problem is None and not (phone.isdigit() and len(phone) == 12 and phone.startswith(("2547", "2541"))):
            problem = "Invalid PhoneNumber"
        if problem is None and not str(body.get("CallBackURL", "")).startswith(("https://", "http://")):
            problem = "Invalid CallBackURL"
        if problem is None and len(str(body.get("AccountReference", ""))) > 12:
            problem = "Invalid AccountReference"
        if problem:
            return _error(400, "400.002.02", f"Bad Request - {problem}")
        if self.open_prompt(phone) is not None:
            return _error(
                500,
                "500.001.1001",
                "Unable to lock subscriber, a transaction is already in process for the current subscriber",
            )
        stk = StkRequest(
            checkout_id=f"ws_CO_{secrets.token_hex(10)}",
            merchant_id=f"{secrets.randbelow(10**5)}-{secrets.randbelow(10**8)}-1",
            shortcode=str(body["BusinessShortCode"]),
            party_b=str(body.get("PartyB", "")),
            phone=phone,
            amount=int(str(body.get("Amount", "0"))),
            account=str(body.get("AccountReference", "")),
            callback_url=str(body["CallBackURL"]),
            sent_at=self.clock(),
            outcome=OUTCOME_BY_LAST_DIGIT[phone[-1]],
        )
        self.requests[stk.checkout_id] = stk
        prompt = Prompt(stk.account, phone, "mpesa", stk.amount, self.shop_name, stk.sent_at, stk.outcome)
        for listener in self.prompt_listeners:
            listener(prompt)
        return JSONResponse(
            {
                "MerchantRequestID": stk.merchant_id,
                "CheckoutRequestID": stk.checkout_id,
                "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
                "CustomerMessage": "Success. Request accepted for processing",
            }
        )

    async def _register_c2b(self, request: Request) -> Response:
        if not self._authorised(request):
            return _invalid_token()
        body = await request.json()
        if body.get("ShortCode") != self.shortcode:
            return _error(400, "400.003.02", "Bad Request - Invalid ShortCode")
        if body.get("ResponseType") not in ("Completed", "Cancelled"):
            return _error(400, "400.003.02", "Bad Request - Invalid ResponseType")
        urls = {name: str(body.get(name, "")) for name in ("ConfirmationURL", "ValidationURL")}
        if not all(url.startswith(("https://", "http://")) for url in urls.values()):
            return _error(400, "400.003.02", "Bad Request - Invalid URL")
        self.c2b_urls = urls
        return JSONResponse(
            {"OriginatorCoversationID": secrets.token_hex(8), "ResponseCode": "0", "ResponseDescription": "success"}
        )

    async def _reversal(self, request: Request) -> Response:
        if not self._authorised(request):
            return _invalid_token()
        body = await request.json()
        missing = [
            name
            for name in ("Initiator", "SecurityCredential", "TransactionID", "ResultURL", "QueueTimeOutURL")
            if not str(body.get(name, ""))
        ]
        if missing or body.get("CommandID") != "TransactionReversal" or str(body.get("RecieverIdentifierType")) != "11":
            return _error(400, "400.002.02", f"Bad Request - Invalid {', '.join(missing) or 'CommandID'}")
        if str(body.get("ReceiverParty")) != self.shortcode:
            return _error(400, "400.002.02", "Bad Request - Invalid ReceiverParty")
        reversal = Reversal(
            conversation_id=f"AG_{datetime.fromtimestamp(self.clock(), NAIROBI):%Y%m%d}_{secrets.token_hex(10)}",
            receipt=str(body["TransactionID"]),
            amount=int(str(body.get("Amount") or 0)),
            result_url=str(body["ResultURL"]),
            timeout_url=str(body["QueueTimeOutURL"]),
            initiator=str(body["Initiator"]),
        )
        self.reversals.append(reversal)
        return JSONResponse(
            {
                "OriginatorConversationID": f"{secrets.randbelow(10**5)}-{secrets.randbelow(10**7)}-1",
                "ConversationID": reversal.conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            }
        )

    async def _query(self, request: Request) -> Response:
        if not self._authorised(request):
            return _invalid_token()
        body = await request.json()
        problem = self._password_problem(body)
        stk = self.requests.get(str(body.get("CheckoutRequestID", "")))
        if problem or stk is None:
            return _error(400, "400.002.02", f"Bad Request - {problem or 'Invalid CheckoutRequestID'}")
        self._settle(stk)
        if stk.result is None:
            return _error(500, "500.001.1001", "The transaction is being processed")
        code, words = RESULT_BY_OUTCOME[stk.result]
        return JSONResponse(
            {
                "ResponseCode": "0",
                "ResponseDescription": "The service request has been accepted successsfully",
                "MerchantRequestID": stk.merchant_id,
                "CheckoutRequestID": stk.checkout_id,
                "ResultCode": code,
                "ResultDesc": words,
            }
        )


def _error(status: int, code: str, words: str) -> JSONResponse:
    return JSONResponse({"requestId": secrets.token_hex(8), "errorCode": code, "errorMessage": words}, status)


def _invalid_token() -> JSONResponse:
    return _error(401, "404.001.03", "Invalid Access Token")


class _Transport(httpx.AsyncBaseTransport):
    """In-process transport; a path listed in `timeouts_next` is served, then times out (the
    request reached Daraja, the answer is lost)."""

    def __init__(self, sandbox: DarajaSandbox) -> None:
        self._sandbox = sandbox
        self._asgi = httpx.ASGITransport(app=sandbox.asgi)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls = self._sandbox.calls
        calls[path] = calls.get(path, 0) + 1
        reply = await self._asgi.handle_async_request(request)
        if self._sandbox.timeouts_next.get(path, 0) > 0:
            self._sandbox.timeouts_next[path] -= 1
            await asyncio.sleep(0)
            raise httpx.ReadTimeout("sandbox: timed out", request=request)
        return reply
