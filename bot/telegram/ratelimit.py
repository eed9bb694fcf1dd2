"""Keeps the bot within Telegram's limits without one chat's 429 stopping every other chat.

python-telegram-bot's `AIORateLimiter` throttles (30 messages a second overall, 20 a minute
per group) and retries a 429 after its `retry_after`, but while it waits it halts *every*
request, as its documentation says: a merchant group answered "retry after 30" would hold
every payer's receipt for 30 s. This limiter throttles the same way, with the same
`aiolimiter` buckets, but a 429 pauses only the chat it came from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.constants import FloodLimit
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

_Result = bool | dict[str, Any] | list[dict[str, Any]]
_MAX_GROUP_LIMITERS = 512  # past this, forget groups whose minute is over (their bucket is full again)
_NO_CHAT = ""  # getUpdates, setMyCommands, ...: requests to no chat share one pause


class PerChatRateLimiter(BaseRateLimiter[int]):
    """At most `overall_per_second` messages to chats, `group_per_minute` to any one group; a 429
    is retried (up to `max_retries` times) after its `retry_after`, pausing only its own chat."""

    def __init__(
        self,
        *,
        max_retries: int,
        overall_per_second: float = FloodLimit.MESSAGES_PER_SECOND,
        group_per_minute: float = FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
        group_window: float = 60.0,  # seconds; shorter only in tests
    ) -> None:
        self._max_retries = max_retries
        self._overall = AsyncLimiter(overall_per_second, 1)
        self._group_per_minute = group_per_minute
        self._group_window = group_window
        self._groups: dict[str, AsyncLimiter] = {}
        self._paused_until: dict[str, float] = {}

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, _Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> _Result:
        retries = self._max_retries if rate_limit_args is None else rate_limit_args
        chat_id = data.get("chat_id")
        chat = _NO_CHAT if chat_id is None else str(chat_id)
        loop = asyncio.get_running_loop()
        for attempt in range(retries + 1):
            # Sleeps to a deadline, not polling: another 429 for this chat may push the deadline back.
            while (wait := self._paused_until.get(chat, 0.0) - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            self._paused_until.pop(chat, None)
            try:
                async with AsyncExitStack() as limits:
                    if chat_id is not None:
                        if _is_group(chat):
                            await limits.enter_async_context(self._group(chat))
                        await limits.enter_async_context(self._overall)
                    return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == retries:
                    raise
                pause = _seconds(exc.retry_after) + 0.1
                log.info("Telegram rate-limited %s: that chat waits %.1f s", endpoint, pause)
                self._paused_until[chat] = max(self._paused_until.get(chat, 0.0), loop.time() + pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _group(self, chat: str) -> AsyncLimiter:
        if chat not in self._groups and len(self._groups) >= _MAX_GROUP_LIMITERS:
            for key, limiter in list(self._groups.items()):
                if limiter.has_capacity(limiter.max_rate):
                    del self._groups[key]
        return self._groups.setdefault(chat, AsyncLimiter(self._group_per_minute, self._group_window))


def _is_group(chat: str) -> bool:
    """Groups and channels have negative ids (or an @username); private chats positive ids."""
    return chat.startswith("-") or not chat.isdigit()


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    if callable(total):
        return float(total())
    return float(value) if isinstance(value, (int, float)) else 1.0
