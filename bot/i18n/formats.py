"""How amounts, dates and times are said, in the reader's language: shillings as 'KES 1,500',
Nairobi dates and clock times, weekdays and months, an order id as the payer reads it.
"""

from __future__ import annotations

import math
from datetime import date, datetime

from bot.domain import NAIROBI, local_phone, mask_phone
from bot.i18n import N_, _, ngettext


def money(amount: int) -> str:
    """`KES 1,000` in both languages, as M-PESA writes it."""
    return f"KES {amount:,}"


_MONTHS = (
    N_("Jan"),
    N_("Feb"),
    N_("Mar"),
    N_("Apr"),
    N_("May"),
    N_("Jun"),
    N_("Jul"),
    N_("Aug"),
    N_("Sep"),
    N_("Oct"),
    N_("Nov"),
    N_("Dec"),
)


def nairobi_date(timestamp: float) -> str:
    """`29 Nov 2026`; in Kiswahili `29 Novemba 2026`."""
    moment = datetime.fromtimestamp(timestamp, NAIROBI)
    return f"{moment.day} {_(_MONTHS[moment.month - 1])} {moment.year}"  # "7 Desemba", as people write it


def clock_time(timestamp: float) -> str:
    """24-hour Nairobi time: never Swahili time-of-day counting, which misleads on a payment screen."""
    return datetime.fromtimestamp(timestamp, NAIROBI).strftime("%H:%M")


def nairobi_time(timestamp: float) -> str:
    return f"{nairobi_date(timestamp)}, {clock_time(timestamp)}"


def shop_words(shop_name: str) -> str:
    """The shop as customers read it: its configured name, or "the shop" in their language."""
    return shop_name or _("the shop")


def sentence_case(text: str) -> str:
    """A sentence that may open with "the shop" starts with a capital all the same."""
    return text[:1].upper() + text[1:]


def receipt_time(timestamp: float) -> tuple[str, str]:
    """The date and time as M-PESA's messages write them: `29/11/26` and `6:57 AM` (Nairobi)."""
    moment = datetime.fromtimestamp(timestamp, NAIROBI)
    hour = moment.hour % 12 or 12
    return moment.strftime("%d/%m/%y"), f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def readable_id(order_id: str) -> str:
    """`X4HCC6BKBRUB` -> `X4HC-C6BK-BRUB`: read aloud at a till in groups of four (/status takes both)."""
    return "-".join(order_id[i : i + 4] for i in range(0, len(order_id), 4))


def clock_time_up(timestamp: float) -> str:
    """A time to wait for, rounded up to the minute: 07:06:10 is "07:07", never too early."""
    return clock_time(math.ceil(timestamp / 60) * 60)


def minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes == 60:
        return _("hour")
    return ngettext("{n} minute", "{n} minutes", minutes).format(n=minutes)


_WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def month(day: date) -> str:
    return _(_MONTHS[day.month - 1])


def day_words(day: date, today: date) -> str:
    """`Sun 29 Nov` (`Jumapili 29 Novemba`), with the year when it is not this year."""
    words = f"{_(_WEEKDAYS[day.weekday()])} {day.day} {month(day)}"
    return words if day.year == today.year else f"{words} {day.year}"


EN_DASH = "\u2013"  # between the days of a range, as print has it


def shown_phone(phone: str, chat_id: int) -> str:
    """The payer's own number as they write it (`0712 345 678`) in their private chat; masked
    (`07** ***678`) where others could read it (groups)."""
    return local_phone(phone) if chat_id > 0 else mask_phone(phone)
