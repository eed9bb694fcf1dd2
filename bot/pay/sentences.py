"""What the /pay conversation says: asking for the phone and the amount, the summary, a prompt
that waits for the phone, and the conversation's endings. Whole sentences through gettext; they
build on the shared wording in `bot/i18n/formats.py` and `bot/orders/sentences.py`."""

from __future__ import annotations

from bot.domain import Network, Order
from bot.i18n import _
from bot.i18n.formats import clock_time_up, money, readable_id, shop_words, shown_phone
from bot.pay.inputs import InputProblem


def ask_phone() -> str:
    return _(
        "Which phone should get the payment prompt?\n"
        "Type the number (for example 0712 345 678) or tap the button below to share yours.\n"
        "Send /cancel to stop."
    )


def phone_problem() -> str:
    return _(
        "That doesn't look like a Kenyan mobile number. I accept forms like 0712345678, "
        "0112345678, +254712345678 or 254712345678 (spaces and dashes are fine).\n"
        "Please send the number again, or /cancel."
    )


def not_text_phone() -> str:
    return _("Please type the phone number (or share your contact with the button), or send /cancel.")


def not_text_amount() -> str:
    return _("Please type the amount in shillings as digits, for example 500, or send /cancel.")


def ask_amount(phone: str, network: Network, minimum: int, maximum: int) -> str:
    return _(
        "Phone: {phone} ({network}).\nHow much? Send whole shillings between {minimum} and {maximum}, for example 500."
    ).format(phone=phone, network=network.label, minimum=money(minimum), maximum=money(maximum))


def amount_problem(problem: InputProblem, minimum: int, maximum: int) -> str:
    if problem is InputProblem.AMOUNT_NOT_WHOLE:
        first = _("M-Pesa and Airtel Money take whole shillings only, no cents.")
    elif problem is InputProblem.AMOUNT_TOO_SMALL:
        first = _("The smallest amount I can take is {minimum}.").format(minimum=money(minimum))
    elif problem is InputProblem.AMOUNT_TOO_LARGE:
        first = _("The largest amount I can take is {maximum}.").format(maximum=money(maximum))
    else:
        first = _("I couldn't read that as an amount.")
    return first + " " + _("Please send a whole number of shillings, for example 500 or 1,000, or /cancel.")


def summary(phone: str, network: Network, amount: int, shop_name: str = "", note: str = "") -> str:
    """What Confirm will do: whom the money goes to and, for a merchant's request, what it is for."""
    words = {"shop": shop_words(shop_name), "amount": money(amount), "phone": phone, "network": network.label}
    if note:
        return _(
            "Please check:\n"
            "To: {shop}\n"
            "For: {note}\n"
            "Amount: {amount}\n"
            "Phone: {phone}\n"
            "Pay with: {network}\n\n"
            "Tap Confirm and your phone will ask for your PIN."
        ).format(note=note, **words)
    return _(
        "Please check:\n"
        "To: {shop}\n"
        "Amount: {amount}\n"
        "Phone: {phone}\n"
        "Pay with: {network}\n\n"
        "Tap Confirm and your phone will ask for your PIN."
    ).format(**words)


def sending_prompt(order: Order) -> str:
    return _("Sending the {network} prompt for {amount} to {phone}… (order {order_id})").format(
        network=order.network.label,
        amount=money(order.amount),
        phone=shown_phone(order.phone, order.chat_id),
        order_id=readable_id(order.id),
    )


def phone_free_at(order_id: str, cancelled_at: float, until: float) -> str:
    """Above the amount question: the phone is busy only with the prompt this payer cancelled,
    so the new one can wait for it (see `DraftStep.WAITING`)."""
    return _(
        "You cancelled order {order_id} at {cancelled}; the phone may still show its prompt until {time}. "
        "Go on: if it is still showing then, I'll send the new prompt by itself at {time}."
    ).format(order_id=readable_id(order_id), cancelled=clock_time_up(cancelled_at), time=clock_time_up(until))


def summary_waits(until: float) -> str:
    """Below a summary whose prompt must wait for the phone."""
    return _("⏳ The phone is busy until {time}: Confirm, and the prompt goes out by itself then.").format(
        time=clock_time_up(until)
    )


def waiting_to_send(phone: str, network: Network, amount: int, until: float) -> str:
    return _(
        "⏳ Confirmed. I'll send the {network} prompt for {amount} to {phone} at {time}, when the phone is free. "
        "Nothing is charged until you enter your PIN."
    ).format(network=network.label, amount=money(amount), phone=phone, time=clock_time_up(until))


def still_waiting_to_send(until: float) -> str:
    return _("Your prompt goes out at {time}, when the phone is free. Send /cancel to stop it.").format(
        time=clock_time_up(until)
    )


def waited_too_long(send_at: float) -> str:
    return _(
        "I could not send the prompt soon after {time}, so I did not send it late. Nothing was charged. "
        "Send /pay to try again."
    ).format(time=clock_time_up(send_at))


def waiting_not_sent(note: str) -> str:
    """A waiting Confirm's message once it will not be sent: cancelled or replaced."""
    return " ".join(part for part in (_("⏳ Not sent."), note) if part)


def waiting_already_sent() -> str:
    return _("Too late to stop it here: the prompt is on its way. Tap ✖️ Cancel this payment on its message.")


def conversation_cancelled() -> str:
    return _("Cancelled. Nothing was charged. Send /pay to start again.")


def replaced_by_new_payment() -> str:
    """Above a summary whose buttons went away because /pay started again."""
    return _("Replaced by a new payment.")


def replaced_below() -> str:
    """Above a summary whose buttons went away because the payer changed something."""
    return _("Replaced by your answer below.")


def summary_cancelled() -> str:
    """Above a summary whose payment the payer cancelled by typing."""
    return _("Cancelled.")


def conversation_timed_out() -> str:
    return _("I stopped waiting, so that payment was not sent. Send /pay to start again.")


def switched_to(network: Network) -> str:
    return _("Switched to {network}").format(network=network.label)


def summary_again() -> str:
    return _("Tap Confirm or Cancel below, or answer yes or no.")


def another_number_or_cancel(refused: str) -> str:
    return refused + "\n" + _("You can send another number, or /cancel.")


def unknown_command_mid_payment() -> str:
    return _("I don't know that command. We're in the middle of a payment: answer my last question, or send /cancel.")


# -- typed answers ----------------------------------------------------------------------------

YES_WORDS = frozenset({"yes", "y", "ok", "okay", "confirm", "ndio", "ndiyo", "sawa", "thibitisha"})


NO_WORDS = frozenset({"no", "n", "cancel", "stop", "hapana", "sitisha", "ghairi"})


def typed_answer(text: str) -> bool | None:
    """A typed yes (True) or no/cancel (False) in either language; None for anything else."""
    word = text.strip().strip(".!").lower()
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    return None
