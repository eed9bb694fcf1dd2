"""Payments made by hand (Pay Bill) that a provider tells the bot of as they happen (Daraja's C2B
confirmations): matched to the order they name and paid through its one finalisation path, or
kept and shown to the shop as unmatched."""
