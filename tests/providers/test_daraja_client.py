"""The Daraja client against the Daraja sandbox: password, token, push, query, callbacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.domain import NAIROBI, Network
from bot.providers.base import (
    FailureKind,
    NotPaidYet,
    PaymentFailed,
    PaymentFound,
    ProviderRefused,
    ProviderUnavailable,
)
from bot.providers.daraja import DarajaClient, DarajaError, DarajaSession, DarajaUnavailable, signing
from bot.providers.daraja.client import RESULT_FAILURES
from bot.sandbox.daraja import BASE_URL, DarajaSandbox

PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
CALLBACK = "https://shop.example/daraja/callback"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 9, 0, tzinfo=NAIROBI).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> DarajaSandbox:
    return DarajaSandbox(clock=clock)


@pytest.fixture
async def client(sandbox: DarajaSandbox, clock: Clock) -> AsyncIterator[DarajaClient]:
    async with httpx.AsyncClient(transport=sandbox.transport()) as http:
        yield DarajaClient(
            http,
            consumer_key="sandbox-key",
            consumer_secret="sandbox-secret",
            shortcode="174379",
            passkey=PASSKEY,
            callback_url=CALLBACK,
            base_url=BASE_URL,
            clock=clock,
            monotonic=clock,
        )


async def pushed(client: DarajaClient, oid: str, phone: str, amount: int = 100) -> str:
    session = await client.initiate(oid, amount, phone)
    kept = await client.push(Network.MPESA, phone, session.sid)
    assert kept is not None
    return kept


def test_the_password_is_daraja_s_own_vector() -> None:
    assert signing.password("174379", PASSKEY, "20160216165627") == (
        "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkx"
        "OTIwMTYwMjE2MTY1NjI3"
    )


def test_the_timestamp_is_nairobi_time() -> None:
    at = datetime(2016, 2, 16, 13, 56, 27, tzinfo=UTC).timestamp()
    assert signing.timestamp(at) == "20160216165627"  # 13:56 UTC is 16:56 in Nairobi


async def test_a_paid_prompt_is_found_by_the_query_with_the_amount_asked(
    client: DarajaClient, sandbox: DarajaSandbox, clock: Clock
) -> None:
    sid = await pushed(client, "ORDER7", "254712345677", 250)
    assert await client.search("ORDER7", sid) == NotPaidYet()  # HTTP 500 500.001.1001: being processed
    clock.now += 5
    found = await client.search("ORDER7", sid)
    assert isinstance(found, PaymentFound)
    assert found.payment.amount == 250
    assert found.payment.receipt_code == ""  # the query names no receipt: only a callback does
    stk = sandbox.requests[DarajaSession.decode(sid).checkout_id]  # type: ignore[union-attr]
    assert (stk.account, stk.party_b, stk.shortcode) == ("ORDER7", "174379", "174379")


async def test_a_till_pushes_buy_goods_to_the_till(sandbox: DarajaSandbox, clock: Clock) -> None:
    async with httpx.AsyncClient(transport=sandbox.transport()) as http:
        till = DarajaClient(
            http,
            consumer_key="sandbox-key",
            consumer_secret="sandbox-secret",
            shortcode="174379",
            passkey=PASSKEY,
            callback_url=CALLBACK,
            till_number="5123456",
            base_url=BASE_URL,
            clock=clock,
            monotonic=clock,
        )
        session = await till.initiate("ORDER7", 100, "254712345677")
        assert (session.account, session.paybills) == ("", ())  # no Pay Bill way round without C2B
        sid = await till.push(Network.MPESA, "254712345677", session.sid)
    assert sandbox.requests[DarajaSession.decode(sid).checkout_id].party_b == "5123456"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("last_digit", "kind"),
    [("1", FailureKind.CANCELLED), ("2", FailureKind.WRONG_PIN), ("3", FailureKind.INSUFFICIENT_FUNDS)],
)
async def test_the_payer_s_no_is_the_same_failure_as_with_ipay(
    client: DarajaClient, clock: Clock, last_digit: str, kind: FailureKind
) -> None:
    sid = await pushed(client, "ORDER1", "25471234567" + last_digit)
    clock.now += 5
    result = await client.search("ORDER1", sid)
    assert isinstance(result, PaymentFailed) and result.kind is kind


def test_every_result_code_has_an_outcome() -> None:
    assert RESULT_FAILURES == {
        "1": FailureKind.INSUFFICIENT_FUNDS,
        "1032": FailureKind.CANCELLED,
        "1037": FailureKind.TIMED_OUT,
        "2001": FailureKind.WRONG_PIN,
        "1001": FailureKind.TIMED_OUT,
        "1019": FailureKind.TIMED_OUT,
        "1025": FailureKind.TIMED_OUT,
        "9999": FailureKind.TIMED_OUT,
    }


async def test_an_unanswered_prompt_times_out(client: DarajaClient, clock: Clock) -> None:
    sid = await pushed(client, "ORDER4", "254712345674")
    clock.now += 30
    assert await client.search("ORDER4", sid) == NotPaidYet()
    clock.now += 60
    result = await client.search("ORDER4", sid)
    assert isinstance(result, PaymentFailed) and result.kind is FailureKind.TIMED_OUT


async def test_one_token_serves_many_calls_and_concurrent_callers_share_one_renewal(
    client: DarajaClient, sandbox: DarajaSandbox, clock: Clock
) -> None:
    sids = await asyncio.gather(*(pushed(client, f"ORDER{i}", f"25471234{i:03d}7") for i in range(5)))
    assert client.token_requests == 1
    clock.now += 3599 - 30  # within the renewal margin
    await asyncio.gather(*(client.search(f"ORDER{i}", sid) for i, sid in enumerate(sids)))
    assert client.token_requests == 2


async def test_a_token_refused_as_invalid_is_renewed_once(client: DarajaClient, sandbox: DarajaSandbox) -> None:
    sid = await pushed(client, "ORDER7", "254712345677")
    sandbox.expire_tokens()  # Daraja answers 401 404.001.03 to the cached token
    assert await client.search("ORDER7", sid) == NotPaidYet()
    assert client.token_requests == 2


async def test_the_payer_s_busy_phone_refuses_a_second_push(client: DarajaClient) -> None:
    await pushed(client, "ORDER1", "254712345674")
    session = await client.initiate("ORDER2", 100, "254712345674")
    with pytest.raises(ProviderRefused):
        await client.push(Network.MPESA, "254712345674", session.sid)


async def test_airtel_is_refused_without_a_push(client: DarajaClient, sandbox: DarajaSandbox) -> None:
    session = await client.initiate("ORDER1", 100, "254733345677")
    with pytest.raises(ProviderRefused):
        await client.push(Network.AIRTEL, "254733345677", session.sid)
    assert sandbox.requests == {}


async def test_a_push_whose_answer_is_lost_is_no_refusal(client: DarajaClient, sandbox: DarajaSandbox) -> None:
    session = await client.initiate("ORDER7", 100, "254712345677")
    sandbox.timeouts_next["/mpesa/stkpush/v1/processrequest"] = 1
    with pytest.raises(ProviderUnavailable):
        await client.push(Network.MPESA, "254712345677", session.sid)
    with pytest.raises(DarajaUnavailable):  # no checkout id known: never "not paid"
        await client.search("ORDER7", session.sid)


def stk_callback(sandbox: DarajaSandbox, sid: str) -> bytes:
    stk = sandbox.requests[DarajaSession.decode(sid).checkout_id]  # type: ignore[union-attr]
    sandbox._settle(stk)
    return json.dumps(sandbox.callback_body(stk)).encode()


async def test_a_callback_s_receipt_is_kept_once_the_query_agrees(
    client: DarajaClient, sandbox: DarajaSandbox, clock: Clock
) -> None:
    sid = await pushed(client, "ORDER7", "254712345677")
    clock.now += 5
    path = client.callback_url("ORDER7").removeprefix(CALLBACK + "/").split("/")
    callback = client.read_callback({"order": path[0], "token": path[1]}, stk_callback(sandbox, sid))
    assert callback is not None and callback.money and callback.order_id == "ORDER7"
    found = await client.search("ORDER7", sid, callback.note)  # the note the bot keeps for its lookups
    assert isinstance(found, PaymentFound)
    assert found.payment.receipt_code == sandbox.requests[DarajaSession.decode(sid).checkout_id].receipt  # type: ignore[union-attr]


async def test_a_callback_without_the_order_s_token_is_not_read(
    client: DarajaClient, sandbox: DarajaSandbox, clock: Clock
) -> None:
    sid = await pushed(client, "ORDER7", "254712345677")
    clock.now += 5
    assert client.read_callback({"order": "ORDER7", "token": "0" * 32}, stk_callback(sandbox, sid)) is None
    assert client.read_callback({"order": "ORDER7"}, stk_callback(sandbox, sid)) is None


async def test_a_paid_callback_the_query_contradicts_is_not_believed(
    client: DarajaClient, sandbox: DarajaSandbox, clock: Clock
) -> None:
    sid = await pushed(client, "ORDER1", "254712345671")  # the payer cancels
    clock.now += 5
    forged = {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "x",
                "CheckoutRequestID": DarajaSession.decode(sid).checkout_id,  # type: ignore[union-attr]
                "ResultCode": 0,
                "ResultDesc": "ok",
                "CallbackMetadata": {"Item": [{"Name": "MpesaReceiptNumber", "Value": "FORGED0001"}]},
            }
        }
    }
    token = client.callback_url("ORDER1").rsplit("/", 1)[1]
    callback = client.read_callback({"order": "ORDER1", "token": token}, json.dumps(forged).encode())
    assert callback is not None
    result = await client.search("ORDER1", sid, callback.note)
    assert isinstance(result, PaymentFailed) and result.kind is FailureKind.CANCELLED


def scripted(*replies: httpx.Response) -> httpx.MockTransport:
    """Daraja answering a token, then each of `replies` in turn."""
    queue = list(replies)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v1/generate":
            return httpx.Response(200, json={"access_token": "t0k3n", "expires_in": "3599"})
        return queue.pop(0)

    return httpx.MockTransport(answer)


async def search_with(transport: httpx.MockTransport, clock: Clock) -> object:
    async with httpx.AsyncClient(transport=transport) as http:
        client = DarajaClient(
            http,
            consumer_key="key",
            consumer_secret="secret-value",
            shortcode="174379",
            passkey=PASSKEY,
            callback_url=CALLBACK,
            base_url="https://daraja.test",
            clock=clock,
            monotonic=clock,
        )
        return await client.search("ORDER7", "ORDER7:100:ws_CO_1:m-1")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            httpx.Response(200, json={"CheckoutRequestID": "ws_CO_1", "ResultCode": "4242", "ResultDesc": "?"}),
            "unknown ResultCode",
        ),
        (
            httpx.Response(200, json={"CheckoutRequestID": "ws_CO_2", "ResultCode": "0", "ResultDesc": "ok"}),
            "another checkout",
        ),
        (httpx.Response(502, text="<html>Bad gateway</html>"), "HTTP 502"),
        (httpx.Response(500, json={"errorCode": "500.003.02", "errorMessage": "System is busy"}), "HTTP 500"),
        (httpx.Response(400, json={"errorCode": "400.002.02", "errorMessage": "Bad Request"}), "not a verdict"),
        (httpx.Response(200, text="OK"), "without a JSON object"),
    ],
)
async def test_a_query_answer_that_is_no_verdict_is_an_error_never_not_paid(
    clock: Clock, reply: httpx.Response, error: str
) -> None:
    with pytest.raises(DarajaError, match=error) as raised:
        await search_with(scripted(reply), clock)
    assert PASSKEY not in str(raised.value) and "secret-value" not in str(raised.value)


async def test_a_token_that_cannot_be_had_is_we_do_not_know(clock: Clock) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="down"))
    with pytest.raises(DarajaUnavailable, match="token"):
        await search_with(transport, clock)
