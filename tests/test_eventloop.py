"""The bot runs on uvloop's event loop (requirements.txt installs it); the crash harness's
webhook mode (tests/orders/test_crash_recovery.py) takes payments and stops on SIGTERM on it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from bot.eventloop import use_fast_event_loop


@pytest.fixture
def restored_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_loops_made_after_the_choice_are_uvloop_ones(restored_policy: None) -> None:
    assert use_fast_event_loop() == "uvloop"

    async def running_loop() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert asyncio.run(running_loop()).startswith("uvloop")


def test_without_uvloop_asyncio_runs_the_bot(restored_policy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where it cannot be installed
    assert use_fast_event_loop() == "asyncio"
    loop = asyncio.new_event_loop()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
