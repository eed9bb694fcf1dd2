"""initData as Telegram signs it for the Mini App, for the tests' users."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from bot.miniapp.auth import sign
from tests.conftest import TEST_TOKEN


def init_data(
    user_id: int, *, first_name: str = "Amina", language: str = "en", auth_date: float, token: str = TEST_TOKEN
) -> str:
    user = {"id": user_id, "first_name": first_name, "username": first_name.lower(), "language_code": language}
    fields = {
        "auth_date": str(int(auth_date)),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user, separators=(",", ":")),
    }
    return urlencode({**fields, "hash": sign(fields, token)}, quote_via=quote)
