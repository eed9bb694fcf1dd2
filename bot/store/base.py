"""The store's one interface, and the SQL both back ends share.

`Store` holds every query, written once with `?` placeholders; a back end (`SqliteStore`,
`PostgresStore`) supplies the connection: reads, a write transaction, a draft write that does
not wait for the disk, a streamed read, and its own migration lock. Every state change is one
transaction that also queues the messages telling it (the outbox), so a crash can never
record a payment without its message or send a message for a change that did not happen.
State changes are conditional updates: finalising an order twice changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from bot.domain import (
    CashierRow,
    DayClose,
    Draft,
    DraftGone,
    ManualPaymentRecord,
    MerchantRequest,
    Network,
    Notice,
    Order,
    OrderStatus,
    OutboxEntry,
    PaidMeanwhile,
    Payment,
    PhoneBusy,
    Refund,
    RefundState,
    RequestState,
    RequestTaken,
    SummaryRow,
)
from bot.store.rows import (
    _DRAFT_COLUMNS,
    _DRAFT_UPSERT,
    _OPEN_ON_PHONE,
    _ORDER_COLUMNS,
    _ORDER_FIELDS,
    _OUTBOX_COLUMNS,
    _REFUND_COLUMNS,
    _REFUND_FIELDS,
    _REQUEST_COLUMNS,
    _REQUEST_FIELDS,
    Reschedule,
    StoreUnavailable,
    WriteFailure,
    _AlreadyRetried,
    _draft,
    _draft_values,
    _merchant_request,
    _merchant_request_values,
    _order,
    _order_values,
    _outbox_entry,
    _refund,
    _refund_values,
)

Row = Any  # sqlite3.Row or asyncpg.Record: both read by column name and by position

# A request with no payment on the way: never claimed, or its claiming order ended without money
# and is no longer watched for late money.
_REQUEST_FREE = (
    "(order_id IS NULL OR order_id IN (SELECT id FROM orders WHERE status IN "
    "('cancelled', 'failed', 'expired', 'withdrawn') AND next_poll_at IS NULL))"
)


# A refund written whole: a new row, or over one the caller's WHERE allows (an ended or waiting one).
_REFUND_UPSERT = (
    f"INSERT INTO refunds ({_REFUND_COLUMNS}) VALUES ({', '.join('?' * len(_REFUND_FIELDS))}) "
    "ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REFUND_FIELDS if name != "order_id")
)


class Tx(Protocol):
    """One open write transaction, with `?` placeholders whatever the back end."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; how many rows it changed."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


_PROBE_BYTES = 8192  # more than a page: the probe must allocate, as a new order does
HEARTBEAT_STALE = 5.0  # an instance silent this long is taken for dead: its claims lapse
SEND_LEASE = 120.0  # a sending claim, renewed every quarter of it while /transact and the push go on
LOOKUP_LEASE = 120.0  # at most this long for one lookup (iPay's read timeout, its queue for a call slot)
CHAT_LEASE = 120.0  # at most this long for one worker delivering one chat's outbox


def _free(table: str) -> str:
    """An unclaimed row, or one whose claim lapsed (its time is up, or its instance's heartbeat
    stopped). Parameters: now, then now minus the heartbeat staleness."""
    return (
        f"({table}.claimed_by IS NULL OR {table}.claim_until <= ? OR NOT EXISTS "
        f"(SELECT 1 FROM instances i WHERE i.id = {table}.claimed_by AND i.heartbeat_at > ?))"
    )


def _lapsed_claim(now: float, stale_after: float, gone: Sequence[str]) -> tuple[str, tuple[object, ...]]:
    """A refund's claim that lapsed (`_free`), or whose instance is among `gone`; and its parameters."""
    if not gone:
        return _free("refunds"), (now, now - stale_after)
    return f"({_free('refunds')} OR refunds.claimed_by IN ({', '.join('?' * len(gone))}))", (
        now,
        now - stale_after,
        *gone,
    )


def _new_instance_id() -> str:
    """Unique per process; host and pid first, so a restart on the same host can tell at once
    whether the instance that wrote a heartbeat is still running."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def instance_gone(instance_id: str) -> bool:
    """An instance of this host whose process no longer exists (killed, crashed): no need to
    wait for its heartbeat to go stale."""
    host, _, rest = instance_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# Called with a target before `Store.open` picks its back end: each may import a back end that
# is not imported up front (PostgreSQL's, with its driver), so that it is then a subclass.
_BACKEND_LOADERS: list[Callable[[Path | str], None]] = []


def load_backend_with(loader: Callable[[Path | str], None]) -> None:
    _BACKEND_LOADERS.append(loader)


class Store(ABC):
    """Orders, the outbox and /pay drafts, on SQLite or PostgreSQL (`Store.open` picks by target).

    `instance_id` names this process in claims and heartbeats: several instances may share one
    PostgreSQL database, each due order, unsent order and chat outbox served by one at a time.
    """

    instance_id: str = ""
    stale_after: float = HEARTBEAT_STALE
    send_lease: float = SEND_LEASE
    shareable: ClassVar[bool] = False  # several instances may use it at once (PostgreSQL)
    _SKIP_LOCKED: ClassVar[str] = ""  # PostgreSQL: rows another instance is claiming are passed over
    _FOR_UPDATE: ClassVar[str] = ""  # PostgreSQL: a row read to decide a write is locked until it commits

    # What fills `seq` on insert: SQLite counts on (the write lock), PostgreSQL has a sequence.
    _INSERT_ORDER: ClassVar[str]

    @classmethod
    async def open(cls, target: Path | str) -> Store:
        """The store of the back end that serves `target`: PostgreSQL for a `postgresql://` (or
        `postgres://`) URL, else SQLite at that path. The back ends are this class's subclasses,
        which `bot/store/__init__.py` imports (or has `_BACKEND_LOADERS` import when a target
        needs one); each back end's own `open` replaces this one."""
        for load in _BACKEND_LOADERS:
            load(target)
        for backend in cls.__subclasses__():
            if backend._serves(target):
                return await backend.open(target)
        raise ValueError(f"no store back end serves {target!r}")

    @staticmethod
    def _serves(target: Path | str) -> bool:
        """Whether this back end opens `target` (a path or a database URL)."""
        return False

    def __init__(self) -> None:
        self.instance_id = _new_instance_id()
        self.write_failure: WriteFailure | None = None  # the last write refused, until one works again

    # What the back end's driver raises when the database cannot take a write now (locked by
    # another process, disk full, unreachable), as opposed to a bug or a conflict the caller expects.
    _REFUSALS: ClassVar[tuple[type[Exception], ...]] = ()

    @contextlib.contextmanager
    def _write_bookkeeping(self) -> Iterator[None]:
        """Around one write: a refusal of the database is remembered as `write_failure` and raised
        as `StoreUnavailable` (the caller says "try again later", health says unhealthy); a write
        that works clears it."""
        try:
            yield
        except self._REFUSALS as exc:
            self.write_failure = WriteFailure(str(exc), time.time())
            raise StoreUnavailable(str(exc)) from exc
        self.write_failure = None

    async def probe_write(self, now: float) -> bool:
        """A real write, to learn whether writes work again after one failed. It takes the write
        lock and needs new space (a row bigger than a page, removed in the same transaction):
        a row updated in place could succeed on a full disk where a new order cannot."""
        try:
            async with self._transaction() as db:
                await db.execute(
                    "INSERT INTO write_probe (id, probed_at, pad) VALUES (1, ?, ?)", (now, bytes(_PROBE_BYTES))
                )
                await db.execute("DELETE FROM write_probe WHERE id = 1")
        except StoreUnavailable:
            return False
        return True

    @abstractmethod
    async def close(self) -> None: ...

    async def database_now(self, given: float) -> float:
        """The time heartbeats, claims and their staleness are written and judged in: one clock
        for every instance, so a host whose clock is ahead never takes a live instance for dead.
        A SQLite file has one process (its clock, `given`, is the only one); PostgreSQL answers
        with the database server's clock."""
        return given

    def chat_lock(self, chat_id: int) -> AbstractAsyncContextManager[None]:
        """Held while one update of this chat is handled. One process needs nothing more than its
        own per-chat queue; PostgreSQL back ends take a lock every instance sees."""
        return contextlib.nullcontext()

    @abstractmethod
    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """One read, outside any transaction."""

    async def _row(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def _count(self, sql: str, params: Sequence[object] = ()) -> int:
        """A `SELECT COUNT(*) ...`: always one row, one number."""
        row = await self._row(sql, params)
        return int(row[0]) if row is not None else 0

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement that is a whole state change: its own transaction (a single statement
        is atomic, and a conditional one still changes a row at most once), committed when it
        ends and waiting for the disk like `_transaction`; rows changed. One trip to the
        database instead of three (BEGIN, the statement, COMMIT), so the write lock, which
        every other write queues for, is held a third as long."""

    @abstractmethod
    async def _draft_write(self, sql: str, params: Sequence[object]) -> int:
        """One statement, atomic by itself, committed without waiting for the disk; rows changed.
        For what a power cut may lose: drafts, heartbeats, a first contact's language."""

    async def _guarded_write(
        self, sql: str, params: Sequence[object], then: Sequence[tuple[str, Sequence[Sequence[object]]]]
    ) -> bool:
        """One conditional statement and, only if it changed exactly one row, what follows from
        it (each of `then`: a statement and its rows of parameters), in one transaction waiting for
        the disk. False, changing nothing, if the condition did not hold. With nothing to follow
        (no notices to queue) it is one statement, atomic by itself: no transaction is opened
        around it, so it needs no savepoint when it shares a commit (`SqliteStore`)."""
        then = [(statement, rows) for statement, rows in then if rows]
        if not then:
            return await self._write(sql, params) == 1
        async with self._transaction() as db:
            if await db.execute(sql, params) != 1:
                return False
            for statement, rows in then:
                await db.executemany(statement, rows)
            return True

    @abstractmethod
    def _stream(self, sql: str, params: Sequence[object]) -> AsyncIterator[Row]:
        """A long read, a few hundred rows at a time."""

    @abstractmethod
    def _is_constraint_violation(self, exc: Exception) -> bool: ...

    @abstractmethod
    def _is_open_phone_violation(self, exc: Exception) -> bool:
        """The violation is of `orders_open_phone` (one open prompt per phone)."""

    # -- orders -------------------------------------------------------------------------

    async def insert_order(
        self,
        order: Order,
        *,
        retry_of: str | None = None,
        idempotency: tuple[str, str] | None = None,
        api_key_id: str | None = None,
        consumes: Draft | None = None,
        unless_paid: str | None = None,
    ) -> bool:
        """Write a new order. With `retry_of`, only if that order has not been retried yet; with
        `idempotency` (key hash, request hash), only if that key has not been used yet;
        `api_key_id` names the REST API key that asked (only it may read the order).
        Raises `PhoneBusy` if the phone has an open prompt. With `consumes`, a Confirm: its draft
        is deleted in the same transaction, or `DraftGone` if it timed out, was cancelled, replaced
        or taken meanwhile; with `unless_paid`, `PaidMeanwhile` if that (cancelled) order has
        received money: whichever comes first, the payer's cancel or the payment or this order,
        the others see it."""
        # Two chats (or instances) confirming the same phone at once must not both get a prompt
        # out: the unique index `orders_open_phone` lets the first insert in and refuses the other.
        values = (*_order_values(order), api_key_id)
        alone = idempotency is None and retry_of is None and order.pay_request_id is None
        try:
            if alone and consumes is None and unless_paid is None:
                await self._write(self._INSERT_ORDER, values)  # the order alone: one statement
            else:
                async with self._transaction() as db:
                    await self._order_allowed(db, consumes, unless_paid)
                    await db.execute(self._INSERT_ORDER, values)
                    await self._order_written(db, order, retry_of=retry_of, idempotency=idempotency)
        except _AlreadyRetried:
            return False
        except Exception as exc:
            if not self._is_constraint_violation(exc):
                raise
            if self._is_open_phone_violation(exc):  # another instance's order got in first
                raise PhoneBusy(order.phone) from None
            return False
        return True

    async def _order_allowed(self, db: Tx, consumes: Draft | None, unless_paid: str | None) -> None:
        if consumes is not None:
            deleted = await db.execute(
                "DELETE FROM drafts WHERE chat_id = ? AND user_id = ? AND revision = ?",
                (consumes.chat_id, consumes.user_id, consumes.revision),
            )
            if deleted != 1:
                raise DraftGone
        if unless_paid is not None:
            rows = await db.rows(f"SELECT status FROM orders WHERE id = ?{self._FOR_UPDATE}", (unless_paid,))
            if rows and OrderStatus(rows[0]["status"]).money_received:
                raise PaidMeanwhile(unless_paid)

    async def _order_written(
        self, db: Tx, order: Order, *, retry_of: str | None, idempotency: tuple[str, str] | None
    ) -> None:
        """What a new order's insert also records, in its transaction: the idempotency key, the
        retry link (raises `_AlreadyRetried` if the original was retried first), the request claim."""
        if idempotency is not None:
            await db.execute(
                "INSERT INTO idempotency_keys (key_hash, request_hash, order_id, created_at) VALUES (?, ?, ?, ?)",
                (*idempotency, order.id, order.created_at),
            )
        if retry_of is not None:
            changed = await db.execute(
                "UPDATE orders SET retry_order_id = ? WHERE id = ? AND retry_order_id IS NULL", (order.id, retry_of)
            )
            if changed != 1:
                raise _AlreadyRetried
        if order.pay_request_id is not None:
            await self._claim_request(db, order, retry_of)

    async def idempotent_order(self, key_hash: str) -> tuple[str, Order] | None:
        """The request hash and order an idempotency key was first used for."""
        row = await self._row(
            f"SELECT k.request_hash, {', '.join('o.' + name for name in _ORDER_FIELDS)} "
            "FROM idempotency_keys k JOIN orders o ON o.id = k.order_id WHERE k.key_hash = ?",
            (key_hash,),
        )
        return (row["request_hash"], _order(row)) if row else None

    async def count_pending(self) -> int:
        return await self._count("SELECT COUNT(*) FROM orders WHERE status = 'pending'")

    async def count_in_doubt(self) -> int:
        """Orders in doubt now (an index range)."""
        return await self._count("SELECT COUNT(*) FROM orders WHERE doubt_since IS NOT NULL AND status = 'pending'")

    async def orders_in_doubt(self, limit: int = 50) -> list[Order]:
        """Orders in doubt now, longest in doubt first."""
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE doubt_since IS NOT NULL AND status = 'pending' "
            "ORDER BY doubt_since LIMIT ?",
            (limit,),
        )
        return [_order(row) for row in rows]

    async def mark_in_doubt(self, reschedule: Reschedule, now: float, notices: Iterable[Notice]) -> bool:
        """A pending order's lookup gave no verdict after its deadline: it is in doubt from now,
        its next lookup is set, and the notices telling the payer and the shop are queued, all in
        one transaction. Only once per order, whatever restarts or instances try again (False,
        changing nothing, if it is in doubt already, no longer pending, or its schedule moved
        since the lookup started)."""
        return await self._guarded_write(
            "UPDATE orders SET doubt_since = ?, poll_count = poll_count + 1, next_poll_at = ?, "
            "schedule_version = schedule_version + 1, claimed_by = NULL, claim_until = NULL, "
            "last_error = COALESCE(?, last_error) "
            "WHERE id = ? AND status = 'pending' AND doubt_since IS NULL AND schedule_version = ?",
            (now, reschedule.next_poll_at, reschedule.error, reschedule.order_id, reschedule.version),
            [_outbox_rows(reschedule.order_id, notices, now)],
        )

    async def get_order(self, order_id: str) -> Order | None:
        row = await self._row(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,))
        return _order(row) if row else None

    async def get_api_order(self, order_id: str, api_key_id: str) -> Order | None:
        """An order only as the REST API key that created it may see it; any other id is "not found"."""
        row = await self._row(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ? AND source = 'api' AND api_key_id = ?",
            (order_id, api_key_id),
        )
        return _order(row) if row else None

    async def get_chat_order(self, order_id: str, chat_id: int) -> Order | None:
        """An order only as the chat that made it may see it; another chat's id is "not found"."""
        row = await self._row(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ? AND chat_id = ?", (order_id, chat_id))
        return _order(row) if row else None

    async def earlier_attempts(self, order_id: str, limit: int = 20) -> list[Order]:
        """The orders this one follows on from, oldest first: the order it retries ("Send the
        prompt again", "Pay the rest"), the one that one retries, and so on (at most `limit`).
        Read when an order is finalised, so a receipt for the rest can name what was paid before."""
        rows = await self._rows(
            "WITH RECURSIVE earlier (id, depth) AS ("
            "SELECT id, 1 FROM orders WHERE retry_order_id = ? "
            "UNION ALL SELECT o.id, e.depth + 1 FROM orders o JOIN earlier e ON o.retry_order_id = e.id "
            "WHERE e.depth < ?) "
            f"SELECT {', '.join('o.' + name for name in _ORDER_FIELDS)} FROM earlier e JOIN orders o ON o.id = e.id "
            "ORDER BY e.depth DESC",
            (order_id, limit),
        )
        return [_order(row) for row in rows]

    async def follow_ons(self, order_ids: list[str], limit: int = 20) -> dict[str, list[Order]]:
        """For each of `order_ids` that was followed on ("Send the prompt again", "Pay the rest"),
        the orders that follow it, in order (at most `limit`): with it, one sale in /orders."""
        if not order_ids:
            return {}
        rows = await self._rows(
            "WITH RECURSIVE chain (root, id, depth) AS ("
            f"SELECT id, retry_order_id, 1 FROM orders WHERE id IN ({', '.join('?' * len(order_ids))}) "
            "AND retry_order_id IS NOT NULL "
            "UNION ALL SELECT c.root, o.retry_order_id, c.depth + 1 FROM chain c JOIN orders o ON o.id = c.id "
            "WHERE o.retry_order_id IS NOT NULL AND c.depth < ?) "
            f"SELECT c.root AS chain_root, {', '.join('o.' + name for name in _ORDER_FIELDS)} FROM chain c "
            "JOIN orders o ON o.id = c.id ORDER BY c.root, c.depth",
            (*order_ids, limit),
        )
        chains: dict[str, list[Order]] = {}
        for row in rows:
            chains.setdefault(str(row["chain_root"]), []).append(_order(row))
        return chains

    async def followed_on(self, order_ids: list[str]) -> set[str]:
        """Those of `order_ids` that follow on from another order (listed with it, not alone)."""
        if not order_ids:
            return set()
        rows = await self._rows(
            f"SELECT retry_order_id FROM orders WHERE retry_order_id IN ({', '.join('?' * len(order_ids))})",
            tuple(order_ids),
        )
        return {str(row[0]) for row in rows}

    async def latest_chat_orders(self, chat_id: int, limit: int) -> list[Order]:
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE chat_id = ? ORDER BY created_at DESC, seq DESC LIMIT ?",
            (chat_id, limit),
        )
        return [_order(row) for row in rows]

    async def due_orders(self, now: float, limit: int) -> list[Order]:
        """Orders whose next lookup is due, oldest first (an index range, not a scan)."""
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE next_poll_at IS NOT NULL AND next_poll_at <= ? "
            "ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        )
        return [_order(row) for row in rows]

    async def claim_sending(self, order_id: str, now: float) -> bool:
        """Claim the right to call /transact for a pending order: true for exactly one caller.
        The claim runs `send_lease` by the database's clock; the sender renews it while sending.

        Committed without waiting for the disk: the conditional update makes one caller the
        sender whether or not it is flushed, and a crash of the bot keeps it. Only a power cut
        may lose it, and with it nothing that matters: what /transact answered is flushed before
        any push (`record_session`), so a lost claim means no push was made, and the order is
        sent late or failed after the restart as if it had never been claimed (iPay refuses a
        second /transact for the same order id)."""
        clock = await self.database_now(now)
        changed = await self._draft_write(
            "UPDATE orders SET initiate_at = ?, claimed_by = ?, claim_until = ? "
            "WHERE id = ? AND status = 'pending' AND initiate_at IS NULL",
            (now, self.instance_id, clock + self.send_lease, order_id),
        )
        return changed == 1

    async def renew_sending(self, order_id: str, now: float) -> bool:
        """This instance is still sending the order (iPay may keep a call waiting for a slot
        longer than one lease): its claim runs another `send_lease`. False once the order is
        sent, ended, or no longer this instance's."""
        clock = await self.database_now(now)
        renewed = await self._draft_write(
            "UPDATE orders SET claim_until = ? WHERE id = ? AND claimed_by = ? "
            "AND status = 'pending' AND prompt_sent_at IS NULL",
            (clock + self.send_lease, order_id, self.instance_id),
        )
        return renewed == 1

    async def record_session(self, order_id: str, sid: str, account: str, paybills: Sequence[tuple[str, str]]) -> bool:
        """What /transact answered, kept before the push: iPay's session, and the account and
        paybill numbers a payer can use to pay the same order by hand. Only while the order is
        pending and still this instance's to send: False if another instance failed it as
        unsent meanwhile (and told the payer nothing was charged), and then no push may follow.
        Failing an unsent order requires no session recorded (`finalise`, `unsent_only`), so of
        the two, exactly one happens."""
        changed = await self._write(
            "UPDATE orders SET session_ref = ?, paybill_account = ?, paybill_numbers = ? "
            "WHERE id = ? AND session_ref IS NULL AND status = 'pending' AND claimed_by = ?",
            (sid, account, json.dumps([list(pair) for pair in paybills]), order_id, self.instance_id),
        )
        return changed == 1

    async def record_session_ref(self, order_id: str, sid: str) -> None:
        """The session a provider's push answered (Daraja's checkout ids), replacing the one kept
        before the push: lookups name it from now on."""
        await self._write("UPDATE orders SET session_ref = ? WHERE id = ? AND session_ref IS NOT NULL", (sid, order_id))

    async def keep_provider_note(self, order_id: str, note: str, at: float) -> None:
        """What the provider's latest callback for the order said (`Callback.note`), replacing
        an earlier one: its lookups read it from here whichever instance heard the callback."""
        await self._write(
            "INSERT INTO provider_notes (order_id, note, heard_at) VALUES (?, ?, ?) "
            "ON CONFLICT (order_id) DO UPDATE SET note = excluded.note, heard_at = excluded.heard_at",
            (order_id, note, at),
        )

    async def record_late_receipt(self, order_id: str, receipt_code: str) -> bool:
        """The receipt of a payment recorded without one (the provider's query confirmed it before
        its callback named the receipt). Only once, and only on an order that received money."""
        changed = await self._write(
            "UPDATE orders SET receipt_code = ? WHERE id = ? AND COALESCE(receipt_code, '') = '' "
            "AND status IN ('paid', 'underpaid', 'overpaid')",
            (receipt_code, order_id),
        )
        return changed == 1

    async def provider_note(self, order_id: str) -> str | None:
        """The note `keep_provider_note` kept for the order, if a callback brought one."""
        row = await self._row("SELECT note FROM provider_notes WHERE order_id = ?", (order_id,))
        return str(row[0]) if row else None

    async def manual_payment(self, receipt: str) -> ManualPaymentRecord | None:
        """A payment made by hand already heard of (by its receipt), with the order it paid, if any."""
        row = await self._row(
            "SELECT receipt, account, amount, payer_name, paid_at, order_id FROM manual_payments WHERE receipt = ?",
            (receipt,),
        )
        return _manual_payment(row) if row else None

    async def record_manual_payment(
        self, record: ManualPaymentRecord, now: float, notices: Iterable[Notice] = ()
    ) -> bool:
        """Keep a payment made by hand once per receipt, with the notices it is told by (an unmatched
        one's line to the shop), in one transaction. False, changing nothing, if it was kept before."""
        told = list(notices)
        return await self._guarded_write(
            "INSERT INTO manual_payments (receipt, account, amount, payer_name, paid_at, heard_at, order_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (receipt) DO NOTHING",
            (record.receipt, record.account, record.amount, record.payer_name, record.paid_at, now, record.order_id),
            [_outbox_rows(record.order_id, told, now)] if told else [],
        )

    async def unmatched_payments(self, since: float, until: float) -> list[ManualPaymentRecord]:
        """Payments made by hand that named no order the bot could pay, paid in [since, until)."""
        rows = await self._rows(
            "SELECT receipt, account, amount, payer_name, paid_at, order_id FROM manual_payments "
            "WHERE order_id IS NULL AND paid_at >= ? AND paid_at < ? ORDER BY paid_at",
            (since, until),
        )
        return [_manual_payment(row) for row in rows]

    async def unsent_orders(self, created_before: float, limit: int, now: float | None = None) -> list[Order]:
        """Pending orders whose prompt was never recorded as sent, oldest first; not those a
        live instance is sending now (its claim holds until its heartbeat stops)."""
        clock = await self.database_now(created_before if now is None else now)
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = 'pending' AND prompt_sent_at IS NULL "
            f"AND created_at <= ? AND {_free('orders')} ORDER BY created_at LIMIT ?",
            (created_before, clock, clock - self.stale_after, limit),
        )
        return [_order(row) for row in rows]

    async def record_prompt_sent(
        self, order_id: str, now: float, next_poll_at: float, notices: Iterable[Notice]
    ) -> bool:
        """The push went out (or may have): start the lookups, and tell the chat.

        With no message to queue (an order of the REST API) it commits without waiting for the
        disk. A crash of the bot keeps it; a power cut may lose it, and only with everything
        committed after it (the database's log is replayed in order, and the next commit that
        waits for the disk, the payment's included, makes it durable). What is then left is the
        order a crash just after the push leaves: its session recorded and no prompt, which
        recovery watches as a push that may have gone out (`finish_unsent`) until a lookup
        finds the payment or its deadline passes. With a message, the record and the message
        are one transaction, and the drafts' connection holds none (`SqliteStore`): it waits
        for the disk."""
        sql = (
            "UPDATE orders SET prompt_sent_at = ?, next_poll_at = ?, schedule_version = schedule_version + 1, "
            "updated_at = ?, claimed_by = NULL, claim_until = NULL "
            "WHERE id = ? AND status = 'pending' AND prompt_sent_at IS NULL"
        )
        params = (now, next_poll_at, now, order_id)
        statement, rows = _outbox_rows(order_id, notices, now)
        if not rows:
            with self._write_bookkeeping():  # refused: `StoreUnavailable`, and health knows, as for any write
                return await self._draft_write(sql, params) == 1
        return await self._guarded_write(sql, params, [(statement, rows)])

    async def schedule_polls(self, reschedules: Sequence[Reschedule]) -> None:
        """Count lookups that gave no verdict and set when to ask again (None: stop asking),
        for a whole batch of orders in one transaction. A reschedule whose order's schedule
        moved since its lookup started is stale and changes nothing. `updated_at` stays: a
        lookup without a verdict is not a change of the order (a cancelled order's time of
        cancelling is its `updated_at`)."""
        if not reschedules:
            return
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE orders SET poll_count = poll_count + 1, next_poll_at = ?, "
                "schedule_version = schedule_version + 1, "
                "claimed_by = NULL, claim_until = NULL, last_error = COALESCE(?, last_error) "
                "WHERE id = ? AND schedule_version = ? AND next_poll_at IS NOT NULL",
                [(r.next_poll_at, r.error, r.order_id, r.version) for r in reschedules],
            )

    async def open_order_for_phone(self, phone: str) -> Order | None:
        """The order whose prompt may still be on this phone: pending, or cancelled in the chat
        and still being watched (the prompt can outlive the cancel)."""
        row = await self._row(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {_OPEN_ON_PHONE} ORDER BY created_at DESC LIMIT 1", (phone,)
        )
        return _order(row) if row else None

    async def orders_since(self, *, since: float, user_id: int | None = None, phone: str | None = None) -> list[float]:
        """Creation times of one user's or one phone's orders since `since`, oldest first (limits)."""
        column, value = ("user_id", user_id) if user_id is not None else ("phone", phone)
        rows = await self._rows(
            f"SELECT created_at FROM orders WHERE {column} = ? AND created_at > ? ORDER BY created_at", (value, since)
        )
        return [float(row[0]) for row in rows]

    async def latest_orders(self, *, start: float, end: float, limit: int, chat_id: int | None = None) -> list[Order]:
        """Newest first, in [start, end); one chat's, or every chat's when `chat_id` is None."""
        chat_filter = "" if chat_id is None else " AND chat_id = ?"
        params: tuple[object, ...] = (start, end) + (() if chat_id is None else (chat_id,)) + (limit,)
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE created_at >= ? AND created_at < ?{chat_filter} "
            "ORDER BY created_at DESC, seq DESC LIMIT ?",
            params,
        )
        return [_order(row) for row in rows]

    async def summary(self, start: float, end: float) -> list[SummaryRow]:
        """Totals of the sales begun in [start, end): each first order with the orders that follow
        on from it (`retry_order_id`, forwards), asked for once, its money summed; a sale with money
        is paid, underpaid or overpaid by the sum against what was first asked, one without money
        has its last order's status."""
        rows = await self._rows(
            "WITH RECURSIVE chain (root, id) AS ("
            "SELECT o.id, o.id FROM orders o WHERE o.created_at >= ? AND o.created_at < ? "
            "AND NOT EXISTS (SELECT 1 FROM orders p WHERE p.retry_order_id = o.id) "
            "UNION ALL SELECT c.root, o.retry_order_id FROM chain c JOIN orders o ON o.id = c.id "
            "WHERE o.retry_order_id IS NOT NULL), "
            "sale (network, asked, received, last_status) AS ("
            "SELECT r.network, r.amount, COALESCE(SUM(m.paid_amount), 0), "
            "MAX(CASE WHEN m.retry_order_id IS NULL THEN m.status END) "
            "FROM chain c JOIN orders r ON r.id = c.root JOIN orders m ON m.id = c.id "
            "GROUP BY r.id, r.network, r.amount), "
            "judged (status, network, asked, received) AS ("
            "SELECT CASE WHEN received = 0 THEN last_status WHEN received = asked THEN 'paid' "
            "WHEN received < asked THEN 'underpaid' ELSE 'overpaid' END, network, asked, received FROM sale) "
            "SELECT status, network, COUNT(*) AS count, SUM(asked) AS amount, SUM(received) AS received, "
            "SUM(CASE WHEN status = 'underpaid' THEN asked - received ELSE 0 END) AS owed, "
            "SUM(CASE WHEN status = 'overpaid' THEN received - asked ELSE 0 END) AS refund "
            "FROM judged GROUP BY status, network ORDER BY status, network",
            (start, end),
        )
        totals = ("count", "amount", "received", "owed", "refund")
        return [
            SummaryRow(OrderStatus(row["status"]), Network(row["network"]), *(int(row[name]) for name in totals))
            for row in rows
        ]

    async def stream_orders(self, start: float, end: float) -> AsyncIterator[Order]:
        """Every order in [start, end), oldest first, a few hundred rows at a time."""
        rows = self._stream(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE created_at >= ? AND created_at < ? ORDER BY created_at, seq",
            (start, end),
        )
        async for row in rows:
            yield _order(row)

    async def set_prompt_message(self, order_id: str, message_id: int) -> None:
        await self._write("UPDATE orders SET prompt_message_id = ? WHERE id = ?", (message_id, order_id))

    async def finalise(
        self,
        order_id: str,
        status: OrderStatus,
        now: float,
        notices: Iterable[Notice],
        *,
        payment: Payment | None = None,
        reason: str | None = None,
        watch: tuple[float, float] | None = None,
        unsent_only: bool = False,
    ) -> bool:
        """Move an order to `status` and queue its notices, atomically. False if not allowed now.

        `watch` (next look, look until) keeps looking the order up after it closed, for money
        that may still arrive; without it the order is never looked up again. `unsent_only`:
        only if no /transact answer was recorded for it and no live instance other than this
        one holds its sending claim (an unsent order failed after a restart), so the failure
        never races a sender still at work (`record_session`).
        """
        sources = status.sources()
        next_poll_at, watch_until = watch if watch is not None else (None, None)
        paid = (payment.receipt_code, payment.payer_name, payment.amount, payment.paid_at) if payment else (None,) * 4
        then = [_outbox_rows(order_id, notices, now)]
        if status.money_received:  # the money goes on the request this order claimed (late money too)
            received = payment.amount if payment is not None else 0
            request_paid = (
                "UPDATE pay_requests SET paid_amount = paid_amount + ?, "
                "state = CASE WHEN paid_amount + ? >= amount THEN 'paid' ELSE 'part_paid' END, "
                "shown_state = NULL, updated_at = ? WHERE order_id = ?"
            )
            then.insert(0, (request_paid, [(received, received, now, order_id)]))
        unsent: str = ""
        unsent_params: tuple[object, ...] = ()
        if unsent_only:
            clock = await self.database_now(now)
            unsent = f" AND prompt_sent_at IS NULL AND session_ref IS NULL AND (claimed_by = ? OR {_free('orders')})"
            unsent_params = (self.instance_id, clock, clock - self.stale_after)
        return await self._guarded_write(
            "UPDATE orders SET status = ?, updated_at = ?, next_poll_at = ?, watch_until = ?, "
            "schedule_version = schedule_version + 1, claimed_by = NULL, claim_until = NULL, "
            "last_error = COALESCE(?, last_error), receipt_code = COALESCE(?, receipt_code), "
            "payer_name = COALESCE(?, payer_name), paid_amount = COALESCE(?, paid_amount), "
            f"paid_at = COALESCE(?, paid_at) WHERE id = ? AND status IN ({', '.join('?' * len(sources))}){unsent}",
            (
                status.value,
                now,
                next_poll_at,
                watch_until,
                reason,
                *paid,
                order_id,
                *(s.value for s in sources),
                *unsent_params,
            ),
            then,
        )

    # -- outbox -------------------------------------------------------------------------

    async def _queue(self, db: Tx, order_id: str | None, notices: Iterable[Notice], now: float) -> None:
        await db.executemany(*_outbox_rows(order_id, notices, now))

    # -- people's languages ---------------------------------------------------------------

    async def user_language(self, user_id: int) -> str | None:
        row = await self._row("SELECT language FROM users WHERE user_id = ?", (user_id,))
        return None if row is None else str(row[0])

    async def first_contact(self, user_id: int, language: str, now: float) -> str:
        """Remember a person's language the first time they are seen; returns the one kept
        (an earlier choice wins).

        One statement, committed without waiting for the disk, like a draft: it is only
        Telegram's `language_code` read again, so a power cut losing it loses nothing the next
        update would not write again, and a person's new first update is not held up by a
        flush. Their own choice (`choose_language`) waits for the disk."""
        if await self._draft_write(
            "INSERT INTO users (user_id, language, chosen, updated_at) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (user_id) DO NOTHING",
            (user_id, language, now),
        ):
            return language
        return await self.user_language(user_id) or language  # met already (by another instance)

    async def choose_language(self, user_id: int, language: str, now: float) -> None:
        await self._write(
            "INSERT INTO users (user_id, language, chosen, updated_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET language = excluded.language, chosen = 1, "
            "updated_at = excluded.updated_at",
            (user_id, language, now),
        )

    async def queue_notices(self, notices: Iterable[Notice], now: float) -> None:
        """Queue messages that belong to no order (reports, summaries)."""
        async with self._transaction() as db:
            await self._queue(db, None, notices, now)

    async def due_outbox(self, now: float, limit: int) -> list[OutboxEntry]:
        """Due entries of every chat, oldest first."""
        rows = await self._rows(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox LEFT JOIN orders ON orders.id = outbox.order_id "
            "WHERE outbox.sent_at IS NULL AND outbox.next_attempt_at <= ? ORDER BY outbox.id LIMIT ?",
            (now, limit),
        )
        return [_outbox_entry(row) for row in rows]

    async def due_chats(self, now: float, limit: int) -> list[int]:
        """Chats whose oldest unsent entry is due, the longest due first.

        A chat whose oldest entry was postponed is not listed even if later entries are due:
        a chat's messages go out in the order they were queued.
        """
        rows = await self._rows(
            "SELECT o.chat_id FROM outbox o WHERE o.sent_at IS NULL AND o.next_attempt_at <= ? AND NOT EXISTS "
            "(SELECT 1 FROM outbox e WHERE e.chat_id = o.chat_id AND e.sent_at IS NULL AND e.id < o.id) "
            "ORDER BY o.next_attempt_at, o.id LIMIT ?",  # by due time: a range of outbox_due, not a scan of history
            (now, limit),
        )
        return [chat_id for chat_id, *_ in rows if isinstance(chat_id, int)]

    async def chat_outbox(self, chat_id: int, now: float, limit: int) -> list[OutboxEntry]:
        """One chat's unsent entries in the order they were queued, up to the first not yet due."""
        rows = await self._rows(
            f"SELECT {_OUTBOX_COLUMNS}, outbox.next_attempt_at FROM outbox "
            "LEFT JOIN orders ON orders.id = outbox.order_id "
            "WHERE outbox.chat_id = ? AND outbox.sent_at IS NULL ORDER BY outbox.id LIMIT ?",
            (chat_id, limit),
        )
        entries = []
        for row in rows:
            next_attempt_at = row["next_attempt_at"]
            if not isinstance(next_attempt_at, (int, float)) or next_attempt_at > now:
                break
            entries.append(_outbox_entry(row))
        return entries

    async def mark_sent(self, entry_id: int, now: float, note: str | None = None) -> None:
        await self.mark_many_sent([entry_id], now, note)

    async def mark_many_sent(self, entry_ids: Sequence[int], now: float, note: str | None = None) -> None:
        """Entries one message delivered (a digest) or that will never be delivered, in one
        statement (the notifier reads a chat's entries a hundred at a time)."""
        if not entry_ids:
            return
        await self._write(
            "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = ? "
            f"WHERE id IN ({', '.join('?' * len(entry_ids))}) AND sent_at IS NULL",
            (now, note, *entry_ids),
        )

    async def postpone(self, entry_id: int, next_attempt_at: float, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ? AND sent_at IS NULL",
            (next_attempt_at, error, entry_id),
        )

    async def pending_outbox_count(self) -> int:
        return await self._count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")

    # -- payment requests a merchant sends -----------------------------------------------
    # A request is claimed by the order of the first Confirm, in that order's own insert
    # transaction, so two payers racing one request can never both be prompted.

    async def _claim_request(self, db: Tx, order: Order, retry_of: str | None) -> None:
        """Point the order's request at it, if the request is open, unexpired and has no payment
        on the way (a retry may take over from the attempt it retries), or if it is part-paid and
        this order follows on from its last one for exactly what is missing ("Pay the rest", at
        any time: money is already on it). Raises `RequestTaken`."""
        changed = await db.execute(
            "UPDATE pay_requests SET order_id = ?, updated_at = ? WHERE id = ? AND ("
            f"(state = 'open' AND expires_at > ? AND amount = ? AND ({_REQUEST_FREE} OR order_id = ?)) "
            "OR (state = 'part_paid' AND order_id = ? AND amount - paid_amount = ?))",  # the payer cannot change it
            (
                order.id,
                order.created_at,
                order.pay_request_id,
                order.created_at,
                order.amount,
                retry_of,
                retry_of,
                order.amount,
            ),
        )
        if changed != 1:
            raise RequestTaken(order.pay_request_id)

    async def insert_pay_request(self, request: MerchantRequest) -> None:
        await self._write(
            f"INSERT INTO pay_requests ({_REQUEST_COLUMNS}) VALUES ({', '.join('?' * len(_REQUEST_FIELDS))})",
            _merchant_request_values(request),
        )

    async def get_pay_request(self, request_id: str) -> MerchantRequest | None:
        row = await self._row(f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE id = ?", (request_id,))
        return _merchant_request(row) if row else None

    async def pay_request_by_token(self, token: str) -> MerchantRequest | None:
        row = await self._row(f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE token = ?", (token,))
        return _merchant_request(row) if row else None

    async def get_api_pay_request(self, request_id: str, api_key_id: str) -> MerchantRequest | None:
        """A request only as the REST API key that created it may see it."""
        row = await self._row(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE id = ? AND source = 'api' AND api_key_id = ?",
            (request_id, api_key_id),
        )
        return _merchant_request(row) if row else None

    async def set_request_message(
        self, request_id: str, *, message_id: int | None = None, inline_message_id: str | None = None
    ) -> None:
        """The message (or posted inline card) that shows the request: edited when it changes."""
        await self._write(
            "UPDATE pay_requests SET message_id = COALESCE(?, message_id), "
            "inline_message_id = COALESCE(?, inline_message_id), posted = 1 WHERE id = ?",
            (message_id, inline_message_id, request_id),
        )

    async def cancel_pay_request(self, request_id: str, now: float) -> bool:
        """Open, with no payment on the way -> cancelled. False otherwise (paid, being paid, ended)."""
        changed = await self._write(
            "UPDATE pay_requests SET state = 'cancelled', shown_state = NULL, updated_at = ? "
            f"WHERE id = ? AND state = 'open' AND {_REQUEST_FREE}",
            (now, request_id),
        )
        return changed == 1

    async def expire_pay_requests(self, now: float) -> int:
        """Open requests past their time with no payment on the way -> expired (an index range)."""
        changed = await self._write(
            "UPDATE pay_requests SET state = 'expired', shown_state = NULL, updated_at = ? "
            f"WHERE state = 'open' AND expires_at <= ? AND {_REQUEST_FREE}",
            (now, now),
        )
        return changed

    async def requests_to_show(self, limit: int = 100) -> list[MerchantRequest]:
        """Requests whose message does not show their state yet, oldest change first."""
        rows = await self._rows(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE shown_state IS NULL ORDER BY updated_at LIMIT ?",
            (limit,),
        )
        return [_merchant_request(row) for row in rows]

    async def mark_request_shown(self, request_id: str, state: RequestState) -> None:
        await self._write(
            "UPDATE pay_requests SET shown_state = ? WHERE id = ? AND state = ?",
            (state.value, request_id, state.value),
        )

    async def latest_pay_requests(self, since: float, limit: int) -> list[MerchantRequest]:
        """Open requests and those made since `since`, newest first (inline cards never posted left out)."""
        rows = await self._rows(
            f"SELECT {_REQUEST_COLUMNS} FROM pay_requests WHERE posted = 1 AND (state = 'open' OR created_at >= ?) "
            "ORDER BY created_at DESC LIMIT ?",
            (since, limit),
        )
        return [_merchant_request(row) for row in rows]

    # -- refunds ------------------------------------------------------------------------
    # One row per order. Each step is one conditional statement, with the messages telling it
    # in its transaction: the first approval claims the call to iPay, any later one finds it
    # taken, so a double tap, two admins, two instances or a restart make one call at most.

    async def get_refund(self, order_id: str) -> Refund | None:
        row = await self._row(f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE order_id = ?", (order_id,))
        return _refund(row) if row else None

    async def refunds_of(self, order_ids: Sequence[str]) -> dict[str, Refund]:
        """The refunds of these orders (a listing's), by order id."""
        if not order_ids:
            return {}
        rows = await self._rows(
            f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE order_id IN ({', '.join('?' * len(order_ids))})",
            tuple(order_ids),
        )
        return {refund.order_id: refund for refund in map(_refund, rows)}

    async def refunds_waiting(self, limit: int = 50) -> list[Refund]:
        """Cashiers' asks no admin has answered yet, the oldest first."""
        rows = await self._rows(
            f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE state = 'asked' ORDER BY asked_at, order_id LIMIT ?",
            (limit,),
        )
        return [_refund(row) for row in rows]

    async def ask_refund(self, refund: Refund, notices: Iterable[Notice]) -> bool:
        """A staff member's ask (state asked), written only if the order has no refund yet or its
        last one ended with nothing moved (declined, refused); its cards to the admins with it."""
        return await self._guarded_write(
            _REFUND_UPSERT + " WHERE refunds.state IN ('declined', 'refused')",
            _refund_values(refund),
            [_outbox_rows(refund.order_id, notices, refund.updated_at)],
        )

    async def claim_refund(self, refund: Refund, notices: Iterable[Notice], *, approving_ask: bool) -> bool:
        """An approved refund (state sending, claimed by this instance until its `claim_until`),
        written before iPay is called; true for exactly one caller. With `approving_ask`, only a
        waiting ask is approved; otherwise (an admin's own refund, the REST API) the refund is
        written if the order has none, or an ask waits, or the last one ended with nothing moved."""
        now = refund.updated_at
        then = [_outbox_rows(refund.order_id, notices, now)]
        # The claim's lease runs on the database's clock, as every claim does (see `database_now`).
        if refund.claim_until is not None:
            refund = dataclasses.replace(refund, claim_until=await self.database_now(now) + (refund.claim_until - now))
        if approving_ask:
            return await self._guarded_write(
                "UPDATE refunds SET state = 'sending', approved_by_id = ?, approved_by = ?, approved_at = ?, "
                "updated_at = ?, claimed_by = ?, claim_until = ? WHERE order_id = ? AND state = 'asked'",
                (
                    refund.approved_by_id,
                    refund.approved_by,
                    refund.approved_at,
                    now,
                    self.instance_id,
                    refund.claim_until,
                    refund.order_id,
                ),
                then,
            )
        claimed = dataclasses.replace(refund, claimed_by=self.instance_id)
        return await self._guarded_write(
            _REFUND_UPSERT + " WHERE refunds.state IN ('asked', 'declined', 'refused')", _refund_values(claimed), then
        )

    async def decline_refund(self, order_id: str, by_id: int, by: str, now: float, notices: Iterable[Notice]) -> bool:
        """An admin says no to a waiting ask; false if it was approved or declined meanwhile."""
        return await self._guarded_write(
            "UPDATE refunds SET state = 'declined', approved_by_id = ?, approved_by = ?, approved_at = ?, "
            "done_at = ?, updated_at = ? WHERE order_id = ? AND state = 'asked'",
            (by_id, by, now, now, now, order_id),
            [_outbox_rows(order_id, notices, now)],
        )

    async def finish_refund(
        self,
        order_id: str,
        state: RefundState,
        now: float,
        notices: Iterable[Notice],
        *,
        reason: str | None = None,
        detail: str | None = None,
        funds: tuple[str, str] | None = None,
    ) -> bool:
        """What this instance's call to iPay came to (done, refused, or unknown when the call
        errored). Only the claimant records it; an answer that arrives after its claim lapsed
        and the refund was marked unknown still replaces "unknown" with what iPay said."""
        c2b, b2c = funds if funds is not None else (None, None)
        return await self._guarded_write(
            "UPDATE refunds SET state = ?, done_at = ?, updated_at = ?, reason = ?, detail = ?, "
            "c2b_funds = ?, b2c_funds = ?, claim_until = NULL "
            "WHERE order_id = ? AND claimed_by = ? AND state IN ('sending', 'unknown')",
            (state.value, now, now, reason, detail, c2b, b2c, order_id, self.instance_id),
            [_outbox_rows(order_id, notices, now)],
        )

    async def lapsed_refunds(self, now: float, limit: int = 100, *, gone: Sequence[str] = ()) -> list[Refund]:
        """Refunds whose call to iPay was claimed by an instance that died (or overran its lease)
        before recording iPay's answer; `gone` names instances known dead although their last
        heartbeat is still fresh (a killed process on this host, see `instance_gone`)."""
        lapsed, params = _lapsed_claim(await self.database_now(now), self.stale_after, gone)
        rows = await self._rows(
            f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE state = 'sending' AND result_due IS NULL AND {lapsed} "
            "ORDER BY claim_until LIMIT ?",
            (*params, limit),
        )
        return [_refund(row) for row in rows]

    async def refund_outcome_unknown(
        self, order_id: str, now: float, reason: str, notices: Iterable[Notice], *, gone: Sequence[str] = ()
    ) -> bool:
        """A lapsed call (see `lapsed_refunds`) is marked unknown, never sent again; its notices
        (the admins told to check) with it. False if its claimant recorded an answer meanwhile."""
        lapsed, params = _lapsed_claim(await self.database_now(now), self.stale_after, gone)
        return await self._guarded_write(
            f"UPDATE refunds SET state = 'unknown', reason = ?, done_at = ?, updated_at = ? "
            f"WHERE order_id = ? AND state = 'sending' AND result_due IS NULL AND {lapsed}",
            (reason, now, now, order_id, *params),
            [_outbox_rows(order_id, notices, now)],
        )

    async def await_refund_result(self, order_id: str, now: float, due: float, reference: str) -> bool:
        """This instance's call was accepted, its result to come by `due`: the claim is let go (any
        instance may hear the result) and the lapsed-call sweep leaves it alone. False if the
        result came first (or the call is no longer this instance's)."""
        return (
            await self._write(
                "UPDATE refunds SET result_due = ?, provider_ref = ?, claimed_by = NULL, claim_until = NULL, "
                "updated_at = ? WHERE order_id = ? AND claimed_by = ? AND state = 'sending'",
                (due, reference, now, order_id, self.instance_id),
            )
            == 1
        )

    async def refund_reference(self, order_id: str) -> str | None:
        """The provider's name for an accepted refund's request (`await_refund_result`), if kept."""
        row = await self._row("SELECT provider_ref FROM refunds WHERE order_id = ?", (order_id,))
        return None if row is None or row[0] is None else str(row[0])

    async def record_refund_result(
        self,
        order_id: str,
        state: RefundState,
        now: float,
        notices: Iterable[Notice],
        *,
        reason: str | None = None,
        detail: str | None = None,
    ) -> bool:
        """An accepted refund's result, whichever instance hears it: done or refused replaces
        "sending" or a not-confirmed "unknown"; a provider's own give-up (unknown) only
        "sending". False, changing nothing, for a result recorded before."""
        sources = "('sending', 'unknown')" if state is not RefundState.UNKNOWN else "('sending')"
        return await self._guarded_write(
            "UPDATE refunds SET state = ?, done_at = ?, updated_at = ?, reason = ?, detail = ?, "
            f"claimed_by = NULL, claim_until = NULL WHERE order_id = ? AND state IN {sources}",
            (state.value, now, now, reason, detail, order_id),
            [_outbox_rows(order_id, notices, now)],
        )

    async def overdue_refund_results(self, now: float, limit: int = 100) -> list[Refund]:
        """Accepted refunds whose result has not come by its due time."""
        rows = await self._rows(
            f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE state = 'sending' AND result_due <= ? "
            "ORDER BY result_due LIMIT ?",
            (now, limit),
        )
        return [_refund(row) for row in rows]

    async def refund_result_overdue(self, order_id: str, now: float, reason: str, notices: Iterable[Notice]) -> bool:
        """An overdue accepted refund becomes "unknown" (not confirmed), with its notices; a
        result that comes later still replaces it (`record_refund_result`)."""
        return await self._guarded_write(
            "UPDATE refunds SET state = 'unknown', reason = ?, done_at = ?, updated_at = ? "
            "WHERE order_id = ? AND state = 'sending' AND result_due <= ?",
            (reason, now, now, order_id, now),
            [_outbox_rows(order_id, notices, now)],
        )

    async def refund_totals(self, start: float, end: float) -> list[tuple[RefundState, int, int]]:
        """(state, count, shillings) of refunds approved and sent whose last change is in [start, end)."""
        rows = await self._rows(
            "SELECT state, COUNT(*) AS count, SUM(amount) AS amount FROM refunds "
            "WHERE updated_at >= ? AND updated_at < ? AND state IN ('sending', 'done', 'unknown') "
            "GROUP BY state ORDER BY state",
            (start, end),
        )
        return [(RefundState(row["state"]), int(row["count"]), int(row["amount"])) for row in rows]

    async def refunds_of_orders_made(self, start: float, end: float) -> dict[str, Refund]:
        """The refunds of the orders made in [start, end) (the export's refund columns)."""
        rows = await self._rows(
            f"SELECT {', '.join('r.' + name for name in _REFUND_FIELDS)} FROM refunds r "
            "JOIN orders o ON o.id = r.order_id WHERE o.created_at >= ? AND o.created_at < ?",
            (start, end),
        )
        return {refund.order_id: refund for refund in map(_refund, rows)}

    # -- the owner's day: cashiers and closes ------------------------------------------

    async def cashier_totals(self, start: float, end: float, user_id: int | None = None) -> list[CashierRow]:
        """Per person who asked and status, the orders made in [start, end): one person's, or
        everyone's when `user_id` is None."""
        person = "" if user_id is None else " AND user_id = ?"
        rows = await self._rows(
            "SELECT user_id, MAX(requested_by), status, COUNT(*), COALESCE(SUM(paid_amount), 0) FROM orders "
            f"WHERE created_at >= ? AND created_at < ?{person} GROUP BY user_id, status ORDER BY user_id, status",
            (start, end) + (() if user_id is None else (user_id,)),
        )
        return [CashierRow(int(r[0]), str(r[1] or ""), OrderStatus(r[2]), int(r[3]), int(r[4])) for r in rows]

    async def pending_orders(self, start: float, end: float, limit: int) -> list[Order]:
        """Orders made in [start, end) still pending (waiting or in doubt), oldest first."""
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE created_at >= ? AND created_at < ? AND status = 'pending' "
            "ORDER BY created_at, seq LIMIT ?",
            (start, end, limit),
        )
        return [_order(row) for row in rows]

    async def record_close(self, close: DayClose, notices: Iterable[Notice] = ()) -> bool:
        """Close a day once, whichever admin or instance closes it, with the messages telling
        it in the same transaction: False, queueing nothing, if it was closed."""
        told = list(notices)
        if not told:
            return await self._write(_CLOSE_INSERT, _close_values(close)) == 1
        return await self._guarded_write(
            _CLOSE_INSERT, _close_values(close), [_outbox_rows(None, told, close.closed_at)]
        )

    async def day_close(self, day: str) -> DayClose | None:
        row = await self._row(
            "SELECT day, closed_at, closed_by, covers_from, covers_until, figures FROM day_closes WHERE day = ?",
            (day,),
        )
        return _day_close(row) if row else None

    async def last_day_close(self) -> DayClose | None:
        """The latest close, whatever its day: the next close covers the orders from where it ended."""
        row = await self._row(
            "SELECT day, closed_at, closed_by, covers_from, covers_until, figures FROM day_closes "
            "ORDER BY covers_until DESC LIMIT 1"
        )
        return _day_close(row) if row else None

    async def orders_changed_since(
        self, start: float, end: float, since: float, also: Sequence[str] = ()
    ) -> list[Order]:
        """Orders made in [start, end) (a closed stretch) that changed at or after `since`, and the
        orders `also` names (those open at the close, whenever made): what to check for news."""
        named = f" OR id IN ({', '.join('?' * len(also))})" if also else ""
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE updated_at >= ? AND "
            f"((created_at >= ? AND created_at < ?){named}) ORDER BY created_at, seq",
            (since, start, end, *also),
        )
        return [_order(row) for row in rows]

    async def refunds_changed_since(self, since: float, made_before: float) -> list[Refund]:
        """Refunds sent, done or of unknown outcome that moved at or after `since`, of orders made
        before `made_before` (a closed stretch's end)."""
        rows = await self._rows(
            f"SELECT {', '.join('r.' + name for name in _REFUND_FIELDS)} FROM refunds r "
            "JOIN orders o ON o.id = r.order_id WHERE r.updated_at >= ? AND o.created_at < ? "
            "AND r.state IN ('sending', 'done', 'unknown') ORDER BY r.updated_at",
            (since, made_before),
        )
        return [_refund(row) for row in rows]

    # -- conversation drafts ------------------------------------------------------------
    # Each write is one statement (`_draft_write`), committed without waiting for the disk:
    # a kill -9 keeps it, only a power cut could lose the last steps.

    async def get_draft(self, chat_id: int, user_id: int) -> Draft | None:
        row = await self._row(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        )
        return _draft(row) if row else None

    async def put_draft(self, draft: Draft, *, replacing: str | None = None) -> bool:
        """Write a draft. Without `replacing` it is a new conversation and replaces whatever
        this person had in this chat; with it, only if the stored draft is still at that
        revision (False if it was dropped or changed meanwhile, e.g. by the timeout)."""
        if replacing is None:
            await self._draft_write(
                f"INSERT INTO drafts ({_DRAFT_COLUMNS}) VALUES ({', '.join('?' * len(_draft_values(draft)))}) "
                f"ON CONFLICT (chat_id, user_id) DO UPDATE SET {_DRAFT_UPSERT}",
                _draft_values(draft),
            )
            return True
        changed = await self._draft_write(
            "UPDATE drafts SET step = ?, revision = ?, updated_at = ?, phone = ?, network = ?, amount = ?, "
            "summary_key = ?, pay_request_id = ?, message_id = ?, send_at = ?, after_order_id = ?, requested_by = ? "
            "WHERE chat_id = ? AND user_id = ? AND revision = ?",
            (*_draft_values(draft)[2:], draft.chat_id, draft.user_id, replacing),
        )
        return changed == 1

    async def set_draft_message(self, chat_id: int, user_id: int, revision: str, message_id: int) -> bool:
        """The message that answered this revision of the draft (its buttons belong to it). The
        revision stays: the message is part of the step already written, not a new one."""
        changed = await self._draft_write(
            "UPDATE drafts SET message_id = ? WHERE chat_id = ? AND user_id = ? AND revision = ?",
            (message_id, chat_id, user_id, revision),
        )
        return changed == 1

    async def waiting_drafts_due(self, now: float, limit: int = 100) -> list[Draft]:
        """Confirmed payments waiting for their phone to be free, due by `now`, oldest first."""
        rows = await self._rows(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE step = 'waiting' AND send_at <= ? ORDER BY send_at LIMIT ?",
            (now, limit),
        )
        return [_draft(row) for row in rows]

    async def drop_draft(self, chat_id: int, user_id: int, *, revision: str | None = None) -> bool:
        """Forget a conversation; with `revision`, only if nothing was written to it since."""
        condition = "" if revision is None else " AND revision = ?"
        params: tuple[object, ...] = (chat_id, user_id) + (() if revision is None else (revision,))
        return await self._draft_write(f"DELETE FROM drafts WHERE chat_id = ? AND user_id = ?{condition}", params) == 1

    async def drafts_written_between(self, after: float, until: float, limit: int = 500) -> list[Draft]:
        """Drafts last written in (after, until], oldest first (an index range); a Confirm waiting
        for its phone is not idle, whatever its age."""
        rows = await self._rows(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE updated_at > ? AND updated_at <= ? AND step <> 'waiting' "
            "ORDER BY updated_at LIMIT ?",
            (after, until, limit),
        )
        return [_draft(row) for row in rows]

    async def purge_drafts(self, before: float) -> int:
        """Forget drafts abandoned long ago (their payer never came back to be told). A waiting
        Confirm is not abandoned: the sweep sends it or tells its payer why not."""
        return await self._draft_write("DELETE FROM drafts WHERE updated_at < ? AND step <> 'waiting'", (before,))

    # -- Telegram updates already handled --------------------------------------------------

    async def first_delivery(self, update_id: int, now: float) -> bool:
        """Remember an update as handled: True the first time its id is seen, by any instance.
        One statement, committed without waiting for the disk, like a draft step."""
        return (
            await self._draft_write(
                "INSERT INTO seen_updates (update_id, seen_at) VALUES (?, ?) ON CONFLICT (update_id) DO NOTHING",
                (update_id, now),
            )
            == 1
        )

    async def forget_updates(self, before: float) -> int:
        """Forget updates seen before `before` (Telegram gives up re-delivering long before)."""
        return await self._draft_write("DELETE FROM seen_updates WHERE seen_at < ?", (before,))

    # -- several instances ----------------------------------------------------------------

    async def heartbeat(self, mode: str, now: float) -> None:
        """This instance is alive (every second or so). `mode`: polling, webhook or console."""
        now = await self.database_now(now)
        await self._draft_write(
            "INSERT INTO instances (id, mode, started_at, heartbeat_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, mode = excluded.mode",
            (self.instance_id, mode, now, now),
        )

    async def live_instances(self, now: float) -> list[tuple[str, str, float]]:
        """Other instances whose heartbeat is fresh: (id, mode, last heartbeat), oldest first."""
        now = await self.database_now(now)
        rows = await self._rows(
            "SELECT id, mode, heartbeat_at FROM instances WHERE heartbeat_at > ? AND id <> ? ORDER BY started_at",
            (now - self.stale_after, self.instance_id),
        )
        return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    async def leave(self, now: float) -> None:
        """A clean stop: this instance's claims lapse at once; long-dead instances are forgotten."""
        now = await self.database_now(now)
        async with self._transaction() as db:
            await db.execute("DELETE FROM chat_claims WHERE claimed_by = ?", (self.instance_id,))
            await db.execute("DELETE FROM instances WHERE id = ? OR heartbeat_at < ?", (self.instance_id, now - 86_400))

    async def claim_due_orders(self, now: float, limit: int) -> list[Order]:
        """Claim up to `limit` orders whose lookup is due and that no live instance has claimed,
        oldest first. On PostgreSQL rows another instance is claiming at this moment are skipped
        (`FOR UPDATE SKIP LOCKED`), so instances sweeping at once share the due orders out.
        Due is by `now`; claims by the database's clock."""
        clock = await self.database_now(now)
        async with self._transaction() as db:
            rows = await db.rows(
                "UPDATE orders SET claimed_by = ?, claim_until = ? WHERE id IN (SELECT id FROM orders "
                f"WHERE next_poll_at IS NOT NULL AND next_poll_at <= ? AND {_free('orders')} "
                f"ORDER BY next_poll_at LIMIT ?{self._SKIP_LOCKED}) RETURNING {_ORDER_COLUMNS}",
                (self.instance_id, clock + LOOKUP_LEASE, now, clock, clock - self.stale_after, limit),
            )
        return sorted((_order(row) for row in rows), key=lambda o: (o.next_poll_at or 0.0, o.id))

    async def release_orders(self, order_ids: Sequence[str]) -> None:
        """Give back claims this instance will not look up after all."""
        if order_ids:
            async with self._transaction() as db:
                await db.executemany(
                    "UPDATE orders SET claimed_by = NULL, claim_until = NULL WHERE id = ? AND claimed_by = ?",
                    [(order_id, self.instance_id) for order_id in order_ids],
                )

    async def claim_chats(self, now: float, limit: int) -> list[int]:
        """Claim chats whose oldest unsent message is due and whose outbox no live instance is
        delivering (as `due_chats`): each chat's messages are sent by one instance, in order.
        Due is by `now`; claims by the database's clock."""
        clock = await self.database_now(now)
        stale = clock - self.stale_after
        claimed = []
        async with self._transaction() as db:
            rows = await db.rows(
                "SELECT o.chat_id FROM outbox o WHERE o.sent_at IS NULL AND o.next_attempt_at <= ? AND NOT EXISTS "
                "(SELECT 1 FROM outbox e WHERE e.chat_id = o.chat_id AND e.sent_at IS NULL AND e.id < o.id) "
                "AND NOT EXISTS (SELECT 1 FROM chat_claims c WHERE c.chat_id = o.chat_id AND c.claim_until > ? "
                "AND EXISTS "
                "(SELECT 1 FROM instances i WHERE i.id = c.claimed_by AND i.heartbeat_at > ?)) "
                "ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (now, clock, stale, limit),
            )
            for chat_id, *_rest in rows:
                taken = await db.execute(
                    "INSERT INTO chat_claims (chat_id, claimed_by, claim_until) VALUES (?, ?, ?) "
                    "ON CONFLICT (chat_id) DO UPDATE SET claimed_by = excluded.claimed_by, "
                    "claim_until = excluded.claim_until "
                    "WHERE chat_claims.claimed_by = excluded.claimed_by OR chat_claims.claim_until <= ? OR NOT EXISTS "
                    "(SELECT 1 FROM instances i WHERE i.id = chat_claims.claimed_by AND i.heartbeat_at > ?)",
                    (chat_id, self.instance_id, clock + CHAT_LEASE, clock, stale),
                )
                if taken == 1:
                    claimed.append(int(chat_id))
        return claimed

    async def renew_chat(self, chat_id: int, now: float) -> bool:
        """This instance is still delivering the chat (a group at 20 messages a minute can take
        longer than one lease): its claim runs another `CHAT_LEASE`. False if the claim is no
        longer ours (taken over while we were thought dead): the worker stops, so the chat is
        never delivered by two instances at once."""
        clock = await self.database_now(now)
        renewed = await self._draft_write(
            "UPDATE chat_claims SET claim_until = ? WHERE chat_id = ? AND claimed_by = ?",
            (clock + CHAT_LEASE, chat_id, self.instance_id),
        )
        return renewed == 1

    async def release_chat(self, chat_id: int) -> None:
        """This instance has delivered what it could of the chat's outbox."""
        await self._draft_write(
            "DELETE FROM chat_claims WHERE chat_id = ? AND claimed_by = ?", (chat_id, self.instance_id)
        )

    async def queue_daily_summary(
        self,
        day: str,
        notices: Iterable[Notice],
        now: float,
        *,
        covers_until: float | None = None,
        close: DayClose | None = None,
    ) -> bool:
        """Queue the day's summary once, whichever instances run the daily job: False if one did.

        `sent_at` records where the summary's stretch of orders ends (`covers_until`, else now):
        the next summary starts there, so no order is left out of every summary or counted twice.
        `close`, the day's close by the clock, is recorded with it unless the day was closed."""
        then = [_outbox_rows(None, notices, now)]
        if close is not None:
            then.append((_CLOSE_INSERT, [_close_values(close)]))
        return await self._guarded_write(
            "INSERT INTO daily_summaries (day, sent_at) VALUES (?, ?) ON CONFLICT (day) DO NOTHING",
            (day, now if covers_until is None else covers_until),
            then,
        )

    async def last_daily_summary_end(self) -> float | None:
        """Where the latest daily summary's stretch of orders ended; None before the first."""
        row = await self._row("SELECT MAX(sent_at) FROM daily_summaries")
        return None if row is None or row[0] is None else float(row[0])


_CLOSE_INSERT = (
    "INSERT INTO day_closes (day, closed_at, closed_by, covers_from, covers_until, figures) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day) DO NOTHING"
)


def _close_values(close: DayClose) -> tuple[object, ...]:
    return (close.day, close.closed_at, close.closed_by, close.covers_from, close.covers_until, close.figures)


def _day_close(row: Row) -> DayClose:
    return DayClose(str(row[0]), float(row[1]), str(row[2]), float(row[3]), float(row[4]), str(row[5]))


def _manual_payment(row: Row) -> ManualPaymentRecord:
    return ManualPaymentRecord(
        receipt=str(row[0]),
        account=str(row[1]),
        amount=int(row[2]),
        payer_name=str(row[3]),
        paid_at=float(row[4]),
        order_id=None if row[5] is None else str(row[5]),
    )


def _outbox_rows(order_id: str | None, notices: Iterable[Notice], now: float) -> tuple[str, list[Sequence[object]]]:
    """The outbox insert for `notices` and its rows of parameters, due now."""
    rows: list[Sequence[object]] = [
        (
            order_id,
            n.chat_id,
            n.text,
            json.dumps([list(b) for b in n.buttons]),
            int(n.edit_prompt),
            now,
            now,
            n.kind,
            json.dumps(n.params) if n.kind else None,
            n.reader,
        )
        for n in notices
    ]
    insert = (
        "INSERT INTO outbox (order_id, chat_id, text, buttons, edit_prompt, created_at, next_attempt_at, "
        "kind, params, reader) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    return insert, rows
