"""The schema's numbered migrations, one list for every back end.

Each step runs once, in order of its number, in one transaction with the version it reaches.
The SQL is written once, portably (BIGINT ids, DOUBLE PRECISION times, partial indexes, plain
upserts); the few words the dialects spell differently are `{TOKENS}` filled in by
`statements()`, and a statement meant for one back end only starts with `@sqlite` or
`@postgres`.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "postgres"]

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE orders (
        id                TEXT PRIMARY KEY,
        chat_id           BIGINT NOT NULL,
        user_id           BIGINT NOT NULL,
        phone             TEXT NOT NULL,
        network           TEXT NOT NULL,
        amount            INTEGER NOT NULL CHECK (amount > 0),
        status            TEXT NOT NULL,
        ipay_sid          TEXT,
        prompt_sent_at    DOUBLE PRECISION,
        prompt_message_id INTEGER,
        receipt_code      TEXT,
        payer_name        TEXT,
        paid_amount       INTEGER,
        paid_at           DOUBLE PRECISION,
        created_at        DOUBLE PRECISION NOT NULL,
        updated_at        DOUBLE PRECISION NOT NULL,
        poll_count        INTEGER NOT NULL DEFAULT 0,
        next_poll_at      DOUBLE PRECISION,
        last_error        TEXT
    );
    CREATE INDEX orders_due ON orders (next_poll_at) WHERE status = 'pending';
    CREATE INDEX orders_by_chat ON orders (chat_id, created_at);
    CREATE INDEX orders_by_phone ON orders (phone, created_at);
    CREATE TABLE outbox (
        id              {AUTO_ID},
        order_id        TEXT REFERENCES orders (id),
        chat_id         BIGINT NOT NULL,
        text            TEXT NOT NULL,
        buttons         TEXT NOT NULL DEFAULT '[]',
        edit_prompt     INTEGER NOT NULL DEFAULT 0,
        created_at      DOUBLE PRECISION NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        sent_at         DOUBLE PRECISION,
        last_error      TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
    """,
    # 2: "send the prompt again" links attempts; an order cancelled in the chat is still
    # looked up once more (money may arrive late), so "due" no longer means "pending".
    2: """
    ALTER TABLE orders ADD COLUMN retry_order_id TEXT REFERENCES orders (id);
    DROP INDEX orders_due;
    CREATE INDEX orders_due ON orders (next_poll_at) WHERE next_poll_at IS NOT NULL;
    """,
    # 3: merchant tools: who asked, per-user limits, reports by period.
    3: """
    ALTER TABLE orders ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
    CREATE INDEX orders_by_user ON orders (user_id, created_at);
    CREATE INDEX orders_by_time ON orders (created_at);
    """,
    # 4: the REST API: orders without a chat, the caller's reference and email, and
    # idempotency keys so a repeated request returns the same order instead of prompting twice.
    4: """
    ALTER TABLE orders ADD COLUMN source TEXT NOT NULL DEFAULT 'chat';
    ALTER TABLE orders ADD COLUMN reference TEXT;
    ALTER TABLE orders ADD COLUMN email TEXT;
    CREATE TABLE idempotency_keys (
        key_hash     TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        order_id     TEXT NOT NULL REFERENCES orders (id),
        created_at   DOUBLE PRECISION NOT NULL
    );
    """,
    # 5: what /transact answered (account and each channel's paybill: the Pay Bill way round);
    # a claim on sending the prompt, so a restart can finish an order that never reached iPay
    # without ever prompting twice; a schedule version so a stale lookup never moves a later
    # promised look; an insertion sequence to order by; one open prompt per phone as a
    # constraint, not only a check.
    5: """
    ALTER TABLE orders ADD COLUMN ipay_account TEXT;
    ALTER TABLE orders ADD COLUMN ipay_paybills TEXT;
    ALTER TABLE orders ADD COLUMN initiate_at DOUBLE PRECISION;
    ALTER TABLE orders ADD COLUMN schedule_version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE orders ADD COLUMN watch_until DOUBLE PRECISION;
    ALTER TABLE orders ADD COLUMN seq BIGINT;
    UPDATE orders SET seq = (
        SELECT COUNT(*) FROM orders AS earlier
        WHERE earlier.created_at < orders.created_at
           OR (earlier.created_at = orders.created_at AND earlier.id <= orders.id)
    );
    CREATE UNIQUE INDEX orders_seq ON orders (seq);
    @postgres CREATE SEQUENCE orders_seq_numbers OWNED BY orders.seq;
    @postgres SELECT setval('orders_seq_numbers', COALESCE(MAX(seq), 0) + 1, false) FROM orders;
    @postgres ALTER TABLE orders ALTER COLUMN seq SET DEFAULT nextval('orders_seq_numbers');
    CREATE UNIQUE INDEX orders_open_phone ON orders (phone)
        WHERE status = 'pending' OR (status = 'withdrawn' AND next_poll_at IS NOT NULL);
    CREATE INDEX orders_unsent ON orders (created_at) WHERE status = 'pending' AND prompt_sent_at IS NULL;
    """,
    # 6: the outbox is delivered chat by chat, each chat in order: find a chat's unsent
    # entries, and whether an earlier one is still waiting, without scanning what was sent.
    6: """
    CREATE INDEX outbox_unsent_by_chat ON outbox (chat_id, id) WHERE sent_at IS NULL;
    """,
    # 7: the /pay conversation's drafts, so a restart (even kill -9) resumes at the last step
    # the payer saw answered. One plain row per (chat, user), written with portable upserts.
    7: """
    CREATE TABLE drafts (
        chat_id     BIGINT NOT NULL,
        user_id     BIGINT NOT NULL,
        step        TEXT NOT NULL,
        phone       TEXT NOT NULL DEFAULT '',
        network     TEXT NOT NULL DEFAULT 'mpesa',
        amount      INTEGER NOT NULL DEFAULT 0,
        summary_key TEXT,
        revision    TEXT NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    );
    CREATE INDEX drafts_by_time ON drafts (updated_at);
    """,
    # 8: the REST API reads only what its own key created (an identifier of the key, never the
    # key), and a table that /healthz writes to when it must know whether writes work again.
    8: """
    ALTER TABLE orders ADD COLUMN api_key_id TEXT;
    CREATE TABLE write_probe (
        id        INTEGER PRIMARY KEY,
        probed_at DOUBLE PRECISION NOT NULL,
        pad       BYTEA
    );
    """,
    # 9: more than one instance on one database. Each instance says it is alive (a heartbeat
    # row; long polling refuses to start beside a live poller); an order being sent or looked
    # up, and a chat whose outbox is being delivered, are claimed by one instance with a lease
    # (`claim_until`), which lapses when the claimant's heartbeat stops; the daily summary is
    # sent once per day whichever instances run.
    9: """
    CREATE TABLE instances (
        id           TEXT PRIMARY KEY,
        mode         TEXT NOT NULL,
        started_at   DOUBLE PRECISION NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    );
    ALTER TABLE orders ADD COLUMN claimed_by TEXT;
    ALTER TABLE orders ADD COLUMN claim_until DOUBLE PRECISION;
    CREATE TABLE chat_claims (
        chat_id     BIGINT PRIMARY KEY,
        claimed_by  TEXT NOT NULL,
        claim_until DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE daily_summaries (
        day     TEXT PRIMARY KEY,
        sent_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 10: languages. Each person's language (from Telegram's language_code on first contact, or
    # chosen with /language), and outbox entries as a kind plus JSON parameters, rendered in the
    # reader's language when sent (`reader`: a user id; NULL for the merchant chat). `text`
    # stays for entries queued before.
    10: """
    CREATE TABLE users (
        user_id    BIGINT PRIMARY KEY,
        language   TEXT NOT NULL,
        chosen     INTEGER NOT NULL DEFAULT 0,
        updated_at DOUBLE PRECISION NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN kind TEXT;
    ALTER TABLE outbox ADD COLUMN params TEXT;
    ALTER TABLE outbox ADD COLUMN reader BIGINT;
    """,
    # 11: payment requests a merchant sends (a link, a QR code, an inline card): their own states,
    # the order that claimed each one (first Confirm wins), and what their message last showed, so
    # an edit to "Paid" or "Expired" survives a restart. The order that pays a request points to it,
    # and a /pay draft opened from a request remembers it.
    11: """
    CREATE TABLE pay_requests (
        id                TEXT PRIMARY KEY,
        token             TEXT NOT NULL UNIQUE,
        amount            INTEGER NOT NULL CHECK (amount > 0),
        note              TEXT NOT NULL DEFAULT '',
        state             TEXT NOT NULL,
        source            TEXT NOT NULL,
        created_by        BIGINT NOT NULL,
        created_by_name   TEXT NOT NULL DEFAULT '',
        chat_id           BIGINT NOT NULL,
        message_id        BIGINT,
        inline_message_id TEXT,
        posted            INTEGER NOT NULL DEFAULT 1,
        api_key_id        TEXT,
        order_id          TEXT REFERENCES orders (id),
        shown_state       TEXT,
        created_at        DOUBLE PRECISION NOT NULL,
        expires_at        DOUBLE PRECISION NOT NULL,
        updated_at        DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX pay_requests_by_time ON pay_requests (created_at);
    CREATE INDEX pay_requests_open ON pay_requests (expires_at) WHERE state = 'open';
    CREATE INDEX pay_requests_to_show ON pay_requests (updated_at) WHERE shown_state IS NULL;
    ALTER TABLE orders ADD COLUMN pay_request_id TEXT REFERENCES pay_requests (id);
    ALTER TABLE drafts ADD COLUMN pay_request_id TEXT;
    """,
    # 12: an order's earlier attempts are found from it (a receipt for "Pay the rest" names the
    # order it completes): `retry_order_id` read backwards, an index range, not a scan.
    12: """
    CREATE INDEX orders_retried_by ON orders (retry_order_id) WHERE retry_order_id IS NOT NULL;
    """,
    # 13: a draft remembers the message whose buttons answer it (so a newer step can take those
    # buttons away), and a Confirm that waits for the phone to be free: when, for which
    # cancelled order (its prompt may still be on the phone until then), and who confirmed.
    13: """
    ALTER TABLE drafts ADD COLUMN message_id BIGINT;
    ALTER TABLE drafts ADD COLUMN send_at DOUBLE PRECISION;
    ALTER TABLE drafts ADD COLUMN after_order_id TEXT;
    ALTER TABLE drafts ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
    CREATE INDEX drafts_waiting ON drafts (send_at) WHERE step = 'waiting';
    """,
    # 14: the money on a payment request, so a request paid short is part-paid (and its rest,
    # paid later, is added to it) and one paid over says by how much. A request already marked
    # paid takes what its order received; one that received less than it asked is part-paid.
    14: """
    ALTER TABLE pay_requests ADD COLUMN paid_amount INTEGER NOT NULL DEFAULT 0;
    UPDATE pay_requests SET paid_amount = COALESCE((SELECT o.paid_amount FROM orders o
        WHERE o.id = pay_requests.order_id AND o.status IN ('paid', 'underpaid', 'overpaid')), amount)
        WHERE state = 'paid';
    UPDATE pay_requests SET state = 'part_paid', shown_state = NULL WHERE state = 'paid' AND paid_amount < amount;
    """,
    # 15: an order in doubt: its deadline passed while iPay gave no answer the bot can trust.
    # `doubt_since` is when the payer and the shop were told (set once, by whichever instance
    # got there first); the order stays pending and looked up until iPay answers. The index
    # lists the orders in doubt now, for /healthz and the daily summary.
    15: """
    ALTER TABLE orders ADD COLUMN doubt_since DOUBLE PRECISION;
    CREATE INDEX orders_in_doubt ON orders (doubt_since) WHERE doubt_since IS NOT NULL AND status = 'pending';
    """,
    # 16: the Telegram updates already handled, by update_id, so one Telegram delivers again
    # (it did not get a 200 in time) is dropped, whichever instance it reaches; kept a day.
    16: """
    CREATE TABLE seen_updates (
        update_id BIGINT PRIMARY KEY,
        seen_at   DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX seen_updates_by_time ON seen_updates (seen_at);
    """,
    # 17: refunds, one per order: who asked and who approved, claimed by one instance before
    # iPay is called (`claimed_by`, `claim_until`), and what iPay answered. Reports read them
    # by when they ended; the REST API replays one by its idempotency key.
    17: """
    CREATE TABLE refunds (
        order_id       TEXT PRIMARY KEY REFERENCES orders (id),
        state          TEXT NOT NULL,
        amount         INTEGER NOT NULL CHECK (amount > 0),
        receipt_code   TEXT NOT NULL,
        asked_by_id    BIGINT NOT NULL,
        asked_by       TEXT NOT NULL DEFAULT '',
        asked_chat_id  BIGINT NOT NULL,
        asked_at       DOUBLE PRECISION NOT NULL,
        updated_at     DOUBLE PRECISION NOT NULL,
        approved_by_id BIGINT,
        approved_by    TEXT,
        approved_at    DOUBLE PRECISION,
        done_at        DOUBLE PRECISION,
        reason         TEXT,
        detail         TEXT,
        ask_again      INTEGER NOT NULL DEFAULT 0,
        source         TEXT NOT NULL DEFAULT 'chat',
        key_hash       TEXT,
        c2b_funds      TEXT,
        b2c_funds      TEXT,
        claimed_by     TEXT,
        claim_until    DOUBLE PRECISION
    );
    CREATE INDEX refunds_by_time ON refunds (updated_at);
    CREATE INDEX refunds_sending ON refunds (claim_until) WHERE state = 'sending';
    """,
    # 18: the owner's close of a day. One row per Nairobi day, written once whoever closes it (an
    # admin's /close or the clock): who, when, the stretch of orders it covers and its figures
    # (JSON), so a later change to that stretch is told as "since the last close", never silently.
    18: """
    CREATE TABLE day_closes (
        day          TEXT PRIMARY KEY,
        closed_at    DOUBLE PRECISION NOT NULL,
        closed_by    TEXT NOT NULL,
        covers_from  DOUBLE PRECISION NOT NULL,
        covers_until DOUBLE PRECISION NOT NULL,
        figures      TEXT NOT NULL
    );
    CREATE INDEX day_closes_by_time ON day_closes (closed_at);
    """,
    # 19: the provider's session and the Pay Bill details under names no provider owns (Daraja keeps
    # its checkout ids in the same column as iPay's sid).
    19: """
    ALTER TABLE orders RENAME COLUMN ipay_sid TO session_ref;
    ALTER TABLE orders RENAME COLUMN ipay_account TO paybill_account;
    ALTER TABLE orders RENAME COLUMN ipay_paybills TO paybill_numbers;
    """,
    # 20: what a provider's last callback for an order said (Daraja's receipt number), kept until a
    # lookup agrees with it: in the database, so whichever instance's lookup confirms the payment
    # uses the receipt whichever instance's callback brought. Opaque text, the provider's own.
    20: """
    CREATE TABLE provider_notes (
        order_id TEXT PRIMARY KEY REFERENCES orders (id),
        note     TEXT NOT NULL,
        heard_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 21: payments made by hand that the provider told the bot about (Daraja's C2B confirmations),
    # one row per receipt whatever repeats: the order it paid, or none (unmatched: the shop is
    # shown it and settles it by hand).
    21: """
    CREATE TABLE manual_payments (
        receipt    TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        amount     INTEGER NOT NULL,
        payer_name TEXT NOT NULL,
        paid_at    DOUBLE PRECISION NOT NULL,
        heard_at   DOUBLE PRECISION NOT NULL,
        order_id   TEXT REFERENCES orders (id)
    );
    CREATE INDEX manual_payments_unmatched ON manual_payments (paid_at) WHERE order_id IS NULL;
    """,
    # 22: a refund the provider accepted and answers later (Daraja's reversal): no instance holds
    # it while its result is awaited (any instance may hear the result), `result_due` says until
    # when, and `provider_ref` names the request at the provider.
    22: """
    ALTER TABLE refunds ADD COLUMN result_due DOUBLE PRECISION;
    ALTER TABLE refunds ADD COLUMN provider_ref TEXT;
    CREATE INDEX refunds_awaiting ON refunds (result_due) WHERE state = 'sending';
    """,
}

SCHEMA_VERSION = max(MIGRATIONS)

_TOKENS: dict[Dialect, dict[str, str]] = {
    "sqlite": {"{AUTO_ID}": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgres": {"{AUTO_ID}": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
}


def statements(version: int, dialect: Dialect) -> list[str]:
    """The statements of one migration step, as `dialect` spells them."""
    text = MIGRATIONS[version]
    for token, spelling in _TOKENS[dialect].items():
        text = text.replace(token, spelling)
    result = []
    for statement in (s.strip() for s in text.split(";")):
        if not statement:
            continue
        if statement.startswith("@"):
            only, _, statement = statement[1:].partition(" ")
            if only != dialect:
                continue
        result.append(statement)
    return result


def pending(version: int) -> list[int]:
    """The steps a database at `version` still needs, in order."""
    return sorted(step for step in MIGRATIONS if step > version)


# The SQLite spelling of each step (what older tests and tools ran as scripts).
_MIGRATIONS: dict[int, str] = {step: ";\n".join(statements(step, "sqlite")) + ";" for step in MIGRATIONS}
