"""The Mini App's initData check, against Telegram's documented algorithm: a fixed vector
computed outside Python (openssl), one computed here with hmac, and the ways it must refuse."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote, urlencode

import pytest

from bot.config import Settings
from bot.miniapp.auth import InitDataRefused, Role, from_header, role_of, validate

TOKEN = "123456:TEST-token"
USER = '{"id":501,"first_name":"Amina","username":"amina","language_code":"sw"}'
FIELDS = {"auth_date": "1764000000", "query_id": "AAHdF6IQAAAAAN0XohDhrOrc", "user": USER}
# openssl: SK=$(printf %s "$TOKEN" | openssl dgst -sha256 -hmac WebAppData -binary | xxd -p -c 256)
#          printf 'auth_date=...\nquery_id=...\nuser=...' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$SK
FIXED_HASH = "f5f313310988cd663bbcd9a0a6db90573e5feab99300249d012ddf53c6e35758"
NOW = 1764000100.0


def init_data(fields: dict[str, str], digest: str) -> str:
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def test_the_fixed_vector_is_accepted() -> None:
    user = validate(init_data(FIELDS, FIXED_HASH), TOKEN, NOW, 3600)
    assert (user.id, user.first_name, user.username, user.language_code) == (501, "Amina", "amina", "sw")
    assert user.requested_by == "Amina (@amina, 501)"


def test_a_vector_computed_by_hand_from_the_documented_steps() -> None:
    fields = {**FIELDS, "user": json.dumps({"id": 77, "first_name": "Baraka"}), "auth_date": "1764000050"}
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    assert validate(init_data(fields, digest), TOKEN, NOW, 3600).id == 77


@pytest.mark.parametrize(
    "raw, why",
    [
        (init_data(FIELDS, FIXED_HASH.replace("f", "e", 1)), "bad signature"),
        (init_data({**FIELDS, "user": USER.replace("501", "502")}, FIXED_HASH), "bad signature"),
        (init_data(FIELDS, FIXED_HASH) + "&hash=" + FIXED_HASH, "repeated field"),
        (urlencode(FIELDS), "bad signature"),
        ("", "malformed"),
    ],
)
def test_forged_or_malformed_init_data_is_refused(raw: str, why: str) -> None:
    with pytest.raises(InitDataRefused) as refused:
        validate(raw, TOKEN, NOW, 3600)
    assert refused.value.reason == why


def test_another_bots_token_does_not_validate() -> None:
    with pytest.raises(InitDataRefused):
        validate(init_data(FIELDS, FIXED_HASH), "654321:OTHER-token", NOW, 3600)


def test_init_data_older_than_the_allowed_age_is_refused() -> None:
    assert validate(init_data(FIELDS, FIXED_HASH), TOKEN, 1764000000 + 3600, 3600).id == 501
    with pytest.raises(InitDataRefused, match="expired"):
        validate(init_data(FIELDS, FIXED_HASH), TOKEN, 1764000000 + 3601, 3600)


def test_the_header_scheme_is_tma() -> None:
    assert from_header("tma " + init_data(FIELDS, FIXED_HASH), TOKEN, NOW, 3600).id == 501
    for header in ("", "Bearer " + init_data(FIELDS, FIXED_HASH), "tma "):
        with pytest.raises(InitDataRefused):
            from_header(header, TOKEN, NOW, 3600)


def test_roles_come_from_the_user_id() -> None:
    settings = Settings(telegram_bot_token=TOKEN, admin_ids=frozenset({1}), staff_ids=frozenset({2}))
    assert [role_of(settings, uid) for uid in (1, 2, 3)] == [Role.ADMIN, Role.STAFF, Role.CUSTOMER]
