"""Who reads which language: each person's, kept in the store; the merchant chat's, from the settings.

A person's language is taken from Telegram's `language_code` the first time they are seen
(`sw...` reads Kiswahili) and changed only by their own choice (/language, /lugha).

On SQLite, languages are cached in memory: one process serves a SQLite file (a second is
refused at start-up), so every change goes through this cache and it never disagrees with the
store; most updates cost no database read. On PostgreSQL several instances share the store
and a person may switch on any of them, so each update reads the language afresh (one indexed
read): a cached one could be another instance's old answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.i18n import language_for, supported
from bot.store import Store

CACHE_LIMIT = 100_000  # people remembered in memory; past it the cache starts again (the store keeps all)


class Languages:
    def __init__(self, store: Store, merchant_language: str, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self.merchant_language = supported(merchant_language)
        self._cache: dict[int, str] = {}
        self._caching = not store.shareable  # only this process writes the store (see above)

    def _remember(self, user_id: int, language: str) -> str:
        if not self._caching:
            return language
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[user_id] = language
        return language

    async def of_person(self, user_id: int, language_code: str | None) -> str:
        """The language of someone who just wrote or pressed a button (first contact: Telegram's)."""
        known = self._cache.get(user_id)
        if known is not None:
            return known
        stored = await self._store.user_language(user_id)
        if stored is None:
            stored = await self._store.first_contact(user_id, language_for(language_code), self._clock())
        return self._remember(user_id, supported(stored))

    async def of_reader(self, reader: int | None) -> str:
        """The language an outbox entry is said in: its reader's, or the merchant chat's."""
        if reader is None:
            return self.merchant_language
        known = self._cache.get(reader)
        if known is not None:
            return known
        stored = await self._store.user_language(reader)
        return self._remember(reader, supported(stored)) if stored is not None else supported(None)

    async def choose(self, user_id: int, language: str) -> str:
        language = supported(language)
        await self._store.choose_language(user_id, language, self._clock())
        return self._remember(user_id, language)
