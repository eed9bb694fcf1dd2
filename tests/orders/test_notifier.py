"""Outbox delivery: every chat in order, chats independent of each other, and a merchant
group that falls behind gets a digest instead of one line per payment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.domain import Notice, Order, OrderStatus
from bot.orders import sentences as order_sentences
from bot.orders.notifier import Notifier
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi
from bot.store import Store
from bot.telegram import sentences as chat_sentences
from bot.telegram.ratelimit import PerChatRateLimiter
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, query_plans, readable, start_shop, stop_shop
from tests.postgres_server import PostgresServer

GROUP = -1001234567


def _phone(n: int) -> str:
    return f"0712345{n:02d}8"  # ends in 8: the sandbox's payer pays in full


def _calls(telegram: FakeBotApi, chat_id: int, text_start: str) -> list[dict[str, Any]]:
    return [
        p
        for m, p in telegram.calls
        if m == "sendMessage" and int(p["chat_id"]) == chat_id and text_start in str(p["text"])
    ]


async def test_a_rate_limited_merchant_group_does_not_hold_back_the_payers_receipts(shop: Shop) -> None:
    customers = [shop.customer(601 + n, f"Payer{n}") for n in range(4)]
    orders = [await shop.pay(customer, phone=_phone(n)) for n, customer in enumerate(customers)]
    arrivals: list[int] = []

    def arrived(event: str, message: ChatMessage) -> None:
        if event == "message":
            arrivals.append(message.chat_id)

    shop.telegram.listeners.append(arrived)
    # Telegram answers the group's first message with 429, retry after 1 s: the rate limiter
    # waits that out and sends again, and meanwhile the payers' chats are served.
    shop.telegram.rate_limit_next("sendMessage", retry_after=1, chat_id=MERCHANT_CHAT)
    shop.clock.advance(5)
    await shop.sweep()
    assert all(" Confirmed. KES " in shop.last(c.chat_id).text for c in customers)
    first_in_group = arrivals.index(MERCHANT_CHAT)
    assert {c.chat_id for c in customers} <= set(arrivals[:first_in_group])  # every receipt came first
    merchant_text = "\n".join(shop.texts(MERCHANT_CHAT))
    assert all(merchant_text.count(f"order {readable(o.id)}") == 1 for o in orders)  # and the group got every line once
    assert await shop.services.store.pending_outbox_count() == 0


async def test_a_postponed_message_holds_back_only_its_own_chats_later_messages(shop: Shop) -> None:
    first, second = shop.customer(601, "First"), shop.customer(602, "Second")
    order = await shop.pay(first, phone="0712345001")  # ends in 1: the payer cancels on the phone
    prompt = shop.last(first.chat_id)
    await shop.pay(second, phone=_phone(1))
    shop.telegram.fail_next("editMessageText", 502, "Bad Gateway", chat_id=first.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.CANCELLED
    assert " Confirmed. KES " in shop.last(second.chat_id).text  # the other chat is served
    assert " · PAID · " in shop.last(MERCHANT_CHAT).text
    # The first chat's prompt edit failed, so the message saying how it ended (queued after the
    # edit) waits for it.
    assert prompt.text.startswith("📲 Check your phone")
    assert shop.last(first.chat_id) is prompt
    shop.clock.advance(2)  # the outbox's first back-off
    await shop.sweep()
    assert prompt.text.startswith(f"Order {readable(order.id)}: KES 500") and prompt.text.endswith(
        "cancelled on the phone."
    )
    assert shop.last(first.chat_id) is not prompt
    assert await shop.services.store.pending_outbox_count() == 0


async def test_telegrams_retry_after_postpones_the_message_that_long(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    # Without the rate limiter the 429 reaches the notifier itself, as it does in production
    # once the limiter's own retries are used up.
    shop = await start_shop(settings, telegram, sandbox, clock, rate_limit=False)
    try:
        customer = shop.customer()
        order = await shop.pay(customer)
        telegram.rate_limit_next("sendMessage", retry_after=30, chat_id=customer.chat_id)
        clock.advance(5)
        await shop.sweep()
        assert (await shop.order(order.id)).status is OrderStatus.PAID
        assert " · PAID · " in shop.last(MERCHANT_CHAT).text  # nobody else waits
        assert len(_calls(telegram, customer.chat_id, " Confirmed. ")) == 1  # refused
        assert " Confirmed. KES " not in shop.last(customer.chat_id).text
        clock.advance(29)
        await shop.sweep()
        assert len(_calls(telegram, customer.chat_id, " Confirmed. ")) == 1  # not asked again before retry_after
        clock.advance(1)
        await shop.sweep()
        assert len(_calls(telegram, customer.chat_id, " Confirmed. ")) == 2
        assert " Confirmed. KES " in shop.last(customer.chat_id).text
        assert await shop.services.store.pending_outbox_count() == 0
    finally:
        await stop_shop(shop)


async def test_a_merchant_group_that_falls_behind_gets_one_digest_instead_of_a_line_per_payment(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    telegram.group_limit_per_minute = 2  # Telegram's is 20 a minute; 2 keeps the story short
    shop = await start_shop(settings, telegram, sandbox, clock, rate_limit=False)
    try:
        orders: list[Order] = []
        for n in range(7):
            customer = shop.customer(601 + n, f"Payer{n}")
            orders.append(await shop.pay(customer, phone=_phone(n)))
            clock.advance(5)
            await shop.sweep()
            assert " Confirmed. KES " in shop.last(customer.chat_id).text  # every payer is told at once
        group = shop.texts(MERCHANT_CHAT)
        assert len(group) == 2 and all(" · PAID · " in text for text in group)  # then the group limit
        assert await shop.services.store.pending_outbox_count() == 5

        clock.advance(60)
        await shop.sweep()
        (digest,) = shop.texts(MERCHANT_CHAT)[2:]
        header, *lines = digest.splitlines()
        assert header == "5 payments since 19:00:"  # the third payment's time in Nairobi (16:00 UTC)
        assert [line.split(" · order ")[1].split(" ")[0] for line in lines] == [readable(o.id) for o in orders[2:]]
        assert all(line.split(" · ", 1)[1].startswith("PAID · KES 500 · M-Pesa · 07** ***") for line in lines)
        assert await shop.services.store.pending_outbox_count() == 0
    finally:
        await stop_shop(shop)


async def test_a_cashiers_own_receipt_in_the_merchant_group_is_never_folded(shop: Shop) -> None:
    customers = [shop.customer(601 + n, f"Payer{n}") for n in range(4)]
    orders = [await shop.pay(customer, phone=_phone(n)) for n, customer in enumerate(customers)]
    cashier = shop.customer(701, "Cashier", chat_id=MERCHANT_CHAT)  # takes a payment in the merchant group itself
    own = await shop.pay(cashier, phone=_phone(9))
    shop.telegram.fail_next("sendMessage", 502, "Bad Gateway", chat_id=MERCHANT_CHAT)
    shop.clock.advance(5)
    await shop.sweep()  # the group's first message fails: the group waits, the payers do not
    assert all(" Confirmed. KES " in shop.last(c.chat_id).text for c in customers)
    shop.clock.advance(2)
    await shop.sweep()
    group = [t for t in shop.texts(MERCHANT_CHAT) if t.startswith(("4 payments", "PAID")) or " Confirmed. " in t]
    (digest,) = [t for t in group if t.startswith("4 payments since ")]
    assert sorted(line.split(" · order ")[1].split(" ")[0] for line in digest.splitlines()[1:]) == sorted(
        readable(o.id) for o in orders
    )
    (receipt,) = [t for t in group if " Confirmed. " in t]  # the cashier's receipt: a message of its own
    assert f"Order {readable(own.id)}." in receipt and readable(own.id) not in digest
    assert [t for t in group if t.startswith("PAID")] == [
        t for t in group if f"order {readable(own.id)}" in t and t != digest
    ]
    assert await shop.services.store.pending_outbox_count() == 0


def test_a_long_digest_is_split_within_telegrams_limit() -> None:
    lines = [
        f"PAID · KES 150,000 · Airtel Money · 07** ***678 · receipt QCH4AB{n:04d} · order K7QX2M9P{n:04d} · "
        f"asked by Wanjiru Wambui Kamau (@wanjiru_the_cashier, 5012345{n:03d})"
        for n in range(100)
    ]
    parts = order_sentences.merchant_digest(lines, 1_764_000_000.0)  # 19:00 in Nairobi
    texts = [text for _, text in parts]
    assert len(texts) == 4 and all(len(text) <= 4096 for text in texts)
    assert [text.splitlines()[0] for text in texts] == [f"100 payments since 19:00 ({n}/4):" for n in (1, 2, 3, 4)]
    chunks = [text.splitlines()[1:] for text in texts]
    assert [line for chunk in chunks for line in chunk] == lines  # every line once, in order
    assert [count for count, _ in parts] == [len(chunk) for chunk in chunks]
    for text, following in zip(texts[:-1], chunks[1:], strict=True):
        assert len(text) + 1 + len(following[0]) > 4096  # each message is as full as it can be


def test_a_sandbox_digest_says_sandbox_once() -> None:
    tagged = [
        chat_sentences.SANDBOX_TAG + "PAID · KES 500 · order A",
        chat_sentences.SANDBOX_TAG + "FAILED · KES 20 · order B",
    ]
    ((count, text),) = order_sentences.merchant_digest(tagged, 1_764_000_000.0)
    assert count == 2
    assert text == (
        chat_sentences.SANDBOX_TAG + "2 payments since 19:00:\nPAID · KES 500 · order A\nFAILED · KES 20 · order B"
    )


async def test_finding_due_chats_reads_unsent_entries_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent entries are kept for ever; finding who is due must not scan them. The plans are
    those of the store's own statements, with their parameters bound as they run."""
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        plans = await query_plans(
            store, monkeypatch, lambda: store.due_chats(1000.0, 16), lambda: store.chat_outbox(601, 1000.0, 100)
        )
        assert len(plans) == 2
        assert "SEARCH o USING INDEX outbox_due" in plans[0] and "USING INDEX outbox_unsent_by_chat" in plans[0]
        assert "SEARCH outbox USING INDEX outbox_unsent_by_chat (chat_id=?)" in plans[1]
        assert "SCAN" not in " ".join(plans)
    finally:
        await store.close()


async def test_the_rate_limiter_paces_a_group_and_leaves_private_chats_alone() -> None:
    limiter = PerChatRateLimiter(max_retries=0, group_per_minute=2, group_window=1.0)  # 2 a second, to be quick
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: dict[int, list[float]] = {MERCHANT_CHAT: [], 601: []}

    async def send(chat_id: int) -> bool:
        sent[chat_id].append(loop.time() - start)
        return True

    async def request(chat_id: int) -> None:
        await limiter.process_request(send, (chat_id,), {}, "sendMessage", {"chat_id": chat_id}, None)

    await asyncio.gather(*(request(chat) for chat in [MERCHANT_CHAT] * 4 + [601] * 4))
    assert len(sent[601]) == 4 and max(sent[601]) < 0.4  # private chats: no per-chat pace
    assert sorted(sent[MERCHANT_CHAT])[-1] >= 0.9  # the group: 2 at once, then one every half second


class _SlowGroup:
    """A bot whose every message to the group takes 25 s (Telegram's 20 a minute, and more):
    it also beats this instance's heartbeat, as the running bot's job would."""

    def __init__(self, store: Store, clock: ManualClock, on_send: Callable[[int], Awaitable[None]]) -> None:
        self.store, self.clock, self.on_send, self.sent = store, clock, on_send, 0

    async def send_message(self, chat_id: int, text: str, **_: Any) -> None:
        self.clock.advance(25)
        await self.store.heartbeat("webhook", self.clock())
        self.sent += 1
        await self.on_send(self.sent)


@pytest.mark.usefixtures("database_clock_as_given")
@pytest.mark.parametrize("taken_over_after", [None, 3])
async def test_a_slow_chats_worker_renews_its_claim_and_stops_if_taken_over(
    postgres_server: PostgresServer, taken_over_after: int | None
) -> None:
    """10 messages at 25 s each outlast the 120 s lease: the worker renews its claim, so no other
    live instance delivers the chat meanwhile; if the claim was taken over (this instance was
    thought dead), it stops at its next renewal instead of sending alongside the new owner."""
    url = postgres_server.new_database_sync()
    store, other = await Store.open(url), await Store.open(url)
    clock = ManualClock(1000.0)
    try:
        await store.queue_notices([Notice(GROUP, f"line {n}") for n in range(10)], clock())
        await store.heartbeat("webhook", clock())
        stolen: list[int] = []

        async def on_send(sent: int) -> None:
            await other.heartbeat("webhook", clock())
            if taken_over_after is not None and sent == taken_over_after:
                dead = clock() + store.stale_after + 1  # this instance's heartbeat went stale meanwhile
                await other.heartbeat("webhook", dead)
                stolen.extend(await other.claim_chats(dead, 10))
            elif not stolen:
                assert await other.claim_chats(clock(), 10) == []  # still ours, lease renewed

        bot = _SlowGroup(store, clock, on_send)
        notifier = Notifier(store, bot, clock=clock)  # type: ignore[arg-type]  # the one method used
        notifier.kick()
        await notifier.wait_idle()
        if taken_over_after is None:
            assert bot.sent == 10 and await store.pending_outbox_count() == 0
        else:
            assert stolen == [GROUP]
            assert bot.sent < 10  # stopped at its next renewal (every 30 s: within two messages)
            assert bot.sent <= taken_over_after + 2
    finally:
        await store.close()
        await other.close()
