"""The accountant's workbook (.xlsx): a sheet of orders and a sheet of daily totals by cashier
and channel. Amounts are numbers and times are dates in Nairobi time (Excel has no time zones:
the sheet says which), so a bookkeeper can sum and filter them as they are.

openpyxl is imported inside `build`, in write-only mode: rows go out as they are added, so a
month of orders costs little memory. Text cells from people (names) are neutralised as in the
CSV: a spreadsheet never runs them as formulas.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import date, datetime

from bot.domain import NAIROBI, Order, Refund
from bot.owner.cashier import cashier_name
from bot.reports.export import spreadsheet_cell

ORDER_HEADERS = (
    "order_id",
    "created_at (Nairobi)",
    "status",
    "channel",
    "cashier",
    "phone",
    "amount",
    "paid_amount",
    "receipt_code",
    "payer_name",
    "paid_at (Nairobi)",
    "refund_state",
    "refund_amount",
)
DAILY_HEADERS = ("date", "cashier", "channel", "payments", "received", "refunded", "net")
DATE_TIME, DAY = "yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd"


def _local(timestamp: float | None) -> datetime | None:
    """A naive Nairobi datetime: what a spreadsheet shows as the shop's time."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, NAIROBI).replace(tzinfo=None)


def build(orders: Iterable[Order], refunds: Mapping[str, Refund]) -> bytes:
    """The workbook as bytes (CPU-bound: run it in a thread)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Orders")
    sheet.append(ORDER_HEADERS)
    daily: dict[tuple[date, str, str], list[int]] = {}

    def when(value: datetime | None, fmt: str) -> object:
        if value is None:
            return None
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = fmt
        return cell

    for order in orders:
        made = _local(order.created_at)
        assert made is not None
        cashier = cashier_name(order.requested_by, order.user_id)
        refund = refunds.get(order.id)
        refunded = refund.amount if refund is not None and refund.state.value == "done" else 0
        sheet.append(
            [
                order.id,
                when(made, DATE_TIME),
                order.status.value,
                order.network.label,
                spreadsheet_cell(cashier),
                order.masked_phone,
                order.amount,
                order.paid_amount,
                order.receipt_code,
                spreadsheet_cell(order.payer_name or ""),
                when(_local(order.paid_at), DATE_TIME),
                refund.state.value if refund is not None else None,
                refund.amount if refund is not None else None,
            ]
        )
        if order.status.money_received:
            cells = daily.setdefault((made.date(), cashier, order.network.label), [0, 0, 0])
            cells[0] += 1
            cells[1] += order.paid_amount or 0
            cells[2] += refunded
    totals = book.create_sheet("Daily totals")
    totals.append(DAILY_HEADERS)
    for (day, cashier, channel), (count, received, refunded) in sorted(daily.items()):
        cell = WriteOnlyCell(totals, value=datetime.combine(day, datetime.min.time()))  # a date, to Excel
        cell.number_format = DAY
        totals.append([cell, spreadsheet_cell(cashier), channel, count, received, refunded, received - refunded])
    sink = io.BytesIO()
    book.save(sink)
    return sink.getvalue()
