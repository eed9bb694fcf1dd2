"""Work a service starts and does not wait for (a prompt being sent, a refund call), kept so a
clean shutdown and the tests can wait for it, and so a failure is logged rather than lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class BackgroundWork:
    """The tasks one service has running; `what` names them in the log when one fails."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # a reference kept, so the task is not collected while it runs
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", self._what, exc_info=task.exception())

    async def wait_idle(self) -> None:
        """Until no task runs (one may start another while it ends)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
