"""A stand-in for iPay Africa that speaks the contract in `docs/ipay.md` exactly.

It checks every hash with the configured key and refuses the way iPay refuses, keeps
transactions, and simulates the payer's phone: the last digit of the phone number decides
what the payer does with the prompt (see `OUTCOME_BY_LAST_DIGIT`). No money, no network:
it runs in-process (`transport()`, no socket) or as a server (`python -m bot.sandbox`).

Time is read from `clock`, and outcomes are worked out when someone looks, so tests can
move a manual clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.domain import NAIROBI
from bot.providers.ipay import signing


class PhoneOutcome(StrEnum):
    PAY = "pays in full"
    CANCEL = "cancels the prompt"
    WRONG_PIN = "enters a wrong PIN"
    INSUFFICIENT = "has too little balance"
    NO_ANSWER = "never answers (the prompt times out)"
    PAY_LESS = "pays less than asked"
    PAY_MORE = "pays more than asked"
    ASK_HOLDER = "waits for the phone's holder to approve or decline"


OUTCOME_BY_LAST_DIGIT: dict[str, PhoneOutcome] = {
    "0": PhoneOutcome.ASK_HOLDER,
    "1": PhoneOutcome.CANCEL,
    "2": PhoneOutcome.WRONG_PIN,
    "3": PhoneOutcome.INSUFFICIENT,
    "4": PhoneOutcome.NO_ANSWER,
    "5": PhoneOutcome.PAY_LESS,
    "6": PhoneOutcome.PAY_MORE,
    "7": PhoneOutcome.PAY,
    "8": PhoneOutcome.PAY,
    "9": PhoneOutcome.PAY,
}

FAILURE_TEXT = {
    PhoneOutcome.CANCEL: "The request was canceled by the user",
    PhoneOutcome.WRONG_PIN: "Incorrect pin has been entered",
    PhoneOutcome.INSUFFICIENT: "The User Wallet balance is insufficient for the transaction",
    PhoneOutcome.NO_ANSWER: "transaction was timed out",
}

# As real replies list them: three channels, of which iPay signs MPESA and AIRTEL only.
PAYBILLS = (("MPESA", "261144"), ("AIRTEL", "510800"), ("EQUITEL", "510800"))
PAYER_NAMES = (("JOHN", "DOE"), ("WANJIKU", "KAMAU"), ("OTIENO", "ODHIAMBO"), ("AMINA", "HASSAN"), ("KIPTOO", "RONO"))
API_PREFIX = "/payments/v2"  # as at apis.ipayafrica.com; fault paths are given without it
CALLBACKS_IN_FLIGHT = 100  # callbacks being delivered at once; the rest wait their turn
_OID = re.compile(r"^[A-Za-z0-9]{1,34}$")
_PHONE = re.compile(r"^254[17]\d{8}$")
_AMOUNT = re.compile(r"^\d+$")
_TRANSACT_REQUIRED = ("live", "oid", "inv", "amount", "tel", "eml", "vid", "curr", "cst", "hash")


class Fault(StrEnum):
    """What a request can be made to suffer. `TIMEOUT` and `DISCONNECT` act in the transport."""

    SERVER_ERROR = "500"
    HTML = "html"
    RATE_LIMITED = "429"
    NOT_JSON = "garbage"
    TIMEOUT = "timeout"
    DISCONNECT = "disconnect"


class Quirk(StrEnum):
    """Answers live iPay may give that no published sample shows, switched on per sandbox
    (`IpaySandbox.quirks`) so each is tested through the bot end to end."""

    SEARCH_UNKNOWN_SHAPE = "search-unknown-shape"  # HTTP 200, status 0, words nobody documents
    SEARCH_BAD_HASH = "search-bad-hash"  # a paid record whose reply hash does not verify
    SEARCH_OTHER_ORDER = "search-other-order"  # a paid record, validly signed, of another order
    SEARCH_ZERO_AMOUNT = "search-zero-amount"  # a paid record of KES 0.00
    PUSH_500 = "push-500"  # the push answers HTTP 500 / header_status 500, yet the prompt goes out
    TRANSACT_HASH_ECHO = "transact-hash-echo"  # /transact refuses, naming the hash it expected
    EMPTY_ACCOUNT = "empty-account"  # /transact answers `"account": ""`


@dataclass
class Faults:
    """Fault injection: queued faults hit the next matching calls; rates hit at random."""

    latency: float = 0.0
    server_error_rate: float = 0.0
    html_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0  # how long a TIMEOUT hangs when served over a real socket
    queued: list[tuple[str, Fault]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def fail_next(self, path: str, fault: Fault, times: int = 1) -> None:
        """Make the next `times` calls to `path` (e.g. "/transaction/search") suffer `fault`."""
        self.queued.extend([(path, fault)] * times)

    def take(self, path: str) -> Fault | None:
        for index, (prefix, fault) in enumerate(self.queued):
            if path == prefix:
                del self.queued[index]
                return fault
        roll = self.rng.random()
        for rate, fault in (
            (self.server_error_rate, Fault.SERVER_ERROR),
            (self.html_rate, Fault.HTML),
            (self.timeout_rate, Fault.TIMEOUT),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None


@dataclass
class Prompt:
    """A PIN prompt showing on a simulated phone."""

    oid: str
    phone: str
    network: str
    amount: int
    shop_name: str
    sent_at: float
    outcome: PhoneOutcome
    answered: PhoneOutcome | None = None  # set by the holder in ASK_HOLDER mode


@dataclass
class Transaction:
    oid: str
    amount: int
    tel: str
    sid: str
    account: str
    callback_url: str
    created_at: float
    prompt: Prompt | None = None
    result: PhoneOutcome | None = None
    record: dict[str, str] | None = None  # the paid record, once paid


@dataclass
class Stats:
    calls: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0


class IpaySandbox:
    def __init__(
        self,
        *,
        vid: str = "demo",
        hash_key: str = "demoCHANGED",
        shop_name: str = "the shop",
        clock: Callable[[], float] = time.time,
        answer_delay: float = 3.0,
        prompt_lifetime: float = 60.0,
        faults: Faults | None = None,
    ) -> None:
        self.vid = vid.lower()
        self._key = hash_key
        self.shop_name = shop_name
        self.clock = clock
        self.answer_delay = answer_delay
        self.prompt_lifetime = prompt_lifetime
        self.faults = faults or Faults()
        self.quirks: set[Quirk] = set()
        self.transactions: dict[str, Transaction] = {}
        # Indexes, so a burst of thousands of orders costs no scan of them all per call:
        self._oid_by_sid: dict[str, str] = {}
        self._open_oid_by_phone: dict[str, str] = {}  # the order whose prompt the phone may still show
        self._callback_oids: dict[str, None] = {}  # orders with a cbk, not called back yet
        self.stats = Stats()
        self.prompt_listeners: list[Callable[[Prompt], None]] = []
        self.callback_client: httpx.AsyncClient | None = None  # how to reach the bot's cbk URL
        self.callback_replies: list[tuple[str, int]] = []
        self.auto_callbacks = False  # server mode: send callbacks as outcomes happen
        self._callbacks_sent: set[str] = set()
        self._callback_loop: asyncio.Task[None] | None = None
        # A burst's callbacks queue here rather than in the HTTP client's pool.
        self._callbacks_in_flight = asyncio.Semaphore(CALLBACKS_IN_FLIGHT)
        self._rng = random.Random(11)
        # The vendor's balances a refund is paid from: C2B (what payers paid in) first, then B2C
        # (bulk pay). Payments add to C2B; `top_up` adds to B2C; a refund neither covers is refused.
        self.c2b_balance = 0
        self.b2c_balance = 0
        self.refunded: dict[str, float] = {}  # transaction code -> when it was refunded
        routes = [
            Route("/transact", self._transact, methods=["POST"]),
            Route("/transact/push/{network}", self._push, methods=["POST"]),
            Route("/transaction/search", self._search, methods=["POST"]),
            Route("/transaction/refund", self._refund, methods=["POST"]),
        ]
        self.asgi = Starlette(routes=[Mount(API_PREFIX, routes=routes)])
        self.asgi.add_middleware(_FaultMiddleware, sandbox=self)

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that reaches this sandbox in-process, with transport-level faults."""
        return _SandboxTransport(self)

    # -- the phone's side ---------------------------------------------------------------

    def open_prompt(self, phone: str) -> Prompt | None:
        txn = self.transactions.get(self._open_oid_by_phone.get(phone, ""))
        if txn is not None:
            self._settle(txn)
            if txn.prompt and txn.prompt.phone == phone and txn.result is None:
                return txn.prompt
        self._open_oid_by_phone.pop(phone, None)
        return None

    def waiting_for_holder(self) -> list[str]:
        """Phones whose prompt is open and waits for its holder to approve or decline (…0)."""
        phones = set()
        for txn in self.transactions.values():
            self._settle(txn)
            if txn.prompt and txn.result is None and txn.prompt.outcome is PhoneOutcome.ASK_HOLDER:
                phones.add(txn.prompt.phone)
        return sorted(phones)

    def answer(self, phone: str, approve: bool) -> bool:
        """The phone's holder approves (pays in full) or declines the open prompt."""
        prompt = self.open_prompt(phone)
        if prompt is None:
            return False
        prompt.answered = PhoneOutcome.PAY if approve else PhoneOutcome.CANCEL
        txn = self.transactions[prompt.oid]
        self._settle(txn)
        return True

    def pay_by_paybill(self, oid: str, amount: int | None = None) -> None:
        """The payer pays the order by hand (Lipa na M-PESA → Pay Bill → the order's account),
        whatever became of the prompt: from now on search finds the payment."""
        txn = self.transactions[oid]
        self._settle(txn)
        txn.result = None
        self._conclude(txn, PhoneOutcome.PAY, self.clock())
        if amount is not None and txn.record is not None:
            self.c2b_balance += amount - _paid_amount(txn.record)
            txn.record["transaction_amount"] = f"{amount}.00"

    def _settle(self, txn: Transaction) -> None:
        """Work out what the phone has done with the prompt by now."""
        prompt = txn.prompt
        if prompt is None or txn.result is not None:
            return
        now = self.clock()
        if prompt.answered is not None:
            self._conclude(txn, prompt.answered, now)
        elif (
            prompt.outcome not in (PhoneOutcome.ASK_HOLDER, PhoneOutcome.NO_ANSWER)
            and now >= prompt.sent_at + self.answer_delay
        ):
            self._conclude(txn, prompt.outcome, prompt.sent_at + self.answer_delay)
        elif now >= prompt.sent_at + self.prompt_lifetime:  # nobody answered in the prompt's lifetime
            self._conclude(txn, PhoneOutcome.NO_ANSWER, now)

    def _conclude(self, txn: Transaction, outcome: PhoneOutcome, at: float) -> None:
        txn.result = outcome
        if outcome not in (PhoneOutcome.PAY, PhoneOutcome.PAY_LESS, PhoneOutcome.PAY_MORE):
            return
        amount = txn.amount
        if outcome is PhoneOutcome.PAY_LESS:
            amount -= max(1, amount // 10)
        elif outcome is PhoneOutcome.PAY_MORE:
            amount += max(1, amount // 10)
        first, last = self._rng.choice(PAYER_NAMES)
        self.c2b_balance += amount
        txn.record = {
            "vid": self.vid,
            "sid": txn.sid,
            "oid": txn.oid,
            "transaction_amount": f"{amount}.00",
            "transaction_code": receipt_code(),
            "telephone": txn.prompt.phone if txn.prompt else txn.tel,
            "firstname": first,
            "lastname": last,
            "paid_at": datetime.fromtimestamp(at, NAIROBI).strftime("%Y-%m-%d %H:%M:%S"),
            "payment_mode": "MPESA" if txn.prompt is None or txn.prompt.network == "mpesa" else "AIRTEL",
        }

    # -- callbacks ------------------------------------------------------------------------

    async def deliver_callbacks(self) -> int:
        """Call `cbk` (GET, iPay's query parameters) for every outcome not yet called back,
        all at once, as iPay's own callbacks arrive independently of each other."""
        due = []
        for oid in list(self._callback_oids):
            txn = self.transactions.get(oid)
            if txn is None:
                del self._callback_oids[oid]
                continue
            self._settle(txn)
            if txn.callback_url and txn.result is not None and txn.oid not in self._callbacks_sent:
                due.append(txn)
        client = self.callback_client
        if client is None:  # not calling back (yet): these stay due
            return 0
        self._callbacks_sent.update(txn.oid for txn in due)
        for txn in due:
            self._callback_oids.pop(txn.oid, None)
        await asyncio.gather(*(self._call_back(client, txn) for txn in due))
        return len(due)

    async def _call_back(self, client: httpx.AsyncClient, txn: Transaction) -> None:
        try:
            async with self._callbacks_in_flight:
                reply = await client.get(txn.callback_url, params=self.callback_query(txn))
            self.callback_replies.append((txn.oid, reply.status_code))
        except httpx.HTTPError as exc:
            self.callback_replies.append((txn.oid, 0))
            print(f"sandbox: callback for {txn.oid} failed: {type(exc).__name__}", flush=True)

    def callback_query(self, txn: Transaction) -> dict[str, str]:
        codes = {
            PhoneOutcome.PAY: "aei7p7yrx4ae34",
            PhoneOutcome.PAY_LESS: "dtfi4p7yty45wq",
            PhoneOutcome.PAY_MORE: "eq3i7p5yt7645e",
        }
        record = txn.record or {}
        junk = {name: secrets.token_hex(6) for name in ("uyt", "agt", "qwh", "ifd", "afd", "poi")}
        return {
            "status": codes.get(txn.result, "fe2707etr5s4wq") if txn.result else "bdi6p2yy76etrs",
            "txncd": record.get("transaction_code", ""),
            "msisdn_id": f"{record.get('firstname', '')} {record.get('lastname', '')}".strip(),
            "msisdn_idnum": txn.prompt.phone if txn.prompt else txn.tel,
            "p1": "",
            "p2": "",
            "p3": "",
            "p4": "",
            **junk,
            "id": txn.oid,
            "ivm": txn.oid,
            "mc": record.get("transaction_amount", "0.00"),
            "channel": record.get("payment_mode", "MPESA"),
        }

    async def _send_callbacks_forever(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            asyncio.get_running_loop().create_task(self.deliver_callbacks())  # a slow bot holds up no one

    # -- the three endpoints ------------------------------------------------------------

    async def _transact(self, request: Request) -> Response:
        fields = await _fields(request)
        missing = [name for name in _TRANSACT_REQUIRED if name not in fields]
        if missing:
            return _invalid(f"Missing parameter(s): {', '.join(missing)}")
        if fields["vid"] != self.vid:
            return _invalid("Invalid vendor id")
        if not signing.same_hash(signing.transact_hash(self._key, fields), fields["hash"]):
            return _invalid("Invalid hash: the hash does not match the parameters sent")
        if Quirk.TRANSACT_HASH_ECHO in self.quirks:  # iPay's own wording, valid signature included
            expected = signing.transact_hash(self._key, fields)
            return _invalid(f"Hash ID mismatch, please use the correct hash {expected}")
        problem = self._transact_problem(fields)
        if problem:
            return _invalid(problem)
        sid = "SID" + secrets.token_hex(14).upper() + "SANDBOX"
        account = "FT" + "".join(self._rng.choice(string.digits) for _ in range(8))
        if Quirk.EMPTY_ACCOUNT in self.quirks:
            account = ""
        txn = Transaction(
            oid=fields["oid"],
            amount=int(fields["amount"]),
            tel=fields["tel"],
            sid=sid,
            account=account,
            callback_url=fields.get("cbk", ""),
            created_at=self.clock(),
        )
        self.transactions[txn.oid] = txn
        self._oid_by_sid[sid] = txn.oid
        if txn.callback_url:
            self._callback_oids[txn.oid] = None
        data_hash = signing.transact_reply_hash(self._key, account, str(txn.amount), txn.oid, sid, dict(PAYBILLS))
        data = {
            "sid": sid,
            "oid": txn.oid,
            "amount": str(txn.amount),
            "account": account,
            "payment_channels": [{"name": name, "paybill": paybill} for name, paybill in PAYBILLS],
            "hash": data_hash,
        }
        return JSONResponse({"header_status": 200, "status": 1, "data": data})

    def _transact_problem(self, fields: Mapping[str, str]) -> str | None:
        if fields["live"] != "0":
            return "The sandbox takes test transactions only (live=0)"
        if not _OID.match(fields["oid"]):
            return "Invalid order id"
        if fields["oid"] in self.transactions:
            return "Duplicate order id: this oid has been used before"
        if not _AMOUNT.match(fields["amount"]) or int(fields["amount"]) < 10:
            return "Invalid amount: the minimum is 10"
        if not _PHONE.match(fields["tel"]):
            return "Invalid telephone number"
        if fields["curr"] != "KES":
            return "Invalid currency"
        return None

    async def _push(self, request: Request) -> Response:
        network = request.path_params["network"]
        fields = await _fields(request)
        if network not in ("mpesa", "airtel"):
            return JSONResponse({"header_status": 404, "status": 0, "text": "Not found"}, status_code=404)
        if any(name not in fields for name in ("phone", "sid", "vid", "hash")):
            return _invalid("Missing parameter(s)")
        if fields["vid"] != self.vid:
            return _invalid("Invalid vendor id")
        if not signing.same_hash(
            signing.push_hash(self._key, fields["phone"], fields["vid"], fields["sid"]), fields["hash"]
        ):
            return _invalid("Invalid hash: the hash does not match the parameters sent")
        txn = self.transactions.get(self._oid_by_sid.get(fields["sid"], ""))
        if txn is None:
            return _invalid("Invalid sid")
        if not _PHONE.match(fields["phone"]):
            return _invalid("Invalid phone number")
        self._settle(txn)
        if txn.result is not None or txn.prompt is not None:
            return _push_refused("This transaction has already been processed")
        if self.open_prompt(fields["phone"]) is not None:
            return _push_refused("A payment request is already pending on this number. Please try again later.")
        phone = fields["phone"]
        txn.prompt = Prompt(
            oid=txn.oid,
            phone=phone,
            network=network,
            amount=txn.amount,
            shop_name=self.shop_name,
            sent_at=self.clock(),
            outcome=OUTCOME_BY_LAST_DIGIT[phone[-1]],
        )
        self._open_oid_by_phone[phone] = txn.oid
        for listener in self.prompt_listeners:
            listener(txn.prompt)
        if self.auto_callbacks:
            loop = asyncio.get_running_loop()
            if self._callback_loop is None:  # the backstop for outcomes that come without a timer
                self._callback_loop = loop.create_task(self._send_callbacks_forever())
            # Called back when the payer answers, as iPay does, not at the backstop's next turn.
            loop.call_later(self.answer_delay, lambda: loop.create_task(self.deliver_callbacks()))
        if Quirk.PUSH_500 in self.quirks:
            return _push_refused("Internal server error")
        text = f"A Payment request has been sent to the {network.upper()} number {phone}."
        return JSONResponse({"header_status": 200, "status": 1, "text": text})

    async def _search(self, request: Request) -> Response:
        fields = await _fields(request)
        if any(name not in fields for name in ("oid", "vid", "hash")):
            return _invalid("Missing parameter(s)")
        if fields["vid"] != self.vid:
            return _invalid("Invalid vendor id")
        if not signing.same_hash(signing.search_hash(self._key, fields["oid"], fields["vid"]), fields["hash"]):
            return _invalid("Invalid hash: the hash does not match the parameters sent")
        if Quirk.SEARCH_UNKNOWN_SHAPE in self.quirks:
            return JSONResponse({"header_status": 200, "status": 0, "text": "Request is being processed"})
        txn = self.transactions.get(fields["oid"])
        if txn is not None:
            self._settle(txn)
        if txn is None or txn.result is None:
            return JSONResponse({"header_status": 404, "status": 0, "text": "no payment record found"}, status_code=404)
        if txn.record is None:
            body = {"header_status": 400, "status": 0, "message": FAILURE_TEXT[txn.result]}
            return JSONResponse(body, status_code=400)
        record = dict(txn.record)
        if Quirk.SEARCH_OTHER_ORDER in self.quirks:
            record["oid"] = next((oid for oid in self.transactions if oid != txn.oid), txn.oid + "X")
        if Quirk.SEARCH_ZERO_AMOUNT in self.quirks:
            record["transaction_amount"] = "0.00"
        # Signed as iPay signs it: oid + vid + transaction_code + firstname + lastname + paid_at +
        # payment_mode + sid (docs/ipay.md §3); with another key when its hash must not verify.
        key = "not-" + self._key if Quirk.SEARCH_BAD_HASH in self.quirks else self._key
        reply_hash = signing.search_reply_hash(key, record)
        return JSONResponse(
            {"header_status": 200, "status": 1, "text": "payment record found", "data": record, "hash": reply_hash}
        )

    # -- refunds (docs/ipay.md §6) ----------------------------------------------------------

    def top_up(self, amount: int) -> None:
        """The vendor tops up its B2C (bulk pay) balance, which refunds draw on after C2B."""
        self.b2c_balance += amount

    def empty_balances(self) -> None:
        """Settlement has swept the vendor's balances to the bank: refunds are refused until a top-up."""
        self.c2b_balance = self.b2c_balance = 0

    def _paid_by_code(self, code: str) -> dict[str, str] | None:
        for txn in self.transactions.values():
            if txn.record is not None and txn.record["transaction_code"] == code:
                return txn.record
        return None

    async def _refund(self, request: Request) -> Response:
        fields = await _fields(request)
        if any(name not in fields for name in ("code", "vid", "hash")):
            return _invalid("Missing parameter(s)")
        if fields["vid"] != self.vid:
            return _invalid("Invalid vendor id")
        if not signing.same_hash(signing.refund_hash(self._key, fields["code"], fields["vid"]), fields["hash"]):
            return _invalid("Invalid hash: the hash does not match the parameters sent")
        record = self._paid_by_code(fields["code"])
        if record is None:
            return _refund_refused("Transaction not found")
        if fields["code"] in self.refunded:
            return _refund_refused("Transaction already refunded")
        amount = _paid_amount(record)
        if amount > self.c2b_balance + self.b2c_balance:
            return _refund_refused("Insufficient funds in your account to process the refund")
        from_c2b = min(amount, self.c2b_balance)
        self.c2b_balance -= from_c2b
        self.b2c_balance -= amount - from_c2b
        self.refunded[fields["code"]] = self.clock()
        return JSONResponse(
            {
                "status": 200,
                "text": "Refund done",
                "amount": f"{amount}.00",
                "code": fields["code"],
                "c2bfunds": f"{self.c2b_balance}.00",
                "b2cfunds": f"{self.b2c_balance}.00",
            }
        )


def _paid_amount(record: dict[str, str]) -> int:
    return int(float(record["transaction_amount"]))


def _refund_refused(text: str) -> JSONResponse:
    return JSONResponse({"status": 400, "text": text}, status_code=400)


RECEIPT_LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"  # no I, L, O: never mistaken for 1 or 0
RECEIPT_ALPHABET = RECEIPT_LETTERS + "23456789"
_RECEIPTS = random.SystemRandom()  # unlike the payers' choices, never the same across runs


def receipt_code() -> str:
    """Ten capitals and digits, starting with a letter, like an M-Pesa receipt; without
    look-alike characters, and fresh in every run (not from the seeded random the payers use)."""
    return _RECEIPTS.choice(RECEIPT_LETTERS) + "".join(_RECEIPTS.choice(RECEIPT_ALPHABET) for _ in range(9))


async def _fields(request: Request) -> dict[str, str]:
    """iPay integrations post JSON or forms: take either."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return {}
        return {str(k): "" if v is None else str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))


def _invalid(text: str) -> JSONResponse:
    return JSONResponse({"error": [{"text": text}]}, status_code=400)


def _push_refused(text: str) -> JSONResponse:
    return JSONResponse({"header_status": 500, "status": 0, "text": text}, status_code=500)


FAULT_HEADER = "x-sandbox-fault"  # set by the in-process transport, which picks the fault itself


class _FaultMiddleware:
    """HTTP-level faults and latency, so they also happen when served over a socket."""

    def __init__(self, app: ASGIApp, sandbox: IpaySandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stats, faults, path = self.sandbox.stats, self.sandbox.faults, scope["path"].removeprefix(API_PREFIX)
        stats.calls[path] = stats.calls.get(path, 0) + 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if faults.latency:
                await asyncio.sleep(faults.latency)
            fault = _fault_from_header(scope) if _has_fault_header(scope) else faults.take(path)
            if fault is Fault.TIMEOUT:
                await asyncio.sleep(faults.hang_seconds)
            response = _fault_response(fault)
            if response is not None:
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            stats.in_flight -= 1


def _has_fault_header(scope: Scope) -> bool:
    return any(name == FAULT_HEADER.encode() for name, _ in scope.get("headers", []))


def _fault_from_header(scope: Scope) -> Fault | None:
    for name, value in scope.get("headers", []):
        if name == FAULT_HEADER.encode() and value != b"none":
            return Fault(value.decode())
    return None


def _fault_response(fault: Fault | None) -> Response | None:
    if fault is Fault.SERVER_ERROR:
        return JSONResponse({"header_status": 500, "status": 0, "text": "Internal Server Error"}, status_code=502)
    if fault is Fault.HTML:
        return HTMLResponse("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", status_code=503)
    if fault is Fault.RATE_LIMITED:
        return JSONResponse({"text": "Too many requests"}, status_code=429, headers={"Retry-After": "7"})
    if fault is Fault.NOT_JSON:
        return Response("OK", status_code=200, media_type="text/plain")
    return None


class _SandboxTransport(httpx.AsyncBaseTransport):
    """In-process transport. It picks each call's fault; timeouts and refused connections
    are raised here as httpx's own errors, the rest are served by the middleware."""

    def __init__(self, sandbox: IpaySandbox) -> None:
        self._sandbox = sandbox
        self._asgi = httpx.ASGITransport(app=sandbox.asgi, raise_app_exceptions=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(API_PREFIX)
        fault = self._sandbox.faults.take(path)
        if fault in (Fault.TIMEOUT, Fault.DISCONNECT):
            calls = self._sandbox.stats.calls
            calls[path] = calls.get(path, 0) + 1
            if self._sandbox.faults.latency:
                await asyncio.sleep(self._sandbox.faults.latency)
            if fault is Fault.TIMEOUT:
                raise httpx.ReadTimeout("sandbox: timed out", request=request)
            raise httpx.ConnectError("sandbox: connection refused", request=request)
        request.headers[FAULT_HEADER] = fault.value if fault else "none"
        return await self._asgi.handle_async_request(request)
