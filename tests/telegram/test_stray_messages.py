"""Never silent: what the bot cannot place gets a short answer saying what to do, at most once
a minute per chat, and in a group only when the message is addressed to the bot."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.domain import OrderStatus
from bot.sandbox.telegram import BOT_USERNAME, TelegramUser
from tests.conftest import Shop


@pytest.fixture(params=["ipay", "daraja"])
def provider(request: pytest.FixtureRequest) -> str:
    """Each test runs on both providers: the behaviour is the same."""
    return str(request.param)


WHAT_TO_DO = "To pay Mama Mboga, send /pay. /help lists everything."
GROUP = -100321


def _replying_to_the_bot(shop: Shop, user: TelegramUser, text: str) -> dict[str, Any]:
    update = user.text(text)
    bot_message = shop.last(user.chat_id)
    update["message"]["reply_to_message"] = shop.telegram._message_json(bot_message)
    return update


def _mentioning_the_bot(user: TelegramUser, text: str) -> dict[str, Any]:
    mention = f"@{BOT_USERNAME}"
    update = user.text(f"{mention} {text}")
    update["message"]["entities"] = [{"type": "mention", "offset": 0, "length": len(mention)}]
    return update


async def test_hello_in_a_private_chat_is_answered_once_a_minute(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "habari, nataka kulipa")
    assert shop.texts(customer.chat_id) == [WHAT_TO_DO]
    await shop.type(customer, "hello?", "thanks")
    assert shop.texts(customer.chat_id) == [WHAT_TO_DO]  # not one answer per line
    shop.clock.advance(61)
    await shop.type(customer, "hello")
    assert shop.texts(customer.chat_id) == [WHAT_TO_DO, WHAT_TO_DO]


async def test_a_sticker_outside_a_payment_is_answered(shop: Shop) -> None:
    customer = shop.customer()
    await shop.send(customer.sticker())
    assert shop.texts(customer.chat_id) == [WHAT_TO_DO]


async def test_the_limit_is_per_chat(shop: Shop) -> None:
    first, second = shop.customer(501), shop.customer(502)
    await shop.type(first, "hello")
    await shop.type(second, "hello")
    assert shop.texts(501) == [WHAT_TO_DO] and shop.texts(502) == [WHAT_TO_DO]


async def test_after_a_payment_ends_a_thank_you_is_answered(shop: Shop) -> None:
    customer = shop.customer()
    await shop.pay(customer, phone="0712345678")
    await shop.type(customer, "thanks")
    assert shop.last(customer.chat_id).text == WHAT_TO_DO


async def test_a_group_talking_among_itself_gets_no_answer(shop: Shop) -> None:
    member = shop.customer(601, chat_id=GROUP)
    await shop.type(member, "who is bringing the sugar?", "me", "ok")
    assert shop.texts(GROUP) == []


async def test_a_group_member_addressing_the_bot_is_answered_once_a_minute(shop: Shop) -> None:
    member, other = shop.customer(601, chat_id=GROUP), shop.customer(602, chat_id=GROUP)
    await shop.send(_mentioning_the_bot(member, "how do I pay?"))
    assert shop.texts(GROUP) == [WHAT_TO_DO]
    await shop.send(_replying_to_the_bot(shop, other, "and me?"))
    assert shop.texts(GROUP) == [WHAT_TO_DO]  # one answer a minute for the whole group
    shop.clock.advance(61)
    await shop.send(_replying_to_the_bot(shop, other, "and me?"))
    assert shop.texts(GROUP) == [WHAT_TO_DO, WHAT_TO_DO]


async def test_a_reply_to_someone_else_in_a_group_is_not_addressed_to_the_bot(shop: Shop) -> None:
    member, other = shop.customer(601, chat_id=GROUP), shop.customer(602, chat_id=GROUP)
    await shop.type(member, "who is bringing the sugar?")
    update = other.text("me")
    member_message = shop.telegram.messages(GROUP)[-2]
    update["message"]["reply_to_message"] = {
        "message_id": member_message.message_id,
        "date": 0,
        "chat": {"id": GROUP, "type": "supergroup", "title": "g"},
        "from": {"id": 601, "is_bot": False, "first_name": "A"},
        "text": member_message.text,
    }
    await shop.send(update)
    assert shop.texts(GROUP) == []


async def test_a_payer_in_a_group_conversation_is_still_heard_while_others_chat(shop: Shop) -> None:
    payer, other = shop.customer(601, chat_id=GROUP), shop.customer(602, chat_id=GROUP)
    await shop.type(payer, "/pay")
    await shop.type(other, "nice weather")
    assert shop.texts(GROUP)[-1].startswith("Which phone")
    await shop.type(payer, "0712345678")
    assert shop.texts(GROUP)[-1].startswith("Phone: 07** ***678 (M-Pesa).")


async def test_an_unknown_button_gets_a_pop_up_once_a_minute(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/help")
    help_message = shop.last(customer.chat_id)
    help_message.buttons = [[("Old menu", "menu:v1:prices")]]  # a keyboard from an older version
    await shop.send(customer.press(help_message, "Old menu"))
    assert shop.telegram.callback_answers[-1].get("text") == WHAT_TO_DO
    await shop.send(customer.press(help_message, "Old menu"))
    answer = shop.telegram.callback_answers[-1]
    assert answer.get("text") is None and len(shop.telegram.callback_answers) == 2  # answered, no pop-up
    assert len(shop.texts(customer.chat_id)) == 1  # no message in the chat either


async def test_stale_summary_buttons_keep_their_pop_ups_every_time(shop: Shop) -> None:
    customer = shop.customer()
    summary = await shop.start_payment(customer)
    confirm = summary.button_data("Confirm")
    await shop.send(customer.text("/cancel"))
    for _ in range(3):  # the buttons are gone, but a client that has not caught up still shows them
        await shop.send(customer.press_data(summary, confirm))
        assert shop.telegram.callback_answers[-1]["text"] == "That button is no longer active."


async def test_someone_elses_summary_button_in_a_group_says_so(shop: Shop) -> None:
    payer, other = shop.customer(601, chat_id=GROUP), shop.customer(602, chat_id=GROUP)
    summary = await shop.start_payment(payer)
    await shop.send(other.press(summary, "Confirm"))
    assert shop.telegram.callback_answers[-1]["text"] == "This button belongs to someone else's payment."
    assert await shop.services.store.latest_chat_orders(GROUP, 5) == []
    await shop.send(payer.press(summary, "Confirm"))
    assert len(await shop.services.store.latest_chat_orders(GROUP, 5)) == 1


async def test_commands_for_another_bot_in_a_group_are_left_alone(shop: Shop) -> None:
    member = shop.customer(601, chat_id=GROUP)
    await shop.type(member, "/start@otherbot", "/dance@otherbot")
    assert shop.texts(GROUP) == []


async def test_edits_and_service_messages_are_not_answered_even_mid_payment(shop: Shop) -> None:
    customer = shop.customer()
    edited = customer.text("hello")
    edited["edited_message"] = {**edited.pop("message"), "edit_date": 0}
    await shop.send(edited)
    assert shop.texts(customer.chat_id) == []
    payer = shop.customer(601, chat_id=GROUP)
    await shop.type(payer, "/pay")
    pinned = payer.text("")
    del pinned["message"]["text"]
    pinned["message"]["pinned_message"] = shop.telegram._message_json(shop.last(GROUP))
    await shop.send(pinned)  # the payer pinned the question: not an answer to it
    assert shop.texts(GROUP)[-1].startswith("Which phone")


def test_the_limit_forgets_chats_whose_minute_has_passed() -> None:
    from bot.telegram.stray import ChatThrottle

    throttle = ChatThrottle(window=60)
    assert all(throttle.allow(chat, now=1000.0) for chat in range(3000))
    assert not throttle.allow(5, now=1059.0)
    assert throttle.allow(5, now=1061.0)
    for chat in range(10_000, 12_000):  # a later minute's chats push the old ones out
        throttle.allow(chat, now=1200.0)
    assert len(throttle) <= 2001


def _pressed_on_an_inline_message(user: TelegramUser, data: str) -> dict[str, Any]:
    """A button pressed on a message posted inline ("via @bot"): Telegram sends only the
    message's `inline_message_id`, never the message or its chat."""
    query = {
        "id": str(user.api.next_update_id() * 1000 + user.user_id % 1000),
        "from": {"id": user.user_id, "is_bot": False, "first_name": user.first_name},
        "chat_instance": "inline",
        "inline_message_id": "AAAAAQ-inline",
        "data": data,
    }
    return {"update_id": user.api.next_update_id(), "callback_query": query}


@pytest.mark.parametrize(
    "data",
    [
        "order:cancel:ABCDEFGHJKLM",
        "order:retry:ABCDEFGHJKLM",
        "order:rest:ABCDEFGHJKLM",
        "order:paybill:ABCDEFGHJKLM",
        "pay:confirm",
        "preq:cancel:RABCDEFGHJK",
        "lang:sw",
    ],
)
async def test_a_button_on_an_inline_message_gets_a_pop_up_not_an_error(
    shop: Shop, caplog: pytest.LogCaptureFixture, data: str
) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    data = data.replace("ABCDEFGHJKLM", order.id)
    await shop.send(_pressed_on_an_inline_message(customer, data))
    answer = shop.telegram.callback_answers[-1]
    assert answer["show_alert"] and answer["text"] == "That button only works in a chat with the bot."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await shop.order(order.id)).status is OrderStatus.PENDING  # nothing was done to the order
