"""The console as a person at the terminal uses it: `python bot.py --console`, read and typed into."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Terminal:
    """`python bot.py --console`, read and typed into as a person at the terminal would."""

    def __init__(self, cwd: Path, *args: str) -> None:
        env = {**os.environ, "POLL_INTERVAL_SECONDS": "0.2", "PYTHONUNBUFFERED": "1"}
        env.pop("TELEGRAM_BOT_TOKEN", None)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py"), "--console", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.seen: list[str] = []

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        assert self.process.stdout is not None  # piped above
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            self.seen.append(line)
            if text in line:
                return
        pytest.fail(f"never saw {text!r}; got {''.join(self.seen)}")

    def type(self, line: str) -> None:
        assert self.process.stdin is not None  # piped above
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
