"""iPay's hash strings, pinned field by field.

Each vector was computed outside Python with
`printf '%s' "<string>" | openssl dgst -sha256 -hmac demoCHANGED`, over fields that are all
non-empty and all different (p1-p4, cbk, and an `inv` that is not the `oid`), so a field
renamed, dropped or moved changes the hash. The sandbox signs with the same functions and so
cannot notice such a change: these vectors are what pins the order iPay expects.
"""

from __future__ import annotations

import pytest

from bot.providers.ipay import signing

KEY = "demoCHANGED"

TRANSACT = {
    "live": "0",
    "oid": "ORD123",
    "inv": "INV456",
    "amount": "500",
    "tel": "254712345678",
    "eml": "customer@example.com",
    "vid": "demo",
    "curr": "KES",
    "p1": "alpha",
    "p2": "bravo",
    "p3": "charlie",
    "p4": "delta",
    "cst": "1",
    "cbk": "https://shop.example/ipay/callback",
    "crl": "0",  # sent, not signed
    "autopay": "1",  # sent, not signed
}
# 0 ORD123 INV456 500 254712345678 customer@example.com demo KES alpha bravo charlie delta 1 https://shop.example/ipay/callback
TRANSACT_VECTOR = "bf70f3752dab92fa929f9ee562c9bbf8627423bd2a707ee622eb40796509c4c9"

RECORD = {
    "oid": "ORD123",
    "vid": "demo",
    "transaction_code": "QCH4XXXXXX",
    "firstname": "JOHN",
    "lastname": "DOE",
    "paid_at": "2022-03-05 16:03:12",
    "payment_mode": "MPESA",
    "sid": "SIDXYZ",
}


def test_transact_hash_signs_every_field_in_ipays_order() -> None:
    assert signing.transact_hash(KEY, TRANSACT) == TRANSACT_VECTOR


@pytest.mark.parametrize("swapped", [("p1", "p2"), ("p3", "p4"), ("oid", "inv"), ("cst", "cbk"), ("tel", "eml")])
def test_transact_hash_changes_when_two_fields_trade_places(swapped: tuple[str, str]) -> None:
    first, second = swapped
    traded = {**TRANSACT, first: TRANSACT[second], second: TRANSACT[first]}
    assert signing.transact_hash(KEY, traded) != TRANSACT_VECTOR


def test_transact_reply_hash_signs_mpesa_then_airtel_whatever_else_is_listed() -> None:
    # FT2311233145 50 ORD123 SIDXYZ MPESA 261144 AIRTEL 510800
    vector = "cd3fc0363efd66e73479cac67c7a3ff193dea9260bfbef271d0d9732127dcfd3"
    listed = {"EQUITEL": "247247", "AIRTEL": "510800", "MPESA": "261144"}
    assert signing.transact_reply_hash(KEY, "FT2311233145", "50", "ORD123", "SIDXYZ", listed) == vector
    with pytest.raises(KeyError):
        signing.transact_reply_hash(KEY, "FT2311233145", "50", "ORD123", "SIDXYZ", {"AIRTEL": "510800"})


def test_search_reply_hash_reads_missing_and_null_fields_as_empty() -> None:
    # ORD123 demo QCH4XXXXXX JOHN (no last name) 2022-03-05 16:03:12 MPESA SIDXYZ
    no_last_name = "9c943d3acfdb069d8a57c998cbd9636758b35f7a7b50c74eb3e9b6db5d1b9407"
    assert signing.search_reply_hash(KEY, {**RECORD, "lastname": None}) == no_last_name
    assert signing.search_reply_hash(KEY, {k: v for k, v in RECORD.items() if k != "lastname"}) == no_last_name
    # ORD123 demo QCH4XXXXXX (no names) 2022-03-05 16:03:12 MPESA SIDXYZ
    no_names = "7ea33c0ea72293c4a26e16d6647af9bd5ab4b3ebdda5281ca125d735c9f867e9"
    assert signing.search_reply_hash(KEY, {**RECORD, "firstname": None, "lastname": ""}) == no_names


def test_a_reply_hash_in_capitals_is_the_same_hash() -> None:
    assert signing.same_hash(TRANSACT_VECTOR, TRANSACT_VECTOR.upper())
    assert signing.same_hash(TRANSACT_VECTOR, TRANSACT_VECTOR)


@pytest.mark.parametrize("given", [None, 0, "", TRANSACT_VECTOR[:-1], TRANSACT_VECTOR[:-1] + "0", [TRANSACT_VECTOR]])
def test_anything_else_is_not_the_hash(given: object) -> None:
    assert not signing.same_hash(TRANSACT_VECTOR, given)


def test_transact_fields_left_out_are_signed_as_empty() -> None:
    # 0 ORD123 ORD123 500 254712345678 customer@example.com demo KES (no p1-p4) 1 (no cbk)
    vector = "f2b29a2b71037aa00d6f37ef50f5b7fdbad633eb349b3cc5d34dc3a1a4bd64b2"
    fields = {name: TRANSACT[name] for name in ("live", "oid", "amount", "tel", "eml", "vid", "curr", "cst")}
    assert signing.transact_hash(KEY, {**fields, "inv": "ORD123"}) == vector
    assert signing.transact_hash(KEY, {**fields, "inv": "ORD123", "p1": "", "cbk": None}) == vector


def test_refund_hash_matches_openssl_vector() -> None:
    """The refund's query string, keys in alphabetical order: a refund signed otherwise is refused."""
    assert (
        signing.refund_hash(KEY, "QHB72TPZBP", "demo")
        == "20c736bbc04d4eb66c8ca6410a9ef90d9c360ded2e3fe9229da66897d63fc747"
    )
