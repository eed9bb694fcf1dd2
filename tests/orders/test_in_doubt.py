"""What live iPay may answer that no published sample shows, each through the whole bot: a
Telegram update in, iPay (the sandbox, taught the misbehaviour) over HTTP, messages out.

An order whose deadline passes without an answer the bot can trust is in doubt: its payer and
the shop hear of it once, it is looked up until iPay answers, and that answer finishes it.
"""

from __future__ import annotations

import logging
import re

import pytest

from bot.domain import OrderStatus
from bot.i18n import ENGLISH, KISWAHILI, speaking
from bot.orders import notices
from bot.orders import sentences as order_sentences
from bot.orders.service import DOUBT_MAX_SPACING
from bot.providers.ipay import IpayMalformedReply
from bot.sandbox.ipay import Fault, Quirk
from bot.sandbox.telegram import TelegramUser
from tests.conftest import MERCHANT_CHAT, Restarts, Shop, ShopWith, readable

DEADLINE = 600.0  # PAYMENT_TIMEOUT_SECONDS in the test settings
HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
NEVER_SAID_IN_DOUBT = ("not paid", "Nothing was charged", "nothing was charged", "expired", "did not go through")


async def _sweep_past_the_deadline(shop: Shop, order_id: str) -> None:
    """Look the order up every minute until its deadline has passed (and once after it)."""
    created = (await shop.order(order_id)).created_at
    while shop.clock.now < created + DEADLINE + 1:
        shop.clock.advance(60)
        await shop.sweep()


async def _in_doubt(shop: Shop, customer: TelegramUser, quirk: Quirk | None) -> str:
    """A payment (the phone pays in full) whose lookups never give a trusted answer until the
    deadline has passed; its order id."""
    if quirk is not None:
        shop.sandbox.quirks.add(quirk)
    order = await shop.pay(customer, phone="0712345678")
    await _sweep_past_the_deadline(shop, order.id)
    return order.id


@pytest.mark.parametrize(
    ("quirk", "why"),
    [
        (Quirk.SEARCH_UNKNOWN_SHAPE, "iPay's answers could not be read"),
        (Quirk.SEARCH_BAD_HASH, "iPay's answer did not verify"),
        (Quirk.SEARCH_OTHER_ORDER, "iPay's answer did not verify"),
        (Quirk.SEARCH_ZERO_AMOUNT, "iPay's answers could not be read"),
    ],
)
async def test_an_order_without_a_trusted_answer_is_in_doubt_told_once_then_finished_by_the_answer(
    shop: Shop, quirk: Quirk, why: str
) -> None:
    customer = shop.customer()
    order_id = await _in_doubt(shop, customer, quirk)
    doubtful = await shop.order(order_id)
    assert doubtful.status is OrderStatus.PENDING and doubtful.in_doubt
    assert doubtful.receipt_code is None and doubtful.paid_amount is None  # nothing recorded from it
    told = shop.last(customer.chat_id).text
    assert told == (
        f"⏳ I can't confirm the payment for order {readable(order_id)} (KES 500) yet: iPay has not given me an "
        "answer I can rely on. If you entered your PIN, your money is not lost. I keep checking and will tell "
        "you here as soon as I know. Please don't pay this order again meanwhile."
    )
    assert not any(words in told for words in NEVER_SAID_IN_DOUBT)
    merchant = [t for t in shop.texts(MERCHANT_CHAT) if "IN DOUBT" in t]
    assert len(merchant) == 1
    assert merchant[0].startswith(f"❓ IN DOUBT · KES 500 · M-Pesa · 07** ***678 · order {readable(order_id)} · {why}")
    # The "check your phone" message no longer offers to cancel an order that may be paid.
    prompt = shop.telegram.bot_messages(customer.chat_id)[-2]
    assert "in doubt: not confirmed yet" in prompt.text and prompt.buttons == []

    # Hours of lookups without an answer: looked up at least every 10 minutes, nothing said again.
    said = (len(shop.texts(customer.chat_id)), len(shop.texts(MERCHANT_CHAT)))
    for _ in range(12):
        shop.clock.advance(DOUBT_MAX_SPACING * 1.2)
        before = shop.sandbox.stats.calls.get("/transaction/search", 0)
        await shop.sweep()
        assert shop.sandbox.stats.calls["/transaction/search"] == before + 1
    still = await shop.order(order_id)
    assert still.in_doubt and still.next_poll_at is not None
    assert still.next_poll_at - shop.clock.now <= DOUBT_MAX_SPACING * 1.2
    assert (len(shop.texts(customer.chat_id)), len(shop.texts(MERCHANT_CHAT))) == said

    # iPay answers properly at last: the order is finished the usual way, and told.
    shop.sandbox.quirks.clear()
    shop.clock.advance(DOUBT_MAX_SPACING * 1.2)
    await shop.sweep()
    paid = await shop.order(order_id)
    assert paid.status is OrderStatus.PAID and not paid.in_doubt
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text
    assert shop.last(MERCHANT_CHAT).text.startswith(f"{paid.receipt_code} · PAID · KES 500")


async def test_an_order_in_doubt_that_iPay_then_says_was_not_paid_expires_and_is_told(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")  # the holder never answers
    shop.sandbox.prompt_lifetime = 10_000
    shop.sandbox.quirks.add(Quirk.SEARCH_UNKNOWN_SHAPE)
    await _sweep_past_the_deadline(shop, order.id)
    assert (await shop.order(order.id)).in_doubt
    shop.sandbox.quirks.clear()
    shop.clock.advance(DOUBT_MAX_SPACING * 1.2)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.EXPIRED
    assert shop.last(customer.chat_id).text.startswith("⌛ No payment arrived in time")


async def test_lookups_that_fail_before_the_deadline_say_nothing_yet(shop: Shop) -> None:
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    told = len(shop.texts(customer.chat_id))
    shop.sandbox.faults.fail_next("/transaction/search", Fault.SERVER_ERROR, times=100)
    created = order.created_at
    while shop.clock.now < created + DEADLINE - 61:
        shop.clock.advance(60)
        await shop.sweep()
    assert not (await shop.order(order.id)).in_doubt and len(shop.texts(customer.chat_id)) == told
    await _sweep_past_the_deadline(shop, order.id)
    assert (await shop.order(order.id)).in_doubt
    assert "iPay could not be reached since the deadline" in shop.last(MERCHANT_CHAT).text


async def test_orders_in_doubt_are_marked_in_lists_counted_and_named_in_the_daily_summary(shop: Shop) -> None:
    customer = shop.customer()
    order_id = await _in_doubt(shop, customer, Quirk.SEARCH_BAD_HASH)
    await shop.type(customer, "/orders")
    assert "❓ in doubt: not confirmed yet" in shop.last(customer.chat_id).text
    await shop.type(customer, f"/status {order_id}")
    assert shop.last(customer.chat_id).text.startswith(f"Order {readable(order_id)}: ❓ in doubt: not confirmed yet")
    assert await shop.services.store.count_in_doubt() == 1
    from bot.app import daily_summary_job

    class _Context:
        application = shop.app
        bot_data = shop.app.bot_data
        job = None

    await daily_summary_job(_Context())  # type: ignore[arg-type]
    await shop.settle()
    assert shop.last(MERCHANT_CHAT).text.endswith(
        f"❓ 1 order in doubt (iPay has not confirmed it either way yet): {readable(order_id)} (KES 500)"
    )


async def test_a_restart_does_not_announce_an_order_in_doubt_again(bot: Restarts) -> None:
    assert bot.shop is not None
    customer = bot.shop.customer()
    order_id = await _in_doubt(bot.shop, customer, Quirk.SEARCH_UNKNOWN_SHAPE)
    said = (len(bot.shop.texts(customer.chat_id)), len(bot.shop.texts(MERCHANT_CHAT)))
    shop = await bot.restart(downtime=30)
    for _ in range(3):
        shop.clock.advance(DOUBT_MAX_SPACING * 1.2)
        await shop.sweep()
    assert (len(shop.texts(customer.chat_id)), len(shop.texts(MERCHANT_CHAT))) == said
    assert (await shop.order(order_id)).in_doubt


@pytest.mark.parametrize("provider", ["ipay", "daraja"])
async def test_two_lookups_racing_past_the_deadline_announce_once(shop: Shop) -> None:
    """What two instances do when both read the order before either wrote: the conditional
    update lets one of them put it in doubt; the other's notices are never queued."""
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    shop.clock.advance(DEADLINE + 1)
    snapshot = await shop.order(order.id)
    payments = shop.services.payments
    for _ in range(2):
        await payments.settle(snapshot, IpayMalformedReply("unknown shape"))
    shop.services.notifier.kick()
    await shop.settle()
    assert sum("can't confirm" in t for t in shop.texts(customer.chat_id)) == 1
    assert sum("IN DOUBT" in t for t in shop.texts(MERCHANT_CHAT)) == 1


async def test_an_unverified_paid_reply_is_logged_at_error_once_per_order(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    shop.sandbox.quirks.add(Quirk.SEARCH_BAD_HASH)
    order = await shop.pay(shop.customer(), phone="0712345678")
    for _ in range(4):
        shop.clock.advance(60)
        await shop.sweep()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"order {order.id}: /transaction/search reply hash does not verify; nothing recorded from it"]
    assert (await shop.order(order.id)).receipt_code is None


# -- the push answered 500 ------------------------------------------------------------------


async def test_a_push_answered_500_is_watched_and_money_paid_after_it_is_told(shop: Shop) -> None:
    shop.sandbox.quirks.add(Quirk.PUSH_500)  # iPay says 500, but the prompt did reach the phone
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345678")
    told = shop.last(customer.chat_id)
    assert told.text.startswith("⏳ iPay did not confirm that the prompt reached 0712 345 678.")
    assert "No prompt on your phone?" in told.text
    assert any("No prompt on your phone?" in label for row in told.buttons for label, _ in row)
    pending = await shop.order(order.id)
    assert pending.status is OrderStatus.PENDING and pending.next_poll_at is not None
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


async def test_a_push_answered_500_is_paid_by_pay_bill_or_expires_at_its_deadline(shop: Shop) -> None:
    shop.sandbox.quirks.add(Quirk.PUSH_500)
    shop.sandbox.prompt_lifetime = 10_000
    customer = shop.customer()
    first = await shop.pay(customer, phone="0712345670")  # the holder never answers the prompt
    await shop.send(customer.press(shop.last(customer.chat_id), "No prompt on your phone?"))
    assert shop.last(customer.chat_id).text.startswith("No prompt on your phone? Pay the same order by hand:")
    shop.sandbox.pay_by_paybill(first.id)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(first.id)).status is OrderStatus.PAID

    other = shop.customer(user_id=502, name="Otieno")
    second = await shop.pay(other, phone="0712345680")
    await _sweep_past_the_deadline(shop, second.id)
    assert (await shop.order(second.id)).status is OrderStatus.EXPIRED  # nothing paid by the deadline


# -- /transact's refusals and faults ------------------------------------------------------


async def test_a_refusal_naming_the_expected_hash_shows_and_keeps_no_hash(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    shop.sandbox.quirks.add(Quirk.TRANSACT_HASH_ECHO)
    customer = shop.customer()
    order = await shop.pay(customer)
    failed = await shop.order(order.id)
    assert failed.status is OrderStatus.FAILED
    assert failed.last_error == "provider_refused:iPay:Hash ID mismatch, please use the correct hash [hash removed]"
    said = shop.texts(customer.chat_id) + shop.texts(MERCHANT_CHAT) + [r.getMessage() for r in caplog.records]
    assert "Hash ID mismatch" in shop.last(customer.chat_id).text
    assert not [text for text in said if HEX_RUN.search(text)]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault.SERVER_ERROR, "provider_refused:iPay:Internal Server Error"),  # iPay's own 500: a refusal
        (Fault.HTML, "provider_unreachable:iPay"),
        (Fault.RATE_LIMITED, "provider_unreachable:iPay"),
        (Fault.NOT_JSON, "provider_unreachable:iPay"),
        (Fault.TIMEOUT, "provider_unreachable:iPay"),
        (Fault.DISCONNECT, "provider_unreachable:iPay"),
    ],
)
async def test_what_an_order_becomes_when_transact_fails(shop: Shop, fault: Fault, reason: str) -> None:
    """No push was made, so nothing can be charged: failed and told, with the reason kept."""
    shop.sandbox.faults.fail_next("/transact", fault)
    customer = shop.customer()
    order = await shop.pay(customer)
    failed = await shop.order(order.id)
    assert (failed.status, failed.last_error, failed.next_poll_at) == (OrderStatus.FAILED, reason, None)
    assert shop.last(customer.chat_id).text.startswith("❌ The payment did not go through:")


async def test_a_refusal_names_ipay_to_the_payer_as_it_always_did(shop: Shop) -> None:
    shop.sandbox.faults.fail_next("/transact", Fault.SERVER_ERROR)
    customer = shop.customer()
    await shop.pay(customer)
    assert shop.last(customer.chat_id).text.startswith(
        "❌ The payment did not go through: iPay refused it (Internal Server Error)."
    )


def test_reasons_and_notices_kept_from_before_they_named_the_provider_still_say_ipay() -> None:
    """Orders and queued notices written before the provider's name was kept with them were all iPay's."""
    with speaking(ENGLISH):
        assert order_sentences.reason("ipay_refused:Invalid hash") == "iPay refused it (Invalid hash)."
        assert order_sentences.reason("ipay_unreachable").startswith("I couldn't reach iPay, so no prompt was sent")
        assert order_sentences.reason("provider_refused:M-PESA:Bad Request") == "M-PESA refused it (Bad Request)."
    with speaking(KISWAHILI):
        assert order_sentences.reason("ipay_refused:Invalid hash") == "iPay imekataa malipo haya (Invalid hash)."
    assert notices.provider_of({}) == notices.provider_of({"provider": ""}) == "iPay"
    assert notices.provider_of({"provider": "M-PESA"}) == "M-PESA"


# -- "transaction was timed out", and an order without an account --------------------------


async def test_a_prompt_timed_out_on_the_phone_is_not_taken_for_dead(shop: Shop) -> None:
    """iPay's "transaction was timed out" before the deadline: nothing says nothing was charged,
    no second prompt goes to the phone, and money paid by Pay Bill meanwhile is told."""
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345674")  # 4: the phone never answers the prompt
    shop.clock.advance(61)
    await shop.sweep()
    timed_out = await shop.order(order.id)
    assert timed_out.status is OrderStatus.EXPIRED and timed_out.next_poll_at is not None
    told = shop.last(customer.chat_id)
    assert told.text == (
        "⌛ The prompt timed out on the phone. If you paid anyway, I'll tell you here.\n"
        f"Order {readable(order.id)} (KES 500). You can still pay this same order by Pay Bill (tap the button). "
        "A new prompt can go to this phone once this order has ended."
    )
    assert [label for row in told.buttons for label, _ in row] == ["📋 No prompt on your phone?"]
    await shop.type(customer, "/pay", "0712345674")
    assert "is still waiting for an answer" in shop.last(customer.chat_id).text  # no second prompt yet
    assert shop.sandbox.stats.calls.get("/transact/push/mpesa") == 1
    shop.sandbox.pay_by_paybill(order.id)
    shop.clock.advance(60)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


@pytest.mark.parametrize(("provider", "name"), [("ipay", "iPay"), ("daraja", "M-PESA")])
async def test_an_order_without_an_account_offers_no_pay_bill_steps(shop: Shop, name: str) -> None:
    shop.sandbox.quirks.add(Quirk.EMPTY_ACCOUNT)
    customer = shop.customer()
    order = await shop.pay(customer, phone="0712345670")
    prompt = shop.last(customer.chat_id)
    assert prompt.text.startswith("📲 Check your phone")
    assert [label for row in prompt.buttons for label, _ in row] == ["✖️ Cancel this payment"]
    # A button from before (or typed data) still gets an answer that helps, never "Account ".
    await shop.send(customer.press_data(prompt, f"order:paybill:{order.id}"))
    answer = shop.telegram.callback_answers[-1]
    assert answer["text"] == (
        f"{name} gave this order no account number, so it cannot be paid by Pay Bill. If no prompt came, "
        "cancel this order and send /pay again once the phone is on, unlocked and has signal."
    )
    assert "Account" not in "".join(shop.texts(customer.chat_id))


async def test_a_push_without_a_clear_answer_and_no_account_says_so_without_pay_bill(shop: Shop) -> None:
    shop.sandbox.quirks.update({Quirk.PUSH_500, Quirk.EMPTY_ACCOUNT})
    customer = shop.customer()
    await shop.pay(customer, phone="0712345670")
    told = shop.last(customer.chat_id)
    assert told.text.startswith("⏳ iPay did not confirm that the prompt reached 0712 345 670.")
    assert "Pay Bill" not in told.text and "No prompt" not in str(told.buttons)


async def test_an_order_in_doubt_cannot_be_cancelled_by_a_button_from_before(shop: Shop) -> None:
    """Cancelling would stop the lookups soon after; an order that may be paid stays watched."""
    customer = shop.customer()
    order_id = await _in_doubt(shop, customer, Quirk.SEARCH_UNKNOWN_SHAPE)
    await shop.send(customer.press_data(shop.last(customer.chat_id), f"order:cancel:{order_id}"))
    assert shop.telegram.callback_answers[-1]["text"] == (
        "This payment is not confirmed yet, so it cannot be cancelled. I keep checking and will tell you here."
    )
    assert (await shop.order(order_id)).in_doubt


async def test_an_order_going_into_doubt_is_logged_and_told_at_once(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """The sweep itself sends the news (no later kick needed), and the log names the order and why."""
    customer = shop.customer()
    shop.sandbox.quirks.add(Quirk.SEARCH_BAD_HASH)
    order = await shop.pay(customer, phone="0712345678")
    shop.clock.advance(DEADLINE + 1)
    with caplog.at_level(logging.WARNING):
        await shop.services.poller.sweep()  # the sweep alone, without the test's own kick
        await shop.settle()
    assert (await shop.order(order.id)).in_doubt
    assert shop.last(customer.chat_id).text.startswith(f"⏳ I can't confirm the payment for order {readable(order.id)}")
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (f"order {order.id} is in doubt (unverified): its payer and the shop are told; still looking it up") in said


async def test_failed_lookups_are_spaced_a_minute_at_most_until_the_deadline_then_ten(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the deadline a lookup without an answer is tried again on the poll spacing, at most a
    minute apart; once in doubt, the spacing grows on to `DOUBT_MAX_SPACING` (jitter held at 1)."""
    monkeypatch.setattr("bot.orders.service.random.uniform", lambda low, high: 1.0)
    shop.sandbox.quirks.add(Quirk.SEARCH_UNKNOWN_SHAPE)
    order = await shop.pay(shop.customer(), phone="0712345678")
    deadline = order.created_at + DEADLINE
    before: list[float] = []
    after: list[float] = []
    due = await shop.order(order.id)
    while len(after) < 6:
        assert due.next_poll_at is not None
        shop.clock.now = due.next_poll_at
        await shop.sweep()
        due = await shop.order(order.id)
        assert due.next_poll_at is not None
        (before if shop.clock.now < deadline else after).append(due.next_poll_at - shop.clock.now)
    assert before[:5] == [5.0, 10.0, 20.0, 40.0, 60.0] and set(before[5:]) == {60.0}
    assert after == [DOUBT_MAX_SPACING] * 6


async def test_a_retry_is_never_sooner_than_the_jittered_spacing_even_under_a_second(
    shop_with: ShopWith, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a poll interval of 1 s and the jitter at its low end, the next lookup is 0.8 s later:
    no floor of its own (only iPay's Retry-After, when it gives one, can make it later)."""
    monkeypatch.setattr("bot.orders.service.random.uniform", lambda low, high: low)
    shop = await shop_with(poll_interval_seconds=1.0)
    order = await shop.pay(shop.customer(), phone="0712345678")
    shop.sandbox.faults.fail_next("/transaction/search", Fault.SERVER_ERROR)
    due = await shop.order(order.id)
    assert due.next_poll_at is not None and due.poll_count == 0
    shop.clock.now = due.next_poll_at
    await shop.sweep()
    next_poll_at = (await shop.order(order.id)).next_poll_at
    assert next_poll_at is not None and next_poll_at - shop.clock.now == pytest.approx(0.8)
