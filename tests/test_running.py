"""The one way to run the bot (`bot.lifecycle.running`): what it started is stopped and closed,
whatever happens inside, and the work in flight is finished before the bot goes quiet."""

from __future__ import annotations

import pytest

from bot.app import build_application, services_of_app
from bot.config import Settings
from bot.domain import OrderStatus
from bot.lifecycle import running
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.store import Store
from tests.conftest import ManualClock, Shop, with_settings


async def test_an_error_in_the_body_still_finishes_the_lookups_and_receipts_then_closes(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    app = build_application(settings, telegram_request=telegram, ipay_transport=sandbox.transport(), clock=clock)
    with pytest.raises(RuntimeError, match="the host pulled the plug"):
        async with running(app):
            shop = Shop(app, telegram, sandbox, clock)
            customer = shop.customer()
            order = await shop.pay(customer)  # 8: the payer pays in full
            clock.advance(5)
            started = await shop.services.poller.start_due()  # the lookup is in flight...
            assert started
            raise RuntimeError("the host pulled the plug")  # ...when the body fails

    assert not app.running
    # post_shutdown ran, before shutdown: the lookup finished and the receipt went out on a live bot.
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text
    services = services_of_app(app)
    assert services.http.is_closed
    reopened = await Store.open(settings.database)  # the database was closed cleanly, all written
    try:
        stored = await reopened.get_order(order.id)
        assert stored is not None and stored.status is OrderStatus.PAID
        assert await reopened.pending_outbox_count() == 0
    finally:
        await reopened.close()


async def test_a_start_that_fails_half_way_closes_what_it_opened(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    app = build_application(settings, telegram_request=telegram, ipay_transport=sandbox.transport(), clock=clock)
    telegram.fail_next("setMyCommands", 500, "Internal Server Error")  # after the services opened
    with pytest.raises(Exception, match="Internal Server Error"):
        async with running(app):
            pytest.fail("the body must not run when the start failed")
    assert not app.running
    assert services_of_app(app).http.is_closed  # post_shutdown closed what post_init had opened


async def test_a_start_that_fails_before_anything_opened_is_reported_as_it_is(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    unopenable = with_settings(
        settings, database_url="", database_path=settings.database_path.parent / "missing" / "db"
    )
    unopenable.database_path.parent.write_text("a file where the folder should be")
    app = build_application(unopenable, telegram_request=telegram, ipay_transport=sandbox.transport(), clock=clock)
    with pytest.raises(OSError):
        async with running(app):
            pytest.fail("the body must not run when the start failed")
    assert not app.running
