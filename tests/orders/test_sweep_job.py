"""The repeating status sweep: a sweep still running when the next one is due is not news.

The sweep job fires every second. A sweep over many orders against a slow iPay takes
longer than that; APScheduler used to log "maximum number of running instances reached"
for every firing it skipped, a warning a second for as long as the sweep ran.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.config import Settings
from bot.domain import OrderStatus
from bot.sandbox.ipay import Faults, IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import TEST_KEY, ManualClock, start_shop, stop_shop, with_settings

POLL_INTERVAL = 0.2  # the job then fires every 0.2 s of real time
SLOW_IPAY = 1.5  # each iPay answer takes this long: one lookup outlasts several firings


async def test_a_sweep_longer_than_the_interval_logs_no_skipped_runs(
    settings: Settings, telegram: FakeBotApi, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = IpaySandbox(
        vid="shop42", hash_key=TEST_KEY, shop_name="Mama Mboga", clock=clock, answer_delay=3.0, faults=Faults()
    )
    shop = await start_shop(with_settings(settings, poll_interval_seconds=POLL_INTERVAL), telegram, sandbox, clock)
    try:
        order = await shop.pay(shop.customer())
        assert order.status is OrderStatus.PENDING
        sandbox.faults.latency = SLOW_IPAY
        caplog.set_level(logging.DEBUG)
        clock.advance(5)  # the order is due: the next firing starts a lookup that takes 1.5 s
        await asyncio.sleep(SLOW_IPAY + 8 * POLL_INTERVAL)
    finally:
        await stop_shop(shop)

    assert sandbox.stats.calls.get("/transaction/search") == 1  # one slow sweep ran; later firings found it running
    skipped = [r.getMessage() for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    assert skipped == []
