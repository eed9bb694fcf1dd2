"""Storage: the only package with SQL.

`Store` is the one interface (`bot/store/base.py`, every query written once);
`Store.open(target)` gives the aiosqlite back end for a path and the asyncpg one for a
`postgresql://` URL. The PostgreSQL back end (and asyncpg, about 16 MiB) is imported only when
a store is opened on PostgreSQL or `PostgresStore` is asked for: a bot on SQLite never loads it.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.store.base import Store, is_postgres_url, load_backend_with
from bot.store.migrations import _MIGRATIONS, SCHEMA_VERSION
from bot.store.rows import (
    Reschedule,
    StoreUnavailable,
    WriteFailure,
)
from bot.store.sqlite import BUSY_TIMEOUT_MS, SqliteStore

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

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


def _load_postgres(target: Path | str) -> None:
    if is_postgres_url(target):
        import bot.store.postgres  # noqa: F401  (a subclass of Store once imported)


load_backend_with(_load_postgres)


def __getattr__(name: str) -> Any:
    """`PostgresStore`, imported when first asked for."""
    if name == "PostgresStore":
        from bot.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
