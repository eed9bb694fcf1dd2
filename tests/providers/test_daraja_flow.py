"""A shop on Daraja (M-Pesa Express), driven through Telegram as a customer drives it: the same
conversation and outcomes as with iPay, Daraja's own token, query and callbacks underneath."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from bot.config import Settings
from bot.domain import Order, OrderStatus, RefundState
from bot.providers.daraja import DarajaSession
from bot.refunds.service import RESULT_WAIT
from bot.sandbox.daraja import DarajaSandbox, StkRequest
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.web import build_web_app
from tests.api.test_web import API_KEY, _auth
from tests.conftest import (
    DARAJA_CALLBACK,
    MERCHANT_CHAT,
    ManualClock,
    Restarts,
    Shop,
    ShopWith,
    readable,
    start_shop,
    stop_shop,
    with_settings,
)
from tests.postgres_server import PostgresServer
from tests.store.test_instances import WEBHOOK

ADMIN = 9001


@pytest.fixture
def provider() -> str:
    return "daraja"


def daraja_of(shop: Shop) -> DarajaSandbox:
    assert shop.daraja is not None
    return shop.daraja


def stk_of(shop: Shop, order_id: str) -> StkRequest:
    stk = daraja_of(shop).by_account(order_id)
    assert stk is not None, f"no STK push was made for this order: {daraja_of(shop).calls} {shop.texts(501)}"
    return stk


async def test_a_paid_payment_with_its_receipt_from_the_confirmed_callback(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, amount="1500")
    stk = stk_of(shop, order.id)
    assert (stk.amount, stk.phone, stk.account) == (1500, "254712345678", order.id)
    assert stk.callback_url.startswith(DARAJA_CALLBACK + f"/{order.id}/")
    summary = shop.telegram.bot_messages(customer.chat_id)[-1]
    assert summary.text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 1,500")
    assert summary.button_labels == ["✖️ Cancel this payment"]  # no Pay Bill way round: C2B is not registered

    shop.clock.advance(3)  # the payer enters the PIN; Daraja calls back
    assert await daraja_of(shop).deliver_callbacks() == 1
    await shop.settle()
    assert daraja_of(shop).callback_replies == [(stk.checkout_id, 200)]
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.paid_amount == 1500
    assert paid.receipt_code == stk.receipt  # taken from the callback the query confirmed
    receipt = shop.last(customer.chat_id).text
    assert receipt.startswith(f"{stk.receipt} Confirmed. KES 1,500 paid to Mama Mboga from 0712 345 678")
    assert shop.last(MERCHANT_CHAT).text.startswith(f"{stk.receipt} · PAID · KES 1,500 · M-Pesa")


async def test_no_callback_the_query_finds_it_and_the_payer_is_told_without_a_receipt(shop: Shop) -> None:
    daraja_of(shop).auto_callbacks = False  # the callback never comes
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.paid_amount == 500
    assert shop.last(customer.chat_id).text.startswith("Confirmed. KES 500 paid to Mama Mboga from 0712 345 678")
    assert shop.last(MERCHANT_CHAT).text.startswith("PAID · KES 500 · M-Pesa")


async def test_a_callback_after_the_query_confirmed_the_payment_brings_its_receipt(shop: Shop) -> None:
    """Paid without a receipt (the query carries none); the callback that comes later names it,
    and the order keeps it once, without the payment being recorded or announced again."""
    daraja, customer = daraja_of(shop), shop.customer()
    daraja.auto_callbacks = False
    order = await shop.pay(customer)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).receipt_code in (None, "")
    told = len(shop.texts(customer.chat_id))
    assert await daraja.deliver_callbacks() == 1
    paid = await shop.order(order.id)
    assert paid.receipt_code == stk_of(shop, order.id).receipt and paid.paid_amount == 500
    assert daraja.callback_replies[-1][1] == 200
    await shop.sweep()
    assert len(shop.texts(customer.chat_id)) == told  # the payer was told once, when it was paid


async def test_pending_then_paid(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")  # the holder decides when to answer
    shop.clock.advance(5)
    await shop.sweep()  # Daraja answers HTTP 500 "being processed": pending, never failed
    assert (await shop.order(order.id)).status is OrderStatus.PENDING
    assert daraja_of(shop).answer("254712345670", approve=True)
    shop.clock.advance(10)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID


@pytest.mark.parametrize(
    ("phone", "status", "words"),
    [
        ("0712345671", OrderStatus.CANCELLED, "cancel"),
        ("0712345672", OrderStatus.FAILED, "a wrong PIN was entered. Nothing was charged."),
        ("0712345673", OrderStatus.FAILED, "Nothing was charged."),
    ],
)
async def test_the_payer_s_no_is_told_as_with_ipay(shop: Shop, phone: str, status: OrderStatus, words: str) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone=phone)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is status
    assert words in shop.last(customer.chat_id).text


async def test_every_outcome_is_called_back_and_the_receipt_comes_with_it(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.receipt_code == stk_of(shop, order.id).receipt != ""


async def test_a_token_that_expires_mid_flow_is_renewed(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer)
    daraja_of(shop).expire_tokens()  # the cached token is refused: 401 404.001.03
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert daraja_of(shop).calls["/oauth/v1/generate"] == 2


async def test_a_callback_is_not_believed_without_the_query(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")  # the payer has not answered
    stk = stk_of(shop, order.id)
    forged = {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": stk.merchant_id,
                "CheckoutRequestID": stk.checkout_id,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {
                    "Item": [{"Name": "Amount", "Value": 500}, {"Name": "MpesaReceiptNumber", "Value": "FORGED1234"}]
                },
            }
        }
    }
    client = daraja_of(shop).callback_client
    assert client is not None
    reply = await client.post(stk.callback_url, json=forged)  # the right path, a false "paid"
    assert reply.status_code == 200 and reply.json()["status"] == "pending"
    assert (await shop.order(order.id)).status is OrderStatus.PENDING
    wrong_path = await client.post(f"{DARAJA_CALLBACK}/{order.id}/{'0' * 32}", json=forged)
    assert wrong_path.status_code == 400
    assert daraja_of(shop).answer("254712345670", approve=True)
    shop.clock.advance(15)
    await daraja_of(shop).deliver_callbacks()  # too soon after the forged one to look up again...
    await shop.sweep()  # ...so the next lookup confirms it, with the true callback's receipt
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.receipt_code == stk.receipt != "FORGED1234"


async def test_a_push_whose_answer_is_lost_is_watched_not_failed(shop: Shop) -> None:
    customer = shop.customer()
    daraja_of(shop).timeouts_next["/mpesa/stkpush/v1/processrequest"] = 1
    order = await shop.pay(customer)
    stored = await shop.order(order.id)
    assert stored.status is OrderStatus.PENDING  # the prompt may be on the phone: never "nothing charged"
    assert DarajaSession.decode(stored.session_ref) is not None
    shop.clock.advance(3)
    await daraja_of(shop).deliver_callbacks()  # its callback names the checkout: the query confirms
    await shop.settle()
    assert (await shop.order(order.id)).status is OrderStatus.PAID


async def test_the_callback_route_reads_only_posts(shop: Shop) -> None:
    client = daraja_of(shop).callback_client
    assert client is not None
    reply = await client.get(f"{DARAJA_CALLBACK}/ABC/def")
    assert reply.status_code == 405
    assert isinstance(reply, httpx.Response)


async def test_an_airtel_number_is_answered_clearly_and_no_prompt_goes_out(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/pay", "0733 345 677")
    said = shop.last(customer.chat_id).text
    assert "This shop takes M-Pesa only, and 07** ***677 is an Airtel Money number. No prompt was sent." in said
    assert "send another number" in said
    await shop.type(customer, "0712 345 677", "500")
    summary = shop.last(customer.chat_id)
    assert summary.button_labels == ["✅ Confirm", "✖️ Cancel"]  # no "Use Airtel Money instead"
    assert daraja_of(shop).requests == {}


async def test_the_command_menu_offers_m_pesa_only(shop: Shop) -> None:
    menus = shop.telegram.localized_commands
    assert {"command": "pay", "description": "Pay with M-Pesa"} in menus[(None, None)]
    assert {"command": "pay", "description": "Lipa na M-Pesa"} in menus[(None, "sw")]


async def test_a_restart_while_the_payer_answers_finds_the_payment_with_its_receipt(bot: Restarts) -> None:
    shop = bot.shop
    assert shop is not None
    customer = shop.customer()
    order = await shop.pay(customer)
    shop = await bot.restart(downtime=5)  # the payer pays while the bot is down; a new token is needed
    await shop.sweep()  # Daraja's callback comes (its receipt kept), then the query confirms it
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.receipt_code == stk_of(shop, order.id).receipt
    assert daraja_of(shop).calls["/oauth/v1/generate"] == 2


async def test_the_rest_api_takes_m_pesa_and_refuses_airtel_on_daraja(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, daraja: DarajaSandbox
) -> None:
    shop = await start_shop(
        with_settings(settings, api_keys=(API_KEY,), port=0), telegram, sandbox, clock, daraja=daraja
    )
    try:
        web = build_web_app(shop.services, shop.app, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://bot") as client:
            airtel = await client.post("/api/payments", json={"phone": "0733345677", "amount": 100}, headers=_auth())
            assert airtel.status_code == 422 and airtel.json()["error"]["code"] == "network_not_taken"
            created = await client.post("/api/payments", json={"phone": "0712345677", "amount": 100}, headers=_auth())
            assert created.status_code == 201
            await shop.settle()
            shop.clock.advance(5)
            await shop.sweep()
            order_id = created.json()["order_id"]
            reply = await client.get(f"/api/payments/{order_id}", headers=_auth())
            assert reply.json()["status"] == "paid"
        assert len(daraja.requests) == 1
    finally:
        await stop_shop(shop)


# -- the provider's name in what the bot says ------------------------------------------------


async def test_a_push_without_a_clear_answer_names_m_pesa_not_ipay(shop: Shop) -> None:
    daraja_of(shop).timeouts_next["/mpesa/stkpush/v1/processrequest"] = 1
    customer = shop.customer()
    await shop.pay(customer, phone="0712345678")
    told = shop.last(customer.chat_id).text
    assert told.startswith(
        "⏳ M-PESA did not confirm that the prompt reached 0712 345 678. If your phone shows it, "
        "enter your PIN to pay KES 500; I'll tell you here when it is paid."
    )
    assert "iPay" not in "".join(shop.texts(customer.chat_id) + shop.texts(MERCHANT_CHAT))


async def test_a_kiswahili_payer_hears_m_pesa_named_too(shop: Shop) -> None:
    daraja_of(shop).timeouts_next["/mpesa/stkpush/v1/processrequest"] = 1
    customer = shop.customer(language_code="sw-KE")
    await shop.send(customer.text("/start"))
    assert shop.last(customer.chat_id).text.startswith("Ninapokea malipo ya M-Pesa kwa niaba ya Mama Mboga.")
    await shop.pay(customer, phone="0712345678")
    assert shop.last(customer.chat_id).text.startswith(
        "⏳ M-PESA haikuthibitisha kwamba ujumbe wa PIN umefika kwa 0712 345 678."
    )


async def test_reconcile_and_the_close_name_m_pesa(shop_with: ShopWith) -> None:
    shop = await shop_with(admin_ids=frozenset({ADMIN}))
    await shop.pay(shop.customer(), phone="0712345678")
    shop.clock.advance(5)
    await shop.sweep()
    admin = shop.customer(ADMIN, "Owner")
    await shop.type(admin, "/reconcile today")
    assert shop.texts(ADMIN)[-2:] == [
        "Looking up the orders of Mon 24 Nov at M-PESA…",
        "Reconciled Mon 24 Nov with M-PESA: 1 order looked up, 0 differ, 0 fixed.\nEvery order agrees with M-PESA.",
    ]
    await shop.type(admin, "/close")
    offer = shop.last(ADMIN)
    assert offer.text.startswith("🔒 Close the day? Check against M-PESA first: money M-PESA has and the bot")
    assert offer.button_labels == ["🔎 Check against M-PESA", "🔒 Close the day"]


async def test_help_says_m_pesa_only_and_names_no_aggregator(shop: Shop) -> None:
    customer = shop.customer()
    await shop.type(customer, "/help")
    said = shop.last(customer.chat_id).text
    assert said.startswith("I take M-Pesa payments for Mama Mboga.")
    assert "iPay" not in said and "Airtel" not in said


# -- several instances on one database -------------------------------------------------------


async def test_the_receipt_another_instance_s_callback_brought_is_used_by_the_instance_that_confirms(
    settings: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
    daraja: DarajaSandbox,
    postgres_server: PostgresServer,
) -> None:
    shared = with_settings(settings, database_url=postgres_server.new_database_sync(), **WEBHOOK)
    one = await start_shop(shared, telegram, sandbox, clock, daraja=daraja)
    two = await start_shop(shared, telegram, sandbox, clock, daraja=daraja)  # Daraja calls back to this one
    try:
        daraja.auto_callbacks = False
        customer = one.customer()
        order = await one.pay(customer)
        stk = stk_of(one, order.id)
        clock.advance(5)
        daraja.timeouts_next["/mpesa/stkpushquery/v1/query"] = 1  # the second instance's own query gets no answer
        assert await daraja.deliver_callbacks() == 1
        await two.settle()
        assert (await one.order(order.id)).status is OrderStatus.PENDING
        clock.advance(6)  # the errored lookup's retry is due
        await one.sweep()  # the first instance's query confirms it, with the receipt the callback brought
        paid = await one.order(order.id)
        assert paid.status is OrderStatus.PAID and paid.receipt_code == stk.receipt != ""
        assert one.last(customer.chat_id).text.startswith(f"{stk.receipt} Confirmed. KES 500 paid to Mama Mboga")
    finally:
        await stop_shop(two)
        await stop_shop(one)


# -- payments made by hand (C2B) --------------------------------------------------------------


@pytest.fixture
async def c2b_shop(shop_with: ShopWith, settings: Settings) -> Shop:
    """A Paybill shop on Daraja that registers its C2B URLs at start-up (DARAJA_REGISTER_C2B=1)."""
    assert settings.daraja is not None
    return await shop_with(daraja=dataclasses.replace(settings.daraja, register_c2b=True), admin_ids=frozenset({ADMIN}))


async def pay_by_hand_offered(shop: Shop, phone: str = "0712345670") -> Order:
    """A payer whose prompt has not come reads the Pay Bill way round for the order."""
    customer = shop.customer()
    order = await shop.pay(customer, phone=phone)  # the holder has not answered the prompt
    summary = shop.last(customer.chat_id)
    assert summary.button_labels == ["✖️ Cancel this payment", "📋 No prompt on your phone?"]
    await shop.send(customer.press(summary, "📋"))
    steps = shop.last(customer.chat_id).text
    assert f"M-PESA → Lipa na M-PESA → Pay Bill → Business no. 174379 → Account {order.id} → KES 500" in steps
    return order


async def test_c2b_urls_are_registered_at_start_up_under_the_unguessable_path(c2b_shop: Shop) -> None:
    urls = daraja_of(c2b_shop).c2b_urls
    assert urls["ConfirmationURL"].startswith(DARAJA_CALLBACK + "/c2b/")
    assert urls["ConfirmationURL"].endswith("/confirmation") and urls["ValidationURL"].endswith("/validation")
    token = urls["ConfirmationURL"].split("/")[-2]
    assert len(token) == 32
    client = daraja_of(c2b_shop).callback_client
    assert client is not None
    body = daraja_of(c2b_shop).confirmation_body("ANY", 100)
    forged = await client.post(f"{DARAJA_CALLBACK}/c2b/{'0' * 32}/confirmation", json=body)
    assert forged.status_code == 400  # a confirmation on a path no one was given is not read


async def test_a_payment_by_hand_naming_the_order_pays_it(c2b_shop: Shop) -> None:
    shop = c2b_shop
    order = await pay_by_hand_offered(shop)
    sent = await daraja_of(shop).pay_by_hand(order.id.lower(), 500)  # typed in small letters: still the order
    await shop.settle()
    receipt = str(sent["TransID"])
    assert daraja_of(shop).confirmation_replies == [(receipt, 200)]
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID and paid.paid_amount == 500 and paid.receipt_code == receipt
    assert shop.last(501).text.startswith(f"{receipt} Confirmed. KES 500 paid to Mama Mboga from 0712 345 670")
    assert shop.last(MERCHANT_CHAT).text.startswith(f"{receipt} · PAID · KES 500 · M-Pesa")


async def test_a_short_payment_by_hand_is_underpaid_as_with_ipay(c2b_shop: Shop) -> None:
    shop = c2b_shop
    order = await pay_by_hand_offered(shop)
    await daraja_of(shop).pay_by_hand(order.id, 300)
    await shop.settle()
    short = await shop.order(order.id)
    assert short.status is OrderStatus.UNDERPAID and short.paid_amount == 300
    assert "KES 300" in shop.last(501).text and "KES 200" in shop.last(501).text  # paid, and what is left


async def test_a_payment_by_hand_naming_no_order_is_shown_to_the_shop(c2b_shop: Shop) -> None:
    shop = c2b_shop
    sent = await daraja_of(shop).pay_by_hand("TABLE 4", 700)
    await shop.settle()
    receipt = str(sent["TransID"])
    assert daraja_of(shop).confirmation_replies == [(receipt, 200)]  # accepted: the money is the shop's
    line = shop.last(MERCHANT_CHAT).text
    assert line.startswith(f"💰 {receipt} · KES 700 paid by Pay Bill by WANJIRU at ")
    assert "account TABLE4: it names no order waiting for payment, so no order was marked paid." in line
    admin = shop.customer(ADMIN, "Owner")
    await shop.type(admin, "/summary today")
    report = shop.last(ADMIN).text
    assert "💰 Paid by Pay Bill to no order: 1 payment, KES 700. Match it by hand:" in report
    assert f"{receipt} · KES 700 · account TABLE4" in report


async def test_a_repeated_confirmation_changes_nothing(c2b_shop: Shop) -> None:
    shop = c2b_shop
    order = await pay_by_hand_offered(shop)
    stand_in = daraja_of(shop)
    paying = stand_in.confirmation_body(order.id, 500)
    stray = stand_in.confirmation_body("NOSUCHORDER1", 250)
    for body in (paying, stray, paying, stray):  # Daraja sends each again when unsure it arrived
        assert await stand_in.send_confirmation(body) == 200
        await shop.settle()
    assert (await shop.order(order.id)).receipt_code == paying["TransID"]
    assert sum(text.startswith(f"{paying['TransID']} Confirmed.") for text in shop.texts(501)) == 1
    merchant = shop.texts(MERCHANT_CHAT)
    assert sum(text.startswith(f"{paying['TransID']} · PAID") for text in merchant) == 1
    assert sum(text.startswith(f"💰 {stray['TransID']} ·") for text in merchant) == 1


# -- refunds: reversals, their result later ----------------------------------------------------


@pytest.fixture
async def reversal_shop(shop_with: ShopWith, settings: Settings) -> Shop:
    """A Daraja shop with an API operator for reversals (DARAJA_INITIATOR, DARAJA_SECURITY_CREDENTIAL)."""
    assert settings.daraja is not None
    operator = dataclasses.replace(settings.daraja, initiator="shopapi", security_credential="Q2lwaGVyVGV4dA==")
    return await shop_with(daraja=operator, admin_ids=frozenset({ADMIN}))


async def paid_and_refund_approved(shop: Shop) -> Order:
    """A payment made, then an admin's /refund and its confirm button: the reversal is sent."""
    order = await shop.pay(shop.customer())
    shop.clock.advance(5)
    await shop.sweep()
    paid = await shop.order(order.id)
    assert paid.status is OrderStatus.PAID
    admin = shop.customer(ADMIN, "Owner")
    await shop.send(admin.text(f"/refund {readable(order.id)}"))
    card = shop.last(ADMIN)
    assert "M-PESA refunds payments in full only" in card.text
    await shop.send(admin.press(card, "Refund KES"))
    await refunds_settled(shop)
    return paid


async def refunds_settled(shop: Shop) -> None:
    assert shop.services.refunds is not None
    await shop.services.refunds.wait_idle()
    shop.services.notifier.kick()
    await shop.settle()


async def test_a_reversal_is_accepted_then_its_result_finishes_the_refund(reversal_shop: Shop) -> None:
    shop = reversal_shop
    order = await paid_and_refund_approved(shop)
    (reversal,) = daraja_of(shop).reversals
    assert (reversal.receipt, reversal.amount, reversal.initiator) == (order.receipt_code, 500, "shopapi")
    assert reversal.result_url.startswith(f"{DARAJA_CALLBACK}/reversal/{order.id}/")
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.state is RefundState.SENDING  # accepted: nothing known to have moved
    assert not any("being refunded" in text for text in shop.texts(501))
    assert "Sending the refund to M-PESA" in shop.last(ADMIN).text

    assert await daraja_of(shop).deliver_reversal_results() == 1
    await refunds_settled(shop)
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.state is RefundState.DONE
    assert shop.last(ADMIN).text.startswith("✅ Refund done: KES 500")
    assert shop.last(501).text == (
        f"KES 500 for order {readable(order.id)} is being refunded to 07** ***678. M-PESA will send you an SMS."
    )
    assert shop.last(MERCHANT_CHAT).text.startswith(f"↩️ Refunded KES 500 for order {readable(order.id)}")
    body = {"Result": {"ResultCode": 0, "ResultDesc": "again", "ConversationID": reversal.conversation_id}}
    client = daraja_of(shop).callback_client
    assert client is not None
    told = len(shop.texts(ADMIN))
    assert (await client.post(reversal.result_url, json=body)).status_code == 200  # a repeat changes nothing
    await refunds_settled(shop)
    assert len(shop.texts(ADMIN)) == told
    forged = await client.post(f"{DARAJA_CALLBACK}/reversal/{order.id}/{'0' * 32}", json=body)
    assert forged.status_code == 400


async def test_a_failed_reversal_is_told_as_refused_and_the_payer_hears_nothing(reversal_shop: Shop) -> None:
    shop = reversal_shop
    order = await paid_and_refund_approved(shop)
    daraja_of(shop).reversal_result_code = "R000002"
    await daraja_of(shop).deliver_reversal_results()
    await refunds_settled(shop)
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.state is RefundState.REFUSED
    assert shop.last(ADMIN).text.startswith(f"❌ M-PESA did not refund order {readable(order.id)} (KES 500): ")
    assert "R000002: The OriginalTransactionID is invalid" in shop.last(ADMIN).text
    assert not any("being refunded" in text for text in shop.texts(501))


async def test_a_reversal_whose_result_never_comes_is_not_confirmed_never_done(reversal_shop: Shop) -> None:
    shop = reversal_shop
    order = await paid_and_refund_approved(shop)
    refunds = shop.services.refunds
    assert refunds is not None
    shop.clock.advance(60)
    assert await refunds.sweep_overdue() == 0  # the result may still come
    shop.clock.advance(RESULT_WAIT)
    assert await refunds.sweep_overdue() == 1
    await refunds_settled(shop)
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.state is RefundState.UNKNOWN
    said = shop.last(ADMIN).text
    assert said.startswith(f"⚠️ Refund outcome unknown for order {readable(order.id)} (KES 500): ")
    assert "M-PESA accepted the refund, but its result did not come: it is not confirmed." in said
    assert not any("being refunded" in text or "Refund done" in text for text in shop.texts(501) + shop.texts(ADMIN))
    await daraja_of(shop).deliver_reversal_results()  # it comes after all: what it says stands
    await refunds_settled(shop)
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.state is RefundState.DONE


async def test_refund_without_the_operator_s_settings_says_what_it_needs(shop_with: ShopWith) -> None:
    shop = await shop_with(admin_ids=frozenset({ADMIN}))
    order = await shop.pay(shop.customer())
    shop.clock.advance(5)
    await shop.sweep()
    admin = shop.customer(ADMIN, "Owner")
    await shop.send(admin.text(f"/refund {readable(order.id)}"))
    assert shop.last(ADMIN).text.startswith(
        "Refunds through M-PESA need DARAJA_INITIATOR and DARAJA_SECURITY_CREDENTIAL (from the M-Pesa portal)"
    )
    assert daraja_of(shop).reversals == []
