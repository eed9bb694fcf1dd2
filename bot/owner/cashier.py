"""A cashier's name as the owner reads it, from what an order records about who asked for it.
No imports from the rest of the bot: the CSV export (`bot.reports`) uses it too."""

from __future__ import annotations


def cashier_name(requested_by: str, user_id: int) -> str:
    """ "Wanjiru (@wanjiru, 9002)" reads as "Wanjiru"; an API key keeps its label; nobody named
    reads as their number."""
    name = requested_by.split(" (", 1)[0].strip()
    return name or str(user_id)
