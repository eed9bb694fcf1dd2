"""Secrets and phone numbers stay out of the logs, even at DEBUG, through a whole payment;
every log line is one line; the database is the owner's alone."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import stat
from collections.abc import Iterator

import httpx
import pytest
from telegram import Update

from bot.app import web_server_of
from bot.config import Settings
from bot.logs import UVICORN_LOGGERS, configure_logging
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import TEST_KEY, TEST_TOKEN, ManualClock, Shop, start_shop, stop_shop, with_settings

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


@contextlib.contextmanager
def bot_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """The bot's own logging set-up (as `bot.py` runs it) into a string, undone afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    uvicorn = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    saved_uvicorn = [(logger, logger.handlers[:], logger.propagate) for logger in uvicorn]
    captured = io.StringIO()
    configure_logging([TEST_TOKEN, TEST_KEY], level=level, stream=captured)
    try:
        yield captured
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for logger, handlers, propagate in saved_uvicorn:
            logger.handlers[:], logger.propagate = handlers, propagate


def _lines_that_are_not_log_lines(logs: str) -> list[str]:
    """A traceback's lines are the only lines that may follow a log line."""
    strays, in_traceback = [], False
    for line in logs.splitlines():
        if LOG_LINE.match(line):
            in_traceback = False
        elif line == "Traceback (most recent call last):":
            in_traceback = True
        elif not in_traceback:
            strays.append(line)
    return strays


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
        assert " Confirmed. KES " in shop.last(customer.chat_id).text
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    logs = captured.getvalue()
    assert order.id in logs and "07** ***678" in logs  # the logs are there, and useful
    assert TEST_TOKEN not in logs and TEST_TOKEN.split(":")[1] not in logs
    assert TEST_KEY not in logs
    assert "254712345678" not in logs and "0712345678" not in logs
    assert logging.getLogger("httpx").level == logging.WARNING


async def test_the_database_and_its_wal_and_shm_are_readable_by_the_owner_only(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
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


async def _through_the_update_queue(shop: Shop, update: dict[str, object], chat_id: int) -> None:
    """As the Updater or the webhook hands an update over (python-telegram-bot logs it there)."""

    def seen() -> tuple[int, int]:  # the bot's messages in the chat, and their edits
        said = shop.telegram.bot_messages(chat_id)
        return len(said), sum(m.edits for m in said)

    before = seen()
    await shop.app.update_queue.put(Update.de_json(update, shop.app.bot))
    for _ in range(300):
        if seen() != before:
            await shop.settle()
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no reply in chat {chat_id}: {shop.texts(chat_id)}")


@pytest.mark.parametrize("typed", ["0 7 1 2 - 7 7 7 - 7 7 7", "+254 (712) 777.778", "712 777 779", "254-712-777-777"])
async def test_a_phone_typed_with_separators_is_masked_in_debug_logs(shop: Shop, typed: str) -> None:
    """python-telegram-bot logs every update at DEBUG ("Processing update ...") with the text as typed."""
    national = re.sub(r"\D", "", typed)[-9:]
    customer = shop.customer()
    with bot_logs() as captured:
        for line in ("/pay", typed, "500"):
            await _through_the_update_queue(shop, customer.text(line), customer.chat_id)
        await _through_the_update_queue(shop, customer.press(shop.last(customer.chat_id), "Confirm"), customer.chat_id)
        shop.clock.advance(5)
        await shop.sweep()
        assert " Confirmed. KES " in shop.last(customer.chat_id).text
    logs = captured.getvalue()
    order = await shop.only_order(customer.chat_id)
    assert logs.count("Processing update") == 4 and order.id in logs
    assert f"07** ***{national[-3:]}" in logs
    digits_in_a_row = re.compile(r"\W*".join(national))  # the number, whatever stands between its digits
    assert digits_in_a_row.findall(logs) == []


async def test_uvicorn_logs_go_through_the_same_filter_and_input_never_breaks_a_line(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    """The web server's own loggers reach the bot's handler (masked, redacted, one format), and
    a newline in a request (`id=FAKEORDER%0A`) never starts a line of its own."""
    with bot_logs(logging.INFO) as captured:
        served = with_settings(settings, ipay_callback_url="https://shop.example/ipay/callback", port=0)
        shop = await start_shop(served, telegram, sandbox, clock)
        try:
            web = web_server_of(shop.app)
            assert web is not None
            port = web.port
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                forged_line = "FAKE%0D%0A2026-11-29%2005:00:00,000%20INFO%20bot:%20forged"
                for order_id in ("FAKEORDER%0A", forged_line, "X%0A%0A"):
                    await client.get(f"/ipay/callback?id={order_id}&status=aei7p7yrx4ae34")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NOT HTTP 0712345678\r\n\r\n")  # uvicorn logs a warning of its own
            await writer.drain()
            await reader.read()
            writer.close()
            logging.getLogger("uvicorn.error").warning("a line naming 0712 345 678 and %s", TEST_KEY)
        finally:
            await stop_shop(shop)
    logs = captured.getvalue()
    assert "WARNING uvicorn.error: Invalid HTTP request received." in logs
    assert "WARNING uvicorn.error: a line naming 07** ***678 and [redacted]" in logs
    assert _lines_that_are_not_log_lines(logs) == []
    assert "\n\n" not in logs and "\r" not in logs
