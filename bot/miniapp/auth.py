"""Who is using the Mini App: Telegram's signed `initData`, checked exactly as Telegram documents it.

`secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token)`; the data-check string is every
field but `hash` as `key=value`, sorted by key and joined by a line feed; the `hash` field must
equal `hex(HMAC_SHA256(key=secret_key, msg=data_check_string))`. A valid signature older than
the allowed age is refused too, so a leaked initData stops working. No cookie and no session:
every request carries its initData in `Authorization: tma <initData>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl

from bot.config import Settings

SCHEME = "tma"


class InitDataRefused(Exception):
    """The initData is missing, malformed, forged or too old: `reason` says which (for logs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    CUSTOMER = "customer"  # anyone else: the app is not for them


@dataclass(frozen=True)
class WebAppUser:
    """The person Telegram vouches for, and when it signed."""

    id: int
    first_name: str
    username: str | None
    language_code: str | None
    auth_date: int
    last_name: str | None = None

    @property
    def full_name(self) -> str:
        """As Telegram's clients show the person (and the chat's handlers name them)."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def requested_by(self) -> str:
        """How the shop sees who asked, as the chat writes it: "Amina (@amina, 501)"."""
        handle = f"@{self.username}, " if self.username else ""
        return f"{self.full_name} ({handle}{self.id})"


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def sign(fields: dict[str, str], bot_token: str) -> str:
    """The `hash` Telegram puts beside these fields."""
    return hmac.new(secret_key(bot_token), data_check_string(fields).encode(), hashlib.sha256).hexdigest()


def validate(init_data: str, bot_token: str, now: float, max_age: float) -> WebAppUser:
    """The user inside a genuine, fresh initData; `InitDataRefused` otherwise."""
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataRefused("malformed") from None
    if not pairs:
        raise InitDataRefused("malformed")
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InitDataRefused("repeated field")
    given = fields.get("hash", "")
    if not hmac.compare_digest(given.encode(), sign(fields, bot_token).encode()):
        raise InitDataRefused("bad signature")
    try:
        auth_date = int(fields["auth_date"])
        user = json.loads(fields["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError):
        raise InitDataRefused("no user or auth_date") from None
    if now - auth_date > max_age or auth_date - now > 60:  # a minute of clock skew is forgiven
        raise InitDataRefused("expired")
    return WebAppUser(
        user_id,
        str(user.get("first_name") or ""),
        user.get("username") or None,
        user.get("language_code") or None,
        auth_date,
        str(user.get("last_name") or "") or None,
    )


def from_header(authorization: str, bot_token: str, now: float, max_age: float) -> WebAppUser:
    """`Authorization: tma <initData>`, validated."""
    scheme, _, init_data = authorization.partition(" ")
    if scheme.lower() != SCHEME or not init_data.strip():
        raise InitDataRefused("no tma authorization")
    return validate(init_data.strip(), bot_token, now, max_age)


def role_of(settings: Settings, user_id: int) -> Role:
    if user_id in settings.admin_ids:
        return Role.ADMIN
    if user_id in settings.staff_ids:
        return Role.STAFF
    return Role.CUSTOMER
