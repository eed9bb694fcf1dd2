"""Updates the bot must not act on twice, or at all: one Telegram delivers again (it did not get
a 200 in time), and edits of messages already handled."""

from __future__ import annotations

import copy

import pytest

from bot.config import Settings
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import ManualClock, Shop, start_shop, stop_shop, with_settings

STAFF = 901


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_settings(settings, staff_ids=frozenset({STAFF}))


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_request_delivered_twice_makes_one_request(shop: Shop) -> None:
    staff = shop.customer(STAFF, "Amina")
    update = staff.text("/request 500 2 loaves")
    await shop.send(update)
    await shop.send(copy.deepcopy(update))
    assert len(await shop.services.requests.latest()) == 1
    assert len(shop.telegram.bot_messages(staff.chat_id)) == 1


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_pay_step_delivered_twice_is_answered_once(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712 345 678")
    amount = customer.text("500")
    await shop.send(amount)
    summary = shop.last(customer.chat_id)
    await shop.send(copy.deepcopy(amount))
    assert shop.last(customer.chat_id) is summary  # not asked again
    assert summary.button_labels  # and its buttons stay
    await shop.send(customer.press(summary, "✅"))
    assert "Check your phone" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_an_update_another_instance_handled_is_not_handled_again(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    """Instances agree on what was seen: it is kept in the store, not in memory (a restart on
    the same database stands in for the second instance here; test_instances runs two)."""
    one = await start_shop(settings, telegram, sandbox, clock)
    staff_update = one.customer(STAFF, "Amina").text("/request 500 2 loaves")
    try:
        await one.send(staff_update)
    finally:
        await stop_shop(one)
    two = await start_shop(settings, telegram, sandbox, clock)
    try:
        await two.send(copy.deepcopy(staff_update))
        assert len(await two.services.requests.latest()) == 1
    finally:
        await stop_shop(two)


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_an_edited_cancel_does_not_cancel(shop: Shop) -> None:
    """Telegram sends edits only when asked to (`ALLOWED_UPDATES`); delivered anyway, an edit of
    a message is not a new command."""
    customer = shop.customer()
    await shop.type(customer, "/pay", "0712 345 678")
    before = shop.texts(customer.chat_id)
    cancel = customer.text("/cancel")
    cancel["edited_message"] = {**cancel.pop("message"), "edit_date": 0}
    await shop.send(cancel)
    assert shop.texts(customer.chat_id) == before
    assert await shop.services.conversations.live(customer.chat_id, customer.user_id) is not None
    await shop.type(customer, "500")
    assert "Confirm" in " ".join(shop.last(customer.chat_id).button_labels)


@pytest.mark.parametrize("command", ["/pay", "/request 500 2 loaves", "/help", "/status", "/dance"])
@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_edited_commands_are_not_run(shop: Shop, command: str) -> None:
    staff = shop.customer(STAFF, "Amina")
    update = staff.text(command)
    update["edited_message"] = {**update.pop("message"), "edit_date": 0}
    await shop.send(update)
    assert shop.texts(staff.chat_id) == []
