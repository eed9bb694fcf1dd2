"""Payment requests a merchant sends: /request, the customer's deep link, paid once,
expiry, cancel, /requests, and the Pay Bill way round on the "Check your phone" message."""

from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image

from bot.config import Settings
from bot.domain import OrderStatus, RequestState
from bot.requests.telegram import refresh_request_messages
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import ChatMessage, FakeBotApi
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, start_shop, stop_shop, with_settings

ADMIN, STAFF = 900, 901
LINK = re.compile(r"https://t\.me/pesabot\?start=([A-Za-z0-9_-]+)")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_settings(settings, admin_ids=frozenset({ADMIN}), staff_ids=frozenset({STAFF}))


def decode_png(png: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


async def make_request(
    shop: Shop, command: str = "/request 500 2 loaves", user_id: int = STAFF
) -> tuple[ChatMessage, str]:
    """A member of staff sends /request: returns the request's message and its token."""
    merchant = shop.customer(user_id, "Amina")
    await shop.type(merchant, command)
    message = shop.last(merchant.chat_id)
    found = LINK.search(message.text)
    assert found is not None, message.text
    return message, found.group(1)


async def open_and_confirm(shop: Shop, user_id: int, token: str, phone: str = "0712345677") -> ChatMessage:
    """The customer opens the link, shares a phone and presses Confirm; returns the last message."""
    customer = shop.customer(user_id, "Wanjiru")
    await shop.type(customer, f"/start {token}")
    await shop.type(customer, phone)
    summary = shop.last(customer.chat_id)
    await shop.send(customer.press(summary, "Confirm"))
    return shop.last(customer.chat_id)


async def test_deep_link_to_paid_end_to_end(shop: Shop) -> None:
    message, token = await make_request(shop)
    assert message.photo is not None and len(token) <= 64
    assert decode_png(message.photo) == [f"https://t.me/pesabot?start={token}"]
    assert "KES 500 for 2 loaves" in message.text and "Valid until" in message.text
    share = message.button("Share")
    request_id = share["switch_inline_query"]
    assert request_id.startswith("R")

    customer = shop.customer(501, "Wanjiru")
    await shop.type(customer, f"/start {token}")
    first = shop.last(customer.chat_id)
    assert first.text.startswith("Mama Mboga asks KES 500 for 2 loaves.")
    assert first.reply_keyboard and first.reply_keyboard[0][0]["request_contact"]
    await shop.send(customer.contact("+254712345677"))
    summary = shop.last(customer.chat_id)
    assert "Amount: KES 500" in summary.text and "Phone: 0712 345 677" in summary.text
    await shop.send(customer.press(summary, "Confirm"))
    assert "Check your phone" in shop.last(customer.chat_id).text

    shop.clock.advance(5)
    await shop.sweep()
    order = await shop.only_order(customer.chat_id)
    assert order.status is OrderStatus.PAID and order.pay_request_id == request_id and order.amount == 500
    assert "Confirmed. KES 500 paid to Mama Mboga" in shop.last(customer.chat_id).text
    told = shop.last(STAFF).text
    assert told.startswith(f"✅ Request {request_id} paid: KES 500 for 2 loaves")
    code, payer = shop.ipay_payment(order.id)
    assert code in told
    assert "07** ***677" in told and "254712345677" not in told
    assert payer in told

    await refresh_request_messages(shop.app)
    assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves.") and message.buttons == []
    assert payer not in message.text and "2547" not in message.text  # who paid: the merchant's notice
    request = await shop.services.requests.get(request_id)
    assert request is not None and request.state is RequestState.PAID and request.order_id == order.id


async def test_a_request_is_paid_once_the_first_confirm_wins(shop: Shop) -> None:
    _, token = await make_request(shop)
    first, second = shop.customer(501, "Wanjiru"), shop.customer(502, "Otieno")
    for customer, phone in ((first, "0712345670"), (second, "0722345670")):
        await shop.type(customer, f"/start {token}", phone)
    summaries = [shop.last(first.chat_id), shop.last(second.chat_id)]
    await shop.send(first.press(summaries[0], "Confirm"))
    await shop.send(second.press(summaries[1], "Confirm"))
    assert "Check your phone" in shop.last(first.chat_id).text
    assert shop.last(second.chat_id).text.startswith("Someone is already paying this request.")
    assert len(await shop.services.store.latest_chat_orders(second.chat_id, 5)) == 0
    assert shop.sandbox.open_prompt("254722345670") is None

    shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(5)
    await shop.sweep()
    latecomer = shop.customer(503, "Kamau")
    await shop.type(latecomer, f"/start {token}")
    assert shop.last(latecomer.chat_id).text.startswith("This payment request has already been paid.")


async def test_a_request_confirmed_by_two_payers_at_once_prompts_one(shop: Shop) -> None:
    import asyncio

    _, token = await make_request(shop)
    payers = [shop.customer(510 + n, f"Payer {n}") for n in range(4)]
    for n, payer in enumerate(payers):
        await shop.type(payer, f"/start {token}", f"07123456{n}0")
    presses = [payer.press(shop.last(payer.chat_id), "Confirm") for payer in payers]
    from telegram import Update

    await asyncio.gather(*(shop.app.process_update(Update.de_json(p, shop.app.bot)) for p in presses))
    await shop.settle()
    prompted = [p for n, p in enumerate(payers) if shop.sandbox.open_prompt(f"2547123456{n}0") is not None]
    assert len(prompted) == 1
    refused = [p for p in payers if shop.last(p.chat_id).text.startswith("Someone is already paying")]
    assert len(refused) == 3


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_failed_payment_frees_the_request_for_another_try(shop: Shop) -> None:
    _, token = await make_request(shop)
    await open_and_confirm(shop, 501, token, phone="0712345671")  # the payer cancels the prompt
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.only_order(501)).status is OrderStatus.CANCELLED
    await open_and_confirm(shop, 502, token, phone="0712345678")
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.only_order(502)).status is OrderStatus.PAID


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_the_payer_cannot_change_the_amount(shop: Shop) -> None:
    _, token = await make_request(shop, "/request 1500 school fees")
    customer = shop.customer(501)
    await shop.type(customer, f"/start {token}", "0712345677", "10")
    assert shop.last(customer.chat_id).text.startswith("The amount of this request is fixed at KES 1,500.")
    summary = [
        m
        for m in shop.telegram.bot_messages(customer.chat_id)
        if "Confirm" in m.button_labels[:1] or any("Confirm" in label for label in m.button_labels)
    ][-1]
    assert "Amount: KES 1,500" in summary.text
    await shop.send(customer.press(summary, "Confirm"))
    order = await shop.only_order(customer.chat_id)
    assert order.amount == 1500


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_the_request_amount_is_checked_where_the_order_is_written(shop: Shop) -> None:
    """Even a draft whose amount was tampered with cannot claim the request for another amount."""
    _, token = await make_request(shop)
    customer = shop.customer(501)
    await shop.type(customer, f"/start {token}", "0712345677")
    draft = await shop.services.store.get_draft(customer.chat_id, customer.user_id)
    assert draft is not None and draft.pay_request_id is not None
    import dataclasses

    await shop.services.store.put_draft(dataclasses.replace(draft, amount=10), replacing=draft.revision)
    await shop.send(customer.press(shop.last(customer.chat_id), "Confirm"))
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 5) == []


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_an_expired_request_says_so(shop: Shop) -> None:
    message, token = await make_request(shop)
    shop.clock.advance(24 * 3600 + 1)
    customer = shop.customer(501)
    await shop.type(customer, f"/start {token}")
    assert shop.last(customer.chat_id).text == "This payment request has expired. Please ask the shop for a new one."
    await refresh_request_messages(shop.app)
    assert message.text.startswith("🧾 Mama Mboga: ⌛ Expired: KES 500 for 2 loaves")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_request_expiring_between_open_and_confirm_is_refused(shop: Shop) -> None:
    _, token = await make_request(shop)
    customer = shop.customer(501)
    shop.clock.advance(24 * 3600 - 60)
    await shop.type(customer, f"/start {token}", "0712345677")
    shop.clock.advance(120)
    await shop.send(customer.press(shop.last(customer.chat_id), "Confirm"))
    assert shop.last(customer.chat_id).text.startswith("This payment request has expired.")
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 5) == []


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_cancel_from_requests_list(shop: Shop) -> None:
    message, token = await make_request(shop)
    merchant = shop.customer(STAFF, "Amina")
    await shop.type(merchant, "/requests")
    listing = shop.last(STAFF)
    assert "⏳ open: KES 500 for 2 loaves" in listing.text
    await shop.send(merchant.press(listing, "Cancel R"))
    assert "✖️ Cancelled: KES 500 for 2 loaves" in listing.text and listing.buttons == []
    assert message.text.startswith("🧾 Mama Mboga: ✖️ Cancelled")
    customer = shop.customer(501)
    await shop.type(customer, f"/start {token}")
    assert shop.last(customer.chat_id).text.startswith("Mama Mboga cancelled this payment request.")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_requests_list_shows_who_paid(shop: Shop) -> None:
    _, token = await make_request(shop, "/request 200")
    await open_and_confirm(shop, 501, token)
    shop.clock.advance(5)
    await shop.sweep()
    await make_request(shop, "/request 300 sugar")
    merchant = shop.customer(ADMIN, "Boss")
    await shop.type(merchant, "/requests")
    listing = shop.last(ADMIN)
    assert "✅ Paid by" in listing.text and "(07** ***677): KES 200" in listing.text
    assert "⏳ open: KES 300 for sugar" in listing.text
    assert listing.button_labels == [label for label in listing.button_labels if "KES 300" in label]


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_request_being_paid_cannot_be_cancelled(shop: Shop) -> None:
    message, token = await make_request(shop)
    await open_and_confirm(shop, 501, token, phone="0712345670")  # waits on the phone
    merchant = shop.customer(STAFF, "Amina")
    await shop.send(merchant.press(message, "Cancel request"))
    assert shop.telegram.callback_answers[-1]["text"].startswith("This request can't be cancelled now")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_only_staff_make_requests(shop: Shop) -> None:
    customer = shop.customer(501)
    await shop.type(customer, "/request 500 bread", "/requests", "/qr")
    assert (
        shop.texts(customer.chat_id)[-3:]
        == ["Only the shop's admins and staff can send payment requests. To pay, send /pay."] * 3
    )


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_request_input_problems_get_a_second_chance(shop: Shop) -> None:
    merchant = shop.customer(STAFF, "Amina")
    await shop.type(merchant, "/request", "/request five hundred", f"/request 500 {'x' * 101}")
    first, second, third = shop.texts(STAFF)[-3:]
    assert first.startswith("Send the amount")
    assert second.startswith("I couldn't read that as an amount.") and "/request 500 2 loaves" in second
    assert third.startswith("The note can be at most 100 characters.")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_unknown_link(shop: Shop) -> None:
    customer = shop.customer(501)
    await shop.type(customer, "/start " + "A" * 32)
    assert shop.last(customer.chat_id).text.startswith("I don't know that payment link.")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_request_draft_survives_a_restart(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    """The draft keeps the request: after a restart the payer goes on from the phone step."""
    shop = await start_shop(settings, telegram, sandbox, clock)
    try:
        _, token = await make_request(shop)
        customer = shop.customer(501)
        await shop.type(customer, f"/start {token}")
    finally:
        await stop_shop(shop)
    again = await start_shop(settings, telegram, sandbox, clock)
    try:
        await again.type(customer, "0712345677", "10")
        assert again.last(customer.chat_id).text.startswith("The amount of this request is fixed at KES 500.")
        summary = again.telegram.bot_messages(customer.chat_id)[-2]
        assert "Amount: KES 500" in summary.text
        await again.send(customer.press(summary, "Confirm"))
        order = await again.only_order(customer.chat_id)
        assert order.pay_request_id is not None and order.amount == 500
    finally:
        await stop_shop(again)


# -- the Pay Bill way round ----------------------------------------------------------------


async def test_paybill_route_from_the_transact_answer_and_a_manual_payment(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345674")  # the prompt never gets an answer
    check = shop.last(customer.chat_id)
    await shop.send(customer.press(check, "No prompt on your phone?"))
    stored = await shop.order(order.id)
    assert stored.paybill_account and dict(stored.paybill_numbers)["MPESA"]
    steps = shop.last(customer.chat_id).text
    assert (
        f"M-PESA → Lipa na M-PESA → Pay Bill → Business no. {dict(stored.paybill_numbers)['MPESA']} → "
        f"Account {stored.paybill_account} → KES 500"
    ) in steps
    assert f"Business no. {dict(stored.paybill_numbers)['AIRTEL']} → Reference {stored.paybill_account}" in steps

    shop.sandbox.pay_by_paybill(order.id)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to Mama Mboga" in shop.last(customer.chat_id).text
    assert MERCHANT_CHAT in shop.telegram.chats


async def test_paybill_numbers_are_never_hard_coded(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.sandbox.ipay as sandbox_module

    monkeypatch.setattr(sandbox_module, "PAYBILLS", (("MPESA", "777001"), ("AIRTEL", "888002")))
    customer = shop.customer()
    await shop.pay(customer, phone="0712345674")
    await shop.send(customer.press(shop.last(customer.chat_id), "No prompt on your phone?"))
    steps = shop.last(customer.chat_id).text
    assert "Business no. 777001" in steps and "Business no. 888002" in steps and "261144" not in steps


# -- inline mode and the counter QR code -----------------------------------------------------


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_inline_query_card_button_to_paid(shop: Shop) -> None:
    merchant = shop.customer(STAFF, "Amina")
    group = -100555
    for typed in ("5", "500", "500 2 loaves"):  # Telegram asks again as the merchant types
        query = merchant.inline_query(typed, chat_type="supergroup")
        await shop.send(query)
    answer = shop.telegram.inline_answers[query["inline_query"]["id"]]
    assert answer["is_personal"] and answer["cache_time"] == 0
    [card] = answer["results"]
    assert card["title"] == "Request KES 500 — 2 loaves"
    chosen, posted = merchant.choose_inline_result(query, card["id"], group)
    await shop.send(chosen)
    assert posted.via_bot and posted.text.startswith("🧾 Mama Mboga asks KES 500 for 2 loaves.")
    networks = "M-PESA" if shop.daraja is not None else "M-PESA or Airtel Money"  # only what the provider prompts
    assert f"Tap the button to pay with {networks} (valid until" in posted.text
    pay = posted.button("Pay KES 500")
    token = LINK.fullmatch(pay["url"])
    assert token is not None

    await open_and_confirm(shop, 501, token.group(1))
    shop.clock.advance(5)
    await shop.sweep()
    order = await shop.only_order(501)
    assert order.status is OrderStatus.PAID and order.pay_request_id == card["id"]
    assert shop.last(STAFF).text.startswith(f"✅ Request {card['id']} paid: KES 500 for 2 loaves")
    await refresh_request_messages(shop.app)
    assert posted.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves.") and posted.keyboard == []
    listed = await shop.services.requests.latest()
    assert [view.request.id for view in listed] == [card["id"]]  # the cards offered while typing are not listed


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_share_button_offers_the_same_request_inline(shop: Shop) -> None:
    message, token = await make_request(shop)
    merchant = shop.customer(STAFF, "Amina")
    query = merchant.inline_query(message.button("Share")["switch_inline_query"])
    await shop.send(query)
    [card] = shop.telegram.inline_answers[query["inline_query"]["id"]]["results"]
    assert card["id"] == message.button("Share")["switch_inline_query"]
    assert card["reply_markup"]["inline_keyboard"][0][0]["url"].endswith(f"?start={token}")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_non_staff_inline_query_gets_one_card_on_how_to_pay(shop: Shop) -> None:
    stranger = shop.customer(501, "Wanjiru")
    query = stranger.inline_query("500 2 loaves")
    await shop.send(query)
    [card] = shop.telegram.inline_answers[query["inline_query"]["id"]]["results"]
    assert card["title"] == "Pay Mama Mboga"
    assert card["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://t.me/pesabot?start=pay"
    assert await shop.services.requests.latest() == []
    assert await shop.services.store.expire_pay_requests(float("inf")) == 0  # no request was made at all


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_inline_query_without_an_amount_explains(shop: Shop) -> None:
    query = shop.customer(STAFF, "Amina").inline_query("")
    await shop.send(query)
    [card] = shop.telegram.inline_answers[query["inline_query"]["id"]]["results"]
    assert card["title"] == "Type an amount and a note"


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_counter_qr_code_opens_pay(shop: Shop) -> None:
    merchant = shop.customer(ADMIN, "Boss")
    await shop.type(merchant, "/qr")
    sign = shop.last(ADMIN)
    assert sign.document is not None and sign.document["filename"] == "pay-qr.png"
    assert decode_png(sign.document["content"]) == ["https://t.me/pesabot?start=pay"]
    customer = shop.customer(501)
    await shop.type(customer, "/start pay")
    assert shop.last(customer.chat_id).text.startswith("Which phone should get the payment prompt?")
    await shop.type(customer, "0712345677", "350")
    assert "Amount: KES 350" in shop.last(customer.chat_id).text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_help_tells_staff_about_requests_and_customers_not(shop: Shop) -> None:
    staff, customer = shop.customer(STAFF, "Amina"), shop.customer(501)
    await shop.type(staff, "/help")
    await shop.type(customer, "/help")
    assert "/request 500 2 loaves" in shop.last(STAFF).text
    assert "/request" not in shop.last(customer.chat_id).text


async def test_a_retry_after_a_declined_prompt_still_pays_the_request(shop: Shop) -> None:
    message, token = await make_request(shop)
    await open_and_confirm(shop, 501, token, phone="0712345670")
    shop.sandbox.answer("254712345670", approve=False)
    shop.clock.advance(5)
    await shop.sweep()
    customer = shop.customer(501)
    declined = shop.last(customer.chat_id)
    assert declined.text.startswith("✖️ The payment was cancelled on the phone.")
    merchant = shop.customer(STAFF, "Amina")
    await shop.type(merchant, "/requests")
    assert "⏳ open: KES 500 for 2 loaves" in shop.last(STAFF).text
    await shop.send(customer.press(declined, "Send the prompt again"))
    orders = await shop.services.store.latest_chat_orders(customer.chat_id, 5)
    assert len(orders) == 2 and orders[0].pay_request_id == orders[1].pay_request_id
    shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(orders[0].id)).status is OrderStatus.PAID
    await refresh_request_messages(shop.app)
    assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves.")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_requests_list_shows_a_request_being_paid(shop: Shop) -> None:
    _, token = await make_request(shop)
    await open_and_confirm(shop, 501, token, phone="0712345670")
    merchant = shop.customer(STAFF, "Amina")
    await shop.type(merchant, "/requests")
    listing = shop.last(STAFF)
    assert "⏳ being paid: KES 500 for 2 loaves" in listing.text and listing.buttons == []


async def test_a_request_paid_while_its_time_runs_out_is_paid_not_expired(shop: Shop) -> None:
    message, token = await make_request(shop)
    shop.clock.advance(24 * 3600 - 30)
    await open_and_confirm(shop, 501, token, phone="0712345670")  # the payer takes their time
    shop.clock.advance(45)  # past the request's time, within the prompt's
    await refresh_request_messages(shop.app)
    request_id = message.button("Share")["switch_inline_query"]
    request = await shop.services.requests.get(request_id)
    assert request is not None and request.state is RequestState.OPEN  # a payment is on its way: not expired
    shop.sandbox.answer("254712345670", approve=True)
    await shop.sweep()
    await refresh_request_messages(shop.app)
    request = await shop.services.requests.get(request_id)
    assert request is not None and request.state is RequestState.PAID
    assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves.")


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_only_staff_may_cancel_a_request(shop: Shop) -> None:
    message, _ = await make_request(shop)
    group_member = shop.customer(501)
    await shop.send(group_member.press(message, "Cancel request"))
    assert shop.telegram.callback_answers[-1]["text"] == "This button belongs to someone else's payment."
    request = await shop.services.requests.get(message.button("Share")["switch_inline_query"])
    assert request is not None and request.state is RequestState.OPEN


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_request_message_that_cannot_be_edited_never_holds_up_the_others(shop: Shop) -> None:
    first, _ = await make_request(shop, "/request 100 first")
    second, _ = await make_request(shop, "/request 200 second")
    shop.clock.advance(24 * 3600 + 1)
    shop.telegram.fail_next("editMessageCaption", 400, "Bad Request: message to edit not found")
    shop.telegram.fail_next("editMessageCaption", 502, "Bad Gateway")
    await refresh_request_messages(shop.app)  # the first is given up on, the second waits for the next round
    assert "Expired" not in first.text and "Expired" not in second.text
    await refresh_request_messages(shop.app)
    assert "Expired" not in first.text and second.text.startswith("🧾 Mama Mboga: ⌛ Expired: KES 200 for second")


def test_request_ttl_hours_is_a_setting() -> None:
    from bot.config import ConfigError, load_settings

    assert load_settings({"TELEGRAM_BOT_TOKEN": "1:abc"}).request_ttl_hours == 24.0
    assert load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "REQUEST_TTL_HOURS": "2.5"}).request_ttl_hours == 2.5
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(ConfigError, match="REQUEST_TTL_HOURS expects a number of hours above 0"):
            load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "REQUEST_TTL_HOURS": bad})


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_the_ttl_setting_decides_when_a_request_expires(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await start_shop(with_settings(settings, request_ttl_hours=1.0), telegram, sandbox, clock)
    try:
        _, token = await make_request(shop)
        clock.advance(3600 + 1)
        customer = shop.customer(501)
        await shop.type(customer, f"/start {token}")
        assert shop.last(customer.chat_id).text.startswith("This payment request has expired.")
    finally:
        await stop_shop(shop)


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_words_at_a_request_summary_point_to_the_buttons(shop: Shop) -> None:
    _, token = await make_request(shop)
    customer = shop.customer(501)
    await shop.type(customer, f"/start {token}", "0712345677", "hello", "5")
    hello, five = shop.texts(customer.chat_id)[-2:]
    assert hello.startswith("Tap Confirm or Cancel below, or answer yes or no.")
    assert five.startswith("The amount of this request is fixed at KES 500.")


async def test_a_request_summary_confirmed_after_a_restart_pays_the_request(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    shop = await start_shop(settings, telegram, sandbox, clock)
    try:
        message, token = await make_request(shop)
        customer = shop.customer(501)
        await shop.type(customer, f"/start {token}", "0712345677")
        summary = shop.last(customer.chat_id)
    finally:
        await stop_shop(shop)
    again = await start_shop(settings, telegram, sandbox, clock)
    try:
        await again.send(customer.press(summary, "Confirm"))
        clock.advance(5)
        await again.sweep()
        order = await again.only_order(customer.chat_id)
        assert order.status is OrderStatus.PAID and order.amount == 500
        await refresh_request_messages(again.app)
        assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves.")
        assert again.last(STAFF).text.startswith("✅ Request R")
    finally:
        await stop_shop(again)


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_a_kiswahili_speaking_payer_reads_the_request_in_kiswahili(shop: Shop) -> None:
    message, token = await make_request(shop)
    assert "KES 500 for 2 loaves" in message.text  # the merchant's Telegram is in English
    customer = shop.customer(502, "Wanjiru", language_code="sw")
    await shop.type(customer, f"/start {token}")
    first = shop.last(customer.chat_id)
    assert first.text.startswith("Mama Mboga: ombi la malipo ya KES 500 kwa 2 loaves."), first.text
    assert "asks" not in first.text and "phone" not in first.text.lower()  # the phone question too


async def test_the_merchant_hears_a_request_paid_in_their_own_language_chosen_when_it_is_sent(shop: Shop) -> None:
    """The merchant's line is queued with the payment and said when sent: in Kiswahili for a
    member of staff who switched to it meanwhile, and "mlipaji" when iPay gives no name."""
    _, token = await make_request(shop)
    await open_and_confirm(shop, 501, token, phone="0712345677")
    staff = shop.customer(STAFF, "Amina")
    await shop.type(staff, "/lugha")
    await shop.send(staff.press(shop.last(STAFF), "Kiswahili"))
    await shop.type(shop.customer(501), "/status")  # the last update read was in English
    shop.clock.advance(5)
    await shop.sweep()
    order = await shop.only_order(501)
    code, payer = shop.ipay_payment(order.id)
    request_id = order.pay_request_id
    assert shop.last(STAFF).text == (
        f"✅ Ombi {request_id} limelipwa: KES 500 kwa 2 loaves\nLimelipwa na {payer} (07** ***677). Risiti: {code}"
    )


def test_a_request_paid_without_a_payer_name_says_the_payer_in_the_readers_language() -> None:
    from bot.domain import Notice
    from bot.i18n import speaking
    from bot.orders import notices
    from bot.orders.notifier import render_notice

    params = {"request_id": "R1", "amount": 500, "note": "", "payer_name": None, "phone": "07** ***677"}
    notice = Notice(5, kind=notices.REQUEST_PAID, params={**params, "receipt": "TB89HFEVG7"}, reader=5)
    with speaking("sw"):
        assert "Limelipwa na mlipaji (07** ***677)." in render_notice(notice)
    with speaking("en"):
        assert "By the payer (07** ***677)." in render_notice(notice)


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_each_posted_inline_card_is_its_own_request_without_inline_feedback(shop: Shop) -> None:
    merchant = shop.customer(STAFF, "Amina")
    tokens = []
    for chat in (-100601, -100602):  # the same card for customer X, later for customer Y
        query = merchant.inline_query("500 bread")
        await shop.send(query)
        [card] = shop.telegram.inline_answers[query["inline_query"]["id"]]["results"]
        _, posted = merchant.choose_inline_result(query, card["id"], chat)  # feedback off: the bot is not told
        found = LINK.fullmatch(posted.button("Pay KES 500")["url"])
        assert found is not None
        tokens.append(found.group(1))
    assert tokens[0] != tokens[1]
    await open_and_confirm(shop, 501, tokens[0])
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.only_order(501)).status is OrderStatus.PAID
    other = shop.customer(502, "Otieno")
    await shop.type(other, f"/start {tokens[1]}")
    assert shop.last(other.chat_id).text.startswith("Mama Mboga asks KES 500 for bread.")


async def test_a_request_paid_short_is_part_paid_and_the_rest_pays_it(shop: Shop) -> None:
    message, token = await make_request(shop, "/request 1000 school fees")
    await open_and_confirm(shop, 501, token, phone="0712345670")  # waits for its holder
    first = await shop.only_order(501)
    shop.sandbox.pay_by_paybill(first.id, 900)  # the payer pays KES 900
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(first.id)).status is OrderStatus.UNDERPAID
    request_id = message.button("Share")["switch_inline_query"]
    told = shop.last(STAFF).text
    assert told.startswith(f"🟡 Request {request_id} part-paid: KES 900 of KES 1,000 for school fees; KES 100 missing")
    await refresh_request_messages(shop.app)
    assert message.text.startswith(
        "🧾 Mama Mboga: 🟡 Part-paid: KES 900 of KES 1,000 for school fees; KES 100 missing."
    )
    merchant = shop.customer(STAFF, "Amina")
    await shop.type(merchant, "/requests")
    assert "🟡 Part-paid by" in shop.last(STAFF).text and "KES 100 missing" in shop.last(STAFF).text
    request = await shop.services.requests.get(request_id)
    assert request is not None and request.state is RequestState.PART_PAID and request.paid_amount == 900
    stranger = shop.customer(502, "Otieno")
    await shop.type(stranger, f"/start {token}")
    assert shop.last(stranger.chat_id).text.startswith("This payment request is part-paid: KES 100 is still missing.")

    customer = shop.customer(501)
    await shop.send(customer.press(shop.last(customer.chat_id), "Pay the rest"))
    assert "enter your M-Pesa PIN to pay KES 100." in shop.last(customer.chat_id).text
    rest = (await shop.services.store.latest_chat_orders(customer.chat_id, 1))[0]
    assert rest.amount == 100 and rest.pay_request_id == request_id
    shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(rest.id)).status is OrderStatus.PAID
    assert shop.last(STAFF).text.startswith(f"✅ Request {request_id} paid: KES 1,000 for school fees")
    await refresh_request_messages(shop.app)
    assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 1,000 for school fees.")
    request = await shop.services.requests.get(request_id)
    assert request is not None and request.state is RequestState.PAID and request.paid_amount == 1000


async def test_a_request_paid_over_is_paid_with_the_excess_named(shop: Shop) -> None:
    message, token = await make_request(shop, "/request 1000 school fees")
    await open_and_confirm(shop, 501, token, phone="0712345670")
    shop.sandbox.pay_by_paybill((await shop.only_order(501)).id, 1100)
    shop.clock.advance(5)
    await shop.sweep()
    request_id = message.button("Share")["switch_inline_query"]
    assert shop.last(STAFF).text.startswith(
        f"✅ Request {request_id} paid: KES 1,000 for school fees; KES 100 more than asked"
    )
    await refresh_request_messages(shop.app)
    assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 1,000 for school fees; KES 100 more than asked.")


async def test_a_request_made_in_a_group_and_paid_elsewhere_keeps_the_payer_out_of_the_group(shop: Shop) -> None:
    group = -100888
    cashier = shop.customer(STAFF, "Amina", chat_id=group)
    await shop.type(cashier, "/request 500 2 loaves")
    message = shop.last(group)
    assert "who paid, I'll tell you in our private chat" in message.text
    found = LINK.search(message.text)
    assert found is not None
    await open_and_confirm(shop, 501, found.group(1))  # paid in the customer's private chat
    shop.clock.advance(5)
    await shop.sweep()
    await refresh_request_messages(shop.app)
    order = await shop.only_order(501)
    assert message.text.startswith("🧾 Mama Mboga: ✅ Paid: KES 500 for 2 loaves.")
    told = shop.last(STAFF).text  # the cashier, privately
    assert told.startswith("✅ Request R") and order.receipt_code is not None and order.receipt_code in told

    await shop.type(cashier, "/requests")
    assert shop.last(group).text.startswith("I've sent that to you in our private chat")
    assert "✅ Paid by" in shop.last(STAFF).text and "07** ***677" in shop.last(STAFF).text
    assert order.payer_name is not None
    for text in shop.texts(group):
        assert order.payer_name not in text and "***677" not in text and order.receipt_code not in text


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_requests_typed_in_a_group_by_a_cashier_who_never_started_the_bot_says_how(shop: Shop) -> None:
    group = -100888
    cashier = shop.customer(STAFF, "Amina", chat_id=group)
    shop.telegram.blocked_chats.add(STAFF)
    await shop.type(cashier, "/requests")
    assert "@pesabot" in shop.last(group).text and "Payment requests" not in shop.last(group).text
