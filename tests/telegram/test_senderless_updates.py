"""Updates Telegram sends without a person in `from`: channel posts, and messages an anonymous
group admin posts as the group (`sender_chat`). Each is answered or ignored on purpose, never
an error: the shapes below are the Bot API's own."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import Shop, ShopWith

ADMIN = 9001
GROUP: dict[str, Any] = {"id": -100555, "type": "supergroup", "title": "Shop group"}
CHANNEL: dict[str, Any] = {"id": -100999, "type": "channel", "title": "Shop news"}
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
COMMANDS = [
    "/start",
    "/help",
    "/pay",
    "/pay@pesabot",
    "/status",
    "/orders",
    "/summary",
    "/export",
    "/cancel",
    "/frobnicate",
]


@pytest.fixture
async def admin_shop(shop_with: ShopWith) -> Shop:
    return await shop_with(admin_ids=frozenset({ADMIN}))


def _post(
    shop: Shop, chat: dict[str, Any], text: str, *, kind: str = "message", sender: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A command as Telegram sends it when a chat, not a person, posts it (`sender_chat`)."""
    body: dict[str, Any] = {
        "message_id": shop.telegram.next_update_id(),
        "date": int(shop.clock()),
        "chat": chat,
        "sender_chat": chat,
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
    }
    if sender is not None:
        body["from"] = sender
    return {"update_id": shop.telegram.next_update_id(), kind: body}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_commands_posted_in_a_channel_are_left_alone(admin_shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    """A channel is a broadcast: the bot takes payments from people, and says nothing to subscribers.
    Its posts forwarded into the channel's discussion group are the channel's too."""
    shop = admin_shop
    channel_bot = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
    for command in COMMANDS:
        await shop.send(_post(shop, CHANNEL, command, kind="channel_post"))
        forwarded = _post(shop, GROUP, command, sender=channel_bot)
        forwarded["message"].update(sender_chat=CHANNEL, is_automatic_forward=True)
        await shop.send(forwarded)
    assert shop.telegram.bot_messages(CHANNEL["id"]) == [] and shop.telegram.bot_messages(GROUP["id"]) == []
    assert _errors(caplog) == []


@pytest.mark.parametrize("sender", [None, GROUP_ANONYMOUS_BOT], ids=["no from", "GroupAnonymousBot"])
async def test_an_anonymous_admin_posting_as_the_group_gets_answers_that_need_no_person(
    admin_shop: Shop, caplog: pytest.LogCaptureFixture, sender: dict[str, Any] | None
) -> None:
    shop = admin_shop
    private = await shop.pay(shop.customer(501))
    answers = {}
    for command in COMMANDS:
        before = len(shop.telegram.bot_messages(GROUP["id"]))
        await shop.send(_post(shop, GROUP, command, sender=sender))
        said = shop.texts(GROUP["id"])[before:]
        assert len(said) == 1, (command, said)  # every command answered, once
        answers[command] = said[0]
    assert _errors(caplog) == []
    assert answers["/help"] == answers["/start"]
    assert answers["/help"].startswith("I take M-Pesa and Airtel Money payments for Mama Mboga")
    assert "/summary" not in answers["/help"]  # a chat is nobody's admin
    person_needed = (
        "To take a payment I need to know who asks: send /pay from your own account, not as a group or channel."
    )
    assert answers["/pay"] == answers["/pay@pesabot"] == person_needed
    assert answers["/status"].startswith("This chat has no orders yet.")
    assert answers["/orders"] == "No orders (latest 10, this chat)."
    unknown = "I don't know that command. Send /help to see what I can do."
    assert answers["/summary"] == answers["/export"] == answers["/frobnicate"] == unknown
    assert answers["/cancel"].startswith("There is nothing to cancel.")
    assert not any(private.id in text for text in shop.texts(GROUP["id"]))
    assert await shop.services.store.latest_chat_orders(GROUP["id"], 5) == []
