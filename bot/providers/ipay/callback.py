"""iPay's callback: `GET <callback URL>?id=<order id>&status=<code>` when a payment moves
(docs/ipay.md, section 4). It is not signed, so it only prompts a lookup."""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.providers.base import Callback

# iPay's callback status codes (docs/ipay.md, section 4).
CALLBACK_STATUS = {
    "aei7p7yrx4ae34": "success",
    "fe2707etr5s4wq": "failed",
    "bdi6p2yy76etrs": "pending",
    "cr5i3pgy9867e1": "used",
    "dtfi4p7yty45wq": "less",
    "eq3i7p5yt7645e": "more",
}
MONEY_CODES = {"aei7p7yrx4ae34", "dtfi4p7yty45wq", "eq3i7p5yt7645e", "cr5i3pgy9867e1"}
_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,34}")  # with fullmatch: "ABC\n" is not an order id


def read_callback(params: Mapping[str, str]) -> Callback | None:
    """The callback's order id and status code; None unless both are well formed and known."""
    order_id, code = params.get("id", ""), params.get("status", "")
    if not _ORDER_ID.fullmatch(order_id) or code not in CALLBACK_STATUS:
        return None
    return Callback(order_id, CALLBACK_STATUS[code], code in MONEY_CODES)
