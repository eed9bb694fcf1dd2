"""A /pay conversation survives a restart of the bot: every step the payer saw answered.

Each test stops the running Application and starts a new one on the same database (Telegram
and iPay carry on, as they do when a host restarts the bot), then goes on as the payer would.
The SIGKILL versions are in test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.config import Settings
from bot.domain import Network, OrderStatus
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi
from tests.conftest import ManualClock, Restarts, Shop, stop_shop, with_settings

TIMED_OUT = "I stopped waiting, so that payment was not sent. Send /pay to start again."


async def _confirm_and_check_the_prompt(shop: Shop, customer_chat: int, summary: ChatMessage, network: Network) -> None:
    user = shop.customer(customer_chat)
    await shop.send(user.press(summary, "Confirm"))
    order = await shop.only_order(customer_chat)
    assert order.status is OrderStatus.PENDING and order.network is network
    assert shop.sandbox.stats.calls.get(f"/transact/push/{network.value}") == 1
    assert summary.text.startswith(f"📲 Check your phone and enter your {network.label} PIN")


async def test_restart_after_the_phone_step_goes_on_with_the_amount(bot: Restarts) -> None:
    shop = bot.shop
    assert shop is not None
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712 345 678")
    assert "How much?" in shop.last(customer.chat_id).text

    shop = await bot.restart(downtime=30)
    await shop.type(customer, "750")
    summary = shop.last(customer.chat_id)
    assert "Amount: KES 750" in summary.text and "Phone: 0712 345 678" in summary.text
    assert summary.button_labels == ["✅ Confirm", "🔁 Use Airtel Money instead", "✖️ Cancel"]
    await _confirm_and_check_the_prompt(shop, customer.chat_id, summary, Network.MPESA)
    assert (await shop.only_order(customer.chat_id)).amount == 750


async def test_restart_between_the_summary_and_confirm(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    summary = await bot.shop.start_payment(customer, amount="1,200")

    shop = await bot.restart(downtime=60)
    await _confirm_and_check_the_prompt(shop, customer.chat_id, summary, Network.MPESA)
    assert (await shop.only_order(customer.chat_id)).amount == 1200


async def test_restart_after_a_network_switch_keeps_the_switch(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    summary = await bot.shop.start_payment(customer, phone="0712345678")
    await bot.shop.send(customer.press(summary, "Airtel"))
    assert "Pay with: Airtel Money" in summary.text

    shop = await bot.restart()
    await _confirm_and_check_the_prompt(shop, customer.chat_id, summary, Network.AIRTEL)


async def test_restart_at_the_phone_step_takes_the_phone(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    await bot.shop.type(customer, "/pay")

    shop = await bot.restart()
    await shop.type(customer, "0712345678", "500")
    summary = shop.last(customer.chat_id)
    assert "Amount: KES 500" in summary.text
    await _confirm_and_check_the_prompt(shop, customer.chat_id, summary, Network.MPESA)


async def test_a_draft_older_than_the_timeout_is_dropped_with_the_message(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    summary = await bot.shop.start_payment(customer)

    shop = await bot.restart(downtime=bot.settings.conversation_timeout_seconds + 1)
    await shop.send(customer.press(summary, "Confirm"))
    assert shop.last(customer.chat_id).text == TIMED_OUT
    assert shop.telegram.callback_answers[-1]["text"] == "That button is no longer active."
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 5) == []
    assert shop.sandbox.stats.calls == {}
    await shop.send(customer.text("500"))  # told once; now outside any conversation
    assert shop.last(customer.chat_id).text == "To pay Mama Mboga, send /pay. /help lists everything."


async def test_the_timeout_counts_from_the_last_step_not_from_the_restart(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    await bot.shop.type(customer, "/pay", "0712345678")
    timeout = bot.settings.conversation_timeout_seconds

    shop = await bot.restart(downtime=timeout - 10)
    shop.clock.advance(11)  # 1 s past the timeout, only 11 s after the restart
    await shop.type(customer, "500")
    assert shop.last(customer.chat_id).text == TIMED_OUT
    assert shop.telegram.bot_messages(customer.chat_id)[-2].text.startswith("Phone: 0712 345 678")


async def test_a_restarted_bot_still_tells_an_idle_payer_when_time_is_up(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    bot = Restarts(with_settings(settings, conversation_timeout_seconds=0.3), telegram, sandbox, clock)
    shop = await bot.start()
    try:
        customer = shop.customer()
        await shop.type(customer, "/pay", "0712345678")
        shop = await bot.restart()
        shop.clock.advance(0.3)
        for _ in range(40):
            await asyncio.sleep(0.05)
            if shop.last(customer.chat_id).text == TIMED_OUT:
                break
        assert shop.last(customer.chat_id).text == TIMED_OUT
        assert await shop.services.conversations.live(customer.chat_id, customer.user_id) is None
    finally:
        if bot.shop is not None:
            await stop_shop(bot.shop)


async def test_a_draft_that_ran_out_while_the_bot_was_down_is_told_on_the_next_step_only(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    bot = Restarts(with_settings(settings, conversation_timeout_seconds=0.3), telegram, sandbox, clock)
    shop = await bot.start()
    try:
        customer, other = shop.customer(), shop.customer(502, "Otieno")
        await shop.type(customer, "/pay", "0712345678")
        shop = await bot.restart(downtime=10)
        await shop.type(other, "/pay", "0712345679")  # a draft that runs out while the bot is up
        shop.clock.advance(0.3)
        await shop.conversation_sweep()
        assert shop.last(other.chat_id).text == TIMED_OUT  # the sweep ran and told the draft it may tell
        assert shop.last(customer.chat_id).text.startswith("Phone: 0712 345 678")
        await shop.type(customer, "500")
        assert shop.last(customer.chat_id).text == TIMED_OUT
    finally:
        if bot.shop is not None:
            await stop_shop(bot.shop)


async def test_each_step_is_in_the_database_before_its_answer_is_sent(bot: Restarts) -> None:
    """What a kill -9 right after an answer would find: the step that answer acknowledged."""
    shop = bot.shop
    assert shop is not None
    customer = shop.customer()
    stored_when_answered: list[tuple[str, str | None]] = []

    def look_in_the_database(event: str, message: ChatMessage) -> None:
        if message.chat_id != customer.chat_id:
            return
        with sqlite3.connect(bot.settings.database_path) as db:
            row = db.execute("SELECT step, network FROM drafts WHERE chat_id = ?", (customer.chat_id,)).fetchone()
        stored_when_answered.append((message.text.split("\n")[0], None if row is None else f"{row[0]}/{row[1]}"))

    shop.telegram.listeners.append(look_in_the_database)
    summary = await shop.start_payment(customer, phone="0712345678")
    await shop.send(customer.press(summary, "Airtel"))
    assert stored_when_answered == [
        ("Which phone should get the payment prompt?", "phone/mpesa"),
        ("Phone: 0712 345 678 (M-Pesa).", "amount/mpesa"),
        ("Please check:", "confirm/mpesa"),
        ("Please check:", "confirm/airtel"),
    ]


async def test_an_older_summary_is_stale_after_a_restart_and_a_new_amount(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    first = await bot.shop.start_payment(customer, amount="500")
    first_confirm = first.button_data("Confirm")

    shop = await bot.restart()
    await shop.type(customer, "700")  # a new amount at the summary makes a new summary
    second = shop.last(customer.chat_id)
    assert "Amount: KES 700" in second.text and second is not first
    assert first.buttons == [] and first.text.endswith("\n\nReplaced by your answer below.")
    await shop.send(customer.press_data(first, first_confirm))  # an old client's copy
    assert shop.telegram.callback_answers[-1]["text"] == "That button is no longer active."
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 5) == []
    await shop.send(customer.press(second, "Confirm"))
    assert (await shop.only_order(customer.chat_id)).amount == 700


async def test_the_phone_again_at_the_amount_step_is_taken_as_the_phone(bot: Restarts) -> None:
    """If the bot died after writing the phone step but before answering it, the payer, who saw
    no answer, sends the number again: it is taken as the phone, not refused as an amount."""
    assert bot.shop is not None
    customer = bot.shop.customer()
    await bot.shop.type(customer, "/pay", "0712345678")
    shop = await bot.restart()
    await shop.type(customer, "0733 123 457")
    assert shop.last(customer.chat_id).text.startswith("Phone: 0733 123 457 (Airtel Money).")
    await shop.type(customer, "300")
    assert "Amount: KES 300" in shop.last(customer.chat_id).text


async def test_at_the_summary_a_new_amount_replaces_it_and_a_bad_one_is_explained(bot: Restarts) -> None:
    """A payer whose summary never arrived (the bot died before sending it) types the amount
    again; one who changes their mind types another."""
    shop = bot.shop
    assert shop is not None
    customer = shop.customer()
    await shop.start_payment(customer, amount="500")
    await shop.type(customer, "200,000")
    assert shop.last(customer.chat_id).text.startswith("The largest amount I can take is KES 150,000.")
    await shop.type(customer, "hmm")  # ("ok" would confirm)
    assert "Confirm or Cancel" in shop.last(customer.chat_id).text
    await shop.type(customer, "650")
    summary = shop.last(customer.chat_id)
    assert "Amount: KES 650" in summary.text
    await _confirm_and_check_the_prompt(shop, customer.chat_id, summary, Network.MPESA)


async def test_drafts_of_two_chats_and_two_people_do_not_mix(bot: Restarts) -> None:
    assert bot.shop is not None
    alone = bot.shop.customer(501)
    in_group = bot.shop.customer(501, chat_id=-100555)
    other = bot.shop.customer(502, chat_id=-100555)
    await bot.shop.type(alone, "/pay", "0712345678")
    await bot.shop.type(in_group, "/pay", "0722000007")
    await bot.shop.type(other, "/pay")

    shop = await bot.restart()
    await shop.type(alone, "100")
    await shop.type(in_group, "200")
    await shop.type(other, "0733000008")
    assert "Amount: KES 100" in shop.last(501).text and "0712 345 678" in shop.last(501).text
    group = shop.texts(-100555)
    assert "Amount: KES 200" in group[-2] and "07** ***007" in group[-2]
    assert group[-1].startswith("Phone: 07** ***008 (Airtel Money).")


async def test_a_database_from_before_drafts_gets_the_drafts_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.store import _MIGRATIONS, SCHEMA_VERSION, Store

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # a shop's database as the previous release left it
        for version in (1, 2, 3, 4):
            db.executescript(_MIGRATIONS[version])
        db.execute("PRAGMA user_version = 4")
    store = await Store.open(path)
    try:
        assert (await store._row("PRAGMA user_version"))[0] == SCHEMA_VERSION  # type: ignore[index]
        assert await store.get_draft(1, 1) is None
    finally:
        await store.close()


async def test_payments_still_wait_for_the_disk_after_draft_writes(tmp_path: Path) -> None:
    """Drafts commit without a disk flush (a kill -9 keeps them; only a power cut could lose a
    step); an order written right after one is flushed on commit as before."""
    from bot.domain import Draft, DraftStep
    from bot.store.sqlite import SqliteStore
    from tests.conftest import an_order

    store = await SqliteStore.open(tmp_path / "db.sqlite3")
    try:
        await store.put_draft(Draft(1, 1, DraftStep.PHONE, "r1", 1000.0))
        assert await store.insert_order(an_order())
        synchronous = "PRAGMA synchronous"
        assert [tuple(row) for row in await store._drafts.execute_fetchall(synchronous)] == [(1,)]  # NORMAL
        assert [tuple(row) for row in await store._db.execute_fetchall(synchronous)] == [(2,)]  # FULL
        assert await store.get_draft(1, 1) is not None  # the other connection reads it at once
    finally:
        await store.close()


async def test_a_prompt_waiting_for_its_phone_is_sent_after_a_restart_and_down_time(bot: Restarts) -> None:
    """Confirmed to wait for the phone, then the bot is down when the time
    comes: the first sweep after the restart sends it."""
    from tests.orders.test_wording import cancelled_then_paid_again, pushes, sweeps_until

    assert bot.shop is not None
    customer = bot.shop.customer()
    _, summary, _ = await cancelled_then_paid_again(bot.shop, customer)
    await bot.shop.send(customer.press(summary, "Confirm"))
    assert summary.text.startswith("⏳ Confirmed.")
    shop = await bot.restart(downtime=600)
    await shop.sweep()  # the cancelled order's watch ends
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    orders = await shop.services.store.latest_chat_orders(customer.chat_id, 5)
    assert [o.amount for o in orders] == [300, 500]
    assert orders[0].requested_by.startswith("Wanjiru")


async def test_drafts_and_payments_written_at_the_same_moment_each_commit_as_they_should(tmp_path: Path) -> None:
    """Many payers at once: draft writes (no flush) and order writes (flushed) interleave, and
    each order statement and its message still commits on the connection whose commits wait for
    the disk, each draft on the one that does not, as its own transaction."""
    from bot.domain import Draft, DraftStep, Notice
    from bot.store.sqlite import SqliteStore
    from tests.conftest import an_order

    store = await SqliteStore.open(tmp_path / "db.sqlite3")
    flushed: list[str] = []
    unflushed: list[str] = []
    await store._db.set_trace_callback(flushed.append)
    await store._drafts.set_trace_callback(unflushed.append)
    try:

        async def payer(n: int) -> None:
            await store.put_draft(Draft(n, n, DraftStep.PHONE, f"r{n}", 1000.0))
            order = an_order(f"ORDER{n}", chat_id=n, user_id=n, phone=f"2547123400{n:02d}")
            assert await store.insert_order(order)
            assert await store.claim_sending(order.id, 1001.0)
            await store.drop_draft(n, n)
            assert await store.record_prompt_sent(order.id, 1002.0, 1007.0, [Notice(n, "Check your phone")])

        await asyncio.gather(*(payer(n) for n in range(30)))
        synchronous = "PRAGMA synchronous"
        assert [tuple(row) for row in await store._db.execute_fetchall(synchronous)] == [(2,)]  # FULL
        assert [tuple(row) for row in await store._drafts.execute_fetchall(synchronous)] == [(1,)]  # NORMAL
    finally:
        await store.close()

    def writes(trace: list[str], table: str) -> list[str]:
        return [s for s in trace if f" {table} " in s and not s.startswith("SELECT") and not is_claim(s)]

    def is_claim(statement: str) -> bool:  # the send claim waits for no disk (`Store.claim_sending` says why)
        return statement.startswith("UPDATE orders SET initiate_at")

    assert len(writes(flushed, "orders")) + len(writes(flushed, "outbox")) == 90
    assert not any(is_claim(s) for s in flushed) and sum(map(is_claim, unflushed)) == 30
    assert writes(flushed, "drafts") == [] and len(writes(unflushed, "drafts")) == 60
    assert writes(unflushed, "orders") == writes(unflushed, "outbox") == []
    assert not any(s.startswith("BEGIN") for s in unflushed)  # each draft is its own transaction


async def test_a_draft_written_while_an_order_is_being_written_is_not_rolled_back_with_it(tmp_path: Path) -> None:
    """A single-statement write never runs inside another write's open transaction (a draft's
    connection waits for the file's lock), so a transaction that fails takes only its own
    statements with it."""
    from bot.domain import Draft, DraftStep
    from bot.store.sqlite import SqliteStore

    store = await SqliteStore.open(tmp_path / "db.sqlite3")
    try:
        draft_written: asyncio.Task[bool] | None = None
        with pytest.raises(RuntimeError):
            async with store._transaction() as db:
                await db.execute("INSERT INTO users (user_id, language, chosen, updated_at) VALUES (7, 'sw', 1, 0)")
                draft_written = asyncio.create_task(store.put_draft(Draft(7, 7, DraftStep.PHONE, "r7", 1000.0)))
                await asyncio.sleep(0.05)  # the draft's write is asked for while this transaction is open
                raise RuntimeError("the order's write fails")
        assert draft_written is not None and await draft_written
        assert await store.get_draft(7, 7) is not None
        assert await store.user_language(7) is None
    finally:
        await store.close()
