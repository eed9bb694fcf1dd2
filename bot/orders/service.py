"""The payment service: the one place that moves orders through their life.

Handlers and the poller call it; it calls the iPay client and the store. Whatever confirms
an outcome (a poll, a callback, a restart) ends in `finalise`, which records it and queues
the messages in one transaction, then wakes the notifier.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from bot.background import BackgroundWork
from bot.buttons import (
    CANCEL_ORDER,
    CANCEL_ORDER_LABEL,
    PAYBILL_BUTTON_LABEL,
    REST_LABEL,
    REST_ORDER,
    RETRY_LABEL,
    RETRY_ORDER,
    order_button,
    paybill_button,
)
from bot.config import IPAY_FLOOR
from bot.crashpoints import crash_point
from bot.domain import (
    Draft,
    DraftGone,
    Network,
    Notice,
    Order,
    OrderStatus,
    PaidMeanwhile,
    Payment,
    PaymentRequest,
    PhoneBusy,
    RefundState,
    RequestTaken,
    RequestUnavailable,
    new_order_id,
)
from bot.orders import notices
from bot.orders.changes import OrderChanges
from bot.pay.inputs import guess_network
from bot.providers.base import (
    Callback,
    FailureKind,
    ManualPayment,
    PaymentFailed,
    PaymentFound,
    PaymentProvider,
    ProviderError,
    ProviderMalformedReply,
    ProviderRefused,
    ProviderUnavailable,
    ProviderUnverified,
    SearchResult,
    provider_name,
)
from bot.providers.limiter import DEFAULT_CALL_CEILING, CallBudget, Lane
from bot.refunds import buttons as refund_buttons
from bot.store import Reschedule, Store

log = logging.getLogger(__name__)

MAX_POLL_SPACING = 60.0  # after 5, 10, 20, 40 s: once a minute until the timeout
# Past its deadline, an order whose lookups give no verdict is looked up less and less often, but
# at least every 10 minutes, for as long as it takes (days, if iPay is down that long).
DOUBT_MAX_SPACING = 600.0
Clock = Callable[[], float]

_FAILURE_STATUS = {
    FailureKind.CANCELLED: OrderStatus.CANCELLED,
    FailureKind.TIMED_OUT: OrderStatus.EXPIRED,
    FailureKind.WRONG_PIN: OrderStatus.FAILED,
    FailureKind.INSUFFICIENT_FUNDS: OrderStatus.FAILED,
}


class RequestHooks(Protocol):
    """What the payment service needs from the payment requests' service (bot/requests/service.py)."""

    async def why_unavailable_by_id(self, request_id: str) -> RequestUnavailable: ...

    async def note_of(self, request_id: str) -> str: ...

    async def notices_for(self, order: Order, status: OrderStatus, payment: Payment | None) -> list[Notice]: ...


class PaymentRefused(Exception):
    """A payment cannot start now: `code` says why and `data` holds what the words need; the edge
    says it in the reader's language (`order_sentences.refusal`), the REST API as a code.

    Codes: user_limit, phone_busy, phone_limit, retry_not_needed, stale_button, not_your_button.
    `retry_at` is when a limit lifts.
    """

    def __init__(self, code: str, retry_at: float | None = None, **data: Any) -> None:
        super().__init__(code)
        self.code = code
        self.data = data
        self.retry_at = retry_at


class IdempotencyConflict(Exception):
    """Another request with the same idempotency key won the race: use its order."""


# Why an order ended without money, stored in `last_error` as a code (said by `order_sentences.reason`).
REASON_WITHDRAWN, REASON_NO_ANSWER, REASON_NOT_SENT = "withdrawn", "no_answer", "not_sent"
# The provider's name rides in these codes ("provider_refused:<name>:<its words>",
# "provider_unreachable:<name>"), so a reason read later names the provider that said it. Codes
# stored before they carried it are still read (as iPay's).
REASON_PROVIDER_UNREACHABLE, REASON_PROVIDER_REFUSED = "provider_unreachable", "provider_refused"
REASON_IPAY_UNREACHABLE, REASON_IPAY_REFUSED = "ipay_unreachable", "ipay_refused"
# Why an order is in doubt, said to the shop (`order_sentences.doubt_reason`).
DOUBT_UNREACHABLE, DOUBT_UNREADABLE, DOUBT_UNVERIFIED = "unreachable", "unreadable", "unverified"
# iPay refuses a prompt for less than this: a rest below it is not offered as "Pay the rest" (the
# prompt would fail and use up one of the phone's prompts); the receipt says to pay it to the shop.
SMALLEST_PROMPT = IPAY_FLOOR

RECHECK_AFTER_WITHDRAW = 90.0  # a prompt can still be answered for up to about a minute
# An order written but never sent (the process died before /transact) is still sent after a
# restart if the payer has waited no longer than this (and at most half the payment timeout,
# so there is time left to pay); older ones are failed and told.
LATE_SEND_WINDOW = 60.0
UNSENT_GRACE = 5.0  # an order younger than this is still on its way to iPay in its own task


@dataclass(frozen=True)
class PaymentPolicy:
    """The timing and wording choices the service needs from the settings."""

    poll_interval: float
    payment_timeout: float
    merchant_chat_id: int | None
    sandbox: bool
    limit_per_user: int = 5
    user_window: float = 600.0
    limit_per_phone: int = 3  # per PHONE_WINDOW
    exempt_user_ids: frozenset[int] = frozenset()  # admins and staff prompt for a living
    shop_name: str = ""  # receipts say whom the money was paid to ("the shop" when unset)


PHONE_WINDOW = 3600.0


def _limit_lifts_at(times: list[float], limit: int, window: float) -> float | None:
    """When a sliding-window limit lets one more through, or None if it already does.

    `times` are the window's creation times, oldest first: once the oldest of the last
    `limit` leaves the window, there is room again.
    """
    if len(times) < limit:
        return None
    return times[len(times) - limit] + window


class PaymentService:
    def __init__(
        self,
        store: Store,
        provider: PaymentProvider,
        policy: PaymentPolicy,
        *,
        clock: Clock = time.time,
        on_notices: Callable[[], None] = lambda: None,
        budget: CallBudget | None = None,
    ) -> None:
        """`budget`: the provider calls in flight (`POLL_CONCURRENCY` its ceiling), prompts in a lane
        of their own so none waits behind a sweep's lookups."""
        self._store = store
        self._provider = provider
        self.budget = budget or CallBudget(DEFAULT_CALL_CEILING)
        self._policy = policy
        self._clock = clock
        self._on_notices = on_notices
        self._background = BackgroundWork("background payment work")
        self._sending: set[str] = set()  # orders whose prompt this process is sending now
        self.changes = OrderChanges()  # tills waiting for an outcome (`GET /api/payments/{id}?wait=`)
        # Payment requests (bot/requests/service.py), wired in by the app: their wording and notices.
        self.requests: RequestHooks | None = None

    @property
    def provider(self) -> object:
        """The running provider, for the web app's routes that only some providers serve."""
        return self._provider

    @property
    def provider_name(self) -> str:
        """The running provider's name, for the sentences that name who takes the payment."""
        return provider_name(self._provider)

    # -- starting a payment -------------------------------------------------------------

    async def create_order(
        self,
        request: PaymentRequest,
        *,
        prompt_message_id: int | None = None,
        idempotency: tuple[str, str] | None = None,
        api_key_id: str | None = None,
        consumes: Draft | None = None,
        unless_paid: str | None = None,
    ) -> Order:
        """Write the order, before iPay hears of it; `send_prompt_soon` then does the rest.

        Its lookups start once the prompt is sent; if the process dies before that, the sweep's
        `finish_unsent` sends it late or fails it and tells the chat, never leaving it
        dangling. Raises `PaymentRefused` when a limit says no.
        With `idempotency`, raises `IdempotencyConflict` if that key was used meanwhile;
        `api_key_id` is the REST API key that asked, the only one that may read the order.
        `consumes`: the Confirm's draft, ended in the order's own transaction; the order is
        written only while the draft is there as it was read (refused "draft_gone" once timed
        out, cancelled or replaced); `unless_paid`: refused
        "paid_after_all" if that cancelled order has received money (never charge twice).
        """
        if request.source == "chat":
            await self.ensure_user_may_prompt(request.user_id)
        self._ensure_network_taken(request.network, request.phone)
        await self.ensure_phone_may_be_prompted(request.phone)
        order = self._new_order(request, prompt_message_id)
        async with self._refused_if_taken(order):
            inserted = await self._store.insert_order(
                order, idempotency=idempotency, api_key_id=api_key_id, consumes=consumes, unless_paid=unless_paid
            )
        if not inserted:
            raise IdempotencyConflict()
        log.info("order %s created for %s, %s by %s", order.id, order.masked_phone, order.amount, order.network.value)
        crash_point("order_written")
        return order

    async def retry(self, order_id: str, chat_id: int, user_id: int, *, rest: bool = False) -> Order:
        """A new attempt (new order id) for the same phone and amount: "Send the prompt again".
        With `rest`, for an underpaid order: a new order for exactly what is still to pay, linked
        to the first as its retry (so it is asked for once)."""
        old = await self._own_order(order_id, chat_id, user_id)
        watched_after_cancel = old.status is OrderStatus.WITHDRAWN and old.next_poll_at is not None
        allowed = old.status is OrderStatus.UNDERPAID if rest else old.status.can_retry and not watched_after_cancel
        if not rest and not allowed and old.status.money_received:  # "Refund all and ask again", refunded
            refund = await self._store.get_refund(old.id)
            allowed = refund is not None and refund.ask_again and refund.state is RefundState.DONE
        if old.retry_order_id is not None or not allowed:
            raise PaymentRefused("retry_not_needed", order=old)
        await self.ensure_user_may_prompt(user_id)
        await self.ensure_phone_may_be_prompted(old.phone)
        amount = old.amount - (old.paid_amount or 0) if rest else old.amount
        if rest and amount < SMALLEST_PROMPT:  # a button from before such rests lost it
            raise PaymentRefused("rest_too_small", rest=amount)
        again = PaymentRequest(
            chat_id, user_id, old.phone, old.network, amount, old.requested_by, pay_request_id=old.pay_request_id
        )
        order = self._new_order(again, None)
        async with self._refused_if_taken(order):
            inserted = await self._store.insert_order(order, retry_of=old.id)
        if not inserted:
            raise PaymentRefused("retry_not_needed", order=old)
        log.info("order %s retries order %s", order.id, old.id)
        return order

    @asynccontextmanager
    async def _refused_if_taken(self, order: Order) -> AsyncIterator[None]:
        """Writing an order: if another prompt for its phone got in first, or its payment request
        was taken meanwhile, say so as a refusal."""
        try:
            yield
        except PhoneBusy:
            await self.ensure_phone_may_be_prompted(order.phone)  # raises, naming the open order
            raise PaymentRefused("phone_busy") from None
        except DraftGone:
            raise PaymentRefused("draft_gone") from None
        except PaidMeanwhile as paid:
            raise PaymentRefused("paid_after_all", order_id=paid.order_id) from None
        except RequestTaken:  # paid, being paid by someone else, expired or cancelled
            why = RequestUnavailable("open", being_paid=True)
            if self.requests is not None and order.pay_request_id is not None:
                why = await self.requests.why_unavailable_by_id(order.pay_request_id)
            raise PaymentRefused(
                "request_taken",
                state=why.state,
                being_paid=why.being_paid,
                missing=why.missing,
                shop=self._policy.shop_name,
            ) from None

    async def _own_order(self, order_id: str, chat_id: int, user_id: int) -> Order:
        """The order a button in this chat is about, if this user may act on it."""
        order = await self._store.get_chat_order(order_id, chat_id)
        if order is None:
            raise PaymentRefused("stale_button")
        if order.user_id != user_id:
            raise PaymentRefused("not_your_button")
        return order

    async def ensure_user_may_prompt(self, user_id: int) -> None:
        """At most `limit_per_user` prompts per window, counted from stored orders (so restarts
        do not reset it). Admins and staff are exempt: prompting customers is their job."""
        if user_id in self._policy.exempt_user_ids:
            return
        limit, window = self._policy.limit_per_user, self._policy.user_window
        times = await self._store.orders_since(since=self._clock() - window, user_id=user_id)
        until = _limit_lifts_at(times, limit, window)
        if until is not None:
            raise PaymentRefused("user_limit", until, limit=limit, window=window, until=until)

    @property
    def networks(self) -> tuple[Network, ...]:
        """The networks the provider can prompt, in the order a payer is offered them."""
        return self._provider.networks

    def _ensure_network_taken(self, network: Network, phone: str) -> None:
        """A network the provider cannot prompt is refused before any order is written."""
        if network not in self.networks:
            raise PaymentRefused("network_not_taken", phone=phone, network=network, taken=self.networks)

    async def ensure_phone_may_be_prompted(self, phone: str) -> None:
        """One open prompt per phone (iPay would refuse a second), and a few per hour at most,
        whoever asks: a payment bot must not become a way to pester a stranger's phone. A phone
        on a network the provider cannot prompt is refused first."""
        self._ensure_network_taken(guess_network(phone), phone)
        busy = await self._store.open_order_for_phone(phone)
        if busy is not None:
            expires = busy.created_at + self._policy.payment_timeout
            if busy.status.closed and busy.watch_until is not None:
                # Cancelled in the chat, or timed out on the phone: still looked up, and its prompt
                # may still be answered, so still one prompt per phone.
                expires = max(expires, busy.watch_until)
            raise PaymentRefused(
                "phone_busy",
                expires,
                masked_phone=busy.masked_phone,
                order_id=busy.id,
                order_chat=busy.chat_id,
                order_user=busy.user_id,
                until=expires,
                cancelled_at=busy.updated_at if busy.status is OrderStatus.WITHDRAWN else None,
                in_doubt=busy.in_doubt,  # not confirmed either way: no second prompt until it is
                provider=self.provider_name,
            )
        limit = self._policy.limit_per_phone
        times = await self._store.orders_since(since=self._clock() - PHONE_WINDOW, phone=phone)
        until = _limit_lifts_at(times, limit, PHONE_WINDOW)
        if until is not None:
            raise PaymentRefused("phone_limit", until, phone=phone, limit=limit, until=until)

    def _new_order(self, request: PaymentRequest, prompt_message_id: int | None) -> Order:
        now = self._clock()
        return Order(
            id=new_order_id(),
            chat_id=request.chat_id,
            user_id=request.user_id,
            phone=request.phone,
            network=request.network,
            amount=request.amount,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
            next_poll_at=None,  # not due before its prompt is sent (`finish_unsent`)
            prompt_message_id=prompt_message_id,
            requested_by=request.requested_by,
            source=request.source,
            reference=request.reference,
            email=request.email,
            pay_request_id=request.pay_request_id,
        )

    async def attach_prompt_message(self, order: Order, message_id: int) -> Order:
        """The message that will be edited as this order moves."""
        await self._store.set_prompt_message(order.id, message_id)
        return dataclasses.replace(order, prompt_message_id=message_id)

    async def withdraw(self, order_id: str, chat_id: int, user_id: int) -> None:
        """The payer cancels in the chat. Money may still arrive (the prompt can outlive the
        cancel, and Pay Bill works until the payment timeout): keep looking until then."""
        order = await self._own_order(order_id, chat_id, user_id)
        if order.in_doubt:  # it may be paid: it stays looked up until iPay answers
            raise PaymentRefused("retry_not_needed", order=order)
        now = self._clock()
        watch = (now + self.poll_spacing(0), max(self.deadline(order), now + RECHECK_AFTER_WITHDRAW))
        if not await self.finalise(order, OrderStatus.WITHDRAWN, reason=REASON_WITHDRAWN, watch=watch):
            raise PaymentRefused("retry_not_needed", order=order)

    @property
    def late_send_window(self) -> float:
        return min(LATE_SEND_WINDOW, self._policy.payment_timeout / 2)

    def deadline(self, order: Order) -> float:
        """Until when a payment for this order is expected."""
        return order.created_at + self._policy.payment_timeout

    def send_prompt_soon(self, order: Order) -> None:
        """Initiate and push in the background, so no chat waits on iPay's slow answers."""
        self._sending.add(order.id)
        self._background.spawn(self.send_prompt(order))

    async def send_prompt(self, order: Order) -> None:
        """/transact, then the push. Claimed first, so however many callers (the chat, a
        restart's recovery) try, one prompt at most goes out; what /transact answered is
        recorded before the push, so a crash in between is never taken for "not sent". The
        claim is renewed while the send goes on, so another instance never takes a slow send
        (iPay keeping the call waiting for a slot) for one whose sender died."""
        try:
            if await self._store.claim_sending(order.id, self._clock()):
                renewing = asyncio.get_running_loop().create_task(self._keep_sending_claim(order.id))
                try:
                    await self._initiate_and_push(order)
                finally:
                    renewing.cancel()
        finally:
            self._sending.discard(order.id)

    async def _keep_sending_claim(self, order_id: str) -> None:
        """Renew the sending claim four times a lease until the send ends (cancelled) or the
        claim is no longer ours (then `record_session` refuses, and no push goes out)."""
        while True:
            await asyncio.sleep(self._store.send_lease / 4)
            try:
                if not await self._store.renew_sending(order_id, self._clock()):
                    return
            except Exception as exc:  # a database hiccup: the next renewal tries again
                log.warning("could not renew the sending claim of order %s: %s", order_id, exc)

    async def _initiate_and_push(self, order: Order) -> None:
        try:
            session = await self.budget.call(
                Lane.PROMPT, self._provider.initiate(order.id, order.amount, order.phone, order.email)
            )
            crash_point("transact_answered")
            if not await self._store.record_session(order.id, session.sid, session.account, session.paybills):
                # Another instance took this instance for dead and failed the order, telling the
                # payer nothing was charged: no push may make that untrue.
                log.warning("order %s was failed as unsent by another instance: not pushed", order.id)
                return
            crash_point("session_recorded")
            kept = await self.budget.call(Lane.PROMPT, self._provider.push(order.network, order.phone, session.sid))
            if kept is not None and kept != session.sid:
                await self._store.record_session_ref(order.id, kept)
        except ProviderRefused as exc:
            await self.finalise(
                order, OrderStatus.FAILED, reason=f"{REASON_PROVIDER_REFUSED}:{self.provider_name}:{exc.reason}"
            )
            return
        except ProviderError as exc:
            stored = await self._store.get_order(order.id) or order
            if stored.reached_provider:
                # The push gave no clear answer (a 5xx, iPay's own 500 included): the prompt may be
                # on the phone, so it is watched until its deadline; search decides.
                log.warning("push for order %s gave no clear answer: %s", order.id, exc)
                await self._prompt_sent(order, unconfirmed=True, account=stored.paybill_account)
            else:
                # No push was made, so nothing can be charged: a plain failure is the truth.
                log.warning("initiate for order %s failed: %s", order.id, exc)
                await self.finalise(
                    order, OrderStatus.FAILED, reason=f"{REASON_PROVIDER_UNREACHABLE}:{self.provider_name}"
                )
            return
        crash_point("prompt_pushed")
        await self._prompt_sent(order, account=session.account)

    async def _prompt_sent(self, order: Order, *, unconfirmed: bool = False, account: str | None = None) -> None:
        """Tell the chat to check the phone (or that iPay did not confirm the prompt), with the
        Pay Bill way round unless iPay gave the order no account to pay into (`account` "")."""
        now = self._clock()
        queued = []
        if order.has_chat:
            paybill = account != ""
            buttons: tuple[tuple[str, str], ...] = ((CANCEL_ORDER_LABEL, order_button(CANCEL_ORDER, order.id)),)
            if paybill:
                buttons += ((PAYBILL_BUTTON_LABEL, paybill_button(order.id)),)  # the Pay Bill way round
            queued.append(
                self._notice(
                    notices.PROMPT_SENT,
                    order,
                    buttons=buttons,
                    edit_prompt=order.prompt_message_id is not None,
                    unconfirmed=unconfirmed,
                    paybill=paybill,
                )
            )
        if await self._store.record_prompt_sent(order.id, now, now + self.poll_spacing(0), queued) and queued:
            self._on_notices()

    async def finish_unsent(self, limit: int = 500) -> int:
        """Finish orders that were accepted but whose prompt was never recorded as sent,
        because the process died on the way: each is sent now if the payer is still waiting
        (never twice: sending is claimed), failed and told otherwise, or, if the push itself
        may have gone out, watched like any other. Returns how many it finished or started."""
        now = self._clock()
        # Orders another live instance is sending are not listed (its claim holds while it lives).
        unsent = [
            o for o in await self._store.unsent_orders(now - UNSENT_GRACE, limit, now) if o.id not in self._sending
        ]
        for order in unsent:
            if order.reached_provider:
                log.info("order %s: the push may have gone out before a restart; watching it", order.id)
                await self._prompt_sent(order, unconfirmed=True, account=order.paybill_account)
            elif order.initiate_at is None and now - order.created_at <= self.late_send_window:
                log.info("order %s was never sent; sending it now", order.id)
                self.send_prompt_soon(order)
            elif order.initiate_at is not None or await self._store.claim_sending(order.id, now):
                log.info("order %s was never sent; failing it", order.id)
                await self.finalise(order, OrderStatus.FAILED, reason=REASON_NOT_SENT, unsent_only=True)
        return len(unsent)

    def now(self) -> float:
        return self._clock()

    def read_callback(self, params: Mapping[str, str], body: bytes = b"") -> Callback | None:
        """The provider's callback (the web app's callback route), read by the provider."""
        return self._provider.read_callback(params, body)

    def read_manual_payment(self, params: Mapping[str, str], body: bytes = b"") -> ManualPayment | None:
        """A payment made by hand the provider told of (Daraja's C2B confirmation), read by the
        provider; None if it is not one, or the provider tells of none."""
        read = getattr(self._provider, "read_manual_payment", None)
        manual = read(params, body) if read is not None else None
        return manual if isinstance(manual, ManualPayment) else None

    async def keep_callback(self, callback: Callback) -> None:
        """Keep what a callback said for the order's lookups, on whichever instance they run
        (nothing is decided by it: only a lookup that agrees takes its receipt)."""
        if callback.note:
            await self._store.keep_provider_note(callback.order_id, callback.note, self._clock())

    async def learn_receipt(self, order: Order) -> bool:
        """A paid order recorded without its receipt (the query confirmed it before the callback
        came): looked up again with the callback now kept, the receipt the query confirms is
        recorded. The payment itself is not recorded twice: only the missing receipt is written."""
        if not order.status.money_received or order.receipt_code:
            return False
        result = await self.lookup(order)
        if not isinstance(result, PaymentFound) or not result.payment.receipt_code:
            return False
        learned = await self._store.record_late_receipt(order.id, result.payment.receipt_code)
        if learned:
            log.info("order %s: its receipt came after its payment was recorded", order.id)
        return learned

    async def order(self, order_id: str) -> Order | None:
        return await self._store.get_order(order_id)

    async def idempotent_order(self, key_hash: str) -> tuple[str, Order] | None:
        return await self._store.idempotent_order(key_hash)

    async def api_order(self, order_id: str, api_key_id: str) -> Order | None:
        return await self._store.get_api_order(order_id, api_key_id)

    async def chat_order(self, order_id: str, chat_id: int) -> Order | None:
        return await self._store.get_chat_order(order_id, chat_id)

    async def latest_chat_orders(self, chat_id: int, limit: int) -> list[Order]:
        return await self._store.latest_chat_orders(chat_id, limit)

    # -- watching a payment -------------------------------------------------------------

    def poll_spacing(self, poll_count: int, cap: float = MAX_POLL_SPACING) -> float:
        return min(self._policy.poll_interval * 2.0 ** min(poll_count, 30), cap)

    async def check(self, order: Order) -> OrderStatus:
        """Ask iPay about one order and act on a clean answer only (the callback's path)."""
        return await self.act_on(order, await self.lookup(order))

    async def act_on(self, order: Order, result: SearchResult | ProviderError) -> OrderStatus:
        """`settle` one lookup's answer and write its reschedule at once (one order, not a sweep)."""
        status, reschedule = await self.settle(order, result)
        if reschedule is not None:
            await self._store.schedule_polls([reschedule])
        return status

    async def lookup(self, order: Order) -> SearchResult | ProviderError:
        """The network half of a check: iPay's answer, or the error in its place. Whatever
        goes wrong reading one order's answer is that order's problem, retried later."""
        try:
            # Only a provider whose callbacks leave a note costs each lookup this read.
            note = await self._store.provider_note(order.id) if self._provider.notes_callbacks else None
            return await self.budget.call(Lane.LOOKUP, self._provider.search(order.id, order.session_ref, note))
        except ProviderError as exc:
            return exc
        except Exception as exc:  # a reply no one foresaw must not stop the others' lookups
            log.exception("lookup of order %s failed unexpectedly", order.id)
            return ProviderMalformedReply(f"unreadable answer ({type(exc).__name__})")

    async def settle(self, order: Order, result: SearchResult | ProviderError) -> tuple[OrderStatus, Reschedule | None]:
        """Act on a lookup. Outcomes are finalised here; a lookup without a verdict returns
        when to ask again, so the poller can write a whole batch of those in one transaction."""
        now = self._clock()
        if isinstance(result, ProviderError):
            return order.status, await self._errored(order, result, now)
        if isinstance(result, PaymentFound):
            return await self.record_payment(order, result.payment), None
        if order.status is not OrderStatus.PENDING:
            # Closed but still watched (cancelled in the chat, prompt timed out): only money changes it.
            watch_until = order.watch_until or now
            next_look = min(now + self.poll_spacing(order.poll_count + 1), watch_until) if now < watch_until else None
            return order.status, Reschedule(order.id, next_look, None, order.schedule_version)
        if isinstance(result, PaymentFailed):
            return await self._failed(order, result.kind, now), None
        deadline = self.deadline(order)
        if now >= deadline:
            await self.finalise(order, OrderStatus.EXPIRED, reason=REASON_NO_ANSWER)
            return OrderStatus.EXPIRED, None
        next_poll = min(now + self.poll_spacing(order.poll_count + 1), deadline)  # look once more at the deadline
        return OrderStatus.PENDING, Reschedule(order.id, next_poll, None, order.schedule_version)

    async def _errored(self, order: Order, error: ProviderError, now: float) -> Reschedule | None:
        """A lookup without an answer the bot can trust is never "not paid": it is asked again,
        even long past the deadline, until iPay answers. A pending order whose deadline has passed
        is in doubt: its payer and the shop are told once (whatever restarts or instances come
        later), and its lookups go on, spaced out up to `DOUBT_MAX_SPACING`."""
        past_deadline = now >= self.deadline(order)
        cap = DOUBT_MAX_SPACING if past_deadline else MAX_POLL_SPACING
        backoff = self.poll_spacing(order.poll_count, cap) * random.uniform(0.8, 1.2)  # jitter spreads retries out
        retry = max(backoff, getattr(error, "retry_after", None) or 0.0)
        log.warning("lookup of order %s failed, will retry in %.0f s: %s", order.id, retry, error)
        reschedule = Reschedule(order.id, now + retry, str(error), order.schedule_version)
        if not past_deadline or order.status is not OrderStatus.PENDING or order.doubt_since is not None:
            return reschedule
        why = doubt_reason(error)
        if not await self._store.mark_in_doubt(reschedule, now, self._doubt_notices(order, why)):
            return reschedule  # in doubt already, or moved on meanwhile: the reschedule is then stale
        log.warning("order %s is in doubt (%s): its payer and the shop are told; still looking it up", order.id, why)
        self._on_notices()
        return None

    def _doubt_notices(self, order: Order, why: str) -> list[Notice]:
        """The payer hears that the payment cannot be confirmed yet (never that it failed); the
        prompt message loses its Cancel button; the shop gets one line naming the order and why."""
        queued = []
        if order.prompt_message_id is not None:
            queued.append(self._notice(notices.PROMPT_OUTCOME, order, edit_prompt=True, in_doubt=True))
        if order.has_chat:
            queued.append(self._notice(notices.IN_DOUBT, order, reason=why))
        merchant = self._policy.merchant_chat_id
        if merchant is not None:
            queued.append(
                notices.about_order(
                    notices.MERCHANT_DOUBT,
                    merchant,
                    order,
                    reason=why,
                    sandbox=self._policy.sandbox,
                    reader=notices.MERCHANT_READER,
                    provider=self.provider_name,
                )
            )
        return queued

    async def _failed(self, order: Order, kind: FailureKind, now: float) -> OrderStatus:
        """The phone said no. A prompt that timed out on the phone is no verdict on the order:
        the payer may still pay by Pay Bill until the deadline, so it is told but still watched."""
        status = _FAILURE_STATUS[kind]
        deadline = self.deadline(order)
        watch = (min(now + self.poll_spacing(order.poll_count + 1), deadline), deadline)
        still_open = kind is FailureKind.TIMED_OUT and now < deadline
        await self.finalise(order, status, reason=kind.value, watch=watch if still_open else None)
        return status

    async def record_payment(self, order: Order, payment: Payment) -> OrderStatus:
        if payment.amount == order.amount:
            status = OrderStatus.PAID
        else:
            status = OrderStatus.UNDERPAID if payment.amount < order.amount else OrderStatus.OVERPAID
        await self.finalise(order, status, payment=payment)
        return status

    # -- the one finalisation path ------------------------------------------------------

    async def finalise(
        self,
        order: Order,
        status: OrderStatus,
        *,
        payment: Payment | None = None,
        reason: str | None = None,
        watch: tuple[float, float] | None = None,
        unsent_only: bool = False,
    ) -> bool:
        """Record the outcome and queue every message about it, in one transaction.

        A new message says the outcome (so the phone notifies) and, unless it is a receipt, the
        prompt message is edited to show it too; the merchant gets a line for money and for failures.
        `unsent_only`: an order whose prompt was never sent, failed only while no instance
        is still sending it (see `Store.finalise`).
        """
        watched = watch is not None and status is not OrderStatus.WITHDRAWN  # e.g. timed out on the phone
        queued = await self._outcome_notices(order, status, payment, reason, watched=watched)
        if order.pay_request_id is not None and self.requests is not None:
            queued.extend(await self.requests.notices_for(order, status, payment))
        changed = await self._store.finalise(
            order.id,
            status,
            self._clock(),
            queued,
            payment=payment,
            reason=reason,
            watch=watch,
            unsent_only=unsent_only,
        )
        if changed:
            log.info("order %s is %s", order.id, status.value)
            crash_point("outcome_recorded")
            if queued:
                self._on_notices()
            self.changes.changed(order.id)
        return changed

    async def _outcome_notices(
        self, order: Order, status: OrderStatus, payment: Payment | None, reason: str | None, *, watched: bool = False
    ) -> list[Notice]:
        """The prompt message edited to the outcome, a new message saying it (so the phone
        notifies), and the merchant's line for money and for failures. Money is said by the
        receipt alone: the prompt message stays as it was (its buttons answer that the order is
        paid), one Bot API call fewer per payment. Money on an order that
        follows on from others ("Pay the rest") is told with what was paid on them. An order
        still `watched` (its prompt timed out before the deadline) may yet be paid: no second
        prompt is offered for it, only the Pay Bill way round."""
        queued = []
        merchant = self._policy.merchant_chat_id
        # Money paid on earlier attempts is told in the chat and to the merchant: with neither to
        # tell (a REST API order, no merchant chat) they are not read.
        told = payment is not None and (order.has_chat or merchant is not None)
        follow = notices.follow_up(order, await self._store.earlier_attempts(order.id)) if told else None
        follows: dict[str, Any] = {"follow_up": notices.follow_up_params(follow)} if follow is not None else {}
        note = ""
        if payment is not None and order.pay_request_id is not None and self.requests is not None:
            note = await self.requests.note_of(order.pay_request_id)  # the receipt says what was paid for
        if order.prompt_message_id is not None and not (payment is not None and order.has_chat):
            queued.append(self._notice(notices.PROMPT_OUTCOME, order, status=status, edit_prompt=True))
        if order.has_chat:
            buttons = _outcome_buttons(order, status, payment, follow, watched=watched)
            left, again_at = await self._prompts_left(order.phone) if buttons and not watched else (None, None)
            if left == 0:
                buttons = ()  # a button that can only be refused is not offered
            if (
                status in (OrderStatus.UNDERPAID, OrderStatus.OVERPAID)
                and order.user_id in self._policy.exempt_user_ids
            ):
                buttons += refund_buttons.offered(order, status)  # a cashier's till: the refund is an answer too
            queued.append(
                self._notice(
                    notices.OUTCOME,
                    order,
                    status=status,
                    payment=payment,
                    reason=reason,
                    buttons=buttons,
                    shop=self._policy.shop_name,
                    prompts_left=left,
                    prompts_again_at=again_at,
                    note=note,
                    **follows,
                    **({"watched": True} if watched else {}),
                )
            )
        if merchant is not None and (payment is not None or status is OrderStatus.FAILED):
            queued.append(
                notices.about_order(  # said in MERCHANT_LANGUAGE
                    notices.MERCHANT_LINE,
                    merchant,
                    order,
                    status=status,
                    payment=payment,
                    reason=reason,
                    sandbox=self._policy.sandbox,
                    reader=notices.MERCHANT_READER,
                    provider=self.provider_name,
                    buttons=refund_buttons.offered(order, status),
                    **follows,
                )
            )
        return queued

    async def _prompts_left(self, phone: str) -> tuple[int, float | None]:
        """How many more prompts this phone may get in the current hour (told with "send again"),
        and, when none, at what time the next one may go out."""
        limit = self._policy.limit_per_phone
        times = await self._store.orders_since(since=self._clock() - PHONE_WINDOW, phone=phone)
        return max(0, limit - len(times)), _limit_lifts_at(times, limit, PHONE_WINDOW)

    def _notice(self, kind: str, order: Order, **details: Any) -> Notice:
        """A notice about `order` to its own chat, said in its payer's language when it is sent."""
        return notices.about_order(
            kind,
            order.chat_id,
            order,
            sandbox=self._policy.sandbox,
            reader=order.user_id,
            provider=self.provider_name,
            **details,
        )

    # -- background work ----------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Wait for prompts being sent (tests, and a clean shutdown)."""
        await self._background.wait_idle()


def doubt_reason(error: ProviderError) -> str:
    """Why a lookup gave no verdict, as the shop is told it."""
    if isinstance(error, ProviderUnverified):
        return DOUBT_UNVERIFIED
    if isinstance(error, ProviderUnavailable):
        return DOUBT_UNREACHABLE
    return DOUBT_UNREADABLE


def _outcome_buttons(
    order: Order,
    status: OrderStatus,
    payment: Payment | None,
    follow: notices.FollowUp | None = None,
    *,
    watched: bool = False,
) -> tuple[tuple[str, str], ...]:
    """Send the prompt again after an ending without money; pay exactly the rest after too little,
    unless money on an earlier attempt (`follow`) already covers what was first asked, or the rest
    is less than iPay sends a prompt for. An order still `watched` gets the Pay Bill way round
    instead of a second prompt (if iPay gave it an account)."""
    if status.can_retry and watched:
        return ((PAYBILL_BUTTON_LABEL, paybill_button(order.id)),) if order.paybill_account != "" else ()
    if status.can_retry and status is not OrderStatus.WITHDRAWN:
        return ((RETRY_LABEL, order_button(RETRY_ORDER, order.id)),)
    if status is OrderStatus.UNDERPAID and payment is not None and payment.amount < order.amount:
        covered = follow is not None and follow.paid_before + payment.amount >= follow.asked
        too_little = order.amount - payment.amount < SMALLEST_PROMPT
        return () if covered or too_little else ((REST_LABEL, order_button(REST_ORDER, order.id)),)
    return ()
