"""A Confirm that waits for the phone, and old buttons going away, under attack: driven as
payers (and others in their group) would drive the bot.

The clock starts at 19:00:00; `cancelled_then_paid_again` cancels an order to 0712345670 at
19:00:30 and shows a summary for KES 300 to the same phone, whose prompt waits until 19:10.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.config import Settings
from bot.domain import Network, Order, OrderStatus
from bot.pay.drafts import DraftStep
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser
from tests.conftest import ManualClock, Restarts, Shop, ShopWith, readable, start_shop, stop_shop, with_settings
from tests.orders.test_wording import cancelled_then_paid_again, pushes, sweeps_until
from tests.postgres_server import PostgresServer
from tests.store.test_instances import WEBHOOK

PHONE = "254712345670"
STAFF = 901  # makes payment requests (/request)
GROUP = -100123
SEND_AT = 570  # seconds from the cancel (19:00:30) to the waiting prompt's time (19:10)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_settings(settings, staff_ids=frozenset({STAFF}))


async def waiting(shop: Shop, customer: TelegramUser) -> tuple[Order, ChatMessage]:
    """The cancelled order and the waiting message, confirmed with the summary's button."""
    order, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.send(customer.press(summary, "✅"))
    assert summary.text.startswith("⏳ ")
    return order, summary


async def orders_of(shop: Shop, chat_id: int) -> list[Order]:
    return await shop.services.store.latest_chat_orders(chat_id, 20)


async def a_few_sweeps(shop: Shop) -> None:
    """The conversation sweep, run a few more times: whatever it would still do, it has done."""
    for _ in range(3):
        await shop.conversation_sweep()


async def conversation_sweeps_at_once(*shops: Shop) -> None:
    """Each shop's conversation sweep run once, all at the same moment."""
    runs = []
    for shop in shops:
        assert shop.app.job_queue is not None
        runs.append(shop.app.job_queue.get_jobs_by_name("conversation-timeouts")[0].run(shop.app))
    await asyncio.gather(*runs)
    for shop in shops:
        await shop.settle()


class Paused:
    """Holds the first call of a service method until `go()`: a moment in the middle of the
    sweep, where another update (or job) lands. `entered` is set once the call is held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: object, name: str, *, after: bool = False) -> None:
        """`after`: hold the first call once it has returned (what it read is then out of date)."""
        self.entered = asyncio.Event()
        self._release = asyncio.Event()
        self._calls = 0
        real: Callable[..., Awaitable[Any]] = getattr(target, name)

        async def held(*args: Any, **kwargs: Any) -> Any:
            self._calls += 1
            if self._calls != 1:
                return await real(*args, **kwargs)
            result = await real(*args, **kwargs) if after else None
            self.entered.set()
            await self._release.wait()
            return result if after else await real(*args, **kwargs)

        monkeypatch.setattr(target, name, held)

    async def reached(self) -> None:
        await asyncio.wait_for(self.entered.wait(), 5)

    def go(self) -> None:
        self._release.set()


# -- 1. what the payer does while the sweep is sending ------------------------------------------


@pytest.mark.parametrize("action", ["button", "/cancel", "sitisha", "/pay"])
async def test_stopping_a_waiting_prompt_while_the_sweep_writes_it_sends_nothing(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    customer = shop.customer()
    _, message = await waiting(shop, customer)
    shop.clock.advance(SEND_AT)
    await shop.sweep()  # the cancelled order's last lookup: the phone is free
    sweep = Paused(monkeypatch, shop.services.payments, "create_order")  # decided, about to write the order
    await sweep.reached()
    if action == "button":
        await shop.send(customer.press(message, "✖️"))
    else:
        await shop.type(customer, action)
    reply, shown = shop.last(customer.chat_id).text, message.text
    sweep.go()
    await a_few_sweeps(shop)
    stopped = reply.startswith("Cancelled.") or shown.startswith("Cancelled.") or shown.endswith("a new payment.")
    if stopped:  # the payer was told it stopped: then it must not go out
        assert pushes(shop) == 1, f"a prompt went out after the payer read {reply!r} / {shown!r}"
        assert len(await orders_of(shop, customer.chat_id)) == 1
    else:  # or the payer was told it is on its way, and it is
        assert pushes(shop) == 2


@pytest.mark.parametrize("action", ["button", "/cancel"])
async def test_a_cancel_landing_on_a_sweep_that_only_looked_is_not_lost(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    customer = shop.customer()
    _, message = await waiting(shop, customer)
    shop.clock.advance(SEND_AT)  # due, but the cancelled order is still watched: each sweep looks and waits
    cancel = Paused(monkeypatch, shop.services.conversations, "finish")  # the payer's cancel, about to drop it
    update = customer.press(message, "✖️") if action == "button" else customer.text("/cancel")
    pressed = asyncio.create_task(shop.send(update))
    await cancel.reached()
    await conversation_sweeps_at_once(shop)  # a sweep in between: the phone is still busy, nothing sent
    assert pushes(shop) == 1
    cancel.go()
    await pressed
    await shop.sweep()  # the cancelled order's last lookup: the phone is free
    await a_few_sweeps(shop)
    assert pushes(shop) == 1, "the payer pressed Cancel before anything was sent, and it went out anyway"


@pytest.mark.parametrize("how", ["/pay", "request link"])
async def test_a_new_payment_to_the_same_phone_replaces_a_waiting_confirm_and_one_prompt_goes(
    shop: Shop, how: str
) -> None:
    """Not racing the sweep: the replaced Confirm is never sent, its message says it was
    replaced, and the new one (waiting for the same phone) goes out once."""
    customer = shop.customer()
    _, old = await waiting(shop, customer)
    old_cancel = old.button_data("✖️")
    opening = "/pay" if how == "/pay" else f"/start {await make_request(shop, 250)}"
    await shop.type(customer, opening, "0712345670")
    assert old.text == "⏳ Not sent. Replaced by a new payment." and old.buttons == []
    if how == "/pay":
        await shop.type(customer, "250")
    summary = shop.last(customer.chat_id)
    assert "⏳ The phone is busy until 19:10" in summary.text
    await shop.type(customer, "ndio")  # typed yes: a new waiting message
    new = shop.last(customer.chat_id)
    assert new.text.startswith("⏳ Confirmed. I'll send the M-Pesa prompt for KES 250")
    await shop.send(customer.press_data(old, old_cancel))  # the replaced one's Cancel, still on an old client
    assert shop.telegram.callback_answers[-1].get("text") == "That button is no longer active."
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await sweeps_until(shop, lambda: new.text.startswith("📲"))
    await a_few_sweeps(shop)
    assert pushes(shop) == 2
    assert [o.amount for o in await orders_of(shop, customer.chat_id)] == [250, 500]
    assert ((await orders_of(shop, customer.chat_id))[0].pay_request_id is None) == (how == "/pay")


# -- 2. the cancelled order paid after all ------------------------------------------------------


async def test_the_cancelled_order_paid_just_as_the_sweep_runs_gets_no_second_prompt(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = shop.customer()
    order, message = await waiting(shop, customer)
    sweep = Paused(monkeypatch, shop.services.payments, "create_order")  # decided, about to write the order
    shop.clock.advance(SEND_AT)  # due; the cancelled order is still watched (its last lookup has not run)
    await sweep.reached()
    shop.sandbox.pay_by_paybill(order.id)  # paid after all, by Pay Bill
    await shop.sweep()  # the status sweep's lookup finds the money: the phone is free
    assert (await shop.order(order.id)).status.money_received
    sweep.go()
    await a_few_sweeps(shop)
    assert pushes(shop) == 1, "a second prompt for a payment already made"
    assert len(await orders_of(shop, customer.chat_id)) == 1
    assert message.text.startswith(f"Order {readable(order.id)} was paid after all")


async def test_confirming_after_the_cancelled_order_was_paid_sends_no_second_prompt(shop: Shop) -> None:
    customer = shop.customer()
    order, summary, _ = await cancelled_then_paid_again(shop, customer)
    assert "⏳ The phone is busy until 19:10" in summary.text
    assert shop.sandbox.answer(PHONE, approve=True)  # the cancelled prompt, answered after all
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    await shop.send(customer.press(summary, "✅"))  # the summary still offers its Confirm
    await a_few_sweeps(shop)
    assert pushes(shop) == 1, "a second prompt for a payment already made"
    assert len(await orders_of(shop, customer.chat_id)) == 1


async def test_a_confirm_that_starts_waiting_remembers_which_cancelled_order_it_waits_for(shop: Shop) -> None:
    customer = shop.customer()
    await shop.pay(customer, phone="0712345672")  # a wrong PIN: failed, with "Send the prompt again"
    shop.clock.advance(5)
    await shop.sweep()
    failed = shop.last(customer.chat_id)
    summary = await shop.start_payment(customer, phone="0712345672", amount="300")  # the phone is free: no wait
    assert "busy" not in summary.text
    await shop.send(customer.press(failed, "🔁"))  # the old order sent again...
    again = (await orders_of(shop, customer.chat_id))[0]
    await shop.send(customer.press(shop.last(customer.chat_id), "✖️"))  # ...and cancelled
    assert (await shop.order(again.id)).status is OrderStatus.WITHDRAWN
    await shop.send(customer.press(summary, "✅"))  # the phone is busy with that cancelled prompt: it waits
    assert summary.text.startswith("⏳ Confirmed.")
    shop.sandbox.pay_by_paybill(again.id)  # the cancelled one is paid after all
    shop.clock.advance(600)
    await shop.sweep()
    assert (await shop.order(again.id)).status.money_received
    await sweeps_until(shop, lambda: not summary.text.startswith("⏳ Confirmed"))
    assert pushes(shop) == 2, "the first order, the one sent again, and a prompt for a payment already made"
    assert summary.text.startswith(f"Order {readable(again.id)} was paid after all")


# -- 3. a waiting Confirm is never lost silently -------------------------------------------------


@pytest.fixture
async def unlimited_shop(shop_with: ShopWith) -> Shop:
    """Telegram's 20 messages a minute in a group are not under test: the limiter would wait them out."""
    return await shop_with(rate_limit=False)


async def test_a_refused_pay_does_not_silently_drop_a_waiting_confirm(unlimited_shop: Shop) -> None:
    shop = unlimited_shop
    customer = shop.customer()
    _, message = await waiting(shop, customer)
    in_group = shop.customer(customer.user_id, chat_id=GROUP)
    for n in range(4):  # the same payer pays for others in a group: the user's 5 prompts are used up
        await shop.pay(in_group, phone=f"07123456{n}7")
    await shop.type(customer, "/pay")
    assert shop.last(customer.chat_id).text.startswith("You have")  # the limit, said
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await a_few_sweeps(shop)
    assert not message.text.startswith("⏳ Confirmed. I'll send"), "it still says the prompt will go out"


async def test_a_waiting_confirm_survives_a_long_downtime_with_a_word_to_the_payer(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    _, message = await waiting(bot.shop, customer)
    shop = await bot.restart(downtime=2 * 86_400)
    await shop.sweep()
    await a_few_sweeps(shop)
    assert not message.text.startswith("⏳ Confirmed"), "the waiting message was left saying the prompt will go out"
    assert pushes(shop) == 1  # and no prompt two days late


async def test_a_waiting_prompt_is_not_sent_an_hour_late_after_a_restart(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    _, message = await waiting(bot.shop, customer)
    shop = await bot.restart(downtime=3600)
    await shop.sweep()  # the status sweep catches up first: the cancelled order's watch ends
    await sweeps_until(shop, lambda: not message.text.startswith("⏳ Confirmed"))
    await a_few_sweeps(shop)
    assert pushes(shop) == 1, f"sent {readable((await orders_of(shop, customer.chat_id))[0].id)} an hour late"


async def test_a_waiting_confirm_survives_a_restart_and_is_sent_once(bot: Restarts) -> None:
    """Also on PostgreSQL (PESABOT_TEST_BACKEND=postgres)."""
    assert bot.shop is not None
    customer = bot.shop.customer()
    _, message = await waiting(bot.shop, customer)
    shop = await bot.restart(downtime=60)
    await shop.type(customer, "hello")  # still waiting after the restart
    assert shop.last(customer.chat_id).text.startswith("Your prompt goes out at 19:10")
    shop = await bot.restart(downtime=SEND_AT - 60)  # back exactly at its time
    await shop.sweep()
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    await a_few_sweeps(shop)
    assert pushes(shop) == 2 and len(await orders_of(shop, customer.chat_id)) == 2
    assert message.text.startswith("📲")


# -- 4. old buttons ------------------------------------------------------------------------------


async def test_a_retired_summarys_cancel_leaves_no_message_saying_the_prompt_will_go_out(shop: Shop) -> None:
    customer = shop.customer()
    _, summary, _ = await cancelled_then_paid_again(shop, customer)
    old_cancel = summary.button_data("✖️")
    await shop.type(customer, "ok")
    message = shop.last(customer.chat_id)
    assert message.text.startswith("⏳ Confirmed.") and summary.buttons == []
    await shop.send(customer.press_data(summary, old_cancel))
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await a_few_sweeps(shop)
    assert pushes(shop) == 1  # cancelled: nothing sent (this holds)
    assert not message.text.startswith("⏳ Confirmed. I'll send"), "the waiting message still promises the prompt"


async def test_stale_summary_buttons_do_nothing_to_a_waiting_confirm(shop: Shop) -> None:
    """The old summary's Confirm and network switch, a summary from before a correction, and the
    waiting message's own Confirm (from a client that has not refreshed) change nothing."""
    customer = shop.customer()
    _, first, _ = await cancelled_then_paid_again(shop, customer)
    first_confirm = first.button_data("✅")
    await shop.type(customer, "350")  # a corrected amount: a new summary
    summary = shop.last(customer.chat_id)
    data = {label: summary.button_data(label) for label in ("✅", "🔁")}
    await shop.send(customer.press(summary, "✅"))
    assert summary.text.startswith("⏳ Confirmed.") and summary.button_labels == ["✖️ Cancel"]
    for message, pressed in ((first, first_confirm), (summary, data["✅"]), (summary, data["🔁"])):
        await shop.send(customer.press_data(message, pressed))
        assert shop.telegram.callback_answers[-1].get("text") == "That button is no longer active."
    assert "KES 350" in summary.text and "M-Pesa" in summary.text
    draft = await shop.services.conversations.current(customer.chat_id, customer.user_id)
    assert draft is not None and draft.step is DraftStep.WAITING and draft.network is Network.MPESA
    assert len(await orders_of(shop, customer.chat_id)) == 1
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    new = (await orders_of(shop, customer.chat_id))[0]
    assert (new.amount, new.network) == (350, Network.MPESA)


# -- 5. merchants' payment requests ----------------------------------------------------------------


async def make_request(shop: Shop, amount: int = 300) -> str:
    merchant = shop.customer(STAFF, "Amina")
    await shop.type(merchant, f"/request {amount} sugar")
    text = shop.last(merchant.chat_id).text
    return text.split("?start=", 1)[1].split()[0]


async def test_a_request_confirmed_by_typing_yes_is_that_requests_payment(shop: Shop) -> None:
    token = await make_request(shop)
    customer = shop.customer()
    await shop.type(customer, f"/start {token}", "0712345677", "ok")
    order = await shop.only_order(customer.chat_id)
    assert order.amount == 300
    latecomer = shop.customer(502, "Otieno")
    await shop.type(latecomer, f"/start {token}")
    assert shop.last(latecomer.chat_id).text.startswith("Someone is already paying this request.")
    assert order.pay_request_id is not None


async def test_a_request_to_a_phone_cancelled_a_moment_ago_waits_and_is_paid_as_the_request(shop: Shop) -> None:
    customer = shop.customer()
    cancelled = await shop.pay(customer, phone="0712345670")
    shop.clock.advance(30)
    await shop.send(customer.press(shop.last(customer.chat_id), "✖️"))
    token = await make_request(shop)
    await shop.type(customer, f"/start {token}", "0712345670")
    summary = shop.last(customer.chat_id)
    assert "⏳ The phone is busy until 19:10" in summary.text
    await shop.send(customer.press(summary, "✅"))
    assert summary.text.startswith("⏳ Confirmed.")
    latecomer = shop.customer(502, "Otieno")  # the request is not taken yet: someone else may pay it first
    await shop.type(latecomer, f"/start {token}", "0722345677")
    await shop.send(latecomer.press(shop.last(latecomer.chat_id), "✅"))
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await sweeps_until(shop, lambda: not summary.text.startswith("⏳ Confirmed"))
    assert summary.text.startswith(
        "⏳ Not sent. This payment request has already been paid"
    ) or summary.text.startswith("⏳ Not sent. Someone is already paying")
    assert [o.id for o in await orders_of(shop, customer.chat_id)] == [cancelled.id]
    assert pushes(shop) == 2  # the cancelled order's and the latecomer's


# -- 6. groups and other chats ---------------------------------------------------------------------


async def test_in_a_group_another_member_can_neither_stop_nor_take_over_a_waiting_confirm(shop: Shop) -> None:
    payer = shop.customer(501, "Wanjiru", chat_id=GROUP)
    other = shop.customer(502, "Otieno", chat_id=GROUP)
    order, message = await waiting(shop, payer)
    cancel = message.button_data("✖️")
    await shop.send(other.press_data(message, cancel))
    assert shop.telegram.callback_answers[-1].get("text") == "This button belongs to someone else's payment."
    await shop.type(other, "cancel")  # typed by another member: not the payer's conversation
    await shop.type(other, "/cancel")
    assert shop.last(GROUP).text == "There is nothing to cancel. Send /pay to make a payment."
    await shop.type(other, "/pay", "0712345670")  # the same phone: busy, and this member did not cancel it
    assert "I'll send the new prompt by itself" not in shop.last(GROUP).text  # refused, no wait offered
    draft = await shop.services.conversations.current(GROUP, payer.user_id)
    assert draft is not None and draft.step is DraftStep.WAITING
    await shop.type(other, "/cancel")
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    new = (await orders_of(shop, GROUP))[0]
    assert (new.user_id, new.amount) == (payer.user_id, 300) and new.id != order.id
    assert message.text.startswith("📲")


async def test_another_chats_order_on_the_phone_is_not_named_to_the_waiting_payer(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = shop.customer()
    order, message = await waiting(shop, customer)
    shop.clock.advance(SEND_AT)
    await shop.sweep()  # the cancelled prompt's watch ends: the phone is free...
    sweep = Paused(monkeypatch, shop.services.payments, "create_order")
    await sweep.reached()
    stranger = shop.customer(777, "Kamau")  # ...and someone in another chat prompts it first
    theirs = await shop.pay(stranger, phone="0712345670")
    sweep.go()
    await sweeps_until(shop, lambda: not message.text.startswith("⏳ Confirmed"))
    assert message.text == (
        "⏳ Not sent. A payment prompt for 07** ***670 is still waiting for an answer. Please answer it on the "
        "phone, or try again after 19:20 when it has expired."
    )
    assert readable(theirs.id) not in " ".join(shop.texts(customer.chat_id))
    assert [o.id for o in await orders_of(shop, customer.chat_id)] == [order.id]


async def test_in_a_group_another_member_is_not_told_they_cancelled_the_payers_order(shop: Shop) -> None:
    payer = shop.customer(501, "Wanjiru", chat_id=GROUP)
    other = shop.customer(502, "Otieno", chat_id=GROUP)
    await waiting(shop, payer)
    await shop.type(other, "/pay", "0712345670")
    assert "You cancelled" not in shop.last(GROUP).text


# -- 7. words typed while waiting, in Kiswahili -------------------------------------------------------


async def test_kiswahili_yes_and_no_typed_while_waiting(shop: Shop) -> None:
    customer = shop.customer(language_code="sw")
    _, message = await waiting(shop, customer)
    for typed in ("ndio", "sawa", "0712345670"):  # yes again, or the phone again: still waiting
        await shop.type(customer, typed)
        assert shop.last(customer.chat_id).text.startswith("Ujumbe wako wa PIN utatumwa ifikapo 19:10")
    await shop.type(customer, "Hapana!")
    assert shop.last(customer.chat_id).text.startswith("Imeghairiwa.")
    assert message.buttons == []
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await a_few_sweeps(shop)
    assert pushes(shop) == 1 and len(await orders_of(shop, customer.chat_id)) == 1


async def test_a_waiting_confirm_outlives_the_conversation_timeout(shop: Shop) -> None:
    customer = shop.customer()
    _, message = await waiting(shop, customer)
    shop.clock.advance(shop.services.conversations.timeout_seconds + 60)  # 19:06:30: idle that long, but confirmed
    await a_few_sweeps(shop)
    assert not any(t.startswith("I stopped waiting") for t in shop.texts(customer.chat_id))
    assert message.text.startswith("⏳ Confirmed.") and message.button_labels == ["✖️ Cancel"]
    await shop.type(customer, "/pay@pesabot_other")  # another bot's command: left alone
    await shop.type(customer, "/nonsense")
    assert (
        shop.last(customer.chat_id).text != "I stopped waiting, so that payment was not sent. Send /pay to start again."
    )
    await shop.type(customer, "hello")
    assert shop.last(customer.chat_id).text.startswith("Your prompt goes out at 19:10")
    shop.clock.advance(SEND_AT - shop.services.conversations.timeout_seconds - 60)
    await shop.sweep()
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    assert message.text.startswith("📲")


# -- 8. the network, limits and Telegram's faults at send time ---------------------------------------


async def test_a_waiting_confirm_goes_out_on_the_network_its_summary_showed(shop: Shop) -> None:
    customer = shop.customer()
    _, summary, _ = await cancelled_then_paid_again(shop, customer)
    await shop.send(customer.press(summary, "Airtel"))
    await shop.send(customer.press(summary, "✅"))
    assert summary.text.startswith("⏳ Confirmed. I'll send the Airtel Money prompt")
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await sweeps_until(shop, lambda: shop.sandbox.stats.calls.get("/transact/push/airtel", 0) == 1)
    new = (await orders_of(shop, customer.chat_id))[0]
    assert new.network is Network.AIRTEL and pushes(shop) == 1


async def test_the_users_limit_reached_before_the_time_is_said_on_the_waiting_message(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    # Telegram's 20 messages a minute in a group are not under test: the limiter would wait them out.
    limits = with_settings(settings, pay_limit_user_window_seconds=3600.0)
    shop = await start_shop(limits, telegram, sandbox, clock, rate_limit=False)
    try:
        customer = shop.customer()
        _, message = await waiting(shop, customer)
        in_group = shop.customer(customer.user_id, chat_id=GROUP)
        for n in range(4):
            await shop.pay(in_group, phone=f"07123456{n}7")
        shop.clock.advance(SEND_AT)
        await shop.sweep()
        await sweeps_until(shop, lambda: not message.text.startswith("⏳ Confirmed"))
        assert message.text.startswith("⏳ Not sent. You have")
        assert len(await orders_of(shop, customer.chat_id)) == 1
    finally:
        await stop_shop(shop)


async def test_a_deleted_waiting_message_gets_a_new_one_and_the_prompt_goes_once(shop: Shop) -> None:
    customer = shop.customer()
    _, message = await waiting(shop, customer)
    shop.telegram.messages(customer.chat_id).remove(message)  # the payer deleted it
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    await sweeps_until(shop, lambda: pushes(shop) == 2)
    await a_few_sweeps(shop)
    assert pushes(shop) == 2 and len(await orders_of(shop, customer.chat_id)) == 2
    assert any(t.startswith("Sending the M-Pesa prompt for KES 300") for t in shop.texts(customer.chat_id))
    assert shop.last(customer.chat_id).text.startswith("📲 Check your phone")  # its next words, as a new message


async def test_a_telegram_fault_when_giving_up_still_tells_the_payer(shop: Shop) -> None:
    customer = shop.customer()
    order, message = await waiting(shop, customer)
    assert shop.sandbox.answer(PHONE, approve=True)  # the cancelled prompt, answered after all
    shop.clock.advance(SEND_AT)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    shop.telegram.fail_next("editMessageText", 502, "Bad Gateway", chat_id=customer.chat_id)  # once
    await a_few_sweeps(shop)
    await a_few_sweeps(shop)
    assert pushes(shop) == 1
    said = " ".join([message.text, *shop.texts(customer.chat_id)])
    assert "paid after all, so I did not send the new prompt" in said, "the payer was never told"


async def test_one_payer_who_blocked_the_bot_does_not_hold_up_anothers_waiting_prompt(shop: Shop) -> None:
    """The first payer blocked the bot before the time (editing or writing to that chat is
    refused): that payer's Confirm still goes out as asked, and so does the next payer's."""
    first, second = shop.customer(501, "Wanjiru"), shop.customer(502, "Otieno")
    _, first_message = await waiting(shop, first)
    second_order = await shop.pay(second, phone="0722345670")
    await shop.send(second.press(shop.last(second.chat_id), "✖️"))
    await shop.type(second, "/pay", "0722345670", "400")
    summary = shop.last(second.chat_id)
    await shop.send(second.press(summary, "✅"))
    assert summary.text.startswith("⏳ Confirmed.")
    shop.telegram.blocked_chats.add(first.chat_id)
    for _ in range(3):
        shop.telegram.fail_next("editMessageText", 403, "Forbidden: bot was blocked by the user", chat_id=first.chat_id)
    shop.clock.advance(SEND_AT + 30)
    await shop.sweep()
    await sweeps_until(shop, lambda: summary.text.startswith("📲"))
    assert pushes(shop) == 4  # two cancelled, two waiting ones sent
    assert [o.amount for o in await orders_of(shop, first.chat_id)] == [300, 500]
    assert [o.amount for o in await orders_of(shop, second.chat_id)] == [400, second_order.amount]
    assert first_message.text.startswith("⏳ Confirmed")  # (the blocked chat could not be told)


# -- 9. two instances on one PostgreSQL database ----------------------------------------------------


async def test_two_instances_sweeping_one_database_send_a_waiting_prompt_once(
    settings: Settings, postgres_server: PostgresServer, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shared = with_settings(settings, database_url=postgres_server.new_database_sync(), **WEBHOOK)
    one = await start_shop(shared, telegram, sandbox, clock)
    two = await start_shop(shared, telegram, sandbox, clock)
    try:
        customer = one.customer()
        _, message = await waiting(one, customer)
        clock.advance(SEND_AT - 60)
        await two.sweep()
        clock.advance(90)  # due, and past the cancelled order's watch; its last lookup not run yet
        await conversation_sweeps_at_once(one, two, one, two)
        assert pushes(one) == 1  # the phone is still watched: nobody sends yet
        await one.sweep()  # the last lookup: the phone is free
        await conversation_sweeps_at_once(one, two, two, one)
        await sweeps_until(one, lambda: message.text.startswith("📲"))
        await a_few_sweeps(one)
        await two.settle()
        assert pushes(one) == 2 and len(await orders_of(one, customer.chat_id)) == 2
        assert await one.services.conversations.current(customer.chat_id, customer.user_id) is None
    finally:
        await stop_shop(two)
        await stop_shop(one)


async def test_a_cancel_landing_while_the_sweep_gives_up_is_still_a_cancel(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payer's Cancel reads the draft; the sweep then takes it (a new revision) to give up on
    it; the Cancel still cancels it rather than saying the button is no longer active."""
    customer = shop.customer()
    _, message = await waiting(shop, customer)
    shop.clock.advance(SEND_AT + 121)  # past the grace, the cancelled order still watched
    assert shop.app.job_queue is not None
    for job in shop.app.job_queue.get_jobs_by_name("conversation-timeouts"):
        job.enabled = False  # only the sweeps this test runs
    press = Paused(monkeypatch, shop.services.conversations, "finish")  # the Cancel has read the draft
    cancelling = asyncio.create_task(shop.send(customer.press(message, "✖️")))
    await press.reached()
    take = Paused(monkeypatch, shop.services.conversations, "advance", after=True)  # the sweep took it
    sweeping = asyncio.create_task(shop.conversation_sweep())
    await take.reached()
    press.go()
    await cancelling
    assert shop.telegram.callback_answers[-1].get("text") is None  # not "no longer active"
    take.go()
    await sweeping
    assert "not send" in message.text or message.text.startswith("Cancelled.")  # either way: nothing sent
    assert pushes(shop) == 1 and len(await orders_of(shop, customer.chat_id)) == 1
    assert await shop.services.conversations.current(customer.chat_id, customer.user_id) is None
