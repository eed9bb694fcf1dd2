"""Fixtures: a manual clock, the iPay sandbox, the emulated Bot API, and the running bot.

`shop` is the whole bot as a merchant runs it (real Application, handlers, store, poller,
notifier), with Telegram and iPay faked in-process. Updates go in through
`Application.process_update`, exactly as the Updater would hand them over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from telegram import Update

from bot.app import build_application, services_of_app
from bot.config import DarajaSettings, Settings
from bot.domain import Network, Order, OrderStatus
from bot.lifecycle import BotApplication, running
from bot.orders.poller import SweepReport
from bot.sandbox.daraja import BASE_URL as DARAJA_BASE_URL
from bot.sandbox.daraja import DarajaSandbox
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser
from bot.services import Services
from tests.postgres_server import PostgresServer

TEST_TOKEN = "123456789:AAH-test-token-SECRET-abcdefghijklmn"
TEST_KEY = "test-hash-key-SECRET-42"
MERCHANT_CHAT = -100777
# The back end the end-to-end tests run on: sqlite (default) or postgres (.ci/run's second pass).
BACKEND = os.environ.get("PESABOT_TEST_BACKEND", "sqlite")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session, started on first use."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store opens, once per back end: the store's contract holds on both."""
    if request.param == "sqlite":
        return tmp_path / "db.sqlite3"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database_sync()


@pytest.fixture
def database_clock_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's clock reads whatever time the test passes (as SQLite's does), for tests of
    claims and heartbeats that step through minutes of time; tests/store/test_instance_clocks.py runs
    them on the real database clock."""
    from bot.store.postgres import PostgresStore

    async def as_given(self: PostgresStore, given: float) -> float:
        return given

    monkeypatch.setattr(PostgresStore, "database_now", as_given)


@contextlib.contextmanager
def another_process_holds_the_write_lock(database: Path) -> Iterator[None]:
    """Another process writes to the SQLite file for as long as the block runs: every write of the
    bot waits for its lock (`busy_timeout`), reads go on (WAL)."""
    other_process = sqlite3.connect(database, isolation_level=None)
    other_process.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()


def readable(order_id: str) -> str:
    """An order id as the bot writes it for people: `X4HC-C6BK-BRUB`."""
    return "-".join(order_id[i : i + 4] for i in range(0, len(order_id), 4))


class ManualClock:
    def __init__(self, start: float = 1_764_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock(ManualClock):
    """Real time, for tests where the job queue's own timer drives the bot."""

    def __call__(self) -> float:
        return time.time()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> IpaySandbox:
    return IpaySandbox(
        vid="shop42", hash_key=TEST_KEY, shop_name="Mama Mboga", clock=clock, answer_delay=3.0, prompt_lifetime=60.0
    )


@pytest.fixture
def provider() -> str:
    """The payment provider the shop runs: ipay, or daraja (parametrise `provider` to run a
    test on both)."""
    return "ipay"


DARAJA_CALLBACK = "https://shop.example/daraja/callback"


@pytest.fixture
def daraja(clock: ManualClock) -> DarajaSandbox:
    """The Daraja stand-in (used when `provider` is daraja); it calls back before each sweep."""
    stand_in = DarajaSandbox(clock=clock, answer_delay=3.0, prompt_lifetime=60.0)
    stand_in.auto_callbacks = True
    return stand_in


@pytest.fixture
def telegram(clock: ManualClock) -> FakeBotApi:
    return FakeBotApi(clock=clock)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database when the suite runs on PostgreSQL, else empty (SQLite)."""
    if BACKEND != "postgres":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database_sync()


def free_port() -> int:
    """A TCP port nothing on this machine listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path, database_url: str, provider: str) -> Settings:
    daraja = None
    if provider == "daraja":
        daraja = DarajaSettings(
            consumer_key="sandbox-key",
            consumer_secret="sandbox-secret",
            shortcode="174379",
            passkey="bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
            callback_url=DARAJA_CALLBACK,
            base_url=DARAJA_BASE_URL,
        )
    return Settings(
        daraja=daraja,
        database_url=database_url,
        telegram_bot_token=TEST_TOKEN,
        ipay_vid="shop42",
        ipay_hash_key=TEST_KEY,
        ipay_base_url="http://ipay.test/payments/v2",
        shop_name="Mama Mboga",
        database_path=tmp_path / "payments.sqlite3",
        merchant_chat_id=MERCHANT_CHAT,
        # A shop that serves HTTP (Daraja's callbacks) binds a port of its own, never a fixed one
        # another test run on this machine may hold.
        port=free_port(),
    )


class Shop:
    """The running bot plus the people and systems around it."""

    def __init__(
        self,
        app: BotApplication,
        telegram: FakeBotApi,
        sandbox: IpaySandbox,
        clock: ManualClock,
        daraja: DarajaSandbox | None = None,
    ) -> None:
        self.app = app
        self.telegram = telegram
        self.sandbox = sandbox
        self.clock = clock
        self.daraja = daraja  # Daraja's stand-in, when the shop runs on Daraja

    @property
    def services(self) -> Services:
        return services_of_app(self.app)

    def customer(
        self, user_id: int = 501, name: str = "Wanjiru", chat_id: int | None = None, language_code: str = "en"
    ) -> TelegramUser:
        return TelegramUser(self.telegram, user_id, name, chat_id=chat_id, language_code=language_code)

    async def send(self, update: dict[str, Any]) -> None:
        await self.app.process_update(Update.de_json(update, self.app.bot))
        await self.settle()

    async def type(self, user: TelegramUser, *lines: str) -> None:
        """The user sends each line as a message, waiting for the bot each time."""
        for line in lines:
            await self.send(user.text(line))

    async def settle(self) -> None:
        await self.services.poller.wait_idle()
        await self.services.payments.wait_idle()
        await self.services.notifier.wait_idle()

    async def sweep(self) -> SweepReport:
        if self.daraja is not None and self.daraja.auto_callbacks:  # Daraja calls back as outcomes happen
            await self.daraja.deliver_callbacks()
            await self.settle()
        report = await self.services.poller.sweep()
        self.services.notifier.kick()
        await self.settle()
        return report

    def ipay_payment(self, order_id: str) -> tuple[str, str]:
        """The receipt and the payer's full name as iPay (the sandbox) sent them for an order:
        what the bot must show, taken from the sender rather than from the bot's own store."""
        (record,) = (t.record for t in self.sandbox.transactions.values() if t.oid == order_id and t.record)
        return str(record["transaction_code"]), f"{record['firstname']} {record['lastname']}"

    async def conversation_sweep(self) -> None:
        """Run the /pay conversations' sweep now (timeouts, waiting Confirms) instead of waiting
        for its next second on the wall clock."""
        assert self.app.job_queue is not None
        await self.app.job_queue.get_jobs_by_name("conversation-timeouts")[0].run(self.app)
        await self.settle()

    def last(self, chat_id: int) -> ChatMessage:
        return self.telegram.bot_messages(chat_id)[-1]

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.telegram.bot_messages(chat_id)]

    async def order(self, order_id: str) -> Order:
        order = await self.services.store.get_order(order_id)
        assert order is not None
        return order

    async def only_order(self, chat_id: int) -> Order:
        orders = await self.services.store.latest_chat_orders(chat_id, 10)
        assert len(orders) == 1, orders
        return orders[0]

    async def start_payment(self, user: TelegramUser, phone: str = "0712 345 678", amount: str = "500") -> ChatMessage:
        """/pay, phone, amount: returns the summary with its buttons."""
        await self.type(user, "/pay", phone, amount)
        return self.last(user.chat_id)

    async def pay(self, user: TelegramUser, phone: str = "0712 345 678", amount: str = "500") -> Order:
        """The whole conversation up to Confirm; returns the order written."""
        summary = await self.start_payment(user, phone, amount)
        await self.send(user.press(summary, "✅"))  # Confirm, in either language
        orders = await self.services.store.latest_chat_orders(user.chat_id, 1)
        return orders[0]


_RUNNING: dict[BotApplication, AsyncExitStack] = {}  # each started bot's `running` block, left by stop_shop


async def start_shop(
    settings: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
    *,
    rate_limit: bool = True,
    ipay_transport: httpx.AsyncBaseTransport | None = None,
    daraja: DarajaSandbox | None = None,
) -> Shop:
    """The bot running (`bot.lifecycle.running`) until `stop_shop`, Telegram and iPay in-process
    (or iPay over `ipay_transport`), for tests that stop and restart it themselves."""
    if settings.daraja is not None and daraja is not None:
        ipay_transport = ipay_transport or daraja.transport()
    app = build_application(
        settings,
        telegram_request=telegram,
        ipay_transport=ipay_transport or sandbox.transport(),
        clock=clock,
        rate_limit=rate_limit,
    )
    lifetime = AsyncExitStack()
    await lifetime.enter_async_context(running(app))
    _RUNNING[app] = lifetime
    shop = Shop(app, telegram, sandbox, clock, daraja if settings.daraja is not None else None)
    if shop.daraja is not None:  # Daraja's callbacks reach the bot's web app in-process
        from bot.web import build_web_app

        web = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_web_app(shop.services, app)))
        shop.daraja.callback_client = web
        lifetime.push_async_callback(web.aclose)
    return shop


async def stop_shop(shop: Shop) -> None:
    """Stops the bot the shop runs now (a test may have swapped in a restarted one)."""
    lifetime = _RUNNING.pop(shop.app, None)
    assert lifetime is not None, "stop_shop stops what start_shop started; run any other bot with bot.lifecycle.running"
    await lifetime.aclose()


class ShopWith(Protocol):
    """`await shop_with(admin_ids=..., rate_limit=False)`: a running shop with those settings."""

    async def __call__(self, *, rate_limit: bool = True, **settings: Any) -> Shop: ...


@pytest.fixture
async def shop_with(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, daraja: DarajaSandbox
) -> AsyncIterator[ShopWith]:
    """The one shop factory: the test's settings with the given ones changed (`rate_limit=False`
    leaves out Telegram's message limits), Telegram and iPay in-process; every shop it started
    is stopped after the test, the last started first."""
    started: list[Shop] = []

    async def start(*, rate_limit: bool = True, **changes: Any) -> Shop:
        one = await start_shop(
            with_settings(settings, **changes), telegram, sandbox, clock, rate_limit=rate_limit, daraja=daraja
        )
        started.append(one)
        return one

    yield start
    for one in reversed(started):
        await stop_shop(one)


@pytest.fixture
async def shop(shop_with: ShopWith) -> Shop:
    return await shop_with()


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


async def query_plans(store: Any, monkeypatch: pytest.MonkeyPatch, *reads: Any) -> list[str]:
    """SQLite's plan for each statement the store's own reads run, with their parameters bound
    as they ran: `reads` are zero-argument callables returning the store calls to make."""
    statements: list[tuple[str, Any]] = []
    read = store._rows

    async def recording(sql: str, params: Any = ()) -> Any:
        statements.append((sql, params))
        return await read(sql, params)

    monkeypatch.setattr(store, "_rows", recording)
    for call in reads:
        await call()
    monkeypatch.undo()
    return [
        " / ".join(str(row[-1]) for row in await read("EXPLAIN QUERY PLAN " + sql, params))
        for sql, params in statements
    ]


def an_order(order_id: str = "ABC123", **changes: Any) -> Order:
    """A pending M-Pesa order of KES 100 written at t=1000, for tests of the store itself."""
    order = Order(
        id=order_id,
        chat_id=1,
        user_id=1,
        phone="254712345678",
        network=Network.MPESA,
        amount=100,
        status=OrderStatus.PENDING,
        created_at=1000.0,
        updated_at=1000.0,
        next_poll_at=1005.0,
    )
    return dataclasses.replace(order, **changes)


class Restarts:
    """The bot as a host runs it: started, stopped, started again on the same database."""

    def __init__(
        self,
        settings: Settings,
        telegram: FakeBotApi,
        sandbox: IpaySandbox,
        clock: ManualClock,
        daraja: DarajaSandbox | None = None,
    ) -> None:
        self.settings, self.telegram, self.sandbox, self.clock = settings, telegram, sandbox, clock
        self.daraja = daraja
        self.shop: Shop | None = None

    async def start(self, **changes: object) -> Shop:
        settings = with_settings(self.settings, **changes) if changes else self.settings
        self.shop = await start_shop(settings, self.telegram, self.sandbox, self.clock, daraja=self.daraja)
        return self.shop

    async def restart(self, *, downtime: float = 0.0) -> Shop:
        assert self.shop is not None
        await stop_shop(self.shop)
        self.shop = None
        self.clock.advance(downtime)
        return await self.start()


@pytest.fixture
async def bot(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, daraja: DarajaSandbox
) -> AsyncIterator[Restarts]:
    restarts = Restarts(settings, telegram, sandbox, clock, daraja)
    await restarts.start()
    yield restarts
    if restarts.shop is not None:
        await stop_shop(restarts.shop)
