"""The refund service: asks, approvals, declines, the one call to iPay, and what it came to.

Money is sacred here as everywhere: a refund is written (who asked, who approved, when) and
claimed by one instance before iPay is called, by a conditional step in the store, so a
double tap, two admins approving at once, two instances or a restart make one call at most.
iPay offers no idempotency key, so a call whose answer was never recorded (it errored, or the
process died) becomes "outcome unknown" and the admins are told to check; it is never sent
again by itself. Nothing about Telegram: notices are kinds and data (`bot.refunds.sentences`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.background import BackgroundWork
from bot.crashpoints import crash_point
from bot.domain import Notice, Order, Refund, RefundState, mask_phone
from bot.providers.base import (
    PaymentProvider,
    ProviderError,
    ProviderRefused,
    RefundAccepted,
    RefundOutcome,
    RefundResult,
    provider_name,
)
from bot.providers.limiter import DEFAULT_CALL_CEILING, CallBudget, Lane
from bot.store import Store
from bot.store.base import instance_gone

log = logging.getLogger(__name__)

CLAIM_LEASE = 120.0  # at most this long for one call to iPay (its read timeout, a queue for a call slot)
DAY = 86_400.0

# Notice kinds, rendered by `bot.refunds.sentences.render`.
CARD = "refund_card"  # to each admin: a cashier asks; Approve / Decline
PAYER = "refund_payer"  # to the payer: the money is on its way back
MERCHANT = "refund_merchant"  # the merchant chat's line
DONE = "refund_done"  # to the approver and the asker
REFUSED = "refund_refused"  # to the approver and the asker, with iPay's reason in plain words
UNKNOWN = "refund_unknown"  # to the admins: check iPay before doing anything
DECLINED = "refund_declined"  # to the asker
KINDS = (CARD, PAYER, MERCHANT, DONE, REFUSED, UNKNOWN, DECLINED)

# Why iPay said no, read from its words; said plainly by the sentences.
BALANCE_LOW, ALREADY_REFUNDED, UNKNOWN_PAYMENT, CREDENTIALS, REFUSED_OTHER = (
    "balance_low",
    "already_refunded",
    "unknown_payment",
    "credentials",
    "refused",
)
_REFUSAL_WORDS = (
    (re.compile(r"insufficient|balance|funds", re.I), BALANCE_LOW),
    (re.compile(r"already", re.I), ALREADY_REFUNDED),
    (re.compile(r"not found|no such|invalid (transaction|code)", re.I), UNKNOWN_PAYMENT),
    (re.compile(r"hash|vendor|\bvid\b", re.I), CREDENTIALS),
)
# Why the outcome is unknown: no answer to the call, the bot stopped during it, or the provider
# accepted it and its result did not come in time (or the provider gave up on it).
NO_ANSWER, STOPPED, NO_RESULT = "no_answer", "stopped", "no_result"
# How long an accepted refund's result may take (Daraja's reversal result usually comes within a
# minute); past it, the admins hear it is not confirmed, never that it is done.
RESULT_WAIT = 30 * 60.0


def _shillings(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def refusal_reason(words: str) -> str:
    for pattern, code in _REFUSAL_WORDS:
        if pattern.search(words):
            return code
    return REFUSED_OTHER


class RefundRefused(Exception):
    """A refund cannot start (or be answered) now: `code` says why, `data` what the words need.

    Codes: not_found, not_paid, too_old, asked, sending, done, unknown, answered (a card
    someone else answered first)."""

    def __init__(self, code: str, **data: Any) -> None:
        super().__init__(code)
        self.code = code
        self.data = data


@dataclass(frozen=True)
class Person:
    """Who asks or approves: a Telegram user (or an API key, id 0) as the merchant should see
    them, and the chat where they hear the outcome (0: none)."""

    user_id: int
    name: str
    chat_id: int


@dataclass(frozen=True)
class RefundPolicy:
    admin_ids: frozenset[int]
    merchant_chat_id: int | None
    max_age_days: int = 30
    sandbox: bool = False


class RefundService:
    def __init__(
        self,
        store: Store,
        provider: PaymentProvider,
        policy: RefundPolicy,
        *,
        clock: Callable[[], float] = time.time,
        on_notices: Callable[[], None] = lambda: None,
        budget: CallBudget | None = None,
    ) -> None:
        """`budget`: the provider calls in flight, shared with the payment service (a refund
        takes a slot in the prompts' lane, as a person waits on it)."""
        self._store = store
        self._provider = provider
        self._budget = budget or CallBudget(DEFAULT_CALL_CEILING)
        self._policy = policy
        self._clock = clock
        self._on_notices = on_notices
        self._background = BackgroundWork("a refund call")

    @property
    def provider_name(self) -> str:
        """The running provider's name, for the sentences that name who refunds."""
        return provider_name(self._provider)

    def now(self) -> float:
        return self._clock()

    # -- reading -----------------------------------------------------------------------

    async def refund_of(self, order_id: str) -> Refund | None:
        return await self._store.get_refund(order_id)

    async def refunds_of(self, order_ids: Iterable[str]) -> dict[str, Refund]:
        return await self._store.refunds_of(list(order_ids))

    async def waiting(self, limit: int = 50) -> list[Refund]:
        """Cashiers' asks no admin has answered yet, the oldest first (the back office's list)."""
        return await self._store.refunds_waiting(limit)

    async def refundable(self, order_id: str) -> tuple[Order, Refund | None]:
        """The order and its refund so far, if a refund may start now; else `RefundRefused`."""
        order = await self._store.get_order(order_id)
        if order is None:
            raise RefundRefused("not_found", order_id=order_id)
        refund = await self._store.get_refund(order.id)
        self._check(order, refund)
        return order, refund

    def _check(self, order: Order, refund: Refund | None) -> None:
        if not order.status.money_received or not order.receipt_code or not order.paid_amount:
            raise RefundRefused("not_paid", order_id=order.id, status=order.status.value)
        if not self._provider.refunds_ready:
            raise RefundRefused("not_set_up", order_id=order.id, provider=self.provider_name)
        paid_at = order.paid_at or order.created_at
        if self._clock() - paid_at > self._policy.max_age_days * DAY:
            raise RefundRefused(
                "too_old",
                order_id=order.id,
                paid_at=paid_at,
                days=self._policy.max_age_days,
                provider=self.provider_name,
            )
        if refund is not None and not refund.state.reopenable and refund.state is not RefundState.ASKED:
            raise RefundRefused(
                refund.state.value,
                order_id=order.id,
                at=refund.done_at or refund.updated_at,
                provider=self.provider_name,
            )

    # -- a cashier asks, an admin answers ----------------------------------------------

    async def ask(self, order_id: str, asker: Person, *, ask_again: bool = False) -> Refund:
        """A cashier's ask: written with a card to every admin, in one transaction."""
        order, refund = await self.refundable(order_id)
        if refund is not None and refund.state is RefundState.ASKED:
            raise RefundRefused("asked", order_id=order.id)
        now = self._clock()
        asked = self._new(order, asker, now, ask_again=ask_again)
        cards = [self._card(admin, order, asked) for admin in sorted(self._policy.admin_ids)]
        if not await self._store.ask_refund(asked, cards):
            raise await self._taken(order.id)
        log.info("refund of order %s asked by user %s", order.id, asker.user_id)
        self._on_notices()
        return asked

    async def decline(self, order_id: str, admin: Person) -> Refund:
        refund = await self._store.get_refund(order_id)
        if refund is None or refund.state is not RefundState.ASKED:
            raise await self._taken(order_id)
        now = self._clock()
        declined = dataclasses.replace(
            refund, state=RefundState.DECLINED, approved_by_id=admin.user_id, approved_by=admin.name, approved_at=now
        )
        order = await self._store.get_order(order_id)
        told = [self._told(DECLINED, chat, reader, order, declined) for chat, reader in self._askers(declined)]
        if order is None or not await self._store.decline_refund(order_id, admin.user_id, admin.name, now, told):
            raise await self._taken(order_id)
        self._on_notices()
        return declined

    async def approve(self, order_id: str, admin: Person, *, answering_ask: bool, ask_again: bool = False) -> Refund:
        """An admin's yes: a waiting ask approved (`answering_ask`), or the admin's own refund.
        The refund is claimed before iPay is called; only the one claim that wins calls it
        (in the background: the outcome is told through the outbox)."""
        order, refund = await self.refundable(order_id)
        now = self._clock()
        if answering_ask:
            if refund is None or refund.state is not RefundState.ASKED:
                raise await self._taken(order_id)
            base = refund
        elif refund is not None and refund.state is RefundState.ASKED:
            base = refund  # the cashier asked first: they hear the outcome too
        else:
            base = self._new(order, admin, now, ask_again=ask_again)
        claimed = dataclasses.replace(
            base,
            state=RefundState.SENDING,
            approved_by_id=admin.user_id,
            approved_by=admin.name,
            approved_at=now,
            updated_at=now,
            claim_until=now + CLAIM_LEASE,
            done_at=None,
            reason=None,
            detail=None,
        )
        if not await self._store.claim_refund(claimed, [], approving_ask=answering_ask):
            raise await self._taken(order_id)
        log.info("refund of order %s approved by user %s: calling iPay", order.id, admin.user_id)
        self._background.spawn(self._send(order, claimed))
        return claimed

    async def api_refund(self, order: Order, caller: str, key_hash: str) -> tuple[Refund, bool]:
        """A REST API key's refund of its own order (no admin approval: API_REFUNDS allows it).
        The same Idempotency-Key returns the same refund (True: replayed) instead of a second."""
        refund = await self._store.get_refund(order.id)
        if refund is not None and refund.key_hash == key_hash:
            return refund, True
        self._check(order, refund)
        now = self._clock()
        api = Person(0, caller, 0)
        claimed = dataclasses.replace(
            self._new(order, api, now),
            state=RefundState.SENDING,
            approved_by_id=0,
            approved_by=caller,
            approved_at=now,
            source="api",
            key_hash=key_hash,
            claim_until=now + CLAIM_LEASE,
        )
        if not await self._store.claim_refund(claimed, [], approving_ask=False):
            again = await self._store.get_refund(order.id)
            if again is not None and again.key_hash == key_hash:  # the same request, sent twice at once
                return again, True
            raise await self._taken(order.id)
        self._background.spawn(self._send(order, claimed))
        return claimed, False

    async def _taken(self, order_id: str) -> RefundRefused:
        """Someone else's step got in first: say where the refund stands now."""
        refund = await self._store.get_refund(order_id)
        if refund is None:
            return RefundRefused("not_found", order_id=order_id)
        if refund.state is RefundState.DECLINED:
            return RefundRefused("answered", order_id=order_id, by=refund.approved_by or "")
        return RefundRefused(
            refund.state.value, order_id=order_id, at=refund.done_at or refund.updated_at, provider=self.provider_name
        )

    # -- the one call ------------------------------------------------------------------

    async def _send(self, order: Order, refund: Refund) -> None:
        """Call iPay once for a claimed refund and record what it came to, with its messages."""
        state, reason, detail, funds = RefundState.DONE, None, None, None
        try:
            done = await self._budget.call(
                Lane.PROMPT, self._provider.refund(refund.receipt_code, refund.amount, order.id)
            )
            if isinstance(done, RefundAccepted):
                await self._await_result(order, done)
                return
            funds = (done.c2b_funds, done.b2c_funds)
            if done.amount and _shillings(done.amount) != refund.amount:
                log.warning(
                    "refund of order %s: iPay refunded %s, the payment was %d", order.id, done.amount, refund.amount
                )
        except ProviderRefused as refusal:
            state, reason, detail = RefundState.REFUSED, refusal_reason(refusal.reason), refusal.reason
        except ProviderError as error:  # no clean answer: the money may have moved
            state, reason, detail = RefundState.UNKNOWN, NO_ANSWER, error.reason
        crash_point("refund_answered")
        now = self._clock()
        ended = dataclasses.replace(
            refund,
            state=state,
            done_at=now,
            updated_at=now,
            reason=reason,
            detail=detail,
            c2b_funds=funds[0] if funds else None,
            b2c_funds=funds[1] if funds else None,
        )
        told = self._outcome_notices(order, ended)
        if await self._store.finish_refund(order.id, state, now, told, reason=reason, detail=detail, funds=funds):
            log.info("refund of order %s: %s", order.id, state.value)
            self._on_notices()
        else:
            log.warning("refund of order %s: answer %s not recorded (no longer this instance's)", order.id, state)

    async def _await_result(self, order: Order, accepted: RefundAccepted) -> None:
        """The provider took the refund and answers later: nobody is told anything yet (the
        approver heard it is on its way); the result, or its absence by `RESULT_WAIT`, decides."""
        crash_point("refund_answered")
        now = self._clock()
        if await self._store.await_refund_result(order.id, now, now + RESULT_WAIT, accepted.reference):
            log.info("refund of order %s accepted by %s: its result comes later", order.id, self.provider_name)
        else:
            log.info("refund of order %s: its result came before its acceptance was recorded", order.id)

    async def take_result(self, result: RefundResult) -> bool:
        """An accepted refund's result, heard by any instance: finished through the same notices
        as a refund done (or refused) at once. False for a result already recorded, or for
        another request than the one this refund's call made."""
        refund = await self._store.get_refund(result.order_id)
        order = await self._store.get_order(result.order_id)
        if refund is None or order is None or refund.state not in (RefundState.SENDING, RefundState.UNKNOWN):
            return False
        reference = await self._store.refund_reference(result.order_id)
        if reference and result.reference and reference != result.reference:
            log.warning("refund of order %s: a result for another request (%s) is ignored", order.id, result.reference)
            return False
        if result.outcome is RefundOutcome.DONE:
            state, reason, detail = RefundState.DONE, None, None
        elif result.outcome is RefundOutcome.REFUSED:
            state, reason, detail = RefundState.REFUSED, refusal_reason(result.words), result.words
        else:
            state, reason, detail = RefundState.UNKNOWN, NO_RESULT, result.words
        now = self._clock()
        ended = dataclasses.replace(refund, state=state, done_at=now, updated_at=now, reason=reason, detail=detail)
        told = self._outcome_notices(order, ended)
        if not await self._store.record_refund_result(order.id, state, now, told, reason=reason, detail=detail):
            return False
        log.info("refund of order %s: %s (its result came)", order.id, state.value)
        self._on_notices()
        return True

    async def sweep_overdue(self) -> int:
        """Accepted refunds whose result has not come by its due time: told to the admins as not
        confirmed ("outcome unknown"), never as done. Returns how many."""
        now = self._clock()
        marked = 0
        for refund in await self._store.overdue_refund_results(now):
            order = await self._store.get_order(refund.order_id)
            if order is None:
                continue
            unknown = dataclasses.replace(refund, state=RefundState.UNKNOWN, reason=NO_RESULT, done_at=now)
            if await self._store.refund_result_overdue(order.id, now, NO_RESULT, self._unknown_notices(order, unknown)):
                log.warning("refund of order %s: its result did not come in time: not confirmed", order.id)
                marked += 1
        if marked:
            self._on_notices()
        return marked

    def _outcome_notices(self, order: Order, refund: Refund) -> list[Notice]:
        if refund.state is RefundState.UNKNOWN:
            return self._unknown_notices(order, refund)
        kind = DONE if refund.state is RefundState.DONE else REFUSED
        told = [self._told(kind, chat, reader, order, refund) for chat, reader in self._askers(refund)]
        if refund.state is not RefundState.DONE:
            return told  # the payer hears nothing of a refusal
        if order.has_chat:
            again = (("🔁 Send the prompt again", f"order:retry:{order.id}"),) if refund.ask_again else ()
            told.append(self._told(PAYER, order.chat_id, order.user_id, order, refund, buttons=again))
        merchant = self._policy.merchant_chat_id
        if merchant is not None and all(chat != merchant for chat, _reader in self._askers(refund)):
            told.append(self._told(MERCHANT, merchant, None, order, refund))  # unless it was done there
        return told

    def _unknown_notices(self, order: Order, refund: Refund) -> list[Notice]:
        """Every admin (in private) and the asker: check iPay; nothing is sent again by itself."""
        readers: dict[int, int | None] = {admin: admin for admin in self._policy.admin_ids}
        for chat, reader in self._askers(refund):
            readers.setdefault(chat, reader)
        return [
            self._told(UNKNOWN, chat, reader, order, refund)
            for chat, reader in sorted(readers.items(), key=lambda place: place[0])
        ]

    async def sweep_lapsed(self) -> int:
        """Calls claimed by an instance that stopped before recording iPay's answer: marked
        "outcome unknown" and told to the admins, never sent again. Returns how many."""
        now = self._clock()
        marked = 0
        # A killed process on this host is known dead at once, before its heartbeat goes stale.
        gone = [instance for instance, _mode, _beat in await self._store.live_instances(now) if instance_gone(instance)]
        for refund in await self._store.lapsed_refunds(now, gone=gone):
            order = await self._store.get_order(refund.order_id)
            if order is None:
                continue
            unknown = dataclasses.replace(refund, state=RefundState.UNKNOWN, reason=STOPPED, done_at=now)
            told = self._unknown_notices(order, unknown)
            if await self._store.refund_outcome_unknown(refund.order_id, now, STOPPED, told, gone=gone):
                log.warning("refund of order %s: outcome unknown (its call's answer was never recorded)", order.id)
                marked += 1
        if marked:
            self._on_notices()
        return marked

    # -- notices -----------------------------------------------------------------------

    def _new(self, order: Order, asker: Person, now: float, *, ask_again: bool = False) -> Refund:
        return Refund(
            order_id=order.id,
            state=RefundState.ASKED,
            amount=order.paid_amount or 0,
            receipt_code=order.receipt_code or "",
            asked_by_id=asker.user_id,
            asked_by=asker.name,
            asked_chat_id=asker.chat_id,
            asked_at=now,
            updated_at=now,
            ask_again=ask_again,
        )

    @staticmethod
    def _askers(refund: Refund) -> list[tuple[int, int | None]]:
        """Where the asker and the approver hear the outcome: the asker's chat, and the approver
        in private (once, if that is the same chat)."""
        places: dict[int, int | None] = {}
        if refund.asked_chat_id:
            places[refund.asked_chat_id] = refund.asked_by_id or None
        if refund.approved_by_id:
            places.setdefault(refund.approved_by_id, refund.approved_by_id)
        return list(places.items())

    def _card(self, admin: int, order: Order, refund: Refund) -> Notice:
        from bot.refunds.buttons import APPROVE_LABEL, DECLINE_LABEL, data

        buttons = ((APPROVE_LABEL, data("ok", order.id)), (DECLINE_LABEL, data("no", order.id)))
        return self._told(CARD, admin, admin, order, refund, buttons=buttons)

    def _told(
        self,
        kind: str,
        chat_id: int,
        reader: int | None,
        order: Order | None,
        refund: Refund,
        *,
        buttons: tuple[tuple[str, str], ...] = (),
    ) -> Notice:
        return Notice(chat_id, "", buttons, kind=kind, params=self._params(order, refund), reader=reader)

    def _params(self, order: Order | None, refund: Refund) -> dict[str, Any]:
        """Plain JSON values: what the sentences need, as it was when queued."""
        return {
            "order_id": refund.order_id,
            "amount": refund.amount,
            "asked": order.amount if order else refund.amount,
            "phone": mask_phone(order.phone) if order else "",
            "network": order.network.value if order else "mpesa",
            "payer": (order.payer_name or "") if order else "",
            "receipt": refund.receipt_code,
            "paid_at": (order.paid_at or order.created_at) if order else refund.asked_at,
            "asked_by": refund.asked_by,
            "approved_by": refund.approved_by or "",
            "reason": refund.reason,
            "detail": refund.detail,
            "c2b": refund.c2b_funds,
            "b2c": refund.b2c_funds,
            "ask_again": refund.ask_again,
            "sandbox": self._policy.sandbox,
            "provider": self.provider_name,
        }

    # -- background work ---------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Wait for refund calls in flight (tests, and a clean shutdown)."""
        await self._background.wait_idle()
