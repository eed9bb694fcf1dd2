"""`python -m bot.reconcile --since 2026-12-01 [--until ...]`: the operator reconciles a period
with the shop's iPay account beside a running bot (`bot/orders/reconcile.py` does the work; the
messages it queues are sent by the bot's notifier)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable
from datetime import date

import httpx

from bot.app import open_payment_service
from bot.config import Settings, load_settings
from bot.orders.reconcile import Reconciliation, reconcile
from bot.providers.base import DEFAULT_PROVIDER_NAME
from bot.reports import sentences as report_sentences
from bot.reports.service import Period, PeriodError, parse_period


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.reconcile",
        description="Look every order of a period up at the payment provider again; report and fix what differs.",
    )
    parser.add_argument("--since", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD (Nairobi)")
    parser.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (default: today)")
    return parser


def table(result: Reconciliation, when: str = "", provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """The report as plain text for a terminal (English, as the operator's logs are)."""
    return "\n".join(report_sentences.reconcile_report(result, when, provider))


def messages_period(period: Period) -> str:
    return report_sentences.period_words(period)


async def run(
    argv: list[str],
    *,
    settings: Settings | None = None,
    clock: Callable[[], float] | None = None,
    ipay_transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Reconcile the period named on the command line with the configured shop's provider account
    (`settings` from the environment unless given; tests pass the sandbox as `ipay_transport`)."""
    args = _parser().parse_args(argv)
    now = (clock or time.time)()
    try:
        period = parse_period([args.since.isoformat()] + ([args.until.isoformat()] if args.until else []), now)
    except PeriodError as exc:
        print(f"python -m bot.reconcile: {exc}", file=sys.stderr)
        return 2
    settings = settings or load_settings()
    async with open_payment_service(settings, clock=clock or time.time, ipay_transport=ipay_transport) as (
        store,
        payments,
    ):
        result = await reconcile(store, payments, period.start, period.end)
    print(table(result, messages_period(period), payments.provider_name))
    return 0


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
