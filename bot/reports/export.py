"""The period's orders as the accountant's CSV: one row per order with its refund and cashier.

The file is machine-read: its columns are fixed, its reasons stay English words whoever asks for
it, times are ISO 8601 in Nairobi time, and any cell a spreadsheet would run as a formula is
neutralised.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import IO

from bot.domain import NAIROBI, Order, Refund
from bot.i18n import ENGLISH, speaking
from bot.orders import sentences as order_sentences
from bot.owner.cashier import cashier_name
from bot.reports.service import Period, ReportService

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


async def write_csv(reports: ReportService, period: Period, sink: IO[bytes]) -> int:
    """Stream the period's orders into `sink` as UTF-8 CSV; returns the number of rows."""
    text = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS + REFUND_CSV_COLUMNS + CASHIER_CSV_COLUMNS)
    refunds = await reports.refunds_of_orders(period)
    rows = 0
    async for order in reports.orders(period):
        cashier = spreadsheet_cell(cashier_name(order.requested_by, order.user_id))
        writer.writerow(csv_row(order) + refund_cells(refunds.get(order.id)) + [cashier])
        rows += 1
    text.detach()  # leave `sink` open for the caller
    return rows
