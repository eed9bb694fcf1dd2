"""The console's first hour: being the admin, opening a request's link, seeing a QR code
or a CSV, sharing the number, and typed numbers that never press a button nobody meant."""

from __future__ import annotations

import io
import re
from pathlib import Path

from bot.config import Settings
from bot.console import CONSOLE_USER_ID, Console
from bot.sandbox.telegram import ChatMessage
from tests.console_terminal import Terminal


def test_as_admin_the_console_makes_a_request_saves_its_qr_code_and_opens_its_link(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "--admin")
    try:
        terminal.wait_for("You are the shop's admin too (--admin)")
        terminal.type("/request 500 bread")
        terminal.wait_for("[QR code saved to ")
        saved = Path(terminal.seen[-1].split("saved to ", 1)[1].rstrip("]\n"))
        assert saved.read_bytes().startswith(b"\x89PNG")
        link = re.search(r"https://t\.me/\S+\?start=[A-Za-z0-9_-]+", "".join(terminal.seen))
        assert link is not None
        terminal.type(link.group(0))  # as tapping the link in Telegram
        terminal.wait_for("The shop asks KES 500 for bread.")
        terminal.type("📱 Share my number")  # the button's own words work as well as "share"
        terminal.wait_for("To: the shop")
        terminal.wait_for("For: bread")
        terminal.wait_for("[1] ✅ Confirm")
        terminal.type("1")
        terminal.wait_for("Check your phone")
        terminal.type("approve")
        terminal.wait_for(" Confirmed. KES 500 paid to the shop from 0712 345 670")
        terminal.type("/export")
        terminal.wait_for("[file saved to ")
        assert Path(terminal.seen[-1].split("saved to ", 1)[1].rstrip("]\n")).suffix == ".csv"
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()


def test_a_customer_is_told_the_limit_applies_and_10_50_is_an_amount(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path)
    try:
        terminal.wait_for("You are a customer: at most 5 prompts in 10 minutes")
        terminal.type("/pay")
        terminal.wait_for("[share] 📱 Share my number")
        terminal.type("share")
        terminal.wait_for("How much?")
        terminal.type("10.50")
        terminal.wait_for("M-Pesa and Airtel Money take whole shillings only, no cents.")
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()


def test_a_number_typed_when_the_latest_message_has_no_buttons_is_a_message(settings: Settings) -> None:
    console = Console(settings, io.StringIO(), files=Path("."))
    chat = CONSOLE_USER_ID
    summary = ChatMessage(1, chat, "Please check:", True, buttons=[[("✅ Confirm", "pay:confirm")]])
    console._on_bot_message("message", summary)
    console._on_bot_message("message", ChatMessage(2, chat, "How much?", True))
    console._on_bot_message("edit", summary)  # an older message edited, its button still there
    update = console.update_for("1")
    assert update is not None and "callback_query" not in update and update["message"]["text"] == "1"
    typed = console.update_for("10.50")
    assert typed is not None and typed["message"]["text"] == "10.50"
