"""Storage: the only package with SQL.

`Store` is the one interface (`bot/store/base.py`, every query written once);
`Store.open(target)` gives the aiosqlite back end for a path and the asyncpg one for a
`postgresql://` URL.
"""

from bot.store.base import Store, is_postgres_url
from bot.store.migrations import _MIGRATIONS, SCHEMA_VERSION
from bot.store.rows import (
    Draft,
    DraftGone,
    DraftStep,
    PaidMeanwhile,
    PayRequest,
    PhoneBusy,
    RequestState,
    RequestTaken,
    Reschedule,
    StoreUnavailable,
    WriteFailure,
)
from bot.store.sqlite import BUSY_TIMEOUT_MS

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "_MIGRATIONS",
    "Draft",
    "DraftGone",
    "DraftStep",
    "PaidMeanwhile",
    "PayRequest",
    "PhoneBusy",
    "RequestState",
    "RequestTaken",
    "Reschedule",
    "Store",
    "StoreUnavailable",
    "WriteFailure",
    "is_postgres_url",
]
