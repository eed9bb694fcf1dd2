"""The Mini App in a real browser: the machine's headless Chromium driven by Selenium, the bot's
own web server, and a stand-in for Telegram's script (served from another origin, as Telegram's
is) that hands the page initData signed with the test bot token."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from tempfile import gettempdir
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bot.app import web_server_of
from bot.config import Settings
from bot.domain import OrderStatus
from bot.i18n.formats import clock_time
from bot.reports.service import nairobi_today
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import ManualClock, Shop, start_shop, stop_shop, with_settings
from tests.miniapp.signing import init_data

ADMIN, CASHIER, CUSTOMER = 900, 700, 501
HERE = Path(__file__).parent
SCREENSHOT = Path(gettempdir()) / "pesabot-miniapp-360.png"  # the test artefact
THEME = {  # Telegram's dark theme
    "bg_color": "#17212b",
    "secondary_bg_color": "#232e3c",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
}
T = TypeVar("T")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the module, 360 px wide like a small phone.

    Debian's Chromium and its driver are the one thing the tests need beyond pip: CI (`.ci/run`)
    installs them and never runs without them; on a machine without them (a laptop, say) these
    tests say what to install and are skipped, so the README's test command stays green there."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        reason = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=360,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    # A window is at least 500 px wide in headless Chromium: the phone's width is emulated.
    metrics = {"width": 360, "height": 900, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def telegram_script() -> Iterator[str]:
    """The stand-in served from its own origin, as telegram.org serves the real one."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HERE))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/telegram-web-app.js"
    server.shutdown()


@pytest.fixture
async def app_shop(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, telegram_script: str
) -> AsyncIterator[Shop]:
    configured = with_settings(
        settings,
        miniapp_url="https://shop.example",
        miniapp_script_url=telegram_script,
        admin_ids=frozenset({ADMIN}),
        staff_ids=frozenset({CASHIER}),
        port=0,
    )
    running = await start_shop(configured, telegram, sandbox, clock)
    yield running
    await stop_shop(running)


async def off_loop(work: Callable[..., T], *args: Any) -> T:
    """Selenium blocks; the bot's web server answers on this event loop meanwhile."""
    return await asyncio.to_thread(work, *args)


async def open_app(shop: Shop, browser: WebDriver, user_id: int, *, language: str = "en", age: float = 0) -> None:
    port = web_server_of(shop.app).port  # type: ignore[union-attr]
    signed = init_data(user_id, auth_date=shop.clock.now - age, language=language)
    fragment = f"tgWebAppData={quote(signed)}&tgWebAppThemeParams={quote(json.dumps(THEME))}"
    await load(browser, f"http://127.0.0.1:{port}/app/#{fragment}")


async def load(browser: WebDriver, url: str) -> None:
    """A fresh page (a new fragment alone would not reload it), once its screen is in."""
    await off_loop(browser.get, "about:blank")
    await off_loop(browser.get, url)
    await until(browser, "document.body && document.body.dataset.ready")  # body is null until parsed


async def until(browser: WebDriver, script: str, seconds: float = 10.0) -> Any:
    """Wait (without blocking the bot) until a script's value is truthy in the page."""
    for _ in range(int(seconds / 0.1)):
        value = await off_loop(browser.execute_script, f"return {script};")
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"never true in the page: {script}")


async def text_of(browser: WebDriver, css: str) -> str:
    element = await off_loop(browser.find_element, By.CSS_SELECTOR, css)
    return str(await off_loop(lambda: element.text))


async def fill(browser: WebDriver, **fields: str) -> None:
    for name, value in fields.items():
        element = await off_loop(browser.find_element, By.ID, name)
        await off_loop(element.clear)
        await off_loop(element.send_keys, value)


async def test_a_cashier_sends_a_prompt_and_watches_it_turn_paid(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await open_app(shop, browser, CASHIER)
    await fill(browser, phone="0712 345 678", amount="500", note="table 4")
    await until(browser, "document.getElementById('network').value === 'mpesa'")
    await off_loop(browser.execute_script, "document.getElementById('send').click();")
    await until(browser, "document.getElementById('current').dataset.status === 'pending'")
    (order,) = await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5)
    await shop.settle()
    shop.clock.advance(5)  # the payer enters the PIN (the sandbox pays)
    await shop.sweep()
    await until(browser, "document.getElementById('current').dataset.status === 'paid'")
    receipt, payer = shop.ipay_payment(order.id)
    shown = await text_of(browser, "#current")
    assert receipt in shown and payer in shown and "KES 500" in shown
    await until(browser, "document.querySelector('#orders li').textContent.includes('paid')")
    # the theme's colours reach the page
    background = await off_loop(browser.execute_script, "return getComputedStyle(document.body).backgroundColor;")
    assert background == "rgb(23, 33, 43)"
    await off_loop(browser.save_screenshot, str(SCREENSHOT))
    widths = await off_loop(browser.execute_script, "return [window.innerWidth, document.documentElement.scrollWidth];")
    assert widths == [360, 360]  # nothing wider than a small phone
    assert SCREENSHOT.stat().st_size > 1000


async def test_a_double_tap_sends_one_prompt(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await open_app(shop, browser, CASHIER)
    await fill(browser, phone="0712 345 678", amount="750")
    await off_loop(browser.execute_script, "const b = document.getElementById('send'); b.click(); b.click();")
    await until(browser, "document.getElementById('current').dataset.status === 'pending'")
    await asyncio.sleep(0.5)
    await shop.settle()
    orders = await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5)
    assert [(o.amount, o.status) for o in orders] == [(750, OrderStatus.PENDING)]
    assert len(shop.sandbox.transactions) == 1
    assert await text_of(browser, "#problem") == ""


async def test_a_declined_prompt_shows_why_and_is_sent_again(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await open_app(shop, browser, CASHIER)
    await fill(browser, phone="0712 345 671", amount="300")  # the sandbox's payer declines
    await off_loop(browser.execute_script, "document.getElementById('send').click();")
    await until(browser, "document.getElementById('current').dataset.status === 'pending'")
    await shop.settle()
    shop.clock.advance(5)
    await shop.sweep()
    await until(browser, "document.getElementById('current').dataset.status === 'cancelled'")
    await off_loop(browser.execute_script, "document.getElementById('again').click();")
    await until(browser, "document.querySelectorAll('#orders li').length === 2")
    orders = await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5)
    assert [o.status for o in orders] == [OrderStatus.PENDING, OrderStatus.CANCELLED]


async def test_expired_or_forged_init_data_gets_403(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await open_app(shop, browser, CASHIER, age=3601)
    assert await until(browser, "document.body && document.body.dataset.ready") == "403"
    assert "menu button" in await text_of(browser, "#screen")
    port = web_server_of(shop.app).port  # type: ignore[union-attr]
    forged = init_data(CASHIER, auth_date=shop.clock.now, token="654321:another-bot-token")
    await load(browser, f"http://127.0.0.1:{port}/app/#tgWebAppData={quote(forged)}")
    assert await until(browser, "document.body && document.body.dataset.ready") == "403"
    assert await off_loop(browser.find_elements, By.ID, "pay-form") == []


async def test_a_customer_gets_the_staff_only_page(app_shop: Shop, browser: WebDriver) -> None:
    await open_app(app_shop, browser, CUSTOMER)
    assert await until(browser, "document.body && document.body.dataset.ready") == "403"
    assert "This app is for the shop's staff" in await text_of(browser, "#staff-only")


async def test_the_admins_back_office_shows_the_totals_and_the_chart(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    customer = shop.customer()
    await shop.pay(customer, phone="0712 345 678", amount="1200")
    shop.clock.advance(5)
    await shop.sweep()
    await open_app(shop, browser, ADMIN)
    today = await text_of(browser, "#totals-today")
    assert "KES 1,200" in today and "M-Pesa" in today and "Wanjiru" in today
    assert "KES 1,200" in await text_of(browser, "#totals-week")
    await until(browser, "document.getElementById('chart').naturalWidth > 0", seconds=20)
    # a refund takes a confirming second tap
    (paid,) = await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5)
    button = f"document.querySelector('button.refund[data-order=\"{paid.id}\"]')"
    await off_loop(browser.execute_script, f"{button}.click();")
    assert await off_loop(browser.execute_script, f"return {button}.textContent;") == "↩️ Refund KES 1,200"
    assert await shop.services.store.get_refund(paid.id) is None
    await off_loop(browser.execute_script, f"{button}.click();")
    await until(browser, "document.querySelector('#paid-today .refund-answer').textContent.includes('Sending')")
    refund = await shop.services.store.get_refund(paid.id)
    assert refund is not None and refund.approved_by_id == ADMIN


async def test_kiswahili(app_shop: Shop, browser: WebDriver) -> None:
    await open_app(app_shop, browser, CASHIER, language="sw")
    assert await text_of(browser, "#send") == "Tuma ujumbe wa PIN"
    assert "Oda zako za karibuni" in await text_of(browser, "main")
    await open_app(app_shop, browser, CUSTOMER, language="sw")
    assert "wafanyakazi wa duka" in await text_of(browser, "#staff-only")


async def test_an_admin_closes_the_day_in_the_back_office(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await shop.pay(shop.customer(), phone="0712 345 678", amount="900")
    shop.clock.advance(5)
    await shop.sweep()
    await open_app(shop, browser, ADMIN)
    assert await text_of(browser, "#close-state") == "Today is still open."
    await off_loop(browser.execute_script, "document.getElementById('check-day').click();")  # as /close offers
    report = "document.getElementById('check-report').textContent"
    assert "Every order agrees with iPay." in await until(browser, report)
    await off_loop(browser.execute_script, "document.getElementById('close-day').click();")
    assert "Tap again to close today" in await text_of(browser, "#close-answer")
    day = nairobi_today(shop.clock.now).isoformat()
    assert await shop.services.store.day_close(day) is None  # the first tap only asks
    await off_loop(browser.execute_script, "document.getElementById('close-day').click();")
    assert await until(browser, "document.getElementById('close').dataset.done") == "201"
    at = clock_time(shop.clock.now)
    assert await text_of(browser, "#close-state") == f"Today was closed by Amina at {at}."
    record = await shop.services.store.day_close(day)
    assert record is not None and record.closed_by == "Amina"
    await shop.settle()
    report = shop.last(ADMIN).text
    assert report.startswith("🔒 Mama Mboga · ") and "💰 Net takings: KES 900" in report
    await open_app(shop, browser, ADMIN)  # opened again: closed, and no button to close twice
    assert await text_of(browser, "#close-state") == f"Today was closed by Amina at {at}."
    assert await off_loop(browser.find_elements, By.ID, "close-day") == []


async def test_a_cashier_asks_for_a_refund_and_the_admin_approves_it(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await open_app(shop, browser, CASHIER)
    await fill(browser, phone="0712 345 678", amount="650")
    await off_loop(browser.execute_script, "document.getElementById('send').click();")
    await until(browser, "document.getElementById('current').dataset.status === 'pending'")
    (order,) = await shop.services.store.latest_orders(start=0, end=shop.clock.now + 1, limit=5)
    await shop.settle()
    shop.clock.advance(5)
    await shop.sweep()
    ask = f"document.querySelector('#orders li[data-id=\"{order.id}\"] button.ask')"
    await until(browser, ask)  # the list, refreshed once the order is paid, offers the ask
    assert await off_loop(browser.execute_script, f"return {ask}.textContent;") == "Ask for a refund"
    await off_loop(browser.execute_script, f"{ask}.click();")
    answer = f"document.querySelector('#orders li[data-id=\"{order.id}\"] .refund-answer').textContent"
    assert "asked the shop's admins" in await until(browser, answer)
    await shop.settle()
    assert shop.last(ADMIN).button_labels == ["✅ Approve the refund", "✖️ Decline"]  # the chat's card too

    await open_app(shop, browser, ADMIN)
    waiting = await text_of(browser, "#waiting-refunds")
    assert f"{order.id} · Amina (@amina, 700) asks: KES 650 · 07** ***678" in waiting
    assert shop.sandbox.stats.calls.get("/transaction/refund", 0) == 0
    approve = f"document.querySelector('#waiting-refunds button.approve[data-order=\"{order.id}\"]')"
    await off_loop(browser.execute_script, f"{approve}.click();")
    assert "Sending the refund" in await until(
        browser, "document.querySelector('#waiting-refunds .refund-answer').textContent"
    )
    assert shop.services.refunds is not None
    await shop.services.refunds.wait_idle()
    shop.services.notifier.kick()
    await shop.settle()
    assert shop.sandbox.stats.calls.get("/transaction/refund", 0) == 1
    assert (await shop.order(order.id)).receipt_code in shop.sandbox.refunded
    assert any(text.startswith("✅ Refund done: KES 650") for text in shop.texts(CASHIER))
    await open_app(shop, browser, CASHIER)  # the counter says the refund is done
    assert "Refunded: KES 650" in await text_of(browser, f'#orders li[data-id="{order.id}"]')


async def test_the_back_office_in_kiswahili(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await shop.pay(shop.customer(), phone="0712 345 678", amount="400")
    shop.clock.advance(5)
    await shop.sweep()
    await open_app(shop, browser, ADMIN, language="sw")
    assert await text_of(browser, "#close-state") == "Siku ya leo bado iko wazi."
    assert await text_of(browser, "#close-day") == "🔒 Funga siku"
    for _ in range(2):
        await off_loop(browser.execute_script, "document.getElementById('close-day').click();")
    assert await until(browser, "document.getElementById('close').dataset.done") == "201"
    at = clock_time(shop.clock.now)
    assert await text_of(browser, "#close-state") == f"Siku ya leo ilifungwa na Amina mnamo {at}."
    assert (
        await text_of(browser, "#close-answer")
        == "Siku ya leo imefungwa. Ripoti yake iko kwenye gumzo letu la faragha."
    )
    assert "Urejeshaji unaosubiri idhini" in await text_of(browser, "#back-office")
    await shop.settle()
    assert shop.last(ADMIN).text.startswith("🔒 Mama Mboga · ") and "imefungwa na Amina" in shop.last(ADMIN).text


async def test_request_link_shows_the_link_and_its_qr(app_shop: Shop, browser: WebDriver) -> None:
    shop = app_shop
    await open_app(shop, browser, CASHIER)
    await fill(browser, amount="1200", note="sofa")
    await off_loop(browser.execute_script, "document.getElementById('request-link').click();")
    await until(browser, "document.getElementById('qr').naturalWidth > 0")
    link = await text_of(browser, "#link-url")
    assert link.startswith("https://t.me/") and not await off_loop(
        browser.execute_script, "return document.getElementById('link').hidden;"
    )
    (made,) = await shop.services.store.latest_pay_requests(0.0, 5)
    assert (made.amount, made.note, made.created_by) == (1200, "sofa", CASHIER)
