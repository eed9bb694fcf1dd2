"""Webhook mode, the health check and the REST API, through the one ASGI app."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.api import openapi_document
from bot.domain import OrderStatus
from bot.web import build_web_app
from tests.conftest import MERCHANT_CHAT, Shop, start_shop, stop_shop, with_settings

SECRET = "webhook-secret-0123456789"
API_KEY = "shop-till-key-0123456789abcdef"
OTHER_KEY = "website-key-abcdef0123456789"


@pytest.fixture
async def web_shop(settings, telegram, sandbox, clock) -> AsyncIterator[tuple[Shop, httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    configured = with_settings(
        settings, webhook_url="https://bot.example", webhook_secret=SECRET, api_keys=(API_KEY, OTHER_KEY), port=0
    )
    shop = await start_shop(configured, telegram, sandbox, clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    yield shop, client
    await client.aclose()
    await stop_shop(shop)


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


async def test_an_update_posted_to_the_webhook_runs_the_same_conversation(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
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
    assert shop.last(customer.chat_id).text.startswith("✅ Paid: KES 500")
    assert (await client.post("/telegram", content=b"not json", headers=secret)).status_code == 400


# -- health ----------------------------------------------------------------------------------


async def test_health_is_ok_while_sweeping_and_503_when_the_sweep_stalls(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    await shop.pay(shop.customer(), phone="0712345670")
    await shop.sweep()
    reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "database": True, "seconds_since_sweep": 0.0, "pending_orders": 1}
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


# -- REST API --------------------------------------------------------------------------------


def _auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {API_KEY}"}])
async def test_api_needs_a_key(web_shop: tuple[Shop, httpx.AsyncClient], headers: dict[str, str]) -> None:
    _, client = web_shop
    for reply in (await client.post("/api/payments", json={"phone": "0712345678", "amount": 100}, headers=headers),
                  await client.get("/api/payments/ABC", headers=headers)):
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
async def test_api_validation_errors(web_shop: tuple[Shop, httpx.AsyncClient], body: Any, status: int, code: str) -> None:
    shop, client = web_shop
    reply = await client.post("/api/payments", json=body, headers=_auth())
    assert reply.status_code == status and reply.json()["error"]["code"] == code
    assert shop.sandbox.stats.calls == {}


async def test_api_payment_from_request_to_paid(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    reply = await client.post(
        "/api/payments", json={"phone": "+254 733 123 458", "amount": "1,200", "reference": "INV-42", "email": "a@b.co"},
        headers=_auth(),
    )
    assert reply.status_code == 201
    created = reply.json()
    assert created == {"order_id": created["order_id"], "status": "pending", "network": "airtel", "amount": 1200,
                       "reference": "INV-42"}
    await shop.settle()
    assert shop.sandbox.stats.calls.get("/transact/push/airtel") == 1
    shop.clock.advance(5)
    await shop.sweep()
    paid = (await client.get(f"/api/payments/{created['order_id']}", headers=_auth(OTHER_KEY))).json()
    order = await shop.order(created["order_id"])
    assert paid["status"] == "paid" and paid["paid_amount"] == 1200 and paid["receipt_code"] == order.receipt_code
    assert paid["paid_at"].endswith("+03:00")
    assert shop.last(MERCHANT_CHAT).text.startswith("PAID · KES 1,200 · Airtel Money · 2547****458")
    assert shop.last(MERCHANT_CHAT).text.endswith("asked by API key #1")


async def test_api_idempotency_key_returns_the_same_order_without_a_second_prompt(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
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
    other_key = await client.post("/api/payments", json=body, headers={**_auth(OTHER_KEY), "Idempotency-Key": "till-7-sale-991"})
    assert other_key.status_code == 409 and other_key.json()["error"]["code"] == "phone_busy"  # keys are per API key


async def test_api_keeps_the_chat_limits_per_phone(web_shop: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = web_shop
    for _ in range(3):  # wrong PIN each time, so no prompt stays open
        assert (await client.post("/api/payments", json={"phone": "0712345672", "amount": 100}, headers=_auth())).status_code == 201
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
    assert document["openapi"] == "3.1.0" and set(document["paths"]) == {"/api/payments", "/api/payments/{order_id}"}


DOCUMENT = openapi_document(10, 150_000)
DOCUMENTED = {int(code) for code in DOCUMENT["paths"]["/api/payments"]["post"]["responses"]}
REQUEST_SCHEMA = DOCUMENT["components"]["schemas"]["PaymentRequest"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _from_property(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a property's schema allows, and its neighbours just outside."""
    if schema["type"] == "integer":
        low, high = schema["minimum"], schema["maximum"]
        return st.integers(low, high) | st.sampled_from([low - 1, high + 1, 0, -low])
    choices = schema.get("enum", []) + schema.get("examples", [])
    return st.sampled_from(choices) | st.text(max_size=schema.get("maxLength", 40)) if choices else st.text(max_size=70)


def _from_request_schema(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    required = {name: _from_property(schema["properties"][name]) for name in schema["required"]}
    optional = {name: _from_property(p) for name, p in schema["properties"].items() if name not in schema["required"]}
    return st.fixed_dictionaries(required, optional=optional)


BODIES = _from_request_schema(REQUEST_SCHEMA) | st.dictionaries(
    st.sampled_from(["phone", "amount", "network", "email", "reference", "x"]), JSON_VALUES, max_size=5
) | JSON_VALUES


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=list(HypothesisHealthCheck))
@given(body=BODIES, idempotency=st.none() | st.text(min_size=0, max_size=300))
async def test_api_against_its_own_openapi_document_never_5xx(
    web_shop: tuple[Shop, httpx.AsyncClient], body: Any, idempotency: str | None
) -> None:
    shop, client = web_shop
    headers = _auth()
    if idempotency is not None and idempotency.isprintable() and idempotency.isascii():
        headers["Idempotency-Key"] = idempotency
    reply = await client.post("/api/payments", content=json.dumps(body), headers=headers)
    assert reply.status_code in DOCUMENTED, (body, reply.status_code, reply.text)
    payload = reply.json()
    if reply.status_code == 201:
        assert set(payload) >= {"order_id", "status", "network", "amount"}
        await shop.settle()
        shop.clock.advance(3600)  # keep the per-phone limits out of the way of the next example
        await shop.sweep()
    else:
        assert set(payload["error"]) == {"code", "message"}
