"""The providers' tests: the wire's run on each event loop the bot may run on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The wire's tests (`test_transport.py`) run on uvloop's loop, which bot.py chooses, and on
    asyncio's own, where uvloop cannot be installed: their transports differ in type, and code
    touching the wire must not depend on either. The other providers' tests run on asyncio's."""
    if item.path.name == "test_transport.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
