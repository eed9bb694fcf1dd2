"""What /summary, /orders and /export add for the owner: the cashier block, a cashier's own
takings, the chart beside a week's or a month's words, and the workbook. Called by the
handlers in `bot.handlers.merchant`; the figures come from `bot.owner.service`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from telegram import Bot, InlineKeyboardButton, InputFile
from telegram.constants import MessageLimit
from telegram.error import TelegramError

from bot.domain import Order
from bot.i18n import speaking
from bot.i18n.formats import day_words
from bot.memory import free_cycles
from bot.owner import sentences
from bot.owner.chart import ChartWords, draw
from bot.owner.service import DayTakings, OwnerService, matches
from bot.owner.workbook import build
from bot.reports.sentences import period_words
from bot.reports.service import PERIOD_WORDS, Listing, Period, parse_period
from bot.services import Services

log = logging.getLogger(__name__)
MAX_CAPTION = MessageLimit.CAPTION_LENGTH
SUNDAY = 6
CHARTED = ("week", "month")  # the periods whose /summary comes with a chart
WORKBOOK_WORDS = ("xlsx", "excel")  # typed after /export for the workbook instead of the CSV
# The cashier buttons under an admin's /orders of a period: a row of three at most, two rows at
# most, so with the refund buttons' ten rows the keyboard still fits a phone's screen; a shop with
# more cashiers types the name (`/orders today wanjiru`).
CASHIER_BUTTON_PATTERN = r"^cashier:\d{4}-\d{2}-\d{2}:\d{4}-\d{2}-\d{2}:-?\d+$"
CASHIERS_A_ROW, MAX_CASHIER_BUTTONS = 3, 6


def wants_chart(words: Sequence[str]) -> bool:
    return len(words) == 1 and PERIOD_WORDS.get(words[0].lower()) in CHARTED


async def cashier_text(services: Services, report: str, period: Period) -> str:
    """An admin's /summary with everyone's takings per cashier under it."""
    return sentences.with_cashiers(report, await OwnerService(services.store).cashiers(period.start, period.end))


async def own_text(services: Services, words: Sequence[str], user_id: int) -> str | None:
    """A cashier's /summary: their own takings over the period; None if it cannot be read."""
    try:
        period = parse_period(words, services.reports.now())
    except ValueError:
        return None
    totals = await OwnerService(services.store).cashiers(period.start, period.end, user_id)
    return sentences.own_summary(period_words(period), totals[0] if totals else None)


@dataclass(frozen=True)
class Chart:
    """A chart and its words: `words` carry every figure the picture shows."""

    png: bytes
    words: str
    caption: str


async def chart(services: Services, period: Period) -> Chart:
    days = await OwnerService(services.store).daily(period)
    when = period_words(period)
    words = "\n".join(sentences.day_lines(days, period.today))
    return Chart(await draw_chart(days, when, period), words, sentences.chart_caption(when))


async def send_chart(bot: Bot, chat_id: int, chart: Chart) -> None:
    """The photo with its figures as the caption when they fit one, else in the next message."""
    photo = InputFile(chart.png, filename="takings.png")
    if len(chart.words) <= MAX_CAPTION:
        await bot.send_photo(chat_id, photo, caption=chart.words)
        return
    await bot.send_photo(chat_id, photo, caption=chart.caption)
    await bot.send_message(chat_id, chart.words)


async def draw_chart(days: Sequence[DayTakings], when: str, period: Period) -> bytes:
    """Drawn in a thread: a month's chart takes a moment of CPU the event loop should not wait on."""
    labels = sentences.chart_labels()
    short = len(days) > 10
    words = ChartWords(
        sentences.chart_title(when, sum(day.received for day in days)),
        [str(day.day.day) if short else day_words(day.day, period.today) for day in days],
        labels["refunds"],
        labels["axis"],
    )
    png = await asyncio.to_thread(draw, days, words)
    free_cycles()
    return png


def split_workbook(words: Sequence[str]) -> tuple[list[str], bool]:
    """/export's words without a trailing `xlsx`/`excel`, and whether it was there."""
    if words and words[-1].lower() in WORKBOOK_WORDS:
        return list(words[:-1]), True
    return list(words), False


async def workbook(services: Services, period: Period) -> tuple[bytes, int]:
    """The period's workbook and its number of orders (built in a thread)."""
    orders = [order async for order in services.store.stream_orders(period.start, period.end)]
    refunds = await services.store.refunds_of_orders_made(period.start, period.end)
    book = await asyncio.to_thread(build, orders, refunds)
    free_cycles()
    return book, len(orders)


def split_cashier(words: Sequence[str]) -> tuple[list[str], str | None]:
    """`/orders today wanjiru`: the period's words and the cashier asked for (a last word that
    is neither a number, a period word nor a date)."""
    if len(words) >= 2:
        last = words[-1]
        if not last.isdecimal() and last.lower() not in PERIOD_WORDS and not last[:1].isdigit():
            return list(words[:-1]), last
    return list(words), None


async def cashier_rows(services: Services, listing: Listing) -> list[list[InlineKeyboardButton]]:
    """One button per cashier of the listed period, when it has two to MAX_CASHIER_BUTTONS of
    them: pressed, the period's orders that cashier asked for."""
    period = listing.period
    if period is None:
        return []
    totals = await OwnerService(services.store).cashiers(period.start, period.end)
    if not 2 <= len(totals) <= MAX_CASHIER_BUTTONS:
        return []
    data = f"cashier:{period.first.isoformat()}:{period.last.isoformat()}"
    buttons = [InlineKeyboardButton(f"👤 {t.name}", callback_data=f"{data}:{t.user_id}") for t in totals]
    return [buttons[i : i + CASHIERS_A_ROW] for i in range(0, len(buttons), CASHIERS_A_ROW)]


def cashier_pressed(data: str, today: date) -> tuple[Period, int]:
    """A cashier button's period and cashier (`cashier_rows` wrote it, the pattern checked it)."""
    _, first, last, user_id = data.split(":")
    return Period(date.fromisoformat(first), date.fromisoformat(last), today), int(user_id)


def of_cashier(orders: Sequence[Order], user_id: int) -> list[Order]:
    return [o for o in orders if o.user_id == user_id]


def by_cashier(orders: Sequence[Order], cashier: str) -> list[Order]:
    from bot.owner.cashier import cashier_name

    return [o for o in orders if matches(cashier_name(o.requested_by, o.user_id), o.requested_by, cashier)]


async def week_chart(bot: Bot, services: Services, day: date) -> None:
    """The week's chart to the merchant chat when the evening close is a Sunday's, in
    MERCHANT_LANGUAGE. Sent once, by the instance that queued the close; a picture that cannot
    be sent is logged, the close itself is already on its way."""
    merchant = services.settings.merchant_chat_id
    if merchant is None or day.weekday() != SUNDAY:
        return
    period = Period(day - timedelta(days=6), day, day)
    with speaking(services.settings.merchant_language):
        drawn = await chart(services, period)
    try:
        await send_chart(bot, merchant, drawn)
    except TelegramError as exc:
        log.warning("the week's chart was not sent: %s", exc)
