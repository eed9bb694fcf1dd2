"""iPay's request and reply hashes: lower-case hex HMAC-SHA256 of concatenated fields.

Each function spells out one hash string from `docs/ipay.md`, in its field order,
so a reviewer can hold them side by side. The sandbox uses the same functions to check
what the bot sends; the tests check them against vectors computed independently.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def sign(key: str, *parts: object) -> str:
    message = "".join("" if part is None else str(part) for part in parts)
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def same_hash(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected, given.lower())


TRANSACT_FIELDS = ("live", "oid", "inv", "amount", "tel", "eml", "vid", "curr", "p1", "p2", "p3", "p4", "cst", "cbk")


def transact_hash(key: str, fields: Mapping[str, object]) -> str:
    """live + oid + inv + amount + tel + eml + vid + curr + p1 + p2 + p3 + p4 + cst + cbk."""
    return sign(key, *(fields.get(name, "") for name in TRANSACT_FIELDS))


SIGNED_CHANNELS = ("MPESA", "AIRTEL")  # the reply hash covers these two entries, in this order


def transact_reply_hash(key: str, account: str, amount: str, oid: str, sid: str, paybills: Mapping[str, str]) -> str:
    """account + amount + oid + sid + "MPESA" + its paybill + "AIRTEL" + its paybill.

    Real replies list more channels (EQUITEL, and more may come) but iPay signs exactly the
    MPESA and AIRTEL entries, picked by name: hashing every listed channel would reject
    every real reply. `paybills` maps channel name to paybill; a missing one raises KeyError.
    """
    return sign(key, account, amount, oid, sid, *(part for name in SIGNED_CHANNELS for part in (name, paybills[name])))


def push_hash(key: str, phone: str, vid: str, sid: str) -> str:
    """phone + vid + sid."""
    return sign(key, phone, vid, sid)


def search_hash(key: str, oid: str, vid: str) -> str:
    """oid + vid."""
    return sign(key, oid, vid)


def search_reply_hash(key: str, record: Mapping[str, object]) -> str:
    """oid + vid + transaction_code + firstname + lastname + paid_at + payment_mode + sid."""
    names = ("oid", "vid", "transaction_code", "firstname", "lastname", "paid_at", "payment_mode", "sid")
    return sign(key, *(record.get(name, "") for name in names))


def refund_hash(key: str, code: str, vid: str) -> str:
    """The query-string form, keys in alphabetical order: `code=<code>&vid=<vid>` (docs/ipay.md §6)."""
    return sign(key, f"code={code}&vid={vid}")
