"""Settings, read once at start-up from the environment (and an optional `.env`).

A missing or malformed value raises `ConfigError` naming the variable and what it
expects; `bot.py` prints that one line and exits with status 2, so a merchant sees
what to fix instead of a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit

DEMO_VID = "demo"
DEMO_HASH_KEY = "demoCHANGED"
DEFAULT_IPAY_BASE_URL = "https://apis.ipayafrica.com/payments/v2"
DEFAULT_DARAJA_BASE_URL = "https://api.safaricom.co.ke"
DARAJA_SANDBOX_CALLBACK_URL = "http://127.0.0.1:8080/daraja/callback"
IPAY_FLOOR = 10  # iPay refuses anything below 10 shillings.

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class DarajaSettings:
    """A shop's own Daraja (M-Pesa Express) app and Paybill or Till (docs/daraja.md)."""

    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    shortcode: str
    passkey: str = field(repr=False)
    callback_url: str  # the public base Daraja's callbacks come to, served on PORT
    base_url: str = DEFAULT_DARAJA_BASE_URL
    till_number: str = ""  # set: Buy Goods (the till is paid; the shortcode is the store number)
    register_c2b: bool = False  # register C2B URLs at start-up: payments made by hand are matched
    initiator: str = ""  # the API operator's user name reversals (refunds) are made as
    security_credential: str = field(default="", repr=False)  # its password, encrypted as the portal gives it

    @property
    def refunds(self) -> bool:
        """Reversals need the initiator and its credential; without them a refund is refused."""
        return bool(self.initiator and self.security_credential)

    @property
    def callback_path(self) -> str:
        return urlsplit(self.callback_url).path or "/daraja/callback"


@dataclass(frozen=True)
class Settings:
    telegram_bot_token: str = field(repr=False)
    telegram_base_url: str | None = None
    ipay_vid: str = DEMO_VID
    ipay_hash_key: str = field(default=DEMO_HASH_KEY, repr=False)
    ipay_live: bool = False
    ipay_base_url: str = DEFAULT_IPAY_BASE_URL
    ipay_callback_url: str = ""
    ipay_customer_email: str = "customer@example.com"
    ipay_sandbox: bool = False
    shop_name: str = ""  # unset: "the shop" in the reader's language (`formats.shop_words`)
    database_path: Path = Path("data/payments.sqlite3")
    database_url: str = field(default="", repr=False)  # PostgreSQL instead of SQLite; holds a password
    merchant_chat_id: int | None = None
    min_amount: int = IPAY_FLOOR
    max_amount: int = 150_000
    poll_interval_seconds: float = 5.0
    payment_timeout_seconds: float = 600.0
    conversation_timeout_seconds: float = 300.0
    poll_concurrency: int = 50
    port: int = 8080
    admin_ids: frozenset[int] = frozenset()
    staff_ids: frozenset[int] = frozenset()
    pay_access: str = "public"  # "public": anyone may /pay; "staff": admins and staff only
    pay_limit_per_user: int = 5
    pay_limit_user_window_seconds: float = 600.0
    pay_limit_per_phone: int = 3  # per hour
    daily_summary_time: time = time(21, 0)  # Africa/Nairobi
    merchant_language: str = "en"  # the merchant chat's lines and summaries: "en" or "sw"
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    request_ttl_hours: float = 24.0  # how long a payment request (/request, inline, API) stays payable
    refund_max_age_days: int = 30  # a payment older than this is not refunded from the bot
    api_refunds: bool = False  # whether an API key may refund the payments it created
    miniapp_url: str = ""  # the https origin the Mini App is opened at; unset: WEBHOOK_URL's
    miniapp_max_age_seconds: float = 3600.0  # an initData signed longer ago than this is refused
    # Telegram's script, loaded as its documentation says; tests point it at their stand-in.
    miniapp_script_url: str = "https://telegram.org/js/telegram-web-app.js"
    daraja: DarajaSettings | None = None  # set: payments go through Daraja instead of iPay

    @property
    def payment_provider(self) -> str:
        return "daraja" if self.daraja is not None else "ipay"

    @property
    def serves_http(self) -> bool:
        """Whether the bot runs its web server (webhook, callback, REST API, health)."""
        return bool(self.webhook_url or self.ipay_callback_url or self.api_keys or self.miniapp_url or self.daraja)

    @property
    def miniapp_base(self) -> str:
        """The https origin the Mini App is served at (empty: no Mini App)."""
        return self.miniapp_url or self.webhook_url

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids

    def may_pay(self, user_id: int) -> bool:
        return self.pay_access == "public" or user_id in self.admin_ids or user_id in self.staff_ids

    @property
    def database(self) -> Path | str:
        """Where the store lives: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.database_url or self.database_path

    @property
    def callback_path(self) -> str:
        """The path of IPAY_CALLBACK_URL, which this bot serves when it is set."""
        return urlsplit(self.ipay_callback_url).path or "/ipay/callback"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log, a message or an exception."""
        database_password = urlsplit(self.database_url).password if self.database_url else None
        return tuple(
            s
            for s in (
                self.telegram_bot_token,
                self.ipay_hash_key,
                *(
                    (self.daraja.consumer_secret, self.daraja.passkey, self.daraja.security_credential)
                    if self.daraja
                    else ()
                ),
                self.webhook_secret,
                *self.api_keys,
                database_password,
            )
            if s
        )


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name, "").strip()
    return value if value else default


def _parse(
    env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], expects: str, *, secret: bool = False
) -> T:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        got = "" if secret else f", got {raw!r}"  # a secret is never echoed, even a wrong one
        raise ConfigError(f"{name} expects {expects}{got}") from None


def _flag(raw: str) -> bool:
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _positive_seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError(raw)
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(raw)
    return value


_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


def _https_url(raw: str) -> str:
    if not raw.startswith("https://"):
        raise ValueError(raw)
    return raw.rstrip("/")


def _api_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    if any(len(key) < 24 for key in keys):
        raise ValueError("short key")
    return keys


def _id_set(raw: str) -> frozenset[int]:
    return frozenset(int(part) for part in raw.replace(" ", "").split(",") if part)


def _access(raw: str) -> str:
    if raw.lower() not in ("public", "staff"):
        raise ValueError(raw)
    return raw.lower()


def _language(raw: str) -> str:
    if raw.lower() not in ("en", "sw"):
        raise ValueError(raw)
    return raw.lower()


def _clock_time(raw: str) -> time:
    hours, _, minutes = raw.partition(":")
    return time(int(hours), int(minutes))


def _postgres_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ValueError(raw)
    return raw


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError(raw)
    return raw.rstrip("/")


def load_settings(
    env: Mapping[str, str] | None = None, *, sandbox: bool = False, console: bool = False, provider: str | None = None
) -> Settings:
    """Build `Settings` from `env` (default: the process environment).

    `sandbox` forces the in-process iPay sandbox (`--sandbox`); `console` also replaces
    Telegram with the terminal, so no token is needed.
    """
    env = os.environ if env is None else env
    if provider is not None:  # `--provider` wins over PAYMENT_PROVIDER
        env = {**env, "PAYMENT_PROVIDER": provider}
    token = _token(env, console)
    use_sandbox, live = _ipay_mode(env, sandbox or console)
    webhook_url, webhook_secret = _webhook(env)
    database_url = _database_url(env)
    merchant = _parse(env, "MERCHANT_CHAT_ID", None, int, "a Telegram chat id (a whole number, may be negative)")
    min_amount, max_amount = _amounts(env)
    checked = _Checked(
        token, use_sandbox, live, webhook_url, webhook_secret, database_url, merchant, min_amount, max_amount
    )
    return replace(_settings(env, checked), daraja=_daraja(env, use_sandbox))


_DARAJA_REQUIRED = {
    "DARAJA_CONSUMER_KEY": "the consumer key of your Daraja app",
    "DARAJA_CONSUMER_SECRET": "the consumer secret of your Daraja app",
    "DARAJA_SHORTCODE": "your Paybill number (or, with a Till, its store number)",
    "DARAJA_PASSKEY": "the Lipa na M-Pesa Online passkey Safaricom gave you",
    "DARAJA_CALLBACK_URL": "the public https URL Daraja's callbacks reach this bot at",
}
_DARAJA_SANDBOX = {  # Daraja's own sandbox values, which the built-in Daraja sandbox accepts
    "DARAJA_CONSUMER_KEY": "sandbox-key",
    "DARAJA_CONSUMER_SECRET": "sandbox-secret",
    "DARAJA_SHORTCODE": "174379",
    "DARAJA_PASSKEY": "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
    "DARAJA_CALLBACK_URL": DARAJA_SANDBOX_CALLBACK_URL,
}


def _daraja(env: Mapping[str, str], use_sandbox: bool) -> DarajaSettings | None:
    """Daraja's settings when PAYMENT_PROVIDER=daraja; with the sandbox on, Daraja's own
    sandbox values stand in for any left unset."""
    provider = _parse(env, "PAYMENT_PROVIDER", "ipay", _provider, "ipay or daraja")
    if provider != "daraja":
        return None
    values = {}
    for name, what in _DARAJA_REQUIRED.items():
        value = _text(env, name) or (_DARAJA_SANDBOX[name] if use_sandbox else None)
        if value is None:
            raise ConfigError(f"{name} is required with PAYMENT_PROVIDER=daraja: {what}")
        values[name] = value
    for name in ("DARAJA_SHORTCODE", "DARAJA_TILL_NUMBER"):
        raw = values.get(name, _text(env, name, "") or "")
        if raw and not (raw.isdigit() and 5 <= len(raw) <= 7):
            raise ConfigError(f"{name} expects a Paybill, Till or store number (5 to 7 digits), got {raw!r}")
    try:
        callback_url = _callback_url(values["DARAJA_CALLBACK_URL"])
    except ValueError:
        raise ConfigError(
            "DARAJA_CALLBACK_URL expects an https URL (or http on 127.0.0.1 or localhost for testing)"
        ) from None
    return DarajaSettings(
        consumer_key=values["DARAJA_CONSUMER_KEY"],
        consumer_secret=values["DARAJA_CONSUMER_SECRET"],
        shortcode=values["DARAJA_SHORTCODE"],
        passkey=values["DARAJA_PASSKEY"],
        callback_url=callback_url,
        base_url=_parse(env, "DARAJA_BASE_URL", DEFAULT_DARAJA_BASE_URL, _http_url, "an http(s) URL"),
        till_number=_text(env, "DARAJA_TILL_NUMBER", "") or "",
        register_c2b=_parse(env, "DARAJA_REGISTER_C2B", False, _flag, "1 (register the C2B URLs at start-up) or 0"),
        initiator=_text(env, "DARAJA_INITIATOR", "") or "",
        security_credential=_text(env, "DARAJA_SECURITY_CREDENTIAL", "") or "",
    )


def _provider(raw: str) -> str:
    if raw.lower() not in ("ipay", "daraja"):
        raise ValueError(raw)
    return raw.lower()


def _callback_url(raw: str) -> str:
    """https, or http on a loopback host (a test's or the sandbox's)."""
    parts = urlsplit(raw)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")):
        return raw.rstrip("/")
    raise ValueError(raw)


class _Checked(NamedTuple):
    """The settings that are checked against each other before `Settings` is built."""

    token: str | None
    use_sandbox: bool
    live: bool
    webhook_url: str
    webhook_secret: str
    database_url: str
    merchant: int | None
    min_amount: int
    max_amount: int


def _token(env: Mapping[str, str], console: bool) -> str | None:
    token = _text(env, "TELEGRAM_BOT_TOKEN")
    if token is None and not console:
        raise ConfigError("TELEGRAM_BOT_TOKEN is required: the token @BotFather gave your bot")
    return token


def _ipay_mode(env: Mapping[str, str], forced_sandbox: bool) -> tuple[bool, bool]:
    """(sandbox, live): never both."""
    use_sandbox = forced_sandbox or _parse(env, "IPAY_SANDBOX", False, _flag, "0 or 1")
    live = _parse(env, "IPAY_LIVE", False, _flag, "0 or 1")
    if use_sandbox and live:
        raise ConfigError("IPAY_LIVE expects 0 when the sandbox is on (IPAY_SANDBOX=1, --sandbox or --console)")
    return use_sandbox, live


def _webhook(env: Mapping[str, str]) -> tuple[str, str]:
    """(url, secret): a webhook needs a secret Telegram sends back with every update."""
    webhook_url = _parse(env, "WEBHOOK_URL", "", _https_url, "the public https URL Telegram should post updates to")
    webhook_secret = _text(env, "TELEGRAM_WEBHOOK_SECRET", "") or ""
    if webhook_url and not _WEBHOOK_SECRET.match(webhook_secret):
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET is required with WEBHOOK_URL: 16 to 256 characters of A-Z, a-z, 0-9, _ and -"
        )
    return webhook_url, webhook_secret


def _database_url(env: Mapping[str, str]) -> str:
    database_url = _parse(
        env,
        "DATABASE_URL",
        "",
        _postgres_url,
        "a PostgreSQL URL such as postgresql://user:password@host:5432/pesabot",
        secret=True,
    )
    if database_url and _text(env, "DATABASE_PATH") is not None:
        raise ConfigError(
            "DATABASE_URL and DATABASE_PATH are both set: "
            "use DATABASE_URL for PostgreSQL or DATABASE_PATH for SQLite, not both"
        )
    return database_url


def _amounts(env: Mapping[str, str]) -> tuple[int, int]:
    """(min, max) in whole shillings: at least iPay's floor, and max not below min."""
    min_amount = _parse(
        env, "MIN_AMOUNT", IPAY_FLOOR, _positive_int, f"a whole number of shillings, at least {IPAY_FLOOR}"
    )
    if min_amount < IPAY_FLOOR:
        raise ConfigError(f"MIN_AMOUNT expects a whole number of shillings, at least {IPAY_FLOOR}, got {min_amount}")
    max_amount = _parse(env, "MAX_AMOUNT", 150_000, _positive_int, "a whole number of shillings")
    if max_amount < min_amount:
        raise ConfigError(f"MAX_AMOUNT expects a whole number of shillings, at least MIN_AMOUNT ({min_amount})")
    return min_amount, max_amount


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    return _parse(env, name, default, _positive_seconds, "a number of seconds above 0")


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    return _parse(env, name, default, _positive_int, "a whole number above 0")


def _settings(env: Mapping[str, str], checked: _Checked) -> Settings:
    return Settings(
        telegram_bot_token=checked.token or "console:no-token",
        telegram_base_url=_parse(
            env, "TELEGRAM_BASE_URL", None, _http_url, "an http(s) URL such as http://127.0.0.1:8081/bot"
        ),
        ipay_vid=(_text(env, "IPAY_VID", DEMO_VID) or DEMO_VID).lower(),
        ipay_hash_key=_text(env, "IPAY_HASH_KEY", DEMO_HASH_KEY) or DEMO_HASH_KEY,
        ipay_live=checked.live,
        ipay_base_url=_parse(env, "IPAY_BASE_URL", DEFAULT_IPAY_BASE_URL, _http_url, "an http(s) URL"),
        ipay_callback_url=_parse(env, "IPAY_CALLBACK_URL", "", _http_url, "an http(s) URL iPay can reach, or nothing"),
        ipay_customer_email=_text(env, "IPAY_CUSTOMER_EMAIL", "customer@example.com") or "",
        ipay_sandbox=checked.use_sandbox,
        shop_name=_text(env, "SHOP_NAME", "") or "",
        database_path=Path(_text(env, "DATABASE_PATH", "data/payments.sqlite3") or ""),
        database_url=checked.database_url,
        merchant_chat_id=checked.merchant,
        min_amount=checked.min_amount,
        max_amount=checked.max_amount,
        poll_interval_seconds=_seconds(env, "POLL_INTERVAL_SECONDS", 5.0),
        payment_timeout_seconds=_seconds(env, "PAYMENT_TIMEOUT_SECONDS", 600.0),
        conversation_timeout_seconds=_seconds(env, "CONVERSATION_TIMEOUT_SECONDS", 300.0),
        poll_concurrency=_count(env, "POLL_CONCURRENCY", 50),
        port=_parse(env, "PORT", 8080, _port, "a TCP port number (1-65535)"),
        admin_ids=_parse(env, "MERCHANT_ADMIN_IDS", frozenset(), _id_set, "Telegram user ids separated by commas"),
        staff_ids=_parse(env, "STAFF_IDS", frozenset(), _id_set, "Telegram user ids separated by commas"),
        pay_access=_parse(env, "PAY_ACCESS", "public", _access, "public or staff"),
        request_ttl_hours=_parse(env, "REQUEST_TTL_HOURS", 24.0, _positive_seconds, "a number of hours above 0"),
        pay_limit_per_user=_count(env, "PAY_LIMIT_PER_USER", 5),
        pay_limit_user_window_seconds=_seconds(env, "PAY_LIMIT_USER_WINDOW_SECONDS", 600.0),
        pay_limit_per_phone=_count(env, "PAY_LIMIT_PER_PHONE", 3),
        daily_summary_time=_parse(env, "DAILY_SUMMARY_TIME", time(21, 0), _clock_time, "a time of day as HH:MM"),
        merchant_language=_parse(env, "MERCHANT_LANGUAGE", "en", _language, "en (English) or sw (Kiswahili)"),
        webhook_url=checked.webhook_url,
        webhook_secret=checked.webhook_secret,
        api_keys=_parse(
            env, "API_KEYS", (), _api_keys, "keys of at least 24 characters, separated by commas", secret=True
        ),
        refund_max_age_days=_parse(env, "REFUND_MAX_AGE_DAYS", 30, _positive_int, "a whole number of days above 0"),
        api_refunds=_parse(env, "API_REFUNDS", False, _flag, "1 (API keys may refund their payments) or 0"),
        miniapp_url=_parse(env, "MINIAPP_URL", "", _https_url, "the public https URL the Mini App is opened at"),
        miniapp_max_age_seconds=_seconds(env, "MINIAPP_MAX_AGE_SECONDS", 3600.0),
    )
