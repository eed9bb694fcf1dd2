"""Storage: the only package with SQL.

`Store` is the one interface (`bot/store/base.py`, every query written once);
`Store.open(target)` gives the aiosqlite back end for a path and the asyncpg one for a
`postgresql://` URL: the two back ends imported here are the ones it chooses from.
"""

from bot.store.base import Store, is_postgres_url
from bot.store.migrations import _MIGRATIONS, SCHEMA_VERSION
from bot.store.postgres import PostgresStore
from bot.store.rows import (
    Reschedule,
    StoreUnavailable,
    WriteFailure,
)
from bot.store.sqlite import BUSY_TIMEOUT_MS, SqliteStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "_MIGRATIONS",
    "PostgresStore",
    "Reschedule",
    "SqliteStore",
    "Store",
    "StoreUnavailable",
    "WriteFailure",
    "is_postgres_url",
]
