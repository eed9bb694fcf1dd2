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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import Network, Notice, Order, OrderStatus, Payment, SummaryRow
from bot.store import (
    Draft,
    DraftGone,
    DraftStep,
    PaidMeanwhile,
    PayRequest,
    PhoneBusy,
    RequestState,
    RequestTaken,
    Reschedule,
    Store,
)
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
    await store.record_session("ORDER1", "SID1", "ACC1", [("mpesa", "510800")])
    await store.record_session("ORDER1", "SID2", "ACC2", [])
    order = await store.get_order("ORDER1")
    assert order is not None and (order.ipay_sid, order.ipay_account, order.ipay_paybills) == (
        "SID1",
        "ACC1",
        (("mpesa", "510800"),),
    )
    assert order.initiate_at == 1001.0 and order.reached_ipay
    assert await store.record_prompt_sent("ORDER1", 1003.0, 1008.0, [Notice(1, "check your phone")])
    assert not await store.record_prompt_sent("ORDER1", 1004.0, 1009.0, [Notice(1, "again")])
    assert await store.unsent_orders(2000.0, 10) == []
    assert [e.notice.text for e in await store.due_outbox(2000.0, 10)] == ["check your phone"]
    await store.set_prompt_message("ORDER1", 77)
    assert (await store.get_order("ORDER1")).prompt_message_id == 77  # type: ignore[union-attr]


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


def _request(request_id: str = "RAAAAAAAAA1", **changes: object) -> PayRequest:
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
    return PayRequest(**base)  # type: ignore[arg-type]


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
    assert (await store.inline_offer(5, 100, "2 loaves", 900.0)).id == "R3"  # type: ignore[union-attr]
    assert await store.inline_offer(5, 100, "bread", 900.0) is None
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


async def test_instances_see_each_others_heartbeats(store: Store, other: Store) -> None:
    assert store.instance_id != other.instance_id
    await store.heartbeat("polling", 1000.0)
    await other.heartbeat("webhook", 1001.0)
    assert [(i, m) for i, m, _ in await other.live_instances(1002.0)] == [(store.instance_id, "polling")]
    assert await other.live_instances(1000.0 + store.stale_after) == []  # silent too long: taken for dead
    await store.leave(1003.0)
    assert await other.live_instances(1003.0) == []


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


async def test_an_order_being_sent_by_a_live_instance_is_not_unsent(store: Store, other: Store) -> None:
    await store.insert_order(_order())
    await store.heartbeat("webhook", 1000.0)
    assert await store.claim_sending("ORDER1", 1000.0)
    assert await other.unsent_orders(1010.0, 10, now=1002.0) == []  # the sender is alive: not another's to fail
    assert [o.id for o in await other.unsent_orders(1010.0, 10, now=1000.0 + store.stale_after + 1)] == ["ORDER1"]


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
