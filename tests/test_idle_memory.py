"""A bot at rest carries no library it has not used yet: the chart's, the spreadsheet's, the QR
code's, the Mini App's templates', PostgreSQL's driver (on SQLite) and the web server (while it
serves no HTTP) are imported when first needed, so they cost no memory until then."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONLY_WHEN_USED = ("matplotlib", "openpyxl", "segno", "PIL", "jinja2", "asyncpg", "uvicorn")

LOADED = """
import json, sys
import bot.app, bot.console
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def test_starting_the_bot_loads_none_of_the_libraries_it_imports_when_used() -> None:
    done = subprocess.run([sys.executable, "-c", LOADED], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "telegram" in loaded and "aiosqlite" in loaded  # what a bot at rest does need
    assert sorted(loaded & set(ONLY_WHEN_USED)) == []
