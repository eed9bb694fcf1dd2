"""Rows and domain values: how orders, outbox entries and drafts map to columns, by name."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from bot.domain import Network, Notice, Order, OrderStatus, OutboxEntry, Refund, RefundState

_ORDER_FIELDS = tuple(f.name for f in dataclasses.fields(Order))
_ORDER_COLUMNS = ", ".join(_ORDER_FIELDS)


def _order(row: Mapping[str, Any]) -> Order:
    """A row as an `Order`, by column name (never by position)."""
    values = {name: row[name] for name in _ORDER_FIELDS}
    values["network"] = Network(values["network"])
    values["status"] = OrderStatus(values["status"])
    values["ipay_paybills"] = tuple(tuple(pair) for pair in json.loads(values["ipay_paybills"] or "[]"))
    return Order(**values)


def _order_values(order: Order) -> tuple[object, ...]:
    """An `Order` as column values, in `_ORDER_FIELDS` order."""
    values = {name: getattr(order, name) for name in _ORDER_FIELDS}
    values["network"], values["status"] = order.network.value, order.status.value
    values["ipay_paybills"] = json.dumps([list(pair) for pair in order.ipay_paybills]) if order.ipay_paybills else None
    return tuple(values[name] for name in _ORDER_FIELDS)


_OUTBOX_COLUMNS = (
    "outbox.id, outbox.order_id, outbox.chat_id, outbox.text, outbox.buttons, outbox.edit_prompt, "
    "orders.prompt_message_id, outbox.attempts, outbox.created_at, orders.chat_id, "
    "outbox.kind, outbox.params, outbox.reader"
)


def _outbox_entry(row: Sequence[Any]) -> OutboxEntry:
    (
        entry_id,
        order_id,
        chat_id,
        text,
        buttons,
        edit_prompt,
        prompt_message_id,
        attempts,
        created_at,
        order_chat_id,
        kind,
        params,
        reader,
    ) = row
    notice = Notice(
        chat_id,
        text,
        tuple(tuple(b) for b in json.loads(buttons)),
        bool(edit_prompt),
        kind=kind,
        params=json.loads(params) if params else {},
        reader=reader,
    )
    return OutboxEntry(
        id=entry_id,
        order_id=order_id,
        notice=notice,
        prompt_message_id=prompt_message_id,
        attempts=attempts,
        created_at=created_at,
        order_chat_id=order_chat_id,
    )


class Reschedule(NamedTuple):
    """When to look an order up again after a lookup without a verdict.

    `version` is the order's `schedule_version` the lookup started from: if anything moved the
    schedule meanwhile (a cancel promising a later look, an outcome), this reschedule is stale
    and changes nothing.
    """

    order_id: str
    next_poll_at: float | None
    error: str | None
    version: int


# An order whose prompt may still be on the phone: pending, or cancelled in the chat or timed
# out on the phone and still watched (the prompt can outlive the cancel, and iPay's "timed out"
# is not always the prompt's end).
_OPEN_PROMPT = "(status = 'pending' OR (status IN ('withdrawn', 'expired') AND next_poll_at IS NOT NULL))"
_OPEN_ON_PHONE = f"phone = ? AND {_OPEN_PROMPT}"


class PhoneBusy(Exception):
    """An order could not be written because its phone has an open prompt."""


class DraftGone(Exception):
    """A waiting Confirm's order was not written: its draft was cancelled, replaced or taken."""


class PaidMeanwhile(Exception):
    """An order was not written: the cancelled order it waited for has been paid after all."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


class _AlreadyRetried(Exception):
    """Rolls back a retry whose original order was retried by someone else first."""


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


_DRAFT_COLUMNS = (
    "chat_id, user_id, step, revision, updated_at, phone, network, amount, summary_key, pay_request_id, "
    "message_id, send_at, after_order_id, requested_by"
)
_DRAFT_UPSERT = ", ".join(f"{c} = excluded.{c}" for c in _DRAFT_COLUMNS.replace(" ", "").split(",")[2:])


def _draft(row: Sequence[object]) -> Draft:
    values = list(row)
    values[2] = DraftStep(str(values[2]))
    values[6] = Network(str(values[6]))
    return Draft(*values)  # type: ignore[arg-type]  # a drafts row, its columns in Draft's field order


def _draft_values(draft: Draft) -> tuple[object, ...]:
    return (
        draft.chat_id,
        draft.user_id,
        draft.step.value,
        draft.revision,
        draft.updated_at,
        draft.phone,
        draft.network.value,
        draft.amount,
        draft.summary_key,
        draft.pay_request_id,
        draft.message_id,
        draft.send_at,
        draft.after_order_id,
        draft.requested_by,
    )


class StoreUnavailable(Exception):
    """A write could not be made (the database is locked by another process, the disk is full,
    ...): the caller says "try again later", and health says unhealthy until a write works."""


@dataclass(frozen=True)
class WriteFailure:
    """The last write that failed, kept until a write succeeds again."""

    error: str
    at: float


# -- payment requests a merchant sends (issue 15) -----------------------------------------


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
class PayRequest:
    """A fixed amount a merchant asks for, paid by whoever opens its link first and confirms.

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


_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(PayRequest))
_REQUEST_COLUMNS = ", ".join(_REQUEST_FIELDS)


def _pay_request(row: Mapping[str, Any]) -> PayRequest:
    values = {name: row[name] for name in _REQUEST_FIELDS}
    values["state"] = RequestState(values["state"])
    values["posted"] = bool(values["posted"])
    return PayRequest(**values)


def _pay_request_values(request: PayRequest) -> tuple[object, ...]:
    values = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    values["state"], values["posted"] = request.state.value, int(request.posted)
    return tuple(values[name] for name in _REQUEST_FIELDS)


class RequestTaken(Exception):
    """An order could not claim its payment request: paid, being paid, expired or cancelled."""


# -- refunds ------------------------------------------------------------------------------

_REFUND_FIELDS = tuple(f.name for f in dataclasses.fields(Refund))
_REFUND_COLUMNS = ", ".join(_REFUND_FIELDS)


def _refund(row: Mapping[str, Any]) -> Refund:
    values = {name: row[name] for name in _REFUND_FIELDS}
    values["state"] = RefundState(values["state"])
    values["ask_again"] = bool(values["ask_again"])
    return Refund(**values)


def _refund_values(refund: Refund) -> tuple[object, ...]:
    values = {name: getattr(refund, name) for name in _REFUND_FIELDS}
    values["state"], values["ask_again"] = refund.state.value, int(refund.ask_again)
    return tuple(values[name] for name in _REFUND_FIELDS)
