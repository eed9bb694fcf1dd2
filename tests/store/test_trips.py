"""How many trips to the database's thread an API payment makes, from the request to "paid".

aiosqlite runs each statement on a thread of its own: every trip is a hand-over to that thread
and a wake-up of the event loop on the way back, the bot's largest cost a payment after the web
server's (docs/performance.md). Work with nothing to do makes no trip: no notices to queue (a
REST API order, no merchant chat), no earlier attempts to read for them, no outbox to look at.
The count may shrink; it must not grow unnoticed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiosqlite
import pytest

from tests.conftest import ManualClock, ShopWith
from tests.store.test_commits import API_KEY, pay_through_the_api

# One payment as `pay_through_the_api` makes it, no merchant chat: 5 reads (the phone's open order
# and its prompts this hour, the order and its refund for the status, the outbox's due chats), 4
# writes that commit alone (the order, the sending claim, what /transact answered, the prompt
# sent), the payment and the request it may pay in one transaction (BEGIN, 2, COMMIT); and the two
# sweeps it runs, each reading unsent orders and claiming due ones in a transaction (4 each).
TRIPS_PER_API_PAYMENT = 21


class TripCounter:
    """Every statement handed to aiosqlite's thread, whole, on one line."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trips: Counter[str] = Counter()
        execute = aiosqlite.Connection._execute
        counter = self

        async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
            counter.trips[" ".join(str(args[0]).split()) if args else fn.__name__] += 1
            return await execute(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


async def test_an_api_payment_with_no_one_to_tell_makes_no_trip_for_them(
    shop_with: ShopWith, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await shop_with(api_keys=(API_KEY,), port=0, merchant_chat_id=None)
    counter = TripCounter(monkeypatch)
    created, statuses = await pay_through_the_api(shop, clock, ["0712345678"])
    assert (created, statuses) == ([201], ["paid"])
    trips = counter.trips
    assert not [statement for statement in trips if statement.startswith(("INSERT INTO outbox", "WITH RECURSIVE"))]
    # The outbox is looked at by the sweep's own wake-up of the notifier, not once a write.
    assert sum(n for statement, n in trips.items() if "FROM outbox" in statement) <= 1, trips
    assert sum(trips.values()) <= TRIPS_PER_API_PAYMENT, trips
