"""The store's contract, run against both back ends (SQLite and a real PostgreSQL server).

Every public method of `Store` is exercised here (the last test checks that none is
forgotten): what it returns, what it refuses, and that conditional changes change nothing
the second time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import (
    DayClose,
    Draft,
    DraftGone,
    DraftStep,
    ManualPaymentRecord,
    MerchantRequest,
    Network,
    Notice,
    Order,
    OrderStatus,
    PaidMeanwhile,
    Payment,
    PhoneBusy,
    Refund,
    RefundState,
    RequestState,
    RequestTaken,
    SummaryRow,
)
from bot.store import Reschedule, Store
from bot.store.sqlite import SqliteStore
from tests.conftest import an_order


def _order(order_id: str = "ORDER1", **changes: Any) -> Order:
    return an_order(order_id, **{"user_id": 11, "next_poll_at": None, **changes})


@pytest.fixture
async def store(store_target: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(store_target)
    yield opened
    await opened.close()


async def test_an_order_reads_back_as_written_with_large_ids_and_exact_times(store: Store) -> None:
    order = _order(
        chat_id=-1_001_234_567_890,
        user_id=7_000_000_001,
        created_at=1_764_000_000.123456,
        updated_at=1_764_000_000.123456,
        email="a@b.ke",
        reference="INV-1",
        source="api",
    )
    assert await store.insert_order(order)
    assert await store.get_order("ORDER1") == order
    assert await store.get_order("NOSUCH") is None
    assert await store.count_pending() == 1


async def test_one_open_prompt_per_phone(store: Store) -> None:
    assert await store.insert_order(_order("A"))
    with pytest.raises(PhoneBusy):
        await store.insert_order(_order("B"))
    assert (await store.open_order_for_phone("254712345678")).id == "A"  # type: ignore[union-attr]
    assert await store.open_order_for_phone("254700000000") is None
    assert await store.finalise("A", OrderStatus.FAILED, 1001.0, [])
    assert await store.open_order_for_phone("254712345678") is None
    assert await store.insert_order(_order("B", created_at=1002.0))


async def test_a_waiting_confirm_is_written_with_its_draft_gone_and_only_while_the_first_order_is_unpaid(
    store: Store,
) -> None:
    waiting = Draft(1, 1, DraftStep.WAITING, "r1", 1000.0, "254712345678", Network.MPESA, 100, "k", send_at=1001.0)
    await store.put_draft(waiting)
    with pytest.raises(DraftGone):  # cancelled or replaced meanwhile: no order
        await store.insert_order(_order("B"), consumes=dataclasses.replace(waiting, revision="r0"))
    assert await store.get_order("B") is None and await store.get_draft(1, 1) == waiting
    assert await store.insert_order(_order("A", created_at=900.0, phone="254700000001"))
    assert await store.finalise("A", OrderStatus.PAID, 1001.0, [], payment=Payment("RCPT", "X", 100, 1001.0, "mpesa"))
    with pytest.raises(PaidMeanwhile):  # the order it waited for was paid after all
        await store.insert_order(_order("B"), consumes=waiting, unless_paid="A")
    assert await store.get_order("B") is None and await store.get_draft(1, 1) == waiting  # rolled back
    assert await store.finalise("A", OrderStatus.FAILED, 1002.0, []) is False
    assert await store.insert_order(_order("B"), consumes=waiting, unless_paid="NOSUCH")
    assert await store.get_draft(1, 1) is None and await store.get_order("B") is not None


async def test_a_retry_is_written_once(store: Store) -> None:
    await store.insert_order(_order("A"))
    await store.finalise("A", OrderStatus.FAILED, 1001.0, [])
    assert await store.insert_order(_order("B", created_at=1002.0), retry_of="A")
    await store.finalise("B", OrderStatus.FAILED, 1003.0, [])
    assert not await store.insert_order(_order("C", created_at=1004.0), retry_of="A")
    assert await store.get_order("C") is None
    assert (await store.get_order("A")).retry_order_id == "B"  # type: ignore[union-attr]


async def test_an_order_reads_the_attempts_it_follows_on_from_oldest_first(store: Store) -> None:
    await store.insert_order(_order("A"))
    await store.finalise("A", OrderStatus.UNDERPAID, 1001.0, [], payment=Payment("R1", "JOHN", 60, 1001.0, "mpesa"))
    assert await store.insert_order(_order("B", amount=40, created_at=1002.0), retry_of="A")  # the rest
    await store.finalise("B", OrderStatus.EXPIRED, 1003.0, [])
    assert await store.insert_order(_order("C", amount=40, created_at=1004.0), retry_of="B")  # sent again
    await store.insert_order(_order("OTHER", phone="254799999999", created_at=1005.0))
    earlier = await store.earlier_attempts("C")
    assert [(o.id, o.status, o.paid_amount, o.receipt_code) for o in earlier] == [
        ("A", OrderStatus.UNDERPAID, 60, "R1"),
        ("B", OrderStatus.EXPIRED, None, None),
    ]
    assert [o.id for o in await store.earlier_attempts("B")] == ["A"]
    assert [o.id for o in await store.earlier_attempts("C", limit=1)] == ["B"]  # the nearest first when cut short
    assert await store.earlier_attempts("A") == []
    assert await store.earlier_attempts("OTHER") == []
    assert await store.earlier_attempts("NOSUCH") == []
    follow_ons = await store.follow_ons(["A", "B", "C", "OTHER", "NOSUCH"])
    assert {first: [o.id for o in later] for first, later in follow_ons.items()} == {"A": ["B", "C"], "B": ["C"]}
    assert await store.follow_ons([]) == {}
    assert await store.followed_on(["A", "B", "C", "OTHER"]) == {"B", "C"}
    assert await store.followed_on([]) == set()
    # One sale, asked for once: 60 of 100 received, the rest's order is expired, the sent-again one pending.
    assert await store.summary(0.0, 2000.0) == [
        SummaryRow(OrderStatus.PENDING, Network.MPESA, 1, 100, 0),  # OTHER
        SummaryRow(OrderStatus.UNDERPAID, Network.MPESA, 1, 100, 60, owed=40),
    ]


async def test_an_idempotency_key_names_its_first_order(store: Store) -> None:
    assert await store.insert_order(_order("A", source="api"), idempotency=("key1", "req1"))
    await store.finalise("A", OrderStatus.FAILED, 1001.0, [])
    assert not await store.insert_order(_order("B", source="api"), idempotency=("key1", "req2"))
    found = await store.idempotent_order("key1")
    assert found is not None and found[0] == "req1" and found[1].id == "A"
    assert await store.idempotent_order("key2") is None


async def test_a_chat_reads_only_its_own_orders(store: Store) -> None:
    for n in range(3):
        await store.insert_order(_order(f"O{n}", phone=f"25471234567{n}", created_at=1000.0))  # same second
    await store.insert_order(_order("OTHER", chat_id=2, phone="254799999999", created_at=1001.0))
    assert await store.get_chat_order("O1", 1) is not None
    assert await store.get_chat_order("OTHER", 1) is None
    assert [o.id for o in await store.latest_chat_orders(1, 10)] == ["O2", "O1", "O0"]  # insertion order breaks ties
    assert [o.id for o in await store.latest_chat_orders(1, 2)] == ["O2", "O1"]
    assert [o.id for o in await store.latest_orders(start=0, end=2000, limit=10)] == ["OTHER", "O2", "O1", "O0"]
    assert [o.id for o in await store.latest_orders(start=0, end=1001, limit=10, chat_id=2)] == []
    assert [o.id async for o in store.stream_orders(0, 2000)] == ["O0", "O1", "O2", "OTHER"]


async def test_sending_is_claimed_once_and_the_session_recorded_once(store: Store) -> None:
    await store.insert_order(_order())
    assert [o.id for o in await store.unsent_orders(1000.0, 10)] == ["ORDER1"]
    assert await store.unsent_orders(999.0, 10) == []
    assert await store.claim_sending("ORDER1", 1001.0)
    assert not await store.claim_sending("ORDER1", 1002.0)
    assert await store.record_session("ORDER1", "SID1", "ACC1", [("mpesa", "510800")])
    assert not await store.record_session("ORDER1", "SID2", "ACC2", [])
    order = await store.get_order("ORDER1")
    assert order is not None and (order.session_ref, order.paybill_account, order.paybill_numbers) == (
        "SID1",
        "ACC1",
        (("mpesa", "510800"),),
    )
    assert order.initiate_at == 1001.0 and order.reached_provider
    assert await store.record_prompt_sent("ORDER1", 1003.0, 1008.0, [Notice(1, "check your phone")])
    assert not await store.record_prompt_sent("ORDER1", 1004.0, 1009.0, [Notice(1, "again")])
    assert await store.unsent_orders(2000.0, 10) == []
    assert [e.notice.text for e in await store.due_outbox(2000.0, 10)] == ["check your phone"]
    await store.set_prompt_message("ORDER1", 77)
    assert (await store.get_order("ORDER1")).prompt_message_id == 77  # type: ignore[union-attr]


async def test_an_api_orders_push_is_recorded_with_no_message_to_queue(store: Store) -> None:
    await store.insert_order(_order(chat_id=0, source="api"))
    assert await store.claim_sending("ORDER1", 1001.0)
    assert await store.record_session("ORDER1", "SID1", "ACC1", [])
    assert await store.record_prompt_sent("ORDER1", 1003.0, 1008.0, [])
    assert not await store.record_prompt_sent("ORDER1", 1004.0, 1009.0, [])
    assert [o.id for o in await store.due_orders(1008.0, 10)] == ["ORDER1"]
    assert await store.due_outbox(2000.0, 10) == []


async def test_the_shop_goes_on_writing_while_a_long_read_is_under_way(store: Store) -> None:
    """An export reads its orders a few hundred at a time. Meanwhile a payment is written,
    claimed, given its session and its push recorded: the writes that do not wait for the disk
    included, none is refused for the read left open between two batches."""
    for n in range(600):
        await store.insert_order(_order(f"OLD{n}", phone=f"2547{n:08d}", status=OrderStatus.PAID, created_at=900.0))
    export = store.stream_orders(0, 1000.0)
    read = [await anext(export)]
    await store.insert_order(_order("NEW", phone="254799999999", chat_id=0, source="api"))
    assert await store.claim_sending("NEW", 1001.0)
    assert await store.record_session("NEW", "SID1", "ACC1", [])
    assert await store.record_prompt_sent("NEW", 1002.0, 1007.0, [])
    read += [order async for order in export]
    assert len(read) == 600
    assert [o.id for o in await store.due_orders(1007.0, 10)] == ["NEW"]


async def test_the_session_a_push_names_replaces_the_one_kept_before_it(store: Store) -> None:
    await store.insert_order(_order())
    await store.record_session_ref("ORDER1", "ORDER1:100:ws_CO_1:m-1")  # no session yet: nothing to replace
    assert (await store.get_order("ORDER1")).session_ref is None  # type: ignore[union-attr]
    assert await store.claim_sending("ORDER1", 1001.0)
    assert await store.record_session("ORDER1", "ORDER1:100", "ORDER1", [("MPESA", "174379")])
    await store.record_session_ref("ORDER1", "ORDER1:100:ws_CO_1:m-1")
    order = await store.get_order("ORDER1")
    assert order is not None and (order.session_ref, order.paybill_account) == ("ORDER1:100:ws_CO_1:m-1", "ORDER1")


async def test_due_orders_and_stale_reschedules(store: Store) -> None:
    await store.insert_order(_order("A", next_poll_at=1005.0))
    await store.insert_order(_order("B", phone="254700000001", next_poll_at=1010.0))
    assert [o.id for o in await store.due_orders(1007.0, 10)] == ["A"]
    a = (await store.due_orders(1007.0, 10))[0]
    await store.schedule_polls([Reschedule("A", 1020.0, "timeout", a.schedule_version)])
    await store.schedule_polls([Reschedule("A", 1009.0, None, a.schedule_version)])  # stale: nothing
    moved = await store.get_order("A")
    assert moved is not None and (moved.next_poll_at, moved.poll_count, moved.last_error) == (1020.0, 1, "timeout")
    assert [o.id for o in await store.due_orders(1015.0, 10)] == ["B"]
    await store.schedule_polls([])


async def test_finalise_is_conditional_and_queues_its_notices(store: Store) -> None:
    await store.insert_order(_order())
    payment = Payment("QCH4AB12CD", "JOHN DOE", 100, 1500.5, "mpesa")
    assert await store.finalise(
        "ORDER1", OrderStatus.PAID, 1500.0, [Notice(1, "paid"), Notice(-100, "merchant")], payment=payment
    )
    assert not await store.finalise("ORDER1", OrderStatus.FAILED, 1501.0, [Notice(1, "failed")], reason="late")
    order = await store.get_order("ORDER1")
    assert order is not None and order.status is OrderStatus.PAID and order.receipt_code == "QCH4AB12CD"
    assert (order.paid_amount, order.paid_at, order.payer_name) == (100, 1500.5, "JOHN DOE")
    assert sorted(e.notice.text for e in await store.due_outbox(2000.0, 10)) == ["merchant", "paid"]
    assert await store.count_pending() == 0


async def test_a_late_receipt_is_written_once_and_only_on_money_received(store: Store) -> None:
    await store.insert_order(_order("A"))
    await store.insert_order(_order("B", phone="254712340001"))
    assert not await store.record_late_receipt("A", "RCPT1")  # still pending: nothing was paid
    await store.finalise("A", OrderStatus.PAID, 1001.0, [], payment=Payment("", "", 100, 1001.0, "mpesa"))
    assert await store.record_late_receipt("A", "RCPT1")
    assert not await store.record_late_receipt("A", "RCPT2")  # once
    await store.finalise("B", OrderStatus.FAILED, 1001.0, [])
    assert not await store.record_late_receipt("B", "RCPT3")
    assert [(await store.get_order(i)).receipt_code for i in "AB"] == ["RCPT1", None]  # type: ignore[union-attr]


async def test_a_withdrawn_order_is_watched_until_its_deadline(store: Store) -> None:
    await store.insert_order(_order())
    assert await store.finalise("ORDER1", OrderStatus.WITHDRAWN, 1001.0, [], reason="cancelled", watch=(1006.0, 1600.0))
    order = await store.get_order("ORDER1")
    assert order is not None and (order.next_poll_at, order.watch_until, order.last_error) == (
        1006.0,
        1600.0,
        "cancelled",
    )
    assert [o.id for o in await store.due_orders(1006.0, 10)] == ["ORDER1"]
    assert await store.open_order_for_phone("254712345678") is not None


async def test_an_order_is_put_in_doubt_once_with_its_notices(store: Store) -> None:
    await store.insert_order(_order("A", next_poll_at=1005.0))
    await store.insert_order(_order("B", phone="254700000001", next_poll_at=1005.0, created_at=1001.0))
    a = await store.get_order("A")
    assert a is not None and not a.in_doubt
    assert await store.count_in_doubt() == 0 and await store.orders_in_doubt() == []
    told = [Notice(1, "not confirmed yet"), Notice(-100, "in doubt")]
    assert await store.mark_in_doubt(Reschedule("A", 1700.0, "unreadable", a.schedule_version), 1650.0, told)
    # Again (a restart, another instance, a stale lookup): nothing changes, nothing is queued twice.
    again = await store.get_order("A")
    assert again is not None
    assert not await store.mark_in_doubt(Reschedule("A", 1800.0, "x", again.schedule_version), 1750.0, told)
    assert not await store.mark_in_doubt(Reschedule("B", 1800.0, "x", 99), 1750.0, told)  # its schedule moved
    doubtful = await store.get_order("A")
    assert doubtful is not None and doubtful.in_doubt and doubtful.status is OrderStatus.PENDING
    assert (doubtful.doubt_since, doubtful.next_poll_at, doubtful.poll_count, doubtful.last_error) == (
        1650.0,
        1700.0,
        1,
        "unreadable",
    )
    assert sorted(e.notice.text for e in await store.due_outbox(2000.0, 10)) == ["in doubt", "not confirmed yet"]
    assert await store.count_in_doubt() == 1 and [o.id for o in await store.orders_in_doubt()] == ["A"]
    assert [o.id for o in await store.due_orders(1700.0, 10)] == ["B", "A"]  # still looked up
    # An answer at last finishes it as usual; it is no longer in doubt.
    assert await store.finalise("A", OrderStatus.PAID, 1701.0, [], payment=Payment("QX", "", 100, 1700.0, "MPESA"))
    assert await store.count_in_doubt() == 0 and await store.orders_in_doubt() == []
    paid = await store.get_order("A")
    assert paid is not None and not paid.in_doubt and paid.doubt_since == 1650.0  # when it was in doubt stays


async def test_limits_count_orders_by_user_and_by_phone(store: Store) -> None:
    for n, at in enumerate((1000.0, 1100.0, 1200.0)):
        await store.insert_order(_order(f"O{n}", phone=f"25471234500{n}", created_at=at))
    await store.finalise("O1", OrderStatus.EXPIRED, 1250.0, [])
    await store.insert_order(_order("X", user_id=12, phone="254712345001", created_at=1300.0))
    assert await store.orders_since(since=1050.0, user_id=11) == [1100.0, 1200.0]
    assert await store.orders_since(since=0.0, phone="254712345001") == [1100.0, 1300.0]


async def test_summary_totals_by_status_and_network(store: Store) -> None:
    await store.insert_order(_order("A", amount=100))
    await store.insert_order(_order("B", amount=250, phone="254733000000", network=Network.AIRTEL))
    await store.insert_order(_order("C", amount=300, phone="254712000000", created_at=5000.0))
    await store.finalise("A", OrderStatus.PAID, 1001.0, [], payment=Payment("R", "N", 100, 1001.0, "mpesa"))
    assert await store.summary(0.0, 2000.0) == [
        SummaryRow(OrderStatus.PAID, Network.MPESA, 1, 100, 100),
        SummaryRow(OrderStatus.PENDING, Network.AIRTEL, 1, 250, 0),
    ]


async def test_the_outbox_per_chat_in_order(store: Store) -> None:
    await store.queue_notices([Notice(5, "one", (("Pay", "p:1"),)), Notice(6, "other"), Notice(5, "two")], 100.0)
    assert await store.pending_outbox_count() == 3
    assert await store.due_chats(99.0, 10) == []
    assert sorted(await store.due_chats(100.0, 10)) == [5, 6]
    first, second = await store.chat_outbox(5, 100.0, 10)
    assert (first.notice.text, first.notice.buttons, second.notice.text) == ("one", (("Pay", "p:1"),), "two")
    await store.postpone(first.id, 200.0, "rate limited")
    assert await store.chat_outbox(5, 150.0, 10) == []  # the chat waits behind its first message
    assert await store.due_chats(150.0, 10) == [6]
    (again, _) = await store.chat_outbox(5, 200.0, 10)
    assert again.attempts == 1
    await store.mark_sent(first.id, 201.0)
    await store.mark_sent(first.id, 202.0)  # twice changes nothing
    await store.mark_many_sent([second.id] + [e.id for e in await store.chat_outbox(6, 300.0, 10)], 203.0, "digest")
    assert await store.pending_outbox_count() == 0
    assert await store.due_outbox(1000.0, 10) == []


async def test_drafts_are_written_conditionally(store: Store) -> None:
    draft = Draft(-1_001_234_567_890, 7_000_000_001, DraftStep.PHONE, "r1", 1000.0)
    assert await store.put_draft(draft)
    assert await store.get_draft(draft.chat_id, draft.user_id) == draft
    later = Draft(
        draft.chat_id, draft.user_id, DraftStep.CONFIRM, "r2", 1010.0, "254712345678", Network.AIRTEL, 500, "k1"
    )
    assert await store.put_draft(later, replacing="r1")
    assert not await store.put_draft(draft, replacing="r1")  # someone moved on meanwhile
    assert await store.get_draft(draft.chat_id, draft.user_id) == later
    assert await store.drafts_written_between(1000.0, 1010.0) == [later]
    assert await store.drafts_written_between(1010.0, 2000.0) == []
    assert not await store.drop_draft(draft.chat_id, draft.user_id, revision="r1")
    assert await store.drop_draft(draft.chat_id, draft.user_id, revision="r2")
    assert await store.get_draft(draft.chat_id, draft.user_id) is None
    await store.put_draft(draft)
    assert await store.put_draft(Draft(draft.chat_id, draft.user_id, DraftStep.PHONE, "r3", 1020.0))  # a new /pay
    assert await store.drop_draft(draft.chat_id, draft.user_id)
    await store.put_draft(draft)
    assert await store.purge_drafts(1000.5) == 1
    assert await store.purge_drafts(1000.5) == 0


async def test_a_draft_keeps_its_message_and_a_waiting_confirm_is_due_at_its_time(store: Store) -> None:
    summary = Draft(5, 6, DraftStep.CONFIRM, "r1", 1000.0, "254712345678", Network.MPESA, 500, "k1")
    await store.put_draft(summary)
    assert await store.set_draft_message(5, 6, "r1", 2_147_483_648)  # message ids can pass 32 bits
    assert not await store.set_draft_message(5, 6, "r0", 1)  # an older step's answer changes nothing
    shown = await store.get_draft(5, 6)
    assert shown is not None and shown.message_id == 2_147_483_648 and shown.revision == "r1"
    waiting = dataclasses.replace(
        shown, step=DraftStep.WAITING, revision="r2", send_at=1600.0, after_order_id="O1", requested_by="Wanjiru (501)"
    )
    assert await store.put_draft(waiting, replacing="r1")
    assert await store.get_draft(5, 6) == waiting
    assert await store.waiting_drafts_due(1599.0) == []
    assert await store.waiting_drafts_due(1600.0) == [waiting]
    assert await store.drafts_written_between(0.0, 5000.0) == []  # waiting is not idle


async def test_reopening_migrates_nothing_and_keeps_everything(store_target: Path | str) -> None:
    first = await Store.open(store_target)
    await first.insert_order(_order())
    await first.close()
    again = await Store.open(store_target)
    try:
        assert await again.get_order("ORDER1") == _order()
    finally:
        await again.close()


async def test_requests_paid_before_part_payments_existed_are_migrated(store_target: Path | str) -> None:
    """A database as the release before part-paid requests left it: a request paid short was
    marked paid. Migrating says it is part-paid, with the money its order received."""
    old = await Store.open(store_target)
    for request_id, order_id, paid in (("RSHORTPAID1", "A", 90), ("RINFULLPAY1", "B", 100)):
        await old.insert_pay_request(_request(request_id, token=f"{'t' * 21}{request_id}"))
        await old.insert_order(_order(order_id, phone=f"2547{order_id * 8}", pay_request_id=request_id))
        status = OrderStatus.PAID if paid == 100 else OrderStatus.UNDERPAID
        await old.finalise(order_id, status, 1004.0, [], payment=Payment(f"R{order_id}", "JOHN", paid, 1004.0, "mpesa"))
        await old._write("UPDATE pay_requests SET state = 'paid', shown_state = 'paid' WHERE id = ?", (request_id,))
    await old._write("ALTER TABLE pay_requests DROP COLUMN paid_amount")
    # Undo the later migrations too, so opening runs every step from 14 on.
    await old._write("DROP INDEX orders_in_doubt")
    await old._write("ALTER TABLE orders DROP COLUMN doubt_since")
    await old._write("DROP TABLE seen_updates")
    await old._write("DROP TABLE refunds")
    await old._write("DROP TABLE day_closes")
    await old._write("DROP TABLE provider_notes")
    await old._write("DROP TABLE manual_payments")
    for before, after in (
        ("ipay_sid", "session_ref"),
        ("ipay_account", "paybill_account"),
        ("ipay_paybills", "paybill_numbers"),
    ):
        await old._write(f"ALTER TABLE orders RENAME COLUMN {after} TO {before}")
    if isinstance(old, SqliteStore):
        await old._write("PRAGMA user_version = 13")
    else:
        await old._write("DELETE FROM schema_version WHERE version >= 14")
    await old.close()
    new = await Store.open(store_target)
    try:
        short, full = await new.get_pay_request("RSHORTPAID1"), await new.get_pay_request("RINFULLPAY1")
        assert short is not None and (short.state, short.paid_amount, short.missing) == (RequestState.PART_PAID, 90, 10)
        assert short.shown_state is None  # its message is edited to say so
        assert full is not None and (full.state, full.paid_amount, full.shown_state) == (RequestState.PAID, 100, "paid")
    finally:
        await new.close()


def _request(request_id: str = "RAAAAAAAAA1", **changes: object) -> MerchantRequest:
    base = dict(
        id=request_id,
        token="t" * 32 + request_id,
        amount=100,
        note="2 loaves",
        state=RequestState.OPEN,
        source="chat",
        created_by=7_000_000_001,
        created_by_name="Amina",
        chat_id=-1_001_234_567_890,
        created_at=1000.0,
        expires_at=2000.0,
        updated_at=1000.0,
        shown_state="open",
    )
    base.update(changes)
    return MerchantRequest(**base)  # type: ignore[arg-type]


async def test_a_payment_request_is_claimed_by_one_order_and_paid_with_it(store: Store) -> None:
    request = _request()
    await store.insert_pay_request(request)
    assert await store.get_pay_request(request.id) == request
    assert await store.pay_request_by_token(request.token) == request
    with pytest.raises(RequestTaken):  # another amount cannot claim it
        await store.insert_order(_order("A", amount=99, pay_request_id=request.id))
    assert await store.insert_order(_order("A", pay_request_id=request.id))
    with pytest.raises(RequestTaken):  # the first Confirm wins, the second writes nothing
        await store.insert_order(_order("B", phone="254722222222", pay_request_id=request.id))
    assert await store.get_order("B") is None
    assert not await store.cancel_pay_request(request.id, 1001.0)  # being paid
    assert await store.finalise("A", OrderStatus.FAILED, 1002.0, [])  # no money, not watched: free again
    assert await store.insert_order(_order("C", phone="254733333333", created_at=1003.0, pay_request_id=request.id))
    payment = Payment("QCH4AB12CD", "John Doe", 100, 1004.0, "MPESA")
    assert await store.finalise("C", OrderStatus.PAID, 1004.0, [], payment=payment)
    paid = await store.get_pay_request(request.id)
    assert paid is not None and paid.state is RequestState.PAID and paid.order_id == "C" and paid.shown_state is None
    assert [r.id for r in await store.requests_to_show()] == [request.id]
    await store.mark_request_shown(request.id, RequestState.PAID)
    assert await store.requests_to_show() == []
    assert not await store.cancel_pay_request(request.id, 1005.0)


async def test_a_request_paid_short_is_part_paid_until_its_rest_is_paid(store: Store) -> None:
    await store.insert_pay_request(_request(amount=1000))
    request_id = _request().id
    assert await store.insert_order(_order("A", amount=1000, pay_request_id=request_id))
    short = Payment("QCH4AB12CD", "John Doe", 900, 1004.0, "MPESA")
    assert await store.finalise("A", OrderStatus.UNDERPAID, 1004.0, [], payment=short)
    assert not await store.finalise("A", OrderStatus.UNDERPAID, 1004.5, [], payment=short)  # counted once
    part = await store.get_pay_request(request_id)
    assert part is not None and (part.state, part.paid_amount, part.missing) == (RequestState.PART_PAID, 900, 100)
    assert not await store.cancel_pay_request(request_id, 1005.0) and await store.expire_pay_requests(9999.0) == 0
    with pytest.raises(RequestTaken):  # someone else, without following on from the short order
        await store.insert_order(_order("X", phone="254722222222", amount=100, pay_request_id=request_id))
    with pytest.raises(RequestTaken):  # following on, but not for what is missing
        await store.insert_order(_order("Y", amount=50, pay_request_id=request_id), retry_of="A")
    rest = _order("B", amount=100, created_at=3000.0, pay_request_id=request_id)  # after its expiry: money is on it
    assert await store.insert_order(rest, retry_of="A")
    more = Payment("QCH4AB12CE", "John Doe", 150, 3004.0, "MPESA")
    assert await store.finalise("B", OrderStatus.OVERPAID, 3004.0, [], payment=more)
    paid = await store.get_pay_request(request_id)
    assert paid is not None and (paid.state, paid.paid_amount, paid.order_id) == (RequestState.PAID, 1050, "B")
    assert (paid.missing, paid.excess, paid.shown_state) == (0, 50, None)


async def test_payment_requests_expire_cancel_and_list(store: Store) -> None:
    await store.insert_pay_request(_request("R1", expires_at=1500.0))
    await store.insert_pay_request(_request("R2", created_at=1001.0))
    await store.insert_pay_request(_request("R3", created_at=1002.0, source="inline", posted=False, created_by=5))
    await store.insert_pay_request(_request("R4", created_at=1003.0, source="api", api_key_id="key1", chat_id=0))
    assert await store.expire_pay_requests(1499.0) == 0
    assert await store.expire_pay_requests(1500.0) == 1
    assert await store.expire_pay_requests(1500.0) == 0
    assert (await store.get_pay_request("R1")).state is RequestState.EXPIRED  # type: ignore[union-attr]
    with pytest.raises(RequestTaken):
        await store.insert_order(_order("A", created_at=1501.0, pay_request_id="R1"))
    assert await store.cancel_pay_request("R2", 1600.0)
    assert not await store.cancel_pay_request("R2", 1601.0)
    await store.set_request_message("R3", inline_message_id="inline1")
    await store.set_request_message("R2", message_id=42)
    assert (await store.get_pay_request("R3")).posted  # type: ignore[union-attr]
    assert (await store.get_pay_request("R2")).message_id == 42  # type: ignore[union-attr]
    assert [r.id for r in await store.latest_pay_requests(since=0.0, limit=10)] == ["R4", "R3", "R2", "R1"]
    assert [r.id for r in await store.latest_pay_requests(since=1002.5, limit=10)] == ["R4", "R3"]
    assert (await store.get_api_pay_request("R4", "key1")).id == "R4"  # type: ignore[union-attr]
    assert await store.get_api_pay_request("R4", "key2") is None
    assert await store.get_api_pay_request("R2", "key1") is None


def test_every_store_method_is_in_the_contract() -> None:
    source = Path(__file__).read_text()
    public = [name for name, member in inspect.getmembers(Store) if not name.startswith("_") and callable(member)]
    missing = [name for name in public if name not in ("open", "close") and not re.search(rf"\.{name}\(", source)]
    assert missing == []


# -- several instances on one database ----------------------------------------------------


@pytest.fixture
async def other(store: Store, store_target: Path | str) -> AsyncIterator[Store]:
    """A second instance on the same database."""
    opened = await Store.open(store_target)
    yield opened
    await opened.close()


@pytest.mark.usefixtures("database_clock_as_given")
async def test_instances_see_each_others_heartbeats(store: Store, other: Store) -> None:
    assert store.instance_id != other.instance_id
    await store.heartbeat("polling", 1000.0)
    await other.heartbeat("webhook", 1001.0)
    assert [(i, m) for i, m, _ in await other.live_instances(1002.0)] == [(store.instance_id, "polling")]
    assert await other.live_instances(1000.0 + store.stale_after) == []  # silent too long: taken for dead
    await store.leave(1003.0)
    assert await other.live_instances(1003.0) == []


@pytest.mark.usefixtures("database_clock_as_given")
async def test_each_due_order_is_claimed_by_one_live_instance(store: Store, other: Store) -> None:
    for n in range(6):
        await store.insert_order(_order(f"O{n}", phone=f"25471234500{n}", next_poll_at=1000.0 + n))
    await store.heartbeat("webhook", 1010.0)
    await other.heartbeat("webhook", 1010.0)
    mine = await store.claim_due_orders(1010.0, 4)
    theirs = await other.claim_due_orders(1010.0, 4)
    assert [o.id for o in mine] == ["O0", "O1", "O2", "O3"] and [o.id for o in theirs] == ["O4", "O5"]
    assert await other.claim_due_orders(1011.0, 10) == []
    await store.release_orders(["O3"])
    assert [o.id for o in await other.claim_due_orders(1011.0, 10)] == ["O3"]
    # A lookup's reschedule gives its claim back: the order is claimable when due again.
    await store.schedule_polls([Reschedule("O0", 1013.0, None, mine[0].schedule_version)])
    assert [o.id for o in await other.claim_due_orders(1013.0, 10)] == ["O0"]
    # The claimant dies (no heartbeat): its claims lapse for the survivors.
    await other.heartbeat("webhook", 1013.0)
    assert [o.id for o in await other.claim_due_orders(1010.0 + store.stale_after + 0.1, 10)] == ["O1", "O2"]


@pytest.mark.usefixtures("database_clock_as_given")
async def test_an_order_being_sent_by_a_live_instance_is_not_unsent(store: Store, other: Store) -> None:
    await store.insert_order(_order())
    await store.heartbeat("webhook", 1000.0)
    assert await store.claim_sending("ORDER1", 1000.0)
    assert await other.unsent_orders(1010.0, 10, now=1002.0) == []  # the sender is alive: not another's to fail
    assert [o.id for o in await other.unsent_orders(1010.0, 10, now=1000.0 + store.stale_after + 1)] == ["ORDER1"]


@pytest.mark.usefixtures("database_clock_as_given")
async def test_each_chats_outbox_is_claimed_by_one_live_instance(store: Store, other: Store) -> None:
    await store.queue_notices([Notice(5, "one"), Notice(6, "two"), Notice(7, "three")], 100.0)
    if isinstance(store, SqliteStore):  # one process per file: its chat workers are the only claim
        assert await store.claim_chats(100.0, 10) == await other.claim_chats(100.0, 10) == [5, 6, 7]
        assert await store.renew_chat(5, 300.0)  # nothing to lose: the chat stays this process's
        await store.release_chat(5)
        return
    await store.heartbeat("webhook", 100.0)
    await other.heartbeat("webhook", 100.0)
    mine = await store.claim_chats(100.0, 2)
    theirs = await other.claim_chats(100.0, 10)
    assert len(mine) == 2 and sorted(mine + theirs) == [5, 6, 7]
    assert await other.claim_chats(101.0, 10) == []
    await store.release_chat(mine[0])
    assert await other.claim_chats(101.0, 10) == [mine[0]]
    # A worker still busy near the end of its lease (120 s from 100) renews the claim.
    for instance in (store, other):
        await instance.heartbeat("webhook", 210.0)
    assert await store.renew_chat(mine[1], 210.0)
    for instance in (store, other):
        await instance.heartbeat("webhook", 250.0)
    assert mine[1] not in await other.claim_chats(250.0, 10)  # past the first lease: still ours
    assert not await other.renew_chat(mine[1], 250.0)  # not theirs to renew
    # The claimant dies: the chat it was serving goes to a survivor, and the old worker stops.
    dead = 250.0 + store.stale_after + 1
    await other.heartbeat("webhook", dead)
    assert mine[1] in await other.claim_chats(dead, 10)
    assert not await store.renew_chat(mine[1], dead)


async def test_the_daily_summary_is_queued_once_per_day(store: Store, other: Store) -> None:
    assert await store.queue_daily_summary("2026-11-29", [Notice(-100, "today")], 1000.0)
    assert not await other.queue_daily_summary("2026-11-29", [Notice(-100, "today")], 1001.0)
    assert await other.queue_daily_summary("2026-11-30", [Notice(-100, "tomorrow")], 90000.0)
    assert sorted(e.notice.text for e in await store.due_outbox(99999.0, 10)) == ["today", "tomorrow"]


async def test_the_next_daily_summary_starts_where_the_last_one_ended(store: Store, other: Store) -> None:
    assert await store.last_daily_summary_end() is None
    assert await store.queue_daily_summary("2026-11-29", [Notice(-100, "today")], 1000.0)
    assert await other.last_daily_summary_end() == 1000.0
    assert await other.queue_daily_summary("2026-11-30", [Notice(-100, "caught up")], 90500.0, covers_until=90000.0)
    assert await store.last_daily_summary_end() == 90000.0


async def test_a_chats_updates_take_turns_across_instances(store: Store, other: Store) -> None:
    order: list[str] = []

    async def handle(instance: Store, name: str, chat_id: int) -> None:
        async with instance.chat_lock(chat_id):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(handle(store, "a", 5), handle(other, "b", 5))
    if not isinstance(store, SqliteStore):  # one process per SQLite file: its per-chat queue is the lock
        assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    # Other chats never wait: while one instance holds chat 5, another gets into chat 6 (a lets go
    # only once b is in, so a lock that wrongly covered both would time out here).
    b_entered = asyncio.Event()

    async def hold_chat_5() -> None:
        async with store.chat_lock(5):
            await asyncio.wait_for(b_entered.wait(), timeout=10)

    async def enter_chat_6() -> None:
        async with other.chat_lock(6):
            b_entered.set()

    await asyncio.gather(hold_chat_5(), enter_chat_6())


async def test_an_api_order_is_read_only_by_its_key(store: Store) -> None:
    assert await store.insert_order(_order("API1", source="api", chat_id=0), api_key_id="key-a")
    assert (await store.get_api_order("API1", "key-a")) == _order("API1", source="api", chat_id=0)
    assert await store.get_api_order("API1", "key-b") is None
    await store.insert_order(_order("CHAT1", phone="254700000009"))
    assert await store.get_api_order("CHAT1", "key-a") is None


async def test_a_write_probe_says_writes_work(store: Store) -> None:
    assert await store.probe_write(1000.0)
    assert await store.probe_write(1001.0)  # leaves nothing behind
    assert store.write_failure is None


async def test_a_persons_language_first_contact_then_choice(store: Store) -> None:
    assert await store.user_language(2**40) is None
    assert await store.first_contact(2**40, "sw", 1000.0) == "sw"
    assert await store.first_contact(2**40, "en", 1001.0) == "sw"  # first contact only: later ones change nothing
    await store.choose_language(2**40, "en", 1002.0)
    await store.choose_language(2**40, "en", 1003.0)  # choosing again is an upsert, not a conflict
    assert await store.user_language(2**40) == "en"
    assert await store.first_contact(2**40, "sw", 1004.0) == "en"  # the choice wins


async def test_an_update_is_seen_once_whichever_instance_gets_it(store: Store, other: Store) -> None:
    assert await store.first_delivery(2**40 + 7, 1000.0)
    assert not await store.first_delivery(2**40 + 7, 1001.0)  # delivered again
    assert not await other.first_delivery(2**40 + 7, 1002.0)  # to another instance
    assert await other.first_delivery(2**40 + 8, 1003.0)
    assert await store.forget_updates(1001.0) == 1  # a day later: forgotten
    assert await store.first_delivery(2**40 + 7, 90000.0)
    assert not await store.first_delivery(2**40 + 8, 90000.0)


async def test_heartbeats_and_claims_go_by_the_databases_clock(store: Store, other: Store) -> None:
    """An instance whose clock is 10 s ahead (`skewed`) still sees the other's heartbeat and
    claims as live: on PostgreSQL they are written and judged by the server's clock."""
    now = await store.database_now(time.time())
    assert abs(now - time.time()) < 5
    skewed = now + 10
    await store.insert_order(_order(created_at=now - 30))
    await store.heartbeat("webhook", now)
    await other.heartbeat("webhook", skewed)
    assert await store.claim_sending("ORDER1", now)
    if isinstance(store, SqliteStore):  # one process per file: its clock is the database's
        return
    assert [i for i, _, _ in await other.live_instances(skewed)] == [store.instance_id]
    assert await other.unsent_orders(skewed, 10, now=skewed) == []  # not another's to fail


@pytest.mark.usefixtures("database_clock_as_given")
async def test_a_sending_claim_is_renewed_by_its_sender_only_and_fences_the_session(store: Store, other: Store) -> None:
    await store.insert_order(_order())
    await store.heartbeat("webhook", 1000.0)
    await other.heartbeat("webhook", 1000.0)
    assert await store.claim_sending("ORDER1", 1000.0)
    assert await store.renew_sending("ORDER1", 1000.0 + store.send_lease - 1)
    assert not await other.renew_sending("ORDER1", 1000.0 + store.send_lease - 1)  # not theirs
    for instance in (store, other):
        await instance.heartbeat("webhook", 1000.0 + store.send_lease + 1)
    assert await other.unsent_orders(2000.0, 10, now=1000.0 + store.send_lease + 1) == []  # renewed: still held
    # Failing it as unsent is refused while its live sender holds it ...
    assert not await other.finalise("ORDER1", OrderStatus.FAILED, 1000.0 + store.send_lease + 1, [], unsent_only=True)
    # ... and once its sender is taken for dead, the failure and the sender's session exclude each other.
    dead = 1000.0 + 2 * store.send_lease
    await other.heartbeat("webhook", dead)
    assert await other.finalise("ORDER1", OrderStatus.FAILED, dead, [], unsent_only=True)
    assert not await store.record_session("ORDER1", "SID1", "acc", [])
    assert not await store.renew_sending("ORDER1", dead)
    await store.insert_order(_order("ORDER2", phone="254700000002"))
    assert await store.claim_sending("ORDER2", dead)
    assert await store.record_session("ORDER2", "SID2", "acc", [])
    assert not await store.finalise("ORDER2", OrderStatus.FAILED, dead, [], unsent_only=True)  # may have been pushed


# -- refunds ----------------------------------------------------------------------------------


def _paid_order(order_id: str, phone: str = "254712345678") -> Order:
    return _order(
        order_id, phone=phone, status=OrderStatus.PAID, receipt_code=f"R{order_id}", paid_amount=100, paid_at=1010.0
    )


def _refund(order_id: str, state: RefundState = RefundState.ASKED, **changes: Any) -> Refund:
    refund = Refund(
        order_id=order_id,
        state=state,
        amount=100,
        receipt_code=f"R{order_id}",
        asked_by_id=7,
        asked_by="Otieno (7)",
        asked_chat_id=-5,
        asked_at=2000.0,
        updated_at=2000.0,
    )
    return dataclasses.replace(refund, **changes)


def _approved(order_id: str, admin: int, now: float = 2100.0) -> Refund:
    return _refund(
        order_id,
        RefundState.SENDING,
        approved_by_id=admin,
        approved_by=f"Admin ({admin})",
        approved_at=now,
        updated_at=now,
        claim_until=now + 120,
    )


async def test_a_refund_is_asked_declined_asked_again_approved_once_and_finished(store: Store) -> None:
    await store.insert_order(_paid_order("PAID1"))
    card = Notice(9001, "", kind="refund_card", params={"order_id": "PAID1"}, reader=9001)
    assert await store.ask_refund(_refund("PAID1"), [card])
    assert not await store.ask_refund(_refund("PAID1"), [card])  # one ask waits already
    assert (await store.get_refund("PAID1")) == _refund("PAID1")
    assert await store.decline_refund("PAID1", 9001, "Admin (9001)", 2050.0, [])
    assert not await store.decline_refund("PAID1", 9001, "Admin (9001)", 2051.0, [])
    declined = await store.get_refund("PAID1")
    assert declined is not None and declined.state is RefundState.DECLINED and declined.approved_by_id == 9001
    assert not await store.claim_refund(_approved("PAID1", 9002), [], approving_ask=True)  # nothing waits
    assert await store.ask_refund(_refund("PAID1", asked_at=2060.0, updated_at=2060.0), [card])  # asked again
    assert await store.claim_refund(_approved("PAID1", 9002), [], approving_ask=True)
    assert not await store.claim_refund(_approved("PAID1", 9003), [], approving_ask=True)  # once only
    assert not await store.claim_refund(_approved("PAID1", 9003), [], approving_ask=False)
    assert not await store.ask_refund(_refund("PAID1"), [card])
    sending = await store.get_refund("PAID1")
    assert sending is not None and sending.state is RefundState.SENDING and sending.claimed_by == store.instance_id
    assert await store.finish_refund("PAID1", RefundState.DONE, 2110.0, [], funds=("400.00", "0.00"))
    assert not await store.finish_refund("PAID1", RefundState.REFUSED, 2111.0, [])  # recorded once
    done = await store.get_refund("PAID1")
    assert done is not None and done.state is RefundState.DONE and done.done_at == 2110.0
    assert done.c2b_funds == "400.00" and done.approved_by_id == 9002 and done.asked_by_id == 7
    assert await store.refunds_of(["PAID1", "NOSUCH"]) == {"PAID1": done}
    assert await store.refunds_of([]) == {}
    assert await store.refunds_of_orders_made(1000.0, 1001.0) == {"PAID1": done}
    assert await store.refunds_of_orders_made(1001.0, 9999.0) == {}
    assert await store.refund_totals(2000.0, 3000.0) == [(RefundState.DONE, 1, 100)]
    assert await store.refund_totals(3000.0, 4000.0) == []


async def test_the_asks_waiting_for_an_admin_are_listed_oldest_first(store: Store) -> None:
    for order_id in ("WAIT1", "WAIT2", "WAIT3"):
        await store.insert_order(_paid_order(order_id, phone=f"2547123456{order_id[-1]}0"))
    assert await store.ask_refund(_refund("WAIT2", asked_at=2010.0, updated_at=2010.0), [])
    assert await store.ask_refund(_refund("WAIT1", asked_at=2020.0, updated_at=2020.0), [])
    assert await store.ask_refund(_refund("WAIT3", asked_at=2030.0, updated_at=2030.0), [])
    assert [r.order_id for r in await store.refunds_waiting()] == ["WAIT2", "WAIT1", "WAIT3"]
    assert await store.decline_refund("WAIT1", 9001, "Admin (9001)", 2050.0, [])
    assert await store.claim_refund(_approved("WAIT3", 9001), [], approving_ask=True)
    assert [r.order_id for r in await store.refunds_waiting(limit=5)] == ["WAIT2"]
    assert await store.refunds_waiting(limit=0) == []


async def test_a_refused_refund_may_be_approved_again_and_a_direct_one_needs_no_ask(store: Store) -> None:
    await store.insert_order(_paid_order("PAID2"))
    assert await store.claim_refund(_approved("PAID2", 9001), [], approving_ask=False)  # an admin's own
    assert await store.finish_refund("PAID2", RefundState.REFUSED, 2110.0, [], reason="balance_low", detail="funds")
    refused = await store.get_refund("PAID2")
    assert refused is not None and refused.state is RefundState.REFUSED and refused.reason == "balance_low"
    assert await store.claim_refund(_approved("PAID2", 9001, 2200.0), [], approving_ask=False)  # a retry
    again = await store.get_refund("PAID2")
    assert again is not None and again.state is RefundState.SENDING and again.reason is None


async def test_two_instances_approving_at_once_claim_one_refund(store: Store, other: Store) -> None:
    for n in range(5):
        order_id = f"RACE{n}"
        await store.insert_order(_paid_order(order_id, phone=f"25471234560{n}"))
        await store.ask_refund(_refund(order_id), [])
        won = await asyncio.gather(
            store.claim_refund(_approved(order_id, 9001), [], approving_ask=True),
            other.claim_refund(_approved(order_id, 9002), [], approving_ask=True),
            other.claim_refund(_approved(order_id, 9003), [], approving_ask=False),
        )
        assert sorted(won) == [False, False, True]
        direct = f"DIRECT{n}"
        await store.insert_order(_paid_order(direct, phone=f"25471234561{n}"))
        both = await asyncio.gather(
            store.claim_refund(_approved(direct, 9001), [], approving_ask=False),
            other.claim_refund(_approved(direct, 9002), [], approving_ask=False),
        )
        assert sorted(both) == [False, True]


@pytest.mark.usefixtures("database_clock_as_given")
async def test_a_call_whose_instance_stopped_becomes_outcome_unknown_once(store: Store, other: Store) -> None:
    await store.insert_order(_paid_order("LAPSE1"))
    await other.heartbeat("webhook", 2100.0)
    assert await other.claim_refund(_approved("LAPSE1", 9001), [], approving_ask=False)
    assert await store.lapsed_refunds(2101.0) == []  # its instance is alive and within its lease
    known_dead = await store.lapsed_refunds(2101.0, gone=[other.instance_id])  # killed: its heartbeat still fresh
    assert [r.order_id for r in known_dead] == ["LAPSE1"]
    later = 2100.0 + other.stale_after + 1  # its heartbeat stopped
    lapsed = await store.lapsed_refunds(later)
    assert [r.order_id for r in lapsed] == ["LAPSE1"]
    told = Notice(9001, "", kind="refund_unknown", params={"order_id": "LAPSE1"}, reader=9001)
    assert await store.refund_outcome_unknown("LAPSE1", later, "stopped", [told])
    assert not await store.refund_outcome_unknown("LAPSE1", later, "stopped", [told])
    assert await store.lapsed_refunds(later) == []
    assert not await store.finish_refund("LAPSE1", RefundState.DONE, later, [])  # not this instance's call
    assert not await store.claim_refund(_approved("LAPSE1", 9002), [], approving_ask=False)  # never sent again
    assert await other.finish_refund("LAPSE1", RefundState.DONE, later + 1, [])  # iPay's late answer still counts
    assert (await store.get_refund("LAPSE1")).state is RefundState.DONE  # type: ignore[union-attr]


@pytest.mark.usefixtures("database_clock_as_given")
async def test_an_accepted_refund_waits_unclaimed_for_its_result_from_any_instance(store: Store, other: Store) -> None:
    await store.insert_order(_paid_order("LATER1"))
    await store.heartbeat("webhook", 2100.0)
    assert await store.claim_refund(_approved("LATER1", 9001), [], approving_ask=False)
    assert not await other.await_refund_result("LATER1", 2100.5, 3900.0, "AG_1")  # not the other's call
    assert await store.await_refund_result("LATER1", 2100.5, 3900.0, "AG_1")
    assert await store.refund_reference("LATER1") == "AG_1"
    waiting = await store.get_refund("LATER1")
    assert waiting is not None and waiting.state is RefundState.SENDING and waiting.claimed_by is None
    much_later = 2100.0 + store.stale_after + 100
    assert await store.lapsed_refunds(much_later, gone=[store.instance_id]) == []  # no call in flight to lose
    assert await store.overdue_refund_results(3899.0) == []
    assert [r.order_id for r in await store.overdue_refund_results(3900.0)] == ["LATER1"]
    told = Notice(9001, "", kind="refund_unknown", params={"order_id": "LATER1"}, reader=9001)
    assert not await store.refund_result_overdue("LATER1", 3899.0, "no_result", [told])  # not due yet
    assert await store.refund_result_overdue("LATER1", 3900.0, "no_result", [told])
    assert not await store.refund_result_overdue("LATER1", 3901.0, "no_result", [told])  # told once
    assert not await other.record_refund_result("LATER1", RefundState.UNKNOWN, 3902.0, [])  # unknown already
    assert await other.record_refund_result("LATER1", RefundState.DONE, 3903.0, [])  # the result, late, stands
    assert not await store.record_refund_result("LATER1", RefundState.REFUSED, 3904.0, [])  # recorded once
    done = await store.get_refund("LATER1")
    assert done is not None and done.state is RefundState.DONE and done.done_at == 3903.0
    assert await store.refund_reference("NOSUCH") is None


async def test_a_callback_note_is_kept_per_order_the_latest_one_standing(store: Store, other: Store) -> None:
    await store.insert_order(_order("NOTED1"))
    assert await other.provider_note("NOTED1") is None
    await store.keep_provider_note("NOTED1", '{"receipt": "A"}', 1000.0)
    await store.keep_provider_note("NOTED1", '{"receipt": "B"}', 1001.0)
    assert await other.provider_note("NOTED1") == '{"receipt": "B"}'


async def test_a_payment_made_by_hand_is_kept_once_and_an_unmatched_one_listed(store: Store) -> None:
    await store.insert_order(_order("HAND1"))
    matched = ManualPaymentRecord("TX1", "HAND1", 500, "WANJIRU", 1500.0, "HAND1")
    stray = ManualPaymentRecord("TX2", "TABLE4", 700, "OTIENO", 1600.0)
    line = Notice(-100, "", kind="paybill_unmatched", params={"receipt": "TX2"})
    assert await store.record_manual_payment(matched, 1500.5)
    assert not await store.record_manual_payment(matched, 1501.0)  # the same receipt again
    assert await store.record_manual_payment(stray, 1600.5, [line])
    assert not await store.record_manual_payment(stray, 1601.0, [line])
    assert await store.manual_payment("TX1") == matched
    assert await store.manual_payment("TX3") is None
    assert await store.unmatched_payments(1000.0, 2000.0) == [stray]
    assert await store.unmatched_payments(1601.0, 2000.0) == []
    due = [e for e in await store.due_outbox(2000.0, 10) if e.notice.kind == "paybill_unmatched"]
    assert len(due) == 1  # the shop is told once


# -- the owner's day: cashiers and closes ---------------------------------------------------


async def test_cashier_totals_are_per_person_and_status(store: Store) -> None:
    await store.insert_order(_paid_order("CASH1", phone="254712345601"))
    await store.insert_order(_order("CASH2", phone="254712345602", user_id=12, requested_by="Juma (12)"))
    await store.insert_order(_order("CASH3", phone="254712345603", status=OrderStatus.FAILED, next_poll_at=None))
    everyone = await store.cashier_totals(0.0, 2000.0)
    assert [(r.user_id, r.status, r.count, r.received) for r in everyone] == [
        (11, OrderStatus.FAILED, 1, 0),
        (11, OrderStatus.PAID, 1, 100),
        (12, OrderStatus.PENDING, 1, 0),
    ]
    assert [r.requested_by for r in await store.cashier_totals(0.0, 2000.0, user_id=12)] == ["Juma (12)"]
    assert await store.cashier_totals(1000.5, 2000.0) == []
    assert [o.id for o in await store.pending_orders(0.0, 2000.0, 10)] == ["CASH2"]
    assert await store.pending_orders(0.0, 1000.0, 10) == []


async def test_a_day_is_closed_once_and_its_later_changes_are_found(store: Store, other: Store) -> None:
    def close(by: str, at: float) -> DayClose:
        return DayClose("2025-11-24", at, by, 900.0, 1500.0, '{"n": 1}')

    won = await asyncio.gather(
        store.record_close(close("Owner (1)", 1500.0)), other.record_close(close("clock", 1501.0))
    )
    assert sorted(won) == [False, True]
    kept = await store.day_close("2025-11-24")
    assert kept is not None and kept.figures == '{"n": 1}' and kept.closed_at in (1500.0, 1501.0)
    assert await store.day_close("2025-11-25") is None
    report = Notice(9001, "the close", reader=9001)
    tuesday = DayClose("2025-11-25", 2500.0, "clock", 1500.0, 2400.0, "{}")
    assert await store.record_close(tuesday, [report])  # the close and its report, together
    assert not await store.record_close(tuesday, [report])  # closed already: nothing queued
    assert [e.notice.text for e in await store.due_outbox(2500.0, 10)] == ["the close"]
    assert (await store.last_day_close()).day == "2025-11-25"  # type: ignore[union-attr]

    await store.insert_order(_paid_order("LATE1"))  # made in the stretch, paid (updated) after its close
    await store.insert_order(_order("LATE2", phone="254712345609", updated_at=1200.0))
    await store.insert_order(_order("OPEN1", phone="254712345610", created_at=100.0, updated_at=1600.0))
    await store._write("UPDATE orders SET updated_at = 1600.0 WHERE id = 'LATE1'")
    assert [o.id for o in await store.orders_changed_since(900.0, 1500.0, 1500.0)] == ["LATE1"]
    assert [o.id for o in await store.orders_changed_since(900.0, 1500.0, 1500.0, ["OPEN1"])] == ["OPEN1", "LATE1"]

    assert await store.claim_refund(_approved("LATE1", 9001, now=1700.0), [], approving_ask=False)
    assert [r.order_id for r in await store.refunds_changed_since(1500.0, 1500.0)] == ["LATE1"]
    assert await store.refunds_changed_since(1800.0, 1500.0) == []
    assert await store.refunds_changed_since(1500.0, 1000.0) == []
