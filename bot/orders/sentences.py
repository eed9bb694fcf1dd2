"""What a payment says as it lives: the prompt sent or not, paid (and paid wrong), not paid and
why, in doubt, the limits that refuse a prompt, the merchant's lines and digest, and an order's
status when asked.

Plain text (no parse mode): nothing a user types can break the formatting. Placeholders are
`{name}` (str.format), filled after translation, so a translation may move them but must keep them all.
"""

from __future__ import annotations

from typing import Any

from bot.domain import Network, Order, OrderStatus, Payment, RequestUnavailable, local_phone, mask_phone
from bot.i18n import N_, _, ngettext
from bot.i18n.formats import (
    clock_time,
    clock_time_up,
    minutes,
    money,
    nairobi_time,
    readable_id,
    receipt_time,
    shop_words,
    shown_phone,
)
from bot.orders import notices
from bot.orders.service import (
    DOUBT_UNREACHABLE,
    DOUBT_UNVERIFIED,
    REASON_IPAY_REFUSED,
    REASON_IPAY_UNREACHABLE,
    REASON_NO_ANSWER,
    REASON_NOT_SENT,
    REASON_PROVIDER_REFUSED,
    REASON_PROVIDER_UNREACHABLE,
    REASON_WITHDRAWN,
    SMALLEST_PROMPT,
)
from bot.providers.base import DEFAULT_PROVIDER_NAME, FailureKind
from bot.requests.sentences import request_unavailable
from bot.telegram.sentences import MESSAGE_LIMIT, not_your_button, sandbox_tag, stale_button


def _phone(order: Order) -> str:
    return shown_phone(order.phone, order.chat_id)


def sending_again(order: Order) -> str:
    return _("Sending the {network} prompt again for {amount} to {phone}… (order {order_id})").format(
        network=order.network.label, amount=money(order.amount), phone=_phone(order), order_id=readable_id(order.id)
    )


def check_phone(order: Order) -> str:
    return _(
        "📲 Check your phone and enter your {network} PIN to pay {amount}.\n"
        "Order {order_id}. I'll tell you here as soon as it is paid."
    ).format(network=order.network.label, amount=money(order.amount), order_id=readable_id(order.id))


def prompt_unconfirmed(order: Order, paybill: bool = False, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """The push gave no clear answer: the prompt may or may not be on the phone. With `paybill`,
    the way round: the same order paid by Pay Bill (the button shows how)."""
    if paybill:
        return _(
            "⏳ {provider} did not confirm that the prompt reached {phone}. If your phone shows it, "
            "enter your PIN to pay {amount}. If it does not, tap “📋 No prompt on your phone?” "
            "to pay the same order by Pay Bill. I'll tell you here when it is paid.\n"
            "Order {order_id}."
        ).format(phone=_phone(order), amount=money(order.amount), order_id=readable_id(order.id), provider=provider)
    return _(
        "⏳ {provider} did not confirm that the prompt reached {phone}. If your phone shows it, "
        "enter your PIN to pay {amount}; I'll tell you here when it is paid.\n"
        "Order {order_id}."
    ).format(phone=_phone(order), amount=money(order.amount), order_id=readable_id(order.id), provider=provider)


def _payer(order: Order, payment: Payment) -> str:
    """Who paid: in the payer's private chat their number and the name M-PESA gave; where others
    read (a group), the masked number alone."""
    if order.chat_id > 0 and payment.payer_name:
        return f"{local_phone(order.phone)} ({payment.payer_name})"
    return _phone(order)


def _confirmed(order: Order, payment: Payment, shop: str, note: str = "") -> str:
    """The M-PESA-shaped first sentence; for a merchant's request, what it was for after it."""
    day, clock = receipt_time(payment.paid_at)
    paid_for = " " + _("For: {note}.").format(note=note.rstrip(".")) if note else ""
    return (
        _("{receipt} Confirmed. {amount} paid to {shop} from {payer} on {date} at {time}.")
        .format(
            receipt=payment.receipt_code,
            amount=money(payment.amount),
            shop=shop_words(shop),
            payer=_payer(order, payment),
            date=day,
            time=clock,
        )
        .lstrip()  # a payment whose receipt is not known yet starts at "Confirmed."
        + paid_for
    )


def paid(order: Order, payment: Payment, shop: str = "", note: str = "") -> str:
    """Shaped like M-PESA's own confirmation: receipt code first, amount, to whom, from whom, when."""
    order_words = _("Order {order_id}.").format(order_id=readable_id(order.id))
    return _confirmed(order, payment, shop, note) + " " + order_words


def paid_wrong_amount(order: Order, payment: Payment, shop: str = "", note: str = "") -> str:
    """Less: how much is still to pay (the button asks for exactly that). More: the extra, which
    the shop settles."""
    if payment.amount < order.amount:
        gap = _("That is {rest} less than the {asked} asked: {rest} is still to pay.")
        difference = order.amount - payment.amount
    else:
        gap = _("That is {rest} more than the {asked} asked: the shop will settle the extra {rest} with you.")
        difference = payment.amount - order.amount
    sentences = [_confirmed(order, payment, shop, note), gap.format(rest=money(difference), asked=money(order.amount))]
    if payment.amount < order.amount:
        sentences += _rest_too_little(difference)
    sentences.append(_("Order {order_id}.").format(order_id=readable_id(order.id)))
    return " ".join(sentences)


def _rest_too_little(rest: int) -> list[str]:
    """A rest too small for a prompt (iPay's least) gets no "Pay the rest" button: say so."""
    if rest >= SMALLEST_PROMPT:
        return []
    return [
        _("{rest} is too little for a prompt (the least is {least}): please pay it to the shop directly.").format(
            rest=money(rest), least=money(SMALLEST_PROMPT)
        )
    ]


def paid_after_earlier(order: Order, payment: Payment, shop: str, follow: notices.FollowUp) -> str:
    """Money on an order that follows on from earlier ones ("Pay the rest"): what was paid on
    them, what now, and whether the first order's amount is now paid in full, short or over."""
    count, total = len(follow.payments), follow.paid_before + payment.amount
    if total == follow.asked:
        said = ngettext(
            "{before} of {asked} paid earlier on order {orders} (receipt {receipts}), {now} now: {asked} paid in full.",
            "{before} of {asked} paid earlier on orders {orders} (receipts {receipts}), {now} now: "
            "{asked} paid in full.",
            count,
        )
    elif total < follow.asked:
        said = ngettext(
            "{before} of {asked} paid earlier on order {orders} (receipt {receipts}), {now} now: "
            "{total} of {asked} paid, {rest} is still to pay.",
            "{before} of {asked} paid earlier on orders {orders} (receipts {receipts}), {now} now: "
            "{total} of {asked} paid, {rest} is still to pay.",
            count,
        )
    else:
        said = ngettext(
            "{before} of {asked} paid earlier on order {orders} (receipt {receipts}), {now} now: "
            "{total} paid, {rest} more than the {asked} asked: the shop will settle the extra {rest} with you.",
            "{before} of {asked} paid earlier on orders {orders} (receipts {receipts}), {now} now: "
            "{total} paid, {rest} more than the {asked} asked: the shop will settle the extra {rest} with you.",
            count,
        )
    sentences = [_confirmed(order, payment, shop), said.format(**_follow_up_words(follow, payment))]
    if total < follow.asked:
        sentences += _rest_too_little(follow.asked - total)
    sentences.append(_("Order {order_id}.").format(order_id=readable_id(order.id)))
    return " ".join(sentences)


def _follow_up_words(follow: notices.FollowUp, payment: Payment) -> dict[str, str]:
    """The placeholders both the receipt and the merchant's line fill for a follow-up order."""
    total = follow.paid_before + payment.amount
    return {
        "before": money(follow.paid_before),
        "asked": money(follow.asked),
        "orders": ", ".join(readable_id(p.order_id) for p in follow.payments),
        "receipts": ", ".join(p.receipt_code for p in follow.payments),
        "now": money(payment.amount),
        "total": money(total),
        "rest": money(abs(follow.asked - total)),
        "first": readable_id(follow.first_order_id),
    }


def paid_after_cancel() -> str:
    return _("Paid after all (you had cancelled it).")


# Why an order ended without money, as stored in `last_error`: a code (the service's, and the
# providers' failure kinds), said at the edge. "provider_refused:<provider>:<its words>" keeps the
# provider's name and own words; "provider_unreachable:<provider>" its name. The codes written
# before they named the provider ("ipay_refused:<words>", "ipay_unreachable") are said as iPay's.
REASON_CANCELLED, REASON_WRONG_PIN, REASON_INSUFFICIENT, REASON_TIMED_OUT = (
    FailureKind.CANCELLED.value,
    FailureKind.WRONG_PIN.value,
    FailureKind.INSUFFICIENT_FUNDS.value,
    FailureKind.TIMED_OUT.value,
)


def reason(code: str | None) -> str:
    """A stored reason code in the reader's words; text stored before codes existed is said as is."""
    if not code:
        return ""
    head, _sep, detail = code.partition(":")
    if head == REASON_PROVIDER_REFUSED:
        provider, _sep, said = detail.partition(":")
        return _("{provider} refused it ({detail}).").format(provider=provider, detail=said)
    if head == REASON_PROVIDER_UNREACHABLE:
        return _(
            "I couldn't reach {provider}, so no prompt was sent and nothing was charged. Please try again in a minute."
        ).format(provider=detail or DEFAULT_PROVIDER_NAME)
    words = {
        REASON_CANCELLED: N_("the payer cancelled the prompt"),
        REASON_WRONG_PIN: N_("a wrong PIN was entered"),
        REASON_INSUFFICIENT: N_("the balance was not enough"),
        REASON_TIMED_OUT: N_("the prompt timed out"),
        REASON_NO_ANSWER: N_("no answer in time"),
        REASON_WITHDRAWN: N_("cancelled in the chat"),
        REASON_NOT_SENT: N_(
            "the bot restarted before the prompt was sent, so no prompt was sent and nothing was charged."
        ),
    }
    if head == REASON_IPAY_UNREACHABLE and not detail:
        return reason(f"{REASON_PROVIDER_UNREACHABLE}:{DEFAULT_PROVIDER_NAME}")
    if head == REASON_IPAY_REFUSED:
        return reason(f"{REASON_PROVIDER_REFUSED}:{DEFAULT_PROVIDER_NAME}:{detail}")
    return _(words[head]) if head in words and not detail else code


def not_paid(
    order: Order,
    status: OrderStatus,
    code: str,
    prompts_left: int | None = None,
    again_at: float | None = None,
    *,
    watched: bool = False,
) -> str:
    """How an order ended without money, with advice that fits the failure. A prompt that timed
    out before the deadline (`watched`) may still be paid: nothing says it is dead."""
    ref = {"order_id": readable_id(order.id), "amount": money(order.amount), "network": order.network.label}
    if status is OrderStatus.WITHDRAWN:
        return _(
            "✖️ You cancelled order {order_id} ({amount}). If the phone still shows the prompt, "
            "ignore it: nothing is charged unless the PIN is entered. If it is paid anyway, I'll tell you here."
        ).format(**ref)
    if status is OrderStatus.CANCELLED:
        head = _("✖️ The payment was cancelled on the phone. Nothing was charged.")
        advice = _("Tap the button to send the prompt again, or /pay for a new payment.")
    elif status is OrderStatus.EXPIRED:
        if code == REASON_TIMED_OUT and watched:
            head = _("⌛ The prompt timed out on the phone. If you paid anyway, I'll tell you here.")
            advice = _(
                "You can still pay this same order by Pay Bill (tap the button). "
                "A new prompt can go to this phone once this order has ended."
            )
            return "\n".join([head, _("Order {order_id} ({amount}).").format(**ref) + " " + advice])
        if code == REASON_TIMED_OUT:
            head = _(
                "⌛ The prompt timed out on the phone. Nothing was charged. If it is paid anyway, I'll tell you here."
            )
        else:
            head = _("⌛ No payment arrived in time, so the order has expired. Nothing was charged.")
        advice = _("Make sure the phone is on, unlocked and has signal, then tap the button to send the prompt again.")
    elif code == REASON_INSUFFICIENT:
        head = _("❌ The payment did not go through: the balance was not enough. Nothing was charged.")
        advice = _(
            "Top up your {network} balance (or use Fuliza) and tap the button to try again, "
            "or send /pay to pay from another number."
        )
    elif code == REASON_WRONG_PIN:
        head = _("❌ The payment did not go through: a wrong PIN was entered. Nothing was charged.")
        advice = _("Tap the button to try again, and enter your {network} PIN carefully.")
    else:
        head = _("❌ The payment did not go through: {reason}").format(reason=_full_stop(reason(code)))
        advice = _("Tap the button to send the prompt again, or /pay for a new payment.")
    lines = [head, _("Order {order_id} ({amount}).").format(**ref) + " " + advice.format(**ref)]
    if prompts_left is not None:
        lines.append(prompts_left_words(prompts_left, again_at))
    return "\n".join(lines)


def _full_stop(sentence: str) -> str:
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def prompts_left_words(left: int, again_at: float | None = None) -> str:
    """Said before the per-phone limit is hit, so nobody is surprised by it; once it is hit, when
    the next prompt may go out and how to pay meanwhile (no button is offered then)."""
    if left <= 0 and again_at is not None:
        return " ".join(
            (
                _(
                    "This phone has had all the prompts it may get within an hour: the next can go out after {time}."
                ).format(time=clock_time_up(again_at)),
                pay_directly(),
            )
        )
    if left <= 0:
        return _("This phone has had all the prompts it may get this hour.")
    return ngettext(
        "This phone may get {n} more prompt this hour.", "This phone may get {n} more prompts this hour.", left
    ).format(n=left)


def outcome(
    order: Order,
    status: OrderStatus,
    payment: Payment | None,
    code: str | None,
    *,
    shop: str = "",
    prompts_left: int | None = None,
    prompts_again_at: float | None = None,
    follow_up: notices.FollowUp | None = None,
    watched: bool = False,
    note: str = "",
) -> str:
    """The new message that tells the chat how an order ended. `order` is as it was before: money
    after a cancel in the chat says so first; money on an order that follows on from earlier
    ones (`follow_up`) says what was paid on them too."""
    if payment is None:
        return not_paid(order, status, code or "", prompts_left, prompts_again_at, watched=watched)
    if follow_up is not None:
        text = paid_after_earlier(order, payment, shop, follow_up)
    elif status is OrderStatus.PAID:
        text = paid(order, payment, shop, note)
    else:
        text = paid_wrong_amount(order, payment, shop, note)
    return text + "\n" + paid_after_cancel() if order.status is OrderStatus.WITHDRAWN else text


def prompt_outcome(order: Order, status: OrderStatus, *, in_doubt: bool = False) -> str:
    """What the "check your phone" message becomes once the order has moved on (or is in doubt)."""
    return _("Order {order_id}: {amount} from {phone} by {network}: {status}.").format(
        order_id=readable_id(order.id),
        amount=money(order.amount),
        phone=_phone(order),
        network=order.network.label,
        status=in_doubt_words() if in_doubt else status_words(status),
    )


def phone_busy(masked_phone: str, order_id: str | None, until: float, cancelled_at: float | None = None) -> str:
    """A prompt is open on that phone. The order is named only to the chat it belongs to; one the
    reader cancelled themselves is said as it is (the phone may show it a little longer)."""
    if order_id is not None and cancelled_at is not None:
        return _(
            "You cancelled order {order_id} at {cancelled}; the phone may still show its prompt until {time}. "
            "Please send the new payment after {time}."
        ).format(order_id=order_id, cancelled=clock_time_up(cancelled_at), time=clock_time_up(until))
    if order_id is None:
        return _(
            "A payment prompt for {phone} is still waiting for an answer. "
            "Please answer it on the phone, or try again after {time} when it has expired."
        ).format(phone=masked_phone, time=clock_time_up(until))
    return _(
        "A payment prompt for {phone} is still waiting for an answer (order {order_id}). "
        "Please answer it on the phone, or try again after {time} when it has expired."
    ).format(phone=masked_phone, order_id=order_id, time=clock_time_up(until))


def phone_in_doubt(masked_phone: str, order_id: str | None, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """The phone's last payment is in doubt: no new prompt until the provider has answered for it, so
    nobody pays twice. The order is named only to the chat it belongs to."""
    if order_id is None:
        return _(
            "The last payment from {phone} is not confirmed yet: {provider} has not answered for it. "
            "No new prompt goes to this phone until it has, so nobody pays twice."
        ).format(phone=masked_phone, provider=provider)
    return _(
        "Order {order_id} from {phone} is not confirmed yet: {provider} has not answered for it. "
        "No new prompt goes to this phone until it has, so nobody pays twice; I'll tell you here."
    ).format(phone=masked_phone, order_id=order_id, provider=provider)


def waited_order_paid(order_id: str) -> str:
    return _("Order {order_id} was paid after all, so I did not send the new prompt. Nothing more was charged.").format(
        order_id=readable_id(order_id)
    )


def pay_directly() -> str:
    """The way round a limit for the customer at the counter: no prompt is needed to pay a shop."""
    return _("To pay now, pay the shop directly instead: cash, or the shop's own till or Pay Bill number.")


def user_limit(limit: int, window: float, until: float) -> str:
    return ngettext(
        "You have asked for {n} payment prompt in the last {window}, the most I send for one person. "
        "Please try again after {time}.",
        "You have asked for {n} payment prompts in the last {window}, the most I send for one person. "
        "Please try again after {time}.",
        limit,
    ).format(n=limit, window=minutes(window), time=clock_time_up(until))


def network_not_taken(phone: str, network: Network, taken: tuple[Network, ...]) -> str:
    """A phone on a network the shop's payment provider cannot prompt (Airtel Money where only
    M-Pesa is taken): no prompt is sent, and the payer is told which network to use."""
    return _("This shop takes {taken} only, and {phone} is an {network} number. No prompt was sent.").format(
        taken=" / ".join(n.label for n in taken), phone=mask_phone(phone), network=network.label
    )


def phone_limit(phone: str, limit: int, until: float) -> str:
    """The phone's hourly limit, said with what it protects against (staff meet it too: it is the
    phone's, not the asker's) and how the customer can pay meanwhile."""
    said = ngettext(
        "{phone} has had {n} PIN prompt in the last hour, the most one phone may get, so that nobody can "
        "flood a stranger's phone with prompts. The next can go out after {time}.",
        "{phone} has had {n} PIN prompts in the last hour, the most one phone may get, so that nobody can "
        "flood a stranger's phone with prompts. The next can go out after {time}.",
        limit,
    ).format(phone=mask_phone(phone), n=limit, time=clock_time_up(until))
    return said + " " + pay_directly()


def pay_staff_only() -> str:
    return _("Payments here are taken by the shop's staff. Please ask a cashier to send you the payment prompt.")


def pay_needs_a_person() -> str:
    return _("To take a payment I need to know who asks: send /pay from your own account, not as a group or channel.")


def retry_not_needed(order: Order) -> str:
    if order.retry_order_id:
        again = readable_id(order.retry_order_id)
        return _("The prompt was already sent again (order {order_id}).").format(order_id=again)
    if order.status.money_received:
        return _("This order is already paid.")
    if order.in_doubt:
        return _(
            "This payment is not confirmed yet, so it cannot be cancelled. I keep checking and will tell you here."
        )
    if order.status is OrderStatus.PENDING:
        return _("This order is still waiting for payment.")
    if order.next_poll_at is not None:
        return _("I'm still checking whether this order was paid. Please try again in a minute.")
    return stale_button()


def refusal(code: str, data: dict[str, Any], chat_id: int | None = None, user_id: int | None = None) -> str:
    """Why a payment cannot start now (`PaymentRefused`), in the reader's words, as said in
    `chat_id` to `user_id` (another chat's order is never named; "you cancelled" is said only to
    the person who did)."""
    if code == "user_limit":
        return user_limit(data["limit"], data["window"], data["until"])
    if code == "phone_busy" and data.get("in_doubt"):
        own = chat_id is not None and data.get("order_chat") == chat_id
        order_id = readable_id(data["order_id"]) if own else None
        return phone_in_doubt(data["masked_phone"], order_id, data.get("provider", DEFAULT_PROVIDER_NAME))
    if code == "phone_busy" and "order_id" in data:
        own = chat_id is not None and data.get("order_chat") == chat_id
        order_id = readable_id(data["order_id"]) if own else None
        theirs = own and user_id is not None and data.get("order_user") == user_id
        return phone_busy(data["masked_phone"], order_id, data["until"], data.get("cancelled_at") if theirs else None)
    if code == "phone_limit":
        return phone_limit(data["phone"], data["limit"], data["until"])
    if code == "network_not_taken":
        return network_not_taken(data["phone"], data["network"], data["taken"])
    if code == "paid_after_all":
        return waited_order_paid(data["order_id"])
    if code == "rest_too_small":
        return " ".join(_rest_too_little(data["rest"]))
    if code == "retry_not_needed":
        return retry_not_needed(data["order"])
    if code == "not_your_button":
        return not_your_button()
    if code == "request_taken":  # a merchant's payment request: paid, being paid, expired or cancelled
        why = RequestUnavailable(data["state"], data["being_paid"], data.get("missing", 0))
        return request_unavailable(why, data.get("shop", ""))
    return stale_button()


def merchant_notice(
    order: Order,
    status: OrderStatus,
    payment: Payment | None,
    code: str | None,
    follow_up: notices.FollowUp | None = None,
) -> str:
    """The merchant chat's line about an order. Money on an order that follows on from earlier
    ones (`follow_up`) is told with them, after this order's own receipt and id: what was paid on
    them and whether the first order's amount is now paid in full (instead of this order's own
    shortfall or extra). Money starts with its receipt code, as M-PESA's own messages do."""
    parts = [payment.receipt_code] if payment and payment.receipt_code else []  # a receipt may be unknown yet
    parts += [status_name(status), money(payment.amount if payment else order.amount)]
    if payment and payment.amount != order.amount:
        parts.append(_("(asked {amount})").format(amount=money(order.amount)))
    parts += [order.network.label, mask_phone(order.phone)]
    if payment and payment.payer_name:
        parts.append(_("received from {payer}").format(payer=payment.payer_name))
    if payment and follow_up is None:
        parts += _merchant_gap(order, payment)
    if code and not payment:
        parts.append(f"({reason(code)})")
    parts.append(_("order {order_id}").format(order_id=readable_id(order.id)))
    if payment and follow_up is not None:
        parts += _merchant_follow_up(follow_up, payment)
    if order.requested_by:
        parts.append(_("asked by {who}").format(who=order.requested_by))
    return " · ".join(parts)


def _merchant_gap(order: Order, payment: Payment) -> list[str]:
    """Paid more: the refund due; paid less: what is still to pay."""
    if payment.amount > order.amount:
        return [_("refund of {amount} due").format(amount=money(payment.amount - order.amount))]
    if payment.amount < order.amount:
        return [_("{amount} still to pay").format(amount=money(order.amount - payment.amount))]
    return []


def _merchant_follow_up(follow: notices.FollowUp, payment: Payment) -> list[str]:
    """Two parts of the merchant's line: the earlier payments, and the first order's amount now."""
    words = _follow_up_words(follow, payment)
    earlier = ngettext(
        "{before} of {asked} paid earlier on order {orders} (receipt {receipts})",
        "{before} of {asked} paid earlier on orders {orders} (receipts {receipts})",
        len(follow.payments),
    ).format(**words)
    total = follow.paid_before + payment.amount
    if total == follow.asked:
        now = _("order {first} now paid in full")
    elif total < follow.asked:
        now = _("{rest} still to pay on order {first}")
    else:
        now = _("order {first} overpaid, refund of {rest} due")
    return [earlier, now.format(**words)]


def status_name(status: OrderStatus) -> str:
    """The merchant line's first word: the status in capitals."""
    names = {
        OrderStatus.PENDING: N_("PENDING"),
        OrderStatus.PAID: N_("PAID"),
        OrderStatus.UNDERPAID: N_("UNDERPAID"),
        OrderStatus.OVERPAID: N_("OVERPAID"),
        OrderStatus.CANCELLED: N_("CANCELLED"),
        OrderStatus.FAILED: N_("FAILED"),
        OrderStatus.EXPIRED: N_("EXPIRED"),
        OrderStatus.WITHDRAWN: N_("WITHDRAWN"),
    }
    return _(names[status])


def nothing_to_cancel() -> str:
    return _("There is nothing to cancel. Send /pay to make a payment.")


def order_cancelled_popup() -> str:
    return _("Cancelled.")


def sent_again_as(order_id: str) -> str:
    return _("🔁 Sent again as order {order_id}.").format(order_id=readable_id(order_id))


def asking_for_rest(order: Order) -> str:
    """The underpaid receipt's note once "Pay the rest" is pressed: what the new order asks for."""
    return _("💳 Asking for the remaining {amount}: order {order_id}.").format(
        amount=money(order.amount), order_id=readable_id(order.id)
    )


def status_not_found() -> str:
    return _("I couldn't find that order in this chat. Check the id, or send /status to list your orders.")


def status_no_orders() -> str:
    return _("This chat has no orders yet. Send /pay to make one.")


_STATUS_WORDS = {
    OrderStatus.PENDING: N_("⏳ waiting for payment"),
    OrderStatus.PAID: N_("✅ paid"),
    OrderStatus.UNDERPAID: N_("⚠️ paid less than asked"),
    OrderStatus.OVERPAID: N_("⚠️ paid more than asked"),
    OrderStatus.CANCELLED: N_("✖️ cancelled on the phone"),
    OrderStatus.FAILED: N_("❌ failed"),
    OrderStatus.EXPIRED: N_("⌛ expired"),
    OrderStatus.WITHDRAWN: N_("✖️ cancelled in the chat"),
}


def status_words(status: OrderStatus) -> str:
    return _(_STATUS_WORDS[status])


def order_state_words(order: Order) -> str:
    """An order's state as lists show it: a pending order in doubt says so."""
    return in_doubt_words() if order.in_doubt else status_words(order.status)


def in_doubt_words() -> str:
    return _("❓ in doubt: not confirmed yet")


def in_doubt(order: Order, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """To the payer, once, when an order's deadline passed without an answer from the provider the bot
    can trust: it is not said to have failed, nor that nothing was charged."""
    return _(
        "⏳ I can't confirm the payment for order {order_id} ({amount}) yet: {provider} has not given me "
        "an answer I can rely on. If you entered your PIN, your money is not lost. I keep checking "
        "and will tell you here as soon as I know. Please don't pay this order again meanwhile."
    ).format(order_id=readable_id(order.id), amount=money(order.amount), provider=provider)


def doubt_reason(code: str | None, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """Why an order is in doubt, in the shop's words."""
    if code == DOUBT_UNREACHABLE:
        return _("{provider} could not be reached since the deadline").format(provider=provider)
    if code == DOUBT_UNVERIFIED:
        return _(
            "{provider}'s answer did not verify (wrong hash or another order), so nothing was recorded from it"
        ).format(provider=provider)
    return _("{provider}'s answers could not be read").format(provider=provider)


def merchant_doubt(order: Order, code: str | None, provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """The merchant chat's one line about an order in doubt: which order, and why."""
    parts = [
        _("IN DOUBT"),
        money(order.amount),
        order.network.label,
        mask_phone(order.phone),
        _("order {order_id}").format(order_id=readable_id(order.id)),
        doubt_reason(code, provider),
        _("still checking; the payer was told it is not confirmed yet"),
    ]
    if order.requested_by:
        parts.append(_("asked by {who}").format(who=order.requested_by))
    return "❓ " + " · ".join(parts)


def order_status(order: Order, later: Order | None = None) -> str:
    """One order for /status; `later`: the order that followed it (sent again, or the rest)."""
    lines = [
        _("Order {order_id}: {status}").format(order_id=readable_id(order.id), status=order_state_words(order)),
        _("Amount: {amount} by {network}").format(amount=money(order.amount), network=order.network.label),
        _("Phone: {phone}").format(phone=order.masked_phone),
        _("Created: {time}").format(time=nairobi_time(order.created_at)),
    ]
    if order.receipt_code:
        lines.append(_("Receipt: {receipt}").format(receipt=order.receipt_code))
    if order.paid_amount is not None and order.paid_amount != order.amount:
        lines.append(_("Received: {amount}").format(amount=money(order.paid_amount)))
    if order.status is OrderStatus.FAILED and order.last_error:
        lines.append(_("Reason: {reason}").format(reason=reason(order.last_error)))
    if later is not None:
        then = (
            _("The rest: order {order_id}, {amount}: {status}")
            if order.status is OrderStatus.UNDERPAID
            else _("Sent again as order {order_id}, {amount}: {status}")
        )
        lines.append(
            then.format(order_id=readable_id(later.id), amount=money(later.amount), status=status_words(later.status))
        )
    return "\n".join(lines)


def order_list(orders: list[Order]) -> str:
    rows = [f"{readable_id(o.id)} · {money(o.amount)} · {order_state_words(o)}" for o in orders]
    return _("Your latest orders:") + "\n" + "\n".join(rows) + "\n\n" + _("Send /status <order id> for details.")


def merchant_digest(lines: list[str], since: float) -> list[tuple[int, str]]:
    """Merchant lines that queued up while the merchant chat was behind, folded into as few
    messages as fit Telegram's limit: "12 payments since 14:05:" and one line each, in order.

    Returns (how many lines, text) per message, so each message's lines can be marked sent
    when it is. The sandbox tag is said once, not on every line.
    """
    said = sandbox_tag()
    tag = said if any(line.startswith(said) for line in lines) else ""
    bare = [line.removeprefix(said) for line in lines]
    head = ngettext("{n} payment since {time}", "{n} payments since {time}", len(lines)).format(
        n=len(lines), time=clock_time(since)
    )
    room = MESSAGE_LIMIT - len(tag) - len(head) - len(" (999/999):")  # what the lines of one message may use
    chunks: list[list[str]] = [[]]
    used = 0
    for line in bare:
        line = line if len(line) < room else line[: room - 2] + "…"
        if chunks[-1] and used + 1 + len(line) > room:
            chunks.append([])
            used = 0
        chunks[-1].append(line)
        used += 1 + len(line)
    if len(chunks) == 1:
        return [(len(chunks[0]), f"{tag}{head}:\n" + "\n".join(chunks[0]))]
    return [(len(chunk), f"{tag}{head} ({n}/{len(chunks)}):\n" + "\n".join(chunk)) for n, chunk in enumerate(chunks, 1)]
