"""Webhook mode, the health check and the REST API, through the one ASGI app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.domain import Network, Order, OrderStatus, new_order_id
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.store import StoreUnavailable
from bot.store.sqlite import SqliteStore
from bot.web import build_web_app
from tests.conftest import (
    MERCHANT_CHAT,
    ManualClock,
    Shop,
    ShopWith,
    another_process_holds_the_write_lock,
    start_shop,
    stop_shop,
    with_settings,
)

SECRET = "webhook-secret-0123456789"
API_KEY = "shop-till-key-0123456789abcdef"
OTHER_KEY = "website-key-abcdef0123456789"


@pytest.fixture
async def web_shop(shop_with: ShopWith, clock: ManualClock) -> AsyncIterator[tuple[Shop, httpx.AsyncClient]]:
    shop = await shop_with(
        webhook_url="https://bot.example", webhook_secret=SECRET, api_keys=(API_KEY, OTHER_KEY), port=0
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    yield shop, client
    await client.aclose()


async def _processed(shop: Shop, chat_id: int, count: int) -> None:
    """Webhook updates go through the Application's queue: wait until the reply is out."""
    for _ in range(200):
        if len(shop.telegram.bot_messages(chat_id)) >= count:
            await shop.settle()
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no reply in chat {chat_id}: {shop.texts(chat_id)}")


# -- webhook ---------------------------------------------------------------------------------


async def test_webhook_is_registered_with_its_secret(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, _ = web_shop
    assert shop.telegram.webhook == {"url": "https://bot.example/telegram", "secret_token": SECRET}


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}])
async def test_webhook_without_the_secret_is_refused_and_nothing_runs(
    web_shop: tuple[Shop, httpx.AsyncClient], headers: dict[str, str]
) -> None:
    shop, client = web_shop
    customer = shop.customer()
    reply = await client.post("/telegram", json=customer.text("/pay"), headers=headers)
    assert reply.status_code == 403
    await asyncio.sleep(0.05)
    assert shop.telegram.bot_messages(customer.chat_id) == []


async def test_an_update_posted_to_the_webhook_runs_the_same_conversation(
    web_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = web_shop
    customer = shop.customer()
    secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for n, line in enumerate(["/pay", "0712345678", "500"], 1):
        assert (await client.post("/telegram", json=customer.text(line), headers=secret)).status_code == 200
        await _processed(shop, customer.chat_id, n)
    summary = shop.last(customer.chat_id)
    await client.post("/telegram", json=customer.press(summary, "Confirm"), headers=secret)
    for _ in range(200):
        if summary.text.startswith("📲 Check your phone"):
            break
        await asyncio.sleep(0.01)
    order = await shop.only_order(customer.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text
    assert (await client.post("/telegram", content=b"not json", headers=secret)).status_code == 400


# -- health ----------------------------------------------------------------------------------


async def test_health_is_ok_while_sweeping_and_503_when_the_sweep_stalls(
    web_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = web_shop
    await shop.pay(shop.customer(), phone="0712345670")
    await shop.sweep()
    reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ok",
        "database": True,
        "writable": True,
        "last_write_error": None,
        "seconds_since_sweep": 0.0,
        "pending_orders": 1,
        "orders_in_doubt": 0,
    }
    shop.clock.advance(16)  # more than three poll spacings (3 x 5 s) without a sweep
    reply = await client.get("/healthz")
    assert reply.status_code == 503 and reply.json()["status"] == "unhealthy"
    await shop.sweep()
    assert (await client.get("/healthz")).status_code == 200


async def test_health_is_503_when_the_database_is_gone(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    await shop.services.store.close()
    reply = await client.get("/healthz")
    assert reply.status_code == 503 and reply.json()["database"] is False
    shop.services.store = await type(shop.services.store).open(shop.services.settings.database_path)


async def test_health_says_unhealthy_while_writes_fail_and_creation_answers_503_then_recovers(
    settings: Settings,
    telegram: FakeBotApi,
    sandbox: IpaySandbox,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process holds the database's write lock: reads still work, every write fails."""
    monkeypatch.setattr("bot.store.sqlite.BUSY_TIMEOUT_MS", 100)  # give up on the lock quickly, for the test's sake
    shop = await start_shop(with_settings(settings, api_keys=(API_KEY,), port=0), telegram, sandbox, clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    try:
        await shop.sweep()
        assert (await client.get("/healthz")).status_code == 200
        with another_process_holds_the_write_lock(settings.database_path):
            reply = await client.post("/api/payments", json={"phone": "0712345670", "amount": 100}, headers=_auth())
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"]["code"] == "unavailable" and int(reply.headers["Retry-After"]) > 0
            health = await client.get("/healthz")
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy" and health.json()["database"] is True
            assert health.json()["writable"] is False
            assert health.json()["last_write_error"]["error"] == "database is locked"
            assert datetime.fromisoformat(health.json()["last_write_error"]["at"]).tzinfo is not None
            await shop.settle()
            assert shop.sandbox.stats.calls == {}  # nothing was written, so nobody was prompted

        health = await client.get("/healthz")  # a write probe finds that writes work again
        assert health.status_code == 200 and health.json()["writable"] is True, health.json()
        assert health.json()["last_write_error"] is None
        reply = await client.post("/api/payments", json={"phone": "0712345670", "amount": 100}, headers=_auth())
        assert reply.status_code == 201
    finally:
        await client.aclose()
        await stop_shop(shop)


async def test_a_callback_id_with_a_trailing_newline_is_malformed(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> None:
    callback = "https://shop.example/ipay/callback"
    shop = await start_shop(with_settings(settings, ipay_callback_url=callback, port=0), telegram, sandbox, clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)))
    try:
        order = await shop.pay(shop.customer())
        reply = await client.get(callback, params={"id": order.id + "\n", "status": "aei7p7yrx4ae34"})
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "malformed_callback"
    finally:
        await client.aclose()
        await stop_shop(shop)


async def test_a_full_database_is_unhealthy_until_an_order_fits_again(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    """A full disk, simulated by capping the database's size on the bot's own connection (SQLite
    answers "database or disk is full" as it does when the filesystem is full)."""
    shop, client = web_shop
    store = shop.services.store
    if not isinstance(store, SqliteStore):
        pytest.skip("the full disk is simulated on SQLite's own connection")
    await store._db.execute("PRAGMA max_page_count = 1")  # below the current size: no page can be added
    filler = 0
    with pytest.raises(StoreUnavailable):
        for filler in range(1000):  # fill whatever room the existing pages still have
            now = shop.clock()
            await store.insert_order(
                Order(
                    new_order_id(),
                    9,
                    9,
                    f"2547{filler:08d}",
                    Network.MPESA,
                    100,
                    OrderStatus.FAILED,
                    now,
                    now,
                    reference="x" * 64,
                )
            )

    reply = await client.post("/api/payments", json={"phone": "0712345670", "amount": 100}, headers=_auth())
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "unavailable"
    for _ in range(2):  # the probe needs room as a new order does, so it fails too
        health = await client.get("/healthz")
        assert health.status_code == 503 and health.json()["writable"] is False
        assert health.json()["last_write_error"]["error"] == "database or disk is full"

    await store._db.execute("PRAGMA max_page_count = 1073741823")  # room again
    assert (await client.get("/healthz")).status_code == 200
    reply = await client.post("/api/payments", json={"phone": "0712345670", "amount": 100}, headers=_auth())
    assert reply.status_code == 201


# -- bodies ----------------------------------------------------------------------------------

NOT_OBJECTS = [b"[]", b"123", b"null", b'"text"', b"[" * 4000 + b"]" * 4000, b'{"a": NaN}', b"\xff\xfe{"]


@pytest.mark.parametrize("body", NOT_OBJECTS, ids=["list", "number", "null", "string", "deep", "nan", "bytes"])
async def test_bodies_that_are_not_a_json_object_get_400_on_every_route(
    web_shop: tuple[Shop, httpx.AsyncClient], body: bytes
) -> None:
    shop, client = web_shop
    secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    for path, headers, code in (
        ("/telegram", secret, "malformed_update"),
        ("/api/payments", {**_auth(), "Content-Type": "application/json"}, "invalid_json"),
    ):
        reply = await client.post(path, content=body, headers=headers)
        assert reply.status_code == 400, (path, reply.text)
        assert reply.json() == {"error": {"code": code, "message": reply.json()["error"]["message"]}}
    assert shop.sandbox.stats.calls == {}


async def test_an_update_nested_100000_deep_gets_400(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    _, client = web_shop
    secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    deep = b'{"update_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = await client.post("/telegram", content=deep, headers=secret)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "malformed_update"


async def test_bodies_are_capped(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    _, client = web_shop
    secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    padded_update = b'{"update_id": 1, "pad": "' + b"x" * (1 << 20) + b'"}'
    reply = await client.post("/telegram", content=padded_update, headers=secret)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"

    padded_payment = json.dumps({"phone": "0712345678", "amount": 100, "reference": " " * 20_000}).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while reading
        for start in range(0, len(padded_payment), 1000):
            yield padded_payment[start : start + 1000]

    for content in (padded_payment, chunks()):
        headers = {**_auth(), "Content-Type": "application/json"}
        reply = await client.post("/api/payments", content=content, headers=headers)
        assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"


# -- REST API --------------------------------------------------------------------------------


def _auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {API_KEY}"}])
async def test_api_needs_a_key(web_shop: tuple[Shop, httpx.AsyncClient], headers: dict[str, str]) -> None:
    _, client = web_shop
    for reply in (
        await client.post("/api/payments", json={"phone": "0712345678", "amount": 100}, headers=headers),
        await client.get("/api/payments/ABC", headers=headers),
    ):
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"phone": "0812345678", "amount": 100}, 422, "invalid_phone"),
        ({"phone": "0712345678", "amount": 5}, 422, "invalid_amount"),
        ({"phone": "0712345678", "amount": "12.50"}, 422, "invalid_amount"),
        ({"phone": "0712345678", "amount": 100, "network": "telkom"}, 422, "invalid_network"),
        ({"phone": "0712345678", "amount": 100, "email": "not-an-email"}, 422, "invalid_email"),
        ({"phone": "0712345678", "amount": 100, "tip": 5}, 422, "unknown_field"),
        ({"phone": "0712345678"}, 422, "missing_field"),
        ({"phone": ["0712345678"], "amount": 100}, 422, "invalid_phone"),
        ([1, 2], 400, "invalid_json"),
    ],
)
async def test_api_validation_errors(
    web_shop: tuple[Shop, httpx.AsyncClient], body: Any, status: int, code: str
) -> None:
    shop, client = web_shop
    reply = await client.post("/api/payments", json=body, headers=_auth())
    assert reply.status_code == status and reply.json()["error"]["code"] == code
    assert shop.sandbox.stats.calls == {}


async def test_api_payment_from_request_to_paid(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    reply = await client.post(
        "/api/payments",
        json={"phone": "+254733123458", "amount": 1200, "reference": "INV-42", "email": "a@b.co"},
        headers=_auth(),
    )
    assert reply.status_code == 201
    created = reply.json()
    assert created == {
        "order_id": created["order_id"],
        "status": "pending",
        "network": "airtel",
        "amount": 1200,
        "reference": "INV-42",
    }
    await shop.settle()
    assert shop.sandbox.stats.calls.get("/transact/push/airtel") == 1
    shop.clock.advance(5)
    await shop.sweep()
    paid = (await client.get(f"/api/payments/{created['order_id']}", headers=_auth())).json()
    order = await shop.order(created["order_id"])
    assert paid["status"] == "paid" and paid["paid_amount"] == 1200 and paid["receipt_code"] == order.receipt_code
    assert paid["paid_at"].endswith("+03:00")
    assert shop.last(MERCHANT_CHAT).text.startswith(
        f"{order.receipt_code} · PAID · KES 1,200 · Airtel Money · 07** ***458"
    )
    assert shop.last(MERCHANT_CHAT).text.endswith("asked by API key #1")


async def test_api_idempotency_key_returns_the_same_order_without_a_second_prompt(
    web_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    shop, client = web_shop
    body = {"phone": "0712345670", "amount": 300}
    headers = {**_auth(), "Idempotency-Key": "till-7-sale-991"}
    first = await client.post("/api/payments", json=body, headers=headers)
    second = await client.post("/api/payments", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["order_id"] == second.json()["order_id"] and second.headers["Idempotent-Replayed"] == "true"
    await shop.settle()
    assert shop.sandbox.stats.calls.get("/transact/push/mpesa") == 1
    changed = await client.post("/api/payments", json={**body, "amount": 301}, headers=headers)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_key_reused"
    other_key = await client.post(
        "/api/payments", json=body, headers={**_auth(OTHER_KEY), "Idempotency-Key": "till-7-sale-991"}
    )
    assert other_key.status_code == 409 and other_key.json()["error"]["code"] == "phone_busy"  # keys are per API key


async def test_concurrent_requests_with_one_idempotency_key_all_get_the_one_order(
    web_shop: tuple[Shop, httpx.AsyncClient],
) -> None:
    """A till that retries impatiently: the replay must win over "a prompt is open on this phone"."""
    shop, client = web_shop
    headers = {**_auth(), "Idempotency-Key": "till-7-sale-992"}
    replies = await asyncio.gather(
        *(client.post("/api/payments", json={"phone": "0712345670", "amount": 300}, headers=headers) for _ in range(20))
    )
    assert [r.status_code for r in replies] == [201] * 20, [r.text for r in replies if r.status_code != 201]
    assert len({r.json()["order_id"] for r in replies}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in replies) == 19
    await shop.settle()
    assert shop.sandbox.stats.calls.get("/transact/push/mpesa") == 1


async def test_an_api_key_reads_only_the_orders_it_created(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    _, client = web_shop
    till = await client.post("/api/payments", json={"phone": "0712345670", "amount": 300}, headers=_auth(API_KEY))
    website = await client.post("/api/payments", json={"phone": "0712345680", "amount": 400}, headers=_auth(OTHER_KEY))
    for mine, theirs, key in ((till, website, API_KEY), (website, till, OTHER_KEY)):
        assert (await client.get(f"/api/payments/{mine.json()['order_id']}", headers=_auth(key))).status_code == 200
        stranger = await client.get(f"/api/payments/{theirs.json()['order_id']}", headers=_auth(key))
        assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "0712345678\n", "amount": 100},
        {"phone": "0712345678", "amount": 100, "reference": "INV42\n"},
        {"phone": "0712345678", "amount": 100, "email": "a@b.co\n"},
    ],
)
async def test_a_trailing_newline_is_not_a_valid_field(
    web_shop: tuple[Shop, httpx.AsyncClient], body: dict[str, Any]
) -> None:
    shop, client = web_shop
    reply = await client.post("/api/payments", json=body, headers=_auth())
    assert reply.status_code == 422, reply.text
    assert shop.sandbox.stats.calls == {}


async def test_api_keeps_the_chat_limits_per_phone(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    for _ in range(3):  # wrong PIN each time, so no prompt stays open
        assert (
            await client.post("/api/payments", json={"phone": "0712345672", "amount": 100}, headers=_auth())
        ).status_code == 201
        await shop.settle()
        shop.clock.advance(5)
        await shop.sweep()
    limited = await client.post("/api/payments", json={"phone": "0712345672", "amount": 100}, headers=_auth())
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "phone_limit"
    assert int(limited.headers["Retry-After"]) == 3600 - 15


async def test_api_cannot_read_chat_orders(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    order = await shop.pay(shop.customer())
    assert (await client.get(f"/api/payments/{order.id}", headers=_auth())).status_code == 404
    assert (await client.get("/api/payments/..%2Fsecrets", headers=_auth())).status_code == 404


async def test_openapi_document_is_served(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    _, client = web_shop
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0" and set(document["paths"]) == {
        "/api/payments",
        "/api/payments/{order_id}",
        "/api/payment-requests",
        "/api/payment-requests/{request_id}",
        "/api/payment-requests/{request_id}/qr.png",
        "/api/payments/{order_id}/refund",
    }
