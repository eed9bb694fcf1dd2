"""The /pay conversation's drafts: what each payer has told the bot so far, kept in the store.

The store is the only copy. Every step is written before the bot answers it, so a restart
(even kill -9) resumes at the last step the payer saw answered, and there is no in-memory
conversation state that could drift from the database. The idle timeout is judged from the
time of the last write, so it keeps counting while the bot is down.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable

from bot.domain import Draft, DraftStep, Network
from bot.store import Store

__all__ = ["ConversationService", "Draft", "DraftChange", "DraftStep", "TimedOut"]

FORGET_AFTER = 86_400.0  # a draft abandoned this long past its timeout is purged at start-up


@dataclasses.dataclass(frozen=True)
class TimedOut:
    """The payer came back after the conversation's timeout: it was dropped, tell them so
    (and take the buttons off its summary)."""

    draft: Draft


@dataclasses.dataclass(frozen=True)
class DraftChange:
    """What one step changes in a draft; a field left None keeps the draft's value. No change
    at all still writes the draft: the payer is still here, so its timeout starts again.

    A phone comes with what it waits for, if anything: `waits_for` (the cancelled order whose
    prompt may still be on it, and when that prompt ends); `send_at` and `after_order_id` set
    them for a Confirm that found the phone busy."""

    step: DraftStep | None = None
    phone: str | None = None
    network: Network | None = None
    amount: int | None = None
    summary_key: str | None = None
    waits_for: tuple[str, float] | None = None
    send_at: float | None = None
    after_order_id: str | None = None
    requested_by: str | None = None


STILL_HERE = DraftChange()


def _revision() -> str:
    return secrets.token_hex(6)


def new_summary_key() -> str:
    """Names one summary; its buttons carry it, so an older summary's press is stale."""
    return secrets.token_hex(4)


class ConversationService:
    def __init__(self, store: Store, timeout_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._started_at = clock()

    def now(self) -> float:
        return self._clock()

    def seconds_left(self, draft: Draft) -> float:
        return self.timeout_seconds - (self._clock() - draft.updated_at)

    def _idle_too_long(self, draft: Draft) -> bool:
        """Past the timeout; a Confirm waiting for its phone is not idle, whatever its age."""
        return draft.step is not DraftStep.WAITING and self.seconds_left(draft) <= 0

    async def start(
        self, chat_id: int, user_id: int, *, pay_request_id: str | None = None, amount: int = 0
    ) -> tuple[Draft, Draft | None]:
        """A new conversation at the phone step, replacing any this person had in this chat;
        opened from a merchant's payment request, it carries the request and its fixed amount.
        Also returns the draft it replaced, exactly as it was replaced: one a sweep took a
        moment before (a waiting Confirm being sent) was not replaced, and is not returned."""
        draft = Draft(
            chat_id, user_id, DraftStep.PHONE, _revision(), self._clock(), amount=amount, pay_request_id=pay_request_id
        )
        old = await self._store.get_draft(chat_id, user_id)
        if old is not None and await self._store.put_draft(draft, replacing=old.revision):
            return draft, old
        await self._store.put_draft(draft)
        return draft, None

    async def live(self, chat_id: int, user_id: int) -> Draft | None:
        """The conversation in progress, if any and not past its timeout (changes nothing)."""
        draft = await self._store.get_draft(chat_id, user_id)
        return draft if draft is not None and not self._idle_too_long(draft) else None

    async def resume(self, chat_id: int, user_id: int) -> Draft | TimedOut | None:
        """The conversation to continue; one idle past its timeout is dropped and reported as
        `TimedOut` (once: the next call finds nothing)."""
        draft = await self._store.get_draft(chat_id, user_id)
        if draft is None:
            return None
        if self._idle_too_long(draft):
            dropped = await self._store.drop_draft(chat_id, user_id, revision=draft.revision)
            return TimedOut(draft) if dropped else None
        return draft

    async def current(self, chat_id: int, user_id: int) -> Draft | None:
        """The stored draft as it is, timed out or not (what a new /pay replaces)."""
        return await self._store.get_draft(chat_id, user_id)

    async def advance(self, draft: Draft, change: DraftChange = STILL_HERE) -> Draft | None:
        """Write the next state of `draft` (and restart its timeout). None if the draft was
        dropped meanwhile (the timeout fired and told the payer): the step is not taken."""
        waiting_for, when = draft.after_order_id, draft.send_at
        if change.phone is not None:
            waiting_for, when = change.waits_for if change.waits_for is not None else (None, None)
        updated = dataclasses.replace(
            draft,
            revision=_revision(),
            updated_at=self._clock(),
            step=draft.step if change.step is None else change.step,
            phone=draft.phone if change.phone is None else change.phone,
            network=draft.network if change.network is None else change.network,
            amount=draft.amount if change.amount is None else change.amount,
            summary_key=draft.summary_key if change.summary_key is None else change.summary_key,
            after_order_id=waiting_for if change.after_order_id is None else change.after_order_id,
            send_at=when if change.send_at is None else change.send_at,
            requested_by=draft.requested_by if change.requested_by is None else change.requested_by,
        )
        written = await self._store.put_draft(updated, replacing=draft.revision)
        return updated if written else None

    async def shown(self, draft: Draft, message_id: int) -> Draft:
        """The message that answered this step: the one whose buttons a later step takes away."""
        await self._store.set_draft_message(draft.chat_id, draft.user_id, draft.revision, message_id)
        return dataclasses.replace(draft, message_id=message_id)

    async def waiting_due(self) -> list[Draft]:
        """Confirmed payments whose phone should be free by now (see `DraftStep.WAITING`)."""
        return await self._store.waiting_drafts_due(self._clock())

    async def finish(self, draft: Draft) -> bool:
        """Forget a conversation that ended (confirmed or cancelled); False if it was already gone."""
        return await self._store.drop_draft(draft.chat_id, draft.user_id, revision=draft.revision)

    async def timed_out_since_start(self) -> list[Draft]:
        """Drafts whose time ran out while this process was running (the sweep tells their
        payers). Those that ran out while the bot was down wait for their payer's next step."""
        timeout = self.timeout_seconds
        return await self._store.drafts_written_between(self._started_at - timeout, self._clock() - timeout)

    async def purge_abandoned(self) -> None:
        """Forget drafts abandoned long ago: their payer never came back to be told."""
        await self._store.purge_drafts(self._clock() - self.timeout_seconds - FORGET_AFTER)
