"""Logging set-up: secrets redacted, phone numbers masked, httpx kept quiet.

httpx logs every request URL at INFO, and every Bot API URL contains the bot token, so
its logger stays at WARNING. The filter is a second line of defence for anything else.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, TextIO

from bot.domain import mask_phone

_PHONE = re.compile(r"(?<!\d)(?:\+?254|0)[17]\d{8}(?!\d)")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = self._clean(text)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        record.msg, record.args = cleaned, None
        return True

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def configure_logging(secrets: Iterable[str], level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
