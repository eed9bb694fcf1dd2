"""The console's `paybill`: the payer at the terminal reads the Pay Bill way round and pays by hand."""

from __future__ import annotations

from pathlib import Path

from tests.console_terminal import Terminal


def test_console_pays_the_same_order_by_paybill(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path)
    try:
        terminal.wait_for("paybill")
        terminal.type("paybill")
        terminal.wait_for("there is no order to pay by Pay Bill yet")
        terminal.type("/pay")
        terminal.wait_for("[share] 📱 Share my number")
        terminal.type("share")  # ends in 0: the prompt waits for the terminal
        terminal.wait_for("Phone: 0712 345 670 (M-Pesa).")
        terminal.type("700")
        terminal.wait_for("[1] ✅ Confirm")
        terminal.type("1")
        terminal.wait_for("[2] 📋 No prompt on your phone?")
        terminal.type("2")
        terminal.wait_for("M-PESA → Lipa na M-PESA → Pay Bill → Business no. 261144 → Account ")
        terminal.type("paybill")
        terminal.wait_for("you paid KES 700 by Pay Bill")
        terminal.wait_for(" Confirmed. KES 700 paid to the shop from 0712 345 670 (")
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()
