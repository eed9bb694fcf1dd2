"""Every button the bot shows: its label, the format of its callback data, and the parsing of a
press. Labels kept in the outbox are msgids (`N_`), translated when `keyboard` renders them;
the routes (`bot/routes.py`) match presses by the patterns here. Refunds' buttons are
`bot/refunds/buttons.py`."""

from __future__ import annotations

from typing import NamedTuple

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import Network
from bot.i18n import N_, _

# The /pay summary's and an order's buttons (the conversation, /status and the outbox share them).
CONFIRM, SWITCH_NETWORK, CANCEL = "pay:confirm", "pay:switch", "pay:cancel"
CANCEL_ORDER, RETRY_ORDER, REST_ORDER = "order:cancel", "order:retry", "order:rest"
CANCEL_ORDER_LABEL = N_("✖️ Cancel this payment")  # kept in the outbox untranslated; `keyboard` translates
RETRY_LABEL = N_("🔁 Send the prompt again")
ORDER_BUTTON_PATTERN = r"^order:(cancel|retry|rest):([A-Z0-9]{1,34})$"
REST_LABEL = N_("💳 Pay the rest")
LANGUAGE_BUTTON_PATTERN = r"^lang:(en|sw)$"


def share_contact_label() -> str:
    return _("📱 Share my number")


def order_button(action: str, order_id: str) -> str:
    return f"{action}:{order_id}"


def keyboard(buttons: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    """One button per row, from (label, callback data) pairs; labels are msgids, said in the
    current language (a label already translated stays as it is)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(_(label), callback_data=data)] for label, data in buttons])


def button_owner(callback_data: str) -> int | None:
    """The user id a button was made for, if it carries one (summary buttons do)."""
    owner = callback_data.rsplit(":", 1)[-1]
    return int(owner) if callback_data.startswith("pay:") and owner.isdigit() else None


def language_buttons() -> tuple[tuple[str, str], ...]:
    """Each language named in itself, so anyone finds theirs."""
    return (("🇬🇧 English", "lang:en"), ("🇰🇪 Kiswahili", "lang:sw"))


SUMMARY_BUTTON_PATTERN = r"^pay:"


class SummaryPress(NamedTuple):
    """What a summary button says: which summary, the network it showed, whose it is."""

    action: str  # CONFIRM, SWITCH_NETWORK or CANCEL
    summary_key: str
    network: Network
    owner: int


def draft_summary_buttons(
    summary_key: str, network: Network, user_id: int, *, switch: bool = True
) -> tuple[tuple[str, str], ...]:
    """The summary's buttons carry what the payer sees on it (its key and network) and the payer's
    id, so a press does what the message showed even if the bot restarted since. `switch`: the
    other network is offered (not where the provider prompts one network only)."""
    tail = f"{summary_key}:{network.value}:{user_id}"
    other = (_("🔁 Use {network} instead").format(network=network.other.label), f"{SWITCH_NETWORK}:{tail}")
    return ((_("✅ Confirm"), f"{CONFIRM}:{tail}"), *((other,) if switch else ()), (_("✖️ Cancel"), f"{CANCEL}:{tail}"))


def summary_press(callback_data: str) -> SummaryPress | None:
    """The summary button behind `callback_data`; None for anything else (older formats too)."""
    parts = callback_data.split(":")
    if len(parts) != 5 or f"{parts[0]}:{parts[1]}" not in (CONFIRM, SWITCH_NETWORK, CANCEL):
        return None
    _, _, key, network, owner = parts
    if network not in (n.value for n in Network) or not owner.isdigit():
        return None
    return SummaryPress(f"{parts[0]}:{parts[1]}", key, Network(network), int(owner))


REQUEST_BUTTON_PATTERN = r"^preq:cancel:([A-Z0-9]{1,20})$"
PAYBILL_BUTTON_LABEL = N_("📋 No prompt on your phone?")  # kept in the outbox; `keyboard` translates
PAYBILL_BUTTON_PATTERN = r"^order:paybill:([A-Z0-9]{1,34})$"


def request_cancel_button(request_id: str) -> str:
    return f"preq:cancel:{request_id}"


def paybill_button(order_id: str) -> str:
    return f"order:paybill:{order_id}"
