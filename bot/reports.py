"""What the shop owner sees: order lists, totals by period, the CSV export, the daily summary.

Periods are days in Africa/Nairobi. No Telegram here: handlers and jobs format and send.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import IO

from bot.domain import Order, SummaryRow
from bot.i18n import ENGLISH, speaking
from bot.ipay.client import NAIROBI
from bot.store import Store

MAX_LISTED = 50
CSV_COLUMNS = (
    "order_id",
    "created_at",
    "status",
    "network",
    "phone",
    "amount",
    "paid_amount",
    "receipt_code",
    "payer_name",
    "paid_at",
    "chat_id",
    "requested_by",
    "reason",
)
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (OWASP's CSV injection list, plus a line feed); a leading apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_NEGATIVE_NUMBER = re.compile(r"-\d+(?:\.\d+)?", re.ASCII)


class PeriodError(ValueError):
    """A period or date the merchant typed that cannot be read."""


@dataclass(frozen=True)
class Period:
    start: float
    end: float
    label: str


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=NAIROBI).timestamp()


def nairobi_today(now: float) -> date:
    return datetime.fromtimestamp(now, NAIROBI).date()


def named_period(word: str, now: float) -> Period:
    """today, week (the last 7 days) or month (since the 1st), ending now."""
    today = nairobi_today(now)
    starts = {"today": today, "week": today - timedelta(days=6), "month": today.replace(day=1)}
    if word not in starts:
        raise PeriodError(word)
    return Period(_midnight(starts[word]), now + 1, word)


def date_range(first: str | None, last: str | None, now: float) -> Period:
    """Whole Nairobi days from `first` to `last` (YYYY-MM-DD), both included; default today."""
    try:
        start = date.fromisoformat(first) if first else nairobi_today(now)
        end = date.fromisoformat(last) if last else start
    except ValueError as exc:
        raise PeriodError(str(exc)) from None
    if end < start:
        raise PeriodError("the end is before the start")
    try:
        after_end = end + timedelta(days=1)
    except OverflowError:  # 9999-12-31 has no next day
        raise PeriodError("the end is out of range") from None
    return Period(_midnight(start), _midnight(after_end), f"{start.isoformat()} to {end.isoformat()}")


def iso_nairobi(timestamp: float | None) -> str:
    return "" if timestamp is None else datetime.fromtimestamp(timestamp, NAIROBI).isoformat(timespec="seconds")


def spreadsheet_cell(value: str | int) -> str | int:
    """Text a spreadsheet would run as a formula (`=HYPERLINK(..)`, `@SUM(..)`, `+..`, `-..`)
    gets a leading apostrophe; numbers, including plain negative ones, stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _NEGATIVE_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _english_reason(code: str | None) -> str:
    """The export is machine-read: its reasons stay English words, whoever asks for it."""
    from bot.messages import reason  # presentation, imported late: messages imports this module's neighbours

    with speaking(ENGLISH):
        return reason(code)


def csv_row(order: Order) -> list[str | int]:
    """One order as export cells. Names come from Telegram users and from iPay: neutralised."""
    cells: list[str | int] = [
        order.id,
        iso_nairobi(order.created_at),
        order.status.value,
        order.network.value,
        order.masked_phone,
        order.amount,
        "" if order.paid_amount is None else order.paid_amount,
        order.receipt_code or "",
        order.payer_name or "",
        iso_nairobi(order.paid_at),
        order.chat_id,
        order.requested_by,
        _english_reason(order.last_error),
    ]
    return [spreadsheet_cell(cell) for cell in cells]


class ReportService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    async def latest(self, argument: str | None, chat_id: int | None) -> tuple[str, list[Order]]:
        """`/orders [today|week|N]`: one chat's orders, or every chat's when chat_id is None."""
        now = self._clock()
        if argument is None or argument.isdigit():
            limit = min(MAX_LISTED, max(1, int(argument))) if argument else 10
            return f"latest {limit}", await self._store.latest_orders(
                start=0, end=now + 1, limit=limit, chat_id=chat_id
            )
        period = named_period(argument, now)
        return period.label, await self._store.latest_orders(
            start=period.start, end=period.end, limit=MAX_LISTED, chat_id=chat_id
        )

    async def summary(self, period: Period) -> list[SummaryRow]:
        return await self._store.summary(period.start, period.end)

    async def write_csv(self, period: Period, sink: IO[bytes]) -> int:
        """Stream the period's orders into `sink` as UTF-8 CSV; returns the number of rows."""
        text = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        rows = 0
        async for order in self._store.stream_orders(period.start, period.end):
            writer.writerow(csv_row(order))
            rows += 1
        text.detach()  # leave `sink` open for the caller
        return rows
