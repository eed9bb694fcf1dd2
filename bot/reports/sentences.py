"""The merchant's reports in words: the usage of /orders, /summary, /reconcile and /export, the
listed orders of a period, the summary and the evening's daily summary, and a reconciliation's
findings.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from bot.domain import NAIROBI, Network, Order, OrderStatus, SummaryRow
from bot.i18n import _, ngettext
from bot.i18n.formats import EN_DASH, day_words, money, month, nairobi_time, readable_id, shop_words
from bot.orders.reconcile import ProviderSays
from bot.orders.sentences import order_state_words, status_words
from bot.providers.base import DEFAULT_PROVIDER_NAME
from bot.telegram.sentences import in_parts

if TYPE_CHECKING:  # named in signatures only: bot.reports.service reads this module
    from bot.orders.reconcile import Difference, Reconciliation
    from bot.reports.service import Listing, Period


def _example_dates(today: date) -> dict[str, str]:
    """Dates for an example that works as typed: the 1st of this month and today."""
    return {"first": today.replace(day=1).isoformat(), "today": today.isoformat()}


def orders_usage(today: date) -> str:
    """What /orders takes, said when what followed it could not be read."""
    return _(
        "Send /orders with a number of orders, or with today, yesterday, week, month or dates as YYYY-MM-DD "
        "(one date: from that day to today), for example /orders 20, /orders week or /orders {first}."
    ).format(**_example_dates(today))


def summary_usage(today: date) -> str:
    return _(
        "Send /summary with today, yesterday, week, month or dates as YYYY-MM-DD "
        "(one date: from that day to today), for example /summary week or /summary {first}."
    ).format(**_example_dates(today))


def reconcile_usage(today: date) -> str:
    return _(
        "Send /reconcile with today, yesterday, week, month or dates as YYYY-MM-DD "
        "(one date: from that day to today), for example /reconcile week or /reconcile {first}."
    ).format(**_example_dates(today))


def reconciling(period: str, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    return _("Looking up the orders of {period} at {provider}…").format(period=period, provider=provider)


def reconcile_report(result: Reconciliation, when: str = "", provider: str = DEFAULT_PROVIDER_NAME) -> list[str]:
    """What a reconciliation found: a headline, then one line per order that differs from the
    provider's answer (fixed, or for a person to look at)."""
    head = ngettext(
        "Reconciled {period} with {provider}: {checked} order looked up, {differ} differ, {fixed} fixed.",
        "Reconciled {period} with {provider}: {checked} orders looked up, {differ} differ, {fixed} fixed.",
        result.checked,
    ).format(
        period=when or _("the period"),
        checked=result.checked,
        differ=len(result.differences),
        fixed=result.fixed,
        provider=provider,
    )
    if result.not_sent:
        head += " " + ngettext(
            "{n} order never reached {provider}.", "{n} orders never reached {provider}.", result.not_sent
        ).format(n=result.not_sent, provider=provider)
    if not result.differences:
        return [head + "\n" + _("Every order agrees with {provider}.").format(provider=provider)]
    return in_parts(head, [_reconciled_line(d, provider) for d in result.differences])


def _reconciled_line(difference: Difference, provider: str) -> str:
    order = difference.order
    here = order_state_words(order)
    parts = [readable_id(order.id), money(order.amount), order.masked_phone, _("here: {state}").format(state=here)]
    paid = difference.payment
    if difference.provider is ProviderSays.PAID and paid is not None:
        parts.append(
            _("{provider}: paid {amount}, receipt {receipt}").format(
                provider=provider, amount=money(paid.amount), receipt=paid.receipt_code
            )
        )
    elif difference.provider is ProviderSays.NOT_PAID:
        parts.append(_("{provider}: no payment record").format(provider=provider))
    elif difference.provider is ProviderSays.FAILED:
        parts.append(_("{provider}: not paid ({detail})").format(provider=provider, detail=difference.detail))
    else:
        parts.append(_("{provider}: no answer ({detail})").format(provider=provider, detail=difference.detail))
    if difference.now is not None:
        parts.append(_("fixed: now {state}").format(state=status_words(difference.now)))
    elif difference.provider is not ProviderSays.NO_ANSWER:
        parts.append(_("not changed: please check by hand"))
    else:
        parts.append(_("try again later"))
    return " · ".join(parts)


def export_usage(today: date) -> str:
    return _(
        "Send /export with dates as YYYY-MM-DD (one date: from that day to today; two: from the first "
        "to the last), or with today, yesterday, week or month, for example /export {first} or "
        "/export {first} {today}."
    ).format(**_example_dates(today))


def period_words(period: Period) -> str:
    """One day as `Sun 29 Nov`; several as `23-29 Nov`, `28 Oct - 3 Nov` or `28 Dec 2025 - 3 Jan 2026`
    with an en dash (the year only when it is not this year)."""
    first, last = period.first, period.last
    if first == last:
        return day_words(first, period.today)
    if first.year != last.year:
        return f"{first.day} {month(first)} {first.year} {EN_DASH} {last.day} {month(last)} {last.year}"
    year = "" if last.year == period.today.year else f" {last.year}"
    if first.month == last.month:
        return f"{first.day}{EN_DASH}{last.day} {month(last)}{year}"
    return f"{first.day} {month(first)} {EN_DASH} {last.day} {month(last)}{year}"


def sale_status(first: Order, orders: list[Order]) -> OrderStatus:
    """A sale's status: by all the money on its orders against what was first asked, or, without
    money, its last order's."""
    received = sum(order.paid_amount or 0 for order in orders)
    if received == 0:
        return orders[-1].status
    if received == first.amount:
        return OrderStatus.PAID
    return OrderStatus.UNDERPAID if received < first.amount else OrderStatus.OVERPAID


def _listed_sale(first: Order, follow_ons: list[Order], names: bool) -> str:
    """An order and the orders that followed it, as one row: asked once, the money on them all,
    what is still owed or to be refunded, their receipts, and the orders that followed."""
    orders = [first, *follow_ons]
    status = sale_status(first, orders)
    received = sum(order.paid_amount or 0 for order in orders)
    row = (
        f"{readable_id(first.id)} · {nairobi_time(first.created_at)} · {money(first.amount)} · "
        f"{first.masked_phone} · {status_words(status)}"
    )
    if received and received != first.amount:
        row += " · " + _("{amount} received").format(amount=money(received))
    if status is OrderStatus.UNDERPAID:
        row += " · " + _("Still owed: {amount}").format(amount=money(first.amount - received))
    elif status is OrderStatus.OVERPAID:
        row += " · " + _("Refund due: {amount}").format(amount=money(received - first.amount))
    payers = list(dict.fromkeys(order.payer_name for order in orders if order.payer_name))
    if payers and names:
        row += " · " + ", ".join(payers)
    receipts = [order.receipt_code for order in orders if order.receipt_code]
    if receipts:
        row += " · " + ngettext("receipt {receipts}", "receipts {receipts}", len(receipts)).format(
            receipts=", ".join(receipts)
        )
    followed = ", ".join(readable_id(order.id) for order in follow_ons)
    return row + " · " + ngettext("then order {ids}", "then orders {ids}", len(follow_ons)).format(ids=followed)


def _listed_order(order: Order, names: bool) -> str:
    """One row; what was received when it differs from what was asked, and the payer's name
    where it may be read (an admin's report, or the payer's own private chat)."""
    row = (
        f"{readable_id(order.id)} · {nairobi_time(order.created_at)} · {money(order.amount)} · "
        f"{order.masked_phone} · {order_state_words(order)}"
    )
    if order.paid_amount is not None and order.paid_amount != order.amount:
        row += " · " + _("{amount} received").format(amount=money(order.paid_amount))
    if order.payer_name and names:
        row += " · " + order.payer_name
    if order.receipt_code:
        row += " · " + _("receipt {receipt}").format(receipt=order.receipt_code)
    return row


def orders_report(listing: Listing, every_chat: bool) -> list[str]:
    """The report as one message, or several under the same heading when the rows would pass
    Telegram's 4,096 characters (fifty orders do)."""
    scope = _("every chat") if every_chat else _("this chat")
    if listing.period is None:
        period = ngettext("latest {n}", "latest {n}", listing.limit).format(n=listing.limit)
    else:
        period = period_words(listing.period)
    if not listing.orders:
        return [_("No orders ({period}, {scope}).").format(period=period, scope=scope)]
    rows = [
        _listed_sale(order, listing.follow_ons[order.id], every_chat or order.chat_id > 0)
        if listing.follow_ons.get(order.id)
        else _listed_order(order, every_chat or order.chat_id > 0)
        for order in listing.orders
    ]
    if listing.more and listing.period is not None:
        rows.append(_more_than_listed(listing.limit, listing.period, every_chat))
    return in_parts(_("Orders ({period}, {scope}):").format(period=period, scope=scope), rows)


def _more_than_listed(limit: int, period: Period, every_chat: bool) -> str:
    """A period with more orders than a message lists: an admin is told which export has them all."""
    shown = ngettext("Only the newest {n} is listed.", "Only the newest {n} are listed.", limit).format(n=limit)
    if not every_chat:  # /export is for admins
        return shown
    dates = period.first.isoformat() if period.first == period.last else f"{period.first} {period.last}"
    return shown + " " + _("/export {dates} sends them all.").format(dates=dates)


def _summary_order(row: SummaryRow) -> tuple[int, int, int, str]:
    """Money received first, most first; then orders still waiting; then those not paid, by amount asked."""
    statuses = list(OrderStatus)
    if row.status.money_received:
        return (0, -row.received, statuses.index(row.status), row.network.value)
    group = 1 if row.status is OrderStatus.PENDING else 2
    return (group, -row.amount, statuses.index(row.status), row.network.value)


def summary_headline(when: str, rows: list[SummaryRow]) -> str:
    """`Sun 29 Nov: KES 13,650 received from 10 payments (M-Pesa 12,900 · Airtel Money 750); 7 not paid`."""
    if not rows:
        return _("{period}: no orders.").format(period=when)
    by_network: dict[Network, int] = {}
    for row in rows:
        if row.status.money_received:
            by_network[row.network] = by_network.get(row.network, 0) + row.received
    payments = sum(r.count for r in rows if r.status.money_received)
    waiting = sum(r.count for r in rows if r.status is OrderStatus.PENDING)
    unpaid = sum(r.count for r in rows if r.status.closed and not r.status.money_received)
    if payments:
        networks = " · ".join(
            f"{network.label} {amount:,}" for network, amount in sorted(by_network.items(), key=lambda kv: -kv[1])
        )
        parts = [
            ngettext(
                "{amount} received from {n} payment ({networks})",
                "{amount} received from {n} payments ({networks})",
                payments,
            ).format(amount=money(sum(by_network.values())), n=payments, networks=networks)
        ]
    else:
        parts = [_("nothing received")]
    if unpaid:
        parts.append(ngettext("{n} not paid", "{n} not paid", unpaid).format(n=unpaid))
    if waiting:
        parts.append(ngettext("{n} still waiting", "{n} still waiting", waiting).format(n=waiting))
    return f"{when}: " + "; ".join(parts)


def summary_report(when: str, rows: list[SummaryRow]) -> str:
    """The headline, what is still owed and what is to be refunded (when any), then one line per
    status and network in a useful order (see `_summary_order`). Each sale counts once."""
    lines = [summary_headline(when, rows)]
    owed, refund = sum(row.owed for row in rows), sum(row.refund for row in rows)
    if owed:
        lines.append(_("Still owed: {amount}").format(amount=money(owed)))
    if refund:
        lines.append(_("Refund due: {amount}").format(amount=money(refund)))
    for row in sorted(rows, key=_summary_order):
        line = ngettext(
            "{status} · {network}: {n} for {amount} asked", "{status} · {network}: {n} for {amount} asked", row.count
        ).format(status=status_words(row.status), network=row.network.label, n=row.count, amount=money(row.amount))
        if row.status.money_received:
            line += ", " + _("{amount} received").format(amount=money(row.received))
        lines.append(line)
    return "\n".join(lines)


def daily_summary(
    shop_name: str,
    at: float,
    rows: list[SummaryRow],
    in_doubt: list[list[Any]] | None = None,
    provider: str = DEFAULT_PROVIDER_NAME,
) -> str:
    """The evening's totals in the merchant chat: the shop's name, then what /summary says, then
    the orders in doubt (id, amount), which the provider has not confirmed either way yet."""
    day = datetime.fromtimestamp(at, NAIROBI).date()
    text = f"📊 {shop_words(shop_name)} · " + summary_report(day_words(day, day), rows)
    if in_doubt:
        listed = ", ".join(f"{readable_id(order_id)} ({money(amount)})" for order_id, amount in in_doubt)
        text += "\n" + ngettext(
            "❓ {n} order in doubt ({provider} has not confirmed it either way yet): {orders}",
            "❓ {n} orders in doubt ({provider} has not confirmed them either way yet): {orders}",
            len(in_doubt),
        ).format(n=len(in_doubt), orders=listed, provider=provider)
    return text


def export_caption(when: str, rows: int) -> str:
    return ngettext(
        "Orders {period}: {n} row (times in Africa/Nairobi, phones masked).",
        "Orders {period}: {n} rows (times in Africa/Nairobi, phones masked).",
        rows,
    ).format(period=when, n=rows)


def nothing_to_export(period: Period) -> str:
    """An empty period: said, rather than a file with a header and no rows."""
    if period.first == period.last:
        return _("No orders on {day}: no file to send.").format(day=day_words(period.first, period.today))
    return _("No orders from {first} to {last}: no file to send.").format(
        first=day_words(period.first, period.today), last=day_words(period.last, period.today)
    )
