"""Every sentence of the owner's day, in the reader's language (msgids in the shared catalogue):
the cashier block, the close, what changed since a close, the chart's labels, the workbook's
headers stay English (the accountant's file is machine-read, like the CSV)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from bot.domain import OrderStatus, RefundState
from bot.i18n import _, ngettext
from bot.i18n.formats import clock_time, day_words, money, readable_id
from bot.orders.sentences import status_words
from bot.owner.service import CLOCK, CashierTotal, ChangeKind, CloseView, DayTakings, cashiers_from
from bot.providers.base import DEFAULT_PROVIDER_NAME
from bot.refunds.sentences import summary_lines
from bot.reports.sentences import summary_headline, summary_report


def cashier_line(total: CashierTotal) -> str:
    """`Wanjiru: KES 4,500 from 9 payments (1 not paid)`."""
    line = ngettext("{name}: {amount} from {n} payment", "{name}: {amount} from {n} payments", total.payments).format(
        name=total.name, amount=money(total.received), n=total.payments
    )
    extras = []
    if total.not_paid:
        extras.append(ngettext("{n} not paid", "{n} not paid", total.not_paid).format(n=total.not_paid))
    if total.waiting:
        extras.append(ngettext("{n} waiting", "{n} waiting", total.waiting).format(n=total.waiting))
    return f"{line} ({', '.join(extras)})" if extras else line


def cashier_block(totals: Sequence[CashierTotal]) -> list[str]:
    """One line per person who asked for payments; none when one person asked for them all (the
    headline says their takings already)."""
    if len(totals) < 2:
        return []
    return [_("👤 By cashier:"), *(cashier_line(total) for total in totals)]


def with_cashiers(report: str, totals: Sequence[CashierTotal]) -> str:
    return "\n".join([report, *cashier_block(totals)])


def own_summary(when: str, total: CashierTotal | None) -> str:
    """A cashier's /summary: their own takings only."""
    if total is None:
        return _("{period}: you took no payments.").format(period=when)
    return _("Your takings {period}: {line}").format(period=when, line=cashier_line(total))


def _refund_state(state: str) -> str:
    if state == RefundState.DONE.value:
        return _("refunded")
    if state == RefundState.SENDING.value:
        return _("refund on its way")
    return _("refund of unknown outcome")


def change_line(change: Sequence[Any]) -> str:
    kind, order_id, amount, status = change
    words = {"order_id": readable_id(order_id), "amount": money(int(amount))}
    if kind == ChangeKind.PAID_LATE:
        return _("💸 {order_id}: {amount} received after the close").format(**words)
    if kind == ChangeKind.RESOLVED:
        return _("✔️ {order_id} ({amount}): now {status}").format(status=status_words(OrderStatus(status)), **words)
    return _("↩️ {order_id}: {amount} {state}").format(state=_refund_state(status), **words)


def close_head(view: CloseView, shop: str) -> str:
    day = date.fromisoformat(view.day)
    words = {"shop": shop, "day": day_words(day, day), "time": clock_time(view.closed_at), "who": view.closed_by}
    if view.closed_by == CLOCK:
        return _("🔒 {shop} · {day} closed automatically at {time}.").format(**words)
    if view.just_made:
        return _("🔒 {shop} · {day} closed by {who} at {time}.").format(**words)
    return _("🔒 {shop} · {day} was closed by {who} at {time}; its figures then:").format(**words)


def open_line(open_orders: Sequence[Sequence[Any]]) -> str:
    listed = ", ".join(
        (_("{order_id} ({amount}, in doubt)") if doubt else _("{order_id} ({amount})")).format(
            order_id=readable_id(order_id), amount=money(int(amount))
        )
        for order_id, amount, doubt in open_orders
    )
    return ngettext("⏳ {n} order still open: {orders}", "⏳ {n} orders still open: {orders}", len(open_orders)).format(
        n=len(open_orders), orders=listed
    )


def close_report(view: CloseView, shop: str) -> str:
    """The close: who and when, the stretch's totals by channel, refunds and net, by cashier,
    the orders still open, then what changed the last close since; shown again, what came after."""
    day = date.fromisoformat(view.day)
    lines = [close_head(view, shop), summary_report(day_words(day, day), view.rows)]
    lines += summary_lines(view.received, view.refunds)
    lines.append(_("💰 Net takings: {amount}").format(amount=money(view.net)))
    lines += cashier_block(view.cashiers)
    if view.open_orders:
        lines.append(open_line(view.open_orders))
    if view.since_last:
        lines.append(_("🕓 Since the last close:"))
        lines += [change_line(change) for change in view.since_last]
    if not view.just_made and (view.after or view.later_rows):
        lines.append(_("🕓 Since this close:"))
        lines += [change_line(change) for change in view.after]
        if view.later_rows:
            lines.append(summary_headline(_("Orders made since"), view.later_rows))
    return "\n".join(lines)


def close_offer(provider: str = DEFAULT_PROVIDER_NAME) -> str:
    return _(
        "🔒 Close the day? Check against {provider} first: money {provider} has and the bot has not seen is then "
        "counted."
    ).format(provider=provider)


def check_label(provider: str = DEFAULT_PROVIDER_NAME) -> str:
    return _("🔎 Check against {provider}").format(provider=provider)


def close_label() -> str:
    return _("🔒 Close the day")


def close_usage() -> str:
    return _("/close closes today: its totals are kept as they are now, and later changes are listed.")


def with_close_params(report: str, params: Mapping[str, Any]) -> str:
    """The evening summary with the close's blocks under it: by cashier, the orders still pending
    (the summary names those in doubt) and since the last close."""
    lines = [report, *cashier_block(cashiers_from(params.get("cashiers", [])))]
    pending = params.get("pending") or []
    if pending:
        lines.append(open_line([(order_id, amount, False) for order_id, amount in pending]))
    since = params.get("since") or []
    if since:
        lines.append(_("🕓 Since the last close:"))
        lines += [change_line(change) for change in since]
    return "\n".join(lines)


# -- the chart's words ---------------------------------------------------------------------


def chart_title(when: str, total: int) -> str:
    return _("Takings {period}: {total}").format(period=when, total=money(total))


def chart_labels() -> dict[str, str]:
    return {"refunds": _("Refunds"), "axis": _("Shillings (KES)")}


def chart_caption(when: str) -> str:
    return _("Takings per day, {period}: the figures are in the next message.").format(period=when)


def day_lines(days: Sequence[DayTakings], today: date) -> list[str]:
    """Every figure the chart shows, in words: one line per day with money, and the total."""
    lines = []
    for day in days:
        if not (day.received or day.refunded):
            continue
        parts = [f"M-Pesa {money(day.mpesa)}", f"Airtel Money {money(day.airtel)}"]
        if day.refunded:
            parts.append(_("refunded {amount}").format(amount=money(day.refunded)))
        lines.append(f"{day_words(day.day, today)}: " + " · ".join(parts))
    total = sum(day.received for day in days)
    return [_("📈 Per day:"), *lines, _("Total: {amount}").format(amount=money(total))]
