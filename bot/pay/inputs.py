"""Reading what people type: Kenyan phone numbers and shilling amounts.

Both return a value or raise `InputError` whose `reason` picks the friendly message
(see `bot/pay/sentences.py`), so the chat (and any later API) validates the same way.
"""

from __future__ import annotations

import re
from enum import StrEnum

from bot.domain import Network


class InputProblem(StrEnum):
    PHONE_FORMAT = "phone_format"
    AMOUNT_NOT_A_NUMBER = "amount_not_a_number"
    AMOUNT_NOT_WHOLE = "amount_not_whole"
    AMOUNT_TOO_SMALL = "amount_too_small"
    AMOUNT_TOO_LARGE = "amount_too_large"


class InputError(ValueError):
    def __init__(self, problem: InputProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


_PHONE_SEPARATORS = re.compile(r"[\s\-.()\u00a0]")
_PHONE_FORMS = re.compile(r"^(?:\+?254|0)?([71]\d{8})$", re.ASCII)

# Airtel Kenya's prefixes (after the leading 0). Everything else on 07/01 is guessed as
# Safaricom (M-Pesa); numbers move between networks, so the payer can switch on the summary.
_AIRTEL_PREFIXES = ("73", "750", "751", "752", "753", "754", "755", "756", "762", "78", "100", "101", "102")


def parse_phone(text: str) -> str:
    """Normalise any usual Kenyan mobile form to `2547XXXXXXXX` / `2541XXXXXXXX`."""
    compact = _PHONE_SEPARATORS.sub("", text.strip())
    match = _PHONE_FORMS.match(compact)
    if not match:
        raise InputError(InputProblem.PHONE_FORMAT)
    return "254" + match.group(1)


def guess_network(phone: str) -> Network:
    national = phone[3:]
    return Network.AIRTEL if national.startswith(_AIRTEL_PREFIXES) else Network.MPESA


_CURRENCY = re.compile(r"^(?:kes|kshs?|sh|shs)\.?\s*|\s*(?:kes|kshs?|sh|shs|/=|/-)$", re.IGNORECASE)
_GROUPED = re.compile(r"^\d{1,3}(?:,\d{3})+$|^\d{1,3}(?: \d{3})+$", re.ASCII)  # 1,000 or 1 000
_PLAIN = re.compile(r"^\d+$", re.ASCII)
_DECIMAL = re.compile(r"^(\d+)\.(\d{1,2})$", re.ASCII)
_SIGNED = re.compile(r"^[+-]\d", re.ASCII)
_THOUSANDS = re.compile(r"^(\d{1,3})(?:\.(\d{1,3}))?\s?k$", re.ASCII | re.IGNORECASE)  # 1k, 1.5k, 2.25K


def parse_amount(text: str, minimum: int, maximum: int) -> int:
    """Whole shillings from `500`, `1,000`, `1 000`, `KES 500`, `Ksh.500`, `500/=`, and the
    thousands shorthand of Kenyan chats: `1k` is 1,000, `1.5k` 1,500 (at most three decimals,
    so always whole shillings).

    `12.00` is twelve shillings; `12.50` is refused (no cents on M-Pesa); anything that is
    not plainly a number (words, emoji, `1e9`, signs) is refused rather than guessed at.
    """
    body = text.strip()
    for _ in range(2):  # a prefix and a suffix: "KES 500/="
        body = _CURRENCY.sub("", body).strip()
    if _SIGNED.match(body):
        if body.startswith("-"):
            raise InputError(InputProblem.AMOUNT_TOO_SMALL)
        body = body[1:]  # "+0" is then refused as under the minimum, as "0" is
    thousands = _THOUSANDS.match(body)
    if thousands:
        body = str(int(thousands.group(1)) * 1000 + int((thousands.group(2) or "0").ljust(3, "0")))
    if _GROUPED.match(body):
        body = body.replace(",", "").replace(" ", "")
    decimal = _DECIMAL.match(body)
    if decimal:
        if decimal.group(2).strip("0"):
            raise InputError(InputProblem.AMOUNT_NOT_WHOLE)
        body = decimal.group(1)
    if not _PLAIN.match(body):
        raise InputError(InputProblem.AMOUNT_NOT_A_NUMBER)
    if len(body.lstrip("0")) > 12:  # keeps int() off a pasted wall of digits; leading zeros are harmless
        raise InputError(InputProblem.AMOUNT_TOO_LARGE)
    amount = int(body)
    if amount < minimum:
        raise InputError(InputProblem.AMOUNT_TOO_SMALL)
    if amount > maximum:
        raise InputError(InputProblem.AMOUNT_TOO_LARGE)
    return amount
