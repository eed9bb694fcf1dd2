"""Secrets and phone numbers stay out of the logs, even at DEBUG, through a whole payment."""

from __future__ import annotations

import io
import logging
import os
import stat

from bot.logs import configure_logging
from tests.conftest import TEST_KEY, TEST_TOKEN, Shop, start_shop, stop_shop


async def test_logs_of_a_full_payment_hold_no_secret_and_no_full_phone(shop: Shop) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    captured = io.StringIO()
    configure_logging([TEST_TOKEN, TEST_KEY], level=logging.DEBUG, stream=captured)
    try:
        from bot.sandbox.ipay import Fault

        shop.sandbox.faults.fail_next("/transaction/search", Fault.HTML)  # errors get logged too
        customer = shop.customer()
        order = await shop.pay(customer, phone="0712345678")
        for _ in range(2):
            shop.clock.advance(61)
            await shop.sweep()
        assert shop.last(customer.chat_id).text.startswith("✅ Paid")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    logs = captured.getvalue()
    assert order.id in logs and "2547****678" in logs  # the logs are there, and useful
    assert TEST_TOKEN not in logs and TEST_TOKEN.split(":")[1] not in logs
    assert TEST_KEY not in logs
    assert "254712345678" not in logs and "0712345678" not in logs
    assert logging.getLogger("httpx").level == logging.WARNING


async def test_the_database_and_its_wal_and_shm_are_readable_by_the_owner_only(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    """They hold every full phone number. A usual umask (022) would make them world-readable."""
    database = settings.database_path
    files = [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
    saved_umask = os.umask(0o022)
    try:
        shop = await start_shop(settings, telegram, sandbox, clock)
        try:
            await shop.pay(shop.customer())
            assert {f.name: stat.S_IMODE(os.stat(f).st_mode) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await stop_shop(shop)
        for file in files:  # as an older version left them
            file.touch()
            os.chmod(file, 0o644)
        shop = await start_shop(settings, telegram, sandbox, clock)
        try:
            assert {f.name: stat.S_IMODE(os.stat(f).st_mode) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await stop_shop(shop)
    finally:
        os.umask(saved_umask)
