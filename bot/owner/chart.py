"""The takings per day as a PNG: M-Pesa and Airtel Money stacked above the axis, refunds below,
the period's total in the title, shillings with thousands separators.

matplotlib is imported here, inside `draw`, and only its Agg canvas (no pyplot, no GUI, no
global figure state): the bot's start-up time and idle memory are the same as without charts,
and two charts drawn at once in threads share nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from bot.owner.service import DayTakings

WIDTH_PX, HEIGHT_PX, DPI = 1200, 720, 120  # Telegram shows photos at most about 1280 px wide
MPESA_GREEN, AIRTEL_RED, REFUND_GREY = "#3aa335", "#e4002b", "#8a8a8a"


@dataclass(frozen=True)
class ChartWords:
    """What the chart says, already in the reader's language."""

    title: str
    day_labels: Sequence[str]  # one per day
    refunds: str
    axis: str


def draw(days: Sequence[DayTakings], words: ChartWords) -> bytes:
    """The chart as PNG bytes (CPU-bound: run it in a thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(days)))
    mpesa = [day.mpesa for day in days]
    airtel = [day.airtel for day in days]
    refunds = [-day.refunded for day in days]
    axes.bar(positions, mpesa, color=MPESA_GREEN, label="M-Pesa")
    axes.bar(positions, airtel, bottom=mpesa, color=AIRTEL_RED, label="Airtel Money")
    if any(refunds):
        axes.bar(positions, refunds, color=REFUND_GREY, label=words.refunds)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_title(words.title, fontsize=15)
    axes.set_ylabel(words.axis)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{int(value):,}"))
    step = 1 if len(days) <= 10 else 2 if len(days) <= 20 else 3
    axes.set_xticks(positions[::step], list(words.day_labels)[::step], fontsize=10, rotation=0 if step > 1 else 20)
    axes.legend(loc="upper left", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    if not any(mpesa) and not any(airtel) and not any(refunds):
        axes.set_ylim(-1, 1)
    figure.tight_layout()
    sink = io.BytesIO()
    figure.savefig(sink, format="png")
    return sink.getvalue()
