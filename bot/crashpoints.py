"""Named points where the crash test kills the process, to prove a crash there loses nothing.

`PESABOT_CRASH_AT=<name>` makes the process SIGKILL itself the first time it reaches that
point: no cleanup, no flush, exactly like a power cut or an OOM kill. Unset (always, in
production), a crash point is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = (
    "order_written",
    "transact_answered",
    "session_recorded",
    "prompt_pushed",
    "outcome_recorded",
    "message_delivered",
)
# A refund: iPay answered, its answer not yet recorded (a restart marks it "outcome unknown").
REFUND_CRASH_POINTS = ("refund_answered",)
# The /pay conversation: a step written to the store but not yet answered, and answered.
CONVERSATION_CRASH_POINTS = ("draft_saved", "draft_answered")
# SQLite: several writes ran in one shared transaction, its COMMIT not yet made.
STORE_CRASH_POINTS = ("shared_commit",)


def crash_point(name: str) -> None:
    if os.environ.get("PESABOT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
