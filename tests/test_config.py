"""Settings: defaults, and one clear line for anything missing or malformed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_ipays_demo_vendor() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "1:abc"})
    assert (settings.ipay_vid, settings.ipay_hash_key, settings.ipay_live) == ("demo", "demoCHANGED", False)
    assert (settings.min_amount, settings.max_amount) == (10, 150_000)
    assert settings.database_path == Path("data/payments.sqlite3")
    assert "abc" not in repr(settings) and "demoCHANGED" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "TELEGRAM_BOT_TOKEN is required"),
        ({"MIN_AMOUNT": "five"}, "MIN_AMOUNT expects a whole number of shillings"),
        ({"MIN_AMOUNT": "5"}, "MIN_AMOUNT expects a whole number of shillings, at least 10"),
        ({"MAX_AMOUNT": "9", "MIN_AMOUNT": "10"}, "MAX_AMOUNT expects"),
        ({"IPAY_LIVE": "maybe"}, "IPAY_LIVE expects 0 or 1"),
        ({"IPAY_BASE_URL": "ftp://x"}, "IPAY_BASE_URL expects an http(s) URL"),
        ({"MERCHANT_CHAT_ID": "@shop"}, "MERCHANT_CHAT_ID expects a Telegram chat id"),
        ({"POLL_INTERVAL_SECONDS": "0"}, "POLL_INTERVAL_SECONDS expects a number of seconds above 0"),
        ({"PAYMENT_TIMEOUT_SECONDS": "nan"}, "PAYMENT_TIMEOUT_SECONDS expects"),
        ({"IPAY_SANDBOX": "1", "IPAY_LIVE": "1"}, "IPAY_LIVE expects 0 when the sandbox is on"),
        ({"PAY_ACCESS": "everyone"}, "PAY_ACCESS expects public or staff"),
        ({"MERCHANT_ADMIN_IDS": "12,abc"}, "MERCHANT_ADMIN_IDS expects Telegram user ids separated by commas"),
        ({"DAILY_SUMMARY_TIME": "25:00"}, "DAILY_SUMMARY_TIME expects a time of day as HH:MM"),
        ({"PAY_LIMIT_PER_PHONE": "0"}, "PAY_LIMIT_PER_PHONE expects a whole number above 0"),
        ({"PORT": "70000"}, "PORT expects a TCP port number"),
        ({"WEBHOOK_URL": "http://bot.example"}, "WEBHOOK_URL expects the public https URL"),
        ({"WEBHOOK_URL": "https://bot.example"}, "TELEGRAM_WEBHOOK_SECRET is required with WEBHOOK_URL"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL expects a PostgreSQL URL"),
        ({"MINIAPP_URL": "http://pay.example"}, "MINIAPP_URL expects the public https URL"),
        ({"MINIAPP_MAX_AGE_SECONDS": "0"}, "MINIAPP_MAX_AGE_SECONDS expects a number of seconds above 0"),
        (
            {"DATABASE_URL": "postgresql://h/db", "DATABASE_PATH": "x.sqlite3"},
            "DATABASE_URL and DATABASE_PATH are both set",
        ),
    ],
)
def test_a_bad_setting_names_the_variable(env: dict[str, str], message: str) -> None:
    full = {"TELEGRAM_BOT_TOKEN": "1:abc", **env} if env else {}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(full)


def test_start_up_without_a_token_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "IPAY_"))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "pesabot: configuration error: TELEGRAM_BOT_TOKEN is required: the token @BotFather gave your bot"
    ]


def test_a_wrong_secret_setting_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "API_KEYS": "tooshort-but-secret"})
    assert "tooshort-but-secret" not in str(caught.value)
    assert str(caught.value) == "API_KEYS expects keys of at least 24 characters, separated by commas"


def test_the_mini_app_is_opened_at_miniapp_url_else_at_the_webhook() -> None:
    base = {"TELEGRAM_BOT_TOKEN": "1:abc"}
    assert load_settings(base).miniapp_base == ""  # neither: no Mini App
    webhook = {**base, "WEBHOOK_URL": "https://bot.example/", "TELEGRAM_WEBHOOK_SECRET": "s" * 32}
    assert load_settings(webhook).miniapp_base == "https://bot.example"
    own = load_settings({**webhook, "MINIAPP_URL": "https://pay.example/", "MINIAPP_MAX_AGE_SECONDS": "600"})
    assert (own.miniapp_base, own.miniapp_max_age_seconds) == ("https://pay.example", 600.0)


def test_staff_settings() -> None:
    settings = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": "1:abc",
            "MERCHANT_ADMIN_IDS": "7, 8",
            "STAFF_IDS": "9",
            "PAY_ACCESS": "staff",
            "DAILY_SUMMARY_TIME": "20:30",
        }
    )
    assert settings.may_pay(9) and settings.may_pay(7) and not settings.may_pay(10)
    assert settings.is_admin(8) and not settings.is_admin(9)
    assert settings.daily_summary_time.isoformat() == "20:30:00"


def test_database_url_selects_postgresql_and_its_password_stays_secret() -> None:
    for scheme in ("postgresql", "postgres"):
        settings = load_settings(
            {"TELEGRAM_BOT_TOKEN": "1:abc", "DATABASE_URL": f"{scheme}://shop:s3cr3t-pw@db:5432/pesa"}
        )
        assert settings.database == f"{scheme}://shop:s3cr3t-pw@db:5432/pesa"
        assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" in settings.secrets
    assert load_settings({"TELEGRAM_BOT_TOKEN": "1:abc"}).database == Path("data/payments.sqlite3")
    with pytest.raises(ConfigError) as caught:
        load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "DATABASE_URL": "mysql://shop:s3cr3t-pw@db/pesa"})
    assert "s3cr3t-pw" not in str(caught.value)


DARAJA_ENV = {
    "TELEGRAM_BOT_TOKEN": "1:abc",
    "PAYMENT_PROVIDER": "daraja",
    "DARAJA_CONSUMER_KEY": "key",
    "DARAJA_CONSUMER_SECRET": "consumer-secret-value",
    "DARAJA_SHORTCODE": "174379",
    "DARAJA_PASSKEY": "passkey-value",
    "DARAJA_CALLBACK_URL": "https://shop.example/daraja/callback/",
}


def test_ipay_is_the_provider_unless_daraja_is_chosen() -> None:
    assert load_settings({"TELEGRAM_BOT_TOKEN": "1:abc"}).payment_provider == "ipay"
    settings = load_settings(DARAJA_ENV)
    assert settings.payment_provider == "daraja" and settings.daraja is not None
    assert settings.daraja.callback_url == "https://shop.example/daraja/callback"
    assert settings.daraja.base_url == "https://api.safaricom.co.ke"
    assert settings.serves_http
    assert "consumer-secret-value" in settings.secrets and "passkey-value" in settings.secrets
    assert "consumer-secret-value" not in repr(settings) and "passkey-value" not in repr(settings)
    assert not settings.daraja.register_c2b and not settings.daraja.refunds


def test_c2b_and_the_reversal_operator_are_read_and_the_credential_kept_secret() -> None:
    env = DARAJA_ENV | {
        "DARAJA_REGISTER_C2B": "1",
        "DARAJA_INITIATOR": "shopapi",
        "DARAJA_SECURITY_CREDENTIAL": "encrypted-credential-value",
    }
    settings = load_settings(env)
    assert settings.daraja is not None and settings.daraja.register_c2b and settings.daraja.refunds
    assert settings.daraja.initiator == "shopapi"
    assert "encrypted-credential-value" in settings.secrets
    assert "encrypted-credential-value" not in repr(settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"PAYMENT_PROVIDER": "mpesa"}, "PAYMENT_PROVIDER expects ipay or daraja"),
        ({"DARAJA_CONSUMER_KEY": ""}, "DARAJA_CONSUMER_KEY is required with PAYMENT_PROVIDER=daraja"),
        ({"DARAJA_CONSUMER_SECRET": ""}, "DARAJA_CONSUMER_SECRET is required"),
        ({"DARAJA_PASSKEY": ""}, "DARAJA_PASSKEY is required"),
        ({"DARAJA_SHORTCODE": ""}, "DARAJA_SHORTCODE is required"),
        ({"DARAJA_CALLBACK_URL": ""}, "DARAJA_CALLBACK_URL is required"),
        ({"DARAJA_CALLBACK_URL": "http://shop.example/cb"}, "DARAJA_CALLBACK_URL expects an https URL"),
        ({"DARAJA_SHORTCODE": "17a379"}, "DARAJA_SHORTCODE expects a Paybill, Till or store number"),
        ({"DARAJA_TILL_NUMBER": "12"}, "DARAJA_TILL_NUMBER expects"),
        ({"DARAJA_BASE_URL": "ftp://x"}, "DARAJA_BASE_URL expects an http"),
        ({"DARAJA_REGISTER_C2B": "maybe"}, "DARAJA_REGISTER_C2B expects 1"),
    ],
)
def test_a_missing_or_malformed_daraja_setting_is_one_line(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(DARAJA_ENV | change)
    assert "\n" not in str(raised.value) and "passkey-value" not in str(raised.value)


def test_the_sandbox_lends_daraja_s_own_sandbox_values() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "1:abc", "PAYMENT_PROVIDER": "daraja", "IPAY_SANDBOX": "1"})
    assert settings.daraja is not None and settings.daraja.shortcode == "174379"
    assert settings.daraja.callback_url.startswith("http://127.0.0.1")
