"""What the shop owner sees: order lists, totals by period, the CSV export, the daily summary.

Periods are days in Africa/Nairobi. No Telegram here: handlers and jobs format and send.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_time

from bot.domain import NAIROBI, Order, Refund, RefundState, SummaryRow
from bot.store import Store

MAX_LISTED = 50
DAY_SECONDS = 86_400.0


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

    def orders(self, period: Period) -> AsyncIterator[Order]:
        """The period's orders, oldest first, a few hundred rows at a time."""
        return self._store.stream_orders(period.start, period.end)

    async def refunds_of_orders(self, period: Period) -> dict[str, Refund]:
        """The refunds of the orders made in the period, by order id (few: read at once)."""
        return await self._store.refunds_of_orders_made(period.start, period.end)
