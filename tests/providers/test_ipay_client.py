"""The iPay client: its hash strings, and how it reads each kind of answer.

The hash vectors were computed outside Python with
`printf '%s' "<string>" | openssl dgst -sha256 -hmac demoCHANGED`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from bot.domain import Network, Payment
from bot.providers.base import Callback, RefundDone
from bot.providers.ipay import (
    CheckoutSession,
    FailureKind,
    IpayClient,
    IpayMalformedReply,
    IpayRefused,
    IpayUnavailable,
    IpayUnverified,
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
    transport = demo_sandbox.transport()
    yield IpayClient(
        transport,
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
    transport = demo_sandbox.transport()
    wrong = IpayClient(
        transport, vid="demo", hash_key="not-the-key", live=False, base_url="http://ipay.test/payments/v2"
    )
    with pytest.raises(IpayRefused, match="Invalid hash"):
        await wrong.initiate("ORD2", 100, "254712345678")
    with pytest.raises(IpayMalformedReply):
        await wrong.search("ORD2")  # a 400 about the hash is no verdict on the payment


async def test_duplicate_order_id_is_refused(client: IpayClient) -> None:
    await client.initiate("ORD3", 100, "254712345678")
    with pytest.raises(IpayRefused, match="Duplicate"):
        await client.initiate("ORD3", 100, "254712345678")


async def test_second_push_to_a_phone_with_an_open_prompt_is_no_clear_refusal(client: IpayClient) -> None:
    """iPay answers it HTTP 500 / header_status 500, as it answers a push that may have gone out
    anyway: no refusal, so the order is watched until its deadline."""
    first = await client.initiate("ORD4", 100, "254712345670")
    second = await client.initiate("ORD5", 100, "254712345670")
    await client.push(Network.MPESA, "254712345670", first.sid)
    with pytest.raises(IpayUnavailable, match="already pending"):
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


# What each sandbox fault on /transact is read as. Its 5xx carries `header_status` 500, iPay's own
# "Internal server error", which is a refusal of the order (no push was made, so nothing is charged).
TRANSACT_FAULTS: dict[Fault, type[Exception]] = {
    Fault.SERVER_ERROR: IpayRefused,
    Fault.HTML: IpayUnavailable,
    Fault.RATE_LIMITED: IpayUnavailable,
    Fault.NOT_JSON: IpayMalformedReply,
    Fault.TIMEOUT: IpayUnavailable,
    Fault.DISCONNECT: IpayUnavailable,
}


async def test_errors_never_carry_the_key(demo_sandbox: IpaySandbox) -> None:
    secret = "super-SECRET-key-123"
    transport = demo_sandbox.transport()
    client = IpayClient(transport, vid="demo", hash_key=secret, live=False, base_url="http://ipay.test/payments/v2")
    for fault, error in TRANSACT_FAULTS.items():
        demo_sandbox.faults.fail_next("/transact", fault)
        with pytest.raises(error) as caught:
            await client.initiate("ORD7", 100, "254712345678")
        assert type(caught.value) is error
        assert secret not in str(caught.value) and secret not in repr(caught.value)


def demo_client(transport: httpx.AsyncBaseTransport) -> IpayClient:
    """The demo vendor's client on `transport` (a canned reply, mostly)."""
    return IpayClient(transport, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test")


def _reply(status: int, body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


async def test_a_paid_record_for_another_order_is_malformed() -> None:
    record = {
        "oid": "OTHER",
        "transaction_code": "QCH4XXXXXX",
        "transaction_amount": "10.00",
        "paid_at": "2022-03-05 16:03:12",
    }
    transport = _reply(200, {"header_status": 200, "status": 1, "data": record})
    client = demo_client(transport)
    with pytest.raises(IpayUnverified, match="another order"):
        await client.search("MINE")


async def test_a_404_that_is_not_ipays_answer_is_not_read_as_not_paid() -> None:
    transport = _reply(404, {"detail": "Not Found"})
    client = demo_client(transport)
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
    transport = _reply(200, {"header_status": 200, "status": 1, "data": data})
    client = demo_client(transport)
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
    transport = _raw_reply(200, reply)
    client = demo_client(transport)
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


# -- the published vectors, and replies that must not be believed ---------------------------

# V6: a /transact reply from a published Ruby wrapper's README (MPESA's paybill differs from
# AIRTEL's, so the order of the two signed pairs matters).
V6_TRANSACT_REPLY = {
    "header_status": 200,
    "status": 1,
    "data": {
        "sid": "RANDEM315E0166024821954305324DEMO",
        "oid": "rand13",
        "amount": "10",
        "account": "AT2222230339Z",
        "payment_channels": [
            {"name": "MPESA", "paybill": "261144"},
            {"name": "AIRTEL", "paybill": "510800"},
            {"name": "EQUITEL", "paybill": "510800"},
        ],
        "hash": "f6ee6f800c0b0029d4e35617a1cd7f7eef1b1ffe82d55d72a209aa38ea2da304",
    },
}


def _v6_with_channels(channels: object) -> dict[str, object]:
    """V6 with its payment_channels replaced by something malformed."""
    data = V6_TRANSACT_REPLY["data"]
    assert isinstance(data, dict)
    return {**V6_TRANSACT_REPLY, "data": {**data, "payment_channels": channels}}


# V7: the same README's search reply; its hash is oid + vid + transaction_code + firstname +
# lastname + paid_at + payment_mode + sid (checked with `openssl dgst -sha256 -hmac demoCHANGED`).
V7_RECORD = {
    "vid": "demo",
    "sid": "RANDEM315E0166025040998533804DEMO",
    "oid": "rand14",
    "transaction_amount": "10.00",
    "transaction_code": "QHB72TPZBP",
    "telephone": "254706311322",
    "firstname": "SAMUEL",
    "lastname": "OYENGO",
    "paid_at": "2022-08-11 23:41:49",
    "payment_mode": "MPESA",
}
V7_HASH = "847876734b40ff598366b5f7b089eb481a100d223e41b8f14df6fdcabcbe2325"
V7_PAID_AT = 1660250509.0  # 2022-08-11 23:41:49 in Nairobi (UTC+3) is 20:41:49 UTC


def _v7(record_changes: dict[str, object] | None = None, reply_hash: str = V7_HASH) -> dict[str, object]:
    record = {**V7_RECORD, **(record_changes or {})}
    return {"header_status": 200, "status": 1, "text": "payment record found", "data": record, "hash": reply_hash}


async def _search_against(status: int, body: object, oid: str = "rand14") -> object:
    transport = _reply(status, body)
    client = demo_client(transport)
    return await client.search(oid)


def test_v6_and_v7_match_the_signing_functions() -> None:
    data = V6_TRANSACT_REPLY["data"]
    assert isinstance(data, dict)
    paybills = {"MPESA": "261144", "AIRTEL": "510800"}
    assert signing.transact_reply_hash(KEY, data["account"], "10", "rand13", data["sid"], paybills) == data["hash"]
    assert signing.search_reply_hash(KEY, V7_RECORD) == V7_HASH


async def test_the_v6_transact_reply_is_accepted() -> None:
    transport = _reply(200, V6_TRANSACT_REPLY)
    client = demo_client(transport)
    session = await client.initiate("rand13", 10, "254706311322")
    assert session.account == "AT2222230339Z" and session.sid == "RANDEM315E0166024821954305324DEMO"


async def test_the_v7_search_reply_is_a_payment_read_literally() -> None:
    result = await _search_against(200, _v7())
    assert result == PaymentFound(
        Payment(receipt_code="QHB72TPZBP", payer_name="SAMUEL OYENGO", amount=10, paid_at=V7_PAID_AT, channel="MPESA")
    )


async def test_an_upper_case_reply_hash_verifies() -> None:
    assert isinstance(await _search_against(200, _v7(reply_hash=V7_HASH.upper())), PaymentFound)


@pytest.mark.parametrize(
    ("changes", "reply_hash"),
    [
        ({}, V7_HASH[:-1] + "0"),  # one digit off
        ({}, None),  # no hash at all
        ({"lastname": ""}, V7_HASH),  # the payer's last name dropped on the way
        ({"transaction_code": "QHB72TPZBQ"}, V7_HASH),  # another receipt
        ({"sid": "OTHERSESSION"}, V7_HASH),
    ],
)
async def test_a_paid_reply_that_does_not_verify_records_nothing(
    changes: dict[str, object], reply_hash: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    body = _v7(changes, reply_hash or "")
    if reply_hash is None:
        del body["hash"]
    transport = _reply(200, body)
    client = demo_client(transport)
    for _ in range(3):
        with pytest.raises(IpayUnverified, match="does not verify"):
            await client.search("rand14")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "rand14" in errors[0].getMessage()  # once per order, not per lookup


async def test_a_paid_reply_naming_another_order_records_nothing() -> None:
    with pytest.raises(IpayUnverified, match="another order"):
        await _search_against(200, _v7(), oid="rand15")


@pytest.mark.parametrize("amount", ["0", "0.00", "-10.00", "-10", 0])
async def test_a_paid_answer_of_nothing_or_less_is_no_payment(amount: object) -> None:
    """The hash does not cover the amount, so a verified reply can still say KES 0: no verdict."""
    with pytest.raises(IpayMalformedReply, match="transaction_amount") as caught:
        await _search_against(200, _v7({"transaction_amount": amount}))
    assert type(caught.value) is IpayMalformedReply


def _signed(changes: dict[str, object]) -> dict[str, object]:
    record = {**V7_RECORD, **changes}
    return _v7(changes, signing.search_reply_hash(KEY, record))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"transaction_code": ""}, "transaction_code"),
        ({"transaction_code": None}, "transaction_code"),
        ({"paid_at": "11/08/2022 23:41"}, "paid_at"),
        ({"paid_at": None}, "paid_at"),
        ({"transaction_amount": "ten"}, "transaction_amount"),
    ],
)
async def test_a_verified_paid_reply_missing_what_a_receipt_needs_is_malformed(
    changes: dict[str, object], match: str
) -> None:
    with pytest.raises(IpayMalformedReply, match=match) as caught:
        await _search_against(200, _signed(changes))
    assert type(caught.value) is IpayMalformedReply


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            200,
            {"header_status": 200, "status": 0, "text": "payment record found", "data": V7_RECORD},
            IpayMalformedReply,
        ),
        (200, {"header_status": 200, "status": 1, "text": "payment record found"}, IpayMalformedReply),
        (200, {"header_status": 200, "status": 0, "text": "Request is being processed"}, IpayMalformedReply),
        (400, {"error": [{"text": "Invalid hash"}]}, IpayMalformedReply),
        (429, {"text": "slow down"}, IpayUnavailable),
        (500, {"header_status": 500, "status": 0, "text": "Internal server error"}, IpayUnavailable),
        (503, "<html>down</html>", IpayUnavailable),
    ],
)
async def test_how_search_answers_are_classified(status: int, body: object, error: type[Exception]) -> None:
    """Only iPay's own 404 is "not paid yet", only a verified record is money: everything else is
    an errored lookup of an exact kind, never a verdict."""
    with pytest.raises(error) as caught:
        await _search_against(status, body)
    assert type(caught.value) is error


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"text": "Too many requests"}, IpayUnavailable),
        (500, {"header_status": 500, "status": 0, "text": "Internal server error"}, IpayRefused),
        (502, {"text": "Bad gateway"}, IpayUnavailable),
        (503, "<html>down</html>", IpayUnavailable),
        (200, "OK", IpayMalformedReply),
        (200, {"header_status": 200, "status": 0, "text": "Vendor is inactive"}, IpayRefused),
        (400, {"error": [{"text": "Invalid telephone number"}]}, IpayRefused),
        (200, _v6_with_channels("MPESA"), IpayMalformedReply),
        (200, _v6_with_channels(["MPESA"]), IpayMalformedReply),
        (200, _v6_with_channels([{"name": "MPESA"}, {"name": "AIRTEL", "paybill": "510800"}]), IpayMalformedReply),
    ],
)
async def test_how_transact_answers_are_classified(status: int, body: object, error: type[Exception]) -> None:
    """Before the push nothing can be charged: a refusal and an outage both fail the order (see
    tests/orders/test_in_doubt.py for what the payer is told), but they are told apart."""
    transport = _reply(status, body) if not isinstance(body, str) else _raw_reply(status, body)
    client = demo_client(transport)
    with pytest.raises(error) as caught:
        await client.initiate("rand13", 10, "254706311322")
    assert type(caught.value) is error


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"text": "Too many requests"}, IpayUnavailable),
        (500, {"header_status": 500, "status": 0, "text": "Internal server error"}, IpayUnavailable),
        (502, {"text": "Bad gateway"}, IpayUnavailable),
        (503, "<html>down</html>", IpayUnavailable),
        (200, "OK", IpayMalformedReply),
        (200, {"header_status": 200, "status": 0, "text": "Request queued"}, IpayUnavailable),
        (400, {"error": [{"text": "Invalid phone number"}]}, IpayRefused),
    ],
)
async def test_how_push_answers_are_classified(status: int, body: object, error: type[Exception]) -> None:
    """Only a 4xx is a refusal of the push; anything else may have put the prompt on the phone,
    so the order is watched until its deadline (tests/orders/test_in_doubt.py)."""
    transport = _reply(status, body) if not isinstance(body, str) else _raw_reply(status, body)
    client = demo_client(transport)
    with pytest.raises(error) as caught:
        await client.push(Network.MPESA, "254706311322", "SID1")
    assert type(caught.value) is error


ECHOED_HASH = "3b6e4e1c2f9a8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a29181716151413121110"


async def test_a_refusal_that_names_the_expected_hash_never_carries_it(caplog: pytest.LogCaptureFixture) -> None:
    wording = f"Hash ID mismatch, please use the correct hash {ECHOED_HASH}"
    transport = _reply(400, {"error": [{"text": wording}]})
    client = demo_client(transport)
    with pytest.raises(IpayRefused) as caught:
        await client.initiate("rand13", 10, "254706311322")
    assert caught.value.reason == "Hash ID mismatch, please use the correct hash [hash removed]"
    assert ECHOED_HASH not in str(caught.value) and ECHOED_HASH[:32] not in repr(caught.value)
    assert PaymentFailed(FailureKind.CANCELLED, wording).text.endswith("[hash removed]")


async def test_an_unrecognised_answer_is_logged_once_by_its_shape(caplog: pytest.LogCaptureFixture) -> None:
    body = {"header_status": 200, "status": 0, "text": f"Queued for 254706311322 ref {ECHOED_HASH}", "extra": 1}
    transport = _reply(200, body)
    client = demo_client(transport)
    for oid in ("ONE", "TWO", "THREE"):
        with pytest.raises(IpayMalformedReply):
            await client.search(oid)
    shapes = [r.getMessage() for r in caplog.records if "shape" in r.getMessage()]
    assert len(shapes) == 1
    assert "HTTP 200, status 0, keys [extra, header_status, status, text]" in shapes[0]
    assert "Queued for" in shapes[0] and "254706311322" not in shapes[0] and ECHOED_HASH not in shapes[0]
    assert shapes[0].startswith("iPay answered /transaction/search in a shape the bot does not know")
    assert "Queued for [number removed] ref [hash removed]" in shapes[0]


@pytest.mark.parametrize(("status", "body", "logged"), [(200, "OK", True), (502, {"text": "Bad gateway"}, False)])
async def test_a_push_answer_is_logged_by_its_shape_only_when_unrecognised(
    status: int, body: object, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A 200 that is not a success is an unknown shape; a 5xx is a known outage."""
    transport = _raw_reply(status, body) if isinstance(body, str) else _reply(status, body)
    client = demo_client(transport)
    with pytest.raises((IpayMalformedReply, IpayUnavailable)):
        await client.push(Network.MPESA, "254706311322", "SID1")
    shapes = [r.getMessage() for r in caplog.records if "shape" in r.getMessage()]
    assert [s.startswith("iPay answered /transact/push/mpesa in a shape") for s in shapes] == ([True] if logged else [])


async def test_what_the_bot_sends_is_exactly_what_ipay_expects() -> None:
    """Every field of /transact, the push and the search, literally, with hashes computed by
    `openssl dgst -sha256 -hmac demoCHANGED`: the sandbox checks with the bot's own signing
    functions, so only literal values notice a field renamed, emptied or changed."""
    sent: list[tuple[str, dict[str, str]]] = []

    def answer(request: httpx.Request) -> httpx.Response:

        sent.append((str(request.url), dict(parse_qsl(request.content.decode(), keep_blank_values=True))))
        if request.url.path.endswith("/transact"):
            return httpx.Response(200, json=V6_TRANSACT_REPLY)
        if "/push/" in request.url.path:
            return httpx.Response(200, json={"header_status": 200, "status": 1, "text": "Push sent"})
        return httpx.Response(404, json={"header_status": 404, "status": 0, "text": "No payment record found"})

    transport = httpx.MockTransport(answer)
    client = IpayClient(
        transport,
        vid="DEMO",
        hash_key=KEY,
        live=True,
        base_url="http://ipay.test/v2/",
        callback_url="https://shop.example/cb",
        customer_email="shop@example.com",
    )
    session = await client.initiate("rand13", 10, "254706311322")
    await client.push(Network.AIRTEL, "254706311322", session.sid)
    assert await client.search("rand14") == NotPaidYet()
    assert sent == [
        (
            "http://ipay.test/v2/transact",
            {
                "live": "1",
                "oid": "rand13",
                "inv": "rand13",
                "amount": "10",
                "tel": "254706311322",
                "eml": "shop@example.com",
                "vid": "demo",
                "curr": "KES",
                "p1": "",
                "p2": "",
                "p3": "",
                "p4": "",
                "cbk": "https://shop.example/cb",
                "cst": "1",
                "crl": "0",
                "autopay": "1",
                "hash": "6f861f645cda5e0bd63963c9df0e91003405196690d1ca05f2a17f6f17825d6f",
            },
        ),
        (
            "http://ipay.test/v2/transact/push/airtel",
            {
                "phone": "254706311322",
                "sid": "RANDEM315E0166024821954305324DEMO",
                "vid": "demo",
                "hash": "c0e0a4b3215dd7cb68167197ccf11aed1ece3de341b77894ba84dc747901fc07",
            },
        ),
        (
            "http://ipay.test/v2/transaction/search",
            {
                "oid": "rand14",
                "vid": "demo",
                "hash": "d6651695be6fdab7dae555c60c8a11668578a68eaf9a3d790d0e8447bd01882e",
            },
        ),
    ]


async def test_an_order_email_is_sent_instead_of_the_shops() -> None:
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json=V6_TRANSACT_REPLY)

    transport = httpx.MockTransport(answer)
    client = IpayClient(
        transport, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test", customer_email="shop@example.com"
    )
    await client.initiate("rand13", 10, "254706311322", email="payer@example.com")
    assert b"eml=payer%40example.com" in sent[0] and b"live=0" in sent[0]


# -- each reading of a reply, pinned to the literal value (the mutation run's survivors) --------


@pytest.mark.parametrize(("amount", "shillings"), [("1.00", 1), ("1000000000", 10**9), (" 250 ", 250)])
async def test_a_paid_amount_is_read_as_whole_shillings(amount: str, shillings: int) -> None:
    result = await _search_against(200, _v7({"transaction_amount": amount}))
    assert isinstance(result, PaymentFound) and result.payment.amount == shillings


@pytest.mark.parametrize("amount", ["10.50", "1000000001", "1000000000.5", "Infinity", "NaN", "1e400"])
async def test_a_paid_amount_that_is_no_whole_plausible_number_is_malformed(amount: str) -> None:
    with pytest.raises(IpayMalformedReply) as caught:
        await _search_against(200, _v7({"transaction_amount": amount}))
    assert str(caught.value) == "/transaction/search reply has no readable transaction_amount"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transaction_code": ""}, "/transaction/search reply has no transaction_code"),
        ({"paid_at": "11/08/2022 23:41"}, "/transaction/search reply has no readable paid_at"),
    ],
)
async def test_an_unreadable_receipt_names_what_is_missing(changes: dict[str, object], message: str) -> None:
    """The message is what the order records as its lookup's error."""
    with pytest.raises(IpayMalformedReply) as caught:
        await _search_against(200, _signed(changes))
    assert str(caught.value) == message


async def test_a_payer_without_a_last_name_or_channel_is_read_as_sent() -> None:
    result = await _search_against(200, _signed({"lastname": None, "payment_mode": None}))
    assert result == PaymentFound(
        Payment(receipt_code="QHB72TPZBP", payer_name="SAMUEL", amount=10, paid_at=V7_PAID_AT, channel="")
    )


async def test_a_reply_for_another_order_is_logged_once_naming_the_order(caplog: pytest.LogCaptureFixture) -> None:
    transport = _reply(200, _v7())
    client = demo_client(transport)
    for _ in range(2):
        with pytest.raises(IpayUnverified) as caught:
            await client.search("rand15")
    assert str(caught.value) == "/transaction/search reply is for another order"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["order rand15: /transaction/search reply is for another order; nothing recorded from it"]


async def test_orders_logged_as_unverified_are_forgotten_oldest_first(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.providers.ipay import client as client_module

    monkeypatch.setattr(client_module, "LOGGED_ORDERS_KEPT", 2)
    transport = _reply(200, _v7())
    client = demo_client(transport)
    for oid in ("A", "B", "A", "C", "A"):
        with pytest.raises(IpayUnverified):
            await client.search(oid)
    logged = [r.getMessage().split(":")[0] for r in caplog.records if r.levelname == "ERROR"]
    assert logged == ["order A", "order B", "order C", "order A"]


async def test_a_200_saying_no_payment_record_is_no_verdict() -> None:
    """Only iPay's 404 is "not paid yet"; the same words in any other answer are unreadable."""
    with pytest.raises(IpayMalformedReply):
        await _search_against(200, {"header_status": 200, "status": 0, "text": "No payment record found"})


async def test_a_lookup_and_a_transact_wait_as_long_as_configured() -> None:
    timeouts: dict[str, object] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        timeouts[request.url.path] = request.extensions["timeout"]
        return httpx.Response(200, json=V6_TRANSACT_REPLY)

    transport = httpx.MockTransport(answer)
    client = demo_client(transport)
    await client.initiate("rand13", 10, "254706311322")
    with pytest.raises(IpayMalformedReply):
        await client.search("rand13")
    assert timeouts == {
        "/transact": {"connect": 5.0, "read": 25.0, "write": 10.0, "pool": 5.0},
        "/transaction/search": {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 5.0},
    }


async def _refusal(call: str, status: int, body: object, headers: dict[str, str] | None = None) -> Exception:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body, headers=headers))
    client = demo_client(transport)
    with pytest.raises(Exception) as caught:
        if call == "push":
            await client.push(Network.MPESA, "254706311322", "SID1")
        else:
            await client.initiate("rand13", 10, "254706311322")
    return caught.value


@pytest.mark.parametrize("call", ["push", "transact"])
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error": [{"text": "Invalid phone"}, {"text": "Invalid amount"}]}, "Invalid phone; Invalid amount"),
        ({"error": [{"code": 7}]}, "iPay said no (HTTP 400)"),
        ({"header_status": 400, "status": 0, "message": "Vendor is inactive"}, "Vendor is inactive"),
        ({"header_status": 400, "status": 0}, "iPay said no (HTTP 400)"),
    ],
)
async def test_a_refusal_carries_ipays_own_words(call: str, body: object, reason: str) -> None:
    refused = await _refusal(call, 400, body)
    assert type(refused) is IpayRefused and refused.reason == reason


@pytest.mark.parametrize(("header", "wait"), [("30", 30.0), ("0", 0.0), ("soon", None)])
async def test_a_rate_limited_transact_carries_retry_after(header: str, wait: float | None) -> None:
    limited = await _refusal("transact", 429, {"text": "Too many"}, {"Retry-After": header})
    assert type(limited) is IpayUnavailable and limited.retry_after == wait
    assert limited.reason == "iPay is rate limiting"


async def test_a_transact_answered_500_without_ipays_own_500_is_an_outage() -> None:
    """iPay's own 500 (header_status 500 in the body) is its refusal; a bare 500 is no answer."""
    down = await _refusal("transact", 500, {"text": "Internal Server Error"})
    assert type(down) is IpayUnavailable and down.reason == "iPay answered HTTP 500"


async def test_a_transact_reply_for_another_order_or_without_sid_is_malformed() -> None:
    data = V6_TRANSACT_REPLY["data"]
    assert isinstance(data, dict)
    other = {**V6_TRANSACT_REPLY, "data": {**data, "oid": "rand99"}}  # hashed over this order all the same
    no_sid = {**V6_TRANSACT_REPLY, "data": {**data, "sid": ""}}
    no_sid["data"]["hash"] = signing.transact_reply_hash(  # type: ignore[index]
        KEY, "AT2222230339Z", "10", "rand13", "", {"MPESA": "261144", "AIRTEL": "510800"}
    )
    for body, message in ((other, "/transact reply is for another order"), (no_sid, "/transact reply has no sid")):
        transport = _reply(200, body)
        client = demo_client(transport)
        with pytest.raises(IpayMalformedReply) as caught:
            await client.initiate("rand13", 10, "254706311322")
        assert str(caught.value) == message


@pytest.mark.parametrize(
    ("status", "body", "reason", "wait"),
    [
        (429, {"text": "Too many"}, "/transact/push/mpesa answered HTTP 429: Too many", 30.0),
        (503, {"status": 0}, "/transact/push/mpesa answered HTTP 503: no text", None),
    ],
)
async def test_a_push_without_an_answer_says_why_and_when_to_ask_again(
    status: int, body: object, reason: str, wait: float | None
) -> None:
    unavailable = await _refusal("push", status, body, {"Retry-After": "30"})
    assert type(unavailable) is IpayUnavailable and unavailable.reason == reason and unavailable.retry_after == wait


async def test_each_unrecognised_shape_is_logged_once_literally(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter(
        [
            httpx.Response(200, text="x" * 300, headers={"content-type": "text/plain"}),
            httpx.Response(200, json={"header_status": 200, "status": 0, "text": "y" * 300}),
            httpx.Response(200, json={"header_status": 200, "status": 0, "text": "y" * 300}),
        ]
    )
    transport = httpx.MockTransport(lambda request: next(answers))
    client = demo_client(transport)
    for error in (IpayMalformedReply, IpayUnavailable, IpayUnavailable):
        with pytest.raises(error):
            await client.push(Network.MPESA, "254706311322", "SID1")
    shapes = [r.getMessage() for r in caplog.records if "shape" in r.getMessage()]
    assert shapes == [
        "iPay answered /transact/push/mpesa in a shape the bot does not know: HTTP 200, status not JSON, "
        f"keys [text/plain], text '{'x' * 200}'",
        "iPay answered /transact/push/mpesa in a shape the bot does not know: HTTP 200, status 0, "
        f"keys [header_status, status, text], text '{'y' * 200}'",
    ]


VALID_CHANNELS = [{"name": "MPESA", "paybill": "261144"}, {"name": "AIRTEL", "paybill": "510800"}]


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ("MPESA", "/transact reply has no payment_channels list"),
        ([*VALID_CHANNELS, "EQUITEL"], "/transact reply has a payment channel that is not an object"),
        (
            [*VALID_CHANNELS, {"name": None, "paybill": "510800"}],
            "/transact reply has a payment channel without name or paybill",
        ),
        (
            [*VALID_CHANNELS, {"name": "EQUITEL", "paybill": True}],
            "/transact reply has a payment channel without name or paybill",
        ),
    ],
)
async def test_a_malformed_channel_beside_the_signed_ones_is_malformed(channels: object, message: str) -> None:
    """The hash covers MPESA and AIRTEL only: every other entry is checked by its shape."""
    transport = _reply(200, _v6_with_channels(channels))
    client = demo_client(transport)
    with pytest.raises(IpayMalformedReply) as caught:
        await client.initiate("rand13", 10, "254706311322")
    assert str(caught.value) == message


def _v6_with(changes: dict[str, object]) -> dict[str, object]:
    data = V6_TRANSACT_REPLY["data"]
    assert isinstance(data, dict)
    return {**V6_TRANSACT_REPLY, "data": {**data, **changes}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_v6_with({"account": None}), "/transact reply has no account or amount"),
        (_v6_with({"amount": True}), "/transact reply has no account or amount"),
        (_v6_with({"payment_channels": [VALID_CHANNELS[0]]}), "/transact reply lacks the MPESA or AIRTEL channel"),
        (_v6_with({"hash": "0" * 64}), "/transact reply hash does not match"),
    ],
)
async def test_an_unusable_transact_reply_says_exactly_why(body: object, message: str) -> None:
    transport = _reply(200, body)
    client = demo_client(transport)
    with pytest.raises(IpayMalformedReply) as caught:
        await client.initiate("rand13", 10, "254706311322")
    assert str(caught.value) == message


async def test_a_signed_session_with_status_0_is_a_refusal() -> None:
    """Only `status` 1 opens a session, whatever data comes with another status."""
    refused = await _refusal("transact", 200, {**V6_TRANSACT_REPLY, "status": 0})
    assert type(refused) is IpayRefused and refused.reason == "iPay said no (HTTP 200)"


async def test_a_transact_answer_not_json_is_logged_under_its_path(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(IpayMalformedReply):
        await _initiate_against("OK", oid="rand13")
    shapes = [r.getMessage() for r in caplog.records if "shape" in r.getMessage()]
    assert len(shapes) == 1 and shapes[0].startswith("iPay answered /transact in a shape")


# -- refunds (docs/ipay.md §6) ----------------------------------------------------------------


async def _paid_receipt(client: IpayClient, clock: ManualClock, oid: str, amount: int) -> str:
    session = await client.initiate(oid, amount, "254712345678")
    await client.push(Network.MPESA, "254712345678", session.sid)
    clock.advance(3)
    found = await client.search(oid)
    assert isinstance(found, PaymentFound)
    return found.payment.receipt_code


async def test_a_refund_is_done_with_the_amount_and_balances_ipay_sent(
    client: IpayClient, demo_sandbox: IpaySandbox, clock: ManualClock
) -> None:
    code = await _paid_receipt(client, clock, "ORD1", 250)
    demo_sandbox.top_up(1000)
    done = await client.refund(code)
    assert done == RefundDone(code=code, amount="250.00", c2b_funds="0.00", b2c_funds="1000.00")
    again = await _refund_error(client, code)
    assert type(again) is IpayRefused and again.reason == "Transaction already refunded"


async def test_a_refund_ipay_refuses_is_refused_in_its_words(client: IpayClient, clock: ManualClock) -> None:
    unknown = await _refund_error(client, "QXX0000000")
    assert type(unknown) is IpayRefused and unknown.reason == "Transaction not found"
    code = await _paid_receipt(client, clock, "ORD2", 250)
    assert await client.refund(code) == RefundDone(code=code, amount="250.00", c2b_funds="0.00", b2c_funds="0.00")


async def _refund_error(client: IpayClient, code: str) -> Exception:
    with pytest.raises(Exception) as caught:
        await client.refund(code)
    return caught.value


async def test_a_refund_sends_exactly_the_code_the_vendor_and_their_hash() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"status": 200, "text": "Refund done", "code": "QCH4XXXXXX"})

    transport = httpx.MockTransport(answer)
    client = IpayClient(transport, vid="demo", hash_key=KEY, live=False, base_url="http://ipay.test/payments/v2")
    done = await client.refund("QCH4XXXXXX")
    assert done == RefundDone(code="QCH4XXXXXX", amount="", c2b_funds="", b2c_funds="")
    (request,) = sent
    assert request.method == "POST" and str(request.url) == "http://ipay.test/payments/v2/transaction/refund"
    assert dict(parse_qsl(request.content.decode())) == {
        "code": "QCH4XXXXXX",
        "vid": "demo",
        "hash": signing.refund_hash(KEY, "QCH4XXXXXX", "demo"),
    }


async def _refund_against(status: int, body: object, headers: dict[str, str] | None = None) -> RefundDone | Exception:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    transport = httpx.MockTransport(answer)
    client = demo_client(transport)
    try:
        return await client.refund("QCH4XXXXXX")
    except Exception as exc:
        return exc


DONE = {
    "status": 200,
    "text": "Refund done",
    "amount": "500.00",
    "code": "QCH4XXXXXX",
    "c2bfunds": "70.00",
    "b2cfunds": "9.00",
}


@pytest.mark.parametrize(
    ("status", "body", "done"),
    [
        (200, DONE, RefundDone("QCH4XXXXXX", "500.00", "70.00", "9.00")),
        (200, {**DONE, "status": "200"}, RefundDone("QCH4XXXXXX", "500.00", "70.00", "9.00")),
        (200, {**DONE, "text": "  REFUND DONE "}, RefundDone("QCH4XXXXXX", "500.00", "70.00", "9.00")),
        (200, {**DONE, "code": None}, RefundDone("QCH4XXXXXX", "500.00", "70.00", "9.00")),
        (200, {**DONE, "code": ""}, RefundDone("QCH4XXXXXX", "500.00", "70.00", "9.00")),
        (200, {"status": 200, "text": "Refund done", "amount": None}, RefundDone("QCH4XXXXXX", "", "", "")),
        (400, DONE, RefundDone("QCH4XXXXXX", "500.00", "70.00", "9.00")),  # the body decides, not the HTTP status
    ],
)
async def test_a_refund_is_done_only_when_ipay_says_refund_done(status: int, body: object, done: RefundDone) -> None:
    assert await _refund_against(status, body) == done


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "reason", "wait"),
    [
        (500, DONE, None, IpayUnavailable, "/transaction/refund answered HTTP 500", None),
        (503, "<html>down</html>", None, IpayUnavailable, "/transaction/refund answered HTTP 503", None),
        (429, DONE, {"Retry-After": "30"}, IpayUnavailable, "/transaction/refund is rate limited", 30.0),
        (429, {}, None, IpayUnavailable, "/transaction/refund is rate limited", None),
        (200, "Refund done", None, IpayMalformedReply, "iPay answered HTTP 200 without a JSON object", None),
        (499, "<html>no</html>", None, IpayMalformedReply, "iPay answered HTTP 499 without a JSON object", None),
        (
            200,
            {**DONE, "code": "QOTHER0000"},
            None,
            IpayMalformedReply,
            "/transaction/refund reply is for another payment",
            None,
        ),
        (400, {"status": 400, "text": "Transaction not found"}, None, IpayRefused, "Transaction not found", None),
        (499, {"status": 400, "text": "Insufficient funds"}, None, IpayRefused, "Insufficient funds", None),
        (200, {"status": 400}, None, IpayRefused, "iPay did not refund it (status 400)", None),
        (200, {"text": "Refund done"}, None, IpayRefused, "Refund done", None),
        (200, {"status": 201, "text": "Refund done"}, None, IpayRefused, "Refund done", None),
        (200, {"status": 200, "text": "Refund pending"}, None, IpayRefused, "Refund pending", None),
        (200, {"status": 200}, None, IpayRefused, "iPay did not refund it (status 200)", None),
        (200, {"status": 200, "message": "Refund done"}, None, IpayRefused, "Refund done", None),
    ],
)
async def test_a_refund_without_refund_done_says_exactly_what_came_back(
    status: int, body: object, headers: dict[str, str] | None, error: type[Exception], reason: str, wait: float | None
) -> None:
    """A refusal is a clean answer that moved nothing; anything unclear (a 5xx, a 429, no JSON, a
    reply about another payment) is no answer: the money may have moved."""
    caught = await _refund_against(status, body, headers)
    assert type(caught) is error and str(caught) == reason
    assert getattr(caught, "retry_after", None) == wait


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (httpx.ConnectError("refused"), "/transaction/search could not be reached (ConnectError)"),
        (httpx.RemoteProtocolError("cut"), "/transaction/search could not be reached (RemoteProtocolError)"),
        (httpx.ReadTimeout("slow"), "/transaction/search timed out"),
    ],
)
async def test_a_call_without_an_answer_says_which_call_and_how_it_failed(fault: Exception, reason: str) -> None:
    """The words the order's last error and the log show: the call, and what kind of failure."""

    def answer(request: httpx.Request) -> httpx.Response:
        raise fault

    transport = httpx.MockTransport(answer)
    client = demo_client(transport)
    with pytest.raises(IpayUnavailable) as caught:
        await client.search("ORD1")
    assert type(caught.value) is IpayUnavailable and caught.value.reason == reason


async def test_the_client_reads_ipays_callback_by_its_id_and_status_code(client: IpayClient) -> None:
    """iPay's callback (docs/ipay.md): the order and a status code; only a lookup decides."""
    assert client.read_callback({"id": "ORD1", "status": "aei7p7yrx4ae34"}) == Callback("ORD1", "success", True)
    assert client.read_callback({"id": "ORD1", "status": "fe2707etr5s4wq"}, b"ignored") == Callback(
        "ORD1", "failed", False
    )
    assert client.read_callback({"id": "ORD1", "status": "unknown"}) is None


class _ReadsContent(httpx.AsyncBaseTransport):
    """A transport that reads the request's body as `request.content`, without reading its
    stream first (as a user's own transport or a test double may), and keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], dict[str, str]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, dict(parse_qsl(request.content.decode())), dict(request.headers)))
        return httpx.Response(404, json={"header_status": 404, "status": 0, "text": "no payment record found"})


async def test_a_request_is_sent_whole_with_its_headers_to_any_transport() -> None:
    transport = _ReadsContent()
    client = IpayClient(transport, vid="demo", hash_key=KEY, live=False, base_url="https://ipay.test:8443/v3")
    assert await client.search("rand14") == NotPaidYet()
    path, form, headers = transport.seen[0]
    assert path == "/v3/transaction/search"
    assert form == {"oid": "rand14", "vid": "demo", "hash": signing.search_hash(KEY, "rand14", "demo")}
    body = urlencode(form).encode()
    assert headers["host"] == "ipay.test:8443" and headers["content-length"] == str(len(body))
    assert headers["content-type"] == "application/x-www-form-urlencoded"
