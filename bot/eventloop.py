"""The event loop the bot runs on: uvloop's where it is installed (requirements.txt has it).

It is the same asyncio API, with the loop itself (sockets, timers, callbacks) in C: a status
question over the REST API costs about a quarter less CPU on it (docs/performance.md). Where
uvloop cannot be installed (Windows), asyncio's own loop runs the bot unchanged.
"""

from __future__ import annotations

import asyncio


def use_fast_event_loop() -> str:
    """Make every loop created from now on (asyncio.run, python-telegram-bot's run_polling) a
    uvloop one, if uvloop is there; returns the loop's name for the start-up log."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
