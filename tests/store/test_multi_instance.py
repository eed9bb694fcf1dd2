"""Three bot processes in webhook mode on one PostgreSQL database, SIGKILLed at random while
payments flow, and restarted.

Clients spread their calls round robin: REST API payments (a call that fails for a dead
instance is retried on the next with the same Idempotency-Key, as a till would) and chat
conversations whose every step may land on another instance (a step whose instance died
before answering is sent again, as Telegram redelivers or a person repeats). Then: every
accepted order ends final and is told; no phone gets two prompts; a message repeats at most
once per crash (the one in flight); and a dead instance's claims (due orders, orders being
sent, chat outboxes) are picked up by the survivors within a few seconds.
"""

from __future__ import annotations

import asyncio
import collections
import glob
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.domain import Notice
from bot.orders.service import UNSENT_GRACE
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser
from bot.store.base import Store
from tests.conftest import readable
from tests.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "crash_harness.py"
INSTANCES = 3
ROUNDS = 21
STALE_AFTER = 2.0  # the harness's heartbeat staleness: how soon a dead instance's claims lapse
API_KEY = "harness-api-key-0123456789abcdef"
SECRET = "harness-secret-0123456789"
MERCHANT = -100900
# How the message telling a chat its order's end begins: a receipt code and "Confirmed" (money,
# perhaps "Paid after all" first), or the sign of an ending without money.
OUTCOMES = re.compile(
    r"^(?:🧪 SANDBOX: no real money moves\. )?(?:Paid after all[^.]*\. )?(?:[A-Z0-9]{10} Confirmed\. |❌|✖️|⌛)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


class Fleet:
    """The bot processes, each on its own port, restartable."""

    def __init__(self, tmp: Path, database: str, ipay_url: str) -> None:
        self.tmp, self.database, self.ipay_url = tmp, database, ipay_url
        self.ports = [_free_port() for _ in range(INSTANCES)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * INSTANCES
        self.generation = 0
        self.killed: list[tuple[int, float]] = []  # (pid, when)

    def start(self, n: int) -> None:
        self.generation += 1
        log = self.tmp / f"chat-{n}-{self.generation}.jsonl"
        self.processes[n] = subprocess.Popen(
            [
                sys.executable,
                str(HARNESS),
                "--db",
                self.database,
                "--ipay-url",
                self.ipay_url,
                "--chat-log",
                str(log),
                "--webhook-port",
                str(self.ports[n]),
                "--stale-after",
                str(STALE_AFTER),
                "--log-info",
            ],
            stdout=open(self.tmp / f"bot-{n}-{self.generation}.out", "wb"),  # noqa: SIM115  # the process writes it
            stderr=subprocess.STDOUT,
        )

    def kill(self, n: int) -> None:
        process = self.processes[n]
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.killed.append((process.pid, time.monotonic()))

    def stop_all(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


class Client:
    """Round robin over the instances; a call that fails is retried on the next one."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.turn = 0

    def call(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            port = self.fleet.ports[self.turn % INSTANCES]
            self.turn += 1
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                method="POST",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", **headers},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    text = answer.read()
                    return json.loads(text) if text else {}
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                    raise
                assert time.monotonic() < deadline, f"no instance answered {path}"
                time.sleep(0.05)


class Database:
    """The test's own reads of the shared database (from a thread of its own)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(url))
        self.lock = threading.Lock()

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """The rows; a connection the loaded server dropped (seen once under CI's load) is opened
        again and the read repeated: these reads only observe, so repeating one is harmless."""
        with self.lock:
            try:
                return [tuple(r) for r in self.loop.run_until_complete(self.connection.fetch(sql, *args))]
            except (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError, OSError):
                self.connection = self.loop.run_until_complete(asyncpg.connect(self.url))
                return [tuple(r) for r in self.loop.run_until_complete(self.connection.fetch(sql, *args))]

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def _all_messages(tmp: Path) -> list[dict[str, Any]]:
    messages = []
    for path in glob.glob(str(tmp / "chat-*.jsonl")):
        for line in Path(path).read_text().splitlines():
            if line.strip():
                messages.append(json.loads(line))
    return messages


def _converse(client: Client, db: Database, tmp: Path, user: TelegramUser, phone: str, amount: str) -> bool:
    """/pay, phone, amount, Confirm, each step to the next instance; a step whose answer never
    came (its instance died) is sent again. True once the order is written."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    steps = [("/pay", "phone"), (phone, "amount"), (amount, "confirm")]
    for text, reached in steps:
        for _attempt in range(6):
            client.call("/telegram", user.text(text), headers)
            step_is = [(reached,)]
            if _wait(lambda: db.rows("SELECT step FROM drafts WHERE chat_id = $1", user.chat_id) == step_is, 2.0):  # noqa: B023
                break
        else:
            return False
    for _attempt in range(6):
        summary = [m for m in _all_messages(tmp) if m["chat"] == user.chat_id and "Confirm" in json.dumps(m["buttons"])]
        if summary:
            last = summary[-1]
            message = ChatMessage(
                last["id"], last["chat"], last["text"], True, [[tuple(b) for b in row] for row in last["buttons"]]
            )
            client.call("/telegram", user.press(message, "Confirm"), headers)
        if _wait(lambda: bool(db.rows("SELECT 1 FROM orders WHERE chat_id = $1", user.chat_id)), 2.0):
            return True
    return False


def _wait(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.fixture
def ipay(tmp_path: Path) -> Any:
    port = _free_port()
    log = open(tmp_path / "ipay.out", "wb")  # noqa: SIM115  # the sandbox process writes it while it runs
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", str(port), "--answer-delay", "0.3", "--latency", "0.2"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _wait_for_port(port)
    yield f"http://127.0.0.1:{port}/payments/v2", tmp_path / "ipay.out"
    server.terminate()
    server.wait(timeout=10)


def test_three_instances_killed_at_random_lose_and_double_nothing(
    tmp_path: Path, postgres_server: PostgresServer, ipay: Any
) -> None:
    ipay_url, ipay_log = ipay
    database = postgres_server.new_database_sync()
    fleet = Fleet(tmp_path, database, ipay_url)
    for n in range(INSTANCES):
        fleet.start(n)
    for port in fleet.ports:
        _wait_for_port(port)
    db = Database(database)
    client = Client(fleet)
    telegram = FakeBotApi()  # only builds the updates a Telegram client would send
    rng = random.Random(11)
    accepted_api: dict[str, str] = {}
    accepted_chat: list[int] = []
    monitor = PickupMonitor(Database(database))
    started = time.monotonic()
    try:
        for round_ in range(ROUNDS):
            for k in range(3):  # API payments, each retried with its own key until an instance accepts it
                phone = f"07{round_:02d}{k:02d}{rng.randrange(1000):03d}{rng.choice('789')}"
                order = client.call(
                    "/api/payments",
                    {"phone": phone, "amount": 100 + round_},
                    {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": f"till-{round_}-{k}"},
                )
                accepted_api[order["order_id"]] = phone
            if round_ % 3 == 0:  # a chat conversation spread over the instances
                user = TelegramUser(telegram, 7000 + round_, f"Payer{round_}")
                if _converse(client, db, tmp_path, user, f"0733{round_:02d}{rng.randrange(1000):03d}9", "250"):
                    accepted_chat.append(user.chat_id)
            time.sleep(rng.uniform(0.0, 0.2))  # payments in flight (iPay takes 0.2 s a call)
            victim = rng.randrange(INSTANCES)
            dead_pid = fleet.processes[victim].pid  # type: ignore[union-attr]
            fleet.kill(victim)
            monitor.watch(dead_pid)
            fleet.start(victim)
        elapsed_rounds = time.monotonic() - started

        def settled() -> bool:
            open_orders = db.rows("SELECT COUNT(*) FROM orders WHERE status = 'pending' OR next_poll_at IS NOT NULL")
            unsent = db.rows("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            return open_orders == [(0,)] and unsent == [(0,)]

        # Generous: CI runs this beside the main pass on 2 cores, and the merchant group's outbox drains at
        # Telegram's 20 messages a minute (folded into digests). It returns as soon as all is settled.
        if not _wait(settled, 90):
            pytest.fail(_unsettled_dump(tmp_path, db, fleet), pytrace=False)
        pickup = monitor.finish()
    finally:
        fleet.stop_all()
    statuses = dict(db.rows("SELECT id, status FROM orders"))
    chat_orders = dict(db.rows("SELECT chat_id, status FROM orders WHERE source = 'chat'"))
    db.close()

    # Nothing lost: every accepted order is in the database, final, and was told.
    messages = _all_messages(tmp_path)
    merchant = " ".join(m["text"] for m in messages if m["chat"] == MERCHANT and m["event"] == "message")
    # (An API order is told through its status; the merchant hears of money and of failures.)
    told_merchant = ("paid", "underpaid", "overpaid", "failed")
    lost = [
        o
        for o in accepted_api
        if statuses.get(o, "pending") == "pending"
        or (statuses[o] in told_merchant and f"order {readable(o)}" not in merchant)
    ]
    told_chat = collections.Counter(
        m["chat"] for m in messages if m["event"] == "message" and OUTCOMES.match(str(m["text"]))
    )
    lost += [str(c) for c in accepted_chat if c not in chat_orders or told_chat[c] == 0]
    assert lost == []
    # No phone prompted twice (the sandbox prints one line per prompt).
    prompts = collections.Counter(
        line.split()[2] for line in ipay_log.read_text().splitlines() if line.startswith("prompt to")
    )
    doubled = [phone for phone, count in prompts.items() if count > 1]
    assert doubled == []
    # A message repeats at most once per crash: the one in flight when the instance died.
    merchant_lines = collections.Counter(
        f"order {o}" for o in accepted_api for _ in range(merchant.count(f"order {readable(o)}"))
    )
    repeated = sum(n - 1 for n in merchant_lines.values()) + sum(n - 1 for n in told_chat.values() if n > 1)
    assert repeated <= len(fleet.killed)
    outcomes = collections.Counter(statuses.values())
    report = {
        "instances": INSTANCES,
        "kills": len(fleet.killed),
        "rounds_seconds": round(elapsed_rounds, 1),
        "orders_accepted": len(accepted_api) + len(accepted_chat),
        "api": len(accepted_api),
        "chat": len(accepted_chat),
        "lost": len(lost),
        "prompts_pushed_twice": len(doubled),
        "messages_repeated": repeated,
        "outcomes": dict(outcomes),
        "kills_holding_claims": len(pickup),
        "pickup_seconds_max": round(max(pickup), 2),
        "pickup_seconds_median": round(sorted(pickup)[len(pickup) // 2], 2),
    }
    print("multi-instance:", json.dumps(report))
    (tmp_path / "report.json").write_text(json.dumps(report))
    if os.environ.get("PESABOT_MULTI_INSTANCE_REPORT"):
        Path(os.environ["PESABOT_MULTI_INSTANCE_REPORT"]).write_text(json.dumps(report))
    # The heartbeat's staleness, an unsent order's grace, the next sweep (every second), and 2 s for
    # the load CI runs this under (7.45 s was seen once against a bound of 7 without this slack).
    assert max(pickup) <= STALE_AFTER + UNSENT_GRACE + 1 + 2


def _unsettled_dump(tmp: Path, db: Database, fleet: Fleet) -> str:
    """Everything needed to tell why the fleet never settled, whole (an assert's repr is cut
    short): what is still open or unsent, who claims it, the heartbeats, and each live
    instance's tasks (asked for with SIGUSR1) and log. Also written to tmp/unsettled.txt."""
    for process in fleet.processes:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR1)
    time.sleep(1.0)
    queries = {
        "open orders": "SELECT id, status, next_poll_at, claimed_by, claim_until FROM orders "
        "WHERE status = 'pending' OR next_poll_at IS NOT NULL",
        "unsent outbox": "SELECT id, chat_id, order_id, attempts, next_attempt_at, last_error FROM outbox "
        "WHERE sent_at IS NULL ORDER BY id",
        "chat claims": "SELECT * FROM chat_claims",
        "instances": "SELECT * FROM instances ORDER BY started_at",
    }
    parts = [f"now {time.time():.3f}; live pids {[p.pid for p in fleet.processes if p is not None]}"]
    for title, sql in queries.items():
        parts.append(f"--- {title} ---")
        parts += [repr(row) for row in db.rows(sql)]
    summary = "\n".join(parts)
    for path in sorted(tmp.glob("bot-*.out"), key=lambda p: p.stat().st_mtime):
        parts.append(f"--- {path.name} ---")
        parts.append(path.read_text(errors="replace")[-60_000:])
    text = "\n".join(parts)
    (tmp / "unsettled.txt").write_text(text)
    return f"never settled (the instances' tasks and logs are in {tmp / 'unsettled.txt'})\n{summary}"


class PickupMonitor:
    """For each killed instance: seconds from the kill until it holds no work any more, that is
    until every due order, order being sent and chat outbox it held has been taken over (or
    finished) by a survivor. Kills that held nothing are not counted.

    A chat claim holds work only while that chat has a message unsent. An instance killed after
    delivering a chat's last message but before letting the chat go leaves its claim row behind;
    nothing is waiting there for a survivor to take over, so no survivor ever replaces the row
    (it is ignored, its owner's heartbeat being stale, the next time the chat has something to
    send). Counted as held, such a row would have the test wait for a takeover that never
    comes whenever a kill lands in that moment."""

    HELD = (
        "SELECT (SELECT COUNT(*) FROM orders WHERE claimed_by LIKE $1) "
        "+ (SELECT COUNT(*) FROM chat_claims c WHERE c.claimed_by LIKE $1 "
        "AND EXISTS (SELECT 1 FROM outbox o WHERE o.chat_id = c.chat_id AND o.sent_at IS NULL))"
    )

    def __init__(self, db: Database) -> None:
        self.db = db
        self.watching: dict[str, float] = {}
        self.seconds: list[float] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def watch(self, pid: int) -> None:
        prefix = f"{socket.gethostname()}:{pid}:%"
        if self.db.rows(self.HELD, prefix) != [(0,)]:
            self.watching[prefix] = time.monotonic()

    def _run(self) -> None:
        while not self.done.is_set():
            for prefix, killed_at in list(self.watching.items()):
                if self.db.rows(self.HELD, prefix) == [(0,)]:
                    self.seconds.append(time.monotonic() - killed_at)
                    del self.watching[prefix]
            time.sleep(0.05)

    def finish(self) -> list[float]:
        assert _wait(lambda: not self.watching, STALE_AFTER + 8), self.watching
        self.done.set()
        self.thread.join()
        self.db.close()
        return self.seconds or [0.0]


async def test_the_pickup_monitor_counts_a_chat_claim_as_held_only_while_the_chat_has_a_message_unsent(
    postgres_server: PostgresServer,
) -> None:
    """An instance killed after delivering its chat's last message, before letting the chat go,
    leaves its claim row behind: it holds no work, and the monitor must not wait for it."""
    url = await postgres_server.new_database()
    store = await Store.open(url)
    connection = await asyncpg.connect(url)
    try:
        now = time.time()
        await store.heartbeat("webhook", now)
        await store.queue_notices([Notice(-100500, "the last line")], now)
        assert await store.claim_chats(now, 10) == [-100500]
        held = PickupMonitor.HELD.replace("$1", "$1::text")
        prefix = store.instance_id.rsplit(":", 1)[0] + ":%"
        assert await connection.fetchval(held, prefix) == 1  # a message waits: work a survivor must take over
        (entry,) = await store.chat_outbox(-100500, now, 10)
        await store.mark_many_sent([entry.id], now)  # delivered; then killed before release_chat
        assert await connection.fetchval("SELECT COUNT(*) FROM chat_claims") == 1  # the row stays
        assert await connection.fetchval(held, prefix) == 0  # but holds nothing
    finally:
        await connection.close()
        await store.close()
