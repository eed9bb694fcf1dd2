"""The owner's figures: takings per cashier, closing a day, what changed a closed day since, and
the takings per day for a chart or a workbook. No Telegram and no prose here.

A close covers a stretch of orders: from where the previous close ended (or the day's midnight,
the first time) to the moment it is made. Its figures are stored as they were then, so showing
it again shows the same numbers; anything that later changes its stretch (money found late, an
order in doubt resolved, a refund) is found by comparing with the stored figures and told as
"since the last close", never folded silently into an old number.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from bot.domain import NAIROBI, CashierRow, DayClose, Network, Notice, OrderStatus, RefundState, SummaryRow
from bot.orders.notices import summary_rows_from, summary_rows_params
from bot.owner.cashier import cashier_name
from bot.reports.service import Period, _midnight, nairobi_today
from bot.store import Store

OPEN_LISTED = 50  # a close names at most this many orders still pending or in doubt
CLOCK = ""
WEEK_SECONDS = 7 * 86_400.0  # `closed_by` of a close the clock made
CLOSED = "owner_close"  # the outbox kind of a close's report (`close_notice`)


@dataclass(frozen=True)
class CashierTotal:
    """One person's takings over a stretch: who (their name as the shop knows them), what came
    in, from how many payments, and how many of their orders were not paid or still wait."""

    user_id: int
    name: str
    received: int
    payments: int
    not_paid: int
    waiting: int


def by_cashier(rows: Iterable[CashierRow]) -> list[CashierTotal]:
    """The rows of `Store.cashier_totals` per person, the largest takings first."""
    people: dict[int, dict[str, Any]] = {}
    for row in rows:
        person = people.setdefault(
            row.user_id, {"name": cashier_name(row.requested_by, row.user_id), "r": 0, "p": 0, "n": 0, "w": 0}
        )
        if row.status.money_received:
            person["r"] += row.received
            person["p"] += row.count
        elif row.status is OrderStatus.PENDING:
            person["w"] += row.count
        else:
            person["n"] += row.count
    names = [p["name"] for p in people.values()]
    for uid, person in people.items():  # two people of one name are told apart by their number
        if names.count(person["name"]) > 1 and person["name"] != str(uid):
            person["name"] = f"{person['name']} ({uid})"
    totals = [CashierTotal(uid, p["name"], p["r"], p["p"], p["n"], p["w"]) for uid, p in people.items()]
    return sorted(totals, key=lambda t: (-t.received, t.name.lower()))


def cashier_params(totals: Sequence[CashierTotal]) -> list[list[Any]]:
    return [[t.user_id, t.name, t.received, t.payments, t.not_paid, t.waiting] for t in totals]


def cashiers_from(params: Iterable[Sequence[Any]]) -> list[CashierTotal]:
    return [CashierTotal(int(u), str(n), int(r), int(p), int(x), int(w)) for u, n, r, p, x, w in params]


def matches(total_name: str, requested_by: str, wanted: str) -> bool:
    """Whether an order's asker is the cashier typed after /orders: their name, first name or
    @username, in any case."""
    wanted = wanted.lower().lstrip("@")
    if not wanted:
        return False
    words = [w.strip("(),@").lower() for w in requested_by.split()]
    return wanted == total_name.lower() or wanted in words


class ChangeKind:
    """What happened to a closed stretch after its close (the kinds `sentences.change` says)."""

    PAID_LATE = "paid_late"
    RESOLVED = "resolved"
    REFUND = "refund"


@dataclass(frozen=True)
class CloseView:
    """A close as the owner reads it: its figures as stored, whether it was made just now, and
    what changed its stretch after (for a close shown again) plus the takings since it."""

    day: str
    closed_at: float
    closed_by: str
    covers_from: float
    covers_until: float
    rows: list[SummaryRow]
    refunds: list[tuple[RefundState, int, int]]
    cashiers: list[CashierTotal]
    open_orders: list[list[Any]]  # [order id, amount, in doubt]
    since_last: list[list[Any]]  # changes to the previous close's stretch, as found when closing
    just_made: bool = True
    after: list[list[Any]] = field(default_factory=list)  # changes to this close's stretch since
    later_rows: list[SummaryRow] = field(default_factory=list)  # orders made after the close

    @property
    def received(self) -> int:
        return sum(row.received for row in self.rows if row.status.money_received)

    @property
    def refunded(self) -> int:
        return sum(amount for state, _n, amount in self.refunds if state is RefundState.DONE)

    @property
    def net(self) -> int:
        return self.received - self.refunded

    def figures(self) -> str:
        return json.dumps(
            {
                "rows": summary_rows_params(self.rows),
                "refunds": [[state.value, n, amount] for state, n, amount in self.refunds],
                "cashiers": cashier_params(self.cashiers),
                "open": self.open_orders,
                "since": self.since_last,
            }
        )

    @classmethod
    def of(cls, close: DayClose) -> CloseView:
        figures = json.loads(close.figures)
        return cls(
            close.day,
            close.closed_at,
            close.closed_by,
            close.covers_from,
            close.covers_until,
            summary_rows_from(figures["rows"]),
            [(RefundState(s), int(n), int(a)) for s, n, a in figures["refunds"]],
            cashiers_from(figures["cashiers"]),
            figures["open"],
            figures["since"],
            just_made=False,
        )

    def record(self) -> DayClose:
        return DayClose(self.day, self.closed_at, self.closed_by, self.covers_from, self.covers_until, self.figures())


@dataclass(frozen=True)
class DayTakings:
    """One Nairobi day's money: received per network (by when the order was made) and refunded."""

    day: date
    mpesa: int = 0
    airtel: int = 0
    refunded: int = 0

    @property
    def received(self) -> int:
        return self.mpesa + self.airtel


class OwnerService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def cashiers(self, start: float, end: float, user_id: int | None = None) -> list[CashierTotal]:
        return by_cashier(await self._store.cashier_totals(start, end, user_id))

    async def changes_since(self, close: DayClose) -> list[list[Any]]:
        """What changed `close`'s stretch after it was made: money found for its orders, orders
        it named as open now settled, refunds of its orders or earlier ones; [kind, id, amount,
        status], oldest first."""
        opened = [str(entry[0]) for entry in json.loads(close.figures).get("open", [])]
        changed = await self._store.orders_changed_since(close.covers_from, close.covers_until, close.closed_at, opened)
        found: list[list[Any]] = []
        for order in changed:
            if order.status.money_received and order.paid_at is not None and order.paid_at >= close.closed_at:
                found.append([ChangeKind.PAID_LATE, order.id, order.paid_amount or 0, order.status.value])
            elif order.id in opened and order.status is not OrderStatus.PENDING:
                found.append([ChangeKind.RESOLVED, order.id, order.amount, order.status.value])
        for refund in await self._store.refunds_changed_since(close.closed_at, close.covers_until):
            found.append([ChangeKind.REFUND, refund.order_id, refund.amount, refund.state.value])
        return found

    async def figures(self, day: date, start: float, until: float, by: str, now: float) -> CloseView:
        """A new close of `day` over [start, until), with what changed the previous close since."""
        rows = await self._store.summary(start, until)
        refunds = await self._store.refund_totals(start, until)
        cashiers = await self.cashiers(start, until)
        open_orders = await self.open_orders(until)
        previous = await self._store.last_day_close()
        since = await self.changes_since(previous) if previous is not None else []
        return CloseView(day.isoformat(), now, by, start, until, rows, refunds, cashiers, open_orders, since)

    async def open_orders(self, until: float) -> list[list[Any]]:
        """Every order still pending or in doubt made before `until`: the pending ones of the
        last week (an older one is long in doubt or expired) and those in doubt, whatever day."""
        pending = await self._store.pending_orders(until - WEEK_SECONDS, until, OPEN_LISTED)
        doubtful = [o for o in await self._store.orders_in_doubt(OPEN_LISTED) if o.created_at < until]
        by_id = {o.id: o for o in pending + doubtful}
        return [[o.id, o.amount, o.in_doubt] for o in sorted(by_id.values(), key=lambda o: o.created_at)]

    async def stretch_start(self, day: date) -> float:
        """Where a new close of `day` starts: where the last close ended, or the day's midnight."""
        previous = await self._store.last_day_close()
        return _midnight(day) if previous is None else previous.covers_until

    async def close(
        self, day: date, by: str, now: float, *, tell: Callable[[CloseView], Sequence[Notice]] = lambda view: ()
    ) -> CloseView:
        """Close `day` now (an admin's /close), or show its close again with what came after.
        `tell` gives the messages a new close sends, queued in the close's own transaction (a
        close shown again sends none: `just_made` is false)."""
        kept = await self._store.day_close(day.isoformat())
        if kept is None:
            made = await self.figures(day, await self.stretch_start(day), now, by, now)
            if await self._store.record_close(made.record(), tell(made)):
                return made
            kept = await self._store.day_close(day.isoformat())  # another admin or instance was first
            assert kept is not None
        return await self.again(kept, now)

    async def again(self, kept: DayClose, now: float) -> CloseView:
        view = CloseView.of(kept)
        later = await self._store.summary(kept.covers_until, now)
        return _replaced(view, after=await self.changes_since(kept), later_rows=later)

    async def daily(self, period: Period) -> list[DayTakings]:
        """Takings per day of `period` (every day, empty ones too), by when orders were made;
        refunds done by when they were done."""
        days = {period.first + timedelta(days=n): [0, 0, 0] for n in range((period.last - period.first).days + 1)}
        async for order in self._store.stream_orders(period.start, period.end):
            if order.status.money_received and order.paid_amount:
                cells = days[_day_of(order.created_at)]
                cells[0 if order.network is Network.MPESA else 1] += order.paid_amount
        for refund in (await self._store.refunds_of_orders_made(0.0, period.end)).values():
            when = refund.done_at
            if refund.state is RefundState.DONE and when is not None and period.start <= when < period.end:
                days[_day_of(when)][2] += refund.amount
        return [DayTakings(day, *cells) for day, cells in days.items()]


def _day_of(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, NAIROBI).date()


def _replaced(view: CloseView, **changes: Any) -> CloseView:
    return dataclasses.replace(view, **changes)


def close_notice(view: CloseView, chat_id: int, reader: int | None, shop: str) -> Notice:
    """The close's report as an outbox message (kind `CLOSED`): the close itself travels in its
    parameters, so the report said later has the figures as they were when it was made."""
    record = view.record()
    params = {
        "day": record.day,
        "closed_at": record.closed_at,
        "closed_by": record.closed_by,
        "covers_from": record.covers_from,
        "covers_until": record.covers_until,
        "figures": record.figures,
        "shop": shop,
    }
    return Notice(chat_id, kind=CLOSED, params=params, reader=reader)


def close_from_params(params: Mapping[str, Any]) -> CloseView:
    """The close a `CLOSED` message tells, as just made."""
    close = DayClose(
        str(params["day"]),
        float(params["closed_at"]),
        str(params["closed_by"]),
        float(params["covers_from"]),
        float(params["covers_until"]),
        str(params["figures"]),
    )
    return _replaced(CloseView.of(close), just_made=True)


def close_day_of(now: float) -> date:
    return nairobi_today(now)


async def evening(
    store: Store, summary: Notice, day: date, start: float, until: float, now: float
) -> tuple[Notice, DayClose | None]:
    """The evening summary as the day's close by the clock: the summary with its stretch's
    cashiers, the orders still pending and what changed the last close since, and the close to record with it (None when
    the day was closed already, by an admin or another instance)."""
    service = OwnerService(store)
    params = dict(summary.params)
    cashiers = await service.cashiers(start, until)
    if cashiers:
        params["cashiers"] = cashier_params(cashiers)
    # The summary names the orders in doubt already; the close adds those still pending.
    pending = [[order_id, amount] for order_id, amount, doubt in await service.open_orders(until) if not doubt]
    if pending:
        params["pending"] = pending
    previous = await store.last_day_close()
    if previous is not None and previous.day == day.isoformat():
        return dataclasses.replace(summary, params=params), None
    made = await service.figures(day, start if previous is None else previous.covers_until, until, CLOCK, now)
    if made.since_last:
        params["since"] = made.since_last
    return dataclasses.replace(summary, params=params), made.record()
