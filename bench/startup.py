"""Benchmark 4: start-up time and memory of `python bot.py --console`.

Time from launching the process to the console's ready banner, then resident memory once
idle, and again with 10,000 pending orders in the database (after the first sweep has
looked them all up in the console's in-process sandbox).

    python bench/startup.py [--runs 5] [--pending 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, rss_mib, seed_pending, table

READY = "Phone numbers decide what the payer does"


def launch(database: Path | None) -> tuple[subprocess.Popen[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env["POLL_INTERVAL_SECONDS"] = "1"
    if database is not None:
        env["DATABASE_PATH"] = str(database)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "--console"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None  # piped above
    for line in process.stdout:
        if READY in line:
            return process, time.perf_counter() - started
    raise RuntimeError("the console never became ready")


def quit_console(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None  # piped by start_console
    process.stdin.write("quit\n")
    process.stdin.flush()
    process.wait(timeout=60)


def idle_runs(runs: int) -> tuple[list[float], list[float]]:
    """Start to ready (s) and idle RSS (MiB) of `runs` starts on an empty database."""
    times, idle = [], []
    for _ in range(runs):
        process, seconds = launch(None)
        times.append(seconds)
        time.sleep(2)
        idle.append(rss_mib(process.pid))
        quit_console(process)
    return times, idle


def run_with_pending(pending: int) -> tuple[float, float, float]:
    """With `pending` orders due: start to ready (s), RSS before the first sweep, and its peak while sweeping."""
    with tempfile.TemporaryDirectory() as scratch:
        database = Path(scratch) / "pending.sqlite3"
        asyncio.run(seed_pending(database, pending, due_at=time.time() - 1))
        process, loaded_start = launch(database)
        time.sleep(1)
        before_sweep = rss_mib(process.pid)
        peak = before_sweep
        for _ in range(40):  # the first sweep looks up every order; watch memory while it runs
            time.sleep(0.5)
            peak = max(peak, rss_mib(process.pid))
        quit_console(process)
    return loaded_start, before_sweep, peak


def measure(runs: int, pending: int) -> str:
    times, idle = idle_runs(runs)
    loaded_start, before_sweep, peak = run_with_pending(pending)
    return "\n".join(
        [
            "**Start-up and memory** (`python bench/startup.py`): `python bot.py --console`",
            "",
            table(
                [
                    f"start to ready s (median of {runs})",
                    "idle RSS MiB",
                    f"RSS MiB with {pending:,} pending",
                    "peak RSS MiB while sweeping them",
                    "start to ready s with them",
                ],
                [
                    [
                        f"{statistics.median(times):.2f}",
                        f"{statistics.median(idle):.1f}",
                        f"{before_sweep:.1f}",
                        f"{peak:.1f}",
                        f"{loaded_start:.2f}",
                    ]
                ],
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pending", type=int, default=10_000)
    args = parser.parse_args()
    print(measure(args.runs, args.pending))


if __name__ == "__main__":
    main()
