"""Payment requests a merchant sends: a fixed amount, a link, a QR code, an inline card.

A request is paid when the money on it reaches its amount. The order of the first Confirm claims
it in the order's own insert transaction (`Store.insert_order`), so two payers racing one request
can never both be prompted; the claim lapses only when that order ends without money and is no
longer watched for late money. An order that is paid adds its money to its request in the same
transaction as the payment (`Store.finalise`), and the merchant's line goes through the outbox
with it: short of the amount the request is part-paid, and the payer's "Pay the rest" order claims
it again for exactly what is missing. The request's own message (or posted inline card) is edited
afterwards by `refresh`, from what the store says it last showed, so a restart between the two
still ends with the message saying "Paid".
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from bot.domain import (
    ORDER_ID_ALPHABET,
    MerchantRequest,
    Notice,
    Order,
    OrderStatus,
    Payment,
    RequestState,
    RequestUnavailable,
    mask_phone,
)
from bot.orders import notices
from bot.store import Store

log = logging.getLogger(__name__)

__all__ = ["NOTE_LIMIT", "TOKEN_PATTERN", "MerchantRequest", "RequestService", "RequestState", "deep_link"]

NOTE_LIMIT = 100
TOKEN_PATTERN = r"[A-Za-z0-9_-]{32}"  # secrets.token_urlsafe(24): 192 bits, Telegram's start alphabet
REQUEST_ID_LENGTH = 10
RECENT_SECONDS = 7 * 86_400.0  # /requests shows open requests and those of the last week
STANDING_START = "pay"  # t.me/<bot>?start=pay opens /pay: the shop's counter QR code


def new_request_id() -> str:
    return "R" + "".join(secrets.choice(ORDER_ID_ALPHABET) for _ in range(REQUEST_ID_LENGTH))


def new_token() -> str:
    return secrets.token_urlsafe(24)


def deep_link(bot_username: str, start: str) -> str:
    """Telegram deep linking: opens a private chat with the bot and sends `/start <start>`."""
    return f"https://t.me/{bot_username}?start={start}"


class EditOutcome(Enum):
    """What became of editing a request's message: shown, never to be shown (deleted, too old:
    given up on), or to try again on the next round."""

    SHOWN = "shown"
    GIVEN_UP = "given_up"
    RETRY = "retry"


@dataclass(frozen=True)
class RequestView:
    """A request with the order that claimed it, as /requests and the API show it."""

    request: MerchantRequest
    order: Order | None

    @property
    def being_paid(self) -> bool:
        order = self.order
        return order is not None and (
            order.status is OrderStatus.PENDING or order.status.money_received or order.next_poll_at is not None
        )

    @property
    def paid_by(self) -> tuple[str | None, str] | None:
        """Who paid (the name iPay gave, if any) and their phone, masked; None if unpaid."""
        order = self.order
        if order is None or not order.status.money_received:
            return None
        return order.payer_name, mask_phone(order.phone)


class RequestService:
    def __init__(
        self,
        store: Store,
        *,
        ttl_seconds: float,
        sandbox: bool,
        bot_username: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.ttl_seconds = ttl_seconds
        self._sandbox = sandbox
        self._bot_username = bot_username
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def link(self, request: MerchantRequest) -> str:
        return deep_link(self._bot_username(), request.token)

    def standing_link(self) -> str:
        return deep_link(self._bot_username(), STANDING_START)

    # -- making requests ------------------------------------------------------------------

    async def create(
        self,
        amount: int,
        note: str,
        *,
        source: str,
        created_by: int,
        created_by_name: str,
        chat_id: int,
        expires_in: float | None = None,
        api_key_id: str | None = None,
        posted: bool = True,
    ) -> MerchantRequest:
        now = self._clock()
        request = MerchantRequest(
            id=new_request_id(),
            token=new_token(),
            amount=amount,
            note=note,
            state=RequestState.OPEN,
            source=source,
            created_by=created_by,
            created_by_name=created_by_name,
            chat_id=chat_id,
            created_at=now,
            expires_at=now + (self.ttl_seconds if expires_in is None else expires_in),
            updated_at=now,
            posted=posted,
            api_key_id=api_key_id,
            shown_state=RequestState.OPEN.value,
        )
        await self._store.insert_pay_request(request)
        log.info("payment request %s for %s made by %s (%s)", request.id, amount, created_by, source)
        return request

    async def inline_card(self, created_by: int, created_by_name: str, amount: int, note: str) -> MerchantRequest:
        """The request behind an inline card: a new one for every answer, listed once it is posted.

        Telegram asks again as the merchant types, and may not say which card was posted
        (inline feedback is optional), so an answer never offers a card it gave before: two
        cards posted for the same amount and note are two requests, each paid on its own."""
        return await self.create(
            amount,
            note,
            source="inline",
            created_by=created_by,
            created_by_name=created_by_name,
            chat_id=created_by,
            posted=False,
        )

    async def attach_message(
        self, request_id: str, *, message_id: int | None = None, inline_message_id: str | None = None
    ) -> None:
        await self._store.set_request_message(request_id, message_id=message_id, inline_message_id=inline_message_id)

    # -- reading them ---------------------------------------------------------------------

    async def get(self, request_id: str) -> MerchantRequest | None:
        return await self._store.get_pay_request(request_id)

    async def by_token(self, token: str) -> MerchantRequest | None:
        return await self._store.pay_request_by_token(token)

    async def api_request(self, request_id: str, api_key_id: str) -> RequestView | None:
        request = await self._store.get_api_pay_request(request_id, api_key_id)
        return None if request is None else await self.view(request)

    async def view(self, request: MerchantRequest) -> RequestView:
        order = await self._store.get_order(request.order_id) if request.order_id else None
        return RequestView(request, order)

    async def latest(self, limit: int = 20) -> list[RequestView]:
        requests = await self._store.latest_pay_requests(self._clock() - RECENT_SECONDS, limit)
        return [await self.view(request) for request in requests]

    async def why_unavailable(self, request: MerchantRequest) -> RequestUnavailable | None:
        """None if the request may be paid now; otherwise why not."""
        view = await self.view(request)
        if request.state is RequestState.OPEN and view.being_paid:
            return RequestUnavailable("open", being_paid=True)
        if request.state is RequestState.OPEN and request.expires_at > self._clock():
            return None
        state = RequestState.EXPIRED if request.state is RequestState.OPEN else request.state
        return RequestUnavailable(state.value, missing=request.missing)

    async def note_of(self, request_id: str) -> str:
        """What a request is for, as its payer's receipt says it ("" without a note)."""
        request = await self.get(request_id)
        return "" if request is None else request.note

    async def why_unavailable_by_id(self, request_id: str) -> RequestUnavailable:
        """Why a request taken meanwhile cannot be paid (being paid, if nothing else says why)."""
        request = await self.get(request_id)
        reason = None if request is None else await self.why_unavailable(request)
        return reason or RequestUnavailable("open", being_paid=True)

    # -- changing them --------------------------------------------------------------------

    async def cancel(self, request_id: str) -> bool:
        return await self._store.cancel_pay_request(request_id, self._clock())

    async def notices_for(self, order: Order, status: OrderStatus, payment: Payment | None) -> list[Notice]:
        """Queued with the payment itself (same transaction): the merchant who made the request
        hears who paid it, in their private chat with the bot wherever the request was made (a
        request made in a group is paid by someone the group need not know: its message there
        only says "Paid"). REST API requests have no chat: MERCHANT_CHAT_ID hears of them anyway."""
        if payment is None or not status.money_received or order.pay_request_id is None:
            return []
        request = await self.get(order.pay_request_id)
        if request is None or request.order_id != order.id or request.chat_id == 0:
            return []
        params = {
            "request_id": request.id,
            "amount": payment.amount,
            "asked": request.amount,
            "paid_total": request.paid_amount + payment.amount,  # what is on it once this is recorded
            "note": request.note,
            "payer_name": payment.payer_name,
            "phone": mask_phone(order.phone),
            "receipt": payment.receipt_code,
            "sandbox": self._sandbox,
        }
        # Said in the language of the merchant who made the request, chosen when it is sent.
        return [Notice(request.created_by, kind=notices.REQUEST_PAID, params=params, reader=request.created_by)]

    async def refresh(self, edit: MessageEditor) -> int:
        """Expire requests whose time ran out, then edit every request message that does not show
        its request's state yet (`edit` says it, at the edge). A message that cannot be edited
        (deleted, too old) is given up on: the store still says what happened, and /requests
        shows it."""
        await self._store.expire_pay_requests(self._clock())
        edited = 0
        for request in await self._store.requests_to_show():
            try:
                outcome = await edit(request)
            except Exception:  # one request's fault never stops the others' edits
                log.exception("request %s: editing its message failed", request.id)
                continue
            if outcome is EditOutcome.RETRY:
                continue
            await self._store.mark_request_shown(request.id, request.state)
            edited += 1
        return edited


MessageEditor = Callable[[MerchantRequest], Awaitable[EditOutcome]]
