"""Delivers the outbox to Telegram: every queued notice is sent until Telegram accepts it.

An entry is marked sent only after Telegram answers, so a crash repeats at most the one
message in flight. Rate limits and network errors postpone an entry; a chat that blocked
the bot (or no longer exists) is given up on without holding up anyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from telegram import Bot
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.crashpoints import crash_point
from bot.domain import OutboxEntry
from bot.messages import keyboard
from bot.store import Store

log = logging.getLogger(__name__)

BATCH = 50
MAX_BACKOFF = 300.0


class Notifier:
    def __init__(self, store: Store, bot: Bot, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._bot = bot
        self._clock = clock
        self._lock = asyncio.Lock()
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Deliver soon; calls while a delivery runs make it run once more."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._again:
            self._again = False
            try:
                await self.deliver_due()
            except Exception:  # the next kick or sweep tries again; never kill the loop
                log.exception("outbox delivery failed")

    async def wait_idle(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def deliver_due(self) -> int:
        """Send every due entry once; returns how many Telegram accepted."""
        async with self._lock:
            delivered = 0
            while entries := await self._store.due_outbox(self._clock(), BATCH):
                for entry in entries:
                    delivered += await self._deliver(entry)
                if len(entries) < BATCH:
                    break
            return delivered

    async def _deliver(self, entry: OutboxEntry) -> int:
        try:
            await self._send(entry)
        except RetryAfter as exc:
            await self._postpone(entry, _seconds(exc.retry_after), "rate limited by Telegram")
            return 0
        except (Forbidden, BadRequest) as exc:
            log.warning("outbox %s to chat %s undeliverable: %s", entry.id, entry.notice.chat_id, exc.message)
            await self._store.mark_sent(entry.id, self._clock(), f"undeliverable: {exc.message}")
            return 0
        except TelegramError as exc:
            await self._postpone(entry, min(MAX_BACKOFF, 2.0 * 2**entry.attempts), type(exc).__name__)
            return 0
        crash_point("message_delivered")
        await self._store.mark_sent(entry.id, self._clock())
        return 1

    async def _send(self, entry: OutboxEntry) -> None:
        notice = entry.notice
        markup = keyboard(notice.buttons)
        if notice.edit_prompt and entry.prompt_message_id is not None:
            try:
                await self._bot.edit_message_text(
                    notice.text, chat_id=notice.chat_id, message_id=entry.prompt_message_id, reply_markup=markup
                )
                return
            except BadRequest as exc:  # too old, deleted, or unchanged: say it as a new message
                log.info("outbox %s: edit refused (%s), sending instead", entry.id, exc.message)
        await self._bot.send_message(notice.chat_id, notice.text, reply_markup=markup)

    async def _postpone(self, entry: OutboxEntry, delay: float, why: str) -> None:
        log.warning("outbox %s to chat %s postponed %.0f s: %s", entry.id, entry.notice.chat_id, delay, why)
        await self._store.postpone(entry.id, self._clock() + delay, why)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]
