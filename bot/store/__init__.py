"""Storage: the only package with SQL. `Store` is the aiosqlite back end."""

from bot.store.migrations import _MIGRATIONS, SCHEMA_VERSION
from bot.store.rows import (
    Draft, DraftStep, PayRequest, PhoneBusy, RequestState, RequestTaken, Reschedule, StoreUnavailable, WriteFailure,
)
from bot.store.sqlite import BUSY_TIMEOUT_MS, Store

__all__ = [
    "BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "Draft", "DraftStep", "PayRequest", "PhoneBusy", "RequestState", "RequestTaken",
    "Reschedule", "Store", "StoreUnavailable", "WriteFailure", "_MIGRATIONS",
]
