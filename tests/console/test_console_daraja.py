"""`python bot.py --console --provider daraja`: the whole bot on Daraja's stand-in, in a terminal."""

from __future__ import annotations

from pathlib import Path

from tests.console_terminal import Terminal


def test_the_console_runs_on_daraja_paid_with_its_receipt_and_airtel_refused(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "--provider", "daraja")
    try:
        terminal.wait_for("The provider is Daraja (--provider daraja)")
        terminal.type("/pay")
        terminal.wait_for("Which phone")
        terminal.type("0733 345 670")
        terminal.wait_for("This shop takes M-Pesa only, and 07** ***670 is an Airtel Money number.")
        terminal.type("share")
        terminal.wait_for("How much?")
        terminal.type("250")
        terminal.wait_for("[1] ✅ Confirm")
        terminal.type("1")
        terminal.wait_for("📱 phone 254712345670 (M-PESA): Pay KES 250 to the shop? Enter PIN.")
        terminal.type("approve")
        terminal.wait_for(" Confirmed. KES 250 paid to the shop from 0712 345 670")
        receipt = next(line for line in reversed(terminal.seen) if " Confirmed. KES 250" in line)
        code = receipt.split(" Confirmed.", 1)[0].split()[-1]
        assert len(code) == 10 and code.isalnum(), receipt  # the receipt from Daraja's callback the query confirmed
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()


def test_the_console_pays_by_hand_on_daraja_through_c2b(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "--provider", "daraja")
    try:
        terminal.wait_for("paybill pays by hand through C2B")
        terminal.type("/pay")
        terminal.wait_for("Which phone")
        terminal.type("0712 345 670")  # the prompt waits for the holder, who pays by hand instead
        terminal.wait_for("How much?")
        terminal.type("300")
        terminal.wait_for("[1] ✅ Confirm")
        terminal.type("1")
        terminal.wait_for("📋 No prompt on your phone?")
        terminal.type("paybill")
        terminal.wait_for("📱 you paid KES 300 by Pay Bill to business no. 174379, account ")
        terminal.wait_for(" Confirmed. KES 300 paid to the shop from 0712 345 670")
        terminal.type("quit")
        assert terminal.process.wait(timeout=15) == 0
    finally:
        terminal.close()
