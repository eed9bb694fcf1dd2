"""The iPay client: its hash strings, and how it reads each kind of answer.

The hash vectors were computed outside Python with
`printf '%s' "<string>" | openssl dgst -sha256 -hmac demoCHANGED`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.domain import Network
from bot.ipay import (
    CheckoutSession,
    FailureKind,
    IpayClient,
    IpayMalformedReply,
    IpayRefused,
    IpayUnavailable,
    NotPaidYet,
    PaymentFailed,
    PaymentFound,
    signing,
)
from bot.sandbox.ipay import Fault, IpaySandbox
from tests.conftest import ManualClock

KEY = "demoCHANGED"


def test_transact_hash_matches_openssl_vector() -> None:
    fields = {
        "live": "0",
        "oid": "ORD123",
        "inv": "ORD123",
        "amount": "500",
        "tel": "254712345678",
        "eml": "customer@example.com",
        "vid": "demo",
        "curr": "KES",
        "p1": "",
        "p2": "",
        "p3": "",
        "p4": "",
        "cbk": "",
        "cst": "1",
        "crl": "0",
        "autopay": "1",
    }
    assert signing.transact_hash(KEY, fields) == "f2b29a2b71037aa00d6f37ef50f5b7fdbad633eb349b3cc5d34dc3a1a4bd64b2"


def test_push_hash_matches_openssl_vector() -> None:
    assert (
        signing.push_hash(KEY, "254712345678", "demo", "SIDXYZ")
        == "38857d75c38477e4a4f719d48723804eb4843a16113d077918e1e98db4180465"
    )


def test_search_hash_matches_openssl_vector() -> None:
    assert (
        signing.search_hash(KEY, "ORD123", "demo") == "9f34aaebcfc6fda47ea96218f581a956e3090c27df4e1ce5d2c3d53474c301db"
    )


def test_reply_hashes_match_openssl_vectors() -> None:
    channels = {"MPESA": "261144", "AIRTEL": "510800"}
    assert (
        signing.transact_reply_hash(KEY, "FT2311233145", "0", "ORD123", "SIDXYZ", channels)
        == "743c9f657411a4db3c01debe9f0cab803189a96ae996f311944b9da09691c3b5"
    )
    record = {
        "oid": "ORD123",
        "vid": "demo",
        "transaction_code": "QCH4XXXXXX",
        "firstname": "JOHN",
        "lastname": "DOE",
        "paid_at": "2022-03-05 16:03:12",
        "payment_mode": "MPESA",
        "sid": "SIDXYZ",
    }
    assert signing.search_reply_hash(KEY, record) == "7f26e7904ae4533b6682e84c216778f5461664956376e82b8d06d6b9b6fa2364"


@pytest.fixture
def demo_sandbox(clock: ManualClock) -> IpaySandbox:
    return IpaySandbox(vid="demo", hash_key=KEY, clock=clock, answer_delay=3.0)


@pytest.fixture
async def client(demo_sandbox: IpaySandbox) -> AsyncIterator[IpayClient]:
    async with httpx.AsyncClient(transport=demo_sandbox.transport()) as http:
        yield IpayClient(
            http,
            vid="DEMO",
            hash_key=KEY,
            live=False,
            base_url="http://ipay.test/payments/v2",
            customer_email="customer@example.com",
        )


async def test_initiate_push_and_search_until_paid(
    client: IpayClient, demo_sandbox: IpaySandbox, clock: ManualClock
) -> None:
    session = await client.initiate("ORD1", 250, "254712345678")
    assert session.sid.startswith("SID")
    await client.push(Network.MPESA, "254712345678", session.sid)
    assert await client.search("ORD1") == NotPaidYet()
    clock.advance(3)
    result = await client.search("ORD1")
    assert isinstance(result, PaymentFound)
    assert result.payment.amount == 250 and len(result.payment.receipt_code) == 10
    assert result.payment.paid_at == pytest.approx(clock.now)
    assert result.payment.channel == "MPESA"


async def test_wrong_key_is_refused_like_ipay_refuses(demo_sandbox: IpaySandbox) -> None:
    async with httpx.AsyncClient(transport=demo_sandbox.transport()) as http:
        wrong = IpayClient(
            http, vid="demo", hash_key="not-the-key", live=False, base_url="http://ipay.test/payments/v2"
        )
        with pytest.raises(IpayRefused, match="Invalid hash"):
            await wrong.initiate("ORD2", 100, "254712345678")
        with pytest.raises(IpayMalformedReply):
            await wrong.search("ORD2")  # a 400 about the hash is no verdict on the payment


async def test_duplicate_order_id_is_refused(client: IpayClient) -> None:
    await client.initiate("ORD3", 100, "254712345678")
    with pytest.raises(IpayRefused, match="Duplicate"):
        await client.initiate("ORD3", 100, "254712345678")


async def test_second_push_to_a_phone_with_an_open_prompt_is_refused(client: IpayClient) -> None:
    first = await client.initiate("ORD4", 100, "254712345670")
    second = await client.initiate("ORD5", 100, "254712345670")
    await client.push(Network.MPESA, "254712345670", first.sid)
    with pytest.raises(IpayRefused, match="already pending"):
        await client.push(Network.MPESA, "254712345670", second.sid)


@pytest.mark.parametrize(
    ("last_digit", "kind", "text"),
    [
        ("1", FailureKind.CANCELLED, "canceled by the user"),
        ("2", FailureKind.WRONG_PIN, "Incorrect pin"),
        ("3", FailureKind.INSUFFICIENT_FUNDS, "insufficient"),
        ("4", FailureKind.TIMED_OUT, "timed out"),
    ],
)
async def test_failure_texts_become_typed_failures(
    client: IpayClient, clock: ManualClock, last_digit: str, kind: FailureKind, text: str
) -> None:
    phone = "25471234567" + last_digit
    session = await client.initiate("ORD6", 100, phone)
    await client.push(Network.MPESA, phone, session.sid)
    clock.advance(61)
    result = await client.search("ORD6")
    assert isinstance(result, PaymentFailed) and result.kind is kind and text in result.text


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.SERVER_ERROR, IpayUnavailable),
        (Fault.HTML, IpayUnavailable),
        (Fault.RATE_LIMITED, IpayUnavailable),
        (Fault.TIMEOUT, IpayUnavailable),
        (Fault.DISCONNECT, IpayUnavailable),
        (Fault.NOT_JSON, IpayMalformedReply),
    ],
)
async def test_an_errored_lookup_is_an_error_never_not_paid(
    client: IpayClient, demo_sandbox: IpaySandbox, fault: Fault, error: type[Exception]
) -> None:
    demo_sandbox.faults.fail_next("/transaction/search", fault)
    with pytest.raises(error):
        await client.search("ANYORDER")


async def test_rate_limit_carries_retry_after(client: IpayClient, demo_sandbox: IpaySandbox) -> None:
    demo_sandbox.faults.fail_next("/transaction/search", Fault.RATE_LIMITED)
    with pytest.raises(IpayUnavailable) as caught:
        await client.search("ANYORDER")
    assert caught.value.retry_after == 7


async def test_errors_never_carry_the_key(demo_sandbox: IpaySandbox) -> None:
    secret = "super-SECRET-key-123"
    async with httpx.AsyncClient(transport=demo_sandbox.transport()) as http:
        client = IpayClient(http, vid="demo", hash_key=secret, live=False, base_url="http://ipay.test/payments/v2")
        for fault in Fault:
            demo_sandbox.faults.fail_next("/transact", fault)
            with pytest.raises(Exception) as caught:
                await client.initiate("ORD7", 100, "254712345678")
            assert secret not in str(caught.value) and secret not in repr(caught.value)


def _reply(status: int, body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


async def test_a_paid_record_for_another_order_is_malformed() -> None:
    record = {
        "oid": "OTHER",
        "transaction_code": "QCH4XXXXXX",
        "transaction_amount": "10.00",
        "paid_at": "2022-03-05 16:03:12",
    }
    async with httpx.AsyncClient(transport=_reply(200, {"header_status": 200, "status": 1, "data": record})) as http:
        client = IpayClient(http, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test")
        with pytest.raises(IpayMalformedReply, match="another order"):
            await client.search("MINE")


async def test_a_404_that_is_not_ipays_answer_is_not_read_as_not_paid() -> None:
    async with httpx.AsyncClient(transport=_reply(404, {"detail": "Not Found"})) as http:
        client = IpayClient(http, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test")
        with pytest.raises(IpayMalformedReply):
            await client.search("MINE")


async def test_transact_reply_with_a_wrong_hash_is_malformed() -> None:
    channels = [{"name": "MPESA", "paybill": "261144"}, {"name": "AIRTEL", "paybill": "510800"}]
    data = {
        "sid": "SID1",
        "oid": "MINE",
        "amount": "10",
        "account": "FT1",
        "payment_channels": channels,
        "hash": "0" * 64,
    }
    async with httpx.AsyncClient(transport=_reply(200, {"header_status": 200, "status": 1, "data": data})) as http:
        client = IpayClient(http, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test")
        with pytest.raises(IpayMalformedReply, match="hash"):
            await client.initiate("MINE", 10, "254712345678")


# The original tutorial's own /transact reply, verbatim (key demoCHANGED): three channels,
# of which iPay signs MPESA and AIRTEL only. Every real reply looks like this.
TUTORIAL_TRANSACT_REPLY = (
    '{"header_status":200,"status":1,"data":{"sid":"DSJDEM315DA1643707992229259444DEMO_invalid","oid":"dsjknkjsdn",'
    ' "amount":"10","account":"FT231123314C","payment_channels":[{"name":"MPESA","paybill":"261144"},'
    ' {"name":"AIRTEL","paybill":"510800"},{"name":"EQUITEL","paybill":"510800"}],'
    ' "hash":"8937a5706eef29167a10bda67ed01a4cb9840d72ddf7f0d7e5a531efbb7039c0"}}'
)


def _raw_reply(status: int, text: str) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(status, text=text, headers={"content-type": "application/json"})
    )


async def _initiate_against(reply: str, oid: str = "dsjknkjsdn") -> CheckoutSession:
    async with httpx.AsyncClient(transport=_raw_reply(200, reply)) as http:
        client = IpayClient(http, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test")
        return await client.initiate(oid, 10, "254712345678")


async def test_the_tutorials_own_transact_reply_is_accepted() -> None:
    session = await _initiate_against(TUTORIAL_TRANSACT_REPLY)
    assert session == CheckoutSession(
        oid="dsjknkjsdn",
        sid="DSJDEM315DA1643707992229259444DEMO_invalid",
        account="FT231123314C",
        paybills=(("MPESA", "261144"), ("AIRTEL", "510800"), ("EQUITEL", "510800")),
    )


async def test_channels_in_another_order_with_an_unknown_one_are_picked_by_name() -> None:
    channels = (
        '[{"name":"EQUITEL","paybill":"510800"},{"name":"AIRTEL","paybill":"510800"},'
        '{"name":"TKASH","paybill":"999999"},{"name":"MPESA","paybill":"261144"}]'
    )
    listed = TUTORIAL_TRANSACT_REPLY[TUTORIAL_TRANSACT_REPLY.index("[{") : TUTORIAL_TRANSACT_REPLY.index("}],") + 2]
    reply = TUTORIAL_TRANSACT_REPLY.replace(listed, channels)
    session = await _initiate_against(reply)
    assert dict(session.paybills) == {"EQUITEL": "510800", "AIRTEL": "510800", "TKASH": "999999", "MPESA": "261144"}


async def test_a_reply_hashed_over_all_three_channels_is_refused() -> None:
    all_three = signing.sign(
        KEY,
        "FT231123314C",
        "10",
        "dsjknkjsdn",
        "DSJDEM315DA1643707992229259444DEMO_invalid",
        "MPESA261144",
        "AIRTEL510800",
        "EQUITEL510800",
    )
    assert all_three.startswith("6cf3d203")
    with pytest.raises(IpayMalformedReply, match="hash"):
        await _initiate_against(
            TUTORIAL_TRANSACT_REPLY.replace(
                "8937a5706eef29167a10bda67ed01a4cb9840d72ddf7f0d7e5a531efbb7039c0", all_three
            )
        )


async def test_a_reply_without_the_airtel_channel_is_malformed() -> None:
    reply = TUTORIAL_TRANSACT_REPLY.replace('{"name":"AIRTEL","paybill":"510800"},', "")
    with pytest.raises(IpayMalformedReply, match="AIRTEL"):
        await _initiate_against(reply)


async def test_the_sandbox_answers_like_ipay_with_three_channels(client: IpayClient) -> None:
    session = await client.initiate("ORD8", 100, "254712345678")
    assert [name for name, _ in session.paybills] == ["MPESA", "AIRTEL", "EQUITEL"]
    assert session.account.startswith("FT")
