"""What payment requests say, and the Pay Bill way round: functions of whole sentences (a note is
never glued on as a fragment), so each goes into the gettext catalogue in one piece. They build
on the shared wording in `bot/i18n/formats.py`."""

from __future__ import annotations

from bot.domain import Network, Order, RequestUnavailable
from bot.i18n import _
from bot.i18n.formats import money, nairobi_time, sentence_case, shop_words
from bot.pay.inputs import InputProblem
from bot.pay.sentences import ask_phone
from bot.providers.base import DEFAULT_PROVIDER_NAME


def request_staff_only() -> str:
    return _("Only the shop's admins and staff can send payment requests. To pay, send /pay.")


def request_usage() -> str:
    return _("Send the amount and, if you like, a note of up to 100 characters, for example: /request 500 2 loaves")


def request_note_too_long() -> str:
    return _("The note can be at most 100 characters. Please send it shorter, for example: /request 500 2 loaves")


def request_share_label() -> str:
    return _("📤 Share")


def request_cancel_label() -> str:
    return _("✖️ Cancel request")


def qr_caption_lines(networks: tuple[Network, ...] = tuple(Network)) -> tuple[str, str]:
    """Below the counter sign's code: what it is. The M-PESA app's own scanner cannot read it,
    so the sign says to use the camera, and that it opens Telegram. Only the networks the
    running provider prompts are named (Daraja: M-PESA alone)."""
    if Network.AIRTEL in networks:
        return _("Scan with your phone's camera: it opens Telegram"), _("then pay with M-PESA or Airtel Money")
    return _("Scan with your phone's camera: it opens Telegram"), _("then pay with M-PESA")


def request_cancelled_answer() -> str:
    return _("Request cancelled.")


def request_not_cancellable() -> str:
    return _("This request can't be cancelled now: it is paid, being paid, or has already ended.")


def request_link_unknown() -> str:
    return _("I don't know that payment link. Please ask the shop for a new one, or send /pay.")


def no_requests() -> str:
    return _("No payment requests yet. Send /request 500 2 loaves to make one.")


def inline_usage_title() -> str:
    return _("Type an amount and a note")


def inline_usage_text() -> str:
    return _("Type the amount and a note after my name, for example: 500 2 loaves")


def request_what(amount: int, note: str) -> str:
    """`KES 500 for 2 loaves`, or `KES 500` without a note."""
    if note:
        return _("{amount} for {note}").format(amount=money(amount), note=note)
    return money(amount)


def request_title(amount: int, note: str) -> str:
    """The inline card's title: "Request KES 500 — 2 loaves"."""
    if note:
        return _("Request {amount} — {note}").format(amount=money(amount), note=note)
    return _("Request {amount}").format(amount=money(amount))


def request_asks(shop_name: str, amount: int, note: str) -> str:
    """What the payer reads first: "Mama Mboga asks KES 500 for 2 loaves."."""
    if note:
        asks = _("{shop} asks {amount} for {note}.").format(shop=shop_words(shop_name), amount=money(amount), note=note)
        return sentence_case(asks)
    return sentence_case(_("{shop} asks {amount}.").format(shop=shop_words(shop_name), amount=money(amount)))


def request_created(
    request_id: str, amount: int, note: str, expires_at: float, link: str, *, in_group: bool = False
) -> str:
    """The request's own message. Made in a group, who paid is told in the requester's private chat."""
    if in_group:
        text = _(
            "🧾 Payment request {id}: {what}\n"
            "Valid until {until}.\n"
            "Link: {link}\n\n"
            "Send the link or show the QR code: the customer opens it, gives a phone number and confirms. "
            "Tap Share to post it in another chat. This message will say when it is paid; who paid, I'll "
            "tell you in our private chat."
        )
    else:
        text = _(
            "🧾 Payment request {id}: {what}\n"
            "Valid until {until}.\n"
            "Link: {link}\n\n"
            "Send the link or show the QR code: the customer opens it, gives a phone number and confirms. "
            "Tap Share to post it in another chat. I'll tell you here when it is paid."
        )
    return text.format(id=request_id, what=request_what(amount, note), until=nairobi_time(expires_at), link=link)


def request_card(
    shop_name: str, amount: int, note: str, expires_at: float, networks: tuple[Network, ...] = tuple(Network)
) -> str:
    """The message an inline card posts into a chat, naming the networks the provider prompts."""
    if Network.AIRTEL in networks:
        text = _("🧾 {asks}\nTap the button to pay with M-PESA or Airtel Money (valid until {until}).")
    else:
        text = _("🧾 {asks}\nTap the button to pay with M-PESA (valid until {until}).")
    return text.format(asks=request_asks(shop_name, amount, note), until=nairobi_time(expires_at))


def pay_button_label(amount: int) -> str:
    return _("Pay {amount}").format(amount=money(amount))


def request_start(shop_name: str, amount: int, note: str) -> str:
    return f"{request_asks(shop_name, amount, note)}\n\n{ask_phone()}"


def request_amount_problem(problem: InputProblem, minimum: int, maximum: int) -> str:
    """/request with an amount that cannot be asked for: why, and how to write it."""
    if problem is InputProblem.AMOUNT_NOT_WHOLE:
        first = _("Requests are in whole shillings, no cents.")
    elif problem is InputProblem.AMOUNT_TOO_SMALL:
        first = _("The smallest amount I can request is {amount}.").format(amount=money(minimum))
    elif problem is InputProblem.AMOUNT_TOO_LARGE:
        first = _("The largest amount I can request is {amount}.").format(amount=money(maximum))
    else:
        first = _("I couldn't read that as an amount.")
    return f"{first}\n{request_usage()}"


def request_amount_fixed(amount: int) -> str:
    return _(
        "The amount of this request is fixed at {amount}. Tap Confirm on the summary above, "
        "send another phone number, or /cancel."
    ).format(amount=money(amount))


def request_state_line(state: str, amount: int, note: str, payer: str | None, paid: int = 0) -> str:
    """A request's state and what it asks: on /requests, and on its message once it has ended.
    `paid` is the money on it: a part-paid request says how much is missing, a paid one any excess."""
    what = request_what(amount, note)
    if state == "open":
        return _("⏳ open: {what}").format(what=what)
    if state == "paying":
        return _("⏳ being paid: {what}").format(what=what)
    if state == "part_paid":
        missing = money(amount - paid)
        if payer:
            return _("🟡 Part-paid by {payer}: {paid} of {what}; {missing} missing").format(
                payer=payer, paid=money(paid), what=what, missing=missing
            )
        return _("🟡 Part-paid: {paid} of {what}; {missing} missing").format(
            paid=money(paid), what=what, missing=missing
        )
    if state == "paid" and paid > amount:
        excess = money(paid - amount)
        if payer:
            return _("✅ Paid by {payer}: {what}; {excess} more than asked").format(
                payer=payer, what=what, excess=excess
            )
        return _("✅ Paid: {what}; {excess} more than asked").format(what=what, excess=excess)
    if state == "paid":
        if payer:
            return _("✅ Paid by {payer}: {what}").format(payer=payer, what=what)
        return _("✅ Paid: {what}").format(what=what)
    if state == "expired":
        return _("⌛ Expired: {what}").format(what=what)
    return _("✖️ Cancelled: {what}").format(what=what)


def request_ended(shop_name: str, state: str, amount: int, note: str, payer: str | None, paid: int = 0) -> str:
    return f"🧾 {shop_words(shop_name)}: {request_state_line(state, amount, note, payer, paid)}."


def request_unavailable(why: RequestUnavailable, shop_name: str = "") -> str:
    """Why a request cannot be paid now (opening its link, or confirming it); a cancelled one
    names the shop that cancelled it, a part-paid one what is missing."""
    state, being_paid, missing = why.state, why.being_paid, why.missing
    if state == "paid":
        return _("This payment request has already been paid. Nothing more to pay.")
    if state == "part_paid":
        return _(
            "This payment request is part-paid: {missing} is still missing. Whoever paid it can pay the "
            "rest with 💳 Pay the rest on their receipt; or ask the shop."
        ).format(missing=money(missing))
    if state == "open" and being_paid:
        return _("Someone is already paying this request. If it isn't paid in a few minutes, ask the shop.")
    if state == "cancelled":
        cancelled = _("{shop} cancelled this payment request. Please ask for a new one.")
        return sentence_case(cancelled.format(shop=shop_words(shop_name)))
    return _("This payment request has expired. Please ask the shop for a new one.")


def request_paid_notice(
    request_id: str,
    amount: int,
    note: str,
    payer_name: str | None,
    phone: str,
    receipt: str,
    paid_total: int | None = None,
) -> str:
    """The requester's word that money came on a request: `amount` is what it asks, `paid_total`
    the money on it now (None: as much as it asks), so a part-paid one says what is missing and
    one paid over says by how much."""
    payer, what = payer_name or _("the payer"), request_what(amount, note)
    paid = amount if paid_total is None else paid_total
    if paid < amount:
        return _(
            "🟡 Request {id} part-paid: {paid} of {what}; {missing} missing\nBy {payer} ({phone}). Receipt: {receipt}"
        ).format(
            id=request_id,
            paid=money(paid),
            what=what,
            missing=money(amount - paid),
            payer=payer,
            phone=phone,
            receipt=receipt,
        )
    if paid > amount:
        return _(
            "✅ Request {id} paid: {what}; {excess} more than asked\nBy {payer} ({phone}). Receipt: {receipt}"
        ).format(id=request_id, what=what, excess=money(paid - amount), payer=payer, phone=phone, receipt=receipt)
    return _("✅ Request {id} paid: {what}\nBy {payer} ({phone}). Receipt: {receipt}").format(
        id=request_id, what=what, payer=payer, phone=phone, receipt=receipt
    )


def payer_words(payer_name: str | None, masked_phone: str) -> str:
    """Who paid, as a request's line names them: iPay's name for the payer, or "the payer"."""
    return f"{payer_name or _('the payer')} ({masked_phone})"


def requests_list(lines: list[str]) -> str:
    return _("Payment requests (open and last 7 days):") + "\n" + "\n".join(lines)


def request_list_line(request_id: str, created_at: float, state_line: str) -> str:
    return f"{request_id} · {nairobi_time(created_at)} · {state_line}"


def request_list_cancel_label(request_id: str, amount: int) -> str:
    return _("✖️ Cancel {id} ({amount})").format(id=request_id, amount=money(amount))


def inline_pay_shop_title(shop_name: str) -> str:
    return _("Pay {shop}").format(shop=shop_words(shop_name))


def inline_pay_shop_text(shop_name: str, bot_username: str, networks: tuple[Network, ...] = tuple(Network)) -> str:
    if Network.AIRTEL in networks:
        text = _("To pay {shop} with M-PESA or Airtel Money, open @{bot} and send /pay, or tap the button.")
    else:
        text = _("To pay {shop} with M-PESA, open @{bot} and send /pay, or tap the button.")
    return text.format(shop=shop_words(shop_name), bot=bot_username)


def paybill_steps(order: Order, paybills: dict[str, str], account: str) -> str:
    """How to pay the same order by hand, from its own /transact answer (never hard-coded)."""
    lines = [_("No prompt on your phone? Pay the same order by hand:")]
    ways = []
    if "MPESA" in paybills:
        ways.append(
            _("M-PESA → Lipa na M-PESA → Pay Bill → Business no. {paybill} → Account {account} → {amount}").format(
                paybill=paybills["MPESA"], account=account, amount=money(order.amount)
            )
        )
    if "AIRTEL" in paybills:
        ways.append(
            _(
                "Airtel Money → Make Payments → Paybill → Business no. {paybill} → Reference {account} → {amount}"
            ).format(paybill=paybills["AIRTEL"], account=account, amount=money(order.amount))
        )
    lines.extend(reversed(ways) if order.network is Network.AIRTEL else ways)  # the payer's own network first
    lines.append(_("If the prompt appears later, do not enter your PIN: you would pay twice."))
    lines.append(_("Order {id}. I'll tell you here as soon as it is paid.").format(id=order.id))
    return "\n".join(lines)


def paybill_not_available(provider: str = DEFAULT_PROVIDER_NAME) -> str:
    return _("{provider} has not given this order a Pay Bill account yet. Please wait a moment and try again.").format(
        provider=provider
    )


def paybill_no_account(provider: str = DEFAULT_PROVIDER_NAME) -> str:
    """The provider answered the order with an empty account: Pay Bill instructions would be wrong."""
    return _(
        "{provider} gave this order no account number, so it cannot be paid by Pay Bill. If no prompt came, "
        "cancel this order and send /pay again once the phone is on, unlocked and has signal."
    ).format(provider=provider)


def paybill_order_closed() -> str:
    return _("This order is no longer waiting for a payment.")


def qr_sign_caption(link: str) -> str:
    return _(
        "Your counter QR code: print it and put it where customers pay. It opens {link}, where they say the amount."
    ).format(link=link)


def requests_help() -> str:
    return _(
        "\n\nFor the shop's staff:\n"
        "/request 500 2 loaves: a payment request with a link and a QR code; the customer pays in two taps.\n"
        "/requests: open and recent requests, with a Cancel button.\n"
        "/qr: the shop's QR code for the counter.\n"
        "In any chat, type @ and my name, then an amount and a note, to post a request card."
    )
