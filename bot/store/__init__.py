"""Storage: the only package with SQL. `Store` is the aiosqlite back end."""

from bot.store.migrations import _MIGRATIONS, SCHEMA_VERSION
from bot.store.rows import Draft, DraftStep, PhoneBusy, Reschedule
from bot.store.sqlite import Store

__all__ = ["SCHEMA_VERSION", "Draft", "DraftStep", "PhoneBusy", "Reschedule", "Store", "_MIGRATIONS"]
