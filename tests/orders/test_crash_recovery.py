"""SIGKILL the bot at each risky point of a payment, restart it on the same database, and
check that every order ends in the right state and every chat got its outcome.

The sandbox runs as its own server process, so iPay's side survives the bot's crashes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKEND
from tests.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "crash_harness.py"

# crash point -> (phone, final status, outcome message start, how many times it may be told)
SCENARIOS = {
    # Restarted after the late-send window (half of the harness's 3 s timeout): failed and told.
    "order_written": ("0712340008", "failed", "❌ The payment did not go through: the bot restarted", 1),
    # iPay answered /transact, the process died before recording it: no push was ever made.
    "transact_answered": ("0712340048", "failed", "❌ The payment did not go through: the bot restarted", 1),
    # Recorded, died before the push: watched; the phone never got a prompt, so it expires.
    "session_recorded": ("0712340058", "expired", "⌛ No payment arrived in time", 1),
    "prompt_pushed": ("0712340018", "paid", "Confirmed. KES 300 paid", 1),
    "outcome_recorded": ("0712340028", "paid", "Confirmed. KES 300 paid", 1),
    "message_delivered": ("0712340038", "paid", "Confirmed. KES 300 paid", 2),  # the one in flight repeats
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ipay_url() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", str(port), "--answer-delay", "0.3"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/payments/v2"
    server.terminate()
    server.wait(timeout=10)


_server: list[PostgresServer] = []


@pytest.fixture(autouse=True)
def _backend(request: pytest.FixtureRequest) -> None:
    """On the PostgreSQL pass, each scenario's bot processes share one database of their own."""
    if BACKEND == "postgres" and not _server:
        _server.append(request.getfixturevalue("postgres_server"))


def _db(tmp: Path) -> str:
    if BACKEND != "postgres":
        return str(tmp / "bot.sqlite3")
    marker = tmp / "database_url"
    if not marker.exists():
        marker.write_text(_server[0].new_database_sync())
    return marker.read_text()


def _query(tmp: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of one query on the scenario's database, whichever the back end."""
    target = _db(tmp)
    if BACKEND != "postgres":
        import sqlite3

        with sqlite3.connect(target) as connection:
            return [tuple(r) for r in connection.execute(sql).fetchall()]
    import asyncio
    import concurrent.futures

    import asyncpg

    async def fetch() -> list[tuple[object, ...]]:
        connection = await asyncpg.connect(target)
        try:
            return [tuple(r) for r in await connection.fetch(sql)]
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result()


def _harness(tmp: Path, ipay_url: str, *extra: str, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PESABOT_CRASH_AT"}
    if crash_at:
        env["PESABOT_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [
            sys.executable,
            str(HARNESS),
            "--db",
            _db(tmp),
            "--ipay-url",
            ipay_url,
            "--chat-log",
            str(tmp / "chat.jsonl"),
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _final_status(tmp: Path) -> str:
    ((status,),) = _query(tmp, "SELECT status FROM orders")
    return str(status)


def test_sigkill_at_every_point_loses_nothing(tmp_path: Path, ipay_url: str) -> None:
    from bot.crashpoints import CRASH_POINTS

    assert set(SCENARIOS) == set(CRASH_POINTS)  # every crash point in the code is exercised
    crashed = {}
    for point, (phone, *_rest) in SCENARIOS.items():
        (tmp_path / point).mkdir()
        crashed[point] = _harness(tmp_path / point, ipay_url, "--pay", phone, "300", crash_at=point)
    for point, process in crashed.items():
        output = process.communicate(timeout=30)[0]
        assert process.returncode == -signal.SIGKILL, f"{point} did not crash: {output}"

    restarted = {point: _harness(tmp_path / point, ipay_url) for point in SCENARIOS}
    for point, process in restarted.items():
        output = process.communicate(timeout=40)[0]
        assert process.returncode == 0, f"{point} restart failed: {output}"

    for point, (_phone, status, outcome, times) in SCENARIOS.items():
        assert _final_status(tmp_path / point) == status, point
        sent = [json.loads(line) for line in (tmp_path / point / "chat.jsonl").read_text().splitlines()]
        told = [m for m in sent if m["chat"] == 4242 and m["event"] == "message" and outcome in m["text"]]
        assert 1 <= len(told) <= times, (point, sent)


def _wait_until_serving(bot: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except Exception:
            assert time.monotonic() < deadline, bot.communicate(timeout=5)[0] if bot.poll() is not None else "no start"
            time.sleep(0.05)


def _request_payment(port: int, phone: str, amount: int) -> int:
    """POST /api/payments as a till would; returns the HTTP status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/payments",
        method="POST",
        data=json.dumps({"phone": phone, "amount": amount}).encode(),
        headers={"Authorization": "Bearer harness-api-key-0123456789abcdef", "Content-Type": "application/json"},
    )
    status: int = urllib.request.urlopen(request, timeout=10).status
    return status


def test_sigterm_answers_a_till_waiting_on_a_payment_and_stops_at_once(tmp_path: Path) -> None:
    """A till waits on a payment whose payer never answers (`?wait=30`): SIGTERM answers it with
    the payment as it stands, and the bot still stops within a few seconds."""
    port, ipay_port = _free_port(), _free_port()
    ipay = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", str(ipay_port), "--answer-delay", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        bot = _harness(tmp_path, f"http://127.0.0.1:{ipay_port}/payments/v2", "--webhook-port", str(port))
        _wait_until_serving(bot, port)
        assert _request_payment(port, "0712345674", 100) == 201  # ends in 4: the payer never answers
        ((order_id,),) = _query(tmp_path, "SELECT id FROM orders")
        answers: list[tuple[int, dict[str, object]]] = []

        def till() -> None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/payments/{order_id}?wait=30",
                headers={"Authorization": "Bearer harness-api-key-0123456789abcdef"},
            )
            with urllib.request.urlopen(request, timeout=40) as reply:
                answers.append((reply.status, json.loads(reply.read())))

        waiting = threading.Thread(target=till)
        waiting.start()
        time.sleep(0.5)
        started = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        output = bot.communicate(timeout=15)[0]
        waiting.join(timeout=5)
        assert bot.returncode == 0, output
        assert time.monotonic() - started < 5
        assert answers and answers[0][0] == 200 and answers[0][1]["status"] == "pending", answers
    finally:
        ipay.terminate()
        ipay.wait(timeout=10)


def test_sigterm_during_a_sweep_exits_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    """Webhook mode, several payments in flight at a slow iPay (0.4 s a call): SIGTERM while
    the sweep runs stops within a few seconds with status 0; a restart finishes every order."""
    port = _free_port()
    slow_port = _free_port()
    slow_ipay = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", str(slow_port), "--answer-delay", "0.5", "--latency", "0.4"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ipay = f"http://127.0.0.1:{slow_port}/payments/v2"
    try:
        bot = _harness(tmp_path, ipay, "--webhook-port", str(port))
        _wait_until_serving(bot, port)
        for n in range(4):
            assert _request_payment(port, f"07123450{n}8", 100 + n) == 201
        time.sleep(1.2)  # prompts pushed; sweeps under way against the slow iPay
        started = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        output = bot.communicate(timeout=15)[0]
        stopped_in = time.monotonic() - started
        assert bot.returncode == 0, output
        assert stopped_in < 5, stopped_in
        if BACKEND != "postgres":
            assert _query(tmp_path, "PRAGMA integrity_check") == [("ok",)]
        assert _query(tmp_path, "SELECT COUNT(*) FROM orders") == [(4,)]

        finish = _harness(tmp_path, ipay)
        assert finish.wait(timeout=40) == 0
        assert _query(tmp_path, "SELECT status, COUNT(*) FROM orders GROUP BY status") == [("paid", 4)]
        assert _query(tmp_path, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
        told = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
        # One line per payment in the merchant chat, whether sent alone or folded into a digest.
        merchant = [line for m in told if m["chat"] == -100900 for line in m["text"].splitlines() if " · " in line]
        assert sorted(line.split(" · ")[2] for line in merchant) == [
            "KES 100",
            "KES 101",
            "KES 102",
            "KES 103",
        ]  # after the receipt code, the status
    finally:
        slow_ipay.terminate()
        slow_ipay.wait(timeout=10)


# -- conversation crash points -------------------------------------------------------------
# Each scenario: a clean run takes the first steps; a second run is SIGKILLed at the crash
# point during one step; a restarted run goes on as the customer would (who saw an answer, or
# saw none and says it again) and finishes the payment.
# name -> (crash point, steps before, the step killed, what the chat shows after the kill,
#          steps after the restart, network paid with)
CONVERSATION_SCENARIOS = {
    "phone_saved_unanswered": (
        "draft_saved",
        ["say:/pay"],
        "say:0712341048",
        "Which phone",
        ["say:0712341048", "say:400", "press:Confirm"],
        "mpesa",
    ),
    "phone_answered": (
        "draft_answered",
        ["say:/pay"],
        "say:0712341058",
        "Phone: 0712 341 058",
        ["say:400", "press:Confirm"],
        "mpesa",
    ),
    "summary_saved_unanswered": (
        "draft_saved",
        ["say:/pay", "say:0712341068"],
        "say:400",
        "Phone: 0712 341 068",
        ["say:400", "press:Confirm"],
        "mpesa",
    ),
    "summary_answered": (
        "draft_answered",
        ["say:/pay", "say:0712341078"],
        "say:400",
        "Please check:",
        ["press:Confirm"],
        "mpesa",
    ),
    # The switch was written but the summary never changed: Confirm pays with what it showed.
    "switch_saved_unanswered": (
        "draft_saved",
        ["say:/pay", "say:0712341088", "say:400"],
        "press:instead",
        "Please check:",
        ["press:Confirm"],
        "mpesa",
    ),
    "switch_answered": (
        "draft_answered",
        ["say:/pay", "say:0712341098", "say:400"],
        "press:instead",
        "Please check:",
        ["press:Confirm"],
        "airtel",
    ),
}


def _steps(steps: list[str]) -> list[str]:
    return [arg for step in steps for arg in ("--do", step)]


def _chat(tmp: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp / "chat.jsonl").read_text().splitlines()]


def test_sigkill_at_every_conversation_step_loses_nothing_the_customer_saw(tmp_path: Path, ipay_url: str) -> None:
    from bot.crashpoints import CONVERSATION_CRASH_POINTS

    assert {s[0] for s in CONVERSATION_SCENARIOS.values()} == set(CONVERSATION_CRASH_POINTS)

    def run_all(make: dict[str, subprocess.Popen[str]], expect: int) -> None:
        for name, process in make.items():
            output = process.communicate(timeout=40)[0]
            assert process.returncode == expect, f"{name}: {output}"

    for name in CONVERSATION_SCENARIOS:
        (tmp_path / name).mkdir()
    scenarios = CONVERSATION_SCENARIOS.items()
    run_all({name: _harness(tmp_path / name, ipay_url, *_steps(s[1])) for name, s in scenarios}, 0)
    killed = {name: _harness(tmp_path / name, ipay_url, *_steps([s[2]]), crash_at=s[0]) for name, s in scenarios}
    run_all(killed, -signal.SIGKILL)
    for name, (_point, _before, _killed, last_seen, *_rest) in CONVERSATION_SCENARIOS.items():
        shown = [m for m in _chat(tmp_path / name) if m["event"] != "user"]
        assert str(shown[-1]["text"]).startswith(last_seen), (name, shown[-1])
    run_all({name: _harness(tmp_path / name, ipay_url, *_steps(s[4]), "--finish") for name, s in scenarios}, 0)

    for name, (*_rest, network) in CONVERSATION_SCENARIOS.items():
        assert _query(tmp_path / name, "SELECT status, network, amount FROM orders") == [("paid", network, 400)], name
        assert _query(tmp_path / name, "SELECT COUNT(*) FROM drafts") == [(0,)], name
        sent = [m for m in _chat(tmp_path / name) if m["event"] == "message"]
        assert len([m for m in sent if "Confirmed. KES 400 paid to" in str(m["text"])]) == 1, (name, sent)
