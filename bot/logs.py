"""Logging set-up: secrets redacted, phone numbers masked, one line per record, httpx kept quiet.

httpx logs every request URL at INFO, and every Bot API URL contains the bot token, so
its logger stays at WARNING. The filter is a second line of defence for anything else:
python-telegram-bot logs every update at DEBUG with the text as the user typed it, and the
web server's own loggers (uvicorn's) write what clients send, so both go through it too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TextIO

from bot.domain import mask_phone

# What `bot.pay.inputs.parse_phone` accepts, wherever it stands: the separators it ignores may
# come between any two digits ("0 7 1 2 - 7 7 7 - 7 7 0", "+254 (712) 777.770").
_SEPARATORS = r"[\s\-.()\u00a0]"
_DIGIT_RUN = re.compile(rf"\+?[0-9](?:{_SEPARATORS}*[0-9])*")
_DIGITS = re.compile(r"[0-9]+")
_PHONE_DIGITS = re.compile(r"(?:254|0)?([71][0-9]{8})")
_LONGEST_PHONE = 12  # 254 and nine digits
# Every character `str.splitlines` breaks at, written out instead: input never starts a log line.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def mask_phones(text: str) -> str:
    """Mask every Kenyan mobile number in `text`, however it is written (separators, +254, 0 or none)."""
    return _DIGIT_RUN.sub(_mask_run, text)


def _mask_run(run: re.Match[str]) -> str:
    """A run of digits and separators: each span of whole digit groups that reads as a phone is
    masked; a phone glued to other digits ("5000712345678") is not a phone."""
    text = run.group(0)
    groups = list(_DIGITS.finditer(text))
    pieces, done, i = [], 0, 0
    while i < len(groups):
        found = None
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j].group(0)
            if len(digits) > _LONGEST_PHONE:
                break
            match = _PHONE_DIGITS.fullmatch(digits)
            if match:
                found = (j, match.group(1))
        if found is None:
            i += 1
            continue
        j, national = found
        start = 0 if i == 0 else groups[i].start()  # a leading "+" belongs to the number
        pieces += [text[done:start], mask_phone("254" + national)]
        done, i = groups[j].end(), j + 1
    return "".join(pieces) + text[done:]


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = self._clean(text).translate(_LINE_BREAKS)
        if record.exc_text:  # a traceback keeps its lines
            record.exc_text = self._clean(record.exc_text)
        record.msg, record.args = cleaned, None
        return True

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return mask_phones(text)


def configure_logging(
    secrets: Iterable[str], level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in UVICORN_LOGGERS:  # no handlers of their own: through the root's, and its filter
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    return handler
