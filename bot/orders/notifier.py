"""Delivers the outbox to Telegram: every queued notice is sent until Telegram accepts it.

Chats are served at once, each by its own worker, and each chat's messages go out in the
order they were queued. Telegram limits a group to 20 messages a minute (and may answer any
chat with 429), so one slow chat must hold up only itself: a busy merchant group never
delays a payer's receipt. An entry is marked sent only after Telegram answers, so a crash
repeats at most the messages in flight (one per chat). A rate limit or network error
postpones an entry and, behind it, the rest of that chat; a chat that blocked the bot (or
no longer exists) is given up on.

When the merchant chat falls behind (more than `DIGEST_AFTER` of its lines waiting), the
waiting lines are folded into one digest ("12 payments since 14:05: ...") instead of being
sent one by one. Only lines about other chats' orders are folded, never a payer's own messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from telegram import Bot
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.buttons import keyboard
from bot.crashpoints import crash_point
from bot.domain import Notice, OrderStatus, OutboxEntry
from bot.i18n import ENGLISH, speaking
from bot.orders import notices
from bot.orders import sentences as order_sentences
from bot.owner import sentences as owner_sentences
from bot.owner import service as owner_service
from bot.paybill import sentences as paybill_sentences
from bot.refunds import sentences as refund_sentences
from bot.reports import sentences as report_sentences
from bot.requests import sentences as request_sentences
from bot.store import Store
from bot.telegram import sentences as chat_sentences

log = logging.getLogger(__name__)

BATCH = 100  # entries one chat's worker reads at a time
MAX_CHATS = 16  # chats delivered to at once (the rate limiter paces the messages themselves)
DIGEST_AFTER = 3  # more merchant lines than this waiting: one digest instead
MIN_BACKOFF = 1.0
MAX_BACKOFF = 300.0
RENEW_CLAIM_EVERY = 30.0  # seconds: a worker renews its chat's claim (a 120 s lease) this often


@dataclass(frozen=True)
class _Delivery:
    """One message to send: a single entry, or a digest standing for several."""

    entries: tuple[OutboxEntry, ...]
    digest_text: str | None = None

    @property
    def first(self) -> OutboxEntry:
        return self.entries[0]


class _Postponed(Exception):
    """The chat's next message must wait: its worker stops until the entry is due again."""


class Notifier:
    def __init__(
        self,
        store: Store,
        bot: Bot,
        *,
        clock: Callable[[], float] = time.time,
        merchant_chat_id: int | None = None,
        max_chats: int = MAX_CHATS,
        language_of: Callable[[int | None], Awaitable[str]] | None = None,
    ) -> None:
        self._store = store
        self._bot = bot
        self._clock = clock
        self._merchant_chat_id = merchant_chat_id
        self._max_chats = max_chats
        self._language_of = language_of
        self._again = False
        self._task: asyncio.Task[None] | None = None
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._finishing: set[asyncio.Task[None]] = set()  # workers letting their chat go

    def kick(self) -> None:
        """Deliver soon; calls while the dispatcher runs make it run once more."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._dispatch())

    async def _dispatch(self) -> None:
        """Start a worker for every chat with a due message (up to `max_chats` at once)."""
        while self._again:
            self._again = False
            try:
                await self._start_workers()
            except Exception:  # the next kick or sweep tries again; never kill the loop
                log.exception("outbox dispatch failed")

    async def _start_workers(self) -> None:
        free = self._max_chats - len(self._workers)
        if free <= 0:
            return  # a worker that ends kicks again
        # Claimed: with several instances on one database, a chat's outbox is delivered by one.
        chats = await self._store.claim_chats(self._clock(), free + len(self._workers))
        # Who is busy is read after the claim, not before: a worker that let its chat go while the
        # claim was on its way may have lost the chat to it (a new message came meanwhile). A chat
        # claimed and neither served nor let go would stay claimed by this live instance, which
        # every other instance respects, until the lease ran out: minutes of silence for it.
        for chat_id in chats:
            if chat_id in self._workers:
                continue  # its worker goes on, and lets the chat go when done
            if len(self._workers) < self._max_chats:
                self._workers[chat_id] = asyncio.get_running_loop().create_task(self._serve_chat(chat_id))
            else:
                await self._store.release_chat(chat_id)

    async def wait_idle(self) -> None:
        """Wait until nothing is being delivered (tests, and a clean shutdown)."""
        while running := [
            t for t in (self._task, *self._workers.values(), *self._finishing) if t is not None and not t.done()
        ]:
            await asyncio.gather(*(asyncio.shield(t) for t in running), return_exceptions=True)

    # -- one chat -------------------------------------------------------------------------

    async def _serve_chat(self, chat_id: int) -> None:
        """Send this chat's due messages in order until none is left or one must wait, renewing
        the chat's claim as it goes; if another instance took the claim over, stop."""
        failed = False
        renewed = self._clock()
        try:
            while entries := await self._store.chat_outbox(chat_id, self._clock(), BATCH):
                for delivery in await self._plan(entries):
                    if self._clock() - renewed >= RENEW_CLAIM_EVERY:
                        if not await self._store.renew_chat(chat_id, self._clock()):
                            log.warning("chat %s was taken over by another instance: stopping here", chat_id)
                            return
                        renewed = self._clock()
                    if not await self._deliver(delivery):
                        break  # the chat's waiting entries changed: read them again
        except _Postponed:
            pass
        except Exception:  # this chat's problem; the next sweep's kick tries it again
            failed = True
            log.exception("outbox delivery to chat %s failed", chat_id)
        finally:
            # No longer busy before the chat is let go: a claim that gets the chat once it is let go
            # must find it free to serve (see `_start_workers`); one made while it was busy, this release undoes.
            task = self._workers.pop(chat_id)
            self._finishing.add(task)
            try:
                await self._store.release_chat(chat_id)
            except Exception:  # the claim lapses on its own
                log.exception("releasing chat %s failed", chat_id)
            finally:
                self._finishing.discard(task)
            if not failed:
                self.kick()  # a slot is free, and this chat may have got more while finishing

    async def _language(self, entry: OutboxEntry) -> str:
        """The entry's reader's language, looked up when it is sent (a change meanwhile counts)."""
        return ENGLISH if self._language_of is None else await self._language_of(entry.notice.reader)

    async def _plan(self, entries: Sequence[OutboxEntry]) -> list[_Delivery]:
        """The messages for a chat's due entries, in order. In the merchant chat, more than
        `DIGEST_AFTER` lines fold into a digest that takes the place of the first of them."""
        lines = [e for e in entries if self._is_merchant_line(e)]
        if len(lines) <= DIGEST_AFTER:
            return [_Delivery((e,)) for e in entries]
        digests, start = [], 0
        with speaking(await self._language(lines[0])):
            folded = order_sentences.merchant_digest([render_notice(e.notice) for e in lines], lines[0].created_at)
        for count, text in folded:
            digests.append(_Delivery(tuple(lines[start : start + count]), text))
            start += count
        plan: list[_Delivery] = []
        for entry in entries:
            if entry is lines[0]:
                plan += digests
            elif not self._is_merchant_line(entry):
                plan.append(_Delivery((entry,)))
        return plan

    def _is_merchant_line(self, entry: OutboxEntry) -> bool:
        """A line to the merchant chat about another chat's order (or an API order): the
        merchant's copy, which may be folded. A payer's own messages never are. A line's
        "↩️ Refund" button may go in a digest: /refund and /orders still reach the order."""
        notice = entry.notice
        return (
            self._merchant_chat_id is not None
            and notice.chat_id == self._merchant_chat_id
            and entry.order_id is not None
            and entry.order_chat_id != notice.chat_id
            and not notice.edit_prompt
            and all(data.startswith("refund:") for _label, data in notice.buttons)
        )

    async def _deliver(self, delivery: _Delivery) -> bool:
        """Send one message; False if the rest of the chat's plan no longer holds."""
        first = delivery.first
        ids = [e.id for e in delivery.entries]
        try:
            if delivery.digest_text is not None:
                await self._bot.send_message(first.notice.chat_id, delivery.digest_text)
            else:
                await self._send(first)
        except RetryAfter as exc:
            await self._postpone(first, _seconds(exc.retry_after), "rate limited by Telegram")
            raise _Postponed from exc
        except Forbidden as exc:  # the chat is gone for us: give up on everything it has waiting
            log.warning("outbox to chat %s undeliverable: %s", first.notice.chat_id, exc.message)
            waiting = await self._store.chat_outbox(first.notice.chat_id, self._clock(), BATCH)
            await self._store.mark_many_sent(
                sorted({*ids, *(e.id for e in waiting)}), self._clock(), f"undeliverable: {exc.message}"
            )
            return False
        except BadRequest as exc:  # this message can never be sent (the next may be)
            log.warning("outbox %s to chat %s undeliverable: %s", first.id, first.notice.chat_id, exc.message)
            await self._store.mark_many_sent(ids, self._clock(), f"undeliverable: {exc.message}")
            return True
        except TelegramError as exc:
            await self._postpone(first, min(MAX_BACKOFF, 2.0 * 2**first.attempts), type(exc).__name__)
            raise _Postponed from exc
        crash_point("message_delivered")
        await self._store.mark_many_sent(ids, self._clock(), "in a digest" if delivery.digest_text else None)
        return True

    async def _send(self, entry: OutboxEntry) -> None:
        notice = entry.notice
        with speaking(await self._language(entry)):  # the notice's words, and its buttons', in the reader's language
            text = render_notice(notice)
            markup = keyboard(notice.buttons)
        if notice.edit_prompt and entry.prompt_message_id is not None:
            try:
                await self._bot.edit_message_text(
                    text, chat_id=notice.chat_id, message_id=entry.prompt_message_id, reply_markup=markup
                )
                return
            except BadRequest as exc:  # too old, deleted, or unchanged: say it as a new message
                log.info("outbox %s: edit refused (%s), sending instead", entry.id, exc.message)
        await self._bot.send_message(notice.chat_id, text, reply_markup=markup)

    async def _postpone(self, entry: OutboxEntry, delay: float, why: str) -> None:
        delay = max(MIN_BACKOFF, delay)
        log.warning("outbox %s to chat %s postponed %.0f s: %s", entry.id, entry.notice.chat_id, delay, why)
        await self._store.postpone(entry.id, self._clock() + delay, why)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    if callable(total):
        return float(total())
    return float(value) if isinstance(value, (int, float)) else MIN_BACKOFF


# -- outbox notices, rendered when sent: each feature's sentences ------------------------------


def render_notice(notice: Notice) -> str:
    """The text of an outbox notice in the current language (the notifier chose the reader's)."""
    if notice.kind is None:
        return notice.text
    params = notice.params
    if notice.kind.startswith("refund_"):
        return refund_sentences.render(notice.kind, params)  # the refunds' own sentences
    if notice.kind == owner_service.CLOSED:
        return owner_sentences.close_report(owner_service.close_from_params(params), str(params["shop"]))
    if notice.kind.startswith("paybill_"):
        return paybill_sentences.render(notice.kind, params)  # payments made by hand to no order
    if notice.kind == notices.REQUEST_PAID:
        text = request_sentences.request_paid_notice(
            params["request_id"],
            params.get("asked", params["amount"]),  # an entry without `asked` asked for its `amount`
            params["note"],
            params["payer_name"],
            params["phone"],
            params["receipt"],
            params.get("paid_total"),
        )
        return chat_sentences.with_sandbox_tag(text, bool(params.get("sandbox")))
    if notice.kind == notices.DAILY_SUMMARY:
        rows = notices.summary_rows_from(params["rows"])
        text = report_sentences.daily_summary(
            params["shop"], params["at"], rows, params.get("in_doubt"), notices.provider_of(params)
        )
        if params.get("refunds"):
            text = refund_sentences.with_refunds(text, rows, refund_sentences.totals_from(params["refunds"]))
        if params.get("cashiers") or params.get("pending") or params.get("since"):
            text = owner_sentences.with_close_params(text, params)  # the close's blocks, under the summary
        return text
    order = notices.order_from(params["order"])
    status = OrderStatus(params["status"])
    payment = notices.payment_from(params.get("payment"))
    code = params.get("reason")
    provider = notices.provider_of(params)
    if notice.kind == notices.PROMPT_SENT:
        paybill = bool(params.get("paybill"))
        unconfirmed = bool(params.get("unconfirmed"))
        text = (
            order_sentences.prompt_unconfirmed(order, paybill, provider)
            if unconfirmed
            else order_sentences.check_phone(order)
        )
    elif notice.kind == notices.PROMPT_OUTCOME:
        text = order_sentences.prompt_outcome(order, status, in_doubt=bool(params.get("in_doubt")))
    elif notice.kind == notices.IN_DOUBT:
        text = order_sentences.in_doubt(order, provider)
    elif notice.kind == notices.MERCHANT_DOUBT:
        text = order_sentences.merchant_doubt(order, code, provider)
    elif notice.kind == notices.OUTCOME:
        shop, left, again_at = params.get("shop", ""), params.get("prompts_left"), params.get("prompts_again_at")
        follow = notices.follow_up_from(params.get("follow_up"))
        text = order_sentences.outcome(
            order,
            status,
            payment,
            code,
            shop=shop,
            prompts_left=left,
            prompts_again_at=again_at,
            follow_up=follow,
            note=params.get("note", ""),
            watched=bool(params.get("watched")),
        )
    elif notice.kind == notices.MERCHANT_LINE:
        text = order_sentences.merchant_notice(
            order, status, payment, code, notices.follow_up_from(params.get("follow_up"))
        )
    else:
        raise ValueError(f"unknown notice kind {notice.kind!r}")
    return chat_sentences.with_sandbox_tag(text, bool(params.get("sandbox")))
