"""`python bot.py --console`: the whole bot in a terminal, with no token, account or network.

The same Application, handlers, store, poller and notifier run as in production. Telegram
is the in-process Bot API emulation (served to the real Updater through getUpdates) and
iPay is the sandbox. The terminal plays both the customer's chat and the customer's phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, TextIO

import httpx
from telegram import Update

from bot.app import build_application, services_of_app
from bot.config import Settings
from bot.lifecycle import BotApplication, running
from bot.sandbox.daraja import DarajaSandbox
from bot.sandbox.ipay import OUTCOME_BY_LAST_DIGIT, IpaySandbox, Prompt
from bot.sandbox.telegram import ChatMessage, FakeBotApi, TelegramUser
from bot.web import build_web_app

CONSOLE_USER_ID = 1001
_OLDER_BUTTON = re.compile(r"^#(\d+)\.(\d+)$")  # "#3.1": message 3's first button ("10.50" is an amount)
_START_LINK = re.compile(r"^https://t\.me/[A-Za-z0-9_]+\?start=([A-Za-z0-9_-]+)$")  # a request's link
CONSOLE_PHONE = "+254712345670"  # what "share" sends: ends in 0, so the phone asks you
_SHARE_WORDS = frozenset(
    {"share", "share my number", "📱 share my number", "tuma nambari yangu", "📱 tuma nambari yangu"}
)

HELP = (
    """\
pesabot console: you are a customer chatting with the bot; the sandbox plays iPay (no money moves).
  Type messages and commands as in Telegram: /pay, /status, /cancel, /help.
  Buttons are numbered: type the number to press one on the latest message (only if it has buttons),
  or #3.1 for message 3's first. Anything else, 10.50 too, is sent as a message.
  share           share your contact ("""
    + CONSOLE_PHONE
    + """) when the bot asks for a phone ("📱 Share my number")
  approve/decline answer the PIN prompt on the phone (numbers ending in 0 wait for you)
  paybill         pay the latest order by hand instead (Lipa na M-PESA → Pay Bill → its account)
  refund          /refund the latest order (with --admin); the card's button sends it
  balance         the shop's iPay balances a refund is paid from (C2B, then B2C)
  settle          settlement sweeps both balances to the bank: refunds are refused until a top-up
  topup 500       add KES 500 to the B2C balance
  a request link  paste https://t.me/…?start=… (or type /start <token>) to open it as the customer
  quit            leave (Ctrl-D works too)
QR codes and CSV exports are written to files; their paths are printed.
Phone numbers decide what the payer does: """
    + ", ".join(f"…{digit} {outcome.value}" for digit, outcome in sorted(OUTCOME_BY_LAST_DIGIT.items()))
)
AS_CUSTOMER = """You are a customer: at most 5 prompts in 10 minutes, as for anyone. Start with --admin to be the
shop's admin as well (/request, /requests, /qr, /orders, /summary, /export; no per-person limit)."""
ON_DARAJA = """The provider is Daraja (--provider daraja): Safaricom's M-Pesa Express, played by its stand-in.
M-Pesa numbers only; paybill pays by hand through C2B; refunds are reversals; balance, settle, topup are iPay's."""
AS_ADMIN = """You are the shop's admin too (--admin): /request, /requests, /qr, /orders, /summary, /export work,
and the per-person limit does not apply to you (the per-phone limit still does)."""


class Console:
    def __init__(self, settings: Settings, out: TextIO, files: Path | None = None) -> None:
        self.out = out
        self.admin = CONSOLE_USER_ID in settings.admin_ids
        self.files = files if files is not None else Path(tempfile.mkdtemp(prefix="pesabot-console-files-"))
        self.telegram = FakeBotApi()
        self.sandbox = IpaySandbox(
            vid=settings.ipay_vid, hash_key=settings.ipay_hash_key, shop_name=settings.shop_name or "the shop"
        )
        self.daraja: DarajaSandbox | None = None  # with --provider daraja: Daraja's stand-in plays the provider
        transport = self.sandbox.transport()
        if settings.daraja is not None:
            self.daraja = DarajaSandbox(
                consumer_key=settings.daraja.consumer_key,
                consumer_secret=settings.daraja.consumer_secret,
                shortcode=settings.daraja.shortcode,
                passkey=settings.daraja.passkey,
                shop_name=settings.shop_name or "the shop",
            )
            self.daraja.prompt_listeners.append(self._on_prompt)
            transport = self.daraja.transport()
        self.app = build_application(settings, telegram_request=self.telegram, ipay_transport=transport)
        self.user = TelegramUser(self.telegram, CONSOLE_USER_ID, "You")
        self.latest_bot_message: ChatMessage | None = None
        self.last_prompt: Prompt | None = None
        self._tasks: set[asyncio.Task[object]] = set()  # payments by hand on their way to the bot
        self.telegram.listeners.append(self._on_bot_message)
        self.telegram.answer_listeners.append(self._on_popup)
        self.sandbox.prompt_listeners.append(self._on_prompt)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _on_bot_message(self, event: str, message: ChatMessage) -> None:
        if message.chat_id != self.user.chat_id:
            return
        label = f"bot #{message.message_id}" if event != "edit" else f"bot (edited message {message.message_id})"
        self.say(f"{label}: " + message.text.replace("\n", "\n     "))
        self._save_file(message)
        for number, button in enumerate(message.button_labels, 1):
            self.say(f"     [{number}] {button}")
        if any(b.get("request_contact") for row in message.reply_keyboard for b in row):
            self.say("     [share] 📱 Share my number")
        if event != "edit":  # an edit to an older message never makes its buttons the latest
            self.latest_bot_message = message

    def _save_file(self, message: ChatMessage) -> None:
        """A photo (QR code) or document (CSV export) cannot be shown in a terminal: written to a file."""
        if message.photo is not None:
            name, content, what = f"message-{message.message_id}.png", message.photo, "QR code"
        elif message.document and message.document.get("content"):
            name = f"message-{message.message_id}-{Path(str(message.document['filename'])).name}"
            content, what = bytes(message.document["content"]), "file"
        else:
            return
        path = self.files / name
        path.write_bytes(content)
        self.say(f"     [{what} saved to {path}]")

    def _on_popup(self, answer: dict[str, Any]) -> None:
        """A button's pop-up ("Switched to Airtel Money", "That button is no longer active")."""
        if answer.get("text"):
            alert = " (alert)" if answer.get("show_alert") else ""
            self.say(f"bot pop-up{alert}: {answer['text']}")

    def _on_prompt(self, prompt: Prompt) -> None:
        self.last_prompt = prompt
        network = "M-PESA" if prompt.network == "mpesa" else "Airtel Money"
        self.say(
            f"📱 phone {prompt.phone} ({network}): Pay KES {prompt.amount:,} to {prompt.shop_name}? Enter PIN. "
            f"[this payer {prompt.outcome.value}; type approve or decline to answer yourself]"
        )

    def update_for(self, line: str) -> dict[str, Any] | None:
        """Turn a typed line into what the user did in Telegram, or None if it was for the phone."""
        latest = self.latest_bot_message
        if line.isdigit() and latest is not None and latest.buttons and 1 <= int(line) <= len(latest.button_labels):
            return self.user.press(latest, latest.button_labels[int(line) - 1])
        older = _OLDER_BUTTON.match(line)
        if older is not None:  # "#3.1": message 3's first button, however old (stale buttons can be tried)
            return self._press_older(int(older.group(1)), int(older.group(2)))
        if line.lower() in _SHARE_WORDS:
            return self.user.contact(CONSOLE_PHONE)
        link = _START_LINK.match(line)
        if link is not None:  # what tapping the link does in Telegram
            return self.user.text(f"/start {link.group(1)}")
        if line.lower() in ("approve", "decline"):
            prompt = self.last_prompt
            phone = self.daraja if self.daraja is not None else self.sandbox
            if prompt is None or not phone.answer(prompt.phone, approve=line.lower() == "approve"):
                self.say("📱 there is no open prompt on the phone.")
            else:
                self.say(f"📱 you {line.lower()}d the prompt.")
            return None
        if line.lower() == "paybill":
            self._pay_by_paybill()
            return None
        if self.daraja is not None and line.lower().partition(" ")[0] in ("balance", "settle", "topup"):
            self.say("🏦 (on Daraja the shop's balances are in its M-Pesa portal, not here)")
            return None
        return self._refund_words(line)

    def _refund_words(self, line: str) -> dict[str, Any] | None:
        """refund, balance, settle, topup N: the shop's side of a refund; anything else is a message."""
        word, _, rest = line.lower().partition(" ")
        if word == "refund" and not rest:
            if self.last_prompt is None:
                self.say("(no order yet: send /pay and confirm first)")
                return None
            return self.user.text(f"/refund {self.last_prompt.oid}")
        if word == "balance" and not rest:
            self.say(f"🏦 iPay balances: C2B KES {self.sandbox.c2b_balance:,}, B2C KES {self.sandbox.b2c_balance:,}")
            return None
        if word == "settle" and not rest:
            self.sandbox.empty_balances()
            self.say("🏦 settlement swept both balances to the bank: C2B KES 0, B2C KES 0")
            return None
        if word == "topup" and rest.strip().isdigit():
            self.sandbox.top_up(int(rest))
            self.say(f"🏦 topped up: B2C KES {self.sandbox.b2c_balance:,}")
            return None
        return self.user.text(line)

    def _press_older(self, message_id: int, number: int) -> dict[str, Any] | None:
        known = [m for m in self.telegram.messages(self.user.chat_id) if m.message_id == message_id]
        message = known[0] if known else None
        if message is None or not 1 <= number <= len(message.button_labels):
            self.say(f"(message {message_id} has no button {number})")
            return None
        return self.user.press(message, message.button_labels[number - 1])

    def _pay_by_paybill(self) -> None:
        """The payer ignores (or never got) the prompt and pays the same order by Pay Bill: the
        sweep then finds the payment like any other."""
        prompt = self.last_prompt
        if self.daraja is not None:
            self._pay_daraja_by_hand()
            return
        if prompt is None or prompt.oid not in self.sandbox.transactions:
            self.say("📱 there is no order to pay by Pay Bill yet: send /pay and confirm first.")
            return
        self.sandbox.pay_by_paybill(prompt.oid)
        self.say(f"📱 you paid KES {prompt.amount:,} by Pay Bill to the account of order {prompt.oid}.")

    def _pay_daraja_by_hand(self) -> None:
        """On Daraja, paying by hand is a C2B confirmation the stand-in POSTs to the bot."""
        prompt, daraja = self.last_prompt, self.daraja
        if daraja is None or prompt is None:
            self.say("📱 there is no order to pay by Pay Bill yet: send /pay and confirm first.")
            return
        if not daraja.c2b_urls:
            self.say("📱 the bot registered no C2B URLs (DARAJA_REGISTER_C2B=1): answer the prompt instead.")
            return
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            daraja.pay_by_hand(prompt.oid, prompt.amount)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.say(
            f"📱 you paid KES {prompt.amount:,} by Pay Bill to business no. {daraja.shortcode}, account {prompt.oid}."
        )

    async def run(self, lines: asyncio.Queue[str | None]) -> None:
        async with running(self.app) as app:
            updater = app.updater
            if updater is None:  # the console always polls the emulated Bot API
                raise RuntimeError("the console needs the Application's updater")
            await updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES)
            callbacks = self._daraja_calls_back(app)
            self.say(HELP)
            self.say(AS_ADMIN if self.admin else AS_CUSTOMER)
            if self.daraja is not None:
                self.say(ON_DARAJA)
            while (line := await lines.get()) is not None:
                line = line.strip()
                if line.lower() in ("quit", "exit"):
                    break
                if line:
                    update = self.update_for(line)
                    if update is not None:
                        self.telegram.queue_update(update)
            if callbacks is not None:
                callbacks.cancel()
        self.say("bye")

    def _daraja_calls_back(self, app: BotApplication) -> asyncio.Task[None] | None:
        """On Daraja, its stand-in POSTs each outcome's callback to the bot's web app in-process."""
        if self.daraja is None:
            return None
        self.daraja.callback_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_web_app(services_of_app(app), app))
        )
        return asyncio.get_running_loop().create_task(self.daraja.send_callbacks_forever())


def _read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], source: TextIO) -> None:
    """Blocking reads in a daemon thread, so quitting never waits for one more line."""
    for line in iter(source.readline, ""):
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def _main(settings: Settings) -> None:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    reader = threading.Thread(target=_read_lines, args=(asyncio.get_running_loop(), queue, sys.stdin), daemon=True)
    reader.start()
    await Console(settings, sys.stdout).run(queue)


def run_console(settings: Settings, admin: bool = False) -> int:
    """Run until quit or end of input. Orders live in a temporary database unless DATABASE_PATH is
    set. With `admin`, the terminal's user is also the shop's admin (`--admin`)."""
    if admin:
        settings = dataclasses.replace(settings, admin_ids=settings.admin_ids | {CONSOLE_USER_ID})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="pesabot-console-") as scratch:
        if settings.database_path == Settings.database_path:
            settings = dataclasses.replace(settings, database_path=Path(scratch) / "console.sqlite3")
        if settings.daraja is not None:  # Daraja's callbacks come in-process: any free port will do
            # The stand-in plays the whole of Daraja: payments by hand (C2B) and reversals too.
            daraja = dataclasses.replace(
                settings.daraja,
                register_c2b=True,
                initiator=settings.daraja.initiator or "testapi",
                security_credential=settings.daraja.security_credential or "sandbox-credential",
            )
            settings = dataclasses.replace(settings, port=0, daraja=daraja)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(settings))
    return 0
