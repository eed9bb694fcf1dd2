"""How many calls to the payment provider are in flight: an adaptive window with a lane for prompts.

A payer waiting for the PIN prompt must never queue behind a sweep's lookups, and a provider that
slows down or starts refusing must get fewer calls, not more. So:

- **Two lanes.** Lookups may hold at most the window less a reserve kept for prompts
  (initiate and push); a freed slot goes to a waiting prompt first. However many lookups are
  due, a prompt finds a reserved slot free, or gets one as soon as any call in flight ends,
  so within one round trip.
- **AIMD, as TCP does.** The window starts at the ceiling (`POLL_CONCURRENCY`), halves on a 429,
  a 5xx or a timeout (at most once a round trip, so one bad moment is one halving), and grows
  back while the provider's latency holds and no call fails (by one a call until the first
  halving, then by one a window's worth of calls). It never passes the ceiling nor falls below
  one call.

"Latency holds" means a lookup answered within twice the fastest lookup seen lately; "lately"
is the last two periods of `BASELINE_PERIOD` seconds, so a provider that becomes slow for good
is, after a while, the new normal and the window grows again.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.providers.base import ProviderError, ProviderUnavailable

T = TypeVar("T")


class Lane(enum.Enum):
    PROMPT = "prompt"  # initiate and push, and a refund: a person is waiting
    LOOKUP = "lookup"  # a status search: it can wait a little


class Outcome(enum.Enum):
    ANSWERED = "answered"  # any answer that is not the provider struggling (a refusal included)
    CONGESTED = "congested"  # a 429, a 5xx or a timeout: fewer calls, please
    FAILED = "failed"  # neither (a refused connection, a bug): no growth, no halving


LATENCY_TOLERANCE = 2.0  # a lookup this many times the fastest lately is "latency not holding"
BASELINE_PERIOD = 30.0  # seconds: the fastest lookup is remembered for one to two of these
PROMPT_SHARE = 0.1  # of the window, kept for prompts (at least one slot)
DEFAULT_CALL_CEILING = 50  # provider calls in flight when no budget is given (POLL_CONCURRENCY's default)


@dataclass
class Slot:
    """One call's place in the window; the caller says how the call went before leaving."""

    lane: Lane
    started: float
    outcome: Outcome = Outcome.FAILED

    def answered(self) -> None:
        self.outcome = Outcome.ANSWERED

    def congested(self) -> None:
        self.outcome = Outcome.CONGESTED


class CallBudget:
    """The calls in flight to one provider, shared by every caller in this process."""

    def __init__(
        self, ceiling: int, *, initial: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ceiling < 1:
            raise ValueError("the ceiling is at least one call")
        self.ceiling = ceiling
        self._clock = clock
        # A provider that answers well gets the ceiling from the start (a fixed cap would give no
        # less); the window only shrinks on trouble, and grows back as answers come.
        self._window = float(ceiling if initial is None else min(initial, ceiling))
        self._slow_start = True  # grow by one a call until the first congestion
        self._in_flight = {Lane.PROMPT: 0, Lane.LOOKUP: 0}
        self._waiting: dict[Lane, deque[asyncio.Future[None]]] = {Lane.PROMPT: deque(), Lane.LOOKUP: deque()}
        self._last_halving = float("-inf")
        self._fastest = (float("inf"), float("inf"))  # this period's fastest lookup, and the last one's
        self._period_started = clock()
        self.most_in_flight = 0
        self.halvings = 0

    @property
    def window(self) -> int:
        """Calls that may be in flight now, both lanes together."""
        return max(1, int(self._window))

    @property
    def in_flight(self) -> int:
        return self._in_flight[Lane.PROMPT] + self._in_flight[Lane.LOOKUP]

    def _lookup_room(self) -> int:
        """Slots lookups may hold: the window less the prompts' reserve, but always one."""
        reserve = max(1, round(self.window * PROMPT_SHARE))
        return max(1, self.window - reserve)

    def _may_start(self, lane: Lane) -> bool:
        if lane is Lane.PROMPT:
            return self.in_flight < self.window
        return (
            not self._waiting[Lane.PROMPT]
            and self.in_flight < self.window
            and self._in_flight[Lane.LOOKUP] < self._lookup_room()
        )

    def slot(self, lane: Lane) -> SlotHold:
        """Hold a slot for one call (`async with budget.slot(lane) as slot:`). Mark the slot
        `answered()` or `congested()` when the call says so; a slot left unmarked (an exception
        of another kind) counts as neither."""
        return SlotHold(self, lane)

    async def call(self, lane: Lane, call: Awaitable[T]) -> T:
        """One provider call in a slot, telling the budget how it went: the provider unavailable
        (a 429, a 5xx, a timeout, unreachable) is congestion; any other answer, a refusal
        included, is an answer. Every call to the provider goes through here, so the window is
        the one cap on calls in flight."""
        async with self.slot(lane) as slot:
            try:
                result = await call
            except ProviderUnavailable:
                slot.congested()
                raise
            except ProviderError:
                slot.answered()
                raise
            slot.answered()
            return result

    def _release(self, slot: Slot) -> None:
        self._in_flight[slot.lane] -= 1
        self._learn(slot)
        self._wake()

    async def _acquire(self, lane: Lane) -> None:
        if not self._waiting[lane] and self._may_start(lane):
            self._take(lane)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[lane].append(future)
        try:
            await future  # `_wake` has taken the slot for us when it resolves the future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._in_flight[lane] -= 1  # granted and cancelled at once: give it back
                self._wake()
            elif future in self._waiting[lane]:  # else `_wake` has dropped it already
                self._waiting[lane].remove(future)
            raise

    def _take(self, lane: Lane) -> None:
        self._in_flight[lane] += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _wake(self) -> None:
        """Hand free slots to the waiters: prompts first, then lookups, each in order of arrival."""
        for lane in (Lane.PROMPT, Lane.LOOKUP):
            waiting = self._waiting[lane]
            while waiting and self._may_start_waiter(lane):
                future = waiting.popleft()
                if future.done():  # cancelled while waiting
                    continue
                self._take(lane)
                future.set_result(None)

    def _may_start_waiter(self, lane: Lane) -> bool:
        if lane is Lane.PROMPT:
            return self.in_flight < self.window
        return self.in_flight < self.window and self._in_flight[Lane.LOOKUP] < self._lookup_room()

    def _learn(self, slot: Slot) -> None:
        """Move the window by how the call went (AIMD)."""
        now = self._clock()
        latency = now - slot.started
        if slot.outcome is Outcome.CONGESTED:
            # Calls in flight when the trouble began fail together: one halving a round trip.
            if now - self._last_halving >= max(latency, self._baseline()):
                self._window = max(1.0, self._window / 2)
                self._slow_start = False
                self._last_halving = now
                self.halvings += 1
            return
        if slot.outcome is not Outcome.ANSWERED:
            return
        if slot.lane is Lane.LOOKUP:
            self._note_latency(now, latency)
            if latency > LATENCY_TOLERANCE * self._baseline():
                return  # the provider is slowing down: hold, do not push it harder
        self._window = min(float(self.ceiling), self._window + (1.0 if self._slow_start else 1.0 / self._window))

    def _note_latency(self, now: float, latency: float) -> None:
        current, previous = self._fastest
        elapsed = now - self._period_started
        if elapsed >= BASELINE_PERIOD:
            self._period_started = now
            current, previous = float("inf"), (current if elapsed < 2 * BASELINE_PERIOD else float("inf"))
        self._fastest = (min(current, latency), previous)

    def _baseline(self) -> float:
        """The fastest lookup lately (0 before any)."""
        fastest = min(self._fastest)
        return 0.0 if fastest == float("inf") else fastest


class SlotHold:
    """`CallBudget.slot`'s context: a slot taken on entry and given back on exit, whatever the
    call raised. A plain class rather than a generator-based context manager: every provider call
    passes through it, and the generator's machinery cost more than the budget's own work."""

    __slots__ = ("_budget", "_lane", "_slot")

    def __init__(self, budget: CallBudget, lane: Lane) -> None:
        self._budget = budget
        self._lane = lane

    async def __aenter__(self) -> Slot:
        await self._budget._acquire(self._lane)
        self._slot = Slot(self._lane, self._budget._clock())
        return self._slot

    async def __aexit__(self, *exc_info: object) -> None:
        self._budget._release(self._slot)
