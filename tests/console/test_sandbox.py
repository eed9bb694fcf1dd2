"""The iPay sandbox as a product: over a real socket, as a server process, in sandbox mode."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bot.app import SANDBOX_KEY
from bot.config import Settings
from bot.domain import Network, OrderStatus
from bot.lifecycle import running
from bot.providers.ipay import IpayClient, IpayRefused, PaymentFound
from bot.sandbox.ipay import OUTCOME_BY_LAST_DIGIT, IpaySandbox, PhoneOutcome
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import TEST_KEY, ManualClock, Shop, with_settings
from tests.console_terminal import Terminal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def served_sandbox(sandbox: IpaySandbox) -> AsyncIterator[str]:
    """The sandbox on a loopback port, served by uvicorn in this event loop."""
    server = uvicorn.Server(uvicorn.Config(sandbox.asgi, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn has a flag for this, no event)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/payments/v2"
    server.should_exit = True
    await task


async def test_whole_payment_over_real_http_on_loopback(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, served_sandbox: str
) -> None:
    from bot.app import build_application
    from tests.conftest import Shop

    app = build_application(
        with_settings(settings, ipay_base_url=served_sandbox), telegram_request=telegram, clock=clock
    )
    async with running(app):
        shop = Shop(app, telegram, sandbox, clock)
        customer = shop.customer()
        order = await shop.pay(customer)
        assert sandbox.stats.calls == {"/transact": 1, "/transact/push/mpesa": 1}
        clock.advance(5)
        await shop.sweep()
        assert (await shop.order(order.id)).status is OrderStatus.PAID
        assert "Confirmed. KES 500 paid to" in shop.last(customer.chat_id).text


@pytest.mark.parametrize(
    ("vid", "live", "complaint"),
    [
        ("shop42", True, "test transactions only"),
        ("someoneelse", False, "Invalid vendor"),
    ],
)
async def test_sandbox_refuses_like_ipay(sandbox: IpaySandbox, vid: str, live: bool, complaint: str) -> None:
    transport = sandbox.transport()
    client = IpayClient(transport, vid=vid, hash_key=TEST_KEY, live=live, base_url="http://ipay.test/payments/v2")
    with pytest.raises(IpayRefused, match=complaint):
        await client.initiate("ORDX", 100, "254712345678")


async def test_sandbox_accepts_json_bodies_as_well_as_forms(sandbox: IpaySandbox) -> None:
    from bot.providers.ipay import signing

    fields = {
        "live": "0",
        "oid": "JSON1",
        "inv": "JSON1",
        "amount": "100",
        "tel": "254712345678",
        "eml": "",
        "vid": "shop42",
        "curr": "KES",
        "p1": "",
        "p2": "",
        "p3": "",
        "p4": "",
        "cbk": "",
        "cst": "1",
    }
    fields["hash"] = signing.transact_hash("test-hash-key-SECRET-42", fields)
    async with httpx.AsyncClient(transport=sandbox.transport()) as http:
        reply = await http.post("http://ipay.test/payments/v2/transact", json=fields)
    assert reply.status_code == 200 and reply.json()["data"]["sid"]


def test_every_last_digit_has_a_documented_outcome() -> None:
    assert sorted(OUTCOME_BY_LAST_DIGIT) == list("0123456789")
    assert set(OUTCOME_BY_LAST_DIGIT.values()) == set(PhoneOutcome)
    readme = (ROOT / "docs" / "console-and-sandbox.md").read_text()
    for digit, outcome in OUTCOME_BY_LAST_DIGIT.items():
        assert f"| `…{digit}` | {outcome.value} |" in readme


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sandbox_runs_as_a_server_process() -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot.sandbox", "--port", str(port), "--answer-delay", "0"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/payments/v2"
        async with httpx.AsyncHTTPTransport() as transport:
            client = IpayClient(transport, vid="demo", hash_key="demoCHANGED", live=False, base_url=base)
            for _ in range(200):
                try:
                    session = await client.initiate("SRV1", 100, "254712345678")
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the sandbox server did not start")
            await client.push(Network.MPESA, "254712345678", session.sid)
            await asyncio.sleep(0.05)
            assert isinstance(await client.search("SRV1"), PaymentFound)
    finally:
        process.terminate()
        output = (await asyncio.wait_for(process.communicate(), timeout=10))[0].decode()
    assert "phone ending in 4: never answers" in output
    assert "prompt to 254712345678 (mpesa): pay KES 100" in output


async def test_sandbox_mode_says_so_in_every_payment_message(
    settings: Settings, telegram: FakeBotApi, clock: ManualClock
) -> None:
    from bot.app import build_application

    app = build_application(with_settings(settings, ipay_sandbox=True), telegram_request=telegram, clock=clock)
    async with running(app):
        internal: IpaySandbox = app.bot_data[SANDBOX_KEY]
        internal.clock = clock
        shop = Shop(app, telegram, internal, clock)
        customer = shop.customer()
        summary = await shop.start_payment(customer, phone="0712345670")
        await shop.send(customer.press(summary, "Confirm"))
        assert internal.answer("254712345670", approve=True)
        clock.advance(5)
        await shop.sweep()
        payment_messages = shop.texts(customer.chat_id)[-2:]
        assert all(text.startswith("🧪 SANDBOX: no real money moves.") for text in payment_messages)
        assert " Confirmed. KES 500 paid to" in payment_messages[-1]


def test_console_session_from_pay_to_receipt(tmp_path: Path) -> None:
    """A person at the terminal: /pay, phone, amount, confirm, approve on the phone, receipt."""
    terminal = Terminal(tmp_path)
    try:
        terminal.wait_for("Phone numbers decide what the payer does")
        terminal.type("/pay")
        terminal.wait_for("[share] 📱 Share my number")
        terminal.type("share")
        terminal.wait_for("Phone: 0712 345 670 (M-Pesa).")
        terminal.type("1,500")
        terminal.wait_for("[1] ✅ Confirm")
        terminal.type("1")
        terminal.wait_for("📱 phone 254712345670 (M-PESA): Pay KES 1,500 to the shop?")
        terminal.wait_for("Check your phone and enter your M-Pesa PIN")
        terminal.type("approve")
        terminal.wait_for(" Confirmed. KES 1,500 paid to the shop from 0712 345 670 (")
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()


def test_the_console_shows_button_pop_ups_and_presses_older_messages_buttons(tmp_path: Path) -> None:
    """Every stale-button path can be tried from the terminal: "6.2" presses message 6's second button."""
    terminal = Terminal(tmp_path)
    try:
        terminal.wait_for("Phone numbers decide what the payer does")
        terminal.type("/pay")
        terminal.wait_for("[share] 📱 Share my number")
        terminal.type("0712345677")
        terminal.wait_for("How much?")
        terminal.type("500")
        terminal.wait_for("[3] ✖️ Cancel")
        terminal.type("2")
        terminal.wait_for("bot pop-up: Switched to Airtel Money")
        terminal.type("/pay")  # a new payment: the old summary loses its buttons and says why
        terminal.wait_for("Replaced by a new payment.")
        terminal.type("#6.1")
        terminal.wait_for("(message 6 has no button 1)")
        terminal.type("#99.1")
        terminal.wait_for("(message 99 has no button 1)")
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()


async def test_the_served_sandbox_takes_a_new_latency_while_it_runs(sandbox: IpaySandbox) -> None:
    """The benchmarks slow iPay down half way through a burst: one POST, no restart."""
    from bot.sandbox.__main__ import LatencyControl

    app = httpx.ASGITransport(app=LatencyControl(sandbox.asgi, sandbox.faults))
    async with httpx.AsyncClient(transport=app, base_url="http://sandbox.test") as http:
        assert (await http.post("/sandbox/latency", params={"seconds": "0.25"})).status_code == 200
        assert sandbox.faults.latency == 0.25
        refused = await http.post("/sandbox/latency", params={"seconds": "a lot"})
        assert refused.status_code == 400 and sandbox.faults.latency == 0.25
        # Everything else is still the sandbox's own.
        assert (await http.post("/payments/v2/transaction/search", data={})).status_code == 400
