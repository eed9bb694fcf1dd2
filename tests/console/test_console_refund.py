"""The console's `refund` walk-through: a payment, a refund refused for want of balance, a
top-up, the refund done and the payer told (docs/console-and-sandbox.md)."""

from __future__ import annotations

from pathlib import Path

from tests.console_terminal import Terminal


def test_console_refunds_a_payment_after_a_top_up(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "--admin")  # /refund is an admin's
    try:
        terminal.wait_for("topup 500")
        terminal.type("/pay")
        terminal.wait_for("[share] 📱 Share my number")
        terminal.type("0712345677")  # ends in 7: pays in full
        terminal.wait_for("Phone: 0712 345 677 (M-Pesa).")
        terminal.type("500")
        terminal.wait_for("[1] ✅ Confirm")
        terminal.type("1")
        terminal.wait_for(" Confirmed. KES 500 paid to the shop from 0712 345 677 (")
        terminal.type("settle")
        terminal.wait_for("settlement swept both balances")
        terminal.type("refund")
        terminal.wait_for("[1] ↩️ Refund KES 500")
        terminal.type("1")
        terminal.wait_for("Top up your iPay balance and try again.")
        terminal.type("topup 1000")
        terminal.wait_for("topped up: B2C KES 1,000")
        terminal.type("refund")
        terminal.wait_for("[1] ↩️ Refund KES 500")
        terminal.type("1")
        terminal.wait_for("is being refunded to 07** ***677. M-PESA will send you an SMS.")
        terminal.type("balance")
        terminal.wait_for("iPay balances: C2B KES 0, B2C KES 500")
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()
