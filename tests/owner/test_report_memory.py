"""The month's chart and workbook leave cycles behind (a figure and its canvas refer to each
other): with the collector set as the bot serves (bot/memory.py), they are freed when the chart
or the workbook is done, not after 10,000 more objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import date

import pytest

from bot.memory import YOUNG_COLLECTION_EVERY
from bot.owner.service import DayTakings
from bot.owner.summary import draw_chart, workbook
from bot.reports.service import Period
from tests.conftest import Shop

NOVEMBER = Period(date(2025, 11, 1), date(2025, 11, 30), date(2025, 11, 30))


@pytest.fixture
def collector_as_served() -> Iterator[None]:
    before = gc.get_threshold()
    gc.collect()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *before[1:])
    yield
    gc.set_threshold(*before)


def alive(type_name: str) -> int:
    return sum(1 for thing in gc.get_objects() if type(thing).__name__ == type_name)


async def test_a_months_chart_leaves_no_figure_behind(collector_as_served: None) -> None:
    days = [DayTakings(date(2025, 11, day), mpesa=1000 * day, airtel=300) for day in range(1, 31)]
    png = await draw_chart(days, "November", NOVEMBER)
    assert png.startswith(b"\x89PNG")
    assert alive("Figure") == 0


async def test_a_workbook_leaves_no_book_behind(collector_as_served: None, shop: Shop) -> None:
    content, orders = await workbook(shop.services, NOVEMBER)
    assert content.startswith(b"PK") and orders == 0
    assert alive("Workbook") == 0
