"""bot.py sets the garbage collector for a server before it serves: young collections every
10,000 new objects instead of 700, and what start-up built frozen out of later collections
(bot/memory.py says why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.memory import YOUNG_COLLECTION_EVERY

ROOT = Path(__file__).resolve().parent.parent

# bot.py up to the moment it would start polling Telegram, reporting the collector's settings then.
UNTIL_IT_SERVES = """
import gc, json, runpy, sys
from telegram.ext import Application

def report(self, **kwargs):
    print(json.dumps({"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}))

Application.run_polling = report
sys.argv = ["bot.py", "--sandbox"]
runpy.run_path(%r, run_name="__main__")
"""


def test_the_bot_serves_with_rarer_young_collections_and_its_start_up_frozen(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "IPAY_", "WEBHOOK_"))}
    env |= {"TELEGRAM_BOT_TOKEN": "1:abc", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", UNTIL_IT_SERVES % str(ROOT / "bot.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["threshold"] == YOUNG_COLLECTION_EVERY
    assert state["frozen"] > 10_000  # the libraries' modules, classes and functions
