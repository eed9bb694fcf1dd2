"""One way to run the Application: `async with running(application): ...`.

python-telegram-bot calls `post_init`, `post_stop` and `post_shutdown` only from `run_polling`
and `run_webhook`. Everything else that runs the bot (webhook mode on our own server, the
console, the tests, the crash harness, the benchmarks) starts it itself, so this is the one
place that does it, in one order:

    initialize → post_init → start → (the body) → stop → post_stop → post_shutdown → shutdown

`post_shutdown` runs *before* `shutdown`, where `run_polling` runs it after: ours lets the
notifier finish the sends in flight, which needs the bot's HTTP client that `shutdown` closes.
Whatever the body raises, and also when `post_init` or `start` fail half way, everything that
was started is stopped and `post_shutdown` closes what `post_init` opened (it copes with
services that never opened).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

from telegram.ext import Application, ApplicationBuilder, ContextTypes, ExtBot, JobQueue

BotApplication: TypeAlias = Application[
    ExtBot[Any],  # ExtBot[int] with our rate limiter (its retries per call), ExtBot[None] without one
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]
"""The Application `ApplicationBuilder()...build()` makes, with or without a rate limiter: the type to annotate
ours with instead of a bare `Application` and an ignore."""

BotBuilder: TypeAlias = ApplicationBuilder[
    ExtBot[Any],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]
"""The builder of a `BotApplication`: annotate the variable, or mypy fixes the bot type at its first assignment."""

AnyApplication = TypeVar("AnyApplication", bound=Application[Any, Any, Any, Any, Any, Any])


@asynccontextmanager
async def running(application: AnyApplication) -> AsyncIterator[AnyApplication]:
    """The application initialized, its `post_init` done and started, for the body's length."""
    async with application:  # initialize, and shutdown however we leave
        try:
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            yield application
        finally:
            await _stop(application)


async def _stop(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Stop what runs (updater first, as `run_polling` does), then the project's own close."""
    try:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()  # waits for queued updates and running jobs
            if application.post_stop is not None:
                await application.post_stop(application)
    finally:
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
