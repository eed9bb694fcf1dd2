"""`python -m bench.mutation`: a mutation run over the money code, with mutmut.

mutmut changes one thing at a time in the code (a comparison flipped, `and` for `or`, a
constant off by one, a string emptied, an argument dropped) and runs the tests that cover it:
a mutant the tests catch is "killed", one they let through "survived". A survivor is either a
gap in the tests or a change that cannot alter what the code does ("equivalent"); the
equivalent ones are listed below, each with the reason, and docs/mutation.md has the table.

    python -m bench.mutation [--only signing,inputs,client,payments,refund,settle-branches] [--children N] [--show]

Each file runs in a copy of the repository in a temporary folder (mutmut writes its mutants
and results beside the code it mutates), against the tests named for it below. Not part of
CI: the six targets take about three quarters of an hour on 2 cores. `--show` prints each survivor's
diff, the equivalent ones too (so a renumbering shows). Needs requirements-dev.txt (mutmut is
pinned there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALSO_COPY = ("pytest.ini", "bench", "README.md", ".env.example", "bot.py", "Procfile", "docs", "requirements.txt")


@dataclass(frozen=True)
class Target:
    path: str
    tests: tuple[str, ...]
    mutants: tuple[str, ...] = ()  # mutant name patterns to run (all of the file's when empty)


TARGETS = {
    "signing": Target(
        "bot/providers/ipay/signing.py", ("tests/providers/test_signing.py", "tests/providers/test_ipay_client.py")
    ),
    "inputs": Target("bot/pay/inputs.py", ("tests/pay/test_inputs.py", "tests/pay/test_pay_conversation.py")),
    # tests/console/test_sandbox.py is left out: run inside mutmut's process it never finishes.
    "client": Target(
        "bot/providers/ipay/client.py",
        ("tests/providers/test_ipay_client.py", "tests/orders/test_poller.py", "tests/orders/test_in_doubt.py"),
    ),
    "payments": Target(
        "bot/orders/service.py",
        (
            "tests/test_lifecycle.py",
            "tests/orders/test_poller.py",
            "tests/pay/test_follow_up_orders.py",
            "tests/orders/test_callback.py",
        ),
        ("*ǁsettle__mutmut_*", "*ǁrecord_payment__mutmut_*"),
    ),
    # The refund call and its reply handling: a refund taken for refused when money moved (or
    # the other way round) is money lost.
    "refund": Target(
        "bot/providers/ipay/client.py",
        ("tests/providers/test_ipay_client.py", "tests/refunds/test_refunds.py"),
        ("*ǁrefund__mutmut_*",),
    ),
    # What a lookup without a verdict and a failure on the phone do to an order.
    "settle-branches": Target(
        "bot/orders/service.py",
        (
            "tests/orders/test_poller.py",
            "tests/orders/test_in_doubt.py",
            "tests/test_lifecycle.py",
            "tests/orders/test_callback.py",
        ),
        ("*ǁ_errored__mutmut_*", "*ǁ_failed__mutmut_*"),
    ),
}

# Survivors that cannot change what the code does, by mutmut's name for them (the numbers hold
# while the file is unchanged; a change to the file renumbers them, and the run then shows them
# as unexplained until this list is brought up to date).
_CLIENT = "bot.providers.ipay.client."
EQUIVALENT: dict[str, str] = {
    # bot/providers/ipay/signing.py: a field left out reads as None instead of "", and `sign` writes None as ""
    "bot.providers.ipay.signing.x_transact_hash__mutmut_5": 'fields.get(name, None): `sign` writes None as ""',
    "bot.providers.ipay.signing.x_transact_hash__mutmut_7": 'fields.get(name): `sign` writes None as ""',
    "bot.providers.ipay.signing.x_search_reply_hash__mutmut_22": 'record.get(name, None): `sign` writes None as ""',
    "bot.providers.ipay.signing.x_search_reply_hash__mutmut_24": 'record.get(name): `sign` writes None as ""',
    # bot/pay/inputs.py
    "bot.pay.inputs.x_parse_amount__mutmut_65": "len >= 12: 12 digits are over any MAX_AMOUNT below KES 100 billion",
    # bot/providers/ipay/client.py
    _CLIENT + "xǁIpayClientǁsearch__mutmut_63": 'message or text or "XXXX": "XXXX" matches no verdict, like ""',
    _CLIENT + "xǁIpayClientǁrefund__mutmut_50": 'text or "XXXX": "XXXX" is no "refund done", like ""',
    _CLIENT + "xǁIpayClientǁrefund__mutmut_1": "amount default 1: iPay refunds whole, the amount is not sent",
    _CLIENT + "xǁIpayClientǁrefund__mutmut_2": 'order_id default "XXXX": not sent to iPay, the caller passes it',
    _CLIENT + "xǁIpayClientǁ_endpoint__mutmut_1": "no cache read: the same URL and Host worked out again",
    _CLIENT + "xǁIpayClientǁ_endpoint__mutmut_2": "cache read by None: the same URL and Host worked out again",
    _CLIENT + "xǁIpayClientǁ_endpoint__mutmut_10": 'decode("ASCII"): the same codec as "ascii"',
    _CLIENT + "xǁIpayClientǁ_post__mutmut_17": 'method "post": httpx.Request upper-cases it',
    _CLIENT + "xǁIpayClientǁ_post__mutmut_20": '"host": header names ignore case (RFC 9110 §5.1)',
    _CLIENT + "xǁIpayClientǁ_post__mutmut_21": '"HOST": header names ignore case (RFC 9110 §5.1)',
    _CLIENT + "xǁIpayClientǁ_post__mutmut_23": '"content-length": the wire sends the body\'s own length',
    _CLIENT + "xǁIpayClientǁ_post__mutmut_24": '"CONTENT-LENGTH": the wire sends the body\'s own length',
    _CLIENT
    + "xǁIpayClientǁread_callback__mutmut_1": 'body default b"XXXX": iPay\'s callback is read from its params only',
    _CLIENT + "xǁIpayClientǁ_unverified__mutmut_2": "the dict is an ordered set: its values are never read",
    _CLIENT + "x__retry_after__mutmut_12": 'headers.get("RETRY-AFTER"): httpx headers ignore case',
    _CLIENT + "x__retry_after__mutmut_13": 'default "XXXX": float() refuses it as it refuses "", so None',
    _CLIENT + "x__shillings__mutmut_1": "bool and not str/int/float: str() of any other JSON value is no Decimal",
    _CLIENT + "xǁIpayClientǁ_note_shape__mutmut_11": 'headers.get("CONTENT-TYPE"): httpx headers ignore case',
    _CLIENT + "xǁIpayClientǁ__init____mutmut_1": 'callback_url default "XXXX": the bot always passes its setting',
    _CLIENT + "xǁIpayClientǁ__init____mutmut_2": 'customer_email default "XXXX": the bot always passes its setting',
    _CLIENT + "xǁIpayClientǁ__init____mutmut_16": 'rstrip("XX/XX"): no iPay base URL ends in X',
    _CLIENT + "xǁIpayClientǁ__init____mutmut_29": "min without `high`: general read (25 s) is `high` (25 s)",
    _CLIENT + "xǁIpayClientǁ__init____mutmut_30": "min without general read: `high` (25 s) is general read (25 s)",
    _CLIENT + "xǁIpayClientǁ__init____mutmut_35": "general read and high: both 25 s, so 25 s",
    # log text only (the shape warning of an answer without a content-type, or not JSON to search)
    _CLIENT + "xǁIpayClientǁ_note_shape__mutmut_7": "log text only: a missing content-type logged as None",
    _CLIENT + "xǁIpayClientǁ_note_shape__mutmut_9": "log text only: a missing content-type logged as None",
    _CLIENT + "xǁIpayClientǁ_note_shape__mutmut_12": "log text only: a missing content-type logged as XXXX",
    _CLIENT + "xǁIpayClientǁsearch__mutmut_35": "log text only: a search answer not JSON logged with path None",
    # bot/orders/service.py
    "bot.orders.service.xǁPaymentServiceǁrecord_payment__mutmut_6": "amount <= asked: an equal amount is PAID above",
    "bot.orders.service.xǁPaymentServiceǁ_errored__mutmut_54": (
        "not pending and already in doubt (for or): mark_in_doubt writes only a pending order not yet in"
        " doubt, so either way the reschedule is returned"
    ),
}


def _copy_repository(into: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "mutants", "__pycache__", ".mypy_cache", ".ruff_cache", "*.pyc")
    copy = into / "repo"
    shutil.copytree(ROOT, copy, ignore=ignore)
    return copy


def _setup_cfg(target: Target) -> str:
    lines = [
        "[mutmut]",
        "source_paths = bot",
        f"only_mutate = {target.path}",
        # what the tests read beside the code (the README's tables, the settings example, the entry point)
        "also_copy =\n" + "\n".join(f"    {p}" for p in ALSO_COPY if (ROOT / p).exists()),
        "pytest_add_cli_args = -p no:cacheprovider -q -x",
        "pytest_add_cli_args_test_selection =\n" + "\n".join(f"    {t}" for t in target.tests),
        "use_git_change_detection = false",
        "use_setproctitle = false",
    ]
    return "\n".join(lines) + "\n"


def _results(copy: Path) -> dict[str, str]:
    """Every mutant's name and mutmut's verdict (killed, survived, timeout, no tests, ...)."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    verdicts = {}
    for line in out.splitlines():
        name, _, verdict = line.strip().rpartition(": ")
        if name:
            verdicts[name] = verdict
    return verdicts


def run(target: Target, children: int, show: bool) -> tuple[Counter[str], list[str]]:
    with tempfile.TemporaryDirectory(prefix="pesabot-mutation-") as tmp:
        copy = _copy_repository(Path(tmp))
        (copy / "setup.cfg").write_text(_setup_cfg(target))
        env = {**os.environ, "PYTHONPATH": ""}
        ran = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *target.mutants],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
        )
        if ran.returncode != 0:  # the clean run of the tests failed, most often
            raise SystemExit(f"mutmut failed on {target.path}:\n{(ran.stdout + ran.stderr)[-6000:]}")
        verdicts = _results(copy)
        if target.mutants:
            from fnmatch import fnmatch

            verdicts = {k: v for k, v in verdicts.items() if any(fnmatch(k, p) for p in target.mutants)}
        counts: Counter[str] = Counter()
        unexplained = []
        for name, verdict in sorted(verdicts.items()):
            if verdict == "survived" and name in EQUIVALENT:
                verdict = "equivalent"
            elif verdict == "survived":
                unexplained.append(name)
            counts[verdict] += 1
            if verdict not in ("killed", "survived", "equivalent"):
                print(f"  {name}: {verdict}", file=sys.stderr)
            if verdict in ("survived", "equivalent") and show:  # equivalents too: a renumbering shows
                diff = subprocess.run(
                    [sys.executable, "-m", "mutmut", "show", name], cwd=copy, capture_output=True, text=True
                ).stdout
                print(diff)
        return counts, unexplained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated: " + ", ".join(TARGETS))
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff (equivalent ones too)")
    args = parser.parse_args()
    print("| file | mutants | killed | survived | equivalent | other | minutes |")
    print("|---|---|---|---|---|---|---|")
    every_unexplained = []
    for key in args.only.split(","):
        target = TARGETS[key]
        started = time.monotonic()
        counts, unexplained = run(target, args.children, args.show)
        other = sum(n for verdict, n in counts.items() if verdict not in ("killed", "survived", "equivalent"))
        scope = f" ({', '.join(target.mutants)})" if target.mutants else ""
        print(
            f"| `{target.path}`{scope} | {sum(counts.values())} | {counts['killed']} | {counts['survived']} | "
            f"{counts['equivalent']} | {other} | {(time.monotonic() - started) / 60:.1f} |",
            flush=True,
        )
        every_unexplained += unexplained
    if every_unexplained:
        print("\nunexplained survivors (python -m bench.mutation --show prints their diffs):")
        print("\n".join(f"  {name}" for name in every_unexplained))


if __name__ == "__main__":
    main()
