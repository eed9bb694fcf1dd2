"""What the shop owner sees: order lists, totals by period, the CSV export, the daily summary.

Periods are days in Africa/Nairobi. No Telegram here: handlers and jobs format and send.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_time
from typing import IO

from bot.domain import NAIROBI, Order, Refund, RefundState, SummaryRow
from bot.i18n import ENGLISH, speaking
from bot.orders import sentences as order_sentences
from bot.owner.cashier import cashier_name
from bot.store import Store

MAX_LISTED = 50
DAY_SECONDS = 86_400.0
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
    "next_order_id",  # the order that followed this one (sent again, or the rest asked for): one sale
)
# A refund's columns, after the order's: its state, amount, time, who asked and who approved.
REFUND_CSV_COLUMNS = ("refund_state", "refund_amount", "refund_at", "refund_asked_by", "refund_approved_by")
# Who took the payment, as /summary's cashier block names them (`bot.owner.cashier`), last.
CASHIER_CSV_COLUMNS = ("cashier",)
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (OWASP's CSV injection list, plus a line feed); a leading apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_NEGATIVE_NUMBER = re.compile(r"-\d+(?:\.\d+)?", re.ASCII)


class PeriodError(ValueError):
    """A period or date the merchant typed that cannot be read."""


@dataclass(frozen=True)
class Period:
    """Whole Nairobi days from `first` to `last`, both included, as asked on `today` (so a
    label can leave out this year)."""

    first: date
    last: date
    today: date

    @property
    def start(self) -> float:
        return _midnight(self.first)

    @property
    def end(self) -> float:
        """The midnight after `last` (the parsers refuse a `last` with no next day)."""
        return _midnight(self.last + timedelta(days=1))


@dataclass(frozen=True)
class Listing:
    """What `/orders` found: the newest orders of a period, or the latest `limit` whenever made."""

    orders: list[Order]
    period: Period | None  # None: the latest `limit` orders, whatever their day
    limit: int
    more: bool  # the period holds more orders than were listed
    follow_ons: dict[str, list[Order]] = field(default_factory=dict)  # a listed order's follow-ups: one sale


@dataclass(frozen=True)
class Close:
    """One evening summary's scheduled moment (DAILY_SUMMARY_TIME on some day). Its summary
    covers the orders from the previous summary up to it, and names the day it closes: a close
    at 00:00 closes the day before."""

    at: float

    @property
    def day(self) -> date:
        return nairobi_today(self.at - 1.0)


def _close_on(day: date, at: day_time) -> float:
    return datetime.combine(day, at.replace(tzinfo=NAIROBI)).timestamp()


def latest_close(at: day_time, now: float) -> Close:
    """The last scheduled summary at or before `now` (the one a start-up may have missed)."""
    today = nairobi_today(now)
    moment = _close_on(today, at)
    return Close(moment if moment <= now else _close_on(today - timedelta(days=1), at))


def nearest_close(at: day_time, now: float) -> Close:
    """The scheduled summary a job firing at `now` is for: the job fires on time or a moment off
    either way, so the nearest one, never the day before's because it fired a second early."""
    today = nairobi_today(now)
    moments = (_close_on(today + timedelta(days=shift), at) for shift in (-1, 0, 1))
    return Close(min(moments, key=lambda moment: abs(moment - now)))


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=NAIROBI).timestamp()


def nairobi_today(now: float) -> date:
    return datetime.fromtimestamp(now, NAIROBI).date()


# The words a period may be typed as, in English or Kiswahili (the Kiswahili help offers its own).
PERIOD_WORDS = {
    "today": "today",
    "leo": "today",
    "yesterday": "yesterday",
    "jana": "yesterday",
    "week": "week",
    "wiki": "week",
    "month": "month",
    "mwezi": "month",
}


def named_period(word: str, now: float) -> Period:
    """today, yesterday, week (the last 7 days, today included) or month (since the 1st), or
    their Kiswahili: leo, jana, wiki, mwezi."""
    word = PERIOD_WORDS.get(word, word)
    today = nairobi_today(now)
    spans = {
        "today": (today, today),
        "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
        "week": (today - timedelta(days=6), today),
        "month": (today.replace(day=1), today),
    }
    if word not in spans:
        raise PeriodError(word)
    first, last = spans[word]
    return Period(first, last, today)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise PeriodError(str(exc)) from None


def parse_period(words: Sequence[str], now: float) -> Period:
    """What an owner types after /orders, /summary or /export: a period word, one date
    (YYYY-MM-DD: from that day to today) or two dates (from the first to the last, both
    included). Nothing typed means today."""
    if not words:
        return named_period("today", now)
    if len(words) == 1 and words[0].lower() in PERIOD_WORDS:
        return named_period(words[0].lower(), now)
    if len(words) > 2:
        raise PeriodError("more than two dates")
    today = nairobi_today(now)
    first = _day(words[0])
    last = _day(words[1]) if len(words) == 2 else today
    if last < first:
        raise PeriodError("the end is before the start")
    if last == date.max:  # 9999-12-31 has no next day
        raise PeriodError("the end is out of range")
    return Period(first, last, today)


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
    with speaking(ENGLISH):
        return order_sentences.reason(code)


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
        order.retry_order_id or "",
    ]
    return [spreadsheet_cell(cell) for cell in cells]


def refund_cells(refund: Refund | None) -> list[str | int]:
    """An order's refund as export cells (empty when it has none); names neutralised too."""
    if refund is None:
        return [""] * len(REFUND_CSV_COLUMNS)
    cells: list[str | int] = [
        refund.state.value,
        refund.amount,
        iso_nairobi(refund.done_at or refund.updated_at),
        refund.asked_by,
        refund.approved_by or "",
    ]
    return [spreadsheet_cell(cell) for cell in cells]


class ReportService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    async def latest(self, words: Sequence[str], chat_id: int | None) -> Listing:
        """`/orders [N|period]`: one chat's orders, or every chat's when chat_id is None. A number
        (or nothing: 10) lists the latest orders whenever made; a period its newest MAX_LISTED."""
        now = self._clock()
        if not words or (len(words) == 1 and words[0].isdecimal()):
            limit = min(MAX_LISTED, max(1, int(words[0]))) if words else 10
            orders = await self._store.latest_orders(start=0, end=now + 1, limit=limit, chat_id=chat_id)
            return await self._as_sales(Listing(orders, None, limit, more=False))
        return await self.of_period(parse_period(words, now), chat_id)

    async def of_period(self, period: Period, chat_id: int | None) -> Listing:
        """A period's newest MAX_LISTED orders: one chat's, or every chat's when chat_id is None."""
        orders = await self._store.latest_orders(
            start=period.start, end=period.end, limit=MAX_LISTED + 1, chat_id=chat_id
        )
        return await self._as_sales(Listing(orders[:MAX_LISTED], period, MAX_LISTED, more=len(orders) > MAX_LISTED))

    async def _as_sales(self, listing: Listing) -> Listing:
        """One row per sale: an order that follows on from another is listed with it, not alone."""
        ids = [order.id for order in listing.orders]
        following = await self._store.followed_on(ids)
        firsts = [order for order in listing.orders if order.id not in following]
        follow_ons = await self._store.follow_ons([order.id for order in firsts if order.retry_order_id])
        return Listing(firsts, listing.period, listing.limit, listing.more, follow_ons)

    async def summary(self, period: Period) -> list[SummaryRow]:
        return await self._store.summary(period.start, period.end)

    async def summary_between(self, start: float, end: float) -> list[SummaryRow]:
        """Totals of the orders made in [start, end): the evening summary's stretch, which runs
        from the previous summary to this one rather than over a calendar day."""
        return await self._store.summary(start, end)

    async def refunds(self, period: Period) -> list[tuple[RefundState, int, int]]:
        """Refunds sent, done or of unknown outcome in the period (by when they last moved)."""
        return await self.refunds_between(period.start, period.end)

    async def refunds_between(self, start: float, end: float) -> list[tuple[RefundState, int, int]]:
        """Refunds sent, done or of unknown outcome whose last change is in [start, end)."""
        return await self._store.refund_totals(start, end)

    async def write_csv(self, period: Period, sink: IO[bytes]) -> int:
        """Stream the period's orders into `sink` as UTF-8 CSV; returns the number of rows."""
        text = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS + REFUND_CSV_COLUMNS + CASHIER_CSV_COLUMNS)
        refunds = await self._store.refunds_of_orders_made(period.start, period.end)  # few: read at once
        rows = 0
        async for order in self._store.stream_orders(period.start, period.end):
            cashier = spreadsheet_cell(cashier_name(order.requested_by, order.user_id))
            writer.writerow(csv_row(order) + refund_cells(refunds.get(order.id)) + [cashier])
            rows += 1
        text.detach()  # leave `sink` open for the caller
        return rows
