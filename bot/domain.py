"""Domain values: orders, their states, the two mobile-money networks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from enum import StrEnum
from typing import Any

NAIROBI = timezone(timedelta(hours=3), "EAT")  # the shops' clock: Kenya keeps no daylight saving

ORDER_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till
ORDER_ID_LENGTH = 12  # 60 bits: unguessable, and iPay allows up to 34 characters


class Network(StrEnum):
    MPESA = "mpesa"
    AIRTEL = "airtel"

    @property
    def label(self) -> str:
        return "M-Pesa" if self is Network.MPESA else "Airtel Money"

    @property
    def other(self) -> Network:
        return Network.AIRTEL if self is Network.MPESA else Network.MPESA


class OrderStatus(StrEnum):
    PENDING = "pending"  # written; the prompt is being sent or waits on the phone
    PAID = "paid"
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    CANCELLED = "cancelled"  # the payer declined the prompt on the phone
    FAILED = "failed"  # refused by iPay, wrong PIN, insufficient balance, ...
    EXPIRED = "expired"  # no answer in time
    WITHDRAWN = "withdrawn"  # cancelled in the chat before paying

    @property
    def closed(self) -> bool:
        """No longer pending: the payer's prompt is over and no new one is sent for this order.

        Not final: money that arrives late still moves a withdrawn, expired, cancelled or failed
        order to paid (see `sources`)."""
        return self is not OrderStatus.PENDING

    @property
    def money_received(self) -> bool:
        return self in (OrderStatus.PAID, OrderStatus.UNDERPAID, OrderStatus.OVERPAID)

    @property
    def can_retry(self) -> bool:
        """Ended without money: the payer may send the prompt again."""
        return self.closed and not self.money_received

    def sources(self) -> tuple[OrderStatus, ...]:
        """The states an order may move to this one from: the one table of transitions.

        A pending order may end any way. Money that arrives late still counts, so an order
        that expired, was declined, failed or was cancelled in the chat may still become
        paid. Nothing leaves a state where money was received, and nothing goes back to
        pending, so finalising twice changes nothing.
        """
        if self is OrderStatus.PENDING:
            return ()
        if self.money_received:
            return (
                OrderStatus.PENDING,
                OrderStatus.EXPIRED,
                OrderStatus.CANCELLED,
                OrderStatus.FAILED,
                OrderStatus.WITHDRAWN,
            )
        return (OrderStatus.PENDING,)


def new_order_id() -> str:
    """A fresh random id for every attempt: iPay order ids must never be reused or guessable."""
    return "".join(secrets.choice(ORDER_ID_ALPHABET) for _ in range(ORDER_ID_LENGTH))


def local_phone(phone: str) -> str:
    """`254712345678` -> `0712 345 678`: the form Kenyans write and recognise their own number in."""
    if len(phone) != 12 or not phone.startswith("254"):
        return phone
    local = "0" + phone[3:]
    return f"{local[:4]} {local[4:7]} {local[7:]}"


def mask_phone(phone: str) -> str:
    """`254712345678` -> `07** ***678`: enough to recognise, not enough to dial; one way everywhere."""
    if len(phone) < 8:
        return "*" * len(phone)
    local = "0" + phone[3:] if phone.startswith("254") else phone
    return local[:2] + "** ***" + local[-3:]


@dataclass(frozen=True)
class PaymentRequest:
    """Who wants which phone prompted for how much: what every new order starts from."""

    chat_id: int  # 0 for the REST API, which has no chat
    user_id: int
    phone: str
    network: Network
    amount: int
    requested_by: str = ""
    source: str = "chat"  # "chat" or "api"
    reference: str | None = None
    email: str | None = None
    pay_request_id: str | None = None  # the merchant's payment request this pays


@dataclass(frozen=True)
class Order:
    id: str
    chat_id: int
    user_id: int
    phone: str
    network: Network
    amount: int
    status: OrderStatus
    created_at: float
    updated_at: float
    next_poll_at: float | None = None
    poll_count: int = 0
    session_ref: str | None = None
    prompt_sent_at: float | None = None
    prompt_message_id: int | None = None
    receipt_code: str | None = None
    payer_name: str | None = None
    paid_amount: int | None = None
    paid_at: float | None = None
    last_error: str | None = None
    retry_order_id: str | None = None  # the attempt that "Send the prompt again" started from this one
    requested_by: str = ""  # who asked, as the merchant should see it: "Amina (@amina, 501)"
    source: str = "chat"  # "chat" or "api"
    reference: str | None = None  # the caller's own reference (REST API)
    email: str | None = None  # the payer's email for iPay's receipt (REST API)
    initiate_at: float | None = None  # when sending the prompt was claimed (before /transact)
    paybill_account: str | None = None  # the account number for paying this order by Pay Bill by hand
    paybill_numbers: tuple[tuple[str, str], ...] = ()  # (channel, Pay Bill number) pairs for paying by hand
    schedule_version: int = 0  # bumped by every change to next_poll_at; a stale lookup loses
    watch_until: float | None = None  # a closed order is still looked up until then (late money)
    pay_request_id: str | None = None  # the merchant's payment request this order pays, if any
    doubt_since: float | None = None  # past its deadline without an answer iPay could be trusted for

    @property
    def in_doubt(self) -> bool:
        """Still pending after its deadline because iPay has not answered in a way the bot can
        trust: the payer and the shop have been told, and the lookups go on."""
        return self.status is OrderStatus.PENDING and self.doubt_since is not None

    @property
    def reached_provider(self) -> bool:
        """/transact answered and was recorded: iPay knows this order."""
        return self.session_ref is not None

    @property
    def has_chat(self) -> bool:
        """Orders made through the REST API belong to no chat (chat id 0)."""
        return self.chat_id != 0

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


@dataclass(frozen=True)
class Payment:
    """What iPay says was paid for an order."""

    receipt_code: str
    payer_name: str
    amount: int
    paid_at: float
    channel: str


@dataclass(frozen=True)
class ManualPaymentRecord:
    """A payment made by hand (Pay Bill) as the bot keeps it: the account the payer typed, and the
    order it paid (None: it named no order the bot could pay, and the shop settles it)."""

    receipt: str
    account: str
    amount: int
    payer_name: str
    paid_at: float
    order_id: str | None = None


@dataclass(frozen=True)
class Notice:
    """A message to a chat, queued in the outbox in the same transaction as the change it tells.

    `edit_prompt` edits the order's prompt message in place instead of sending a new one.
    `buttons` are (label, callback data) pairs, one per row; labels are English msgids.
    A notice is a `kind` plus `params` (`bot.orders.notices`), rendered in the language of its `reader`
    (a user id; None: the merchant chat) when it is sent. `text` is said as it is (entries
    queued before notices had kinds).
    """

    chat_id: int
    text: str = ""
    buttons: tuple[tuple[str, str], ...] = ()
    edit_prompt: bool = False
    kind: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reader: int | None = None


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    order_id: str | None
    notice: Notice
    prompt_message_id: int | None
    attempts: int
    created_at: float = 0.0
    order_chat_id: int | None = None  # the chat of the order it is about (another chat: a merchant's copy)


@dataclass(frozen=True)
class SummaryRow:
    """Totals for one status and network over a period, counting sales: an order and the orders
    that follow on from it ("Send the prompt again", "Pay the rest") are one sale, asked for once,
    its status what was received on them all against what was first asked."""

    status: OrderStatus
    network: Network
    count: int
    amount: int  # shillings asked
    received: int  # shillings actually paid
    owed: int = 0  # still to pay on underpaid sales
    refund: int = 0  # paid beyond what was asked on overpaid sales


class RefundState(StrEnum):
    """Where a refund stands. One row per order: a refund is asked for, approved and sent once.

    asked -> declined (an admin said no) or sending (an admin approved: claimed, iPay is called);
    sending -> done (iPay said "Refund done"), refused (iPay said no: nothing moved, it may be
    asked again) or unknown (the call errored, or the process died before its answer was
    recorded: an admin checks iPay's dashboard; it is never sent again blindly).
    """

    ASKED = "asked"
    DECLINED = "declined"
    SENDING = "sending"
    DONE = "done"
    REFUSED = "refused"
    UNKNOWN = "unknown"

    @property
    def reopenable(self) -> bool:
        """Nothing moved and nobody waits on it: a new ask or approval may start over."""
        return self in (RefundState.DECLINED, RefundState.REFUSED)


@dataclass(frozen=True)
class Refund:
    """Giving an order's payment back: who asked, who approved, when, and what iPay answered."""

    order_id: str
    state: RefundState
    amount: int  # the whole payment (iPay documents full refunds only)
    receipt_code: str  # the payment's transaction code, which iPay refunds by
    asked_by_id: int  # a Telegram user id; 0 for the REST API
    asked_by: str  # as the merchant should see it: "Amina (@amina, 501)" or "API key #1"
    asked_chat_id: int  # where the asker hears the outcome (0: nowhere, the REST API reads it)
    asked_at: float
    updated_at: float
    approved_by_id: int | None = None
    approved_by: str | None = None
    approved_at: float | None = None
    done_at: float | None = None  # when iPay's answer (done, refused) or its absence was recorded
    reason: str | None = None  # a refusal's or an unknown outcome's reason code (`bot.refunds.service`)
    detail: str | None = None  # iPay's own words, for the admin
    ask_again: bool = False  # "Refund all and ask again": the payer's chat may send the prompt again
    source: str = "chat"  # "chat" or "api"
    key_hash: str | None = None  # the REST API's Idempotency-Key, hashed with its API key
    c2b_funds: str | None = None  # the vendor's balances iPay reported after a refund
    b2c_funds: str | None = None
    claimed_by: str | None = None  # the instance calling iPay (state sending)
    claim_until: float | None = None


# -- the /pay conversation -------------------------------------------------------------------


class DraftStep(StrEnum):
    """Where a /pay conversation stands: what the bot asked last."""

    PHONE = "phone"
    AMOUNT = "amount"
    CONFIRM = "confirm"
    WAITING = "waiting"  # confirmed, to be sent by itself once the phone is free (`send_at`)


@dataclass(frozen=True)
class Draft:
    """One person's /pay conversation in one chat, as far as the bot has answered it.

    `revision` is new on every write, so a write or a drop based on an older read (the timeout
    sweep's, say) changes nothing once the payer has moved on. `summary_key` names the summary
    the payer was shown; its buttons
    carry it, so a press on an older summary is recognised as stale.
    """

    chat_id: int
    user_id: int
    step: DraftStep
    revision: str
    updated_at: float
    phone: str = ""
    network: Network = Network.MPESA
    amount: int = 0
    summary_key: str | None = None
    pay_request_id: str | None = None  # opened from a merchant's request: its amount is fixed
    message_id: int | None = None  # the message whose buttons answer this step (the summary)
    send_at: float | None = None  # WAITING: when the phone should be free
    after_order_id: str | None = None  # the cancelled order whose prompt may still be on the phone
    requested_by: str = ""  # WAITING: who confirmed (the order, written later, records it)


# -- a merchant's payment requests ---------------------------------------------------------


class RequestState(StrEnum):
    """Where a merchant's payment request stands.

    open -> paid (the money on it reached its amount), open -> part_paid (money came, less than
    its amount) -> paid (the rest came, by "Pay the rest" on the payer's receipt), open ->
    expired (its time ran out with no payment on the way), open -> cancelled (by the shop, with no
    payment on the way). A part-paid request neither expires nor can be cancelled: money is on it.
    Money is sacred: an expired or cancelled request whose claiming order is paid late still
    becomes paid (or part-paid).
    """

    OPEN = "open"
    PART_PAID = "part_paid"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RequestUnavailable:
    """Why a request cannot be paid now, for the edge to say: its state ("paid", "part_paid",
    "open" while someone is paying it, "expired", "cancelled") and what is missing if part-paid."""

    state: str
    being_paid: bool = False
    missing: int = 0


@dataclass(frozen=True)
class MerchantRequest:
    """A merchant's payment request (a link or a counter sign): a fixed amount, paid by whoever
    opens it first and confirms.

    `order_id` is the order that claimed it (the first Confirm); while that order may still be
    paid, nobody else can claim it. `shown_state` is what the request's message last showed (None:
    not yet edited to the current state)."""

    id: str
    token: str
    amount: int
    note: str
    state: RequestState
    source: str  # "chat" (/request), "inline" (an inline card) or "api"
    created_by: int
    created_by_name: str
    chat_id: int  # where the merchant is told (0: the REST API's, told in MERCHANT_CHAT_ID)
    created_at: float
    expires_at: float
    updated_at: float
    message_id: int | None = None
    inline_message_id: str | None = None
    posted: bool = True  # an inline card offered but never chosen is not listed
    api_key_id: str | None = None
    order_id: str | None = None
    shown_state: str | None = None
    paid_amount: int = 0  # the money received on it, over all the orders that paid into it

    @property
    def missing(self) -> int:
        """What is still to pay (0 once paid, or before any money came)."""
        return self.amount - self.paid_amount if 0 < self.paid_amount < self.amount else 0

    @property
    def excess(self) -> int:
        """How much more than asked was paid on it."""
        return max(0, self.paid_amount - self.amount)


# -- refusals: an order or claim the store does not write -----------------------------------


class PhoneBusy(Exception):
    """An order could not be written because its phone has an open prompt."""


class DraftGone(Exception):
    """A waiting Confirm's order was not written: its draft was cancelled, replaced or taken."""


class PaidMeanwhile(Exception):
    """An order was not written: the cancelled order it waited for has been paid after all."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


class RequestTaken(Exception):
    """An order could not claim its payment request: paid, being paid, expired or cancelled."""


@dataclass(frozen=True)
class CashierRow:
    """One person's orders of one status over a stretch: who asked for them (`requested_by` as
    the merchant sees it, the latest of that person's orders) and what came in."""

    user_id: int
    requested_by: str
    status: OrderStatus
    count: int
    received: int  # shillings actually paid


@dataclass(frozen=True)
class DayClose:
    """A Nairobi day closed by the owner (or by the clock): its stretch of orders, who closed it
    and when, and its figures as they were then (JSON, written by `bot.owner.service`)."""

    day: str  # YYYY-MM-DD
    closed_at: float
    closed_by: str
    covers_from: float
    covers_until: float
    figures: str
