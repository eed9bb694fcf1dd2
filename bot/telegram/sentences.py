"""The bot's own sentences, beside no single feature: its command menus and /help, the language
choice, the sandbox tag, stale or foreign buttons, the answer to a stray message, and how a long
report is cut into Telegram-sized messages.

Plain text (no parse mode): nothing a user types can break the formatting. Translations live in
`bot/locale/<lang>/LC_MESSAGES/messages.po`; placeholders are `{name}`, filled after translation.
"""

from __future__ import annotations

from bot.domain import Network
from bot.i18n import _
from bot.i18n.formats import shop_words
from bot.providers.base import DEFAULT_PROVIDER_NAME

SANDBOX_TAG = "🧪 SANDBOX: no real money moves. "  # the English tag; `sandbox_tag()` says it in the reader's


def sandbox_tag() -> str:
    return _("🧪 SANDBOX: no real money moves.") + " "


def commands(networks: tuple[Network, ...] = tuple(Network)) -> tuple[tuple[str, str], ...]:
    """The command menu, in the current language (registered once per language), naming only
    the networks the running provider takes."""
    pay = _("Pay with M-Pesa or Airtel Money") if Network.AIRTEL in networks else _("Pay with M-Pesa")
    return (
        ("pay", pay),
        ("status", _("Check an order: /status <order id>")),
        ("cancel", _("Stop what we are doing")),
        ("help", _("What this bot does")),
        ("orders", _("This chat's latest orders")),
        ("language", _("Choose your language: English or Kiswahili")),
        ("lugha", _("Choose your language (the same as /language)")),
    )


def admin_commands(provider: str = DEFAULT_PROVIDER_NAME) -> tuple[tuple[str, str], ...]:
    return (
        ("summary", _("Totals: /summary [today|week|month|YYYY-MM-DD]")),
        ("export", _("CSV of orders: /export [from] [to]")),
        ("request", _("Request a payment: /request 500 2 loaves")),
        ("requests", _("Open and recent payment requests")),
        ("qr", _("The shop's QR code for the counter")),
        ("reconcile", _("Check orders against {provider}: /reconcile [period]").format(provider=provider)),
        ("refund", _("Give a payment back: /refund <order id>")),
        ("close", _("Close the day: totals, cashiers, open orders")),
    )


def with_sandbox_tag(text: str, sandbox: bool) -> str:
    return sandbox_tag() + text if sandbox else text


def help_text(shop_name: str, may_pay: bool = True, networks: tuple[Network, ...] = tuple(Network)) -> str:
    """What the bot does; /pay is offered only to those who may use it (staff mode). A provider
    that prompts M-Pesa alone (Daraja, the shop's own till or paybill) is M-PESA itself to the payer:
    nobody in between is named."""
    if Network.AIRTEL in networks:
        intro = _("I take M-Pesa and Airtel Money payments for {shop} through iPay Africa.")
    else:
        intro = _("I take M-Pesa payments for {shop}.")
    intro = intro.format(shop=shop_words(shop_name))
    if may_pay:
        pay = _(
            "/pay: pay with your phone. I ask for the number and the amount, you confirm, and your "
            "phone asks for your PIN."
        )
        pay += " " + _("Amounts: 500, 1,000, or the shorthand 1k and 1.5k, in whole shillings.")
    else:
        pay = _("Payments here are taken by the shop's staff: a cashier sends the payment prompt to your phone.")
    rest = _(
        "/status <order id>: one order in detail (amount, receipt, reason). /status alone: the latest 5, in short.\n"
        "/orders [today|week|N]: a list of this chat's orders with time, phone and status, for today, "
        "the last 7 days or the last N.\n"
        "/language (or /lugha): English or Kiswahili.\n"
        "/cancel: stop a payment you are setting up.\n"
        "/help: this message."
    )
    return f"{intro}\n\n{pay}\n{rest}"


def unknown_command() -> str:
    return _("I don't know that command. Send /help to see what I can do.")


def something_went_wrong() -> str:
    return _("Sorry, something went wrong on my side. Nothing was charged by this message; please try again.")


def stale_button() -> str:
    return _("That button is no longer active.")


def button_needs_a_chat() -> str:
    return _("That button only works in a chat with the bot.")


STALE_BUTTON = "That button is no longer active."  # the English words, for the REST API's refusals


def not_your_button() -> str:
    return _("This button belongs to someone else's payment.")


def choose_language() -> str:
    return _("Choose your language. Chagua lugha yako.")


def language_chosen() -> str:
    return _("I'll speak English with you. Send /lugha to change.")


def admin_help(provider: str = DEFAULT_PROVIDER_NAME) -> str:
    return (
        "\n\n"
        + _(
            "For the shop's admins. A period is today, yesterday, week (the last 7 days), month, "
            "a date (YYYY-MM-DD: from that day to today) or two dates (from the first to the last).\n"
            "/orders [N|period]: the latest orders of every chat, with receipts.\n"
            "/summary [period]: what came in, then totals by status and network.\n"
            "/export [period]: the orders as a CSV file."
        )
        + "\n"
        + _(
            "/reconcile [period]: every order looked up at {provider} again; what differs is reported and fixed."
        ).format(provider=provider)
    )


MESSAGE_LIMIT = 4096  # Telegram's longest text message, in characters


def in_parts(head: str, lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """`head` and `lines` as messages of at most `limit` characters, each starting with `head`."""
    parts: list[list[str]] = [[]]
    used = len(head)
    for line in lines:
        if parts[-1] and used + 1 + len(line) > limit:
            parts.append([])
            used = len(head)
        parts[-1].append(line)
        used += 1 + len(line)
    return ["\n".join([head, *part]) for part in parts]


# Admin reports cover every chat's orders: asked in a group, they go to the admin's private chat.
def report_sent_privately() -> str:
    return _("I've sent that to you in our private chat: reports on every chat's orders stay out of groups.")


def open_private_chat_first(bot_username: str) -> str:
    return _(
        "Reports on every chat's orders stay out of groups: open a private chat with @{bot}, send /start, "
        "then ask again."
    ).format(bot=bot_username)


def stray(shop_name: str) -> str:
    """The answer to a message or button the bot cannot place: what to do instead of silence."""
    return _("To pay {shop}, send /pay. /help lists everything.").format(shop=shop_words(shop_name))
