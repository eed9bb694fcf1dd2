"""Rows to domain values and back: how orders, outbox entries, drafts, merchants' requests and
refunds map to columns, always by column name."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from bot.domain import (
    Draft,
    DraftStep,
    MerchantRequest,
    Network,
    Notice,
    Order,
    OrderStatus,
    OutboxEntry,
    Refund,
    RefundState,
    RequestState,
)

_ORDER_FIELDS = tuple(f.name for f in dataclasses.fields(Order))
_ORDER_COLUMNS = ", ".join(_ORDER_FIELDS)


def _order(row: Mapping[str, Any]) -> Order:
    """A row as an `Order`, by column name (never by position)."""
    values = {name: row[name] for name in _ORDER_FIELDS}
    values["network"] = Network(values["network"])
    values["status"] = OrderStatus(values["status"])
    values["paybill_numbers"] = tuple(tuple(pair) for pair in json.loads(values["paybill_numbers"] or "[]"))
    return Order(**values)


def _order_values(order: Order) -> tuple[object, ...]:
    """An `Order` as column values, in `_ORDER_FIELDS` order."""
    values = {name: getattr(order, name) for name in _ORDER_FIELDS}
    values["network"], values["status"] = order.network.value, order.status.value
    values["paybill_numbers"] = (
        json.dumps([list(pair) for pair in order.paybill_numbers]) if order.paybill_numbers else None
    )
    return tuple(values[name] for name in _ORDER_FIELDS)


_OUTBOX_COLUMNS = (
    "outbox.id AS entry_id, outbox.order_id, outbox.chat_id, outbox.text, outbox.buttons, outbox.edit_prompt, "
    "orders.prompt_message_id, outbox.attempts, outbox.created_at, orders.chat_id AS order_chat_id, "
    "outbox.kind, outbox.params, outbox.reader"
)


def _outbox_entry(row: Mapping[str, Any]) -> OutboxEntry:
    """An outbox row joined with its order's, by column name (`_OUTBOX_COLUMNS`)."""
    notice = Notice(
        row["chat_id"],
        row["text"],
        tuple(tuple(b) for b in json.loads(row["buttons"])),
        bool(row["edit_prompt"]),
        kind=row["kind"],
        params=json.loads(row["params"]) if row["params"] else {},
        reader=row["reader"],
    )
    return OutboxEntry(
        id=row["entry_id"],
        order_id=row["order_id"],
        notice=notice,
        prompt_message_id=row["prompt_message_id"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        order_chat_id=row["order_chat_id"],
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


class _AlreadyRetried(Exception):
    """Rolls back a retry whose original order was retried by someone else first."""


_DRAFT_FIELDS = tuple(f.name for f in dataclasses.fields(Draft))
_DRAFT_COLUMNS = ", ".join(_DRAFT_FIELDS)
_DRAFT_UPSERT = ", ".join(f"{c} = excluded.{c}" for c in _DRAFT_FIELDS[2:])  # all but the key (chat, user)


def _draft(row: Mapping[str, Any]) -> Draft:
    """A drafts row as a `Draft`, by column name."""
    values = {name: row[name] for name in _DRAFT_FIELDS}
    values["step"] = DraftStep(values["step"])
    values["network"] = Network(values["network"])
    return Draft(**values)


def _draft_values(draft: Draft) -> tuple[object, ...]:
    """A `Draft` as column values, in `_DRAFT_FIELDS` order."""
    values = {name: getattr(draft, name) for name in _DRAFT_FIELDS}
    values["step"], values["network"] = draft.step.value, draft.network.value
    return tuple(values[name] for name in _DRAFT_FIELDS)


class StoreUnavailable(Exception):
    """A write could not be made (the database is locked by another process, the disk is full,
    ...): the caller says "try again later", and health says unhealthy until a write works."""


@dataclass(frozen=True)
class WriteFailure:
    """The last write that failed, kept until a write succeeds again."""

    error: str
    at: float


# -- payment requests a merchant sends -----------------------------------------------------

_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(MerchantRequest))
_REQUEST_COLUMNS = ", ".join(_REQUEST_FIELDS)


def _merchant_request(row: Mapping[str, Any]) -> MerchantRequest:
    values = {name: row[name] for name in _REQUEST_FIELDS}
    values["state"] = RequestState(values["state"])
    values["posted"] = bool(values["posted"])
    return MerchantRequest(**values)


def _merchant_request_values(request: MerchantRequest) -> tuple[object, ...]:
    values = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    values["state"], values["posted"] = request.state.value, int(request.posted)
    return tuple(values[name] for name in _REQUEST_FIELDS)


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
