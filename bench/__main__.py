"""`python -m bench`: every benchmark, one after another, printed as one markdown section.

Each benchmark runs in its own process (so one's memory peak is not another's), each
against the iPay sandbox in a process of its own where CPU is measured. The output starts
with the date, the machine and its load average, and is what the README's performance
section shows, pasted whole. The default sizes take about 10 minutes on 2 cores (12 with `--postgres`); `--full`
sweeps 1,000 / 10,000 / 50,000 orders instead of 1,000 / 5,000, which takes far longer
(httpx's own transport, kept for comparison, needs minutes for 50,000).

    python -m bench [--full] [--sweep-sizes 1000,5000] [--api-payments 1000] [--burst 4000]
                    [--users 10,100,1000] [--payments 200]
                    [--startup-runs 5] [--pending 10000] [--owner-orders 10000]
                    [--only sweep,payments,conversation,notify,startup,owner,store,postgres]
                    [--postgres] [--pg-orders 10000]

`--postgres` adds `bench/postgres.py` (a throwaway PostgreSQL cluster, or PESABOT_BENCH_POSTGRES_URL):
sweeps of 10,000 due orders by 1, 2 and 3 instances, and order creation SQLite against PostgreSQL.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from common import load_average, machine  # noqa: E402


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    sweep_sizes = "1000,10000,50000" if args.full else args.sweep_sizes
    return {
        "sweep": ["sweep.py", "--sizes", sweep_sizes],
        "payments": ["payments.py", "--payments", str(args.api_payments), "--burst", str(args.burst)],
        "conversation": ["conversation.py", "--users", args.users],
        "notify": ["notify_latency.py", "--payments", str(args.payments)],
        "startup": ["startup.py", "--runs", str(args.startup_runs), "--pending", str(args.pending)],
        "owner": ["owner_reports.py", "--orders", str(args.owner_orders)],
        "store": ["store_contention.py"],
        # Optional (--postgres, or --only postgres): starts a PostgreSQL cluster, runs 3 bot processes.
        "postgres": ["postgres.py", "--orders", str(args.pg_orders)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run every benchmark; print the README's table."
    )
    parser.add_argument("--full", action="store_true", help="sweep 1,000 / 10,000 / 50,000 due orders")
    parser.add_argument("--sweep-sizes", default="1000,5000")
    parser.add_argument("--users", default="10,100,1000")
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument(
        "--api-payments", type=int, default=1000, help="payments each REST API / tutorial run makes (bench/payments.py)"
    )
    parser.add_argument("--burst", type=int, default=4000, help="payments in the REST API burst (0: none)")
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument(
        "--owner-orders", type=int, default=10_000, help="orders in the owner's month (chart, workbook)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: sweep, payments, conversation, notify, startup, owner, store, postgres",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also the PostgreSQL benchmark: sweeps by 1, 2, 3 instances, order creation vs SQLite",
    )
    parser.add_argument("--pg-orders", type=int, default=10_000, help="due orders the PostgreSQL sweep looks up")
    args = parser.parse_args()
    chosen = commands(args)
    if args.only:
        chosen = {name: cmd for name, cmd in chosen.items() if name in args.only.split(",")}
    elif not args.postgres:
        del chosen["postgres"]
    started_at, started, load_before = datetime.now(UTC), time.perf_counter(), load_average()
    sections, failed = [], []
    for name, (script, *options) in chosen.items():
        print(f"running {name} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(BENCH / script), *options], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        print(f"  {name}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
        if done.returncode != 0:
            failed.append(name)
            sections.append(f"**{name}** failed (exit {done.returncode}); its output:\n\n```\n{done.stdout}\n```")
        else:
            sections.append(done.stdout.strip())
    took = time.perf_counter() - started
    print(
        f"Measured {started_at:%Y-%m-%d %H:%M} UTC with `python -m bench{' --full' if args.full else ''}` "
        f"({took / 60:.1f} min) on {machine()}; load average {load_before} before, {load_average()} after. "
        "iPay is the sandbox with 150 ms a call, Telegram the in-process Bot API emulation."
    )
    for section in sections:
        print()
        print(section)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
