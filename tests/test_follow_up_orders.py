"""Paying the rest (issue 14, item 3): when the order "💳 Pay the rest" started is paid, the payer's
receipt and the shop owner's line name the first order too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import Store
from tests.conftest import query_plans


async def test_an_orders_earlier_attempts_are_an_index_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read at every payment's finalisation: never a scan of every order (SQLite's plan)."""
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        (plan,) = await query_plans(store, monkeypatch, lambda: store.earlier_attempts("NOSUCH"))
    finally:
        await store.close()
    assert "SEARCH orders USING INDEX orders_retried_by (retry_order_id=?)" in plan
    assert "SEARCH o USING INDEX orders_retried_by (retry_order_id=?)" in plan
    assert "SCAN orders" not in plan and "SCAN o /" not in plan
