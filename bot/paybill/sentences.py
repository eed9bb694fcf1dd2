"""Every sentence about payments made by hand that named no order, in the reader's language
(msgids in the shared catalogue)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain import ManualPaymentRecord
from bot.i18n import _, ngettext
from bot.i18n.formats import money, nairobi_time
from bot.paybill import service
from bot.telegram.sentences import with_sandbox_tag


def render(kind: str, params: Mapping[str, Any]) -> str:
    """An outbox notice about a payment made by hand, in the current language."""
    if kind != service.UNMATCHED:
        raise ValueError(f"unknown notice kind {kind!r}")
    text = unmatched_line(
        ManualPaymentRecord(
            str(params["receipt"]),
            str(params["account"]),
            int(params["amount"]),
            str(params["payer"]),
            float(params["paid_at"]),
        )
    )
    return with_sandbox_tag(text, bool(params.get("sandbox")))


def _account(record: ManualPaymentRecord) -> str:
    return record.account or _("no account")


def unmatched_line(record: ManualPaymentRecord) -> str:
    """The merchant chat's line: money came in by Pay Bill that the bot could give to no order."""
    return _(
        "💰 {receipt} · {amount} paid by Pay Bill by {payer} at {when}, account {account}: it names no "
        "order waiting for payment, so no order was marked paid. Match it by hand."
    ).format(
        receipt=record.receipt,
        amount=money(record.amount),
        payer=record.payer_name or _("the payer"),
        when=nairobi_time(record.paid_at),
        account=_account(record),
    )


def with_unmatched(text: str, records: Sequence[ManualPaymentRecord]) -> str:
    """A report with the period's payments made by hand that named no order, under it."""
    if not records:
        return text
    total = sum(r.amount for r in records)
    head = ngettext(
        "💰 Paid by Pay Bill to no order: {count} payment, {total}. Match it by hand:",
        "💰 Paid by Pay Bill to no order: {count} payments, {total}. Match them by hand:",
        len(records),
    ).format(count=len(records), total=money(total))
    lines = [
        _("{receipt} · {amount} · account {account}").format(
            receipt=r.receipt, amount=money(r.amount), account=_account(r)
        )
        for r in records
    ]
    return "\n".join([text, "", head, *lines])
