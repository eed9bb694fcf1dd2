"""The REST API's payment requests: made, read, their QR code, paid in Telegram; checked
against the OpenAPI document as `/api/payments` is."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from bot.web import build_web_app
from tests.api.test_api_contract import DOCUMENT, JSON_VALUES, SCHEMAS, Validator
from tests.api.test_web import API_KEY, OTHER_KEY
from tests.conftest import Shop, start_shop, stop_shop, with_settings
from tests.requests.test_payment_requests import decode_png

NEW = SCHEMAS["PaymentRequestNew"]
NEW_VALIDATOR = Validator(NEW)
POST = DOCUMENT["paths"]["/api/payment-requests"]["post"]
DOCUMENTED = {int(code) for code in POST["responses"]}
VALID_BODIES = st.fixed_dictionaries(
    {name: from_schema(NEW["properties"][name]) for name in NEW["required"]},
    optional={name: from_schema(p) for name, p in NEW["properties"].items() if name not in NEW["required"]},
)
TEMPTING = {
    "amount": st.sampled_from(["500", 10.5, True, 9, 10, 150_000, 150_001, 0, 500.0]),
    "note": st.sampled_from(["", "2 loaves\n", "x" * 100, "x" * 101, "mkate 🍞", None, "tab\there"]),
    "expires_in": st.sampled_from([59, 60, 2_592_000, 2_592_001, 3600.0, 3600.5, "3600", True, None]),
}


def _auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@st.composite
def near_misses(draw: st.DrawFn) -> dict[str, Any]:
    body = dict(draw(VALID_BODIES))
    change = draw(st.sampled_from(["replace", "tempt", "drop", "add"]))
    if change == "replace":
        body[draw(st.sampled_from(sorted(NEW["properties"])))] = draw(JSON_VALUES)
    elif change == "tempt":
        name = draw(st.sampled_from(sorted(TEMPTING)))
        body[name] = draw(TEMPTING[name])
    elif change == "drop":
        body.pop("amount")
    else:
        body[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in NEW["properties"]))] = draw(JSON_VALUES)
    return body


@pytest.fixture
async def api(  # type: ignore[no-untyped-def]
    settings, telegram, sandbox, clock
) -> AsyncIterator[tuple[Shop, httpx.AsyncClient]]:
    configured = with_settings(settings, api_keys=(API_KEY, OTHER_KEY), port=0)
    shop = await start_shop(configured, telegram, sandbox, clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    yield shop, client
    await client.aclose()
    await stop_shop(shop)


async def _post(client: httpx.AsyncClient, body: Any, key: str = API_KEY) -> httpx.Response:
    return await client.post(
        "/api/payment-requests", content=json.dumps(body), headers={**_auth(key), "Content-Type": "application/json"}
    )


async def test_made_read_qr_and_paid(api: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = api
    reply = await _post(client, {"amount": 750, "note": "Invoice 42", "expires_in": 3600})
    assert reply.status_code == 201, reply.text
    made = reply.json()
    Validator(SCHEMAS["PaymentRequestCreated"]).validate(made)
    token = re.fullmatch(r"https://t\.me/pesabot\?start=([A-Za-z0-9_-]{1,64})", made["link"])
    assert token is not None
    assert made["qr_url"] == f"http://bot/api/payment-requests/{made['request_id']}/qr.png"

    png = await client.get(made["qr_url"], headers=_auth())
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert decode_png(png.content) == [made["link"]]
    status = await client.get(f"/api/payment-requests/{made['request_id']}", headers=_auth())
    Validator(SCHEMAS["PaymentRequestStatus"]).validate(status.json())
    assert status.json()["state"] == "open" and status.json()["amount"] == 750 and status.json()["order_id"] is None

    customer = shop.customer(501)
    await shop.type(customer, f"/start {token.group(1)}")
    assert shop.last(customer.chat_id).text.startswith("Mama Mboga asks KES 750 for Invoice 42.")
    await shop.type(customer, "0712345677")
    await shop.send(customer.press(shop.last(customer.chat_id), "Confirm"))
    shop.clock.advance(5)
    await shop.sweep()
    paid = (await client.get(f"/api/payment-requests/{made['request_id']}", headers=_auth())).json()
    Validator(SCHEMAS["PaymentRequestStatus"]).validate(paid)
    order = await shop.only_order(customer.chat_id)
    assert paid["state"] == "paid" and paid["order_id"] == order.id and paid["receipt_code"] == order.receipt_code


async def test_a_key_reads_only_its_own_requests(api: tuple[Shop, httpx.AsyncClient]) -> None:
    _, client = api
    made = (await _post(client, {"amount": 100})).json()
    for path in (f"/api/payment-requests/{made['request_id']}", made["qr_url"]):
        assert (await client.get(path, headers=_auth(OTHER_KEY))).status_code == 404
        unauthorised = await client.get(path)
        assert unauthorised.status_code == 401 and unauthorised.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/api/payment-requests/RNOSUCHREQ1", headers=_auth())).status_code == 404
    assert (await _post(client, {"amount": 100}, key="wrong-key-0123456789abcdefgh")).status_code == 401


async def test_expires_in_is_honoured(api: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = api
    made = (await _post(client, {"amount": 100, "expires_in": 60})).json()
    shop.clock.advance(61)
    status = (await client.get(f"/api/payment-requests/{made['request_id']}", headers=_auth())).json()
    assert status["state"] == "expired"


@hypothesis_settings(max_examples=120, deadline=None, suppress_health_check=list(HypothesisHealthCheck))
@given(body=VALID_BODIES | near_misses() | JSON_VALUES)
async def test_the_api_accepts_exactly_what_its_document_allows(api: tuple[Shop, httpx.AsyncClient], body: Any) -> None:
    _, client = api
    reply = await _post(client, body)
    assert reply.status_code in DOCUMENTED, (body, reply.status_code, reply.text)
    event(f"{'valid' if NEW_VALIDATOR.is_valid(body) else 'invalid'}: {reply.status_code}")
    if NEW_VALIDATOR.is_valid(body):
        assert reply.status_code == 201, (body, reply.text)
        Validator(SCHEMAS["PaymentRequestCreated"]).validate(reply.json())
    else:
        assert reply.status_code in (400, 422), (body, reply.status_code, reply.text)
        Validator(SCHEMAS["Error"]).validate(reply.json())


async def test_a_request_paid_short_says_how_much_is_missing(api: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = api
    made = (await _post(client, {"amount": 1000, "note": "Invoice 43"})).json()
    token = made["link"].rpartition("=")[2]
    customer = shop.customer(501)
    await shop.type(customer, f"/start {token}", "0712345670")
    await shop.send(customer.press(shop.last(customer.chat_id), "Confirm"))
    shop.sandbox.pay_by_paybill((await shop.only_order(customer.chat_id)).id, 900)
    shop.clock.advance(5)
    await shop.sweep()
    status = (await client.get(f"/api/payment-requests/{made['request_id']}", headers=_auth())).json()
    Validator(SCHEMAS["PaymentRequestStatus"]).validate(status)
    assert (status["state"], status["amount"], status["paid_amount"], status["missing_amount"]) == (
        "part_paid",
        1000,
        900,
        100,
    )
    assert status["excess_amount"] == 0
