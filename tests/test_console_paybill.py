"""The console's `paybill`: the payer at the terminal reads the Pay Bill way round and pays by hand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_console_pays_the_same_order_by_paybill(tmp_path: Path) -> None:
    env = {**os.environ, "POLL_INTERVAL_SECONDS": "0.2", "PYTHONUNBUFFERED": "1"}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "--console"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert process.stdin and process.stdout
    seen: list[str] = []

    def wait_for(text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()  # type: ignore[union-attr]
            seen.append(line)
            if text in line:
                return
        pytest.fail(f"never saw {text!r}; got {''.join(seen)}")

    def type_line(line: str) -> None:
        process.stdin.write(line + "\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]

    try:
        wait_for("paybill")
        type_line("paybill")
        wait_for("there is no order to pay by Pay Bill yet")
        type_line("/pay")
        wait_for("[share] 📱 Share my number")
        type_line("share")  # ends in 0: the prompt waits for the terminal
        wait_for("Phone: 0712 345 670 (M-Pesa).")
        type_line("700")
        wait_for("[1] ✅ Confirm")
        type_line("1")
        wait_for("[2] 📋 No prompt on your phone?")
        type_line("2")
        wait_for("M-PESA → Lipa na M-PESA → Pay Bill → Business no. 261144 → Account ")
        type_line("paybill")
        wait_for("you paid KES 700 by Pay Bill")
        wait_for(" Confirmed. KES 700 paid to the shop from 0712 345 670 (")
        type_line("quit")
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
