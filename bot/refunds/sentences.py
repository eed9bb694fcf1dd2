"""Every sentence about refunds, in the reader's language (msgids in the shared catalogue).

Notices arrive here as a kind and flat parameters (`bot.refunds.service`), rendered when sent;
the Telegram edge calls the other functions while it answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.domain import Network, Order, OrderStatus, Refund, RefundState, SummaryRow
from bot.i18n import _, ngettext
from bot.i18n.formats import money, nairobi_time, readable_id
from bot.orders.notices import provider_of
from bot.orders.sentences import status_words
from bot.providers.base import DEFAULT_PROVIDER_NAME
from bot.refunds import service
from bot.telegram.sentences import with_sandbox_tag


def _network(value: str) -> str:
    """As the payer's SMS will be signed."""
    return "M-PESA" if value == Network.MPESA.value else Network.AIRTEL.label


def _words(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": readable_id(params["order_id"]),
        "amount": money(params["amount"]),
        "asked": money(params["asked"]),
        "phone": params["phone"],
        "network": _network(params["network"]),
        "payer": params["payer"] or _("the payer"),
        "receipt": params["receipt"],
        "when": nairobi_time(params["paid_at"]),
        "asker": params["asked_by"],
        "approver": params["approved_by"],
        "provider": provider_of(params),
    }


def card(params: Mapping[str, Any], *, asked: bool) -> str:
    """The order a refund would give back: an admin's confirm card, or the card of a cashier's ask."""
    words = _words(params)
    if asked:
        head = _("↩️ {asker} asks for a refund of order {order_id}.").format(**words)
    else:
        head = _("↩️ Refund order {order_id}?").format(**words)
    words["network"] = Network(params["network"]).label  # as the shop's other lines name it
    lines = [head, _("{amount} paid by {payer} from {phone} ({network}), receipt {receipt}, {when}.").format(**words)]
    if params.get("ask_again"):
        lines.append(
            _("Once it is refunded, the order's chat gets a button to send the prompt again for {asked}.").format(
                **words
            )
        )
    lines.append(
        _("The whole payment goes back: {provider} refunds payments in full only. Nothing moves until you tap.").format(
            **words
        )
    )
    return "\n".join(lines)


def card_for(order: Order, amount: int, ask_again: bool, sandbox: bool, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """An admin's own confirm card, said now."""
    params = {
        "order_id": order.id,
        "amount": amount,
        "asked": order.amount,
        "phone": order.masked_phone,
        "network": order.network.value,
        "payer": order.payer_name or "",
        "receipt": order.receipt_code or "",
        "paid_at": order.paid_at or order.created_at,
        "asked_by": "",
        "approved_by": "",
        "ask_again": ask_again,
        "provider": provider,
    }
    return with_sandbox_tag(card(params, asked=False), sandbox)


def confirm_label(amount: int) -> str:
    return _("↩️ Refund {amount}").format(amount=money(amount))


def _refusal_words(params: Mapping[str, Any]) -> str:
    reason, detail, provider = params.get("reason"), params.get("detail") or "", provider_of(params)
    if reason == service.BALANCE_LOW:
        return _("your {provider} balance does not cover it. Top up your {provider} balance and try again.").format(
            provider=provider
        )
    if reason == service.ALREADY_REFUNDED:
        return _("{provider} says this payment was refunded already. Check {provider}'s dashboard.").format(
            provider=provider
        )
    if reason == service.UNKNOWN_PAYMENT:
        return _("{provider} does not know this payment's receipt code.").format(provider=provider)
    if reason == service.CREDENTIALS:  # only iPay names this reason: its settings are named
        return _("iPay refused the shop's credentials. Check IPAY_VID and IPAY_HASH_KEY.")
    return _("{provider} said: {detail}.").format(provider=provider, detail=detail.rstrip("."))


def _unknown_words(params: Mapping[str, Any]) -> str:
    provider = provider_of(params)
    if params.get("reason") == service.STOPPED:
        return _("the bot stopped before it recorded {provider}'s answer.").format(provider=provider)
    if params.get("reason") == service.NO_RESULT:
        return _("{provider} accepted the refund, but its result did not come: it is not confirmed.").format(
            provider=provider
        )
    return _("{provider}'s answer did not arrive.").format(provider=provider)


def render(kind: str, params: Mapping[str, Any]) -> str:
    """An outbox notice about a refund, in the current language."""
    words = _words(params)
    if kind == service.CARD:
        text = card(params, asked=True)
    elif kind == service.PAYER:
        text = _("{amount} for order {order_id} is being refunded to {phone}. {network} will send you an SMS.").format(
            **words
        )
    elif kind == service.MERCHANT:
        text = _(
            "↩️ Refunded {amount} for order {order_id} ({phone}, receipt {receipt}): asked by {asker}, "
            "approved by {approver}."
        ).format(**words)
    elif kind == service.DONE:
        text = _("✅ Refund done: {amount} for order {order_id} goes back to {phone}. The payer has been told.").format(
            **words
        )
        if params.get("c2b") or params.get("b2c"):
            text += " " + _("iPay balances left: C2B {c2b}, B2C {b2c}.").format(c2b=params["c2b"], b2c=params["b2c"])
    elif kind == service.REFUSED:
        text = _("❌ {provider} did not refund order {order_id} ({amount}): {why} The payer has not been told.").format(
            why=_refusal_words(params), **words
        )
    elif kind == service.UNKNOWN:
        text = _(
            "⚠️ Refund outcome unknown for order {order_id} ({amount}): {why} Check {provider}'s dashboard for receipt "
            "{receipt} before doing anything: the bot never sends it again by itself."
        ).format(why=_unknown_words(params), **words)
    elif kind == service.DECLINED:
        text = _("✖️ {approver} declined the refund of order {order_id} ({amount}).").format(**words)
    else:
        raise ValueError(f"unknown refund notice kind {kind!r}")
    return with_sandbox_tag(text, bool(params.get("sandbox")))


# -- answers at the edge ----------------------------------------------------------------


def usage() -> str:
    return _("Send /refund followed by the order id, for example /refund X4HC-C6BK-BRUB.")


def asked_admins(order_id: str, amount: int) -> str:
    return _(
        "I've asked the shop's admins to approve a refund of order {order_id} ({amount}). "
        "I'll tell you here when one answers."
    ).format(order_id=readable_id(order_id), amount=money(amount))


def sending(provider: str = DEFAULT_PROVIDER_NAME) -> str:
    return _("Sending the refund to {provider}. I'll tell you how it went.").format(provider=provider)


def declined_by_you() -> str:
    return _("Declined. Whoever asked has been told.")


def refusal(code: str, data: Mapping[str, Any]) -> str:
    """Why a refund cannot start (or a card cannot be answered) now."""
    order_id, provider = readable_id(str(data.get("order_id", ""))), provider_of(data)
    if code == "not_found":
        return _("Order {order_id} was not found.").format(order_id=order_id)
    if code == "not_paid":
        return _("Order {order_id} has no payment to refund ({status}).").format(
            order_id=order_id, status=status_words(OrderStatus(data["status"]))
        )
    if code == "too_old":
        days = int(data["days"])
        return ngettext(
            "Order {order_id} was paid {when}: a payment older than {days} day is refunded from {provider}'s "
            "dashboard, not here.",
            "Order {order_id} was paid {when}: a payment older than {days} days is refunded from {provider}'s "
            "dashboard, not here.",
            days,
        ).format(order_id=order_id, when=nairobi_time(float(data["paid_at"])), days=days, provider=provider)
    if code == "asked":
        return _("A refund of order {order_id} is already waiting for an admin.").format(order_id=order_id)
    if code == "sending":
        return _("The refund of order {order_id} is on its way to {provider}.").format(
            order_id=order_id, provider=provider
        )
    if code == "done":
        return _("Order {order_id} was refunded already ({when}).").format(
            order_id=order_id, when=nairobi_time(float(data["at"]))
        )
    if code == "unknown":
        return _(
            "The refund of order {order_id} has an unknown outcome: check {provider}'s dashboard before anything else."
        ).format(order_id=order_id, provider=provider)
    if code == "not_set_up":
        return _(
            "Refunds through {provider} need DARAJA_INITIATOR and DARAJA_SECURITY_CREDENTIAL (from the M-Pesa "
            "portal) in the bot's settings. Nothing was sent: refund order {order_id} from the portal, or set them "
            "and try again."
        ).format(order_id=order_id, provider=provider)
    if code in ("answered", "declined"):
        return _("This refund was answered already.")
    return _("That button is no longer active.")


def status_line(refund: Refund) -> str | None:
    """/status of an order with a refund on its way or done. Asks, declines, refusals and
    unknown outcomes are the shop's business: the payer hears nothing of them."""
    amount = money(refund.amount)
    if refund.state is RefundState.DONE:
        return _("Refunded: {amount}, {when}").format(amount=amount, when=nairobi_time(refund.done_at or 0.0))
    if refund.state is RefundState.SENDING:
        return _("Refund of {amount}: on its way").format(amount=amount)
    return None


def summary_lines(received: int, totals: list[tuple[RefundState, int, int]]) -> list[str]:
    """The refunds block under /summary and the daily summary: what went back, the net takings,
    and refunds not yet known to be done."""
    done = [(n, amount) for state, n, amount in totals if state is RefundState.DONE]
    lines = []
    if done:
        count, given = done[0]
        lines.append(
            ngettext(
                "↩️ Refunded: {n} payment, {amount}; net takings {net}",
                "↩️ Refunded: {n} payments, {amount}; net takings {net}",
                count,
            ).format(n=count, amount=money(given), net=money(received - given))
        )
    open_count = sum(n for state, n, _amount in totals if state is not RefundState.DONE)
    if open_count:
        open_amount = sum(amount for state, _n, amount in totals if state is not RefundState.DONE)
        lines.append(
            ngettext(
                "⚠️ {n} refund on its way or of unknown outcome: {amount}",
                "⚠️ {n} refunds on their way or of unknown outcome: {amount}",
                open_count,
            ).format(n=open_count, amount=money(open_amount))
        )
    return lines


def with_refunds(report: str, rows: list[SummaryRow], totals: list[tuple[RefundState, int, int]]) -> str:
    """A summary (/summary, the daily one) with its refunds block under it: totals are net."""
    received = sum(row.received for row in rows if row.status.money_received)
    return "\n".join([report, *summary_lines(received, totals)])


def totals_params(totals: list[tuple[RefundState, int, int]]) -> list[list[Any]]:
    return [[state.value, count, amount] for state, count, amount in totals]


def totals_from(params: list[list[Any]]) -> list[tuple[RefundState, int, int]]:
    return [(RefundState(state), int(count), int(amount)) for state, count, amount in params]


def listing_label(order_id: str, amount: int) -> str:
    return _("↩️ Refund {order_id} ({amount})").format(order_id=readable_id(order_id), amount=money(amount))


def help_line() -> str:
    """/help for admins and staff."""
    return _("/refund <order id>: give a payment back in full (a cashier's /refund asks the admins).")
