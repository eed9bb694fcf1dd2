"""Update processing: different chats at once, one chat's updates strictly in order.

python-telegram-bot processes one update at a time by default, so every customer waits for
every other customer's database round trips. Fully concurrent processing would let two taps
of the same Confirm button run side by side in one conversation. This processor gives each
chat its own queue: chats run concurrently, a chat's updates run one after another.

Telegram delivers an update again when it did not get a 200 for it in time (a slow or restarting
webhook, a lost answer to getUpdates). Every update's id is written to the store before any
handler sees it (`drop_repeats`, the first handler group), so a repeat is dropped, whichever
instance it reaches: a /request delivered twice makes one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from telegram import Update
from telegram.ext import ApplicationHandlerStop, BaseUpdateProcessor, ContextTypes

from bot.services import services_of

log = logging.getLogger(__name__)

REMEMBER_UPDATES = 86_400.0  # seconds: Telegram keeps an update it could not deliver for a day
FORGET_UPDATES_EVERY = 3600.0  # seconds between purges of update ids older than that


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int = 1024) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        # Set at start-up from the store: on PostgreSQL a lock every instance sees, so a chat's
        # updates landing on different instances still run one after another.
        self.chat_lock: Callable[[int], AbstractAsyncContextManager[None]] = lambda chat_id: contextlib.nullcontext()

    async def do_process_update(self, update: object, coroutine: Awaitable[object]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        key = chat.id
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock, self.chat_lock(key):
                await coroutine
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:  # forget idle chats so the maps do not grow forever
                del self._waiting[key], self._locks[key]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


async def drop_repeats(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The first handler of every update: one whose id was handled already goes no further."""
    if not isinstance(update, Update):
        return
    services = services_of(context)
    if not await services.store.first_delivery(update.update_id, services.payments.now()):
        log.info("update %s was delivered again: dropped", update.update_id)
        raise ApplicationHandlerStop


async def forget_seen_updates(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The daily purge of remembered update ids (a job)."""
    services = services_of(context)
    await services.store.forget_updates(services.payments.now() - REMEMBER_UPDATES)
