"""The provider call budget: prompts never queue behind lookups, and the calls in flight follow
the provider (more while it answers promptly, half as many when it struggles).

The window's arithmetic is driven by a manual clock; the end-to-end test sweeps a real backlog
of lookups through the running bot while a payer presses Confirm.
"""

from __future__ import annotations

import asyncio
import time

from telegram import Update

from bot.domain import OrderStatus
from bot.providers.limiter import BASELINE_PERIOD, CallBudget, Lane
from bot.sandbox.ipay import IpaySandbox
from tests.conftest import ManualClock, ShopWith, an_order


async def answered(budget: CallBudget, clock: ManualClock, seconds: float, lane: Lane = Lane.LOOKUP) -> None:
    async with budget.slot(lane) as slot:
        clock.advance(seconds)
        slot.answered()


async def congested(budget: CallBudget, clock: ManualClock, seconds: float) -> None:
    async with budget.slot(Lane.LOOKUP) as slot:
        clock.advance(seconds)
        slot.congested()


async def test_the_window_grows_while_latency_holds_up_to_the_ceiling() -> None:
    clock = ManualClock()
    budget = CallBudget(20, initial=4, clock=clock)
    for _ in range(10):
        await answered(budget, clock, 0.15)
    assert budget.window == 14  # one more a call at first (slow start)
    for _ in range(50):
        await answered(budget, clock, 0.15)
    assert budget.window == 20  # never past POLL_CONCURRENCY


async def test_a_429_5xx_or_timeout_halves_the_window_once_a_round_trip() -> None:
    clock = ManualClock()
    budget = CallBudget(40, initial=40, clock=clock)
    await answered(budget, clock, 0.15)
    await congested(budget, clock, 0.15)
    assert budget.window == 20
    await congested(budget, clock, 0.01)  # the same bad moment: calls in flight fail together
    assert budget.window == 20
    clock.advance(0.2)
    await congested(budget, clock, 0.15)  # a round trip later it is a new sign
    assert budget.window == 10
    for _ in range(10):
        await congested(budget, clock, 1.0)
    assert budget.window == 1  # never below one call


async def test_after_trouble_the_window_grows_by_one_a_window_not_one_a_call() -> None:
    clock = ManualClock()
    budget = CallBudget(40, initial=20, clock=clock)
    await answered(budget, clock, 0.15)
    await congested(budget, clock, 0.15)
    assert budget.window == 10
    for _ in range(10):
        await answered(budget, clock, 0.15)
    assert budget.window == 11


async def test_the_window_holds_while_the_provider_slows_then_grows_once_slow_is_normal() -> None:
    clock = ManualClock()
    budget = CallBudget(100, initial=10, clock=clock)
    for _ in range(5):
        await answered(budget, clock, 0.15)
    assert budget.window == 15
    for _ in range(20):
        await answered(budget, clock, 1.0)  # more than twice the fastest lately
    assert budget.window == 15
    clock.advance(2 * BASELINE_PERIOD)
    for _ in range(5):
        await answered(budget, clock, 1.0)  # the fast answers are forgotten: 1 s is the new normal
    assert budget.window > 15


async def test_a_prompt_finds_a_slot_while_lookups_fill_theirs_and_goes_first_when_all_are_full() -> None:
    clock = ManualClock()
    budget = CallBudget(5, initial=5, clock=clock)
    release = asyncio.Event()
    started: list[str] = []

    async def call(lane: Lane, name: str) -> None:
        async with budget.slot(lane) as slot:
            started.append(name)
            await release.wait()
            slot.answered()

    lookups = [asyncio.create_task(call(Lane.LOOKUP, f"lookup {n}")) for n in range(100)]
    await asyncio.sleep(0)
    assert len(started) == 4  # one slot of five is kept for prompts
    prompt = asyncio.create_task(call(Lane.PROMPT, "prompt 1"))
    await asyncio.sleep(0)
    assert started[-1] == "prompt 1"  # at once, with 96 lookups waiting
    second = asyncio.create_task(call(Lane.PROMPT, "prompt 2"))
    await asyncio.sleep(0)
    assert "prompt 2" not in started  # the window is full: it waits, but ahead of every lookup
    release.set()
    await asyncio.gather(prompt, second, *lookups)
    assert started.index("prompt 2") == 5  # the first slot freed went to it, not to the 96 lookups
    assert budget.most_in_flight == 5


async def test_a_caller_cancelled_while_waiting_gives_its_place_up() -> None:
    budget = CallBudget(1, initial=1, clock=ManualClock())
    release = asyncio.Event()

    async def call() -> None:
        async with budget.slot(Lane.LOOKUP) as slot:
            await release.wait()
            slot.answered()

    first = asyncio.create_task(call())
    waiting = asyncio.create_task(call())
    await asyncio.sleep(0)
    waiting.cancel()
    release.set()
    await first
    assert waiting.cancelled() and budget.in_flight == 0
    await asyncio.wait_for(call(), timeout=1)  # the slot is free again


async def test_a_prompt_goes_out_while_a_large_backlog_of_lookups_is_swept(
    shop_with: ShopWith, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await shop_with(poll_concurrency=4)
    store = shop.services.store
    now = clock()
    for n in range(60):  # 60 payers who have not answered their prompts: each lookup is "not paid yet"
        order = an_order(
            f"BACKLOG{n}", chat_id=9000 + n, user_id=9000 + n, phone=f"2547{n:08d}", created_at=now, updated_at=now
        )
        await store.insert_order(order)
        await store.record_prompt_sent(order.id, now, now, [])
    customer = shop.customer()
    summary = await shop.start_payment(customer)
    sandbox.faults.latency = 0.05  # every lookup takes a round trip: 60 of them, 4 at a time at most

    sweep = asyncio.create_task(shop.services.poller.sweep())
    while sandbox.stats.in_flight == 0:  # noqa: ASYNC110  (until the sweep's lookups reach iPay)
        await asyncio.sleep(0.005)
    pressed = time.perf_counter()
    await shop.app.process_update(Update.de_json(customer.press(summary, "Confirm"), shop.app.bot))
    while sandbox.open_prompt("254712345678") is None:
        assert not sweep.done(), "the prompt waited for the whole backlog"
        await asyncio.sleep(0.005)
    waited = time.perf_counter() - pressed

    assert not sweep.done()
    assert sandbox.stats.calls.get("/transaction/search", 0) < 30  # most of the backlog is still due
    assert waited < 0.5  # initiate and push, each in a slot kept for prompts (0.05 s a call)
    report = await sweep
    assert report.checked == 60 and report.outcomes == {OrderStatus.PENDING: 60}
