"""The REST API against its own OpenAPI document: it accepts exactly what the document allows.

Requests are generated from the document's schemas (hypothesis-jsonschema) and from near misses
of them (one field replaced by any JSON value, a required field dropped, an unknown one added);
the document, read by a JSON Schema validator, says which are valid. No valid request may be
refused, no invalid one accepted, and nothing may answer 5xx or an undocumented status.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, ValidationError, validators

from bot.api.openapi import openapi_document
from bot.config import Settings
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from bot.web import build_web_app
from tests.api.test_web import API_KEY, _auth
from tests.conftest import ManualClock, Shop, start_shop, stop_shop, with_settings

DOCUMENT = openapi_document(10, 150_000)
SCHEMAS = DOCUMENT["components"]["schemas"]
REQUEST = SCHEMAS["PaymentRequest"]
POST = DOCUMENT["paths"]["/api/payments"]["post"]
DOCUMENTED = {int(code) for code in POST["responses"]}
KEY_HEADER = next(p["schema"] for p in POST["parameters"] if p["name"] == "Idempotency-Key")


@pytest.fixture
async def api(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock
) -> AsyncIterator[tuple[Shop, httpx.AsyncClient]]:
    """The bot with the REST API on, and no merchant chat: a group gets 20 messages a minute in
    real time, which would make hundreds of paid examples wait on the rate limiter."""
    configured = with_settings(settings, api_keys=(API_KEY,), merchant_chat_id=None, port=0)
    shop = await start_shop(configured, telegram, sandbox, clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_web_app(shop.services, shop.app, clock=clock)), base_url="http://bot"
    )
    yield shop, client
    await client.aclose()
    await stop_shop(shop)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """JSON Schema's patterns are ECMA-262, where `$` is the end of the text; Python's `$` also
    matches before a final newline, which would call `"INV42\\n"` valid."""
    if validator.is_type(instance, "string") and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
REQUEST_VALIDATOR = Validator(REQUEST)
KEY_VALIDATOR = Validator(KEY_HEADER)


def _response_validator(name: str) -> Any:
    return Validator(SCHEMAS[name])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
# What users of a lenient API send, and the edges of each field.
TEMPTING = {
    "phone": st.sampled_from(["712345032", "0712 345 678", "0712345678\n", "+254-712-345-678", "07123456789", ""])
    | st.integers(700_000_000, 799_999_999),
    "amount": st.sampled_from(["500", "KES 1,000", "1,000", 10.0, 10.5, 1e3, True, 9, 10, 150_000, 150_001, -10, 0]),
    "network": st.sampled_from(["MPESA", "M-Pesa", "Airtel", "safaricom", "", None, "mpesa\n"]),
    "email": st.sampled_from(["a@b.co", "a@b.co\n", "a@b", "", "a b@c.de", None, "o'brien@example.com"]),
    "reference": st.sampled_from(["", "INV42\n", "x" * 64, "x" * 65, "INV-42", "ÜBER", None, "  "]),
}
# Each property's values come from its schema; the object is assembled from the document's
# `required` and `properties` (no other keys, as `additionalProperties: false` says), because
# hypothesis-jsonschema 0.23.1's own object strategy relies on a Hypothesis internal that
# Hypothesis 6.170 no longer has.
VALID_BODIES = st.fixed_dictionaries(
    {name: from_schema(REQUEST["properties"][name]) for name in REQUEST["required"]},
    optional={name: from_schema(p) for name, p in REQUEST["properties"].items() if name not in REQUEST["required"]},
)


@st.composite
def near_misses(draw: st.DrawFn) -> dict[str, Any]:
    body = dict(draw(VALID_BODIES))
    change = draw(st.sampled_from(["replace", "tempt", "drop", "add"]))
    if change == "replace":
        body[draw(st.sampled_from(sorted(REQUEST["properties"])))] = draw(JSON_VALUES)
    elif change == "tempt":
        name = draw(st.sampled_from(sorted(TEMPTING)))
        body[name] = draw(TEMPTING[name])
    elif change == "drop":
        body.pop(draw(st.sampled_from(REQUEST["required"])))
    else:
        body[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in REQUEST["properties"]))] = draw(JSON_VALUES)
    return body


async def _post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await client.post(
        "/api/payments", content=json.dumps(body), headers={**_auth(), "Content-Type": "application/json", **headers}
    )


async def _forget_the_order(shop: Shop) -> None:
    """Let the prompt expire and the per-phone limits lapse, so the next example starts afresh."""
    await shop.settle()
    shop.clock.advance(3600)
    await shop.sweep()


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=list(HypothesisHealthCheck))
@given(body=VALID_BODIES | near_misses() | JSON_VALUES)
async def test_the_api_accepts_exactly_what_its_document_allows(api: tuple[Shop, httpx.AsyncClient], body: Any) -> None:
    shop, client = api
    reply = await _post(client, body)
    assert reply.status_code in DOCUMENTED, (body, reply.status_code, reply.text)
    event(f"{'valid' if REQUEST_VALIDATOR.is_valid(body) else 'invalid'}: {reply.status_code}")
    if REQUEST_VALIDATOR.is_valid(body):
        assert reply.status_code == 201, (body, reply.text)
        created = reply.json()
        _response_validator("PaymentCreated").validate(created)
        assert created["amount"] == body["amount"] and created["reference"] == body.get("reference")
        assert body.get("network") in (None, created["network"])
        await _forget_the_order(shop)
    else:
        assert reply.status_code in (400, 422), (body, reply.status_code, reply.text)
        _response_validator("Error").validate(reply.json())


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=list(HypothesisHealthCheck))
@given(key=from_schema(KEY_HEADER) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300))
async def test_the_idempotency_key_header_is_checked_as_documented(
    api: tuple[Shop, httpx.AsyncClient], key: str
) -> None:
    _, client = api
    # amount is missing: 422 if the key is fine
    reply = await _post(client, {"phone": "0712345678"}, **{"Idempotency-Key": key})
    event("valid key" if KEY_VALIDATOR.is_valid(key) else "invalid key")
    expected = ("missing_field", 422) if KEY_VALIDATOR.is_valid(key) else ("invalid_idempotency_key", 400)
    assert (reply.json()["error"]["code"], reply.status_code) == expected, (key, reply.text)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [  # the disagreements a schemathesis run found, each now settled one way, the same in the document
        ({"phone": "0712345678", "amount": 500, "reference": ""}, 422, "invalid_reference"),
        ({"phone": "0712345678", "amount": 500, "network": None, "email": None, "reference": None}, 201, None),
        ({"phone": "0712345678", "amount": "500"}, 422, "invalid_amount"),
        ({"phone": "0712345678", "amount": "KES 1,000"}, 422, "invalid_amount"),
        ({"phone": 712345032, "amount": 500}, 422, "invalid_phone"),
        ({"phone": "0712 345 678", "amount": 500}, 422, "invalid_phone"),
        ({"phone": None, "amount": 500}, 422, "invalid_phone"),
        ({"phone": "0712345678", "amount": 500, "network": "MPESA"}, 422, "invalid_network"),
        ({"phone": "0712345678", "amount": True}, 422, "invalid_amount"),
        ({"phone": "0712345678", "amount": 10.5}, 422, "invalid_amount"),
        ({"phone": "0712345678", "amount": 10.0}, 201, None),  # JSON Schema: 10.0 is the integer 10
    ],
)
async def test_the_reported_disagreements_are_settled(
    api: tuple[Shop, httpx.AsyncClient], body: dict[str, Any], status: int, code: str | None
) -> None:
    _, client = api
    assert REQUEST_VALIDATOR.is_valid(body) is (status == 201)
    reply = await _post(client, body)
    assert reply.status_code == status, reply.text
    if code is not None:
        assert reply.json()["error"]["code"] == code
        assert "amount must be a string" not in reply.json()["error"]["message"]
    else:
        assert reply.json()["amount"] == int(body["amount"])


async def test_an_empty_idempotency_key_is_refused(api: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = api
    reply = await _post(client, {"phone": "0712345678", "amount": 500}, **{"Idempotency-Key": ""})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_idempotency_key"
    assert shop.sandbox.stats.calls == {}


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/jsonx", 415),
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ("Application/JSON", 201),
    ],
)
async def test_only_a_json_content_type_is_accepted(
    api: tuple[Shop, httpx.AsyncClient], content_type: str | None, status: int
) -> None:
    _, client = api
    headers = _auth() if content_type is None else {**_auth(), "Content-Type": content_type}
    reply = await client.post("/api/payments", content=b'{"phone": "0712345678", "amount": 500}', headers=headers)
    assert reply.status_code == status, reply.text
    if status == 415:
        assert reply.json()["error"]["code"] == "unsupported_media_type"


async def test_reads_answer_as_documented(api: tuple[Shop, httpx.AsyncClient]) -> None:
    shop, client = api
    created = (await _post(client, {"phone": "0712345677", "amount": 700, "email": "a@b.co"})).json()
    await shop.settle()
    pending = await client.get(f"/api/payments/{created['order_id']}", headers=_auth())
    _response_validator("Payment").validate(pending.json())
    shop.clock.advance(5)
    await shop.sweep()
    paid = await client.get(f"/api/payments/{created['order_id']}", headers=_auth())
    _response_validator("Payment").validate(paid.json())
    assert paid.json()["status"] == "paid" and paid.json()["paid_amount"] == 700
    missing = await client.get("/api/payments/NOSUCHORDER1", headers=_auth())
    assert missing.status_code == 404
    _response_validator("Error").validate(missing.json())


def test_the_document_is_valid_openapi_json_schema() -> None:
    """Every schema in it is a valid JSON Schema 2020-12 (the dialect OpenAPI 3.1 uses)."""
    for schema in (*SCHEMAS.values(), KEY_HEADER):
        Draft202012Validator.check_schema(schema)


def test_the_document_states_the_endpoints_own_patterns_and_bounds() -> None:
    """The document is data beside the code: every pattern and bound an endpoint checks is the
    one the document states, and the shop's amount limits are filled in where it says so."""
    from bot.api.common import API_BODY_LIMIT, IDEMPOTENCY_KEY_PATTERN
    from bot.orders.api import EMAIL_PATTERN, MAX_WAIT_SECONDS, PHONE_PATTERN, REFERENCE_PATTERN
    from bot.requests.api import MAX_EXPIRES_IN, MIN_EXPIRES_IN, NOTE_PATTERN
    from bot.requests.service import NOTE_LIMIT

    schemas = DOCUMENT["components"]["schemas"]
    payment, request = schemas["PaymentRequest"]["properties"], schemas["PaymentRequestNew"]["properties"]
    assert [payment[field]["pattern"] for field in ("phone", "email", "reference")] == [
        PHONE_PATTERN,
        EMAIL_PATTERN,
        REFERENCE_PATTERN,
    ]
    assert (request["note"]["pattern"], request["note"]["maxLength"]) == (NOTE_PATTERN, NOTE_LIMIT)
    assert (request["expires_in"]["minimum"], request["expires_in"]["maximum"]) == (MIN_EXPIRES_IN, MAX_EXPIRES_IN)
    assert (payment["amount"]["minimum"], payment["amount"]["maximum"]) == (10, 150_000)
    (wait,) = [p for p in DOCUMENT["paths"]["/api/payments/{order_id}"]["get"]["parameters"] if p["name"] == "wait"]
    assert (wait["schema"]["minimum"], wait["schema"]["maximum"]) == (0, MAX_WAIT_SECONDS)
    other = openapi_document(50, 70_000)["components"]["schemas"]["PaymentRequestNew"]["properties"]["amount"]
    assert (other["minimum"], other["maximum"]) == (50, 70_000)
    text = json.dumps(DOCUMENT)
    assert f"The body is larger than {API_BODY_LIMIT} bytes" in text
    assert text.count(json.dumps(IDEMPOTENCY_KEY_PATTERN)) == 2  # the header on the payments and the refunds
