"""The Mini App's HTTP side without a browser: who may call what, the payment path it shares
with the chat, the double tap, the headers, the limits and the menu button."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.config import Settings
from bot.i18n import formats
from bot.miniapp import web as miniapp_web
from bot.owner import sentences as owner_sentences
from bot.owner.service import OwnerService
from bot.reports.service import nairobi_today
from bot.sandbox.ipay import IpaySandbox, Quirk
from bot.sandbox.telegram import FakeBotApi
from bot.web import build_web_app
from tests.conftest import ManualClock, Shop, readable, start_shop, stop_shop, with_settings
from tests.miniapp.signing import init_data

ADMIN, CASHIER, CUSTOMER = 900, 700, 501
NEWCOMER = 701  # staff who has not started the bot when it starts
APP = "https://shop.example"


@pytest.fixture
async def app_shop(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> AsyncIterator[tuple[Shop, httpx.AsyncClient]]:
    for chat in (ADMIN, CASHIER):
        telegram.chats.setdefault(chat, [])  # they have started the bot
    configured = with_settings(
        settings, miniapp_url=APP, admin_ids=frozenset({ADMIN}), staff_ids=frozenset({CASHIER, NEWCOMER}), port=0
    )
    running = await start_shop(configured, telegram, sandbox, clock)
    web = build_web_app(running.services, running.app, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=APP) as client:
        yield running, client
    await stop_shop(running)


def tma(shop: Shop, user_id: int, age: float = 0, language: str = "en") -> dict[str, str]:
    signed = init_data(user_id, auth_date=shop.clock.now - age, language=language)
    return {"Authorization": f"tma {signed}"}


async def test_the_page_is_served_with_a_strict_policy_and_no_inline_script(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    _, client = app_shop
    page = await client.get("/app/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' https://telegram.org;" in policy and "unsafe-inline" not in policy
    assert '<script src="https://telegram.org/js/telegram-web-app.js"></script>' in page.text
    assert "<script>" not in page.text
    for asset in ("/app/app.js", "/app/app.css"):
        assert (await client.get(asset)).status_code == 200


async def test_expired_forged_or_missing_init_data_gets_403(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = app_shop
    assert (await client.get("/app/api/view", headers=tma(shop, CASHIER, age=3599))).status_code == 200
    expired = await client.get("/app/api/view", headers=tma(shop, CASHIER, age=3601))
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "forbidden"
    forged = tma(shop, CASHIER)["Authorization"].replace("%22id%22%3A700", "%22id%22%3A900")
    assert (await client.get("/app/api/view", headers={"Authorization": forged})).status_code == 403
    assert (await client.post("/app/api/payments", json={})).status_code == 403


async def test_a_customer_gets_the_staff_only_page_in_their_language(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = app_shop
    answer = await client.get("/app/api/view", headers=tma(shop, CUSTOMER))
    assert answer.status_code == 403 and "for the shop&#39;s staff" in answer.text
    swahili = await client.get("/app/api/view", headers=tma(shop, 502, language="sw"))
    assert swahili.status_code == 403 and "wafanyakazi" in swahili.text
    refused = await client.post(
        "/app/api/payments",
        headers={**tma(shop, CUSTOMER), "Idempotency-Key": "key-00000001"},
        json={"phone": "0712345678", "amount": "500"},
    )
    assert refused.status_code == 403
    assert await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5) == []


async def test_a_cashier_prompts_and_the_status_endpoint_follows_the_order(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = app_shop
    guessed = await client.get("/app/api/network", params={"phone": "0733 123 456"}, headers=tma(shop, CASHIER))
    assert guessed.json() == {"network": "airtel"}
    sent = await client.post(
        "/app/api/payments",
        headers={**tma(shop, CASHIER), "Idempotency-Key": "key-00000001"},
        json={"phone": "0712 345 678", "amount": "1,000", "network": "mpesa", "note": "table 4"},
    )
    assert sent.status_code == 201, sent.text
    order = sent.json()
    assert order["status"] == "pending" and order["phone"] == "07** ***678" and order["amount"] == 1000
    await shop.settle()
    shop.clock.advance(5)
    await shop.sweep()
    shown = (await client.get(f"/app/api/payments/{order['id']}", headers=tma(shop, CASHIER))).json()
    receipt, payer = shop.ipay_payment(order["id"])
    assert shown["status"] == "paid" and shown["receipt_code"] == receipt and shown["payer_name"] == payer
    assert (await shop.order(order["id"])).requested_by == "Amina (@amina, 700)"
    # another person's order is not found for them
    assert (await client.get(f"/app/api/payments/{order['id']}", headers=tma(shop, ADMIN))).status_code == 404
    listed = (await client.get("/app/api/payments", headers=tma(shop, CASHIER))).json()["orders"]
    assert [o["id"] for o in listed] == [order["id"]]


async def test_a_double_tap_sends_one_prompt(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = app_shop
    headers = {**tma(shop, CASHIER), "Idempotency-Key": "tap-tap-0001"}
    body = {"phone": "0712345678", "amount": "500"}
    first, second = await asyncio.gather(
        client.post("/app/api/payments", headers=headers, json=body),
        client.post("/app/api/payments", headers=headers, json=body),
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] == second.json()["id"]
    await shop.settle()
    assert len(shop.sandbox.transactions) == 1
    # a new form (a new key) for the same phone is refused while the prompt is open
    again = await client.post(
        "/app/api/payments", headers={**tma(shop, CASHIER), "Idempotency-Key": "tap-tap-0002"}, json=body
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "phone_busy"


async def test_the_back_office_is_for_admins(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = app_shop
    cashier_view = await client.get("/app/api/view", headers=tma(shop, CASHIER))
    assert "back-office" not in cashier_view.text
    assert (await client.get("/app/api/chart", headers=tma(shop, CASHIER))).status_code == 403
    admin_view = await client.get("/app/api/view", headers=tma(shop, ADMIN))
    assert 'id="back-office"' in admin_view.text
    chart = await client.get("/app/api/chart", headers=tma(shop, ADMIN))
    assert chart.json()["png"].startswith("data:image/png;base64,")


async def test_calls_are_rate_limited_per_user(
    app_shop: tuple[Shop, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, client = app_shop
    answers = [
        (await client.get("/app/api/payments", headers=tma(shop, CASHIER))).status_code
        for _ in range(miniapp_web.RATE_LIMIT + 1)
    ]
    assert answers[:-1] == [200] * miniapp_web.RATE_LIMIT and answers[-1] == 429
    assert (await client.get("/app/api/payments", headers=tma(shop, ADMIN))).status_code == 200
    shop.clock.advance(miniapp_web.RATE_WINDOW)
    assert (await client.get("/app/api/payments", headers=tma(shop, CASHIER))).status_code == 200


async def test_admins_and_staff_get_the_app_as_their_menu_button(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, _ = app_shop
    button = {"type": "web_app", "text": "Counter", "web_app": {"url": f"{APP}/app/"}}
    assert shop.telegram.menu_buttons == {ADMIN: button, CASHIER: button}
    assert shop.telegram.default_menu_button == {"type": "commands"}  # customers keep the commands


async def test_request_link_makes_a_payment_request_with_its_qr(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = app_shop
    made = await client.post("/app/api/requests", headers=tma(shop, CASHIER), json={"amount": "800", "note": "sofa"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["qr"].startswith("data:image/png;base64,") and body["link"].startswith("https://t.me/")
    request = await shop.services.requests.get(body["id"])
    assert request is not None and (request.amount, request.note, request.created_by) == (800, "sofa", CASHIER)
    too_small = await client.post("/app/api/requests", headers=tma(shop, CASHIER), json={"amount": "1"})
    assert too_small.status_code == 422


async def test_an_admin_refunds_a_payment_from_the_back_office(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = app_shop
    order = await shop.pay(shop.customer(), phone="0712 345 678", amount="600")
    shop.clock.advance(5)
    await shop.sweep()
    view = await client.get("/app/api/view", headers=tma(shop, ADMIN))
    assert f'data-order="{order.id}"' in view.text and "Refund KES 600" in view.text
    assert (await client.post(f"/app/api/refunds/{order.id}", headers=tma(shop, CASHIER))).status_code == 403
    sent = await client.post(f"/app/api/refunds/{order.id}", headers=tma(shop, ADMIN))
    assert sent.status_code == 202 and "Sending the refund" in sent.json()["message"]
    again = await client.post(f"/app/api/refunds/{order.id}", headers=tma(shop, ADMIN))
    assert again.status_code == 409  # one refund, claimed once
    refund = await shop.services.store.get_refund(order.id)
    assert refund is not None and refund.approved_by_id == ADMIN and refund.amount == 600


async def test_staff_who_first_write_after_start_up_get_the_menu_button(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, _ = app_shop
    assert NEWCOMER not in shop.telegram.menu_buttons  # Telegram said "chat not found" at start-up
    newcomer = shop.customer(user_id=NEWCOMER, name="Baraka", language_code="sw")
    await shop.type(shop.customer(user_id=CUSTOMER), "/help")
    await shop.type(newcomer, "/help")
    assert shop.telegram.menu_buttons[NEWCOMER] == {
        "type": "web_app",
        "text": "Kaunta",
        "web_app": {"url": f"{APP}/app/"},
    }
    assert CUSTOMER not in shop.telegram.menu_buttons
    calls = [name for name, _ in shop.telegram.calls].count("setChatMenuButton")
    await shop.type(newcomer, "/help")
    assert [name for name, _ in shop.telegram.calls].count("setChatMenuButton") == calls  # once per process


# -- the close and the refunds' approval step in the back office ---------------------------------


async def _paid_at_the_counter(
    shop: Shop, client: httpx.AsyncClient, amount: str = "500", key: str = "pay-00000001"
) -> str:
    """The cashier sends a prompt from the counter and the payer pays (the sandbox): its id."""
    sent = await client.post(
        "/app/api/payments",
        headers={**tma(shop, CASHIER), "Idempotency-Key": key},
        json={"phone": "0712 345 678", "amount": amount},
    )
    assert sent.status_code == 201, sent.text
    await shop.settle()
    shop.clock.advance(5)
    await shop.sweep()
    order_id: str = sent.json()["id"]
    assert (await shop.order(order_id)).status.money_received
    return order_id


async def _refunds_settled(shop: Shop) -> None:
    assert shop.services.refunds is not None
    await shop.services.refunds.wait_idle()
    shop.services.notifier.kick()
    await shop.settle()


async def test_an_admin_closes_the_day_in_the_back_office_as_close_does(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = app_shop
    await _paid_at_the_counter(shop, client, "600")
    view = await client.get("/app/api/view", headers=tma(shop, ADMIN))
    assert "Today is still open." in view.text and 'id="close-day"' in view.text
    # What the chat's "Close the day" button would say now, from the same service.
    now = shop.clock.now
    owner = OwnerService(shop.services.store)
    day = nairobi_today(now)
    expected = owner_sentences.close_report(
        await owner.figures(day, await owner.stretch_start(day), now, "Amina", now), "Mama Mboga"
    )
    for who in (CASHIER, CUSTOMER):  # staff and customers cannot close
        assert (await client.post("/app/api/close", headers=tma(shop, who))).status_code == 403
    assert await shop.services.store.day_close(day.isoformat()) is None

    closed = await client.post("/app/api/close", headers=tma(shop, ADMIN))
    assert closed.status_code == 201, closed.text
    at = formats.clock_time(now)
    assert closed.json()["state"] == f"Today was closed by Amina at {at}."
    await shop.settle()
    report = shop.last(ADMIN).text
    assert report == expected  # the same figures and words as /close's
    assert report.startswith("🔒 Mama Mboga · ") and f"closed by Amina at {at}." in report.splitlines()[0]
    assert "💰 Net takings: KES 600" in report

    again = await client.post("/app/api/close", headers=tma(shop, ADMIN))
    assert again.status_code == 409 and again.json()["error"]["code"] == "closed"
    assert again.json()["error"]["message"] == (
        f"Today was closed by Amina at {at}. A day is closed once: its figures stay as they were."
    )
    await shop.settle()
    assert shop.last(ADMIN).text == report  # a refused close sends nothing
    shown = await client.get("/app/api/view", headers=tma(shop, ADMIN))
    assert f"Today was closed by Amina at {at}." in shown.text and 'id="close-day"' not in shown.text
    await shop.type(shop.customer(ADMIN, "Amina"), "/close")  # the chat sees the app's close
    assert f"was closed by Amina at {at}; its figures then:" in shop.last(ADMIN).text


async def test_the_back_office_checks_against_ipay_before_closing_as_close_offers(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    """Money iPay has and the bot has not seen yet is found by the check, then counted by the close."""
    shop, client = app_shop
    sent = await client.post(
        "/app/api/payments",
        headers={**tma(shop, CASHIER), "Idempotency-Key": "pay-00000003"},
        json={"phone": "0712 345 670", "amount": "400"},  # the sandbox's holder decides
    )
    await shop.settle()
    shop.clock.advance(5)
    assert shop.sandbox.answer("254712345670", approve=True)  # paid; the bot has not looked yet
    view = await client.get("/app/api/view", headers=tma(shop, ADMIN))
    assert "Close the day? Check against iPay first" in view.text and "🔎 Check against iPay" in view.text
    assert (await client.post("/app/api/close/check", headers=tma(shop, CASHIER))).status_code == 403
    checked = await client.post("/app/api/close/check", headers=tma(shop, ADMIN))
    assert checked.status_code == 200
    (report,) = checked.json()["report"]
    assert report.startswith("Reconciled ") and "1 order looked up, 1 differ, 1 fixed." in report
    assert (await shop.order(sent.json()["id"])).status.money_received
    assert (await client.post("/app/api/close", headers=tma(shop, ADMIN))).status_code == 201
    await shop.settle()
    assert "💰 Net takings: KES 400" in shop.last(ADMIN).text


async def test_a_cashier_asks_for_a_refund_and_an_admin_approves_it_in_the_back_office(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = app_shop
    order_id = await _paid_at_the_counter(shop, client)
    (listed,) = (await client.get("/app/api/payments", headers=tma(shop, CASHIER))).json()["orders"]
    assert listed["id"] == order_id and listed["can_refund"] is True
    assert 'class="secondary ask"' in (await client.get("/app/api/view", headers=tma(shop, CASHIER))).text

    ask = f"/app/api/refunds/{order_id}/ask"
    assert (await client.post(ask, headers=tma(shop, CUSTOMER))).status_code == 403
    assert (await client.post(ask, headers=tma(shop, ADMIN))).status_code == 403  # an admin refunds, not asks
    asked = await client.post(ask, headers=tma(shop, CASHIER))
    assert asked.status_code == 202, asked.text
    assert asked.json()["message"].startswith(
        f"I've asked the shop's admins to approve a refund of order {readable(order_id)} (KES 500)."
    )
    await shop.settle()
    card = shop.last(ADMIN)  # the same card the chat's /refund sends the admins
    assert card.text.startswith(f"↩️ Amina (@amina, 700) asks for a refund of order {readable(order_id)}.")
    assert card.button_labels == ["✅ Approve the refund", "✖️ Decline"]
    twice = await client.post(ask, headers=tma(shop, CASHIER))
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "asked"
    (listed,) = (await client.get("/app/api/payments", headers=tma(shop, CASHIER))).json()["orders"]
    assert listed["can_refund"] is False and listed["refund"]

    office = await client.get("/app/api/view", headers=tma(shop, ADMIN))
    assert f'<li data-id="{order_id}"><span>{order_id} · Amina (@amina, 700) asks: KES 500 · 07** ***678' in office.text
    paid_today = office.text.split('id="paid-today"', 1)[1].split("</ul>", 1)[0]
    assert "Refund asked: waiting for an admin." in paid_today
    for action in ("approve", "decline"):  # a cashier cannot answer asks
        answer = await client.post(f"/app/api/refunds/{order_id}/{action}", headers=tma(shop, CASHIER))
        assert answer.status_code == 403
    assert _refund_calls(shop) == 0

    approved = await client.post(f"/app/api/refunds/{order_id}/approve", headers=tma(shop, ADMIN))
    assert approved.status_code == 202 and "Sending the refund" in approved.json()["message"]
    await _refunds_settled(shop)
    assert _refund_calls(shop) == 1 and (await shop.order(order_id)).receipt_code in shop.sandbox.refunded
    # the cashier hears the outcome, and (the order being theirs) the payer's line, as in the chat
    assert any(text.startswith("✅ Refund done: KES 500") for text in shop.texts(CASHIER))
    assert shop.last(ADMIN).text.startswith("✅ Refund done: KES 500")
    late = await client.post(f"/app/api/refunds/{order_id}/approve", headers=tma(shop, ADMIN))
    assert late.status_code == 409 and _refund_calls(shop) == 1
    assert (
        f'<li data-id="{order_id}">'
        not in (await client.get("/app/api/view", headers=tma(shop, ADMIN)))
        .text.split('id="waiting-refunds"', 1)[1]
        .split("</ul>", 1)[0]
    )


async def test_a_declined_ask_moves_nothing_and_the_cashier_may_ask_again(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = app_shop
    order_id = await _paid_at_the_counter(shop, client)
    assert (await client.post(f"/app/api/refunds/{order_id}/ask", headers=tma(shop, CASHIER))).status_code == 202
    declined = await client.post(f"/app/api/refunds/{order_id}/decline", headers=tma(shop, ADMIN))
    assert declined.status_code == 200
    await shop.settle()
    assert shop.last(CASHIER).text.startswith(
        f"✖️ Amina (@amina, 900) declined the refund of order {readable(order_id)}"
    )
    assert _refund_calls(shop) == 0
    again = await client.post(f"/app/api/refunds/{order_id}/decline", headers=tma(shop, ADMIN))
    assert again.status_code == 409  # answered already
    (listed,) = (await client.get("/app/api/payments", headers=tma(shop, CASHIER))).json()["orders"]
    assert listed["can_refund"] is True


async def test_a_cashier_may_ask_for_any_paid_order_as_the_chats_refund_command_allows(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    """The chat lets a cashier `/refund <order id>` any paid order (an admin still decides);
    the app does the same. A customer can ask for nothing, and an unknown order is said so."""
    shop, client = app_shop
    order_id = await _paid_at_the_counter(shop, client)
    other = await client.post(f"/app/api/refunds/{order_id}/ask", headers=tma(shop, NEWCOMER))
    assert other.status_code == 202
    refund = await shop.services.store.get_refund(order_id)
    assert refund is not None and refund.asked_by_id == NEWCOMER
    unknown = await client.post("/app/api/refunds/NOSUCHORDER1/ask", headers=tma(shop, CASHIER))
    assert unknown.status_code == 409 and unknown.json()["error"]["code"] == "not_found"
    unpaid = await client.post(
        "/app/api/payments",
        headers={**tma(shop, CASHIER), "Idempotency-Key": "pay-00000002"},
        json={"phone": "0712 345 670", "amount": "300"},
    )
    refused = await client.post(f"/app/api/refunds/{unpaid.json()['id']}/ask", headers=tma(shop, CASHIER))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_paid"


def _refund_calls(shop: Shop) -> int:
    return shop.sandbox.stats.calls.get("/transaction/refund", 0)


# -- every endpoint guarded, the chat's rules kept -------------------------------------------------

ADMIN_ONLY = {
    ("GET", "/app/api/chart"),
    ("POST", "/app/api/refunds/{order_id}"),
    ("POST", "/app/api/refunds/{order_id}/approve"),
    ("POST", "/app/api/refunds/{order_id}/decline"),
    ("POST", "/app/api/close"),
    ("POST", "/app/api/close/check"),
}


async def test_every_json_endpoint_checks_init_data_and_role(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    """Each route under /app/api/ (read from the app itself, so a new one is checked too): no or
    a customer's initData gets 403, a cashier gets 403 from the admins' ones; no cookie is set."""
    shop, client = app_shop
    endpoints = sorted(
        (method, route.path)
        for route in miniapp_web.MiniApp(shop.services).routes()
        if route.path.startswith("/app/api/")
        for method in route.methods or ()
        if method != "HEAD"
    )
    assert set(endpoints) >= ADMIN_ONLY and len(endpoints) == 13
    for method, path in endpoints:
        url = path.replace("{order_id}", "ABCDEF123456")
        callers = [{}, {"Authorization": "tma hash=forged"}, tma(shop, CUSTOMER)]
        if (method, path) in ADMIN_ONLY:
            callers.append(tma(shop, CASHIER))
        for headers in callers:
            answer = await client.request(method, url, headers={**headers, "Idempotency-Key": "key-00000009"}, json={})
            assert answer.status_code == 403, (method, path, headers)
            assert "set-cookie" not in answer.headers
    assert await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5) == []
    assert await shop.services.store.day_close(nairobi_today(shop.clock.now).isoformat()) is None


async def test_the_chats_language_choice_wins_over_telegrams(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = app_shop
    assert "Send prompt" in (await client.get("/app/api/view", headers=tma(shop, CASHIER))).text
    cashier = shop.customer(CASHIER, "Amina", language_code="en")
    await shop.send(cashier.text("/lugha"))
    await shop.send(cashier.press(shop.last(CASHIER), "Kiswahili"))
    swahili = await client.get("/app/api/view", headers=tma(shop, CASHIER, language="en"))
    assert "Tuma ujumbe wa PIN" in swahili.text and "Send prompt" not in swahili.text


async def test_the_counter_keeps_the_chats_limit_per_phone(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    """The payer's phone is prompted at most PAY_LIMIT_PER_PHONE times an hour, from the chat or
    the app (staff are exempt from the per-person limit in both, as prompting is their job)."""
    shop, client = app_shop
    limit = shop.services.settings.pay_limit_per_phone
    answers = []
    for n in range(limit + 1):
        sent = await client.post(
            "/app/api/payments",
            headers={**tma(shop, CASHIER), "Idempotency-Key": f"limit-000{n}"},
            json={"phone": "0712 345 671", "amount": "100"},  # the sandbox's payer declines
        )
        answers.append(sent)
        await shop.settle()
        shop.clock.advance(5)
        await shop.sweep()
    assert [a.status_code for a in answers] == [201] * limit + [409]
    assert answers[-1].json()["error"]["code"] == "phone_limit"
    assert len(shop.sandbox.transactions) == limit


async def test_the_back_office_lists_the_pending_orders_and_those_in_doubt(
    app_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = app_shop
    shop.sandbox.quirks.add(Quirk.SEARCH_BAD_HASH)  # lookups never give a trusted answer
    doubtful = await shop.pay(shop.customer(), phone="0712 345 678", amount="700")
    while not (await shop.order(doubtful.id)).in_doubt:
        shop.clock.advance(60)
        await shop.sweep()
    shop.sandbox.quirks.discard(Quirk.SEARCH_BAD_HASH)
    waiting = await shop.pay(shop.customer(502, "Baraka"), phone="0712 345 677", amount="300")
    office = (await client.get("/app/api/view", headers=tma(shop, ADMIN))).text
    in_doubt = office.split('id="in-doubt"', 1)[1].split("</ul>", 1)[0]
    pending = office.split('id="pending"', 1)[1].split("</ul>", 1)[0]
    assert f"{doubtful.id} · 700 · 07** ***678" in in_doubt and waiting.id not in in_doubt
    assert f"{waiting.id} · 300 · 07** ***677" in pending and doubtful.id not in pending


async def test_the_guessed_network_can_be_changed(app_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    """A ported number: guessed M-Pesa from its prefix, sent as Airtel Money because the cashier chose it."""
    shop, client = app_shop
    guessed = await client.get("/app/api/network", params={"phone": "0712 345 678"}, headers=tma(shop, CASHIER))
    assert guessed.json() == {"network": "mpesa"}
    sent = await client.post(
        "/app/api/payments",
        headers={**tma(shop, CASHIER), "Idempotency-Key": "port-0000001"},
        json={"phone": "0712 345 678", "amount": "250", "network": "airtel"},
    )
    assert sent.status_code == 201 and sent.json()["network"] == "Airtel Money"
    assert (await shop.order(sent.json()["id"])).network.value == "airtel"
